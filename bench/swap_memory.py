"""Memory during an adapter swap against steady state: a second Classifier (the old way) vs LocalBackend.

    .venv/bin/python bench/swap_memory.py [--rounds 2] [--quantization none 8bit] [--data data/seed_val.csv]

Each measurement runs in a fresh interpreter on the CPU with the default model (SmolLM2-135M) and its
shipped adapter: load, classify a batch twice (the serving copy and prefix cache are built, the allocator
settles), then read the resident set size (steady state). Then the swap to a second adapter, the way a
promotion does it, and the first batch after it:

- old: ``Classifier.from_settings`` for the new adapter (bot.retrain.load_classifier: a second base model),
  the old classifier dropped when the new one takes over, then the batch (which builds its serving copy);
- new: ``LocalBackend.serve_adapter`` on the one base, then the batch.

A thread samples the RSS every 2 ms during the swap; the process's maximum RSS (getrusage) is taken too,
in case a spike fell between samples. The second adapter is the shipped one with its LoRA B factors
halved, written to a temporary directory. The labels after the swap must be the same both ways.

The RSS is made to measure memory in use. glibc keeps freed memory for reuse, and loading the model and
building its serving copy free a lot of it, which a second base then fills unseen. So each child runs with
glibc's mmap threshold fixed at its default 128 KiB (large blocks go back to the system when freed, instead
of the threshold rising to 32 MiB) and calls malloc_trim before each steady reading. On the CPU the fp32
checkpoint is memory-mapped (copy-on-write) and its pages count in the RSS only once read, so the old way's
second fp32 base costs little RSS before the old classifier is dropped; its cost shows fully where the
weights are copied as they load, as in the 8-bit rows (and on a GPU).

The GPT-J-6B figures are computed, not measured: parameter counts from its architecture (built on
PyTorch's meta device, no weights), 8-bit linear layers (1 byte a parameter plus fp32 row scales) and
fp16 for the rest, as bitsandbytes loads it for MODBOT_QUANTIZATION=8bit on a GPU (training.memory, the
arithmetic MODBOT_RETRAIN_SERVING=auto decides with), with a LoRA adapter of
the shipped adapter's rank and strategy (its factors fp32 in memory, as PEFT keeps them; fp16 in the file).
A swap on one base holds the second adapter next to the first, and the file's tensors while they are
copied in. The same arithmetic is checked against the measured 8-bit row of the default model.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "swap_memory.json"
SHIPPED = REPO / "model" / "adapters" / "smollm2-135m"
GB = 1e9

# Run in a fresh interpreter: argv = repo, way (old|new), quantization, first adapter, second adapter, data.
MEASURE = r"""
import ctypes, gc, json, os, resource, sys, threading, time
sys.path.insert(0, sys.argv[1])
import model  # sets OMP_WAIT_POLICY before torch starts
from dataclasses import replace
from pathlib import Path
from model import Classifier, LocalBackend, ModelSettings
from training.formats import read_examples

way, quantization, first, second, data = sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5]), sys.argv[6]
PAGE = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE

def max_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.samples, self.running = 0, 0, True
    def run(self):
        while self.running:
            self.peak = max(self.peak, rss())
            self.samples += 1
            time.sleep(0.002)

def settle():
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    time.sleep(0.5)
    return rss()

texts = [e.text for e in read_examples(data)][:32]
settings = ModelSettings(device="cpu", quantization=quantization, adapter=first)
serving = Classifier.from_settings(settings) if way == "old" else LocalBackend.from_settings(settings)
serving.classify(texts)
serving.classify(texts)
steady = settle()
max_before = max_rss()
sampler = Sampler()
sampler.start()
started = time.perf_counter()
if way == "old":
    new = Classifier.from_settings(replace(settings, adapter=second))  # bot.retrain.load_classifier
    serving = new  # bot.service.swap: the previous classifier is dropped
    del new
else:
    serving.serve_adapter(second)
labels = [p.label for p in serving.classify(texts)]
swap_s = time.perf_counter() - started
sampler.running = False
sampler.join()
max_after = max_rss()
peak = max(sampler.peak, max_after if max_after > max_before else 0)
after = settle()
loaded = serving.loaded if way == "old" else serving._classifier.loaded
adapter_bytes = sum(p.numel() * p.element_size() for n, p in loaded.model.named_parameters() if "lora_" in n)
print(json.dumps({"way": way, "quantization": quantization, "adapter": serving.adapter_version,
                  "steady_bytes": steady, "peak_bytes": peak, "after_bytes": after, "swap_s": swap_s,
                  "samples": sampler.samples, "adapter_bytes_in_memory": adapter_bytes, "labels": labels}))
