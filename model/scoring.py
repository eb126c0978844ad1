"""Label scoring: the log-likelihood of each label as the completion of each prompt.

No text is generated. When every label is one token, one forward pass over the batch gives all of
them (the next-token distribution at the cue). When some label spans several tokens, each prompt is
run once per label with that label's tokens appended, and the label's token log-probabilities are
summed: exact, at the cost of one sequence per (prompt, label) pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def pad_left(sequences: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token runs into (input_ids, attention_mask): every sequence ends at the last column."""
    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
    return ids.to(device), mask.to(device)


def positions_for(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 at each sequence's first real token, so padding changes nothing."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _last_logits(model, sequences: Sequence[Sequence[int]], pad_id: int, device, keep: int) -> torch.Tensor:
    """Log-softmax over the vocabulary at each sequence's last ``keep`` positions: [batch, keep, vocab]."""
    ids, mask = pad_left(sequences, pad_id, device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions_for(mask), logits_to_keep=keep,
                use_cache=False)
    return torch.log_softmax(out.logits[:, -keep:, :].float(), dim=-1)


@torch.inference_mode()
def label_log_likelihoods(
    model, prompts: Sequence[Sequence[int]], label_ids: Mapping[str, Sequence[int]], pad_id: int, device
) -> torch.Tensor:
    """[len(prompts), len(label_ids)] summed log-probabilities of each label's tokens after each prompt."""
    labels = list(label_ids)
    if all(len(label_ids[label]) == 1 for label in labels):
        logprobs = _last_logits(model, prompts, pad_id, device, keep=1)[:, 0, :]
        first_tokens = torch.tensor([label_ids[label][0] for label in labels], device=logprobs.device)
        return logprobs[:, first_tokens]

    # One sequence per (prompt, label): the prompt plus all but the label's last token. Its last k
    # positions predict the label's k tokens.
    longest = max(len(label_ids[label]) for label in labels)
    sequences = [list(prompt) + list(label_ids[label][:-1]) for prompt in prompts for label in labels]
    logprobs = _last_logits(model, sequences, pad_id, device, keep=longest)
    scores = torch.empty(len(prompts), len(labels))
    for row, _ in enumerate(prompts):
        for col, label in enumerate(labels):
            tokens = label_ids[label]
            k = len(tokens)
            seq_logprobs = logprobs[row * len(labels) + col, longest - k:, :]
            at = seq_logprobs.device
            scores[row, col] = seq_logprobs[torch.arange(k, device=at), torch.tensor(tokens, device=at)].sum()
    return scores
