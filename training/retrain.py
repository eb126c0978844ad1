"""A retraining job: the active adapter's data plus the moderators' corrections -> a candidate adapter, measured
next to the active one, with the gate's verdict.

Run as its own process: ``python -m training.retrain --spec JOB/spec.json``. It reads only files (the spec,
the corrections export the bot wrote, the active adapter directory, the gold validation set) and writes only
files: the candidate adapter directory (atomically, by the recipe), progress as JSON lines, and one result
file. It never touches the bot's database: the bot (or ``modbot retrain``) records what the result says.

Steps, each reported as a ``phase`` line in the progress file:

* ``preparing``: the training pool is the active adapter's ``train.jsonl`` (plus its ``retrain_val.jsonl``,
  the validation messages an earlier retrain held back) with every correction merged in, a correction
  replacing any earlier label of the same normalised text. A deterministic 20% of the corrections, chosen by
  message id, is held out for the gate. A stratified 10% of the pool, chosen by a hash of the text (so the same
  messages every time), validates the epochs; it is saved beside the new adapter for the next retrain.
* ``training``: the recipe of `training.recipe` with the active adapter's strategy and hyperparameters
  (unless the spec overrides them), reporting epoch, step, loss, each epoch's validation as it goes, and the
  estimated time left, which is the whole job's: training, every evaluation still to come, model loads.
* ``evaluating``: the candidate (right after training) and then the active adapter, on the gold set and on
  the held-out corrections, reporting the set, how far it is, and the time left.
* When the active adapter is a soup (``modbot soup``; the shipped default adapter is one), the newly trained
  adapter joins it: the candidate is the soup of the active adapter and the new one, half each. A single new
  adapter would lose the soup's averaging (measured at 1-2 points of accuracy on the default model) and the
  gate would refuse it; joined, the corrections still carry half the weight change.
* ``verdict``: promote only if the candidate's macro-F1 on the gold set is at most ``max_f1_drop`` below the
  active adapter's and its accuracy on the held-out corrections is at least the active one's.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path

from model.adapter import TRAINING_SET_FILE, read_adapter
from model.errors import ModbotError
from model.labels import LABELS, parse_label
from model.quiet import quiet_transformers

from .dataset import class_counts, merge_sources, text_key, to_jsonl
from .errors import DataError, TrainingError
from .formats import Example, read_examples

RETRAIN_VAL_FILE = "retrain_val.jsonl"  # the validation messages held back from training, for the next retrain
HOLDOUT_PERCENT = 20
VAL_PERCENT = 10
MAX_F1_DROP = 0.01
# TrainArgs fields a spec may never take from the active adapter's metadata: they describe where data and
# output are, or how the first adapter was sampled from a large dataset (its train.jsonl is that sample).
# init_adapter names a directory of the machine that trained the adapter: a retrain trains a fresh LoRA
# (joined to the active adapter when that is a soup), wherever it runs.
_NOT_INHERITED = {"data", "out", "val", "eval_on", "exclude", "cache_dir", "overwrite", "version", "per_class",
                  "val_per_class", "test_per_class", "val_fraction", "model", "quantization", "device",
                  "max_steps", "init_adapter"}

# TrainArgs fields the job sets itself: an override (MODBOT_RETRAIN_OPTIONS) would be ignored, so it is refused.
SET_BY_THE_JOB = {
    **dict.fromkeys(("data", "val", "eval_on", "exclude"), "is chosen by the job (the active adapter's data and "
                                                           "the corrections)"),
    **dict.fromkeys(("out", "version", "overwrite"), "is chosen by the job (the registry's next version)"),
    "model": "is set by MODBOT_MODEL",
    "quantization": "is set by MODBOT_QUANTIZATION",
    "cache_dir": "is set by MODBOT_CACHE_DIR",
}


class Cancelled(BaseException):
    """SIGTERM: the bot (or Ctrl-C in `modbot retrain`) asked the job to stop."""


# -- the spec ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    """What the bot hands the job; written as spec.json in the job directory."""

    version: str  # the candidate's version name (its metadata and every prediction record it)
    out: Path  # the candidate adapter directory (must not exist yet)
    active_adapter: Path
    corrections: Path  # the bot's correction export (JSONL)
    gold: Path  # the gold validation set, any format `training.formats` reads
    job_dir: Path
    model: str
    quantization: str = "auto"
    device: str = "auto"
    cache_dir: Path | None = None
    options: dict | None = None  # TrainArgs overrides (MODBOT_RETRAIN_OPTIONS)
    threads: int | None = None  # torch threads (leave cores to the serving model)
    holdout_percent: int = HOLDOUT_PERCENT
    max_f1_drop: float = MAX_F1_DROP

    @property
    def progress_file(self) -> Path:
        return self.job_dir / "progress.jsonl"

    @property
    def result_file(self) -> Path:
        return self.job_dir / "result.json"

    def to_json(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in data.items()}, indent=2)

    @classmethod
    def read(cls, path: Path | str) -> JobSpec:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TrainingError(f"--spec {path}: cannot read the job spec ({exc}).") from None
        paths = {"out", "active_adapter", "corrections", "gold", "job_dir", "cache_dir"}
        known = {f.name for f in fields(cls)}
        # Relative paths are relative to the spec's directory: a prepared job directory can be moved to
        # another machine (`modbot retrain --prepare` / `--run` / `--finish`).
        here = Path(path).resolve().parent
        values = {k: ((here / v) if k in paths and v is not None else v) for k, v in data.items() if k in known}
        return cls(**values)


# -- data -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Correction:
    message_id: int
    text: str
    label: str


def read_corrections(path: Path) -> list[Correction]:
    """The export, one correction per message (the latest decision wins), in export order."""
    by_message: dict[int, Correction] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc}).") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            message_id = int(record["message_id"])
            text = str(record["text"])
            label = parse_label(str(record["label"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DataError(path, f"not a correction export line ({exc}).", line=number) from None
        by_message.pop(message_id, None)
        by_message[message_id] = Correction(message_id, text, label)
    return list(by_message.values())


def held_out(message_id: int, percent: int = HOLDOUT_PERCENT) -> bool:
    """Whether a correction is kept for the gate: the same answer for the same message, every time."""
    digest = hashlib.sha256(f"modbot-holdout:{message_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


def _text_rank(example: Example) -> str:
    return hashlib.sha256(f"modbot-val:{text_key(example.text)}".encode()).hexdigest()


def validation_split(pool: list[Example], percent: int = VAL_PERCENT) -> tuple[list[Example], list[Example]]:
    """(train, validation): per class, the ``percent`` of messages with the lowest text hash (at least one)."""
    train: list[Example] = []
    val: list[Example] = []
    for label in LABELS:
        group = sorted((e for e in pool if e.label == label), key=_text_rank)
        if len(group) < 2:
            train += group
            continue
        n_val = min(len(group) - 1, max(1, math.ceil(len(group) * percent / 100)))
        chosen = {id(e) for e in group[:n_val]}
        val += [e for e in group if id(e) in chosen]
    chosen_ids = {id(e) for e in val}
    train = [e for e in pool if id(e) not in chosen_ids]
    return train, val


@dataclass
class Prepared:
    data_file: Path  # the pool minus validation and held-out corrections: what is trained on
    val_file: Path
    gold_file: Path
    heldout_file: Path | None
    summary: dict


def prepare(spec: JobSpec) -> Prepared:
    """Write the job's data files into the job directory and return them with a summary."""
    base_files = [spec.active_adapter / TRAINING_SET_FILE]
    if not base_files[0].is_file():
        raise TrainingError(f"The active adapter {spec.active_adapter} has no {TRAINING_SET_FILE}: it cannot be "
                            "retrained (train one with `modbot train`, which saves its training set).")
    if (spec.active_adapter / RETRAIN_VAL_FILE).is_file():
        base_files.append(spec.active_adapter / RETRAIN_VAL_FILE)
    corrections = read_corrections(spec.corrections)
    kept = [c for c in corrections if not held_out(c.message_id, spec.holdout_percent)]
    held = [c for c in corrections if held_out(c.message_id, spec.holdout_percent)]
    as_examples = [Example(c.text, c.label, str(spec.corrections)) for c in kept]
    kept_file = spec.job_dir / "corrections_train.jsonl"
    kept_file.write_text(to_jsonl(as_examples), encoding="utf-8")
    merged = merge_sources([*base_files, kept_file] if as_examples else base_files)

    gold = merge_sources([spec.gold]).examples
    gold_file = spec.job_dir / "gold.jsonl"
    gold_file.write_text(to_jsonl(gold), encoding="utf-8")
    heldout_file = None
    held_examples = [Example(c.text, c.label) for c in held]
    if held_examples:
        heldout_file = spec.job_dir / "heldout.jsonl"
        heldout_file.write_text(to_jsonl(held_examples), encoding="utf-8")

    # What is measured is never trained on (the recipe leaves eval_on messages out too; this keeps the
    # validation split from picking them).
    measured = {text_key(e.text) for e in [*gold, *held_examples]}
    pool = [e for e in merged.examples if text_key(e.text) not in measured]
    train, val = validation_split(pool)
    data_file = spec.job_dir / "train_pool.jsonl"
    data_file.write_text(to_jsonl(train), encoding="utf-8")
    val_file = spec.job_dir / RETRAIN_VAL_FILE
    val_file.write_text(to_jsonl(val), encoding="utf-8")
    summary = {
        "base": [str(p) for p in base_files],
        "corrections": len(corrections),
        "corrections_trained": len(kept),
        "corrections_held_out": len(held),
        "overrides": merged.overrides,
        "train": class_counts(train),
        "val": class_counts(val),
        "gold": class_counts(gold),
        "gold_source": str(spec.gold),
        "held_out": class_counts(held_examples),
        "left_out_measured": len(merged.examples) - len(pool),
    }
    return Prepared(data_file, val_file, gold_file, heldout_file, summary)


