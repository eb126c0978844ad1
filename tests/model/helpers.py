"""Reference computations and adapter builders for the model tests."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from model import LABELS, TEMPLATE_ID, ModelSettings
from model.adapter import METADATA_FILE, base_fingerprint


def brute_force_probabilities(loaded, builder, texts):
    """Each label's completion scored with its own full, unpadded forward pass: the slow, obvious way."""
    rows = []
    with torch.inference_mode():
        for text in texts:
            prompt = builder.encode(text).ids
            scores = []
            for label in LABELS:
                completion = list(builder.label_ids[label])
                ids = torch.tensor([prompt + completion], device=loaded.device)
                logprobs = torch.log_softmax(loaded.model(input_ids=ids).logits[0].float(), dim=-1)
                scores.append(sum(logprobs[len(prompt) - 1 + j, tok].item() for j, tok in enumerate(completion)))
            rows.append(torch.tensor(scores).softmax(-1).tolist())
    return rows


def make_lora_adapter(settings: ModelSettings, directory: Path, seed: int = 1, **metadata_overrides) -> Path:
    """A randomly initialised (non-zero) LoRA adapter on the base of ``settings``, saved as a modbot adapter."""
    from peft import LoraConfig, get_peft_model

    from model import load_base

    loaded = load_base(replace(settings, quantization="none"))
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(loaded.model, config)
    peft_model.save_pretrained(directory)
    metadata = {
        "version": f"test-{seed}",
        "base_model": loaded.model_name,
        "base_fingerprint": base_fingerprint(loaded.model.config),
        "template_id": TEMPLATE_ID,
        "labels": list(LABELS),
        "strategy": "all",
        **metadata_overrides,
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata), encoding="utf-8")
    return directory
