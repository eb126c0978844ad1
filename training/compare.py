"""The strategy comparison: the same data through 1d, attention, all and few-shot, one table.

Each strategy trains in a child process of its own, so its peak memory is its own and one run's
leftovers cannot slow the next. Only plain values cross back: the child reports an error as its message,
and a child that dies without a word (killed, out of memory) is noticed by its exit status, so the
command ends with the one-line error either way instead of waiting forever.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import replace
from pathlib import Path

from model.adapter import METADATA_FILE
from model.errors import ModbotError

from .args import TrainArgs
from .errors import TrainingError

# Published accuracies of the reference experiment on the same 200 validation messages.
REFERENCE = [
    {"system": "GPT-J-6B few-shot (reference)", "accuracy": 0.58},
    {"system": "ChatGPT zero-shot (reference)", "accuracy": 0.71},
    {"system": "GPT-3 Davinci fine-tuned (reference)", "accuracy": 0.84},
]


def compare(base: TrainArgs, strategies: list[str], out: Path, resume: bool, echo=print) -> list[dict]:
    rows = []
    for strategy in strategies:
        args = replace(base, strategy=strategy, out=out / strategy)
        if resume and (args.out / METADATA_FILE).is_file():
            echo(f"{strategy}: reusing the finished run in {args.out}")
        else:
            echo(f"{strategy}: training into {args.out}")
            _train_in_child(args)
        rows.append(row_from_metadata(json.loads((args.out / METADATA_FILE).read_text(encoding="utf-8"))))
    return rows


def _train_in_child(args: TrainArgs) -> None:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(args, send), name=f"modbot-compare-{args.strategy}")
    child.start()
    send.close()  # the child holds the only writing end: its death ends recv() with EOFError
    try:
        kind, message = receive.recv()
    except EOFError:
        kind, message = "died", None
    finally:
        receive.close()
        child.join()
    if kind == "error":
        raise ModbotError(message)
    if kind == "crash":
        raise TrainingError(f"{args.strategy}: training failed: {message}")
    if kind != "done":
        raise TrainingError(f"{args.strategy}: the training process ended without a result "
                            f"(exit status {child.exitcode}; out of memory?).")


def _child(args: TrainArgs, send) -> None:
    """Run one strategy and send back ("done" | "error" | "crash", message): strings, never exception objects
    (an exception whose constructor takes other arguments than its message cannot be unpickled)."""
    from .recipe import run_training

    try:
        run_training(args)
        outcome = ("done", None)
    except ModbotError as exc:
        outcome = ("error", str(exc))
    except KeyboardInterrupt:
        return  # Ctrl-C reached the whole process group: the parent reports it
    except Exception as exc:
        outcome = ("crash", f"{type(exc).__name__}: {exc}")
    send.send(outcome)
    send.close()


def row_from_metadata(meta: dict) -> dict:
    val = meta["validation"]
    return {
        "strategy": meta["strategy"],
        "accuracy": round(val["accuracy"], 4),
        "macro_f1": round(val["macro_f1"], 4),
        "f1_hate": round(val["per_class"]["hate"]["f1"], 4),
        "n": val["n"],
        "trainable_parameters": meta["trainable_parameters"],
        "epochs": 0 if meta["strategy"] == "few-shot" else len(meta["epochs"]),
        "best_epoch": meta["best_epoch"],
        "training_time_s": meta["training_time_s"],
        "peak_memory_mb": meta["peak_memory_mb"],
        "adapter": meta.get("version"),
    }


def markdown_table(rows: list[dict], reference: bool = True) -> str:
    lines = [
        "| strategy | accuracy | macro-F1 | hate F1 | trainable parameters | training time | peak memory |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['f1_hate']:.3f} | "
            f"{r['trainable_parameters']:,} | {_duration(r['training_time_s'])} | {r['peak_memory_mb']:,.0f} MB |"
        )
    if reference:
        for ref in REFERENCE:
            lines.append(f"| {ref['system']} | {ref['accuracy']:.2f} | | | | | |")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
