"""The completion-only language-model loss of a batch, with the instruction prefix run once."""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from model.scoring import positions_for

from .batches import IGNORE, Batch


def completion_loss(model, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy over the vocabulary at the completion tokens; the prompt carries no loss."""
    size = len(batch)
    prefix_len = batch.prefix.shape[1]
    kwargs = {}
    if prefix_len:
        prefix_out = model(input_ids=batch.prefix, use_cache=True)
        cache = getattr(prefix_out, "cache", None) or prefix_out.past_key_values
        cache.batch_repeat_interleave(size)  # the same keys/values for every row, gradients summed
        ones = torch.ones((size, prefix_len), dtype=batch.attention_mask.dtype, device=batch.attention_mask.device)
        kwargs = {_cache_argument(model): cache, "use_cache": True}
        attention_mask = torch.cat([ones, batch.attention_mask], dim=1)
        position_ids = prefix_len + positions_for(batch.attention_mask)
    else:
        attention_mask = batch.attention_mask
        position_ids = positions_for(batch.attention_mask)
    # Completions sit at the end of each row: the last `width` + 1 positions predict them.
    keep = batch.completion_width + 1
    out = model(input_ids=batch.input_ids, attention_mask=attention_mask, position_ids=position_ids,
                logits_to_keep=keep, **kwargs)
    logits = out.logits[:, -keep:-1, :].float()
    targets = batch.labels[:, -keep + 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)


def _cache_argument(model) -> str:
    """transformers 5 renames `past_key_values` to `cache`, one model family at a time."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"