def train_args(spec: JobSpec, prepared: Prepared, metadata: dict):
    """The active adapter's strategy and hyperparameters, the spec's model and overrides, this job's data."""
    from .args import TrainArgs

    known = {f.name for f in fields(TrainArgs)}
    inherited = {k: v for k, v in (metadata.get("hyperparameters") or {}).items()
                 if k in known and k not in _NOT_INHERITED}
    inherited["strategy"] = metadata.get("strategy", inherited.get("strategy", "all"))
    options = dict(spec.options or {})
    refused = sorted(set(options) - known | set(options) & set(SET_BY_THE_JOB))
    if refused:
        raise TrainingError(f"MODBOT_RETRAIN_OPTIONS: not options a retrain takes: {', '.join(refused)}.")
    eval_on = (prepared.gold_file,) + ((prepared.heldout_file,) if prepared.heldout_file else ())
    values = {
        **inherited,
        **options,
        "data": (prepared.data_file,),
        "val": (prepared.val_file,),
        "eval_on": eval_on,
        "out": spec.out,
        "version": spec.version,
        "model": spec.model,
        "quantization": spec.quantization,
        "device": spec.device,
        "cache_dir": spec.cache_dir,
    }
    if "device" in options:
        values["device"] = options["device"]
    return TrainArgs(**values)


