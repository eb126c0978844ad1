"""Adapter soups: several LoRA adapters of one base model averaged into one adapter.

Each LoRA adapter adds ``scale * B @ A`` to a weight. The mean of n such deltas is itself a LoRA of
rank ``r_1 + ... + r_n``: stack the A matrices, put the B matrices side by side, each multiplied by its
own scale / n. So the soup is exact (no re-factorisation), loads through PEFT like any adapter, and
serves at the speed of a single adapter, because serving merges the delta into the base weights.

Averaging adapters trained on different samples and seeds averages away part of each run's noise:
on the default model it measured better than any of its members (README, "The shipped adapter").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from model.adapter import (
    METADATA_FILE,
    PEFT_CONFIG_FILE,
    PEFT_WEIGHTS_FILE,
    TRAINING_SET_FILE,
    AdapterInfo,
    load_weights,
    read_adapter,
)
from model.errors import ModelError

from . import artifacts
from .dataset import merge_sources, to_jsonl
from .errors import TrainingError

# What every member must share for the average to mean anything (and to load on one base).
_SAME_METADATA = ("base_model", "base_fingerprint", "template_id", "labels", "quantization", "max_message_tokens")
_SAME_PEFT = ("peft_type", "target_modules", "bias", "modules_to_save", "task_type")
# What the soup's metadata keeps of each member's.
_MEMBER_RECORD = ("hyperparameters", "data", "epochs", "best_epoch", "evaluations", "training_time_s",
                  "peak_memory_mb", "peak_memory_kind", "soup_of")
# Stored in half precision: the soup's rank is the members' ranks summed, and fp16 halves the file for a
# rounding error (about 1e-3 of each entry) far below what changes a label. PEFT loads it into fp32.
STORAGE_DTYPE = torch.float16


@dataclass(frozen=True)
class Member:
    info: AdapterInfo
    config: dict
    weights: dict[str, torch.Tensor]

    @property
    def scale(self) -> float:
        # PEFT's LoRA scaling: alpha / r, or alpha / sqrt(r) with rsLoRA.
        r, alpha = self.config["r"], self.config["lora_alpha"]
        return alpha / (r ** 0.5) if self.config.get("use_rslora") else alpha / r


def read_member(path: Path | str) -> Member:
    """One adapter, checked to be a plain LoRA adapter that can join a soup."""
    try:
        info = read_adapter(path)
    except ModelError as exc:
        raise TrainingError(str(exc)) from None
    if info.strategy not in ("attention", "all"):
        raise TrainingError(f"{info.path} is a {info.strategy!r} adapter: only LoRA adapters (strategy attention "
                            "or all) can be averaged into a soup.")
    try:
        config = json.loads((info.path / PEFT_CONFIG_FILE).read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise TrainingError(f"{info.path / PEFT_CONFIG_FILE} is unreadable or corrupt ({exc}). "
                            "Retrain or restore the adapter.") from None
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise TrainingError(f"{info.path} uses per-module LoRA ranks (rank_pattern/alpha_pattern), which a soup "
                            "does not support: train the members with one rank.")
    try:
        weights = load_weights(info.path / PEFT_WEIGHTS_FILE)
    except ModelError as exc:  # truncated, or not safetensors at all
        raise TrainingError(str(exc)) from None
    if not weights or any("lora_A" not in key and "lora_B" not in key for key in weights):
        raise TrainingError(f"{info.path / PEFT_WEIGHTS_FILE} holds tensors other than LoRA A/B matrices: "
                            "it cannot join a soup.")
    return Member(info, config, weights)


def check_members(members: Sequence[Member]) -> None:
    if len(members) < 2:
        raise TrainingError("A soup needs at least two adapters.")
    first = members[0]
    for member in members[1:]:
        for key in _SAME_METADATA:
            if member.info.metadata.get(key) != first.info.metadata.get(key):
                raise TrainingError(f"{member.info.path} and {first.info.path} differ in {key}: a soup's adapters "
                                    "must share the base model, quantization, template, labels and message budget.")
        for key in _SAME_PEFT:
            if _normalised(member.config.get(key)) != _normalised(first.config.get(key)):
                raise TrainingError(f"{member.info.path} and {first.info.path} differ in {key} "
                                    "(adapter_config.json): train the soup's adapters with the same strategy.")
        if set(member.weights) != set(first.weights):
            raise TrainingError(f"{member.info.path} and {first.info.path} adapt different layers.")


def soup_weights(members: Sequence[Member], shares: Sequence[float] | None = None,
                 ) -> tuple[dict[str, torch.Tensor], int]:
    """The averaged delta as one LoRA state dict with scale 1 (alpha = r), and its rank.

    ``shares`` weighs the members and sums to 1 (`check_shares`); by default each counts 1/n.
    """
    if shares is None:
        shares = check_shares(None, len(members))
    weights: dict[str, torch.Tensor] = {}
    for key in members[0].weights:
        if "lora_A" in key:
            weights[key] = torch.cat([m.weights[key].float() for m in members], dim=0).contiguous()
        else:
            weights[key] = torch.cat([m.weights[key].float() * (m.scale * share)
                                      for m, share in zip(members, shares, strict=True)], dim=1).contiguous()
    rank = sum(int(m.config["r"]) for m in members)
    return weights, rank


def check_shares(shares: Sequence[float] | None, members: int) -> list[float]:
    """Each member's share of the soup, summing to 1: equal by default."""
    if shares is None:
        return [1 / members] * members
    if len(shares) != members:
        raise TrainingError(f"--weight was given {len(shares)} times for {members} adapters: give one per adapter, "
                            "in the same order, or none for an even average.")
    if any(not share > 0 for share in shares):  # also NaN
        raise TrainingError(f"--weight {', '.join(f'{share:g}' for share in shares)}: every weight must be positive.")
    total = sum(shares)
    return [share / total for share in shares]


