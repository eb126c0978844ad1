"""Which backend runs the model: ``create_backend(settings)`` is the one place that chooses.

Torch-free: the module that builds the chosen backend is imported only when it is built, so a bot whose
model runs elsewhere never imports torch.
"""

from __future__ import annotations

from .backend import InferenceBackend
from .config import ModelSettings


def create_backend(settings: ModelSettings) -> InferenceBackend:
    """The backend that serves ``settings``' model: today the base model loaded once in this process.

    Another kind of backend (MODBOT_BACKEND=ray, a Ray Serve application) is chosen here, by the setting
    that names it; every caller goes through this function, so none of them changes when one is added.
    """
    from .local_backend import LocalBackend

    return LocalBackend.from_settings(settings)
