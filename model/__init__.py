"""modbot's classifier: a causal LM with a LoRA adapter labels messages hate / offensive / neutral.

Knows nothing of Discord or the database. The public API is small and synchronous.

Importing this package costs no torch: the names that need it (Classifier, the loaders, the prompt
builder) are imported on first use, so the bot's storage, its command line and a thin client of a
remote backend (MODBOT_BACKEND=ray) start without it.
"""

import importlib
import os

# Idle OpenMP threads spin by default. On a small machine shared with the bot's event loop (and a
# retrain job) that spinning stole most of the CPU: bench/bot_load.py measured p99 17.5 s at 5 msg/s
# with the default policy and 188 ms with PASSIVE. It must be set before torch starts its thread pool;
# an environment that sets its own policy keeps it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .backend import InferenceBackend, Served  # noqa: E402
from .config import ModelSettings  # noqa: E402
from .errors import AdapterError, ModbotError, ModelError  # noqa: E402
from .labels import LABELS  # noqa: E402
from .predictions import ZERO_SHOT, Prediction  # noqa: E402

# name -> module that defines it, imported when the name is first used
_LAZY = {
    "AdapterInfo": ".adapter",
    "read_adapter": ".adapter",
    "Classifier": ".classifier",
    "LoadedModel": ".loader",
    "LocalBackend": ".local_backend",
    "create_backend": ".backends",
    "attach_adapter": ".loader",
    "load_base": ".loader",
    "load_model": ".loader",
    "TEMPLATE_ID": ".prompt",
    "PromptBuilder": ".prompt",
    "normalize_message": ".prompt",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LABELS",
    "TEMPLATE_ID",
    "ZERO_SHOT",
    "AdapterError",
    "AdapterInfo",
    "Classifier",
    "InferenceBackend",
    "LoadedModel",
    "LocalBackend",
    "ModbotError",
    "ModelError",
    "ModelSettings",
    "Prediction",
    "PromptBuilder",
    "Served",
    "attach_adapter",
    "create_backend",
    "load_base",
    "load_model",
    "normalize_message",
    "read_adapter",
]
