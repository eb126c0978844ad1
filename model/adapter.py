"""Adapter directories: a standard PEFT directory plus one metadata file of ours.

The metadata ties an adapter to the base model, prompt template and label set it was trained with, so
the loader can refuse a combination that would silently give wrong labels. ``training/`` writes it;
this module reads and checks it, and knows where the shipped default adapters live.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import AdapterError

METADATA_FILE = "modbot_adapter.json"
PEFT_CONFIG_FILE = "adapter_config.json"
PEFT_WEIGHTS_FILE = "adapter_model.safetensors"
# The `1d` strategy trains biases and norms, which PEFT has no adapter type for: they are saved as a
# plain safetensors file of parameter name -> tensor and loaded over the base model's own.
ONE_D_WEIGHTS_FILE = "trained_1d_parameters.safetensors"
TRAINING_SET_FILE = "train.jsonl"

SHIPPED_ADAPTERS_DIR = Path(__file__).resolve().parent / "adapters"

# Every field the loader relies on; training writes many more.
REQUIRED_FIELDS = ("base_model", "base_fingerprint", "template_id", "labels", "strategy")


def base_fingerprint(config: Any) -> dict[str, Any]:
    """What identifies a base model's architecture well enough to tell adapters apart."""
    def first(*names: str) -> Any:
        for name in names:
            value = getattr(config, name, None)
            if value is not None:
                return value
        return None

    return {
        "model_type": getattr(config, "model_type", None),
        "hidden_size": first("hidden_size", "n_embd", "d_model"),
        "num_layers": first("num_hidden_layers", "n_layer", "num_layers"),
        "vocab_size": first("vocab_size"),
    }


@dataclass(frozen=True)
class AdapterInfo:
    """An adapter directory's metadata, validated."""

    path: Path
    version: str
    base_model: str
    base_fingerprint: dict[str, Any]
    template_id: str
    labels: tuple[str, ...]
    strategy: str
    max_message_tokens: int | None = None
    few_shot_examples: tuple[tuple[str, str], ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def weights_file(self) -> Path | None:
        """The file holding trained weights, or None for an adapter that trains nothing (few-shot)."""
        if self.strategy == "few-shot":
            return None
        if self.strategy == "1d":
            return self.path / ONE_D_WEIGHTS_FILE
        return self.path / PEFT_WEIGHTS_FILE


def read_adapter(path: Path | str) -> AdapterInfo:
    """Read and validate an adapter directory's metadata; AdapterError says what is wrong with it."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise AdapterError(f"Adapter directory {path} does not exist. Check MODBOT_ADAPTER (or --adapter).")
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise AdapterError(
            f"{path} is not a modbot adapter: it has no {METADATA_FILE}. "
            "Point MODBOT_ADAPTER at a directory written by `modbot train`."
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"Adapter metadata {meta_path} is unreadable or corrupt ({exc}). Retrain or restore it.") from None
    if not isinstance(meta, dict):
        raise AdapterError(f"Adapter metadata {meta_path} is corrupt: expected a JSON object.")
    missing = [name for name in REQUIRED_FIELDS if name not in meta]
    if missing:
        raise AdapterError(f"Adapter metadata {meta_path} lacks {', '.join(missing)}. Retrain the adapter.")
    info = AdapterInfo(
        path=path,
        version=str(meta.get("version") or path.name),
        base_model=str(meta["base_model"]),
        base_fingerprint=dict(meta["base_fingerprint"]),
        template_id=str(meta["template_id"]),
        labels=tuple(meta["labels"]),
        strategy=str(meta["strategy"]),
        max_message_tokens=meta.get("max_message_tokens"),
        few_shot_examples=tuple((str(t), str(label)) for t, label in meta.get("few_shot_examples", ())),
        metadata=meta,
    )
    weights = info.weights_file
    if weights is not None and not weights.is_file():
        raise AdapterError(f"Adapter {path} is incomplete: {weights.name} is missing. Retrain or restore it.")
    if info.strategy not in ("1d", "few-shot") and not (path / PEFT_CONFIG_FILE).is_file():
        raise AdapterError(f"Adapter {path} is incomplete: {PEFT_CONFIG_FILE} is missing. Retrain or restore it.")
    return info


def load_weights(path: Path, device: str = "cpu") -> dict[str, Any]:
    """The tensors of an adapter's safetensors file; AdapterError if it is truncated or not safetensors."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device=device)
    except Exception as exc:  # safetensors' own error, or an OSError: either way the file is unusable
        raise AdapterError(f"Adapter weights {path} are corrupt or truncated ({brief(exc)}). "
                           "Retrain or restore the adapter.") from None


def brief(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to ``limit`` characters (libraries' messages run long)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_compatible(
    info: AdapterInfo, model_name: str, fingerprint: dict[str, Any], template_id: str, labels: tuple[str, ...]
) -> None:
    """Refuse an adapter trained on another base model, prompt template or label set."""
    if info.base_fingerprint != fingerprint:
        raise AdapterError(
            f"Adapter {info.path} was trained on base model {info.base_model!r} "
            f"({_describe(info.base_fingerprint)}), but the loaded model is {model_name!r} "
            f"({_describe(fingerprint)}). Use an adapter trained for {model_name!r}, or set MODBOT_MODEL to "
            f"{info.base_model!r}."
        )
    if tuple(info.labels) != tuple(labels):
        raise AdapterError(
            f"Adapter {info.path} was trained for labels {list(info.labels)}, but modbot uses {list(labels)}. "
            "Retrain the adapter on this label set."
        )
    if info.template_id != template_id:
        raise AdapterError(
            f"Adapter {info.path} was trained with prompt template {info.template_id!r}, but this version of "
            f"modbot builds {template_id!r}. Retrain the adapter with this version."
        )


def _describe(fingerprint: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in fingerprint.items())


def shipped_adapter(model_name: str) -> Path | None:
    """The adapter that ships with modbot for ``model_name`` (an alias), if there is one."""
    path = SHIPPED_ADAPTERS_DIR / model_name.strip().lower()
    return path if (path / METADATA_FILE).is_file() else None
