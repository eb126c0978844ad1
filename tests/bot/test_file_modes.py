"""Everything modbot writes that holds message text is its user's alone: files 0600, directories 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bot import storage

from .test_retrain import _shell_setup, first_adapter, make_examples  # noqa: F401 - first_adapter is a fixture


@pytest.fixture
def usual_umask():
    """The umask most systems start with (022): anything created without a mode of its own is world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def not_private(root: Path) -> list[str]:
    """The files under ``root`` other users could read, and the directories they could enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        wanted = 0o700 if path.is_dir() else 0o600
        if mode(path) & 0o077:
            found.append(f"{path.relative_to(root.parent)} {mode(path):o} (want {wanted:o})")
    return found


async def test_the_database_and_its_wal_and_shm_are_private(tmp_path, usual_umask):
    path = tmp_path / "data" / "modbot.sqlite3"
    conn = await storage.open_database(path)
    try:
        await storage.add_correction(conn, guild_id=1, channel_id=2, message_id=3, author_id=4, text="a message",
                                     label="hate", moderator_id=5, now=storage.datetime.now(storage.UTC))
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        assert all(f.exists() for f in files)
        assert not_private(path.parent) == []
    finally:
        await conn.close()


async def test_a_database_created_before_is_made_private_when_opened(tmp_path, usual_umask):
    path = tmp_path / "modbot.sqlite3"
    conn = await storage.open_database(path)
    await conn.close()
    path.chmod(0o644)  # what earlier versions created
    conn = await storage.open_database(path)
    try:
        await storage.add_correction(conn, guild_id=1, channel_id=2, message_id=3, author_id=4, text="a message",
                                     label="hate", moderator_id=5, now=storage.datetime.now(storage.UTC))
        assert mode(path) == 0o600 and mode(path.with_name(path.name + "-wal")) == 0o600
    finally:
        await conn.close()


def test_a_retrain_leaves_its_job_files_and_the_new_adapter_private(monkeypatch, tmp_path, tiny_model_dir,
                                                                    first_adapter, capsys, usual_umask):  # noqa: F811
    from bot.cli import main

    _shell_setup(monkeypatch, tmp_path, tiny_model_dir, first_adapter, make_examples({"hate": 22}, seed=9))
    assert main(["retrain"]) == 0
    assert "version 2: active" in capsys.readouterr().out
    adapters = tmp_path / "adapters"
    job, adapter = adapters / "jobs" / "v2", adapters / "v2"
    assert {"corrections.jsonl", "corrections_train.jsonl", "train_pool.jsonl", "spec.json"} <= {
        p.name for p in job.iterdir()}
    assert (adapter / "train.jsonl").is_file()
    assert not_private(job) == [] and not_private(adapter) == []


def test_an_adapter_trained_with_modbot_train_keeps_its_training_set_private(tmp_path, tiny_model_dir, usual_umask):
    from training.args import TrainArgs
    from training.recipe import run_training

    from .test_retrain import write_jsonl

    data = write_jsonl(tmp_path / "exported.jsonl", make_examples({"hate": 6, "offensive": 6, "neutral": 6}, seed=4))
    out = tmp_path / "adapter"
    run_training(TrainArgs(data=(data,), out=out, model=str(tiny_model_dir), device="cpu", quantization="none",
                           strategy="1d", epochs=1, batch_size=8, max_message_tokens=32, val_fraction=0.2,
                           cache_dir=tmp_path / "cache"), echo=lambda line: None)
    assert (out / "train.jsonl").is_file()
    assert not_private(out) == []
