"""The retraining job's data rules and gate (training/retrain.py), without a model."""

from __future__ import annotations

import json

import pytest

from training.errors import DataError
from training.formats import Example
from training.retrain import JobSpec, gate, held_out, prepare, read_corrections, validation_split


def metrics(accuracy: float, macro_f1: float, n: int = 10) -> dict:
    return {"accuracy": accuracy, "macro_f1": macro_f1, "n": n}


def test_gate_promotes_within_the_f1_tolerance_and_at_least_the_held_out_accuracy():
    active = {"gold": metrics(0.8, 0.70), "heldout": metrics(0.5, 0.4)}
    promote, reasons = gate({"gold": metrics(0.79, 0.691), "heldout": metrics(0.5, 0.5)}, active)
    assert promote and reasons[0].startswith("gold macro-F1 0.691 vs 0.700: kept")
    promote, reasons = gate({"gold": metrics(0.79, 0.689), "heldout": metrics(0.9, 0.9)}, active)
    assert not promote and "more than 0.01 below the active adapter" in reasons[0]
    promote, reasons = gate({"gold": metrics(0.9, 0.9), "heldout": metrics(0.4, 0.4)}, active)
    assert not promote and reasons[1] == "held-out corrections accuracy 0.400 vs 0.500 (n 10): below the active adapter"
    promote, reasons = gate({"gold": metrics(0.9, 0.9), "heldout": None}, {"gold": metrics(0.8, 0.7), "heldout": None})
    assert promote and reasons[1] == "held-out corrections: none (nothing to compare)"


def test_held_out_corrections_are_a_stable_fifth_chosen_by_message_id():
    ids = range(10_000, 12_000)
    chosen = [i for i in ids if held_out(i)]
    assert 0.17 < len(chosen) / len(ids) < 0.23
    assert chosen == [i for i in ids if held_out(i)]  # the same every time, whatever the order or the text


def test_validation_split_is_stratified_by_text_hash_and_stable():
    pool = [Example(f"message {i}", ("hate", "offensive", "neutral")[i % 3]) for i in range(90)]
    train, val = validation_split(pool)
    assert len(val) == 9 and {e.label for e in val} == {"hate", "offensive", "neutral"}
    assert not {e.text for e in val} & {e.text for e in train} and len(train) + len(val) == 90
    # the same messages when the pool grows: a retrain validates on what the last one held back
    _, val_again = validation_split(list(reversed(pool)))
    assert {e.text for e in val_again} == {e.text for e in val}


def test_prepare_merges_corrections_over_the_base_and_keeps_measured_messages_out(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    base = [{"text": f"base {i}", "label": ("hate", "offensive", "neutral")[i % 3]} for i in range(30)]
    (adapter / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in base))
    gold = tmp_path / "gold.csv"
    gold.write_text("text,label\nbase 0,hate\ngold only,neutral\n")
    corrections = [{"text": "BASE 1", "label": "neutral", "message_id": 1}]  # overrides "base 1" (offensive)
    corrections += [{"text": f"new {i}", "label": "hate", "message_id": 100 + i} for i in range(40)]
    corrections += [{"text": "base 4", "label": "hate", "message_id": 7}, {"text": "base 4", "label": "neutral",
                                                                          "message_id": 7}]  # latest decision wins
    export = tmp_path / "corrections.jsonl"
    export.write_text("".join(json.dumps(r) + "\n" for r in corrections))
    job = tmp_path / "job"
    job.mkdir()
    spec = JobSpec(version="v2", out=tmp_path / "v2", active_adapter=adapter, corrections=export, gold=gold,
                   job_dir=job, model="unused")
    prepared = prepare(spec)
    trained = {json.loads(line)["text"]: json.loads(line)["label"] for line in prepared.data_file.read_text().splitlines()}
    validated = {json.loads(line)["text"] for line in prepared.val_file.read_text().splitlines()}
    held = {json.loads(line)["text"] for line in prepared.heldout_file.read_text().splitlines()}
    summary = prepared.summary
    assert summary["corrections"] == 42 and summary["corrections_held_out"] == len(held) > 0
    assert "base 0" not in trained and "base 0" not in validated  # a gold message is never trained on
    assert not held & set(trained) and not held & validated
    assert held_out(1) is False and held_out(7) is False  # (so the two overrides below are trained, not held out)
    assert "base 1" not in trained and "base 1" not in validated
    assert trained.get("BASE 1", "neutral") == "neutral" and ("BASE 1" in trained or "BASE 1" in validated)
    assert trained.get("base 4", "neutral") == "neutral" and summary["overrides"] == 2  # base 4 was offensive
    assert sum(summary["train"].values()) == len(trained) and sum(summary["val"].values()) == len(validated)


def test_a_broken_correction_export_names_the_line(tmp_path):
    export = tmp_path / "corrections.jsonl"
    export.write_text('{"text": "a", "label": "hate", "message_id": 1}\n{"text": "b", "label": "rude", "message_id": 2}\n')
    with pytest.raises(DataError, match=r"corrections.jsonl:2: not a correction export line"):
        read_corrections(export)
