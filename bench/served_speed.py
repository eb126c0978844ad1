"""Served speed against the previous release: does reading messages more carefully cost short messages anything?

    .venv/bin/python bench/served_speed.py [--baseline COMMIT] [--rounds 3] [--data data/seed_val.csv]

This release normalises every message against encoding tricks, states the labelling guide in a longer
instruction and reads long messages in windows. For messages under the window none of that should cost
much: the instruction's keys and values are cached, and the normalisation rules are string work.

The baseline is the previous release's code and shipped adapter, checked out from git (``--baseline``, by
default the last commit before these changes) into a temporary worktree. Each round runs the baseline and
this checkout in their own processes, one after the other, on the same messages: load the default model and
its shipped adapter, warm up, then classify the messages in batches of 16 as the bot does. The table gives
each side's best round (the least disturbed by other jobs on a shared machine) and every round's figures are
in bench/results/served_speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "served_speed.json"
# The last commit whose served path had prompt v1, no normalisation rules and head-and-tail truncation.
PREVIOUS_RELEASE = "ea4d76a"

# Run in a fresh interpreter with the checkout to measure first on sys.path.
MEASURE = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
import model  # sets OMP_WAIT_POLICY before torch starts
from model import Classifier, ModelSettings
from training.formats import read_examples
texts = [e.text for e in read_examples(sys.argv[2])]
classifier = Classifier.from_settings(ModelSettings(device="cpu", quantization="none"))
classifier.classify(texts[:32])  # warm up: serving copy, prefix cache
latencies, started = [], time.perf_counter()
for start in range(0, len(texts), 16):
    batch = texts[start:start + 16]
    t = time.perf_counter()
    classifier.classify(batch)
    latencies += [time.perf_counter() - t] * len(batch)
total = time.perf_counter() - started
latencies.sort()
print(json.dumps({"adapter": classifier.adapter_version, "messages": len(texts),
                  "messages_per_s": len(texts) / total, "p50_ms": 1000 * statistics.median(latencies),
                  "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}))
"""


def measure(checkout: Path, data: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", MEASURE, str(checkout), str(data)], capture_output=True,
                            text=True, cwd=checkout, timeout=900)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"error: measuring {checkout} failed: {tail[0]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=PREVIOUS_RELEASE, help="git commit of the previous release")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "seed_val.csv")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"error: {args.data}: no such file.", file=sys.stderr)
        return 1
    data = args.data.resolve()
    with tempfile.TemporaryDirectory(prefix="modbot-baseline-") as tmp:
        baseline = Path(tmp) / "checkout"
        added = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(baseline), args.baseline],
                               capture_output=True, text=True)
        if added.returncode != 0:
            print(f"error: cannot check out {args.baseline}: {added.stderr.strip()}", file=sys.stderr)
            return 1
        try:
            rounds = []
            for number in range(1, args.rounds + 1):
                before, now = measure(baseline, data), measure(REPO, data)
                rounds.append({"round": number, "previous": before, "this": now})
                print(f"round {number}: previous {before['messages_per_s']:.1f} msg/s, "
                      f"this release {now['messages_per_s']:.1f} msg/s", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(baseline)],
                           capture_output=True)
    best_before = max((r["previous"] for r in rounds), key=lambda r: r["messages_per_s"])
    best_now = max((r["this"] for r in rounds), key=lambda r: r["messages_per_s"])
    ratios = [r["this"]["messages_per_s"] / r["previous"]["messages_per_s"] for r in rounds]
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "baseline_commit": args.baseline,
        "data": str(args.data),
        "rows": [{"name": f"previous release ({args.baseline}, adapter {best_before['adapter']})", **best_before},
                 {"name": f"this release (adapter {best_now['adapter']})", **best_now}],
        "ratio": best_now["messages_per_s"] / best_before["messages_per_s"],
        "ratio_per_round_median": statistics.median(ratios),
        "rounds": rounds,
    }
    print("| served path | messages/s | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |")
    for row in summary["rows"]:
        print(f"| {row['name']} | {row['messages_per_s']:.1f} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} |")
    print(f"\nthis release / previous (best rounds): {summary['ratio']:.2f}x; "
          f"median of the per-round ratios: {summary['ratio_per_round_median']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
