"""Training cost: seconds per epoch, examples/s, peak memory and optimiser state per strategy, base and optimiser.

    .venv/bin/python bench/train.py [--quick] [--steps 12] [--threads 1] [--data data/seed_train.csv]

The default model (SmolLM2-135M-Instruct on the CPU) trains on the messages of ``--data`` (1,000) in
12 configurations: strategy ``1d``, ``attention`` or ``all`` (LoRA r8) x base in full precision
(``none``) or 8-bit (``8bit``, bitsandbytes LLM.int8) x optimiser ``adamw`` (torch) or ``adam8bit``
(bitsandbytes). ``all`` + fp32 base + AdamW is the baseline (1.00x).

Each configuration runs in a child process of its own (spawned, as in training/compare.py), so its
peak memory (the process's peak resident set, ``ru_maxrss``: interpreter, model, data and training) is
its own. The child goes through the project's training code: ``TrainArgs`` and ``recipe.setup`` (splits,
``load_base``, ``apply_strategy``), ``encode``/``length_grouped_batches``/``collate``, the
completion-only loss, ``build_optimizer``/``build_schedule`` and the step of ``recipe.train``. What it
does not run is ``recipe.train`` itself, which has no per-step timing and validates after every epoch.

A full epoch per configuration is too slow on a 2-core machine, so it times a fixed number of optimiser
steps and extrapolates: seconds per epoch = seconds per example x the distinct messages of ``--data``
(training deduplicates: 998 of seed_train.csv's 1,000 rows; a run that splits off 10% for validation
trains on 90% of them per epoch, and validates after each). The steps are real batches of the first epoch (every message of ``--data``, length-grouped as ``recipe.train``
groups them, seed 0): one untimed warm-up step on the epoch's widest batch (optimiser state is allocated
then, and the process reaches the memory peak a full epoch would), then ``--steps`` of the other batches
at evenly spaced quantiles of their width, so that their mean length is the epoch's. Every configuration
trains on the same batches.

The optimiser state's size is the sum of the tensors in ``optimizer.state`` after the last step, each
storage counted once (bitsandbytes shares its quantisation maps between parameters). Adam8bit keeps
32-bit state for tensors under 4,096 elements (``min_8bit_size`` in training/optim.py), so the 1d
strategy (norm weights of 576) saves nothing there.

Prints a Markdown table and writes bench/results/train.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Before torch loads (lazily, below): `model` sets OMP_WAIT_POLICY=PASSIVE unless the environment sets it.
import model as _sets_omp_wait_policy  # noqa: E402, F401

DEFAULT_DATA = REPO / "data" / "seed_train.csv"
RESULTS = REPO / "bench" / "results" / "train.json"
STRATEGIES = ("1d", "attention", "all")
BASES = ("none", "8bit")
OPTIMIZERS = ("adamw", "adam8bit")
BASELINE = ("all", "none", "adamw")
# --quick: the baseline, then one axis changed at a time.
QUICK_CONFIGS = [BASELINE, ("all", "none", "adam8bit"), ("all", "8bit", "adamw"), ("1d", "none", "adamw")]
DEFAULT_STEPS = 12
QUICK_STEPS = 2
WARMUP_STEPS = 1


def all_configs() -> list[tuple[str, str, str]]:
    rest = [(s, b, o) for s in STRATEGIES for b in BASES for o in OPTIMIZERS if (s, b, o) != BASELINE]
    return [BASELINE, *rest]


# -- one configuration, in its own process ---------------------------------------------------------

def measure(config: tuple[str, str, str], data: str, steps: int, batch_size: int, threads: int) -> dict:
    """Train ``steps`` timed optimiser steps (after a warm-up step) in ``config``; returns the row."""
    logging.basicConfig(level=logging.WARNING)
    import torch

    from training import recipe
    from training.args import TrainArgs
    from training.batches import collate, encode, length_grouped_batches
    from training.dataset import merge_sources
    from training.loss import completion_loss
    from training.optim import build_optimizer, build_schedule

    strategy, base, optimizer_name = config
    args = TrainArgs(data=(Path(data),), out=Path(tempfile.gettempdir()) / "modbot-bench-train-unused",
                     strategy=strategy, quantization=base, optimizer=optimizer_name, batch_size=batch_size,
                     device="cpu", threads=threads, max_steps=WARMUP_STEPS + steps)
    started = time.perf_counter()
    run = recipe.setup(args, echo=lambda *_: None)  # threads, seed, splits, load_base, apply_strategy
    setup_s = time.perf_counter() - started
    peak_after_setup, resident_after_setup = _peak_rss_mb(), _rss_mb()
    int8_layers = sum(type(m).__name__ == "Linear8bitLt" for m in run.model.modules())
    weights = weight_bytes(run.model)
    model, device, pad_id = run.model, run.loaded.device, run.loaded.tokenizer.pad_token_id

    # The first epoch of a run on every message of --data, batched as recipe.train batches it.
    examples = merge_sources(args.data).examples
    items = [encode(run.prompts, example, share_prefix=True) for example in examples]
    prefix = run.prompts.prefix
    epoch = list(length_grouped_batches(items, args.batch_size, seed=args.seed + 1))
    warmup, timed = pick_batches(epoch, steps)
    steps_per_epoch = len(epoch)

    optimizer = build_optimizer(model.parameters(), args.optimizer, args.lr, args.weight_decay)
    schedule = build_schedule(optimizer, steps_per_epoch * args.epochs, args.warmup_ratio, args.decay)
    autocast, scaler = recipe._precision(args.precision, device)  # fp32 on the CPU, as recipe.train
    model.train()

    def step(group) -> float:  # the body of recipe.train's loop, grad_accum 1
        batch = collate(group, prefix, pad_id).to(device)
        with autocast():
            loss = completion_loss(model, batch)
        scaler.scale(loss / args.grad_accum).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        return loss.item()

    times, losses = [], []
    with RssSampler() as training_rss:
        for group in warmup:
            step(group)
        for group in timed:
            t0 = time.perf_counter()
            losses.append(step(group))
            times.append(time.perf_counter() - t0)

    seen = sum(len(group) for group in timed)
    per_example = sum(times) / seen
    tokens = [len(prefix) + len(item.body) for group in timed for item in group]
    return {
        "strategy": strategy,
        "base": base,
        "optimizer": optimizer_name,
        "steps": len(timed),
        "batch_size": args.batch_size,
        "seconds_per_step": round(sum(times) / len(times), 4),
        "seconds_per_step_min": round(min(times), 4),
        "seconds_per_step_max": round(max(times), 4),
        "examples_per_s": round(1 / per_example, 3),
        "epoch_examples": len(examples),
        "seconds_per_epoch_estimate": round(per_example * len(examples), 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_rss_setup_mb": round(peak_after_setup, 1),
        "rss_after_setup_mb": round(resident_after_setup, 1),
        "peak_rss_training_mb": round(training_rss.peak_mb, 1),
        "optimizer_state_bytes": optimizer_state_bytes(optimizer),
        "trainable_parameters": run.trainable,
        "total_parameters": run.total,
        "quantization_loaded": run.loaded.quantization,
        "int8_linear_layers": int8_layers,
        "weight_bytes": weights,
        "timed_mean_tokens": round(sum(tokens) / len(tokens), 1),
        "epoch_mean_tokens": round(len(prefix) + sum(len(item.body) for item in items) / len(items), 1),
        "loss_mean": round(sum(losses) / len(losses), 4),
        "setup_s": round(setup_s, 1),
        "threads": torch.get_num_threads(),
        "load_average_1m_end": round(os.getloadavg()[0], 2),
    }


def pick_batches(epoch: list[list], steps: int) -> tuple[list[list], list[list]]:
    """(warm-up, timed): the epoch's widest batches (so that the peak memory is the epoch's), then ``steps``
    of the others at evenly spaced quantiles of their width, in epoch order."""
    by_width = sorted(range(len(epoch)), key=lambda i: (max(len(item.body) for item in epoch[i]), i))
    warmup, rest = by_width[len(epoch) - WARMUP_STEPS:], by_width[:len(epoch) - WARMUP_STEPS]
    if steps > len(rest):
        raise SystemExit(f"--steps {steps}: the epoch has only {len(rest)} batches besides the warm-up")
    chosen = sorted(rest[int((k + 0.5) * len(rest) / steps)] for k in range(steps))
    return [epoch[i] for i in warmup], [epoch[i] for i in chosen]


def weight_bytes(model) -> int:
    """Bytes of the model's parameters and buffers as they sit in memory (int8 weights at 1 byte)."""
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    # bitsandbytes keeps each int8 weight's row scales beside it (Int8Params.SCB), not as a buffer.
    return total + sum(p.SCB.numel() * p.SCB.element_size() for p in model.parameters()
                       if getattr(p, "SCB", None) is not None)


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of every tensor in ``optimizer.state``, a storage shared by several parameters counted once."""
    import torch

    seen, total = set(), 0
    for state in optimizer.state.values():
        for value in state.values():
            if not isinstance(value, torch.Tensor):
                continue
            storage = value.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
            if key not in seen:
                seen.add(key)
                total += storage.nbytes()
    return total


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mb() -> float:
    """The process's resident set now (Linux: /proc/self/statm counts pages)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """The highest resident set seen while the block runs (every 10 ms, from a thread), so that training's
    own peak shows apart from the process peak, which loading the model may have set."""

    def __init__(self, interval: float = 0.01):
        self.interval, self.peak_mb = interval, _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())


def _in_child(config, *rest) -> dict:
    """``measure`` in a fresh spawned process (training/compare.py's way, which only runs run_training)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return pool.apply(measure, (config, *rest))


# -- the table -------------------------------------------------------------------------------------

def markdown_table(rows: list[dict]) -> str:
    baseline = next((r for r in rows if (r["strategy"], r["base"], r["optimizer"]) == BASELINE), rows[0])
    adamw = {(r["strategy"], r["base"]): r["optimizer_state_bytes"] for r in rows if r["optimizer"] == "adamw"}
    lines = ["| strategy | base | optimiser | trainable parameters | s/step | examples/s | s/epoch (est.) | "
             "epoch time vs baseline | weights | RSS after load | peak RSS | optimiser state | state vs AdamW |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        reference = adamw.get((r["strategy"], r["base"]))
        state_ratio = f"{r['optimizer_state_bytes'] / reference:.2f}x" if reference else "n/a"
        lines.append(
            f"| {r['strategy']} | {'fp32' if r['base'] == 'none' else r['base']} | {r['optimizer']} | "
            f"{r['trainable_parameters']:,} | {r['seconds_per_step']:.2f} | {r['examples_per_s']:.1f} | "
            f"{r['seconds_per_epoch_estimate']:.0f} | "
            f"{r['seconds_per_epoch_estimate'] / baseline['seconds_per_epoch_estimate']:.2f}x | "
            f"{r['weight_bytes'] / 2**20:,.0f} MiB | {r['rss_after_setup_mb']:,.0f} MB | {r['peak_rss_mb']:,.0f} MB | "
            f"{_size(r['optimizer_state_bytes'])} | "
            f"{state_ratio} |")
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="label,text CSV (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"timed optimiser steps per configuration, after {WARMUP_STEPS} warm-up "
                             f"(default {DEFAULT_STEPS}; {QUICK_STEPS} with --quick)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per configuration (default 1: much faster on this shared machine)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_STEPS} steps, {len(QUICK_CONFIGS)} configurations (the baseline, then "
                             "one axis changed at a time)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    steps = args.steps or (QUICK_STEPS if args.quick else DEFAULT_STEPS)
    configs = QUICK_CONFIGS if args.quick else all_configs()
    if steps < 1 or args.threads < 1 or args.batch_size < 1:
        parser.error("--steps, --threads and --batch-size must be 1 or more")
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")

    from bench.classify import _cpu_name

    load_start = os.getloadavg()
    print(f"{len(configs)} configurations, {WARMUP_STEPS} warm-up + {steps} timed steps of {args.batch_size} "
          f"each, {args.threads} torch thread(s), OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, data "
          f"{args.data}, {_cpu_name()}, load average {load_start[0]:.2f}", file=sys.stderr)
    rows = []
    started = time.perf_counter()
    for n, config in enumerate(configs, 1):
        row = _in_child(config, str(args.data), steps, args.batch_size, args.threads)
        rows.append(row)
        print(f"  [{n}/{len(configs)}] {' / '.join(config)}: {row['seconds_per_step']:.2f} s/step, "
              f"{row['examples_per_s']:.1f} examples/s, peak RSS {row['peak_rss_mb']:.0f} MB, optimiser state "
              f"{_size(row['optimizer_state_bytes'])} (setup {row['setup_s']:.0f} s, load {row['load_average_1m_end']})",
              file=sys.stderr, flush=True)
    # The baseline once more, last: how far the machine's speed drifted while the others ran.
    again = _in_child(configs[0], str(args.data), steps, args.batch_size, args.threads)
    rows[0]["seconds_per_step_repeat_at_end"] = again["seconds_per_step"]
    drift = again["seconds_per_step"] / rows[0]["seconds_per_step"] - 1
    print(f"  baseline again: {again['seconds_per_step']:.2f} s/step ({100 * drift:+.0f}%)", file=sys.stderr)
    order = all_configs() if not args.quick else QUICK_CONFIGS
    order = sorted(order, key=lambda c: (STRATEGIES.index(c[0]), BASES.index(c[1]), OPTIMIZERS.index(c[2])))
    rows.sort(key=lambda r: order.index((r["strategy"], r["base"], r["optimizer"])))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")

    import torch

    load_end = os.getloadavg()
    first = rows[0]
    print(markdown_table(rows))
    print(f"\nSeconds per epoch are extrapolated, not measured: seconds per example over {steps} timed steps "
          f"of {args.batch_size} (after {WARMUP_STEPS} untimed warm-up step) x {first['epoch_examples']:,} "
          f"examples (the distinct messages of --data). The timed batches are the same for every configuration: batches of the first epoch at "
          f"evenly spaced width quantiles ({first['timed_mean_tokens']} tokens per example on average, the "
          f"epoch's mean {first['epoch_mean_tokens']}). Peak RSS is each child process's whole peak resident "
          f"memory (loading the model included; the warm-up step is the epoch's widest batch); RSS after load "
          f"is the resident set once the model is loaded and prepared; weights: the bytes of its parameters "
          f"and buffers. Optimiser state: the tensors in optimizer.state after the last step. "
          f"Baseline (1.00x): {' + '.join(BASELINE)}, run first and again last: {again['seconds_per_step']:.2f} "
          f"s/step then ({100 * drift:+.0f}% drift while the others ran).")
    print(f"Model smollm2-135m on the CPU; {_cpu_name()}, {args.threads} torch thread(s) "
          f"(OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), torch {torch.__version__}, Python "
          f"{platform.python_version()}; load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the "
          f"end; {time.perf_counter() - started:.0f} s in all. Wrote {args.out}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
