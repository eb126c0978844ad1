"""Measuring a model on labelled examples: the serving path's label scores, plus the completion loss."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from model.labels import LABELS
from model.prompt import PromptBuilder
from model.scoring import label_log_likelihoods

from .formats import Example
from .metrics import classification_metrics


@torch.no_grad()
def evaluate(model, prompts: PromptBuilder, examples: Sequence[Example], pad_id: int, device, batch_size: int = 32,
             desc: str = "eval") -> dict:
    """Metrics of ``model`` on ``examples``, predicting exactly as `model.Classifier` does.

    ``loss`` is the mean over examples of the completion's per-token negative log-likelihood (the
    training loss, measured on the same forward pass that scores the labels).
    """
    was_training = model.training
    model.eval()
    encoded = sorted(((prompts.encode(e.text).ids, e) for e in examples), key=lambda item: len(item[0]))
    gold, predicted, losses = [], [], []
    label_index = {label: i for i, label in enumerate(LABELS)}
    started = time.perf_counter()
    with tqdm(total=len(encoded), desc=desc, unit="msg", leave=False) as bar:
        for start in range(0, len(encoded), batch_size):
            chunk = encoded[start:start + batch_size]
            scores = label_log_likelihoods(model, [ids for ids, _ in chunk], prompts.label_ids, pad_id, device)
            for row, (_, example) in zip(scores.float().cpu(), chunk, strict=True):
                gold.append(example.label)
                predicted.append(LABELS[int(row.argmax())])
                losses.append(-float(row[label_index[example.label]]) / len(prompts.label_ids[example.label]))
            bar.update(len(chunk))
            bar.set_postfix(msg_per_s=f"{bar.n / (time.perf_counter() - started):.1f}")
    if was_training:
        model.train()
    metrics = classification_metrics(gold, predicted)
    metrics["loss"] = sum(losses) / len(losses) if losses else None
    return metrics


def evaluate_sets(classifier, sets: dict[str, Sequence[Example] | None], batch_size: int = 32) -> dict[str, dict | None]:
    """``evaluate`` on each named set with a loaded `model.Classifier` (a set given as None stays None)."""
    loaded = classifier.loaded
    return {name: None if examples is None else
            evaluate(loaded.model, classifier.prompts, examples, loaded.tokenizer.pad_token_id, loaded.device,
                     batch_size, name)
            for name, examples in sets.items()}
