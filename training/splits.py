"""Building the train / validation / test sets of a run from its arguments, with a report of each."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .args import TrainArgs
from .dataset import (
    class_counts,
    examples_sha256,
    format_counts,
    merge_sources,
    read_keys,
    require_every_class,
    stratified_split,
    take_per_class,
    without,
)
from .formats import Example

log = logging.getLogger(__name__)


@dataclass
class Splits:
    train: list[Example]
    val: list[Example]
    test: list[Example] = field(default_factory=list)
    evals: dict[str, list[Example]] = field(default_factory=dict)  # name -> examples, from --eval-on
    report: dict = field(default_factory=dict)  # recorded in the adapter's metadata

    def describe(self) -> list[str]:
        lines = [f"{name}: {format_counts(counts)}" for name, counts in self.report["counts"].items()]
        merge = self.report["merge"]
        lines.append(
            f"merged {merge['examples']} distinct messages: {merge['duplicates']} duplicates dropped, "
            f"{merge['overrides']} labels overridden by a later source, {merge['empty']} empty messages skipped"
        )
        if self.report["left_out"]:
            lines.append(f"left out of training: {self.report['left_out']} messages (validation, --eval-on, --exclude)")
        return lines


def build_splits(args: TrainArgs) -> Splits:
    merged = merge_sources(args.data)
    pool = merged.examples
    evals = {_name(path): merge_sources([path]).examples for path in args.eval_on}
    val_given = merge_sources(args.val).examples if args.val else None
    # Whatever is measured must never be trained on.
    keys = read_keys([*args.exclude, *args.eval_on, *args.val])
    pool, left_out = without(pool, keys)

    test: list[Example] = []
    if args.test_per_class:
        test, pool = take_per_class(pool, args.test_per_class, seed=args.seed + 101)
    if val_given is not None:
        val = val_given
    elif args.val_per_class:
        val, pool = take_per_class(pool, args.val_per_class, seed=args.seed + 202)
    else:
        pool, val = stratified_split(pool, args.val_fraction, seed=args.seed + 202)
    train = take_per_class(pool, args.per_class, seed=args.seed)[0] if args.per_class else pool

    sources = [*args.data, *args.val]
    require_every_class(train, "training", sources)
    require_every_class(val, "validation", sources)
    counts = {"train": class_counts(train), "val": class_counts(val)}
    if test:
        counts["test"] = class_counts(test)
    for name, examples in evals.items():
        counts[name] = class_counts(examples)
    report = {
        "sources": merged.sources,
        "val_sources": [str(path) for path in args.val],
        "eval_on": [str(path) for path in args.eval_on],
        "exclude": [str(path) for path in args.exclude],
        "merge": {"examples": len(merged.examples), "duplicates": merged.duplicates,
                  "overrides": merged.overrides, "empty": merged.empty},
        "left_out": left_out,
        "counts": counts,
        "train_sha256": examples_sha256(train),
    }
    return Splits(train, val, test, evals, report)


def _name(path: Path) -> str:
    return Path(path).stem
