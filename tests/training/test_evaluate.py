"""Evaluation reads messages as serving does (windows, cached prefix) and reports per category."""

from __future__ import annotations

import pytest

from model import Classifier, ModelSettings
from training import evaluate as evaluate_module
from training.evaluate import by_category, evaluate, format_by_category
from training.formats import Example

TEXTS = [("you are wonderful", "neutral"), ("shut up idiot", "offensive"), ("they are vermin", "hate"),
         ("see you at the meeting " * 20, "neutral"), ("ok", "neutral")]


@pytest.fixture
def classifier(tiny_settings):
    return Classifier.from_settings(ModelSettings(**{**tiny_settings.__dict__, "max_message_tokens": 16}))


def test_cached_prefix_evaluation_equals_full_prompts(classifier, monkeypatch):
    loaded = classifier.loaded
    examples = [Example(text, label) for text, label in TEXTS]
    args = (loaded.model, classifier.prompts, examples, loaded.tokenizer.pad_token_id, loaded.device)
    fast = evaluate(*args, keep_predictions=True)
    monkeypatch.setattr(evaluate_module, "supports_prefix_cache", lambda model: False)
    slow = evaluate(*args, keep_predictions=True)
    assert fast["predicted"] == slow["predicted"]
    assert fast["loss"] == pytest.approx(slow["loss"], rel=1e-4)


def test_evaluation_predicts_what_the_classifier_serves(classifier):
    loaded = classifier.loaded
    examples = [Example(text, label) for text, label in TEXTS]
    metrics = evaluate(loaded.model, classifier.prompts, examples, loaded.tokenizer.pad_token_id, loaded.device,
                       keep_predictions=True)
    assert metrics["predicted"] == [p.label for p in classifier.classify([t for t, _ in TEXTS])]


def test_by_category_counts_where_errors_go():
    examples = [Example("a", "neutral", category="self"), Example("b", "neutral", category="self"),
                Example("c", "hate", category="slur"), Example("d", "neutral", category="self")]
    rows = by_category(examples, ["neutral", "hate", "hate", "offensive"])
    self_row = next(r for r in rows if r["category"] == "self")
    assert self_row["n"] == 3 and self_row["correct"] == 1
    assert self_row["predicted"] == {"hate": 1, "offensive": 1, "neutral": 1}
    table = format_by_category(rows)
    assert "| self | neutral | 3 | 33% | 33% | 33% | 33% |" in table
    assert "| slur | hate | 1 | 100% | 100% | 0% | 0% |" in table
