"""What each strategy trains, with the adapter's target modules resolved for the model's architecture."""

from __future__ import annotations

import logging
import re

import torch

log = logging.getLogger(__name__)

# Leaf names of the attention and MLP projections, per transformers `model_type`.
_LLAMA = (("q_proj", "k_proj", "v_proj", "o_proj"), ("gate_proj", "up_proj", "down_proj"))
KNOWN_MODULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "gptj": (("q_proj", "k_proj", "v_proj", "out_proj"), ("fc_in", "fc_out")),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _LLAMA,
    "olmo": _LLAMA,
    "olmo2": _LLAMA,
    "granite": _LLAMA,
    "phi3": (("qkv_proj", "o_proj"), ("gate_up_proj", "down_proj")),
    "gpt_neox": (("query_key_value", "dense"), ("dense_h_to_4h", "dense_4h_to_h")),
    "opt": (("q_proj", "k_proj", "v_proj", "out_proj"), ("fc1", "fc2")),
    "phi": (("q_proj", "k_proj", "v_proj", "dense"), ("fc1", "fc2")),
    "falcon": (("query_key_value", "dense"), ("dense_h_to_4h", "dense_4h_to_h")),
}
# For families not listed: a projection belongs to attention or the MLP by the block it sits in.
_ATTENTION_BLOCK = re.compile(r"(^|\.)(self_attn|attn|attention|self_attention)(\.|$)")
_MLP_BLOCK = re.compile(r"(^|\.)(mlp|feed_forward|ffn|ff)(\.|$)")


def _is_projection(module) -> bool:
    # bitsandbytes' 8-bit and 4-bit layers subclass nn.Linear; GPT-2's Conv1D is a linear layer too.
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


def target_modules(model, strategy: str) -> list[str]:
    """The modules that get LoRA adapters: leaf names for known families, full names otherwise."""
    parts = ("attention",) if strategy == "attention" else ("attention", "mlp")
    model_type = getattr(model.config, "model_type", "")
    known = KNOWN_MODULES.get(model_type)
    if known is not None:
        names = [*known[0], *(known[1] if "mlp" in parts else ())]
        present = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if _is_projection(module)}
        if set(names) <= present:
            return names
        log.warning("model type %s lacks some of %s; finding its projections by block", model_type, names)
    found = []
    for name, module in model.named_modules():
        if not _is_projection(module) or name.endswith("lm_head"):
            continue
        block = name.rsplit(".", 1)[0]
        if _ATTENTION_BLOCK.search(block) or ("mlp" in parts and _MLP_BLOCK.search(block)):
            found.append(name)
    if not found:
        raise ValueError(f"found no attention/MLP projections in {type(model).__name__} for strategy {strategy}")
    return found


def apply_strategy(model, strategy: str, lora_r: int, lora_alpha: int, lora_dropout: float, quantized: bool,
                   gradient_checkpointing: bool, init_adapter=None):
    """Make ``model`` trainable as ``strategy`` asks; returns the model to train (PEFT-wrapped for LoRA).

    ``init_adapter``, a LoRA adapter directory, starts training from its weights (its rank, alpha and
    target modules) instead of a fresh LoRA: a new adapter that keeps what an earlier one learned.
    """
    if quantized:
        from peft import prepare_model_for_kbit_training

        # Norms to fp32 and input gradients on, so that the frozen 8/4-bit base passes gradients through.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if strategy == "1d":
        for param in model.parameters():
            param.requires_grad_(param.ndim == 1 and param.is_floating_point())
        return model
    if init_adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
        for param in model.parameters():
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()  # a soup stores its factors in fp16; train them in fp32
        return model
    if strategy in ("attention", "all"):
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, bias="none",
                            target_modules=target_modules(model, strategy), task_type="CAUSAL_LM")
        return get_peft_model(model, config)
    for param in model.parameters():  # few-shot trains nothing
        param.requires_grad_(False)
    return model


def one_d_state(model) -> dict[str, torch.Tensor]:
    """The trained one-dimensional parameters, by their names in the base model's state dict."""
    return {name: param.detach().to("cpu").contiguous() for name, param in model.named_parameters()
            if param.requires_grad}


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count at their unpacked size."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel() * (2 if param.dtype == torch.uint8 else 1)
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total
