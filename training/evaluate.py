"""Measuring a model on labelled examples: the serving path's label scores, plus the completion loss."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from model.fast_path import PrefixScorer, supports_prefix_cache
from model.labels import LABELS, most_severe
from model.prompt import PromptBuilder
from model.scoring import label_log_likelihoods

from .formats import Example
from .metrics import classification_metrics


@torch.no_grad()
def evaluate(model, prompts: PromptBuilder, examples: Sequence[Example], pad_id: int, device, batch_size: int = 32,
             desc: str = "eval", keep_predictions: bool = False) -> dict:
    """Metrics of ``model`` on ``examples``, predicting exactly as `model.Classifier` does.

    ``loss`` is the mean over examples of the completion's per-token negative log-likelihood (the
    training loss, measured on the same forward pass that scores the labels). ``keep_predictions`` adds
    ``predicted``: each example's predicted label, in order.
    """
    was_training = model.training
    model.eval()
    # Every window of every message, scored in length-sorted batches; a message's most severe window
    # decides its label, as in serving.
    windows = [(ids, number) for number, example in enumerate(examples)
               for ids in (prompt.ids for prompt in prompts.encode_windows(example.text))]
    windows.sort(key=lambda item: len(item[0]))
    # The instruction prefix's keys and values once for the whole evaluation (the weights do not change
    # during it), as the classifier serves: only each message and its cue run per example.
    scorer = PrefixScorer(model, prompts.prefix, prompts.label_ids, pad_id, device) \
        if supports_prefix_cache(model) else None
    prefix_length = len(prompts.prefix)
    rows: list[list] = [[] for _ in examples]
    started = time.perf_counter()
    with tqdm(total=len(windows), desc=desc, unit="window", leave=False) as bar:
        for start in range(0, len(windows), batch_size):
            chunk = windows[start:start + batch_size]
            if scorer is not None:
                scores = scorer.score([ids[prefix_length:] for ids, _ in chunk], exact=True)
            else:
                scores = label_log_likelihoods(model, [ids for ids, _ in chunk], prompts.label_ids, pad_id, device)
            for row, (_, number) in zip(scores.float().cpu(), chunk, strict=True):
                rows[number].append(row)
            bar.update(len(chunk))
            bar.set_postfix(per_s=f"{bar.n / (time.perf_counter() - started):.1f}")
    label_index = {label: i for i, label in enumerate(LABELS)}
    gold, predicted, losses = [], [], []
    for example, scored in zip(examples, rows, strict=True):
        row = scored[most_severe([r.softmax(-1).tolist() for r in scored])]
        gold.append(example.label)
        predicted.append(LABELS[int(row.argmax())])
        losses.append(-float(row[label_index[example.label]]) / len(prompts.label_ids[example.label]))
    if was_training:
        model.train()
    metrics = classification_metrics(gold, predicted)
    metrics["loss"] = sum(losses) / len(losses) if losses else None
    if keep_predictions:
        metrics["predicted"] = predicted
    return metrics


def by_category(examples: Sequence[Example], predicted: Sequence[str]) -> list[dict]:
    """Accuracy per category and where its errors went: one row per category, in first-seen order."""
    rows: dict[str, dict] = {}
    for example, guess in zip(examples, predicted, strict=True):
        row = rows.setdefault(example.category or "(none)", {
            "category": example.category or "(none)", "label": example.label, "n": 0, "correct": 0,
            "predicted": dict.fromkeys(LABELS, 0)})
        row["n"] += 1
        row["correct"] += guess == example.label
        row["predicted"][guess] += 1
        if row["label"] != example.label:
            row["label"] = "mixed"
    for row in rows.values():
        row["accuracy"] = row["correct"] / row["n"]
    return list(rows.values())


def format_by_category(rows: Sequence[dict]) -> str:
    """A Markdown table: each category's expected label, accuracy, and how many went to each label."""
    lines = ["| category | expected | n | accuracy | as hate | as offensive | as neutral |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        shares = " | ".join(f"{row['predicted'][label] / row['n']:.0%}" for label in LABELS)
        lines.append(f"| {row['category']} | {row['label']} | {row['n']} | {row['accuracy']:.0%} | {shares} |")
    return "\n".join(lines)


def evaluate_sets(classifier, sets: dict[str, Sequence[Example] | None], batch_size: int = 32) -> dict[str, dict | None]:
    """``evaluate`` on each named set with a loaded `model.Classifier` (a set given as None stays None)."""
    loaded = classifier.loaded
    return {name: None if examples is None else
            evaluate(loaded.model, classifier.prompts, examples, loaded.tokenizer.pad_token_id, loaded.device,
                     batch_size, name)
            for name, examples in sets.items()}
