"""The classifier: texts in, one Prediction per text out. Synchronous; the bot calls it from a worker thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from .config import ModelSettings
from .labels import LABELS
from .loader import LoadedModel, load_model
from .prompt import PromptBuilder, has_content
from .scoring import label_log_likelihoods

log = logging.getLogger(__name__)

ZERO_SHOT = "zero-shot"


@dataclass(frozen=True)
class Prediction:
    """A label with the probability of each of the three labels and the versions that produced it."""

    label: str
    probabilities: dict[str, float]
    model: str
    adapter_version: str
    skipped: bool = False  # nothing to classify: no model call was made
    truncated: bool = False  # the message was longer than the token budget
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "model": self.model,
            "adapter_version": self.adapter_version,
            "skipped": self.skipped,
            "truncated": self.truncated,
        }


class Classifier:
    """Labels messages hate / offensive / neutral by scoring each label as the prompt's completion."""

    def __init__(self, loaded: LoadedModel, batch_size: int = 16, max_message_tokens: int | None = None) -> None:
        self.loaded = loaded
        self.batch_size = batch_size
        budget = max_message_tokens or 256
        if loaded.adapter is not None and loaded.adapter.max_message_tokens:
            budget = loaded.adapter.max_message_tokens  # serve with the budget it was trained with
        examples = loaded.adapter.few_shot_examples if loaded.adapter else ()
        self.prompts = PromptBuilder(loaded.tokenizer, max_message_tokens=budget, examples=examples)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> Classifier:
        return cls(load_model(settings), batch_size=settings.batch_size, max_message_tokens=settings.max_message_tokens)

    @property
    def model_name(self) -> str:
        return self.loaded.model_name

    @property
    def adapter_version(self) -> str:
        return self.loaded.adapter_version or ZERO_SHOT

    @property
    def is_zero_shot(self) -> bool:
        return self.loaded.adapter is None

    def classify(self, texts: Sequence[str | None]) -> list[Prediction]:
        """One Prediction per text, in order. Texts with nothing in them are skipped (neutral, no model call)."""
        with self._lock:
            results: list[Prediction | None] = [None] * len(texts)
            pending = []
            for index, text in enumerate(texts):
                if not has_content(text):
                    results[index] = self._skipped()
                else:
                    pending.append((index, self.prompts.encode(text)))
            # Similar lengths share a batch, so less of each batch is padding.
            pending.sort(key=lambda item: len(item[1]))
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                scores = label_log_likelihoods(
                    self.loaded.model,
                    [prompt.ids for _, prompt in chunk],
                    self.prompts.label_ids,
                    self.loaded.tokenizer.pad_token_id,
                    self.loaded.device,
                )
                probabilities = scores.softmax(dim=-1).tolist()
                for (index, prompt), row in zip(chunk, probabilities, strict=True):
                    results[index] = self._prediction(row, truncated=prompt.truncated)
            return results  # type: ignore[return-value]

    def _prediction(self, row: Sequence[float], truncated: bool) -> Prediction:
        probabilities = {label: float(p) for label, p in zip(LABELS, row, strict=True)}
        label = max(probabilities, key=probabilities.__getitem__)
        return Prediction(label, probabilities, self.model_name, self.adapter_version, truncated=truncated)

    def _skipped(self) -> Prediction:
        probabilities = {label: 1.0 if label == "neutral" else 0.0 for label in LABELS}
        return Prediction("neutral", probabilities, self.model_name, self.adapter_version, skipped=True)
