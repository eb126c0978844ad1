"""Classification speed: the reference experiment's generate() against label scoring and the serving fast path.

    .venv/bin/python bench/classify.py [--quick] [--data data/seed_val.csv]

Loads the default model with its shipped adapter when there is one (``ModelSettings()`` from the
environment, as the bot does), then classifies the same messages four ways:

1. the reference's way: one message at a time, ``generate()`` the label as text (greedy, 3 new tokens)
   and parse it (a first word that is not a label counts as wrong);
2. one message at a time, label scoring in one forward pass;
3. batched label scoring (batches sorted by length, full prompts);
4. the classifier as served: batched, cached instruction prefix, label rows of the head, merged LoRA,
   and the serving precision of MODBOT_INFERENCE (default auto: fp32 with oneDNN-packed linear layers).

The rows run interleaved, batch by batch (row 1 takes the messages of batch i one at a time, then row 2,
then rows 3 and 4 the whole batch), so background load on a shared machine hits every row alike.
A message's latency is the wall time of the call that labelled it: its own call in rows 1 and 2, its
batch's in rows 3 and 4. Prints a Markdown table and writes bench/results/classify.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# `model` first: it sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads its OpenMP runtime.
import model as _sets_omp_wait_policy  # noqa: E402, F401, I001  # isort: split
import torch  # noqa: E402

from bench import percentile  # noqa: E402
from model import Classifier, ModbotError, ModelSettings, load_model  # noqa: E402
from model.labels import LABELS  # noqa: E402
from model.prompt import PromptBuilder  # noqa: E402
from model.scoring import label_log_likelihoods  # noqa: E402

DEFAULT_DATA = REPO / "data" / "seed_val.csv"
RESULTS = REPO / "bench" / "results" / "classify.json"
QUICK_MESSAGES = 50
_WORD = re.compile(r"[a-z]+")
_MODE_NAMES = {"fp32": "", "fp32-packed": " + oneDNN-packed fp32 linears", "bf16": " + bf16"}


@dataclass
class Row:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds, one per message
    total: float = 0.0
    predictions: dict[int, str | None] = field(default_factory=dict)

    def timed(self, indices, call) -> None:
        """Run ``call()`` (which returns one label per index), charging its wall time to each of ``indices``."""
        start = time.perf_counter()
        labels = call()
        elapsed = time.perf_counter() - start
        self.total += elapsed
        for index, label in zip(indices, labels, strict=True):
            self.latencies.append(elapsed)
            self.predictions[index] = label

    def result(self, gold: list[str], baseline: float | None) -> dict:
        per_s = len(self.latencies) / self.total
        ms = sorted(1000 * x for x in self.latencies)
        correct = sum(self.predictions[i] == label for i, label in enumerate(gold))
        return {
            "name": self.name,
            "messages_per_s": round(per_s, 2),
            "p50_ms": round(percentile(ms, 50), 1),
            "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "ratio": round(per_s / baseline, 2) if baseline else 1.0,
            "accuracy": round(correct / len(gold), 4),
        }


def read_messages(path: Path, limit: int | None) -> tuple[list[str], list[str]]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [(row["text"], row["label"].strip()) for row in csv.DictReader(handle)]
    except OSError as exc:
        raise ModbotError(f"--data {path}: cannot be read ({exc.strerror or exc}).") from None
    except (KeyError, AttributeError, UnicodeDecodeError, csv.Error):
        raise ModbotError(f"--data {path}: not a CSV with text and label columns.") from None
    rows = rows[:limit] if limit else rows
    return [text for text, _ in rows], [label for _, label in rows]


def parse_generated(text: str) -> str | None:
    """The reference's parsing: the first word of the generated text, if it is a label."""
    match = _WORD.search(text.lower())
    return match.group(0) if match and match.group(0) in LABELS else None


