"""Does bf16 or PyTorch's dynamic int8 quantisation make the served classifier faster here, at what cost?

    .venv/bin/python bench/precision.py [--quick] [--data data/seed_val.csv]

The default model with its shipped adapter (if any), served through the fast path (cached instruction
prefix, label-row head, merged LoRA), in three precisions:

- fp32: as loaded (``MODBOT_INFERENCE=fp32``; PyTorch's CPU GEMM is MKL's);
- fp32-packed: ``MODBOT_INFERENCE=auto`` on the CPU, the default: a copy of the merged model whose linear
  layers are packed once for oneDNN, the same fp32 arithmetic;
- bf16: ``MODBOT_INFERENCE=bf16``, a bfloat16 copy of the merged model;
- int8-dynamic: ``torch.ao.quantization.quantize_dynamic`` on every nn.Linear of the merged model
  (int8 weights, activations quantised per call), not offered as a setting unless it wins here.

Batches run interleaved across the precisions, as in bench/classify.py. Besides speed and accuracy it
reports how many labels differ from fp32, the largest probability difference from fp32, and the largest
difference between a message scored alone and in its batch (what batch invariance costs in that precision).
Prints a Markdown table and writes bench/results/precision.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# `model` first: it sets OMP_WAIT_POLICY=PASSIVE (unless set) before torch loads its OpenMP runtime.
import model as _sets_omp_wait_policy  # noqa: E402, F401, I001  # isort: split
import torch  # noqa: E402

from bench.classify import DEFAULT_DATA, QUICK_MESSAGES, _cpu_name, read_messages  # noqa: E402
from model import Classifier, ModelSettings, load_model  # noqa: E402
from model.fast_path import PrefixScorer  # noqa: E402
from model.labels import LABELS  # noqa: E402

RESULTS = REPO / "bench" / "results" / "precision.json"
INVARIANCE_MESSAGES = 16


class Int8Dynamic:
    """The merged model with its linear layers dynamically quantised to int8, scored through the prefix cache."""

    def __init__(self, loaded, prompts):
        model = copy.deepcopy(loaded.model)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.prompts = prompts
        self.scorer = PrefixScorer(model, prompts.prefix, prompts.label_ids, loaded.tokenizer.pad_token_id,
                                   loaded.device)

    def probabilities(self, texts: list[str]) -> torch.Tensor:
        tails = [[*p.message, *p.suffix] for p in map(self.prompts.encode, texts)]
        return self.scorer.score(tails).softmax(-1)


class Served:
    def __init__(self, classifier: Classifier):
        self.classifier = classifier

    def probabilities(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[p.probabilities[label] for label in LABELS] for p in self.classifier.classify(texts)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help=f"only the first {QUICK_MESSAGES} messages")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    texts, gold = read_messages(args.data, QUICK_MESSAGES if args.quick else None)
    settings = ModelSettings.from_env()
    loaded = load_model(settings)
    fp32 = Classifier(loaded, batch_size=args.batch_size, inference="fp32")
    # The other classifiers serve copies; this one merges its adapter into ``loaded`` in place (after warm-up),
    # so int8 gets an unmerged model to copy from below, and then merges its own copy.
    ways = {
        "int8-dynamic": Int8Dynamic(loaded, fp32.prompts),
        "fp32": Served(fp32),
        "fp32-packed": Served(Classifier(loaded, batch_size=args.batch_size, inference="auto")),
        "bf16": Served(Classifier(loaded, batch_size=args.batch_size, inference="bf16")),
    }
    print(f"model {fp32.model_name}, adapter {fp32.adapter_version}, {len(texts)} messages, "
          f"{torch.get_num_threads()} threads, {_cpu_name()}", file=sys.stderr)
    for way in ways.values():
        way.probabilities(texts[:2])  # warm-up: prefix caches, merges, first allocations
    ways = {name: ways[name] for name in ("fp32", "fp32-packed", "bf16", "int8-dynamic")}

    order = sorted(range(len(texts)), key=lambda i: len(fp32.prompts.encode(texts[i])))
    seconds = dict.fromkeys(ways, 0.0)
    probs = {name: torch.zeros(len(texts), len(LABELS)) for name in ways}
    for start in range(0, len(order), args.batch_size):
        batch = order[start : start + args.batch_size]
        for name, way in ways.items():
            began = time.perf_counter()
            probs[name][batch] = way.probabilities([texts[i] for i in batch])
            seconds[name] += time.perf_counter() - began
        print(f"  {min(start + args.batch_size, len(order))}/{len(order)}", file=sys.stderr, flush=True)

    # Batch invariance: the first batch's messages again, one at a time.
    first = order[:INVARIANCE_MESSAGES]
    alone = {name: torch.cat([way.probabilities([texts[i]]) for i in first]) for name, way in ways.items()}

    gold_index = torch.tensor([LABELS.index(label) for label in gold])
    results = []
    for name in ways:
        labels = probs[name].argmax(-1)
        results.append({
            "name": name,
            "messages_per_s": round(len(texts) / seconds[name], 2),
            "ratio": round(seconds["fp32"] / seconds[name], 2),
            "accuracy": round((labels == gold_index).float().mean().item(), 4),
            "labels_changed": int((labels != probs["fp32"].argmax(-1)).sum()),
            "max_probability_diff": round((probs[name] - probs["fp32"]).abs().max().item(), 4),
            "batch_vs_alone_max_diff": float(f"{(alone[name] - probs[name][first]).abs().max().item():.2g}"),
        })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("| precision | messages/s | vs fp32 | accuracy | labels changed vs fp32 | max prob. diff vs fp32 "
          "| batch vs alone, max diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['name']} | {r['messages_per_s']:.1f} | {r['ratio']:.2f}x | {100 * r['accuracy']:.1f}% | "
              f"{r['labels_changed']}/{len(texts)} | {r['max_probability_diff']:.3f} | {r['batch_vs_alone_max_diff']:.1g} |")
    print(f"\n{len(texts)} messages; model {fp32.model_name}, adapter {fp32.adapter_version}; {_cpu_name()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}. Wrote {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
