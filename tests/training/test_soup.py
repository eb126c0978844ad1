"""Adapter soups: the soup's weight change is exactly the mean of its members', and bad members are refused."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest
import torch

from bot.cli import main
from model import ModelSettings, load_base, load_model
from model.adapter import METADATA_FILE, PEFT_CONFIG_FILE, TRAINING_SET_FILE
from training.errors import TrainingError
from training.formats import read_examples
from training.recipe import run_training
from training.soup import make_soup

from .test_training import _args


@pytest.fixture(scope="module")
def members(tiny_model_dir, tmp_path_factory):
    """Two `all` adapters of different ranks, scales and seeds, and one `1d` adapter."""
    tmp_path = tmp_path_factory.mktemp("soup-members")
    quiet = {"echo": lambda line: None}
    first = _args(tiny_model_dir, tmp_path, out=tmp_path / "a", epochs=1, max_steps=3, lora_r=4, lora_alpha=8)
    second = replace(first, out=tmp_path / "b", lora_r=8, lora_alpha=32, seed=1, lr=1e-2)
    one_d = replace(first, out=tmp_path / "1d", strategy="1d")
    for args in (first, second, one_d):
        run_training(args, **quiet)
    return first, second, one_d


def _merged_weights(settings: ModelSettings) -> dict[str, torch.Tensor]:
    """Every weight of the model with its adapter (if any) merged in, as PEFT itself computes it."""
    model = load_model(settings).model if settings.adapter else load_base(settings).model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def test_the_soup_changes_each_weight_by_the_mean_of_its_members_changes(members, tiny_settings, tmp_path):
    first, second, _ = members
    make_soup([first.out, second.out], tmp_path / "soup", version="soup-test", echo=lambda line: None)

    base = _merged_weights(tiny_settings)
    merged = {path: _merged_weights(replace(tiny_settings, adapter=path, use_default_adapter=True))
              for path in (first.out, second.out, tmp_path / "soup")}
    changed = 0
    for name, weight in base.items():
        mean_change = ((merged[first.out][name] - weight) + (merged[second.out][name] - weight)) / 2
        soup_change = merged[tmp_path / "soup"][name] - weight
        if not mean_change.any():
            assert not soup_change.any(), name
            continue
        # Exact up to the fp16 storage of the soup's factors (relative rounding about 5e-4).
        error = (soup_change - mean_change).norm() / mean_change.norm()
        assert error < 2e-3, (name, float(error))
        changed += 1
    assert changed > 0  # the members did train, so the comparison above compared something

    config = json.loads((tmp_path / "soup" / PEFT_CONFIG_FILE).read_text())
    assert config["r"] == 12 and config["lora_alpha"] == 12
    meta = json.loads((tmp_path / "soup" / METADATA_FILE).read_text())
    assert meta["version"] == "soup-test" and [m["lora_r"] for m in meta["soup_of"]] == [4, 8]
    assert meta["strategy"] == "all" and meta["template_id"] and meta["soup_rank"] == 12
    assert meta["hyperparameters"]["lora_r"] == 4  # a retrain trains one adapter with the first member's recipe
    # The union of the members' training sets is kept for a later retrain.
    members_texts = {e.text for args in (first, second) for e in read_examples(args.out / TRAINING_SET_FILE)}
    assert {e.text for e in read_examples(tmp_path / "soup" / TRAINING_SET_FILE)} == members_texts


def test_a_weighted_soup_changes_each_weight_by_the_weighted_mean(members, tiny_settings, tmp_path):
    first, second, _ = members
    # Weights 3 and 1 are normalised to shares 0.75 and 0.25.
    make_soup([first.out, second.out], tmp_path / "weighted", shares=[3, 1], echo=lambda line: None)

    base = _merged_weights(tiny_settings)
    merged = {path: _merged_weights(replace(tiny_settings, adapter=path, use_default_adapter=True))
              for path in (first.out, second.out, tmp_path / "weighted")}
    changed = 0
    for name, weight in base.items():
        expected = 0.75 * (merged[first.out][name] - weight) + 0.25 * (merged[second.out][name] - weight)
        if not expected.any():
            continue
        error = (merged[tmp_path / "weighted"][name] - weight - expected).norm() / expected.norm()
        assert error < 2e-3, (name, float(error))
        changed += 1
    assert changed > 0
    meta = json.loads((tmp_path / "weighted" / METADATA_FILE).read_text())
    assert [m["share"] for m in meta["soup_of"]] == [0.75, 0.25]

    quiet = {"echo": lambda line: None}
    with pytest.raises(TrainingError, match="given 1 times for 2 adapters"):
        make_soup([first.out, second.out], tmp_path / "w1", shares=[1], **quiet)
    with pytest.raises(TrainingError, match="must be positive"):
        make_soup([first.out, second.out], tmp_path / "w2", shares=[1, 0], **quiet)
    assert not (tmp_path / "w1").exists() and not (tmp_path / "w2").exists()


def test_a_compressed_soup_keeps_the_best_low_rank_change_of_each_layer(members, tmp_path):
    from safetensors.torch import load_file

    from training.soup import compress, read_member, soup_weights

    first, second, _ = members
    weights, rank = soup_weights([read_member(first.out), read_member(second.out)])
    assert rank == 12
    same, same_rank = compress(weights, 12)  # at its own rank: nothing to cut
    assert same_rank == 12 and all(torch.equal(same[key], weights[key]) for key in weights)
    cut, cut_rank = compress(weights, 3)
    assert cut_rank == 3
    for key_a in [key for key in weights if "lora_A" in key]:
        key_b = key_a.replace("lora_A", "lora_B")
        delta = weights[key_b].double() @ weights[key_a].double()
        assert cut[key_a].shape[0] == 3 and cut[key_b].shape[1] == 3
        # The truncated SVD of the full change, computed directly (Eckart-Young: the best rank-3 change).
        u, singular, vh = torch.linalg.svd(delta)
        best = (u[:, :3] * singular[:3]) @ vh[:3]
        error = (cut[key_b].double() @ cut[key_a].double() - best).norm() / max(best.norm(), 1e-12)
        assert error < 1e-4, (key_a, float(error))

    make_soup([first.out, second.out], tmp_path / "small", max_rank=5, echo=lambda line: None)
    config = json.loads((tmp_path / "small" / PEFT_CONFIG_FILE).read_text())
    assert config["r"] == 5 and config["lora_alpha"] == 5
    assert all(t.shape[0] == 5 for k, t in load_file(tmp_path / "small" / "adapter_model.safetensors").items()
               if "lora_A" in k)
    with pytest.raises(TrainingError, match="--max-rank 0 is not valid"):
        make_soup([first.out, second.out], tmp_path / "none", max_rank=0, echo=lambda line: None)


def test_a_soup_needs_two_compatible_lora_adapters(members, tmp_path):
    first, second, one_d = members
    quiet = {"echo": lambda line: None}
    with pytest.raises(TrainingError, match="at least two"):
        make_soup([first.out], tmp_path / "one", **quiet)
    with pytest.raises(TrainingError, match="'1d' adapter"):
        make_soup([first.out, one_d.out], tmp_path / "mixed", **quiet)
    other = tmp_path / "other-template"
    shutil.copytree(second.out, other)
    meta = json.loads((other / METADATA_FILE).read_text())
    meta["template_id"] = "some-other-template"
    (other / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(TrainingError, match="differ in template_id"):
        make_soup([first.out, other], tmp_path / "bad", **quiet)
    with pytest.raises(TrainingError, match="does not exist"):
        make_soup([first.out, tmp_path / "missing"], tmp_path / "bad", **quiet)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "one").exists()


def test_modbot_soup_writes_a_measured_adapter(members, tiny_model_dir, tmp_path, monkeypatch, capsys):
    first, second, _ = members
    monkeypatch.setenv("MODBOT_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("MODBOT_DEVICE", "cpu")
    monkeypatch.setenv("MODBOT_QUANTIZATION", "none")
    monkeypatch.setenv("MODBOT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "soup"
    code = main(["soup", str(first.out), str(second.out), "--out", str(out), "--eval-on", str(first.val[0])])
    assert code == 0
    report = json.loads((out / "eval_toy_val.json").read_text())
    assert report["n"] == len(read_examples(first.val[0])) and 0 <= report["accuracy"] <= 1

    assert (out / "confusion_toy_val.png").stat().st_size > 0
    members = json.loads((out / METADATA_FILE).read_text())["soup_of"]
    assert all(m["epochs"] and m["training_time_s"] > 0 and m["data"]["counts"]["train"] for m in members)

    assert main(["soup", str(first.out), str(second.out), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_retrain_from_a_soup_joins_the_new_adapter_to_it(members, tiny_model_dir, tmp_path):
    from training.retrain import JobSpec, run_job

    first, second, _ = members
    active = tmp_path / "active"
    make_soup([first.out, second.out], active, version="shipped-soup", echo=lambda line: None)
    toy = read_examples(first.val[0])
    corrections = [{"text": f"{e.text} again", "label": e.label, "message_id": 1000 + i} for i, e in enumerate(toy)]
    export = tmp_path / "corrections.jsonl"
    export.write_text("".join(json.dumps(c) + "\n" for c in corrections))
    job = tmp_path / "job"
    job.mkdir()
    spec = JobSpec(version="v2", out=tmp_path / "v2", active_adapter=active, corrections=export, gold=first.val[0],
                   job_dir=job, model=str(tiny_model_dir), quantization="none", device="cpu",
                   cache_dir=tmp_path / "cache", options={"epochs": 1, "max_steps": 2}, threads=1)
    result = run_job(spec)

    assert result["status"] == "completed" and result["candidate"]["gold"]["n"] == len(toy)
    meta = json.loads((spec.out / METADATA_FILE).read_text())
    assert [m["version"] for m in meta["soup_of"]] == ["shipped-soup", "v2"] and meta["version"] == "v2"
    assert meta["soup_rank"] == 12 + 4  # the active soup's rank plus one adapter of its first member's recipe
    assert meta["retrain"]["parent"] == "shipped-soup"
    assert (spec.out / "retrain_val.jsonl").is_file() and (spec.out / "eval_gold.json").is_file()
    assert not (job / "member" / "eval_gold.json").exists()  # the member is measured only as part of the soup
    trained = {e.text for e in read_examples(spec.out / TRAINING_SET_FILE)}
    assert {e.text for e in read_examples(active / TRAINING_SET_FILE)} <= trained
    assert any(c["text"] in trained for c in corrections)
