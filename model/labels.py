"""The label set every part of modbot agrees on."""

LABELS: tuple[str, ...] = ("hate", "offensive", "neutral")

# Labels that a moderator may be asked to review (neutral never is).
FLAGGABLE: tuple[str, ...] = ("hate", "offensive")


def parse_label(value: str) -> str:
    """Return the canonical label for ``value`` (case and surrounding space ignored), or raise ValueError."""
    label = value.strip().lower()
    if label == "neither":  # the Davidson dataset's name for neutral
        label = "neutral"
    if label not in LABELS:
        raise ValueError(f"unknown label {value!r}; expected one of {', '.join(LABELS)}")
    return label
