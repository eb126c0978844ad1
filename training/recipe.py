"""One training run, top to bottom: setup -> train -> evaluate -> save."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import resource
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch
from tqdm.auto import tqdm

from model.adapter import METADATA_FILE, ONE_D_WEIGHTS_FILE, PEFT_CONFIG_FILE, TRAINING_SET_FILE
from model.config import MODEL_ALIASES, ModelSettings
from model.labels import LABELS
from model.loader import LoadedModel, load_base
from model.prompt import TEMPLATE_ID, PromptBuilder

from . import artifacts
from .args import TrainArgs
from .batches import collate, encode, length_grouped_batches
from .dataset import by_class, to_jsonl
from .errors import TrainingError
from .evaluate import evaluate
from .formats import Example
from .loss import completion_loss
from .metrics import format_metrics
from .optim import build_optimizer, build_schedule
from .splits import Splits, build_splits
from .strategies import apply_strategy, one_d_state, parameter_counts

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out: Path
    metadata: dict


@dataclass
class Run:
    """What setup builds and the later stages use."""

    args: TrainArgs
    splits: Splits
    loaded: LoadedModel
    model: torch.nn.Module
    prompts: PromptBuilder
    few_shot: list[Example]
    trainable: int
    total: int


def run_training(args: TrainArgs, echo=print) -> TrainResult:
    started = time.perf_counter()
    artifacts.check_destination(args.out, args.overwrite)
    run = setup(args, echo)
    history = train(run, echo)
    evaluations = final_evaluations(run, echo)
    metadata = describe(run, history, evaluations, time.perf_counter() - started)
    save(run, metadata, history)
    echo(f"saved adapter to {args.out}")
    return TrainResult(args.out, metadata)


# -- setup ----------------------------------------------------------------------------------------

def setup(args: TrainArgs, echo) -> Run:
    if args.threads:
        torch.set_num_threads(args.threads)
    _seed(args.seed)
    splits = build_splits(args)
    for line in splits.describe():
        echo(line)
    settings = ModelSettings(model=args.model, quantization=args.quantization, device=args.device,
                             use_default_adapter=False, max_message_tokens=args.max_message_tokens,
                             **({"cache_dir": args.cache_dir} if args.cache_dir else {}))
    loaded = load_base(settings)
    few_shot = pick_few_shot(splits.train, loaded.tokenizer, args.few_shot_k, args.seed) \
        if args.strategy == "few-shot" else []
    prompts = PromptBuilder(loaded.tokenizer, max_message_tokens=args.max_message_tokens,
                            examples=[(e.text, e.label) for e in few_shot])
    if args.init_adapter is not None:
        check_init_adapter(args.init_adapter, loaded)
        echo(f"starting from the weights of {args.init_adapter}")
    model = apply_strategy(loaded.model, args.strategy, args.lora_r, args.lora_alpha, args.lora_dropout,
                           quantized=loaded.quantization in ("8bit", "4bit"),
                           gradient_checkpointing=args.gradient_checkpointing, init_adapter=args.init_adapter)
    trainable, total = parameter_counts(model)
    echo(f"{loaded.model_name} ({loaded.quantization}) on {loaded.device}, strategy {args.strategy}: "
         f"{trainable:,} trainable parameters of {total:,} ({100 * trainable / total:.3f}%)")
    return Run(args, splits, loaded, model, prompts, few_shot, trainable, total)


def check_init_adapter(path: Path, loaded) -> None:
    """--init-adapter must be a LoRA adapter of this very base model; TrainingError says why not."""
    from model.adapter import read_adapter
    from model.errors import ModelError

    try:
        info = read_adapter(path)
    except ModelError as exc:
        raise TrainingError(f"--init-adapter {path}: {exc}") from None
    if info.strategy not in ("attention", "all"):
        raise TrainingError(f"--init-adapter {path}: a {info.strategy!r} adapter has no LoRA weights to start from.")
    if info.base_fingerprint and loaded.fingerprint and info.base_fingerprint != loaded.fingerprint:
        raise TrainingError(f"--init-adapter {path}: it was trained on another base model ({info.base_model}).")


def pick_few_shot(train: list[Example], tokenizer, k: int, seed: int, max_tokens: int = 40) -> list[Example]:
    """k examples per class, short ones preferred (they all sit in every prompt), classes interleaved."""
    chosen: list[list[Example]] = []
    for group in by_class(train, seed).values():
        short = [e for e in group if len(tokenizer(e.text, add_special_tokens=False).input_ids) <= max_tokens]
        chosen.append((short + [e for e in group if e not in short])[:k])
    return [shots[i] for i in range(k) for shots in chosen if i < len(shots)]


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


# -- train ----------------------------------------------------------------------------------------

def train(run: Run, echo) -> dict:
    """Train for the epochs asked; after each, validate and keep the best weights by macro-F1."""
    args, model, loaded = run.args, run.model, run.loaded
    history = {"steps": [], "epochs": [], "best_epoch": 0, "train_time_s": 0.0}
    device = loaded.device
    pad_id = loaded.tokenizer.pad_token_id
    started = time.perf_counter()
    if args.strategy == "few-shot":  # nothing to train: measure the prompt once
        val = evaluate(model, run.prompts, run.splits.val, pad_id, device, args.eval_batch_size, "validate")
        history["epochs"].append({"epoch": 0, "step": 0, "val": val})
        echo(format_metrics(val, "validation (few-shot, no training)"))
        history["train_time_s"] = time.perf_counter() - started
        return history

    share_prefix = not args.gradient_checkpointing  # checkpointed layers cannot reuse a cache
    items = [encode(run.prompts, example, share_prefix) for example in run.splits.train]
    prefix = run.prompts.prefix if share_prefix else ()
    steps_per_epoch = -(-len(items) // (args.batch_size * args.grad_accum))
    total_steps = min(args.max_steps or 1 << 62, steps_per_epoch * args.epochs)
    optimizer = build_optimizer(model.parameters(), args.optimizer, args.lr, args.weight_decay)
    schedule = build_schedule(optimizer, total_steps, args.warmup_ratio, args.decay)
    autocast, scaler = _precision(args.precision, device)
    echo(f"training {len(items)} examples for {args.epochs} epoch(s): {total_steps} optimiser steps of "
         f"{args.batch_size * args.grad_accum} examples, lr {args.lr:g}, {args.optimizer}")

    best_f1, best_state, step = -1.0, None, 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        batches = list(length_grouped_batches(items, args.batch_size, seed=args.seed + epoch))
        bar = tqdm(total=len(items), desc=f"epoch {epoch}/{args.epochs}", unit="ex")
        epoch_started, seen, running = time.perf_counter(), 0, None
        for index, group in enumerate(batches):
            batch = collate(group, prefix, pad_id).to(device)
            with autocast():
                loss = completion_loss(model, batch)
            scaler.scale(loss / args.grad_accum).backward()
            if (index + 1) % args.grad_accum == 0 or index + 1 == len(batches):
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                schedule.step()
                step += 1
            value = loss.item()
            running = value if running is None else 0.9 * running + 0.1 * value
            history["steps"].append({"step": step, "epoch": epoch, "loss": value,
                                     "lr": schedule.get_last_lr()[0]})
            seen += len(group)
            bar.update(len(group))
            bar.set_postfix(loss=f"{running:.3f}", ex_per_s=f"{seen / (time.perf_counter() - epoch_started):.2f}")
            if args.max_steps and step >= args.max_steps:
                break
        bar.close()

        val = evaluate(model, run.prompts, run.splits.val, pad_id, device, args.eval_batch_size, "validate")
        record = {"epoch": epoch, "step": step, "train_loss": running,
                  "epoch_time_s": time.perf_counter() - epoch_started, "val": val}
        history["epochs"].append(record)
        echo(format_metrics(val, f"epoch {epoch}: train loss {running:.4f}, validation:"))
        if val["macro_f1"] > best_f1:
            best_f1, history["best_epoch"] = val["macro_f1"], epoch
            best_state = {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()
                          if p.requires_grad}
        if args.max_steps and step >= args.max_steps:
            break
    history["train_time_s"] = time.perf_counter() - started
    if best_state is not None and history["best_epoch"] != history["epochs"][-1]["epoch"]:
        echo(f"keeping epoch {history['best_epoch']} (best validation macro-F1 {best_f1:.4f})")
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in best_state.items():
                params[name].copy_(value)
    model.eval()
    return history


def _precision(precision: str, device):
    """(autocast context factory, grad scaler) for the requested precision on ``device``."""
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise TrainingError("--precision fp16 needs a CUDA device; use fp32 or bf16 on the CPU.")
    enabled = precision != "fp32"
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    return (lambda: torch.autocast(device.type, dtype=dtype, enabled=enabled)), scaler


# -- evaluate -------------------------------------------------------------------------------------

def final_evaluations(run: Run, echo) -> dict:
    """The kept weights on the held-out test split and on every --eval-on set."""
    sets = {}
    if run.splits.test:
        sets["test"] = run.splits.test
    sets.update(run.splits.evals)
    results = {}
    for name, examples in sets.items():
        results[name] = evaluate(run.model, run.prompts, examples, run.loaded.tokenizer.pad_token_id,
                                 run.loaded.device, run.args.eval_batch_size, name)
        echo(format_metrics(results[name], f"{name}:"))
    return results


# -- save -----------------------------------------------------------------------------------------

def describe(run: Run, history: dict, evaluations: dict, total_time: float) -> dict:
    args, loaded = run.args, run.loaded
    best = next(e for e in history["epochs"] if e["epoch"] == history["best_epoch"]) if history["epochs"] else None
    return {
        "version": args.version or f"{args.strategy}-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        "base_model": loaded.model_name,
        "base_fingerprint": loaded.fingerprint,
        "quantization": loaded.quantization,
        "template_id": TEMPLATE_ID,
        "labels": list(LABELS),
        "strategy": args.strategy,
        "max_message_tokens": args.max_message_tokens,
        "few_shot_examples": [[e.text, e.label] for e in run.few_shot],
        "hyperparameters": args.hyperparameters(),
        "trainable_parameters": run.trainable,
        "total_parameters": run.total,
        "data": run.splits.report,
        "epochs": [{k: v for k, v in e.items()} for e in history["epochs"]],
        "best_epoch": history["best_epoch"],
        "validation": best["val"] if best else None,
        "evaluations": evaluations,
        "training_time_s": round(history["train_time_s"], 1),
        "total_time_s": round(total_time, 1),
        **_peak_memory(loaded.device),
        "device": str(loaded.device),
        "versions": _versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save(run: Run, metadata: dict, history: dict) -> None:
    def fill(tmp: Path) -> None:
        if run.args.strategy in ("attention", "all"):
            run.model.save_pretrained(str(tmp))
            _name_hub_base(tmp / PEFT_CONFIG_FILE, run.loaded.model_name)
        elif run.args.strategy == "1d":
            from safetensors.torch import save_file

            save_file(one_d_state(run.model), str(tmp / ONE_D_WEIGHTS_FILE))
        artifacts.write_json(tmp / METADATA_FILE, metadata)
        (tmp / TRAINING_SET_FILE).write_text(to_jsonl(run.splits.train), encoding="utf-8")
        if run.splits.test:
            (tmp / "test.jsonl").write_text(to_jsonl(run.splits.test), encoding="utf-8")
        steps = [{"type": "step", **s} for s in history["steps"]]
        epochs = [{"type": "epoch", **e} for e in history["epochs"]]
        artifacts.write_jsonl(tmp / artifacts.METRICS_FILE, steps + epochs)
        artifacts.write_json(tmp / "eval_val.json", metadata["validation"])
        for name, result in metadata["evaluations"].items():
            artifacts.write_json(tmp / f"eval_{name}.json", result)
        artifacts.plot_loss(tmp / artifacts.LOSS_PLOT, history["steps"], history["epochs"])
        if metadata["validation"]:
            artifacts.plot_confusion(tmp / artifacts.CONFUSION_PLOT, metadata["validation"],
                                     f"{run.args.strategy}, validation (epoch {history['best_epoch']})")

    artifacts.write_atomically(run.args.out, fill)


def _name_hub_base(config_file: Path, model_name: str) -> None:
    """PEFT records the local checkpoint path; for an alias, name the Hub model so others can load it."""
    hub_id = MODEL_ALIASES.get(model_name)
    if hub_id is None:
        return
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = hub_id
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _peak_memory(device) -> dict:
    if device.type == "cuda":
        return {"peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
                "peak_memory_kind": "cuda max_memory_allocated"}
    # ru_maxrss is in KiB on Linux: the whole process's peak resident memory, model and data included.
    return {"peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_memory_kind": "process peak RSS"}


def _versions() -> dict:
    import importlib.metadata as md

    found = {}
    for package in ("torch", "transformers", "peft", "bitsandbytes", "modbot"):
        with contextlib.suppress(md.PackageNotFoundError):
            found[package] = md.version(package)
    return found
