"""Turning read examples into the sets training uses: merged, deduplicated, held out, balanced, split.

Every set is a plain list of `Example`; class counts are reported for each one that is used.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model.labels import LABELS
from model.prompt import normalize_message

from .errors import DataError
from .formats import Example, read_examples


def text_key(text: str) -> str:
    """Two messages are the same message when they normalise to the same text (case ignored)."""
    return normalize_message(text).casefold()


@dataclass
class Merged:
    """Deduplicated examples of several sources and what merging them did."""

    examples: list[Example]
    sources: list[dict] = field(default_factory=list)
    duplicates: int = 0  # the same text again with the same label
    overrides: int = 0  # the same text again with another label: the later one was kept
    empty: int = 0  # nothing left to classify once normalised


def merge_sources(paths: Sequence[Path | str]) -> Merged:
    """Read ``paths`` in order; a text seen again replaces the earlier one (later sources win)."""
    by_key: dict[str, Example] = {}
    merged = Merged([])
    for path in paths:
        examples = read_examples(path)
        merged.sources.append({"path": str(path), "rows": len(examples), "sha256": file_sha256(path)})
        for example in examples:
            key = text_key(example.text)
            if not key:
                merged.empty += 1
                continue
            previous = by_key.pop(key, None)  # pop, so a replacement moves to the end
            if previous is not None:
                if previous.label == example.label:
                    merged.duplicates += 1
                else:
                    merged.overrides += 1
            by_key[key] = example
    merged.examples = list(by_key.values())
    return merged


def read_keys(paths: Iterable[Path | str]) -> set[str]:
    """The message keys of every example in ``paths`` (to leave them out of a training set)."""
    return {text_key(example.text) for path in paths for example in read_examples(path)}


def without(examples: Sequence[Example], keys: set[str]) -> tuple[list[Example], int]:
    kept = [example for example in examples if text_key(example.text) not in keys]
    return kept, len(examples) - len(kept)


def class_counts(examples: Iterable[Example]) -> dict[str, int]:
    counts = Counter(example.label for example in examples)
    return {label: counts.get(label, 0) for label in LABELS}


def require_every_class(examples: Sequence[Example], what: str, sources: Sequence[Path | str]) -> None:
    counts = class_counts(examples)
    empty = [label for label, count in counts.items() if count == 0]
    if empty:
        names = ", ".join(str(path) for path in sources)
        raise DataError(
            names,
            f"the {what} set has no {' or '.join(repr(label) for label in empty)} examples "
            f"(counts: {format_counts(counts)}). Every class needs examples: add some, or lower --per-class.",
        )


def by_class(examples: Sequence[Example], seed: int) -> dict[str, list[Example]]:
    groups: dict[str, list[Example]] = {label: [] for label in LABELS}
    for example in examples:
        groups[example.label].append(example)
    rng = random.Random(seed)
    for group in groups.values():
        rng.shuffle(group)
    return groups


def take_per_class(examples: Sequence[Example], per_class: int, seed: int) -> tuple[list[Example], list[Example]]:
    """(up to ``per_class`` random examples of each class, the rest). A short class gives all it has."""
    taken: list[Example] = []
    rest: list[Example] = []
    for group in by_class(examples, seed).values():
        taken += group[:per_class]
        rest += group[per_class:]
    return _shuffled(taken, seed), rest


def stratified_split(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, validation) with each class split in the same proportion; at least one per class held out."""
    train: list[Example] = []
    val: list[Example] = []
    for group in by_class(examples, seed).values():
        if not group:
            continue
        n_val = min(len(group) - 1, max(1, round(len(group) * fraction)))
        val += group[:n_val]
        train += group[n_val:]
    return _shuffled(train, seed), _shuffled(val, seed)


def _shuffled(examples: list[Example], seed: int) -> list[Example]:
    random.Random(seed + 1).shuffle(examples)
    return examples


def to_jsonl(examples: Iterable[Example]) -> str:
    """The text/label JSONL that `read_examples` reads back (the adapter's own copy of its data)."""
    return "".join(json.dumps({"text": e.text, "label": e.label}, ensure_ascii=False) + "\n" for e in examples)


def examples_sha256(examples: Iterable[Example]) -> str:
    return hashlib.sha256(to_jsonl(examples).encode("utf-8")).hexdigest()


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {count}" for label, count in counts.items()) + f" (total {sum(counts.values())})"
