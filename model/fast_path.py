"""Serving-time label scoring: the instruction prefix's key/value cache computed once, the head cut to the labels.

Every prompt starts with the same instruction (``PromptIds.prefix``), so its keys and values are the same
for every message. ``PrefixScorer`` runs it through the model once and then runs only each message and
its cue, attending to the cached prefix. A batch is laid out as

    [cached prefix, P columns] [left padding] [message + cue (+ label tokens)]

with an attention mask that hides the padding and position ids that continue from P at each row's first
real token, so a message sees exactly what it would see in the uncached prompt, wherever it is padded.

At the cue, only the label tokens' rows of the output head are computed. Their softmax over the labels
equals the softmax of the full log-likelihoods (the vocabulary's normaliser is the same for all of them),
so ``score`` returns logits there, not log-probabilities. Labels of several tokens need each token's
own normaliser: those are scored exactly, with the full head at the label positions only.

The cache belongs to one set of weights: build a new ``PrefixScorer`` when the adapter changes, is
merged or unmerged, or the model is quantised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

# Config attributes of models whose head does more than a linear projection (soft-capping, scaling):
# for those the model's own head is used, not the label rows of its weight.
_HEAD_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def _causal_lm(model):
    """The transformers CausalLM under a PeftModel (its LoRA layers stay in place), or the model itself."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def supports_prefix_cache(model) -> bool:
    """Whether the fast path applies: a decoder-only transformers model, not a prompt-learning PEFT adapter."""
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
        return False  # virtual tokens sit in front of the prompt: the prefix is not what the model sees
    lm = _causal_lm(model)
    body = getattr(lm, getattr(lm, "base_model_prefix", ""), None)
    return isinstance(body, nn.Module) and lm.get_output_embeddings() is not None


