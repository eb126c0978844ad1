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


def most_severe(rows) -> int:
    """Which of several probability rows (in LABELS order) decides a message read in parts.

    The part with the most severe label (hate, then offensive, then neutral; LABELS is in that order)
    decides, and among parts with that label the most confident one. When every part is neutral, the
    least neutral one decides, so a threshold below 0.5 still sees the most suspicious part.
    """

    def key(index: int) -> tuple[int, float]:
        row = rows[index]
        label = max(range(len(row)), key=row.__getitem__)
        confidence = row[label]
        return (label, confidence if LABELS[label] == "neutral" else -confidence)

    return min(range(len(rows)), key=key)
