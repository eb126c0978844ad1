"""TrainArgs: every knob of a training run, typed and checked before anything is loaded."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from model.config import DEFAULT_MODEL, QUANTIZATIONS

from .errors import TrainingError

STRATEGIES = ("1d", "attention", "all", "few-shot")
OPTIMIZERS = ("adam8bit", "adamw")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DECAYS = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class TrainArgs:
    """A training run. Defaults are the ones that worked for the default model (SmolLM2-135M) on a CPU."""

    data: tuple[Path, ...]
    out: Path
    # Data: which examples are seen, held out and measured.
    val: tuple[Path, ...] = ()  # validation files; without them a stratified split of `data` is used
    eval_on: tuple[Path, ...] = ()  # measured after training; their messages never enter training
    exclude: tuple[Path, ...] = ()  # messages never to train on (nor validate or test on)
    per_class: int | None = None  # balanced sample: at most this many training examples per class
    val_fraction: float = 0.1
    val_per_class: int | None = None  # a balanced validation split instead of val_fraction
    test_per_class: int | None = None  # hold out a balanced test split of `data`, measured at the end
    # What is trained.
    strategy: str = "all"
    init_adapter: Path | None = None  # start from this LoRA adapter's weights (same base model) instead of fresh ones
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    few_shot_k: int = 2  # examples per class in the prompt (few-shot strategy)
    # How.
    epochs: int = 2
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1.5e-3
    warmup_ratio: float = 0.06
    decay: str = "cosine"
    weight_decay: float = 0.0
    optimizer: str = "adam8bit"
    max_message_tokens: int = 64  # tweets and chat messages are short; longer ones keep head and tail
    max_steps: int | None = None  # stop after this many optimiser steps (quick probes, tests)
    seed: int = 0
    # Where.
    model: str = DEFAULT_MODEL
    quantization: str = "auto"
    device: str = "auto"
    precision: str = "auto"  # autocast dtype on CUDA; the CPU trains in fp32
    gradient_checkpointing: bool = False
    threads: int | None = None  # CPU threads for torch; 1 is far faster on a CPU that others share
    eval_batch_size: int = 32
    cache_dir: Path | None = None
    version: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        checks = [
            (bool(self.data), "--data: give at least one dataset file."),
            (self.strategy in STRATEGIES, f"--strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}."),
            (self.optimizer in OPTIMIZERS, f"--optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}."),
            (self.precision in PRECISIONS, f"--precision {self.precision!r}: use one of {', '.join(PRECISIONS)}."),
            (self.decay in DECAYS, f"--decay {self.decay!r}: use one of {', '.join(DECAYS)}."),
            (self.quantization in QUANTIZATIONS,
             f"--quantization {self.quantization!r}: use one of {', '.join(QUANTIZATIONS)}."),
            (self.epochs >= 1, "--epochs must be 1 or more."),
            (self.batch_size >= 1 and self.grad_accum >= 1, "--batch-size and --grad-accum must be 1 or more."),
            (self.lr > 0, "--lr must be positive."),
            (0 <= self.warmup_ratio < 1, "--warmup-ratio must be in [0, 1)."),
            (0 < self.val_fraction < 1, "--val-fraction must be between 0 and 1."),
            (self.lora_r >= 1 and self.lora_alpha >= 1, "--lora-r and --lora-alpha must be 1 or more."),
            (0 <= self.lora_dropout < 1, "--lora-dropout must be in [0, 1)."),
            (self.max_message_tokens >= 8, "--max-message-tokens must be 8 or more."),
            (self.few_shot_k >= 1, "--few-shot-k must be 1 or more."),
            (all(n is None or n >= 1 for n in (self.per_class, self.val_per_class, self.test_per_class,
                                                self.max_steps)),
             "--per-class, --val-per-class, --test-per-class and --max-steps must be 1 or more."),
            (self.threads is None or self.threads >= 1, "--threads must be 1 or more."),
            (self.init_adapter is None or self.strategy in ("attention", "all"),
             "--init-adapter needs a LoRA strategy (attention or all)."),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)

    def hyperparameters(self) -> dict:
        """What the metadata records: everything but the paths, which the data section describes."""
        skip = {"data", "out", "val", "eval_on", "exclude", "cache_dir", "overwrite", "threads"}
        values = {key: value for key, value in asdict(self).items() if key not in skip}
        if values["init_adapter"] is not None:
            values["init_adapter"] = str(values["init_adapter"])
        return values


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_overrides(raw: str, fixed: Mapping[str, str] | None = None) -> dict:
    """TrainArgs overrides from ``"name=value,name=value"`` (the names of `modbot train`'s options, with ``-`` or
    ``_``), each value typed by its TrainArgs field and the whole set checked by TrainArgs itself.

    ``fixed``: fields the caller sets itself, each with why (an override of them would be ignored).
    TrainingError names the option.
    """
    hints = typing.get_type_hints(TrainArgs)
    known = {f.name for f in fields(TrainArgs)}
    options: dict = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().replace("-", "_"), value.strip()
        if not sep or not key:
            raise TrainingError(f"{item!r} is not an option=value pair (for example epochs=3,lr=0.001,device=cuda).")
        if key not in known:
            raise TrainingError(f"{key!r} is not a training option (see `modbot train --help`, with underscores).")
        if fixed and key in fixed:
            raise TrainingError(f"{key} {fixed[key]}.")
        options[key] = _option_value(key, hints[key], value)
    try:
        TrainArgs(data=(Path("-"),), out=Path("-"), **options)
    except TrainingError as exc:
        raise TrainingError(f"{exc}".rstrip(".") + f" (from {_shown(options)}).") from None
    return options


def _option_value(key: str, hint, value: str):
    """``value`` as the type of TrainArgs' field ``key`` (``none`` for a field that may be None)."""
    choices = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    base = [t for t in choices if t is not type(None)]
    if len(base) != len(choices) and value.lower() in ("none", ""):
        return None
    kind = base[0] if len(base) == 1 else None
    if kind is bool:
        if value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise TrainingError(f"{key}={value!r} is not true or false.")
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise TrainingError(f"{key}={value!r} is not a whole number.") from None
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise TrainingError(f"{key}={value!r} is not a number.") from None
    if kind is str:
        return value
    raise TrainingError(f"{key} takes files, which cannot be set as an option.")


def _shown(options: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in options.items())
