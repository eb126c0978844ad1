"""Model settings: which base model, how it is quantised, where it runs, which adapter it wears."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModbotError, ModelError

DEFAULT_MODEL = "smollm2-135m"

# Short names a server owner can type; anything else is a Hub id or a local directory.
MODEL_ALIASES: dict[str, str] = {
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "gpt-j-6b": "EleutherAI/gpt-j-6b",
}
QUANTIZATIONS = ("auto", "8bit", "4bit", "none")
# How a non-quantised base is served (see bench/precision.py for the figures): auto = fp32 with the linear
# layers packed for oneDNN on the CPU where that applies (same results, faster), fp32 = as loaded, bf16 = a
# bfloat16 copy (faster still on CPUs with bf16 instructions, probabilities move by ~0.01).
INFERENCE_PRECISIONS = ("auto", "fp32", "bf16")
# Where the model runs: local = in this process; ray = in the Ray Serve application `modbot serve` deployed.
BACKENDS = ("local", "ray")
DEFAULT_RAY_APP = "modbot"
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

# MODBOT_ADAPTER values that mean "no adapter at all".
NO_ADAPTER = ("none", "zero-shot")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modbot"


@dataclass(frozen=True)
class ModelSettings:
    """Everything needed to load a classifier, validated when built.

    ``adapter`` is a directory, or None for "the adapter shipped for this model, if there is one";
    ``use_default_adapter=False`` with no adapter runs the model zero-shot.
    """

    model: str = DEFAULT_MODEL
    quantization: str = "auto"
    device: str = "auto"
    adapter: Path | None = None
    use_default_adapter: bool = True
    cache_dir: Path = field(default_factory=default_cache_dir)
    max_message_tokens: int = 256
    batch_size: int = 16
    inference: str = "auto"
    max_windows: int = 64  # a long message is read in at most this many windows (model.prompt)
    backend: str = "local"
    ray_address: str | None = None  # None: the Ray instance started on this machine
    ray_app: str = DEFAULT_RAY_APP

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise ModelError("MODBOT_MODEL is empty: set it to smollm2-135m, gpt-j-6b, a Hub id or a directory.")
        if self.quantization not in QUANTIZATIONS:
            raise ModelError(
                f"MODBOT_QUANTIZATION={self.quantization!r} is not valid: use one of {', '.join(QUANTIZATIONS)}."
            )
        if not _DEVICE.match(self.device):
            raise ModelError(f"MODBOT_DEVICE={self.device!r} is not valid: use auto, cpu, cuda or cuda:N.")
        if self.inference not in INFERENCE_PRECISIONS:
            raise ModelError(
                f"MODBOT_INFERENCE={self.inference!r} is not valid: use one of {', '.join(INFERENCE_PRECISIONS)}."
            )
        if self.backend not in BACKENDS:
            raise ModelError(f"MODBOT_BACKEND={self.backend!r} is not valid: use local (the model in this process) "
                             "or ray (the Ray Serve application of `modbot serve`).")
        if not self.ray_app.strip():
            raise ModelError("MODBOT_RAY_APP is empty: name the Ray Serve application (default modbot).")
        if self.batch_size < 1:
            raise ModelError(f"MODBOT_BATCH_SIZE={self.batch_size} is not valid: use a whole number of 1 or more.")
        if self.max_windows < 1:
            raise ModelError(f"MODBOT_MAX_WINDOWS={self.max_windows} is not valid: use a whole number of 1 or more "
                             "(default 64).")
        if self.max_message_tokens < 8:
            raise ModelError(
                f"MODBOT_MAX_MESSAGE_TOKENS={self.max_message_tokens} is too small: use 8 or more (default 256)."
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ModelSettings:
        env = os.environ if env is None else env
        adapter_value = env.get("MODBOT_ADAPTER", "").strip()
        adapter: Path | None = None
        use_default = True
        if adapter_value.lower() in NO_ADAPTER:
            use_default = False
        elif adapter_value:
            adapter = Path(adapter_value).expanduser()
        cache = env.get("MODBOT_CACHE_DIR", "").strip()
        return cls(
            model=env.get("MODBOT_MODEL", "").strip() or DEFAULT_MODEL,
            quantization=env.get("MODBOT_QUANTIZATION", "").strip().lower() or "auto",
            device=env.get("MODBOT_DEVICE", "").strip().lower() or "auto",
            adapter=adapter,
            use_default_adapter=use_default,
            cache_dir=Path(cache).expanduser() if cache else default_cache_dir(),
            max_message_tokens=int_setting(env, "MODBOT_MAX_MESSAGE_TOKENS", 256),
            batch_size=int_setting(env, "MODBOT_BATCH_SIZE", 16),
            inference=env.get("MODBOT_INFERENCE", "").strip().lower() or "auto",
            max_windows=int_setting(env, "MODBOT_MAX_WINDOWS", 64),
            backend=env.get("MODBOT_BACKEND", "").strip().lower() or "local",
            ray_address=env.get("RAY_ADDRESS", "").strip() or None,
            ray_app=env.get("MODBOT_RAY_APP", "").strip() or DEFAULT_RAY_APP,
        )


def int_setting(
    env: Mapping[str, str], name: str, default: int, error: type[ModbotError] = ModelError
) -> int:
    """An integer environment variable; ``error`` (naming the variable) if it is not one."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise error(f"{name}={raw!r} is not a whole number (default {default}).") from None


def resolve_model_name(name: str) -> tuple[str, str]:
    """Return (kind, target) for a MODBOT_MODEL value: kind is "default", "hub" or "local".

    Raises ModelError for a name that is none of an alias, an existing directory or a Hub id.
    """
    key = name.strip()
    if key.lower() == DEFAULT_MODEL:
        return "default", MODEL_ALIASES[DEFAULT_MODEL]
    if key.lower() in MODEL_ALIASES:
        return "hub", MODEL_ALIASES[key.lower()]
    path = Path(key).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"MODBOT_MODEL={name!r} is a directory without a model in it (no config.json): "
                             "point it at a directory written by save_pretrained, or use a model name.")
        return "local", str(path.resolve())
    looks_like_path = key.startswith((".", "/", "~")) or key.count("/") > 1
    if looks_like_path:
        raise ModelError(f"MODBOT_MODEL={name!r}: no such directory.")
    if _HUB_ID.match(key):
        return "hub", key
    raise ModelError(
        f"MODBOT_MODEL={name!r} is not a known model: use one of {', '.join(MODEL_ALIASES)}, "
        "a Hugging Face Hub id (owner/name) or a local model directory."
    )
