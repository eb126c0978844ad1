"""The serving fast path: cached instruction prefix, label rows of the head, merged LoRA, bf16 serving.

Each test compares the fast path with the plain scoring path (full prompts, left padding, no cache),
which ``test_classifier.py`` checks against brute force.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from model import Classifier, ModelError, ModelSettings, load_model
from model.fast_path import PrefixScorer
from model.labels import LABELS
from model.prompt import PromptBuilder
from model.scoring import label_log_likelihoods

from .helpers import make_lora_adapter

# Lengths from one token to several dozen, so a batch holds a lot of padding between prefix and message.
TEXTS = [
    "ok",
    "you are a good friend",
    "shut up you stupid idiot",
    "those people are vermin and should leave",
    "what time is the meeting tomorrow? " * 4,
    "@user #channel [link] :smile:",
    "the quick brown fox jumps over the lazy dog and then keeps running for a very long time " * 2,
]


def uncached_probabilities(loaded, builder, texts):
    """The plain path: full prompts in one left-padded batch, whole forward pass, log-softmax over the vocabulary."""
    prompts = [builder.encode(text).ids for text in texts]
    scores = label_log_likelihoods(loaded.model, prompts, builder.label_ids, loaded.tokenizer.pad_token_id,
                                   loaded.device)
    return scores.softmax(-1)


def scorer_for(loaded, builder, label_ids=None):
    return PrefixScorer(loaded.model, builder.prefix, label_ids or builder.label_ids, loaded.tokenizer.pad_token_id,
                        loaded.device)


def tails(builder, texts):
    return [[*prompt.message, *prompt.suffix] for prompt in map(builder.encode, texts)]


def as_rows(predictions):
    return torch.tensor([[p.probabilities[label] for label in LABELS] for p in predictions])


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "tiny_multitoken_model_dir"])
def test_cached_prefix_gives_the_uncached_probabilities(request, fixture, tmp_path):
    settings = ModelSettings(model=str(request.getfixturevalue(fixture)), device="cpu", quantization="none",
                             use_default_adapter=False, cache_dir=tmp_path)
    loaded = load_model(settings)
    builder = PromptBuilder(loaded.tokenizer)
    scorer = scorer_for(loaded, builder)
    assert scorer.single_token == (fixture == "tiny_model_dir")
    expected = uncached_probabilities(loaded, builder, TEXTS)
    together = scorer.score(tails(builder, TEXTS)).softmax(-1)
    torch.testing.assert_close(together, expected, atol=1e-5, rtol=0)
    # The cached prefix is not changed by use: one message at a time, after a batch, gives the same.
    for text, row in zip(TEXTS, expected, strict=True):
        torch.testing.assert_close(scorer.score(tails(builder, [text])).softmax(-1)[0], row, atol=1e-5, rtol=0)


def test_multi_token_labels_are_exact_log_likelihoods(tiny_multitoken_model_dir, tmp_path):
    settings = ModelSettings(model=str(tiny_multitoken_model_dir), device="cpu", quantization="none",
                             use_default_adapter=False, cache_dir=tmp_path)
    loaded = load_model(settings)
    builder = PromptBuilder(loaded.tokenizer)
    assert all(len(ids) > 1 for ids in builder.label_ids.values())
    expected = label_log_likelihoods(loaded.model, [builder.encode(t).ids for t in TEXTS], builder.label_ids,
                                     loaded.tokenizer.pad_token_id, loaded.device)
    torch.testing.assert_close(scorer_for(loaded, builder).score(tails(builder, TEXTS)), expected, atol=1e-4, rtol=0)


def test_classifier_serves_through_the_prefix_cache(tiny_settings):
    classifier = Classifier.from_settings(tiny_settings)
    predictions = classifier.classify(TEXTS)
    assert classifier._serving.scorer is not None  # the fast path, not the fallback
    expected = uncached_probabilities(classifier.loaded, classifier.prompts, TEXTS)
    torch.testing.assert_close(as_rows(predictions), expected, atol=1e-5, rtol=0)


def test_lora_is_merged_in_place_for_fp32_serving_and_unmerged_on_swap(tiny_settings, tmp_path):
    from peft.tuners.tuners_utils import BaseTunerLayer

    first_dir = make_lora_adapter(tiny_settings, tmp_path / "first", seed=1)
    second_dir = make_lora_adapter(tiny_settings, tmp_path / "second", seed=2)
    first = load_model(replace(tiny_settings, adapter=first_dir))
    builder = PromptBuilder(first.tokenizer)
    unmerged_expected = uncached_probabilities(first, builder, TEXTS)
    weights_before = {name: p.detach().clone() for name, p in first.model.named_parameters()}

    classifier = Classifier(first, inference="fp32")
    predictions = classifier.classify(TEXTS)
    assert classifier._serving.mode == "fp32" and classifier._serving.model is first.model
    lora_layers = [m for m in first.model.modules() if isinstance(m, BaseTunerLayer)]
    assert lora_layers and all(layer.merged for layer in lora_layers)
    torch.testing.assert_close(as_rows(predictions), unmerged_expected, atol=1e-5, rtol=0)

    # A swap unmerges the first adapter (its weights are back as they were) and recomputes the prefix
    # cache for the second: the same texts then score as a fresh classifier with the second adapter.
    second = load_model(replace(tiny_settings, adapter=second_dir))
    classifier.set_model(second)
    swapped = classifier.classify(TEXTS)
    assert not any(layer.merged for layer in lora_layers)
    for name, param in first.model.named_parameters():
        torch.testing.assert_close(param, weights_before[name], atol=1e-6, rtol=0)
    assert all(p.adapter_version == "test-2" for p in swapped)
    fresh = Classifier.from_settings(replace(tiny_settings, adapter=second_dir)).classify(TEXTS)
    torch.testing.assert_close(as_rows(swapped), as_rows(fresh), atol=1e-6, rtol=0)
    assert not torch.allclose(as_rows(swapped), as_rows(predictions), atol=1e-3)


def test_auto_serves_a_merged_copy_with_packed_linear_layers(tiny_settings, tmp_path):
    from peft.tuners.tuners_utils import BaseTunerLayer

    from model.fast_path import PackedLinear, can_pack_linears

    assert can_pack_linears()  # the CPU build of torch that the project pins has the oneDNN kernels
    adapter_dir = make_lora_adapter(tiny_settings, tmp_path / "adapter")
    loaded = load_model(replace(tiny_settings, adapter=adapter_dir))
    expected = uncached_probabilities(loaded, PromptBuilder(loaded.tokenizer), TEXTS)
    classifier = Classifier(loaded)
    predictions = classifier.classify(TEXTS)
    serving = classifier._serving
    assert serving.mode == "fp32-packed" and serving.scorer is not None
    assert any(isinstance(m, PackedLinear) for m in serving.model.modules())
    assert not any(isinstance(m, BaseTunerLayer) for m in serving.model.modules())  # merged into the copy
    # The loaded model is untouched: still the unmerged adapter on plain linear layers.
    assert not any(m.merged for m in loaded.model.modules() if isinstance(m, BaseTunerLayer))
    assert not any(isinstance(m, PackedLinear) for m in loaded.model.modules())
    torch.testing.assert_close(as_rows(predictions), expected, atol=1e-5, rtol=0)
    # Alone or in a batch, the same.
    alone = [classifier.classify([text])[0] for text in TEXTS]
    torch.testing.assert_close(as_rows(alone), as_rows(predictions), atol=1e-5, rtol=0)


def test_quantised_base_is_served_unmerged_through_the_cache(tiny_settings, tmp_path):
    from peft.tuners.tuners_utils import BaseTunerLayer

    adapter_dir = make_lora_adapter(tiny_settings, tmp_path / "adapter")
    loaded = load_model(replace(tiny_settings, adapter=adapter_dir, quantization="8bit"))
    classifier = Classifier(loaded)
    predictions = classifier.classify(TEXTS)
    assert classifier._serving.scorer is not None
    assert not any(m.merged for m in loaded.model.modules() if isinstance(m, BaseTunerLayer))
    expected = uncached_probabilities(loaded, classifier.prompts, TEXTS)
    torch.testing.assert_close(as_rows(predictions), expected, atol=1e-4, rtol=0)


def test_bf16_serving_uses_a_copy_and_stays_close(tiny_settings, tmp_path):
    adapter_dir = make_lora_adapter(tiny_settings, tmp_path / "adapter")
    settings = replace(tiny_settings, adapter=adapter_dir)
    fp32 = Classifier.from_settings(replace(settings, inference="fp32")).classify(TEXTS)
    classifier = Classifier.from_settings(replace(settings, inference="bf16"))
    bf16 = classifier.classify(TEXTS)
    assert next(classifier._serving.model.parameters()).dtype == torch.bfloat16
    # The loaded model keeps its fp32 weights and its unmerged adapter, for training and swapping.
    assert next(classifier.loaded.model.parameters()).dtype == torch.float32
    assert classifier.loaded.model.active_peft_config is not None
    torch.testing.assert_close(as_rows(bf16), as_rows(fp32), atol=2e-2, rtol=0)


def test_inference_setting_is_read_and_checked():
    assert ModelSettings.from_env({}).inference == "auto"
    assert ModelSettings.from_env({"MODBOT_INFERENCE": "BF16"}).inference == "bf16"
    with pytest.raises(ModelError, match="MODBOT_INFERENCE"):
        ModelSettings.from_env({"MODBOT_INFERENCE": "int4"})


@pytest.mark.real_model
def test_real_default_model_cached_scoring_equals_uncached(tmp_path):
    loaded = load_model(ModelSettings(device="cpu", quantization="none", use_default_adapter=False))
    builder = PromptBuilder(loaded.tokenizer)
    assert all(len(ids) == 1 for ids in builder.label_ids.values())
    expected = uncached_probabilities(loaded, builder, TEXTS)
    torch.testing.assert_close(scorer_for(loaded, builder).score(tails(builder, TEXTS)).softmax(-1), expected,
                               atol=1e-4, rtol=0)
    # As served by default on the CPU: linear layers packed for oneDNN, the same probabilities.
    classifier = Classifier(loaded)
    torch.testing.assert_close(as_rows(classifier.classify(TEXTS)), expected, atol=1e-4, rtol=0)
    assert classifier._serving.mode == "fp32-packed"
    # Labels of several tokens in this tokenizer go through the exact path, with the cache too.
    multi = {"hate": builder._encode(" hate speech"), "offensive": builder._encode(" offensive"),
             "neutral": builder._encode(" neutral language here")}
    assert sorted(len(ids) for ids in multi.values()) == [1, 2, 3]
    prompts = [builder.encode(text).ids for text in TEXTS]
    reference = label_log_likelihoods(loaded.model, prompts, multi, loaded.tokenizer.pad_token_id, loaded.device)
    torch.testing.assert_close(scorer_for(loaded, builder, multi).score(tails(builder, TEXTS)), reference,
                               atol=1e-3, rtol=0)
