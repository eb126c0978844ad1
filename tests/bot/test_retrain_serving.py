"""MODBOT_RETRAIN_SERVING: whether the served model makes way for a retraining job, decided from numbers.

The decision (bot.model_manager.retrain_serving) and the memory arithmetic (training.memory) are pure functions,
tested here with the flagship's figures; test_retrain.py runs real jobs with the model released.
"""

from __future__ import annotations

import pytest

from bot import Settings
from bot.model_manager import job_memory, retrain_serving
from bot.settings import SettingsError
from training.memory import (
    CUDA_CONTEXT_BYTES,
    GB,
    GPT_J_6B,
    ModelSize,
    base_bytes,
    job_bytes,
    model_size,
    trainable_parameters,
)

# SmolLM2-135M-Instruct, from its configuration: 30 layers of 576 (9 heads, 3 key/value heads), an MLP of 1536,
# a vocabulary of 49,152 tied to the output layer.
SMOLLM2_135M = ModelSize(parameters=134_515_008, linear_parameters=106_168_320, linear_outputs=155_520,
                         linear_edges=305_280)
ELEVEN_GB_CARD = 11 * GB  # the reference experiment's card (GTX 1080 Ti / RTX 2080 Ti class)


def serving_bytes(size: ModelSize, quantization: str, lora_r: int = 8) -> int:
    """What the bot holds on the card while it serves: the base, a rank-r adapter in fp32, its CUDA context."""
    return base_bytes(size, quantization, "cuda") + 4 * trainable_parameters(size, "all", lora_r) + CUDA_CONTEXT_BYTES


def test_gpt_j_6b_in_8_bit_on_an_11_gb_card_pauses_and_the_job_then_fits():
    base = base_bytes(GPT_J_6B, "8bit", "cuda")
    assert base == 6_468_749_760  # bench/swap_memory.py's figure for the same base
    job = job_bytes(GPT_J_6B, "8bit", "cuda", strategy="all", lora_r=8, optimizer="adam8bit")
    assert trainable_parameters(GPT_J_6B, "all", 8) == 16_515_072  # docs/retraining.md: 16.5 M
    assert 8.5 * GB < job < 9 * GB
    free = ELEVEN_GB_CARD - serving_bytes(GPT_J_6B, "8bit")
    assert 3.5 * GB < free < 4.5 * GB

    plan = retrain_serving("auto", in_process=True, serving_device="cuda", job_device="auto", free_bytes=free,
                           job_bytes=job)
    assert plan.pause
    assert plan.reason == (f"cuda:0 has {free / GB:.1f} GB free and the job needs about {job / GB:.1f} GB "
                           "(computed from its parameter counts)")
    # released, the card holds the job beside what the bot keeps (its CUDA context)
    assert ELEVEN_GB_CARD - CUDA_CONTEXT_BYTES >= job


def test_gpt_j_6b_on_a_24_gb_card_keeps_serving():
    job = job_bytes(GPT_J_6B, "8bit", "cuda")
    free = 24 * GB - serving_bytes(GPT_J_6B, "8bit")
    plan = retrain_serving("auto", in_process=True, serving_device="cuda:0", job_device="cuda", free_bytes=free,
                           job_bytes=job)
    assert not plan.pause and plan.reason.startswith("cuda:0 has 17.0 GB free, enough for the job's 8.6 GB")


def test_the_135m_default_on_the_cpu_keeps_serving():
    plan = retrain_serving("auto", in_process=True, serving_device="cpu", job_device="auto")
    assert not plan.pause and plan.reason == "the model is served on the CPU, not a GPU"
    # on the CPU the two copies share the machine's RAM (0.54 GB of fp32 weights each; docs/retraining.md
    # measures the whole job at 2.7 GB), and nothing is decided from it
    assert base_bytes(SMOLLM2_135M, "none", "cpu") == 538_060_032