# -- the gate ---------------------------------------------------------------------------------------


def gate(candidate: dict, active: dict, max_f1_drop: float = MAX_F1_DROP) -> tuple[bool, list[str]]:
    """(promote, reasons). ``candidate``/``active``: {"gold": metrics, "heldout": metrics or None}."""
    reasons = []
    new_f1, old_f1 = candidate["gold"]["macro_f1"], active["gold"]["macro_f1"]
    f1_ok = new_f1 >= old_f1 - max_f1_drop - 1e-12
    reasons.append(
        f"gold macro-F1 {new_f1:.3f} vs {old_f1:.3f}: "
        + ("kept" if f1_ok else f"more than {max_f1_drop:g} below the active adapter")
    )
    if candidate.get("heldout") is None:
        heldout_ok = True
        reasons.append("held-out corrections: none (nothing to compare)")
    else:
        new_acc, old_acc = candidate["heldout"]["accuracy"], active["heldout"]["accuracy"]
        heldout_ok = new_acc >= old_acc - 1e-12
        n = candidate["heldout"]["n"]
        reasons.append(
            f"held-out corrections accuracy {new_acc:.3f} vs {old_acc:.3f} (n {n}): "
            + ("kept" if heldout_ok else "below the active adapter")
        )
    return f1_ok and heldout_ok, reasons


# -- progress ---------------------------------------------------------------------------------------


