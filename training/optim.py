"""The optimiser (8-bit Adam by default) and the learning-rate schedule (warm-up, then decay)."""

from __future__ import annotations

import math

import torch


def build_optimizer(params, name: str, lr: float, weight_decay: float, min_8bit_size: int = 4096):
    """``adam8bit``: bitsandbytes' Adam with both moments stored in 8 bits (block-wise quantised), as in
    the reference experiment; tensors smaller than ``min_8bit_size`` keep 32-bit state, where
    quantisation error would outweigh the memory saved. ``adamw``: torch's AdamW."""
    params = [p for p in params if p.requires_grad]
    if name == "adam8bit":
        import bitsandbytes as bnb

        return bnb.optim.Adam8bit(params, lr=lr, weight_decay=weight_decay, min_8bit_size=min_8bit_size)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def build_schedule(optimizer, total_steps: int, warmup_ratio: float, decay: str):
    """Linear warm-up over the first ``warmup_ratio`` of steps, then cosine or linear decay to 10%."""
    warmup = max(1, round(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0
    floor = 0.1

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if decay == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if decay == "cosine" else 1 - progress
        return floor + (1 - floor) * shape

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