class PrefixScorer:
    """Scores labels after prompts that all start with ``prefix``, whose key/value cache is computed here once."""

    def __init__(self, model, prefix: Sequence[int], label_ids: Mapping[str, Sequence[int]], pad_id: int, device):
        if not prefix:
            raise ValueError("the shared prefix is empty: there is nothing to cache")
        self.model = model
        self.labels = list(label_ids)
        self.label_ids = {label: tuple(label_ids[label]) for label in self.labels}
        self.pad_id = pad_id
        self.device = device
        lm = _causal_lm(model)
        self._config = lm.config
        self._body = getattr(lm, lm.base_model_prefix)
        head = lm.get_output_embeddings()
        self._head = head
        self.single_token = all(len(ids) == 1 for ids in self.label_ids.values())
        # The label rows of a plain linear head. Anything else (a quantised or LoRA-wrapped head, a head
        # with soft-capping) is applied whole to the few positions that need it.
        plain = type(head) is nn.Linear and not any(getattr(self._config, a, None) for a in _HEAD_TRANSFORMS)
        self._rows: tuple[torch.Tensor, torch.Tensor | None] | None = None
        if plain and self.single_token:
            first = torch.tensor([ids[0] for ids in self.label_ids.values()], device=head.weight.device)
            bias = head.bias[first].detach().clone() if head.bias is not None else None
            self._rows = (head.weight[first].detach().clone(), bias)
        with torch.inference_mode():
            ids = torch.tensor([list(prefix)], dtype=torch.long, device=device)
            out = self._body(input_ids=ids, use_cache=True)
            self._prefix_kv = [(keys.clone(), values.clone()) for keys, values in _cache_tensors(out.cache)]
        self.prefix_length = len(prefix)

    def _cache_for(self, batch: int):
        """A fresh cache holding the prefix for ``batch`` rows (forward appends to it, so it is never reused)."""
        from transformers import DynamicCache

        expanded = [(k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in self._prefix_kv]
        return DynamicCache(ddp_cache_data=expanded, config=self._config)

    def _hidden(self, sequences: Sequence[Sequence[int]], keep: int) -> torch.Tensor:
        """The body's final hidden states at each sequence's last ``keep`` positions, after the cached prefix."""
        width = max(len(seq) for seq in sequences)
        rows = len(sequences)
        ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((rows, self.prefix_length + width), dtype=torch.long)
        mask[:, : self.prefix_length] = 1
        for row, seq in enumerate(sequences):
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, self.prefix_length + width - len(seq):] = 1
        # Each row's first real token continues the prefix's positions, however much padding precedes it.
        positions = self.prefix_length + (mask[:, self.prefix_length:].cumsum(-1) - 1).clamp(min=0)
        out = self._body(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            cache=self._cache_for(rows),
            use_cache=True,
        )
        return out.last_hidden_state[:, -keep:, :]

    @torch.inference_mode()
    def score(self, tails: Sequence[Sequence[int]], exact: bool = False) -> torch.Tensor:
        """[len(tails), labels] label scores for prompts ``prefix + tail``; softmax over labels gives probabilities.

        ``tails`` are each prompt's tokens after the prefix (message and cue). With single-token labels
        a row holds the labels' logits at the cue; otherwise, or with ``exact`` (for a loss), the labels'
        summed log-probabilities.
        """
        if any(not tail for tail in tails):
            raise ValueError("every prompt needs tokens after the shared prefix")
        if self.single_token and exact:
            hidden = self._hidden(tails, keep=1)[:, 0, :]
            first = [ids[0] for ids in self.label_ids.values()]
            return torch.log_softmax(self._head(hidden).float(), dim=-1)[:, first]
        if self.single_token:
            hidden = self._hidden(tails, keep=1)[:, 0, :]
            if self._rows is not None:
                weight, bias = self._rows
                logits = hidden.to(weight.dtype) @ weight.T
                return (logits + bias if bias is not None else logits).float()
            first = [ids[0] for ids in self.label_ids.values()]
            return self._head(hidden).float()[:, first]

        # One sequence per (prompt, label): the tail plus all but the label's last token; its last k
        # positions predict the label's k tokens, each with its own full-vocabulary normaliser.
        longest = max(len(ids) for ids in self.label_ids.values())
        sequences = [list(tail) + list(self.label_ids[label][:-1]) for tail in tails for label in self.labels]
        logprobs = torch.log_softmax(self._head(self._hidden(sequences, keep=longest)).float(), dim=-1)
        scores = torch.empty(len(tails), len(self.labels))
        for row in range(len(tails)):
            for col, label in enumerate(self.labels):
                tokens = self.label_ids[label]
                k = len(tokens)
                at = logprobs[row * len(self.labels) + col, longest - k:, :]
                scores[row, col] = at[torch.arange(k, device=at.device), torch.tensor(tokens, device=at.device)].sum()
        return scores


def _cache_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer from a transformers cache object (or the legacy tuple of tuples)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys, layer.values) for layer in layers]
    return [(keys, values) for keys, values, *_ in cache]


class PackedLinear(nn.Module):
    """An fp32 linear layer whose weight is reordered once for oneDNN, instead of going through MKL's GEMM.

    Same arithmetic in fp32 (results agree to ~1e-6); about twice as fast as ``nn.Linear`` on the AMD EPYC
    CPU we measured on (see bench/precision.py). Serving only: the packed weight cannot be trained.
    """

    # The number of rows the weight is laid out for; any other number still gives the same results.
    ROWS_HINT = 256

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.register_buffer("packed_weight", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(),
                                                                                       self.ROWS_HINT))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")


def can_pack_linears() -> bool:
    """Whether this torch build has the oneDNN linear kernels that PackedLinear uses."""
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def pack_linears(module: nn.Module) -> int:
    """Replace every fp32 ``nn.Linear`` on the CPU inside ``module`` by a PackedLinear; returns how many."""
    def packable(child: nn.Module) -> bool:
        return type(child) is nn.Linear and child.weight.dtype == torch.float32 and child.weight.device.type == "cpu"

    # Hold on to the parents only, and to each name rather than its layer: every replaced layer is then
    # freed as soon as its packed copy is in place, so packing needs one layer's weights more, not a model's.
    parents = [parent for parent in module.modules() if any(packable(child) for child in parent.children())]
    count = 0
    for parent in parents:
        for name in [name for name, child in parent.named_children() if packable(child)]:
            setattr(parent, name, PackedLinear(getattr(parent, name)))
            count += 1
    return count
