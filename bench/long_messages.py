"""Long messages: what it costs the classifier to read every part of a long message, against short ones.

    .venv/bin/python bench/long_messages.py [--messages N] [--threads N] [--adapter DIR|none]

Builds N realistic chat messages of each length, ~60, 500, 1,000, 2,000 and 4,000 characters (Discord's
limit), from the harmless filler sentences of bench/evasion_tricks.py, plus two worst cases of 4,000
characters that cost many tokens per character: emoji, and CJK ideographs. Each row is classified through
``Classifier.classify`` in batches of the classifier's batch size, the rows interleaved batch by batch so
background load on a shared machine hits every row alike. Reports messages/s, seconds per message and the
ratio of each row's per-message time to the ~60-character row of the same run, with the tokens per message
(the raw text, by the model's tokenizer) and how many predictions say the message was truncated.
Prints a Markdown table and writes bench/results/long_messages.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# `model` first: it sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads its OpenMP runtime.
import model as _sets_omp_wait_policy  # noqa: E402, F401, I001  # isort: split
import torch  # noqa: E402

from bench.classify import _cpu_name  # noqa: E402
from bench.evasion import settings_from_args  # noqa: E402
from bench.evasion_tricks import FILLER, filler  # noqa: E402
from model import Classifier  # noqa: E402
from model.errors import ModbotError  # noqa: E402

RESULTS = REPO / "bench" / "results" / "long_messages.json"
LENGTHS = (60, 500, 1000, 2000, 4000)
DISCORD_LIMIT = 4000
EMOJI = [chr(c) for c in range(0x1F600, 0x1F650)] + [chr(c) for c in range(0x1F300, 0x1F321)]
CJK = [chr(c) for c in range(0x4E00, 0x9FA6)]


def chat_message(rng: random.Random, chars: int) -> str:
    """Filler sentences cut to about ``chars`` characters (a single short sentence for the ~60 row)."""
    if chars <= 80:
        return rng.choice([s for s in FILLER if 40 <= len(s) <= 70])
    return filler(rng, chars)[:chars].rsplit(" ", 1)[0]


def build_rows(n: int, seed: int) -> dict[str, list[str]]:
    rng = random.Random(seed)
    rows = {f"chat ~{chars} chars": [chat_message(rng, chars) for _ in range(n)] for chars in LENGTHS}
    rows[f"emoji {DISCORD_LIMIT} chars"] = ["".join(rng.choices(EMOJI, k=DISCORD_LIMIT)) for _ in range(n)]
    rows[f"CJK {DISCORD_LIMIT} chars"] = ["".join(rng.choices(CJK, k=DISCORD_LIMIT)) for _ in range(n)]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=32, help="messages per length (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: what torch is given)")
    parser.add_argument("--adapter", default=None,
                        help="adapter directory, or none for zero-shot (default: MODBOT_ADAPTER, else the shipped one)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        classifier = Classifier.from_settings(settings_from_args(args))
    except ModbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    rows = build_rows(args.messages, args.seed)
    tokenizer = classifier.loaded.tokenizer
    batch = classifier.batch_size
    print(f"model {classifier.model_name}, adapter {classifier.adapter_version}, {args.messages} messages a row, "
          f"batches of {batch}, {torch.get_num_threads()} threads, {_cpu_name()}", file=sys.stderr)
    for texts in rows.values():  # warm-up, untimed: first calls allocate and build the serving model
        classifier.classify(texts[:2])

    seconds = dict.fromkeys(rows, 0.0)
    truncated = dict.fromkeys(rows, 0)
    for start in range(0, args.messages, batch):
        for name, texts in rows.items():
            began = time.perf_counter()
            predictions = classifier.classify(texts[start : start + batch])
            seconds[name] += time.perf_counter() - began
            truncated[name] += sum(p.truncated for p in predictions)
        print(f"  {min(start + batch, args.messages)}/{args.messages}", file=sys.stderr, flush=True)

    short = seconds[next(iter(rows))] / args.messages
    results = []
    for name, texts in rows.items():
        per_message = seconds[name] / args.messages
        results.append({
            "row": name,
            "chars": round(sum(map(len, texts)) / len(texts)),
            "tokens": round(sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts) / len(texts)),
            "messages_per_s": round(args.messages / seconds[name], 2),
            "s_per_message": round(per_message, 4),
            "vs_short": round(per_message / short, 2),
            "truncated": truncated[name],
        })
    output = {"model": classifier.model_name, "adapter_version": classifier.adapter_version,
              "date": datetime.now(UTC).isoformat(timespec="seconds"), "messages_per_row": args.messages,
              "batch_size": batch, "threads": torch.get_num_threads(), "cpu": _cpu_name(), "rows": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")

    lines = ["| messages | chars | tokens | messages/s | s per message | vs ~60 chars | truncated |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['row']} | {r['chars']} | {r['tokens']} | {r['messages_per_s']:.1f} | "
                     f"{r['s_per_message']:.3f} | {r['vs_short']:.1f}x | {r['truncated']}/{args.messages} |")
    print("\n".join(lines))
    print(f"\nModel {classifier.model_name}, adapter {classifier.adapter_version}; {_cpu_name()}, "
          f"{torch.get_num_threads()} torch threads. Wrote {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
