"""The contract between the bot and whatever runs the model: in this process, or in a Ray Serve application.

Torch-free, so that a bot whose model runs elsewhere never imports torch. Every method blocks: the bot
calls them from a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from .predictions import Prediction


@dataclass(frozen=True)
class Served:
    """What a backend serves now."""

    backend: str  # "local" or "ray"
    model: str  # the base model's name
    adapter_version: str  # the adapter's version, or "zero-shot"
    adapter_path: Path | None  # the adapter's directory; None for zero-shot


@runtime_checkable
class InferenceBackend(Protocol):
    """Classifies batches with one base model and the adapter version it serves now."""

    @property
    def model_name(self) -> str: ...

    @property
    def adapter_version(self) -> str: ...

    def classify(self, texts: Sequence[str | None]) -> list[Prediction]:
        """One Prediction per text, in order (see model.Classifier.classify)."""
        ...

    def serve_adapter(self, path: Path | None) -> Served:
        """Serve the adapter at ``path`` (None: the base without adapter) from the next batch on.

        Raises model.AdapterError (or ModelError) when it cannot be served; the previous one is then
        still served. Never loads a second base model.
        """
        ...

    def served(self) -> Served:
        """What is served now."""
        ...

    def close(self) -> None:
        """Release what the backend holds (a local model, a connection to Ray)."""
        ...
