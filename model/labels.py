"""The label set every part of modbot agrees on."""

LABELS: tuple[str, ...] = ("hate", "offensive", "neutral")

# Labels that a moderator may be asked to review (neutral never is).
FLAGGABLE: tuple[str, ...] = ("hate", "offensive")

# docs/labels.md in one sentence each. The instruction prompt states exactly these (so changing one changes
# the prompt: bump model.prompt.TEMPLATE_ID), and the bot shows them to moderators beside the buttons.
DEFINITIONS: dict[str, str] = {
    "hate": "it attacks, dehumanises, threatens or excludes people because of race, ethnicity, national origin, "
            "religion, caste, sex, gender identity, sexual orientation, disability or disease",
    "offensive": "insults, harassment, threats or profanity without that",
    "neutral": "everything else, including describing, belonging to, praising or asking about a group, "
               "and quoting, reporting or condemning hate",
}
GUIDE = "docs/labels.md"


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
