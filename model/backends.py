"""Which backend runs the model: ``create_backend(settings)`` is the one place that chooses.

Torch-free: the module that builds the chosen backend is imported only when it is built, so a bot whose
model runs elsewhere never imports torch.
"""

from __future__ import annotations

from .backend import InferenceBackend
from .config import ModelSettings


def create_backend(settings: ModelSettings) -> InferenceBackend:
    """The backend that serves ``settings``' model, as MODBOT_BACKEND chooses: ``local``, the base model loaded
    once in this process; ``ray``, the Ray Serve application MODBOT_RAY_APP at RAY_ADDRESS (`modbot serve`),
    reached by a thin client that loads no model.

    Every caller goes through this function, so none of them changes when a backend is added.
    """
    if settings.backend == "ray":
        from .ray_backend import RayBackend

        return RayBackend.from_settings(settings)
    from .local_backend import LocalBackend

    return LocalBackend.from_settings(settings)
