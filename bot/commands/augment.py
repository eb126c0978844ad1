"""`modbot augment`: write the training augmentation (templated, obfuscated, injected examples) as JSONL."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from model.errors import ModbotError
from model.labels import LABELS

from .corrections import write_atomically

# The extensions training.formats reads as JSONL; anything else would be read back as a CSV.
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "augment",
        help="write augmentation examples that teach the labelling guide",
        description="Write templated examples for the labelling guide's rules and borderline cases, "
        "hate and offensive messages with spelling tricks, and hate and offensive messages with fake "
        "instructions, one JSON object per line: text, label, category. Train on the file together with "
        "your other data (modbot train --data ... --data FILE).",
    )
    parser.add_argument("--out", type=Path, required=True, help="the JSONL file to write")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="the same seed writes the same file (default 0)")
    parser.add_argument("--per-category", type=int, default=100, metavar="N",
                        help="templated examples per category (default 100)")
    parser.add_argument("--category", action="append", default=[], metavar="NAME=N", dest="categories",
                        help="N templated examples of category NAME instead of --per-category (repeatable; "
                             "0 leaves it out)")
    parser.add_argument("--wide-vocabulary", action="store_true",
                        help="draw templated examples from the wider lists of groups and names as well as the "
                             "core ones (training/augment.py: WIDER_GROUPS, WIDER_NAMES)")
    parser.add_argument("--obfuscate-from", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                        help="labelled files whose hate and offensive messages are also obfuscated and "
                             "injected (any format `modbot train` reads; their own lines are not written)")
    parser.add_argument("--obfuscate-count", type=int, metavar="N",
                        help="obfuscated variants to write (default 4 x --per-category)")
    parser.add_argument("--inject-count", type=int, metavar="N",
                        help="injection variants to write (default 2 x --per-category)")
    parser.set_defaults(handler=run_augment)


def run_augment(args: argparse.Namespace) -> int:
    from training import augment
    from training.formats import read_examples

    obfuscate_count = 4 * args.per_category if args.obfuscate_count is None else args.obfuscate_count
    inject_count = 2 * args.per_category if args.inject_count is None else args.inject_count
    for option, value in (("--per-category", args.per_category), ("--obfuscate-count", obfuscate_count),
                          ("--inject-count", inject_count)):
        if value < 0:
            raise ModbotError(f"{option} must be 0 or more, not {value}.")
    if args.out.suffix.lower() not in _JSONL_SUFFIXES:
        raise ModbotError(f"--out {args.out}: the file is JSONL, so its name must end in .jsonl.")

    counts = _category_counts(args.categories, augment.CATEGORY_LABELS)
    vocabulary = augment.WIDE_VOCABULARY if args.wide_vocabulary else augment.CORE_VOCABULARY
    templated = augment.generate_templated(args.seed, args.per_category, counts, vocabulary)
    # Read every file before generating anything, so a bad one fails fast with its own message.
    extra = [example for path in args.obfuscate_from for example in read_examples(path)]
    pool = templated + extra
    if (obfuscate_count or inject_count) and not any(e.label in augment.ATTACK_LABELS for e in pool):
        where = ", ".join(str(path) for path in args.obfuscate_from) or "the templated examples"
        raise ModbotError(f"{where}: no hate or offensive messages to obfuscate or inject into.")
    obfuscated = augment.obfuscate(pool, obfuscate_count, args.seed)
    injected = augment.inject(pool, inject_count, args.seed)

    written = templated + obfuscated + injected
    write_atomically(args.out, [
        json.dumps({"text": e.text, "label": e.label, "category": e.category}, ensure_ascii=False) + "\n"
        for e in written
    ])
    print(_count_table(written))
    short = [(what, made, wanted) for what, made, wanted in (
        ("obfuscated", len(obfuscated), obfuscate_count), ("injected", len(injected), inject_count),
    ) if made < wanted]
    short += [(name, count, counts.get(name, args.per_category)) for name, count in
              Counter(e.category for e in templated).items() if count < counts.get(name, args.per_category)]
    for what, made, wanted in short:
        print(f"modbot: warning: {what}: {made} distinct examples, not {wanted}", file=sys.stderr)
    print(f"modbot: wrote {len(written)} examples to {args.out}", file=sys.stderr)
    return 0


def _category_counts(options: list[str], known: dict[str, str]) -> dict[str, int]:
    """--category NAME=N options as {NAME: N}, with a message naming what is wrong in a bad one."""
    counts = {}
    for option in options:
        name, _, count = option.partition("=")
        if name not in known:
            raise ModbotError(f"--category {option}: no category {name!r}. The categories are: {', '.join(known)}.")
        if not count.isdigit():
            raise ModbotError(f"--category {option}: give a count of 0 or more after '=', e.g. {name}=40.")
        counts[name] = int(count)
    return counts


def _count_table(examples) -> str:
    counts: dict[str, Counter] = {}
    for example in examples:
        counts.setdefault(example.category, Counter())[example.label] += 1
    width = max(len(name) for name in [*counts, "category"])
    rows = [f"{'category':<{width}}  " + "  ".join(f"{label:>9}" for label in LABELS) + "      total"]
    totals: Counter = Counter()
    for name, by_label in counts.items():
        totals.update(by_label)
        rows.append(f"{name:<{width}}  " + "  ".join(f"{by_label[label]:>9}" for label in LABELS)
                    + f"  {sum(by_label.values()):>9}")
    rows.append(f"{'total':<{width}}  " + "  ".join(f"{totals[label]:>9}" for label in LABELS)
                + f"  {sum(totals.values()):>9}")
    return "\n".join(rows)
