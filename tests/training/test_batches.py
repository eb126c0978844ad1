"""The completion-only loss mask, truncation, dynamic padding and the shared-prefix forward pass."""

from __future__ import annotations

import pytest
import torch

from model import load_base
from model.prompt import PromptBuilder
from training.batches import IGNORE, collate, encode
from training.formats import Example
from training.loss import completion_loss
from training.strategies import apply_strategy


@pytest.fixture
def loaded(tiny_settings):
    return load_base(tiny_settings)


@pytest.mark.parametrize("multi", [False, True])
def test_only_completion_positions_carry_loss(request, multi, tiny_settings):
    from model import ModelSettings

    directory = request.getfixturevalue("tiny_multitoken_model_dir" if multi else "tiny_model_dir")
    settings = ModelSettings(**{**tiny_settings.__dict__, "model": str(directory)})
    prompts = PromptBuilder(load_base(settings).tokenizer, max_message_tokens=16)
    ids, labels = prompts.encode_example("what time is the meeting", "offensive")
    completion = list(prompts.label_ids["offensive"])
    assert (len(completion) > 1) == multi
    assert labels[-len(completion):] == completion == ids[-len(completion):]
    assert all(value == IGNORE for value in labels[:-len(completion)])


def test_a_truncated_long_message_keeps_its_completion_and_cue(loaded):
    prompts = PromptBuilder(loaded.tokenizer, max_message_tokens=12)
    item = encode(prompts, Example("the quick brown fox jumps over the lazy dog " * 40, "hate"))
    assert item.truncated
    completion = prompts.label_ids["hate"]
    assert item.body[-len(completion):] == completion
    assert item.body[-len(completion) - len(prompts.suffix):-len(completion)] == prompts.suffix
    assert len(item.body) <= 12 + len(prompts.suffix) + len(completion)


def test_batches_are_padded_to_their_own_longest_example(loaded):
    prompts = PromptBuilder(loaded.tokenizer, max_message_tokens=64)
    short = [encode(prompts, Example("hi", "neutral")), encode(prompts, Example("you are a good friend", "hate"))]
    batch = collate(short, prompts.prefix, loaded.tokenizer.pad_token_id)
    assert batch.input_ids.shape[1] == max(len(item.body) for item in short)
    assert batch.attention_mask.sum().item() == sum(len(item.body) for item in short)
    assert (batch.labels != IGNORE).sum().item() == 2


def test_sharing_the_prefix_gives_the_same_loss_and_gradients_as_full_prompts(loaded):
    torch.manual_seed(0)
    model = apply_strategy(loaded.model, "all", 4, 8, 0.0, quantized=False, gradient_checkpointing=False)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # non-zero, so that adapter gradients flow through the prefix too
            torch.nn.init.normal_(param, std=0.1)
    model.train()
    prompts = PromptBuilder(loaded.tokenizer, max_message_tokens=16)
    examples = [Example("shut up you stupid idiot", "offensive"), Example("what time", "neutral"),
                Example("those people are vermin and should leave now", "hate")]
    results = []
    for share in (True, False):
        items = [encode(prompts, e, share_prefix=share) for e in examples]
        batch = collate(items, prompts.prefix if share else (), loaded.tokenizer.pad_token_id)
        loss = completion_loss(model, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad()
        results.append((loss.item(), grads))
    (shared_loss, shared_grads), (full_loss, full_grads) = results
    assert shared_loss == pytest.approx(full_loss, rel=1e-5)
    assert shared_grads.keys() == full_grads.keys() and shared_grads
    for name, grad in shared_grads.items():
        torch.testing.assert_close(grad, full_grads[name], rtol=1e-4, atol=1e-6)