class Reference:
    """Rows 1-3, on the model as loaded (a PeftModel with its adapter unmerged, if there is one), same prompts."""

    def __init__(self, loaded, builder: PromptBuilder):
        self.loaded = loaded
        self.builder = builder  # the served classifier's: same template, few-shot examples and token budget
        self.pad_id = loaded.tokenizer.pad_token_id

    @torch.inference_mode()
    def generate(self, text: str) -> list[str | None]:
        ids = torch.tensor([self.builder.encode(text).ids], device=self.loaded.device)
        out = self.loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=3,
                                         do_sample=False, pad_token_id=self.pad_id)
        return [parse_generated(self.loaded.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))]

    def score(self, texts: list[str]) -> list[str]:
        prompts = [self.builder.encode(text).ids for text in texts]
        scores = label_log_likelihoods(self.loaded.model, prompts, self.builder.label_ids, self.pad_id,
                                       self.loaded.device)
        return [LABELS[i] for i in scores.argmax(-1).tolist()]


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except ModbotError as exc:  # a missing data file, a model that cannot be loaded: one line, no traceback
        print(f"bench/classify.py: error: {exc}", file=sys.stderr)
        return 2


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="label,text CSV (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help=f"only the first {QUICK_MESSAGES} messages")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--inference", choices=("auto", "fp32", "bf16"), default=None,
                        help="how row 4 serves the model (default: MODBOT_INFERENCE, else auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: what torch is given)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    texts, gold = read_messages(args.data, QUICK_MESSAGES if args.quick else None)
    settings = ModelSettings.from_env()
    if args.inference:
        settings = replace(settings, inference=args.inference)
    # Two loads: row 4 merges its LoRA into its own copy's weights, rows 1-3 keep theirs unmerged.
    classifier = Classifier.from_settings(settings)
    reference = Reference(load_model(settings), classifier.prompts)
    adapter = classifier.adapter_version
    print(f"model {classifier.model_name}, adapter {adapter}, row 4 serves {settings.inference}, "
          f"{len(texts)} messages from {args.data}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, {_cpu_name()}", file=sys.stderr)

    classifier.classify(texts[:1])  # builds the serving model, so that row 4 can say what it is
    mode = classifier._serving.mode
    rows = [
        Row("1. reference: generate() the label, one message at a time"),
        Row("2. label scoring, one message at a time"),
        Row(f"3. label scoring, batches of {args.batch_size} sorted by length"),
        Row(f"4. served: batches + cached instruction prefix + label-row head"
            f"{' + merged LoRA' if not classifier.is_zero_shot else ''}"
            f"{_MODE_NAMES.get(mode, ', ' + mode)}"),
    ]
    # Warm-up, untimed: first calls allocate, and row 4 builds its prefix cache and merges its adapter.
    reference.generate(texts[0])
    reference.score(texts[:2])
    classifier.classify(texts[:2])

    order = sorted(range(len(texts)), key=lambda i: len(reference.builder.encode(texts[i])))
    for start in range(0, len(order), args.batch_size):
        batch = order[start : start + args.batch_size]
        for i in batch:
            rows[0].timed([i], lambda i=i: reference.generate(texts[i]))
        for i in batch:
            rows[1].timed([i], lambda i=i: reference.score([texts[i]]))
        rows[2].timed(batch, lambda batch=batch: reference.score([texts[i] for i in batch]))
        rows[3].timed(batch, lambda batch=batch: [p.label for p in classifier.classify([texts[i] for i in batch])])
        print(f"  {min(start + args.batch_size, len(order))}/{len(order)}", file=sys.stderr, flush=True)

    baseline = len(rows[0].latencies) / rows[0].total
    results = [row.result(gold, None if n == 0 else baseline) for n, row in enumerate(rows)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print(markdown_table(results))
    unparsed = sum(label is None for label in rows[0].predictions.values())
    same = sum(len({rows[n].predictions[i] for n in (1, 2, 3)}) == 1 for i in range(len(texts)))
    print(f"\n{len(texts)} messages; model {classifier.model_name}, adapter {adapter}; {_cpu_name()}, "
          f"{torch.get_num_threads()} torch threads (OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), "
          f"torch {torch.__version__}, Python {platform.python_version()}. "
          f"Row 1 output unparseable for {unparsed}; rows 2-4 give the same label for {same}/{len(texts)}. "
          f"Wrote {args.out}.")
    return 0


def markdown_table(results: list[dict]) -> str:
    lines = ["| way | messages/s | p50 ms | p95 ms | p99 ms | vs row 1 | accuracy |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['name']} | {r['messages_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                     f"{r['p99_ms']:.0f} | {r['ratio']:.2f}x | {100 * r['accuracy']:.1f}% |")
    return "\n".join(lines)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({_cores()} cores)"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


if __name__ == "__main__":
    sys.exit(main())
