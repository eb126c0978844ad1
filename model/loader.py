"""Loading a base model (with its quantisation and device) and putting an adapter on it."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .adapter import (
    ONE_D_WEIGHTS_FILE,
    AdapterInfo,
    base_fingerprint,
    brief,
    check_compatible,
    load_weights,
    read_adapter,
    shipped_adapter,
)
from .config import DEFAULT_MODEL, MODEL_ALIASES, ModelSettings, resolve_model_name
from .errors import AdapterError, ModelError
from .labels import LABELS
from .prompt import TEMPLATE_ID

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """A base model ready for inference or training, with the adapter it wears (if any)."""

    model: Any
    tokenizer: Any
    model_name: str
    device: Any
    quantization: str
    fingerprint: dict[str, Any]
    adapter: AdapterInfo | None = None

    @property
    def adapter_version(self) -> str | None:
        return self.adapter.version if self.adapter else None


def resolve_device(requested: str):
    import torch

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError(
                f"MODBOT_DEVICE={requested} but no CUDA device is available to this torch build. "
                "Use MODBOT_DEVICE=cpu (or auto)."
            )
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise ModelError(
                f"MODBOT_DEVICE={requested} but only {torch.cuda.device_count()} CUDA device(s) exist."
            )
    return torch.device(requested)


def resolve_quantization(requested: str, device) -> str:
    if requested == "auto":
        return "8bit" if device.type == "cuda" else "none"
    if requested in ("8bit", "4bit"):
        try:
            import bitsandbytes  # noqa: F401
        except Exception as exc:  # an ImportError, or a native library that fails to load
            raise ModelError(
                f"MODBOT_QUANTIZATION={requested} needs bitsandbytes, which cannot be used here ({exc}). "
                "Install bitsandbytes>=0.45, or set MODBOT_QUANTIZATION=none."
            ) from None
        if device.type not in ("cpu", "cuda"):
            raise ModelError(f"MODBOT_QUANTIZATION={requested} is not supported on {device}; use none.")
    return requested


def _quantization_kwargs(quantization: str, device) -> dict[str, Any]:
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.float16 if device.type == "cuda" else torch.float32
    if quantization == "8bit":
        return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True), "dtype": compute}
    if quantization == "4bit":
        return {
            "quantization_config": BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute
            ),
            "dtype": compute,
        }
    return {"dtype": compute}


def _source(settings: ModelSettings) -> tuple[str, str, str]:
    """(display name, what from_pretrained loads, kind) for the configured model."""
    kind, target = resolve_model_name(settings.model)
    if kind == "default":
        from .default_model import checkpoint_dir

        return DEFAULT_MODEL, str(checkpoint_dir(settings.cache_dir)), kind
    alias = settings.model.strip().lower()
    return (alias if alias in MODEL_ALIASES else target), target, kind


def _from_pretrained(loader, target: str, kind: str, **kwargs):
    """Load from a local directory or the local Hub cache; reach the Hub only when not offline."""
    if kind != "hub":
        try:
            return loader.from_pretrained(target, **kwargs)
        except OSError as exc:  # a file missing or unreadable in the directory
            raise ModelError(f"The model directory {target} cannot be loaded: {brief(exc)}") from None
    try:
        return loader.from_pretrained(target, local_files_only=True, **kwargs)
    except OSError:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        if offline or not _hub_reachable():
            raise _not_downloaded(target) from None
    try:
        return loader.from_pretrained(target, **kwargs)
    except OSError:
        raise _not_downloaded(target) from None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick connect test: huggingface_hub would otherwise retry for most of a minute before failing."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _not_downloaded(target: str) -> ModelError:
    return ModelError(
        f"The weights of {target!r} are not on this machine and the Hugging Face Hub cannot be reached. "
        f"Download them first where there is internet (`huggingface-cli download {target}`, then copy "
        "~/.cache/huggingface to this machine), or set MODBOT_MODEL to a local model directory."
    )


def load_base(settings: ModelSettings) -> LoadedModel:
    """Load the tokenizer and base model named by ``settings``, quantised and placed as asked."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(settings.device)
    quantization = resolve_quantization(settings.quantization, device)
    name, target, kind = _source(settings)
    try:
        tokenizer = _from_pretrained(AutoTokenizer, target, kind)
    except ValueError as exc:  # transformers' word for tokenizer files it cannot use
        raise ModelError(f"The tokenizer of {name!r} cannot be loaded: {brief(exc)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = _quantization_kwargs(quantization, device)
    if quantization != "none":
        kwargs["device_map"] = {"": str(device)}
    try:
        model = _from_pretrained(AutoModelForCausalLM, target, kind, **kwargs)
    except (ValueError, RuntimeError, ImportError) as exc:
        raise ModelError(f"Could not load {name!r} with MODBOT_QUANTIZATION={quantization} on {device}: {exc}") from None
    if quantization == "none":
        model.to(device)
    model.eval()
    log.info("loaded base model %s (%s) on %s, quantization %s", name, target, device, quantization)
    return LoadedModel(model, tokenizer, name, device, quantization, base_fingerprint(model.config))


def attach_adapter(loaded: LoadedModel, adapter_dir: Path | str) -> LoadedModel:
    """Put a trained adapter on a freshly loaded base (refusing one trained for something else)."""
    info = read_adapter(adapter_dir)
    check_compatible(info, loaded.model_name, loaded.fingerprint, TEMPLATE_ID, LABELS)
    model = loaded.model
    if info.strategy == "1d":
        state = load_weights(info.path / ONE_D_WEIGHTS_FILE, device=str(loaded.device))
        try:
            unexpected = model.load_state_dict(state, strict=False).unexpected_keys
        except RuntimeError as exc:  # a tensor of another shape
            raise adapter_misfit(info, brief(exc)) from None
        if unexpected:
            raise adapter_lacks(info, unexpected)
    elif info.strategy != "few-shot":
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(info.path), is_trainable=False)
        except Exception as exc:
            raise adapter_unloadable(info, exc) from None
        model.eval()
    log.info("attached adapter %s (%s) from %s", info.version, info.strategy, info.path)
    return LoadedModel(model, loaded.tokenizer, loaded.model_name, loaded.device, loaded.quantization,
                       loaded.fingerprint, info)


# The sentences for an adapter that passed read_adapter but cannot be put on the model (LocalBackend's too).
def adapter_unloadable(info: AdapterInfo, exc: BaseException) -> AdapterError:
    return AdapterError(f"Adapter {info.path} could not be loaded ({brief(exc)}). Retrain or restore it.")


def adapter_misfit(info: AdapterInfo, why: str) -> AdapterError:
    return AdapterError(f"Adapter {info.path} does not fit this model ({why}). Retrain or restore it.")


def adapter_lacks(info: AdapterInfo, names: list[str]) -> AdapterError:
    return AdapterError(f"Adapter {info.path} holds parameters this model lacks: {names[:3]}.")


def default_adapter_dir(settings: ModelSettings) -> Path | None:
    """The adapter a classifier built from ``settings`` wears: the configured one, else the shipped one."""
    if settings.adapter is not None:
        return settings.adapter
    if settings.use_default_adapter:
        return shipped_adapter(settings.model)
    return None


def load_model(settings: ModelSettings) -> LoadedModel:
    """The base model with the adapter that ``settings`` asks for (or the shipped default)."""
    adapter_dir = default_adapter_dir(settings)
    if adapter_dir is not None:
        read_adapter(adapter_dir)  # fail on a bad adapter before spending time on the base model
    loaded = load_base(settings)
    return attach_adapter(loaded, adapter_dir) if adapter_dir is not None else loaded
