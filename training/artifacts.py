"""Writing an adapter directory: weights, metadata, training set, metrics and plots, all or nothing.

Everything is written into a hidden temporary directory beside the destination and renamed into
place at the end, so an interrupted run never leaves a half-written adapter where a loader looks.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .errors import TrainingError

METRICS_FILE = "metrics.jsonl"
LOSS_PLOT = "loss_curve.png"
CONFUSION_PLOT = "confusion_matrix.png"


def check_destination(out: Path, overwrite: bool) -> None:
    """Fail before training, not after it, when the output directory is in the way."""
    if out.exists() and not overwrite:
        raise TrainingError(f"--out {out} already exists: choose another directory or pass --overwrite.")
    if out.exists() and not out.is_dir():
        raise TrainingError(f"--out {out} is a file: choose a directory path.")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainingError(f"--out {out}: cannot create its parent directory ({exc}).") from None


def write_atomically(out: Path, fill: Callable[[Path], None]) -> None:
    """Call ``fill(tmp)`` to write the directory's contents, then move ``tmp`` to ``out``."""
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=0o700, parents=True)
    try:
        fill(tmp)
        _make_private(tmp)
        _fsync_tree(tmp)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _make_private(directory: Path) -> None:
    """Files 0600, directories 0700: an adapter's train.jsonl holds the messages it was trained on."""
    for path in directory.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def plot_loss(path: Path, steps: list[dict], epochs: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    if steps:
        x = [s["step"] for s in steps]
        y = [s["loss"] for s in steps]
        ax.plot(x, y, alpha=0.3, color="tab:blue", label="train (per step)")
        window = max(1, len(y) // 20)
        smooth = [sum(y[max(0, i - window + 1):i + 1]) / len(y[max(0, i - window + 1):i + 1]) for i in range(len(y))]
        ax.plot(x, smooth, color="tab:blue", label="train (smoothed)")
    val = [(e["step"], e["val"]["loss"]) for e in epochs if e["val"].get("loss") is not None]
    if val:
        ax.plot(*zip(*val, strict=True), "o-", color="tab:orange", label="validation")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("completion loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confusion(path: Path, metrics: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = metrics["labels"]
    matrix = metrics["confusion_matrix"]
    fig, ax = plt.subplots(figsize=(4.2, 3.8), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
