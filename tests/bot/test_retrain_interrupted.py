"""`modbot retrain` interrupted (Ctrl-C, SIGTERM) or failed: the job's directory keeps no message text.

Each test runs the real `modbot retrain` in its own process, as a shell (or systemd, or cron's timeout) would,
with a job slow enough to be caught training, on the tiny GPT-J of test_retrain.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import storage

from .test_retrain import add_corrections, first_adapter, make_examples  # noqa: F401 (first_adapter: a fixture)

REPO = Path(__file__).resolve().parents[2]
CORRECTIONS = make_examples({"hate": 16, "offensive": 4, "neutral": 4}, seed=31)
TEXT_FILES = {"corrections.jsonl", "corrections_train.jsonl", "train_pool.jsonl", "retrain_val.jsonl", "gold.jsonl"}


@pytest.fixture(autouse=True)
def no_job_left_running(tmp_path):
    """A test that fails must not leave its 500-epoch job training: kill the job processes of this test."""
    yield
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "training.retrain" in cmdline and str(tmp_path) in cmdline:
            os.kill(int(proc.name), signal.SIGKILL)


def start_retrain(tmp_path: Path, tiny_model_dir: Path, first_adapter: Path) -> subprocess.Popen:  # noqa: F811
    """A database with CORRECTIONS, and `modbot retrain --force` running on it with a 500-epoch job."""
    db_path = tmp_path / "modbot.sqlite3"

    async def seed():
        conn = await storage.open_database(db_path)
        await add_corrections(conn, CORRECTIONS)
        await conn.close()

    asyncio.run(seed())
    env = {**os.environ, "PYTHONPATH": str(REPO), "MODBOT_DB": str(db_path), "MODBOT_MODEL": str(tiny_model_dir),
           "MODBOT_DEVICE": "cpu", "MODBOT_QUANTIZATION": "none", "MODBOT_ADAPTER": str(first_adapter),
           "MODBOT_ADAPTER_DIR": str(tmp_path / "adapters"), "MODBOT_RETRAIN_THREADS": "1",
           "MODBOT_CACHE_DIR": str(tmp_path / "cache"), "MODBOT_RETRAIN_OPTIONS": "epochs=500"}
    # As a terminal starts it: Ctrl-C at its default. A child inherits an ignored SIGINT, and in a full run
    # the Ctrl-C case failed that way (the job ran to its end, exit 0) while it passed alone: the test
    # process can come to ignore SIGINT through what ran before it.
    return subprocess.Popen([sys.executable, "-m", "bot.cli", "retrain", "--force"], cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_training(process: subprocess.Popen, job_dir: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    progress = job_dir / "progress.jsonl"
    while True:
        if progress.is_file() and any(json.loads(line).get("phase") == "training"
                                      for line in progress.read_text().splitlines() if line.strip()):
            return
        if process.poll() is not None:
            raise AssertionError(f"`modbot retrain` ended before training: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the job did not start training in time")
        time.sleep(0.2)


def registry(db_path: Path) -> dict[int, tuple[str, str | None]]:
    with sqlite3.connect(db_path) as conn:
        return {number: (status, reason) for number, status, reason in
                conn.execute("SELECT number, status, reason FROM adapter_versions")}


def assert_no_message_text_left(tmp_path: Path, job_dir: Path) -> None:
    left = sorted(p.name for p in job_dir.iterdir())
    assert set(left) <= {"spec.json", "progress.jsonl", "result.json", "job.log"}, left
    assert "progress.jsonl" in left  # a small log of what happened stays
    for file in job_dir.iterdir():
        content = file.read_text(errors="replace")
        assert not any(record["text"] in content for record in CORRECTIONS), file
    assert not (tmp_path / "adapters" / "v2").exists() and not list((tmp_path / "adapters").glob(".v2.tmp-*"))


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_shell_retrain_leaves_no_message_text(tmp_path, tiny_model_dir, first_adapter, how):  # noqa: F811
    process = start_retrain(tmp_path, tiny_model_dir, first_adapter)
    job_dir = tmp_path / "adapters" / "jobs" / "v2"
    wait_for_training(process, job_dir)
    assert TEXT_FILES <= {p.name for p in job_dir.iterdir()}  # what the job works from while it runs
    process.send_signal(how)
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 130, err
    assert "version 2 cancelled: nothing changed" in err
    assert registry(tmp_path / "modbot.sqlite3")[2][0] == "cancelled"
    assert_no_message_text_left(tmp_path, job_dir)


def test_a_failed_shell_retrain_leaves_no_message_text(tmp_path, tiny_model_dir, first_adapter):  # noqa: F811
    process = start_retrain(tmp_path, tiny_model_dir, first_adapter)
    job_dir = tmp_path / "adapters" / "jobs" / "v2"
    wait_for_training(process, job_dir)
    with sqlite3.connect(tmp_path / "modbot.sqlite3") as conn:
        [(pid,)] = conn.execute("SELECT pid FROM adapter_versions WHERE status = 'training'").fetchall()
    os.kill(pid, signal.SIGKILL)  # what the kernel's OOM killer does to the job
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert process.returncode == 2, err
    assert err.strip().splitlines()[-1].startswith("modbot: error: the retraining job failed: the job process was "
                                                   "killed by SIGKILL")
    status, reason = registry(tmp_path / "modbot.sqlite3")[2]
    assert status == "failed" and "SIGKILL" in reason
    assert_no_message_text_left(tmp_path, job_dir)
