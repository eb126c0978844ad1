"""How much memory a base model and a training job on it take, computed from parameter counts.

Arithmetic, not measurement: the bytes each parameter takes as model.loader loads it (8-bit: one byte per
linear weight plus a float32 scale per output row, the rest in float16 on a GPU; 4-bit: half a byte plus a
float32 scale per block of 64; none: float16 on a GPU, float32 on the CPU), and for a job the trainable
parameters' weights, gradients and optimiser state, plus fixed budgets for what no parameter count gives
(activations, CUDA's own context). bench/swap_memory.py computes a swap's memory the same way and checks the
arithmetic against what it measures with the default model; docs/retraining.md gives the figures for GPT-J-6B.

The functions here take numbers (:class:`ModelSize`), so a decision made from them can be tested without a
model; :func:`model_size` counts them on a loaded model.
"""

from __future__ import annotations

from dataclasses import dataclass

GB = 1e9
# What parameter counts do not give. Activations of a training step with gradient checkpointing at batch 8 on
# ~200-token prompts, and the int8 matmul buffers: the 1-2 GB budget of docs/retraining.md, its upper half.
TRAINING_WORKSPACE_BYTES = int(1.5 * GB)
CUDA_CONTEXT_BYTES = int(0.5 * GB)  # what each process that uses CUDA holds before it allocates anything
FOUR_BIT_BLOCK = 64  # bitsandbytes' NF4 block size: one float32 scale per block
# Bytes per trainable parameter: float32 weight and gradient, then the optimiser's two moments.
OPTIMIZER_STATE_BYTES = {"adam8bit": 2, "adamw": 8}
LORA_STRATEGIES = ("attention", "all")


@dataclass(frozen=True)
class ModelSize:
    """A base model's parameter counts, as the loader's quantisation sees them."""

    parameters: int  # all of them
    linear_parameters: int  # the weights of the blocks' linear layers: what 8bit and 4bit quantise (not the head)
    linear_outputs: int  # those layers' output rows (an 8-bit layer keeps one scale per row)
    linear_edges: int  # the sum of their input and output features: a rank-r LoRA on all of them has r x this


# EleutherAI/gpt-j-6b, counted on PyTorch's meta device from its configuration (bench/swap_memory.py does the
# same): 28 layers of 4 attention projections (4096 x 4096) and an MLP (4096 x 16384, 16384 x 4096).
GPT_J_6B = ModelSize(parameters=6_050_882_784, linear_parameters=5_637_144_576, linear_outputs=1_032_192,
                     linear_edges=2_064_384)


def base_bytes(size: ModelSize, quantization: str, device_type: str) -> int:
    """One copy of the base model's weights, quantised as ``quantization`` (resolved: 8bit, 4bit or none)."""
    half = device_type == "cuda"
    other_bytes = 2 if half else 4  # what is not quantised is loaded in the compute dtype
    other = size.parameters - size.linear_parameters
    if quantization == "8bit":
        return size.linear_parameters + 4 * size.linear_outputs + other_bytes * other
    if quantization == "4bit":
        blocks = -(-size.linear_parameters // FOUR_BIT_BLOCK)
        return size.linear_parameters // 2 + 4 * blocks + other_bytes * other
    return other_bytes * size.parameters


def trainable_parameters(size: ModelSize, strategy: str, lora_r: int) -> int:
    """What a job trains: a LoRA adapter on every linear layer of the blocks (an upper bound for the
    ``attention`` strategy), or nothing worth counting (``1d`` trains norms and biases; ``few-shot`` nothing)."""
    return lora_r * size.linear_edges if strategy in LORA_STRATEGIES else 0


def job_bytes(size: ModelSize, quantization: str, device_type: str, *, strategy: str = "all", lora_r: int = 8,
              optimizer: str = "adam8bit") -> int:
    """A retraining job's peak: its own base, the trainable parameters' weights, gradients and optimiser
    state, the training workspace and, on a GPU, its CUDA context."""
    trainable = trainable_parameters(size, strategy, lora_r)
    state = trainable * (4 + 4 + OPTIMIZER_STATE_BYTES.get(optimizer, 8))
    context = CUDA_CONTEXT_BYTES if device_type == "cuda" else 0
    return base_bytes(size, quantization, device_type) + state + TRAINING_WORKSPACE_BYTES + context


def model_size(model) -> ModelSize:
    """Count a loaded model's parameters (quantised or not, wearing a PEFT adapter or not; the adapter's own
    parameters are not counted). A 4-bit layer's weight is stored packed, so its features are counted instead."""
    import torch

    linear = outputs = edges = 0
    counted: set[int] = set()
    for name, module in model.named_modules():
        if "lora_" in name or name.endswith("lm_head") or not isinstance(module, torch.nn.Linear):
            continue
        linear += module.in_features * module.out_features
        outputs += module.out_features
        edges += module.in_features + module.out_features
        counted.add(id(module.weight))
    other = sum(p.numel() for name, p in model.named_parameters() if "lora_" not in name and id(p) not in counted)
    return ModelSize(parameters=linear + other, linear_parameters=linear, linear_outputs=outputs, linear_edges=edges)
