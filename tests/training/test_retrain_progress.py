"""A retraining job's progress covers evaluation: each set it evaluates reports how far it is, and the time
left said while training includes the evaluation still to come (a large gold set takes minutes)."""

from __future__ import annotations

import json
import random

import pytest

from bot.retrain import describe_progress
from training.args import TrainArgs
from training.recipe import run_training
from training.retrain import JobSpec, run_job

WORDS = ["the", "quick", "brown", "fox", "lazy", "dog", "good", "friend", "meeting", "time", "what", "like"]
KEYWORDS = {"hate": "vermin", "offensive": "idiot", "neutral": "friend"}


def examples(counts: dict[str, int], seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [{"text": " ".join(rng.choice(WORDS) for _ in range(4)) + f" {KEYWORDS[label]} {seed}-{i}", "label": label}
            for label, count in counts.items() for i in range(count)]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def active_adapter(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("progress-active")
    args = TrainArgs(data=(write_jsonl(root / "train.jsonl", examples({"hate": 30, "offensive": 10, "neutral": 10}, 1)),),
                     out=root / "adapter", model=str(tiny_model_dir), device="cpu", quantization="none",
                     strategy="1d", epochs=2, lr=0.1, batch_size=8, optimizer="adamw", warmup_ratio=0.0,
                     max_message_tokens=32, val_fraction=0.1, version="first", cache_dir=root / "cache")
    run_training(args, echo=lambda line: None)
    return root / "adapter"


def test_evaluation_reports_its_progress_and_the_time_left_includes_it(tmp_path, tiny_model_dir, active_adapter):
    # A gold set much larger than the training data: evaluating takes longer than training, as with the real
    # gold set of thousands of messages and a retrain on a few dozen corrections.
    gold = write_jsonl(tmp_path / "gold.jsonl", examples({"hate": 300, "offensive": 150, "neutral": 150}, 2))
    corrections = [{**e, "message_id": 1000 + i} for i, e in enumerate(examples({"hate": 25}, 3))]
    export = write_jsonl(tmp_path / "corrections.jsonl", corrections)
    job = tmp_path / "job"
    job.mkdir()
    spec = JobSpec(version="v2", out=tmp_path / "v2", active_adapter=active_adapter, corrections=export, gold=gold,
                   job_dir=job, model=str(tiny_model_dir), quantization="none", device="cpu",
                   cache_dir=tmp_path / "cache", threads=1)
    run_job(spec)
    lines = [json.loads(line) for line in spec.progress_file.read_text().splitlines()]

    # each epoch's validation, and each adapter on each set, says how far it is until it is done
    validating = [p for p in lines if p["phase"] == "training" and p.get("set") == "validate"]
    assert {p["epoch"] for p in validating} == {1, 2} and all(p["done"] == p["total"] for p in validating[-1:])
    for adapter in ("candidate", "active"):
        for name in ("gold", "heldout"):
            seen = [p for p in lines if p["phase"] == "evaluating" and p.get("adapter") == adapter
                    and p.get("set") == name]
            assert seen and seen[0]["done"] == 0 and seen[-1]["done"] == seen[-1]["total"] > 0, (adapter, name)
            assert all(p["eta_s"] is not None for p in seen)
    gold_line = next(p for p in lines if p.get("adapter") == "candidate" and p.get("set") == "gold"
                     and p["done"] == p["total"])
    assert describe_progress(gold_line).startswith("evaluating the new adapter: gold set 100%, about ")

    # the time left said when the last training step is done covers the evaluation that follows
    last_step = max((p for p in lines if p["phase"] == "training" and p.get("step") and not p.get("set")),
                    key=lambda p: (p["step"], p["elapsed_s"]))
    assert last_step["step"] == last_step["steps"]
    verdict = next(p for p in lines if p["phase"] == "verdict")
    still_to_come = verdict["elapsed_s"] - last_step["elapsed_s"]
    assert still_to_come > 0 and last_step["eta_s"] >= 0.25 * still_to_come, (last_step, still_to_come)
    assert describe_progress(last_step).endswith(" left") and "about 0 s left" not in describe_progress(last_step)