class Progress:
    """Appends one JSON object per line to the progress file (and flushes), so the bot can follow."""

    def __init__(self, path: Path, echo: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.echo = echo
        self.started = time.monotonic()

    def __call__(self, phase: str, **fields_) -> None:
        record = {"phase": phase, "time": round(time.time(), 3), "elapsed_s": round(time.monotonic() - self.started, 1),
                  **fields_}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
        if self.echo is not None:
            self.echo(json.dumps(record, ensure_ascii=False))


REPORT_EVERY_S = 1.0  # at most one progress line per second while training or evaluating
# Before any evaluation has been timed, one message is taken to cost a third of what one training example did
# (a forward pass, against forward, backward and the optimiser); the first timed batch replaces the guess.
EVAL_COST_SHARE = 1 / 3


class JobClock:
    """What is left of the job, in seconds: the training steps, every message still to be evaluated (each
    epoch's validation, then the candidate and the active adapter on the gold set and the held-out corrections)
    and the model loads still to come, each at the pace measured so far in this job."""

    def __init__(self, *, steps: int, batch_size: int, eval_messages: int, loads: int, load_s: float) -> None:
        self.steps, self.batch_size = steps, batch_size
        self.eval_messages, self.loads, self.load_s = eval_messages, loads, load_s
        self.steps_done, self.train_s = 0, 0.0
        self.evaluated, self.eval_s = 0.0, 0.0
        self._train_started: float | None = None
        self._eval_s_at_train_start = 0.0

    def start_training(self) -> None:
        if self._train_started is None:
            self._train_started, self._eval_s_at_train_start = time.monotonic(), self.eval_s

    def step(self, done: int) -> None:
        """``done`` training steps are finished (a validation run meanwhile is not training time)."""
        now = time.monotonic()
        self.start_training()
        self.steps_done = done
        self.train_s = now - self._train_started - (self.eval_s - self._eval_s_at_train_start)

    def evaluate(self, messages: float, seconds: float) -> None:
        self.evaluated += messages
        self.eval_s += seconds

    def loaded(self, seconds: float) -> None:
        self.loads = max(0, self.loads - 1)
        self.load_s = seconds

    def left(self) -> float | None:
        per_step = self.train_s / self.steps_done if self.steps_done else None
        if self.evaluated >= 1:
            per_message = self.eval_s / self.evaluated
        elif per_step is not None:
            per_message = per_step / max(1, self.batch_size) * EVAL_COST_SHARE
        else:
            return None
        steps_left = max(0, self.steps - self.steps_done)
        if steps_left and per_step is None:
            return None
        return round((per_step or 0.0) * steps_left + per_message * max(0.0, self.eval_messages - self.evaluated)
                     + self.load_s * self.loads, 1)


def _reporting_bar(progress: Progress, clock: JobClock, stage: dict, epochs: int, steps_per_epoch: int,
                   every_s: float = REPORT_EVERY_S):
    """A tqdm class for the recipe's training bar that also reports epoch, step, loss and the job's time left."""
    from tqdm.auto import tqdm

    state = {"step": 0, "last": time.monotonic()}
    total_steps = max(1, epochs * steps_per_epoch)

    class ReportingBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("disable", True)  # the job's log is a file: no bar drawing there
            super().__init__(*args, **kwargs)
            desc = str(kwargs.get("desc", ""))
            self._epoch = int(desc.split()[1].split("/")[0]) if desc.startswith("epoch ") else 0
            self._loss = None
            clock.start_training()

        def update(self, n=1):
            state["step"] += 1
            clock.step(min(state["step"], total_steps))
            return super().update(n)

        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            # The recipe sets the running loss right after each batch's update: report from here.
            if kwargs.get("loss") is not None:
                self._loss = float(kwargs["loss"])
            now = time.monotonic()
            done = state["step"]
            if done:  # what a validation line repeats too
                stage["fields"] = {"epoch": self._epoch, "epochs": epochs, "step": min(done, total_steps),
                                   "steps": total_steps, "loss": self._loss}
            if done and (now - state["last"] >= every_s or done >= total_steps):
                state["last"] = now
                progress("training", **stage["fields"], eta_s=clock.left())
            return super().set_postfix(ordered_dict, refresh, **kwargs)

    return ReportingBar


def _evaluation_bar(progress: Progress, clock: JobClock, stage: dict, sizes: dict[str, int],
                    every_s: float = REPORT_EVERY_S):
    """A tqdm class for `training.evaluate`'s bar that reports which set is being evaluated, how far, and the
    job's time left: evaluating takes as long as training on a large gold set, and must not look like a hang."""
    from tqdm.auto import tqdm

    class EvaluationBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("disable", True)
            super().__init__(*args, **kwargs)
            self._set = str(kwargs.get("desc", "eval"))
            self._windows = max(1, int(kwargs.get("total") or 1))
            self._messages = sizes.get(self._set, self._windows)  # a long message is several windows
            self._done = 0
            self._mark = self._last = time.monotonic()
            self._report()

        def update(self, n=1):
            now = time.monotonic()
            self._done += n
            clock.evaluate(self._messages * n / self._windows, now - self._mark)
            self._mark = now
            if now - self._last >= every_s or self._done >= self._windows:
                self._last = now
                self._report()
            return super().update(n)

        def _report(self) -> None:
            progress(stage["phase"], **stage["fields"], set=self._set, done=min(self._done, self._windows),
                     total=self._windows, eta_s=clock.left())

    return EvaluationBar


# -- the job ----------------------------------------------------------------------------------------


def run_job(spec: JobSpec, echo: Callable[[str], None] | None = None) -> dict:
    """Prepare, train, evaluate, judge. Returns the result (also written to the spec's result file)."""
    import torch

    from . import recipe

    if spec.threads:
        torch.set_num_threads(spec.threads)
    progress = Progress(spec.progress_file, echo)
    progress("preparing")
    active_info = read_adapter(spec.active_adapter)
    prepared = prepare(spec)
    args = train_args(spec, prepared, active_info.metadata)
    progress("preparing", data=prepared.summary, strategy=args.strategy, epochs=args.epochs)

    joins_soup = "soup_of" in active_info.metadata
    if joins_soup:
        args = replace(args, out=spec.job_dir / "member", overwrite=True)
    setup_started = time.monotonic()
    run = recipe.setup(args, lambda line: None)
    steps_per_epoch = math.ceil(len(run.splits.train) / args.batch_size)
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    # The time left covers evaluation as well as training: each epoch's validation, then the candidate and the
    # active adapter on the measured sets (a gold set of thousands takes minutes), and the model loads between.
    measured = {name: len(examples) for name, examples in run.splits.evals.items()}
    sizes = {"validate": len(run.splits.val), "test": len(run.splits.test), **measured}
    few_shot = args.strategy == "few-shot"
    clock = JobClock(
        steps=0 if few_shot else args.epochs * steps_per_epoch, batch_size=args.batch_size,
        eval_messages=(1 if few_shot else args.epochs) * sizes["validate"] + 2 * sum(measured.values())
        + (0 if joins_soup else sizes["test"]),
        loads=2 if joins_soup else 1, load_s=time.monotonic() - setup_started,
    )
    stage = {"phase": "training", "fields": {"epoch": 0, "epochs": args.epochs, "step": 0,
                                             "steps": args.epochs * steps_per_epoch, "loss": None}}
    progress("training", **stage["fields"], eta_s=None)
    with _reporting(progress, clock, stage, sizes, args.epochs, steps_per_epoch):
        started = time.perf_counter()
        history = recipe.train(run, lambda line: None)
        stage.update(phase="evaluating", fields={"adapter": "candidate"})
        progress("evaluating", adapter="candidate", eta_s=clock.left())
        # A member that joins the soup is measured as part of the soup, not on its own.
        evaluations = {} if joins_soup else recipe.final_evaluations(run, lambda line: None)
        metadata = recipe.describe(run, history, evaluations, time.perf_counter() - started)
        metadata["retrain"] = {"parent": active_info.version, "parent_path": str(spec.active_adapter),
                               "data": prepared.summary}
        recipe.save(run, metadata, history)
        del run
        gc.collect()
        if joins_soup:
            from . import artifacts
            from .soup import make_soup

            make_soup([spec.active_adapter, args.out], spec.out, version=spec.version,
                      extra={"retrain": metadata["retrain"]}, echo=lambda line: None)
            evaluations = evaluate_adapter(spec, prepared, adapter=spec.out, loaded=clock.loaded)
            for name, result in evaluations.items():
                if result is not None:
                    artifacts.write_json(spec.out / f"eval_{name}.json", result)
        _write_atomically(spec.out / RETRAIN_VAL_FILE, prepared.val_file.read_text(encoding="utf-8"))
        candidate = {"gold": evaluations["gold"], "heldout": evaluations.get("heldout")}

        stage.update(phase="evaluating", fields={"adapter": "active"})
        progress("evaluating", adapter="active", eta_s=clock.left())
        active = evaluate_adapter(spec, prepared, loaded=clock.loaded)
    promote, reasons = gate(candidate, active, spec.max_f1_drop)
    result = {
        "status": "completed",
        "promote": promote,
        "reasons": reasons,
        "version": spec.version,
        "out": str(spec.out),
        "candidate": _figures(candidate),
        "active": _figures(active),
        "data": prepared.summary,
        "training_time_s": metadata["training_time_s"],
        "peak_memory_mb": metadata.get("peak_memory_mb"),
        "peak_memory_kind": metadata.get("peak_memory_kind"),
    }
    _write_atomically(spec.result_file, json.dumps(result, indent=2) + "\n")
    progress("verdict", promote=promote, reasons=reasons, candidate=result["candidate"], active=result["active"])
    return result


@contextmanager
def _reporting(progress: Progress, clock: JobClock, stage: dict, sizes: dict[str, int], epochs: int,
               steps_per_epoch: int) -> Iterator[None]:
    """The recipe's training bar and `training.evaluate`'s bar, replaced by ones that write progress lines."""
    from . import evaluate as evaluation
    from . import recipe

    bars = recipe.tqdm, evaluation.tqdm
    recipe.tqdm = _reporting_bar(progress, clock, stage, epochs, steps_per_epoch)
    evaluation.tqdm = _evaluation_bar(progress, clock, stage, sizes)
    try:
        yield
    finally:
        recipe.tqdm, evaluation.tqdm = bars


def evaluate_adapter(spec: JobSpec, prepared: Prepared, adapter: Path | None = None,
                     loaded: Callable[[float], None] | None = None) -> dict:
    """An adapter (the active one by default) on the gold set and the held-out corrections, as `modbot eval`
    scores. ``loaded``: told how many seconds loading the model took."""
    from model import Classifier, ModelSettings

    from .evaluate import evaluate_sets

    settings = ModelSettings(model=spec.model, quantization=spec.quantization,
                             device=(spec.options or {}).get("device", spec.device),
                             adapter=adapter or spec.active_adapter,
                             **({"cache_dir": spec.cache_dir} if spec.cache_dir else {}))
    files = {"gold": prepared.gold_file, "heldout": prepared.heldout_file}
    started = time.monotonic()
    classifier = Classifier.from_settings(settings)
    if loaded is not None:
        loaded(time.monotonic() - started)
    return evaluate_sets(classifier, {name: None if path is None else read_examples(path)
                                      for name, path in files.items()})


def _figures(metrics: dict) -> dict:
    return {name: (None if m is None else {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]})
            for name, m in metrics.items()}


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _on_sigterm(signum, frame):
    raise Cancelled()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.retrain",
                                     description="Run one retraining job described by a spec (written by the bot "
                                                 "or `modbot retrain`).")
    parser.add_argument("--spec", required=True, type=Path, help="the job's spec.json")
    parser.add_argument("--echo", action="store_true", help="also print each progress line on standard error")
    args = parser.parse_args(argv)
    os.umask(0o077)  # every file the job writes (its data files, the adapter's train.jsonl) holds message text
    signal.signal(signal.SIGTERM, _on_sigterm)
    quiet_transformers()
    spec = None
    try:
        spec = JobSpec.read(args.spec)
        run_job(spec, echo=(lambda line: print(line, file=sys.stderr, flush=True)) if args.echo else None)
        return 0
    except (Cancelled, KeyboardInterrupt):
        if spec is not None:
            Progress(spec.progress_file)("cancelled")
        print("retrain job cancelled", file=sys.stderr)
        return 130
    except ModbotError as exc:
        if spec is not None:
            _write_atomically(spec.result_file, json.dumps({"status": "error", "error": str(exc)}) + "\n")
            Progress(spec.progress_file)("error", error=str(exc))
        print(f"retrain job: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
