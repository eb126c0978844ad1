"""modbot's classifier: a causal LM with a LoRA adapter labels messages hate / offensive / neutral.

Knows nothing of Discord or the database. The public API is small and synchronous.
"""

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
