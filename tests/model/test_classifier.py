"""The classifier on a tiny GPT-J through the real loader: exact label scoring, batching, adapters."""

from __future__ import annotations

from dataclasses import replace

import pytest

from model import Classifier, ModelError, ModelSettings, load_model
from model.prompt import PromptBuilder

from .helpers import brute_force_probabilities, make_lora_adapter

MESSAGES = [
    "you are a good friend",
    "shut up you stupid idiot",
    "those people are vermin",
    "what time is the meeting tomorrow? " * 3,
    "ok",
    "the quick brown fox jumps over the lazy dog and then keeps running for a very long time",
]


def assert_close(rows, predictions, tolerance=1e-4):
    for row, prediction in zip(rows, predictions, strict=True):
        for expected, label in zip(row, ("hate", "offensive", "neutral"), strict=True):
            assert prediction.probabilities[label] == pytest.approx(expected, abs=tolerance)


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_multitoken_model_dir"])
@pytest.mark.parametrize("quantization", ["none", "8bit"])
def test_label_scoring_equals_brute_force(request, fixture, quantization, tmp_path):
    model_dir = request.getfixturevalue(fixture)
    settings = ModelSettings(model=str(model_dir), device="cpu", quantization=quantization,
                             use_default_adapter=False, cache_dir=tmp_path)
    classifier = Classifier.from_settings(settings)
    if quantization == "8bit":
        import bitsandbytes as bnb

        assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in classifier.loaded.model.modules())
    if fixture == "tiny_multitoken_model_dir":
        assert all(len(ids) > 1 for ids in classifier.prompts.label_ids.values())
    else:
        assert all(len(ids) == 1 for ids in classifier.prompts.label_ids.values())
    predictions = classifier.classify(MESSAGES)
    reference = brute_force_probabilities(classifier.loaded, classifier.prompts, MESSAGES)
    # LLM.int8 quantises activations row by row (per token), so padding leaves 8-bit results exact too.
    assert_close(reference, predictions, tolerance=1e-4)
    for prediction in predictions:
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.label == max(prediction.probabilities, key=prediction.probabilities.get)
        assert prediction.model == str(model_dir) and prediction.adapter_version == "zero-shot"


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_multitoken_model_dir"])
def test_result_does_not_depend_on_the_batch(request, fixture, tmp_path):
    settings = ModelSettings(model=str(request.getfixturevalue(fixture)), device="cpu", quantization="none",
                             use_default_adapter=False, cache_dir=tmp_path)
    loaded = load_model(settings)
    batched = Classifier(loaded, batch_size=16)
    single = Classifier(loaded, batch_size=1)
    texts = [f"message number {i} " + "padding words " * (i % 7) for i in range(16)]
    for alone, together in zip(single.classify(texts), batched.classify(texts), strict=True):
        assert alone.label == together.label
        for label in alone.probabilities:
            assert alone.probabilities[label] == pytest.approx(together.probabilities[label], abs=1e-5)


def test_deterministic(tiny_settings):
    classifier = Classifier.from_settings(tiny_settings)
    assert classifier.classify(MESSAGES) == classifier.classify(MESSAGES)


def test_empty_messages_are_skipped_without_the_model(tiny_settings):
    classifier = Classifier.from_settings(tiny_settings)
    predictions = classifier.classify(["", "   ", None, "real text"])
    assert [p.skipped for p in predictions] == [True, True, True, False]
    assert all(p.label == "neutral" and p.probabilities["neutral"] == 1.0 for p in predictions[:3])


def test_lora_adapter_round_trip(tiny_settings, tmp_path):
    adapter_dir = make_lora_adapter(tiny_settings, tmp_path / "adapter")
    base = Classifier.from_settings(tiny_settings)
    adapted = Classifier.from_settings(replace(tiny_settings, adapter=adapter_dir))
    assert adapted.adapter_version == "test-1" and not adapted.is_zero_shot
    predictions = adapted.classify(MESSAGES)
    # The loaded adapter gives exactly what the adapter's own weights give by brute force...
    assert_close(brute_force_probabilities(adapted.loaded, adapted.prompts, MESSAGES), predictions)
    # ...and it really changes the model's answers.
    before = base.classify(MESSAGES)
    assert any(abs(a.probabilities["hate"] - b.probabilities["hate"]) > 1e-3
               for a, b in zip(before, predictions, strict=True))
    # Loading it a second time gives identical probabilities.
    again = Classifier.from_settings(replace(tiny_settings, adapter=adapter_dir)).classify(MESSAGES)
    assert again == predictions


def test_adapter_of_another_base_model_is_refused(tiny_settings, tiny_multitoken_model_dir, tmp_path):
    other = replace(tiny_settings, model=str(tiny_multitoken_model_dir))
    adapter_dir = make_lora_adapter(other, tmp_path / "other-adapter")
    with pytest.raises(ModelError, match="trained on base model"):
        Classifier.from_settings(replace(tiny_settings, adapter=adapter_dir))


@pytest.mark.parametrize(
    ("override", "message"),
    [({"labels": ["spam", "ham"]}, "labels"), ({"template_id": "someone-elses-v9"}, "prompt template")],
)
def test_adapter_with_other_labels_or_template_is_refused(tiny_settings, tmp_path, override, message):
    adapter_dir = make_lora_adapter(tiny_settings, tmp_path / "adapter", **override)
    with pytest.raises(ModelError, match=message):
        Classifier.from_settings(replace(tiny_settings, adapter=adapter_dir))


def test_missing_and_corrupt_adapters_are_refused(tiny_settings, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Classifier.from_settings(replace(tiny_settings, adapter=tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a modbot adapter"):
        Classifier.from_settings(replace(tiny_settings, adapter=tmp_path / "empty"))
    adapter_dir = make_lora_adapter(tiny_settings, tmp_path / "adapter")
    (adapter_dir / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="could not be loaded"):
        Classifier.from_settings(replace(tiny_settings, adapter=adapter_dir))
    (adapter_dir / "modbot_adapter.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ModelError, match="corrupt"):
        Classifier.from_settings(replace(tiny_settings, adapter=adapter_dir))


def test_prompt_builder_is_shared_with_training(tiny_settings):
    classifier = Classifier.from_settings(tiny_settings)
    builder = PromptBuilder(classifier.loaded.tokenizer)
    assert builder.encode("hello").ids == classifier.prompts.encode("hello").ids
