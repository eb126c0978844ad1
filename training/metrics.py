"""Classification metrics: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence

from model.labels import LABELS


def classification_metrics(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = LABELS) -> dict:
    """Rows of the confusion matrix are the true labels, columns the predictions, both in ``labels`` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for truth, guess in zip(gold, predicted, strict=True):
        matrix[index[truth]][index[guess]] += 1
    per_class = {}
    for i, label in enumerate(labels):
        tp = matrix[i][i]
        predicted_as = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = tp / predicted_as if predicted_as else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    n = len(gold)
    return {
        "n": n,
        "accuracy": sum(matrix[i][i] for i in range(len(labels))) / n if n else 0.0,
        "macro_f1": sum(c["f1"] for c in per_class.values()) / len(labels),
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": matrix,
    }


def format_metrics(metrics: dict, title: str = "") -> str:
    """A short human-readable report (for the terminal)."""
    lines = [title] if title else []
    loss = f"  loss {metrics['loss']:.4f}" if metrics.get("loss") is not None else ""
    lines.append(f"n {metrics['n']}  accuracy {metrics['accuracy']:.4f}  macro_f1 {metrics['macro_f1']:.4f}{loss}")
    lines.append(f"{'':<10} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for label, c in metrics["per_class"].items():
        lines.append(f"{label:<10} {c['precision']:>9.3f} {c['recall']:>7.3f} {c['f1']:>7.3f} {c['support']:>8}")
    labels = metrics["labels"]
    lines.append("confusion (rows true, columns predicted): " + " ".join(f"{label:>9}" for label in labels))
    for label, row in zip(labels, metrics["confusion_matrix"], strict=True):
        lines.append(f"  {label:<10}" + "".join(f"{value:>10}" for value in row))
    return "\n".join(lines)