def compress(weights: dict[str, torch.Tensor], max_rank: int) -> tuple[dict[str, torch.Tensor], int]:
    """The same deltas at rank ``max_rank`` at most: each module's B @ A by its truncated SVD.

    A soup's rank is the sum of its members' and so is its file; members that start from one another are
    close, so their sum has far fewer directions that matter. For each module, with B = Qb Rb and
    A^T = Qa Ra, B @ A = Qb (Rb Ra^T) Qa^T, and the SVD of the small core Rb Ra^T gives the best rank-k
    approximation (Eckart-Young) without forming the full delta. Scale stays 1 (alpha = r).
    """
    compressed: dict[str, torch.Tensor] = {}
    rank = 0
    for key_a in [key for key in weights if "lora_A" in key]:
        key_b = key_a.replace("lora_A", "lora_B")
        a, b = weights[key_a].double(), weights[key_b].double()
        if a.shape[0] <= max_rank:
            compressed[key_a], compressed[key_b] = weights[key_a], weights[key_b]
            rank = max(rank, a.shape[0])
            continue
        qb, rb = torch.linalg.qr(b)
        qa, ra = torch.linalg.qr(a.T)
        u, singular, vh = torch.linalg.svd(rb @ ra.T)
        root = singular[:max_rank].sqrt()
        compressed[key_b] = (qb @ (u[:, :max_rank] * root)).float().contiguous()
        compressed[key_a] = ((root[:, None] * vh[:max_rank]) @ qa.T).float().contiguous()
        rank = max_rank
    return compressed, rank


