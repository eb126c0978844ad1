"""The gate's default gold set: the held-out split that ships with the default adapter."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from bot import Settings
from bot.retrain import resolve_eval_data
from bot.storage import AdapterVersion
from model.adapter import shipped_adapter
from training.formats import read_examples


def test_the_shipped_adapter_carries_a_gold_set_for_the_gate(tmp_path):
    shipped = shipped_adapter("smollm2-135m")
    assert shipped is not None, "the default model's adapter must ship with the package"
    version = AdapterVersion(
        number=1, name="v1", model="smollm2-135m", path=tmp_path / "v1", source=shipped, parent=None,
        status="active", origin="registered", started_by=None, last_correction_id=0, corrections=0,
        job_dir=None, pid=None, phase=None, progress=None, data=None, figures=None, reason=None,
        status_channel_id=None, status_message_id=None, created_at=datetime.now(UTC), finished_at=None,
        activated_at=None,
    )
    settings = replace(Settings.from_env({"DISCORD_TOKEN": "x"}), eval_data=None)
    gold = resolve_eval_data(settings, [version])
    assert gold.parent == shipped
    examples = read_examples(gold)
    assert len(examples) >= 150
    assert {example.label for example in examples} == {"hate", "offensive", "neutral"}
    trained_on = {example.text for example in read_examples(shipped / "train.jsonl")}
    assert not trained_on & {example.text for example in examples}
