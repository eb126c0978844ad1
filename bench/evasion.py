"""Evasion: for each trick that disguises a message, the share of flagged messages it turns neutral.

    .venv/bin/python bench/evasion.py [--limit N] [--data FILE ...] [--threads N] [--adapter DIR|none]

Source messages are the hate and offensive rows of the shipped adapter's held-out files (test.jsonl and
dev.jsonl) and, if it exists, eval/functional.csv; ``--data`` replaces them, ``--limit`` keeps the first N
hate/offensive rows of each. The clean messages are classified first and those the model flags (any label
but neutral) form the base set. Each trick of bench/evasion_tricks.py (seeded, so every run sees the same
text) is applied to the base set, and a message counts as evaded when the disguised text comes back neutral.
Everything goes through ``Classifier.classify``, so this measures whatever the classifier does to its input.

Prints a Markdown table per trick and a summary per family against its target, and writes
bench/results/evasion.json. Exits 0 whatever the figures (it is a measurement), 1 if data is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# `model` first: it sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads its OpenMP runtime.
import model as _sets_omp_wait_policy  # noqa: E402, F401, I001  # isort: split
import torch  # noqa: E402

from bench.evasion_tricks import TARGETS, TRICKS  # noqa: E402
from model import Classifier, ModelSettings  # noqa: E402
from model.errors import ModbotError  # noqa: E402
from training.formats import read_examples  # noqa: E402

ADAPTER_DIR = REPO / "model" / "adapters" / "smollm2-135m"
DEFAULT_DATA = (ADAPTER_DIR / "test.jsonl", ADAPTER_DIR / "dev.jsonl")
FUNCTIONAL = REPO / "eval" / "functional.csv"  # used when it exists
RESULTS = REPO / "bench" / "results" / "evasion.json"


def settings_from_args(args: argparse.Namespace) -> ModelSettings:
    """The bot's settings from the environment, with ``--adapter`` (a directory, or none) in place of its adapter."""
    settings = ModelSettings.from_env()
    if args.adapter is None:
        return settings
    if args.adapter.lower() in ("none", "zero-shot"):
        return replace(settings, adapter=None, use_default_adapter=False)
    return replace(settings, adapter=Path(args.adapter).expanduser(), use_default_adapter=True)


def read_flaggable(paths: list[Path], limit: int | None) -> list[tuple[str, str]]:
    """(source file name, text) of the hate and offensive rows of each file, the first ``limit`` of each."""
    messages = []
    for path in paths:
        rows = [example.text for example in read_examples(path) if example.label != "neutral"]
        messages += [(path.name, text) for text in rows[:limit]]
    return messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, action="append", default=None,
                        help="a labelled file (text/label CSV or JSONL); repeat for several (default: the adapter's "
                             "test.jsonl and dev.jsonl, and eval/functional.csv if it exists)")
    parser.add_argument("--limit", type=int, default=None, help="the first N hate/offensive messages of each file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tricks' random choices (default 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: what torch is given)")
    parser.add_argument("--adapter", default=None,
                        help="adapter directory, or none for zero-shot (default: MODBOT_ADAPTER, else the shipped one)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    paths = args.data or [*DEFAULT_DATA, *([FUNCTIONAL] if FUNCTIONAL.is_file() else [])]
    try:
        messages = read_flaggable(paths, args.limit)
        classifier = Classifier.from_settings(settings_from_args(args))
    except ModbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not messages:
        print(f"error: no hate or offensive messages in {', '.join(map(str, paths))}", file=sys.stderr)
        return 1
    print(f"model {classifier.model_name}, adapter {classifier.adapter_version}, {len(messages)} hate/offensive "
          f"messages from {', '.join(p.name for p in paths)}, {torch.get_num_threads()} threads", file=sys.stderr)

    started = time.perf_counter()
    clean = classifier.classify([text for _, text in messages])
    base = [text for (_, text), p in zip(messages, clean, strict=True) if p.label != "neutral"]
    print(f"flagged clean: {len(base)}/{len(messages)}", file=sys.stderr)

    tricks = []
    for name, (family, trick) in TRICKS.items():
        disguised = [trick(text, random.Random(f"{args.seed}:{name}:{i}")) for i, text in enumerate(base)]
        turned = sum(p.label == "neutral" for p in classifier.classify(disguised))
        share = turned / len(base) if base else 0.0
        tricks.append({"trick": name, "family": family, "simulates": trick.__doc__.strip(), "flagged_clean": len(base),
                       "turned_neutral": turned, "share": round(share, 4), "target": TARGETS[family],
                       "pass": share <= TARGETS[family]})
        print(f"  {name}: {turned}/{len(base)} turned neutral", file=sys.stderr, flush=True)
    families = [family_summary(family, [t for t in tricks if t["family"] == family]) for family in TARGETS]

    result = {
        "model": classifier.model_name,
        "adapter_version": classifier.adapter_version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "sources": {path.name: sum(source == path.name for source, _ in messages) for path in paths},
        "limit_per_source": args.limit,
        "seed": args.seed,
        "messages": len(messages),
        "flagged_clean": len(base),
        "threads": torch.get_num_threads(),
        "seconds": round(time.perf_counter() - started, 1),
        "tricks": tricks,
        "families": families,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    print(markdown_tables(tricks, families))
    print(f"\n{len(base)} of {len(messages)} hate/offensive messages flagged clean; model {classifier.model_name}, "
          f"adapter {classifier.adapter_version}, seed {args.seed}. Wrote {args.out}.")
    return 0


def family_summary(family: str, tricks: list[dict]) -> dict:
    """A family passes when every one of its tricks meets the target; the pooled share is for reference."""
    n = sum(t["flagged_clean"] for t in tricks)
    turned = sum(t["turned_neutral"] for t in tricks)
    worst = max(tricks, key=lambda t: t["share"])
    return {"family": family, "tricks": [t["trick"] for t in tricks], "attempts": n, "turned_neutral": turned,
            "pooled_share": round(turned / n, 4) if n else 0.0, "worst_trick": worst["trick"],
            "worst_share": worst["share"], "target": TARGETS[family], "pass": all(t["pass"] for t in tricks)}


def markdown_tables(tricks: list[dict], families: list[dict]) -> str:
    lines = ["| trick | family | flagged clean | turned neutral | share | target | |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for t in tricks:
        lines.append(f"| {t['trick']} | {t['family']} | {t['flagged_clean']} | {t['turned_neutral']} | "
                     f"{100 * t['share']:.1f}% | <= {100 * t['target']:.0f}% | {'PASS' if t['pass'] else 'FAIL'} |")
    lines += ["", "| family | tricks | turned neutral | pooled share | worst trick | target | |",
              "| --- | ---: | ---: | ---: | --- | ---: | --- |"]
    for f in families:
        lines.append(f"| {f['family']} | {len(f['tricks'])} | {f['turned_neutral']}/{f['attempts']} | "
                     f"{100 * f['pooled_share']:.1f}% | {f['worst_trick']} ({100 * f['worst_share']:.1f}%) | "
                     f"<= {100 * f['target']:.0f}% | {'PASS' if f['pass'] else 'FAIL'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