def make_soup(adapters: Sequence[Path | str], out: Path, version: str | None = None, overwrite: bool = False,
              extra: dict | None = None, echo=print, max_rank: int | None = None,
              shares: Sequence[float] | None = None) -> dict:
    """Write the soup of ``adapters`` to ``out`` (atomically) and return its metadata (plus ``extra``).

    ``max_rank`` compresses the soup to that LoRA rank (`compress`), for a smaller file. ``shares`` weighs
    the members (normalised to sum to 1); by default the soup is their even average.
    """
    from safetensors.torch import save_file

    if max_rank is not None and max_rank < 1:
        raise TrainingError(f"--max-rank {max_rank} is not valid: use 1 or more.")
    artifacts.check_destination(out, overwrite)
    members = [read_member(path) for path in adapters]
    check_members(members)
    shares = check_shares(shares, len(members))
    weights, rank = soup_weights(members, shares)
    if max_rank is not None and max_rank < rank:
        weights, rank = compress(weights, max_rank)
    config = {**members[0].config, "r": rank, "lora_alpha": rank, "use_rslora": False}
    training_set = merge_sources([m.info.path / TRAINING_SET_FILE for m in members
                                  if (m.info.path / TRAINING_SET_FILE).is_file()]).examples
    metadata = _metadata(members, shares, rank, version or f"soup-{datetime.now(UTC):%Y%m%d-%H%M%S}",
                         len(training_set))
    metadata.update(extra or {})

    def fill(tmp: Path) -> None:
        save_file({key: tensor.to(STORAGE_DTYPE) for key, tensor in weights.items()}, tmp / PEFT_WEIGHTS_FILE)
        artifacts.write_json(tmp / PEFT_CONFIG_FILE, config)
        artifacts.write_json(tmp / METADATA_FILE, metadata)
        if training_set:
            # What a retrain starts from: every message any member learned from, once.
            (tmp / TRAINING_SET_FILE).write_text(to_jsonl(training_set), encoding="utf-8")

    artifacts.write_atomically(out, fill)
    echo(f"soup of {len(members)} adapters (LoRA rank {rank}) written to {out}")
    return metadata


def _metadata(members: Sequence[Member], shares: Sequence[float], rank: int, version: str,
              training_examples: int) -> dict:
    first = members[0].info.metadata
    keep = ("base_model", "base_fingerprint", "quantization", "template_id", "labels", "strategy",
            "max_message_tokens")
    return {
        "version": version,
        **{key: first.get(key) for key in keep},
        "few_shot_examples": [],
        # Each member's own record: how it was trained and how it measured on its own.
        "soup_of": [{"version": m.info.version, "path": str(m.info.path), "lora_r": m.config["r"],
                     "lora_alpha": m.config["lora_alpha"], "share": round(share, 6),
                     **{key: m.info.metadata.get(key) for key in _MEMBER_RECORD}}
                    for m, share in zip(members, shares, strict=True)],
        # The members' recipe, not the soup's rank: a retrain from this adapter trains one adapter that way.
        "hyperparameters": {key: value for key, value in (first.get("hyperparameters") or {}).items()
                            if key != "version"},
        "soup_rank": rank,
        "trainable_parameters": sum(int(m.info.metadata.get("trainable_parameters") or 0) for m in members),
        "total_parameters": first.get("total_parameters"),
        "data": {"training_examples": training_examples,
                 "member_sources": [m.info.metadata.get("data", {}).get("sources", []) for m in members]},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),  # as training records it
    }


def _normalised(value):
    return sorted(value) if isinstance(value, list) else value


def evaluate_soup(out: Path, files: Sequence[Path], settings, echo=print) -> dict[str, dict]:
    """Measure the soup on each labelled file and write ``eval_<name>.json`` beside it, as training does."""
    from dataclasses import replace

    from model.classifier import Classifier

    from .evaluate import evaluate_sets
    from .metrics import format_metrics

    classifier = Classifier.from_settings(replace(settings, adapter=out, use_default_adapter=False))
    results = evaluate_sets(classifier, {Path(path).stem: merge_sources([path]).examples for path in files})
    for name, metrics in results.items():
        artifacts.write_json(out / f"eval_{name}.json", metrics)
        artifacts.plot_confusion(out / f"confusion_{name}.png", metrics, f"{name}: accuracy {metrics['accuracy']:.3f}")
        echo(f"{name}:\n{format_metrics(metrics)}")
    return results
