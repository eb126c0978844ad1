"""modbot's classifier: a causal LM with a LoRA adapter labels messages hate / offensive / neutral.

Knows nothing of Discord or the database. The public API is small and synchronous.
"""

import os

# Idle OpenMP threads spin by default. On a small machine shared with the bot's event loop (and a
# retrain job) that spinning stole most of the CPU: bench/bot_load.py measured p99 17.5 s at 5 msg/s
# with the default policy and 188 ms with PASSIVE. It must be set before torch starts its thread pool;
# an environment that sets its own policy keeps it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .adapter import AdapterInfo, read_adapter
from .classifier import Classifier, Prediction
from .config import ModelSettings
from .errors import ModbotError, ModelError
from .labels import LABELS
from .loader import LoadedModel, attach_adapter, load_base, load_model
from .prompt import TEMPLATE_ID, PromptBuilder, normalize_message

__all__ = [
    "LABELS",
    "TEMPLATE_ID",
    "AdapterInfo",
    "Classifier",
    "LoadedModel",
    "ModbotError",
    "ModelError",
    "ModelSettings",
    "Prediction",
    "PromptBuilder",
    "attach_adapter",
    "load_base",
    "load_model",
    "normalize_message",
    "read_adapter",
]
