"""Training end to end on a tiny GPT-J: it learns, trains what each strategy claims, saves what loads."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model import Classifier, ModelSettings, load_base, load_model
from model.adapter import (
    METADATA_FILE,
    ONE_D_WEIGHTS_FILE,
    PEFT_CONFIG_FILE,
    PEFT_WEIGHTS_FILE,
    REQUIRED_FIELDS,
)
from training.args import TrainArgs
from training.artifacts import write_atomically
from training.errors import TrainingError
from training.formats import read_examples
from training.metrics import classification_metrics
from training.optim import build_optimizer
from training.recipe import run_training
from training.strategies import apply_strategy, target_modules

# A learnable toy task: each label has its own word, repeated, after words that carry no signal.
_WORDS = {"hate": "vermin", "offensive": "idiot", "neutral": "meeting"}
_NOISE = "the quick brown fox jumps over lazy dog good friend".split()


def _toy_file(path: Path, per_label: int, offset: int) -> Path:
    """``per_label`` messages per label; files with disjoint offsets share no message."""
    pairs = list(itertools.permutations(_NOISE, 2))
    random.Random(0).shuffle(pairs)
    lines = ["text,label"]
    for i in range(per_label):
        for j, (label, word) in enumerate(_WORDS.items()):
            lines.append(f"{' '.join(pairs[(offset + i) * 3 + j])} {' '.join([word] * 6)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _args(tiny_model_dir, tmp_path, **overrides) -> TrainArgs:
    base = TrainArgs(
        data=(_toy_file(tmp_path / "toy_train.csv", 10, offset=0),), val=(_toy_file(tmp_path / "toy_val.csv", 4, 10),),
        out=tmp_path / "adapter", model=str(tiny_model_dir), device="cpu", quantization="none",
        cache_dir=tmp_path / "cache", epochs=8, batch_size=3, lr=5e-3, max_message_tokens=24, eval_batch_size=16,
        warmup_ratio=0.1,
    )
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def trained(learnable_model_dir, tmp_path_factory):
    """One `all` run shared by the tests that inspect its output."""
    tmp_path = tmp_path_factory.mktemp("trained")
    args = _args(learnable_model_dir, tmp_path)
    return args, run_training(args, echo=lambda line: None).metadata


def test_training_drives_the_loss_down_and_accuracy_up(trained):
    args, meta = trained
    steps = [json.loads(line) for line in (args.out / "metrics.jsonl").read_text().splitlines()]
    losses = [s["loss"] for s in steps if s["type"] == "step"]
    assert len(losses) == 8 * 10
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    epochs = meta["epochs"]
    assert epochs[-1]["val"]["loss"] < epochs[0]["val"]["loss"]
    assert epochs[0]["val"]["accuracy"] < 0.5
    assert meta["validation"]["accuracy"] >= 0.9


def test_the_adapter_directory_has_every_file_and_metadata_field(trained):
    args, _ = trained
    for name in (PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, METADATA_FILE, "train.jsonl", "metrics.jsonl",
                 "loss_curve.png", "confusion_matrix.png", "eval_val.json"):
        assert (args.out / name).is_file(), name
    meta = json.loads((args.out / METADATA_FILE).read_text())
    for name in (*REQUIRED_FIELDS, "quantization", "hyperparameters", "data", "epochs", "best_epoch",
                 "training_time_s", "peak_memory_mb", "trainable_parameters", "version", "max_message_tokens"):
        assert name in meta, name
    assert meta["strategy"] == "all" and meta["quantization"] == "none"
    assert meta["hyperparameters"]["lr"] == 5e-3 and meta["hyperparameters"]["optimizer"] == "adam8bit"
    assert meta["data"]["counts"]["train"] == {"hate": 10, "offensive": 10, "neutral": 10}
    assert len(meta["data"]["train_sha256"]) == 64 and meta["data"]["sources"][0]["rows"] == 30
    assert meta["peak_memory_mb"] > 0 and meta["training_time_s"] > 0
    # The adapter's own copy of its training set is readable as a dataset again.
    assert len(read_examples(args.out / "train.jsonl")) == 30
    assert not list(args.out.parent.glob(".adapter.tmp-*"))


def test_a_saved_adapter_reloads_and_predicts_as_it_did_in_training(trained, learnable_model_dir, tmp_path):
    args, meta = trained
    settings = ModelSettings(model=str(learnable_model_dir), device="cpu", quantization="none", adapter=args.out,
                             cache_dir=tmp_path / "cache")
    classifier = Classifier(load_model(settings))
    assert classifier.loaded.adapter.strategy == "all" and classifier.prompts.max_message_tokens == 24
    val = read_examples(args.val[0])
    predicted = [p.label for p in classifier.classify([e.text for e in val])]
    again = classification_metrics([e.label for e in val], predicted)
    assert again["confusion_matrix"] == meta["validation"]["confusion_matrix"]


def test_1d_trains_only_one_dimensional_parameters(tiny_model_dir, tmp_path):
    before = {n: p.clone() for n, p in load_base(ModelSettings(model=str(tiny_model_dir), device="cpu",
                                                                quantization="none")).model.named_parameters()}
    args = _args(tiny_model_dir, tmp_path, strategy="1d", epochs=1, max_steps=3)
    meta = run_training(args, echo=lambda line: None).metadata
    from safetensors.torch import load_file

    saved = load_file(str(args.out / ONE_D_WEIGHTS_FILE))
    assert saved and all(t.ndim == 1 for t in saved.values())
    assert set(saved) == {n for n, p in before.items() if p.ndim == 1}
    assert any(not torch.equal(saved[n], before[n]) for n in saved)  # they did train
    assert meta["trainable_parameters"] == sum(t.numel() for t in saved.values())
    settings = ModelSettings(model=str(tiny_model_dir), device="cpu", quantization="none", adapter=args.out,
                             cache_dir=tmp_path / "cache")
    reloaded = dict(load_model(settings).model.named_parameters())
    for name, param in reloaded.items():
        expected = saved[name] if name in saved else before[name]
        assert torch.equal(param.detach(), expected), name


@pytest.mark.parametrize(("strategy", "expected"), [
    ("attention", {"q_proj", "k_proj", "v_proj", "out_proj"}),
    ("all", {"q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out"}),
])
def test_lora_adapters_land_where_the_strategy_says(tiny_settings, strategy, expected):
    model = apply_strategy(load_base(tiny_settings).model, strategy, 4, 8, 0.0, quantized=False,
                           gradient_checkpointing=False)
    adapted = {name.split(".lora_A")[0] for name, _ in model.named_parameters() if "lora_A" in name}
    assert {name.rsplit(".", 1)[-1] for name in adapted} == expected
    assert len(adapted) == 2 * len(expected)  # every layer
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)


def test_module_names_resolve_for_llama_and_for_unknown_families():
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2))
    assert target_modules(llama, "attention") == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert target_modules(llama, "all")[-3:] == ["gate_proj", "up_proj", "down_proj"]
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=32, n_layer=1, n_head=4))
    gpt2.config.model_type = "not-in-our-table"  # forces the generic search by block
    assert target_modules(gpt2, "attention") == ["transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj"]
    assert target_modules(gpt2, "all")[2:] == ["transformer.h.0.mlp.c_fc", "transformer.h.0.mlp.c_proj"]


def test_adam8bit_keeps_its_state_in_8_bits(tiny_settings):
    model = apply_strategy(load_base(tiny_settings).model, "all", 8, 16, 0.0, quantized=False,
                           gradient_checkpointing=False)
    optimizer = build_optimizer(model.parameters(), "adam8bit", 1e-3, 0.0, min_8bit_size=256)
    ids = torch.randint(0, 100, (2, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    states = [optimizer.state[p] for p in model.parameters() if p.requires_grad]
    assert states and all(s["state1"].dtype == torch.uint8 and s["state2"].dtype == torch.uint8 for s in states)


def test_few_shot_saves_examples_that_the_classifier_puts_in_its_prompt(tiny_model_dir, tmp_path):
    args = _args(tiny_model_dir, tmp_path, strategy="few-shot", few_shot_k=1)
    meta = run_training(args, echo=lambda line: None).metadata
    assert meta["trainable_parameters"] == 0 and len(meta["few_shot_examples"]) == 3
    assert not (args.out / PEFT_WEIGHTS_FILE).exists()
    settings = ModelSettings(model=str(tiny_model_dir), device="cpu", quantization="none", adapter=args.out,
                             cache_dir=tmp_path / "cache")
    classifier = Classifier(load_model(settings))
    shots = [tuple(shot) for shot in meta["few_shot_examples"]]
    assert classifier.loaded.adapter.few_shot_examples == tuple(shots)
    plain = len(Classifier(load_base(settings)).prompts.prefix)
    assert len(classifier.prompts.prefix) > plain


def test_training_through_an_8bit_base_on_the_cpu(tiny_model_dir, tmp_path):
    args = _args(tiny_model_dir, tmp_path, quantization="8bit", epochs=1, max_steps=2)
    meta = run_training(args, echo=lambda line: None).metadata
    assert meta["quantization"] == "8bit" and meta["trainable_parameters"] > 0
    settings = ModelSettings(model=str(tiny_model_dir), device="cpu", quantization="8bit", adapter=args.out,
                             cache_dir=tmp_path / "cache")
    assert len(Classifier(load_model(settings)).classify(["what time is it"])) == 1


def test_an_existing_output_is_refused_before_training(tiny_model_dir, tmp_path):
    args = _args(tiny_model_dir, tmp_path)
    args.out.mkdir()
    with pytest.raises(TrainingError, match="already exists"):
        run_training(args, echo=lambda line: None)


def test_an_interrupted_write_leaves_nothing_where_a_loader_looks(tmp_path):
    out = tmp_path / "adapter"

    def fill(directory: Path) -> None:
        (directory / METADATA_FILE).write_text("{}")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(out, fill)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "old").write_text("previous adapter")
    write_atomically(out, lambda d: (d / "new").write_text("x"))
    assert [p.name for p in out.iterdir()] == ["new"] and len(list(tmp_path.iterdir())) == 1


def test_gradient_checkpointing_and_accumulation_train_the_same_adapter_shape(tiny_model_dir, tmp_path):
    args = _args(tiny_model_dir, tmp_path, gradient_checkpointing=True, grad_accum=2, epochs=1, max_steps=2,
                 optimizer="adamw")
    meta = run_training(args, echo=lambda line: None).metadata
    steps = [json.loads(line) for line in (args.out / "metrics.jsonl").read_text().splitlines()]
    batches = [s for s in steps if s["type"] == "step"]
    assert len(batches) == 4 and batches[-1]["step"] == 2  # two batches per optimiser step
    assert all(s["loss"] == s["loss"] for s in batches)  # no NaN
    assert meta["hyperparameters"]["gradient_checkpointing"] is True