def test_keep_pause_another_device_and_ray():
    small = 1 * GB
    assert not retrain_serving("keep", in_process=True, serving_device="cuda:0", job_device="cuda:0",
                               free_bytes=small, job_bytes=9 * GB).pause
    forced = retrain_serving("pause", in_process=True, serving_device="cpu", job_device="cpu")
    assert forced.pause and forced.reason == "MODBOT_RETRAIN_SERVING=pause"
    # the job trains on a second card (MODBOT_RETRAIN_OPTIONS=device=cuda:1): nothing to make way for
    other = retrain_serving("auto", in_process=True, serving_device="cuda:0", job_device="cuda:1", free_bytes=small,
                            job_bytes=9 * GB)
    assert not other.pause and other.reason == "the job trains on cuda:1, the model is served on cuda:0"
    ray = retrain_serving("auto", in_process=False, serving_device="cuda:0", job_device="cuda:0", free_bytes=small,
                          job_bytes=9 * GB)
    assert not ray.pause and "Ray Serve application, not in the bot" in ray.reason


def test_4_bit_and_fp16_bases():
    assert base_bytes(GPT_J_6B, "4bit", "cuda") < base_bytes(GPT_J_6B, "8bit", "cuda") < base_bytes(
        GPT_J_6B, "none", "cuda") == 2 * GPT_J_6B.parameters
    assert job_bytes(GPT_J_6B, "8bit", "cuda", optimizer="adamw") > job_bytes(GPT_J_6B, "8bit", "cuda")


def test_model_size_counts_a_loaded_model_with_or_without_its_adapter(tiny_model_dir, tiny_settings, tmp_path):
    from model import LocalBackend, read_adapter
    from training.args import TrainArgs
    from training.recipe import run_training

    from .test_retrain import make_examples, write_jsonl

    backend = LocalBackend.from_settings(tiny_settings)
    try:
        config = backend.base.model.config
        bare = model_size(backend.base.model)
        hidden, inner, layers = config.n_embd, config.n_inner or 4 * config.n_embd, config.n_layer
        assert bare.linear_parameters == layers * (4 * hidden * hidden + 2 * hidden * inner)
        assert bare.linear_edges == layers * (4 * 2 * hidden + 2 * (hidden + inner))
        assert bare.parameters == sum(p.numel() for p in backend.base.model.parameters())
        # a LoRA adapter put on the base is not counted as the base's
        write_jsonl(tmp_path / "train.jsonl", make_examples({"hate": 8, "offensive": 8, "neutral": 8}, seed=1))
        run_training(TrainArgs(data=(tmp_path / "train.jsonl",), out=tmp_path / "lora", model=str(tiny_model_dir),
                               device="cpu", quantization="none", strategy="all", epochs=1, max_steps=1,
                               batch_size=8, optimizer="adamw", cache_dir=tmp_path / "cache"),
                     echo=lambda line: None)
        backend.serve_adapter(tmp_path / "lora")
        assert model_size(backend._classifier.loaded.model) == bare
        # the job the bot would start from that adapter: its strategy and optimiser, MODBOT_RETRAIN_OPTIONS over them
        metadata = read_adapter(tmp_path / "lora").metadata
        assert job_memory(backend.base.model, "8bit", "cuda", metadata, {}) == job_bytes(
            bare, "8bit", "cuda", strategy="all", lora_r=8, optimizer="adamw")
        assert job_memory(backend.base.model, "8bit", "cuda", metadata, {"lora_r": 32}) == job_bytes(
            bare, "8bit", "cuda", strategy="all", lora_r=32, optimizer="adamw")
    finally:
        backend.close()


def test_the_setting():
    assert Settings.from_env({}).retrain_serving == "auto"
    assert Settings.from_env({"MODBOT_RETRAIN_SERVING": " Pause "}).retrain_serving == "pause"
    with pytest.raises(SettingsError, match=r"^MODBOT_RETRAIN_SERVING='sometimes' is not valid: use auto, keep or pause"):
        Settings.from_env({"MODBOT_RETRAIN_SERVING": "sometimes"})
    # with Ray the model is not in the bot: there is nothing to release, and the bot says so
    with pytest.raises(SettingsError, match=r"^MODBOT_RETRAIN_SERVING=pause does not apply with MODBOT_BACKEND=ray"):
        Settings.from_env({"MODBOT_RETRAIN_SERVING": "pause", "MODBOT_BACKEND": "ray"})
    assert Settings.from_env({"MODBOT_BACKEND": "ray"}).retrain_serving == "auto"
