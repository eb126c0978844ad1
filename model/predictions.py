"""What a classification returns. Torch-free: the bot, its storage and remote backends use it without a model."""

from __future__ import annotations

from dataclasses import dataclass, field

ZERO_SHOT = "zero-shot"


@dataclass(frozen=True)
class Prediction:
    """A label with the probability of each of the three labels and the versions that produced it."""

    label: str
    probabilities: dict[str, float]
    model: str
    adapter_version: str
    skipped: bool = False  # nothing to classify: no model call was made
    truncated: bool = False  # some part of the message was not read (see PromptBuilder.encode_windows)
    windows: int = 1  # parts the message was read in; the most severe one gave the label
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
            "windows": self.windows,
        }
