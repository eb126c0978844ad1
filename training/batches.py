"""Training batches: the serving prompt plus the completion, loss on the completion only.

Every prompt begins with the same instruction prefix, so a batch carries that prefix once and the
per-example part (message, cue, completion) left-padded behind it: the model runs the prefix once per
batch and shares its keys and values, which is exact (the same attention, positions and gradients)
and about halves the work on short messages. Left padding also puts every completion at the end, so
only the last few positions need the vocabulary-sized output layer.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from model.prompt import PromptBuilder

from .formats import Example

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One example as token runs: the shared prefix is not repeated here."""

    body: tuple[int, ...]  # message + cue + completion
    labels: tuple[int, ...]  # IGNORE except on the completion
    truncated: bool


@dataclass
class Batch:
    prefix: torch.Tensor  # [1, P] the shared instruction prefix (P may be 0)
    input_ids: torch.Tensor  # [B, L] left-padded bodies
    attention_mask: torch.Tensor  # [B, L]
    labels: torch.Tensor  # [B, L]
    completion_width: int  # the longest completion in the batch

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device) -> Batch:
        return Batch(self.prefix.to(device), self.input_ids.to(device), self.attention_mask.to(device),
                     self.labels.to(device), self.completion_width)


def encode(prompts: PromptBuilder, example: Example, share_prefix: bool = True) -> Encoded:
    ids, labels = prompts.encode_example(example.text, example.label)
    truncated = prompts.encode(example.text).truncated
    if share_prefix:
        cut = len(prompts.prefix)
        ids, labels = ids[cut:], labels[cut:]
    return Encoded(tuple(ids), tuple(labels), truncated)


def collate(items: Sequence[Encoded], prefix: Sequence[int], pad_id: int) -> Batch:
    """Left-pad a batch to its own longest body (dynamic padding)."""
    width = max(len(item.body) for item in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item.body)
        ids[row, width - n:] = torch.tensor(item.body)
        mask[row, width - n:] = 1
        labels[row, width - n:] = torch.tensor(item.labels)
    completion = max(sum(1 for value in item.labels if value != IGNORE) for item in items)
    return Batch(torch.tensor([list(prefix)], dtype=torch.long), ids, mask, labels, completion)


def length_grouped_batches(items: Sequence[Encoded], batch_size: int, seed: int) -> Iterator[list[Encoded]]:
    """Random batches of similar length (less padding), in random order; a fresh order per seed."""
    rng = random.Random(seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    window = batch_size * 16
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: len(items[i].body))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    for batch in batches:
        yield [items[i] for i in batch]