"""


def measure(way: str, quantization: str, first: Path, second: Path, data: Path) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    result = subprocess.run([sys.executable, "-c", MEASURE, str(REPO), way, quantization, str(first), str(second),
                             str(data)], capture_output=True, text=True, cwd=REPO, timeout=1200, env=env)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"error: measuring the {way} way ({quantization}) failed: {tail[0]}")
    row = json.loads(result.stdout.strip().splitlines()[-1])
    row["ratio"] = row["peak_bytes"] / row["steady_bytes"]
    return row


def second_adapter(directory: Path) -> Path:
    """The shipped adapter with its LoRA B factors halved: another version of the same shape."""
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(SHIPPED, directory)
    weights = directory / "adapter_model.safetensors"
    state = load_file(str(weights))
    save_file({name: t * 0.5 if "lora_B" in name else t for name, t in state.items()}, str(weights))
    meta_path = directory / "modbot_adapter.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["version"] = f"{meta['version']}-halved"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return directory


def gptj_figures() -> dict:
    """GPT-J-6B in 8-bit with a LoRA adapter of the shipped rank: bytes at steady state and during a swap."""
    import torch
    from transformers import GPTJConfig, GPTJForCausalLM

    from training.memory import base_bytes, model_size
    from training.strategies import target_modules

    config = json.loads((SHIPPED / "adapter_config.json").read_text(encoding="utf-8"))
    meta = json.loads((SHIPPED / "modbot_adapter.json").read_text(encoding="utf-8"))
    rank = int(config["r"])
    with torch.device("meta"):
        gptj = GPTJForCausalLM(GPTJConfig())  # GPTJConfig's defaults are EleutherAI/gpt-j-6b's
    targets = set(target_modules(gptj, meta["strategy"]))
    size = model_size(gptj)  # the linear layers but the head (which bitsandbytes keeps) in 8-bit, the rest fp16
    total, int8 = size.parameters, size.linear_parameters
    lora = sum(rank * (module.in_features + module.out_features) for name, module in gptj.named_modules()
               if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
               and name.rsplit(".", 1)[-1] in targets)
    base = base_bytes(size, "8bit", "cuda")  # the retraining job's estimate uses the same arithmetic
    adapter_memory, adapter_file = lora * 4, lora * 2
    steady = base + adapter_memory
    # A swap holds the second adapter next to the first, and its file's tensors while they are copied in.
    new_peak = steady + adapter_memory + adapter_file
    old_peak = steady + base + adapter_memory + adapter_file  # the old way loads a second base as well
    return {"parameters": total, "linear_8bit_parameters": int8, "lora_rank": rank, "lora_strategy": meta["strategy"],
            "lora_targets": sorted(targets), "lora_parameters": lora, "base_bytes": base,
            "adapter_bytes_in_memory": adapter_memory, "adapter_file_bytes": adapter_file, "steady_bytes": steady,
            "old_peak_bytes": old_peak, "old_ratio": old_peak / steady, "new_peak_bytes": new_peak,
            "new_ratio": new_peak / steady}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quantization", nargs="+", default=["none", "8bit"], choices=["none", "8bit"])
    parser.add_argument("--data", type=Path, default=REPO / "data" / "seed_val.csv")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"error: {args.data}: no such file.", file=sys.stderr)
        return 1
    rounds = []
    with tempfile.TemporaryDirectory(prefix="modbot-swap-") as tmp:
        second = second_adapter(Path(tmp) / "halved")
        file_bytes = (second / "adapter_model.safetensors").stat().st_size
        for number in range(1, args.rounds + 1):
            for quantization in args.quantization:
                for way in ("old", "new"):
                    row = measure(way, quantization, SHIPPED, second, args.data.resolve())
                    rounds.append({"round": number, **row})
                    print(f"round {number}, {quantization}, {way} way: steady {row['steady_bytes'] / GB:.2f} GB, "
                          f"peak {row['peak_bytes'] / GB:.2f} GB ({row['ratio']:.2f}x), {row['swap_s']:.1f} s",
                          file=sys.stderr)
    rows = []
    for quantization in args.quantization:
        by_way = {}
        for way in ("old", "new"):
            runs = [r for r in rounds if r["quantization"] == quantization and r["way"] == way]
            worst = max(runs, key=lambda r: r["ratio"])  # the worst round: the bound to plan for
            by_way[way] = {"name": f"{way} way, {quantization}", **worst}
            rows.append(by_way[way])
        if by_way["old"]["labels"] != by_way["new"]["labels"]:
            raise SystemExit(f"error: after the swap ({quantization}) the two ways labelled the batch differently.")
        if quantization == "8bit":  # the arithmetic used for GPT-J, on what was measured here
            new = by_way["new"]
            new["computed_peak_bytes"] = new["steady_bytes"] + new["adapter_bytes_in_memory"] + file_bytes
    gptj = gptj_figures()
    summary = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "model": "smollm2-135m",
               "first_adapter": str(SHIPPED.relative_to(REPO)),
               "second_adapter": "the first with its LoRA B factors halved",
               "rows": [{k: v for k, v in row.items() if k != "labels"} for row in rows],
               "gpt_j_6b_8bit": gptj, "rounds": [{k: v for k, v in r.items() if k != "labels"} for r in rounds]}
    print("| swap (default model, CPU) | steady GB | peak during swap GB | peak / steady | after GB | swap + first batch s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['name']} | {row['steady_bytes'] / GB:.2f} | {row['peak_bytes'] / GB:.2f} | {row['ratio']:.2f}x | "
              f"{row['after_bytes'] / GB:.2f} | {row['swap_s']:.1f} |")
    for row in rows:
        if "computed_peak_bytes" in row:
            print(f"\n{row['name']}: steady + the second adapter in memory + its file = "
                  f"{row['computed_peak_bytes'] / GB:.2f} GB computed, {row['peak_bytes'] / GB:.2f} GB measured")
    print(f"\nGPT-J-6B, 8-bit, LoRA r={gptj['lora_rank']} ({gptj['lora_strategy']}), computed from "
          f"{gptj['parameters'] / 1e9:.2f}e9 parameters: base {gptj['base_bytes'] / GB:.2f} GB, adapter "
          f"{gptj['adapter_bytes_in_memory'] / GB:.2f} GB in memory; steady {gptj['steady_bytes'] / GB:.2f} GB; "
          f"during a swap old way {gptj['old_peak_bytes'] / GB:.2f} GB ({gptj['old_ratio']:.2f}x), "
          f"one base {gptj['new_peak_bytes'] / GB:.2f} GB ({gptj['new_ratio']:.2f}x)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
