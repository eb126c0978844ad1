"""Two bot processes of one sharded application against one database: both classify their shard's messages,
exactly one runs the scheduled jobs, and the other takes over when that one is killed (kill -9); and two such
processes classifying through one Ray Serve application that `modbot serve` deployed.

Each process is tests/bot/shard_process.py: the real bot with MODBOT_SHARD_COUNT=2 and its own
MODBOT_SHARD_IDS, the real scheduler lease (a 6 s period instead of a minute), in its own SimCord.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 6.0
START_S = 60.0  # a cold start of a process on a busy 2-core machine
SLACK_S = 5.0  # the loaded machine's lateness, on top of the lease's own timing


class ShardProcess:
    def __init__(self, tmp_path: Path, shard: int, *, env: dict | None = None) -> None:
        self.log_path = tmp_path / f"shard{shard}.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.bot.shard_process", "--db", str(tmp_path / "modbot.sqlite3"),
                 "--adapter-dir", str(tmp_path / "adapters"), "--shard", str(shard), "--shards", "2",
                 "--lease-s", str(LEASE_S), *(["--model-from-env"] if env is not None else [])],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=env,
            )
        self.lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith("{"):  # a Ray driver's own notices (e.g. "(raylet) ...") may be printed there too
                self.lines.put(json.loads(line))

    def expect(self, key: str, timeout: float) -> dict:
        """The next line; it must carry ``key``."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {key!r} line within {timeout:.0f} s; its log:\n{self.log()}") from None
        assert key in line, (line, self.log())
        return line

    def said(self) -> list[dict]:
        lines = []
        while not self.lines.empty():
            lines.append(self.lines.get_nowait())
        return lines

    def log(self) -> str:
        return self.log_path.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def lease_holder(db: Path) -> tuple[str, str] | None:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT holder, renewed_at FROM leases WHERE name = 'scheduler'").fetchone()


def test_two_shard_processes_one_database_one_scheduler_and_a_takeover_when_it_is_killed(tmp_path):
    db = tmp_path / "modbot.sqlite3"
    first = ShardProcess(tmp_path, 0)
    second = None
    try:
        a = first.expect("ready", START_S)
        assert first.expect("scheduler", SLACK_S)["scheduler"] is True  # alone: it runs the scheduled jobs
        second = ShardProcess(tmp_path, 1)
        b = second.expect("ready", START_S)
        assert second.expect("scheduler", SLACK_S)["scheduler"] is False  # the lease is taken

        # Each process runs its own shard, and classified its server's message into the one database.
        assert (a["shards"], b["shards"]) == ([0], [1])
        assert (a["label"], b["label"], a["cards"], b["cards"]) == ("hate", "hate", 1, 1)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT guild_id, message_id, label FROM predictions").fetchall()
        assert sorted(stored) == sorted([(a["guild"], a["message"], "hate"), (b["guild"], b["message"], "hate")])

        # One scheduler: over a whole lease period, the first renews and the second never takes over.
        renewed = lease_holder(db)
        time.sleep(LEASE_S * 1.2)
        holder, renewed_again = lease_holder(db)
        assert holder == a["holder"] and renewed_again > renewed[1]
        assert first.said() == [] and second.said() == []  # neither changed its mind

        # kill -9 the holder: the second process takes the scheduled jobs over once the lease has expired.
        killed = time.monotonic()
        first.kill()
        assert second.expect("scheduler", LEASE_S * 4 / 3 + SLACK_S)["scheduler"] is True
        assert time.monotonic() - killed <= LEASE_S * 4 / 3 + SLACK_S
        assert lease_holder(db)[0] == b["holder"]
        assert f"runs the scheduled jobs; it was held by {a['holder']}" in second.log()

        # A clean stop gives the lease up at once (the next process need not wait for it to expire).
        second.process.terminate()
        second.expect("stopped", 30)
        assert second.process.wait(timeout=30) == 0
        assert lease_holder(db) is None
    finally:
        first.kill()
        if second is not None:
            second.kill()


def one_scheduler(shards: list[ShardProcess], holders: list[str], db: Path, timeout: float) -> int:
    """Which process runs the scheduled jobs, once each has said whether it does, one does, and the lease names it.

    A process whose start outlasted its own share of the lease period (connecting to Ray on a busy machine took
    longer than 4.8 s) says at first that it does not: its heartbeat follows the bot's clock, which stood still
    during the start; it renews the lease once the clock has caught up. Never do two say they do at once.
    """
    said: list[bool | None] = [None] * len(shards)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for n, shard in enumerate(shards):
            for line in shard.said():
                assert "scheduler" in line, (line, shard.log())
                said[n] = line["scheduler"]
        assert said.count(True) <= 1, said
        if None not in said and True in said and (lease_holder(db) or [None])[0] == holders[said.index(True)]:
            return said.index(True)
        time.sleep(0.1)
    raise AssertionError(f"no one scheduler within {timeout:.0f} s: {said}, lease {lease_holder(db)}")


def test_two_shard_processes_classify_through_one_ray_serve_application(tmp_path, tiny_model_dir):
    """`modbot serve` deploys the tiny model on a local Ray instance; both shard processes are thin clients of
    it (MODBOT_BACKEND=ray, no torch in their process), and store what it answered in the one database; one of
    them runs the scheduled jobs, and the other takes them over when it is killed."""
    db = tmp_path / "modbot.sqlite3"
    # As a bot started from another shell: not this process's RAY_AUTH_MODE, if a Ray test set one; the bots
    # join the cluster `modbot serve` starts with its token (model.ray_backend.connect_ray).
    inherited = {key: value for key, value in os.environ.items() if key != "RAY_AUTH_MODE"}
    env = {**inherited, "MODBOT_MODEL": str(tiny_model_dir), "MODBOT_DEVICE": "cpu", "MODBOT_QUANTIZATION": "none",
           "MODBOT_ADAPTER": "none", "MODBOT_CACHE_DIR": str(tmp_path / "cache"), "MODBOT_RAY_APP": "shards-test",
           "RAY_ADDRESS": ""}
    serve_out, serve_log = tmp_path / "serve.out", tmp_path / "serve.log"
    # Its output goes to files, which never fill up as an unread pipe would and block it.
    with open(serve_out, "w") as out, open(serve_log, "w") as log:
        serve = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--replicas", "1", "--num-cpus", "1"],
                                 cwd=ROOT, env=env, stdout=out, stderr=log, text=True)
    shards: list[ShardProcess] = []
    try:
        address = None
        deadline = time.monotonic() + START_S * 2
        while address is None and serve.poll() is None and time.monotonic() < deadline:
            for line in serve_out.read_text().splitlines():
                if "RAY_ADDRESS=" in line:
                    address = line.split("RAY_ADDRESS=", 1)[1].split()[0]
            time.sleep(0.2)
        assert address, f"modbot serve did not start: {serve_log.read_text()}"
        client = {**env, "MODBOT_BACKEND": "ray", "RAY_ADDRESS": address}
        shards = [ShardProcess(tmp_path, shard, env=client) for shard in (0, 1)]
        a, b = (shard.expect("ready", START_S * 2) for shard in shards)

        assert (a["shards"], b["shards"]) == ([0], [1])
        assert not a["torch_loaded"] and not b["torch_loaded"]  # the model runs in the Ray application only
        assert a["model"] == b["model"] and a["adapter_version"] == b["adapter_version"]
        assert a["label"] in ("hate", "offensive", "neutral") and b["label"] in ("hate", "offensive", "neutral")
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT guild_id, message_id, model, adapter_version FROM predictions").fetchall()
        assert sorted(stored) == sorted([(a["guild"], a["message"], a["model"], a["adapter_version"]),
                                         (b["guild"], b["message"], b["model"], b["adapter_version"])])
        first = one_scheduler(shards, [a["holder"], b["holder"]], db, LEASE_S * 4 / 3 + SLACK_S)  # here too

        # kill -9 the holder: the other takes the scheduled jobs over once the lease has expired.
        holder, other = shards[first], shards[1 - first]
        taken_by = (a, b)[1 - first]
        killed = time.monotonic()
        holder.kill()
        assert other.expect("scheduler", LEASE_S * 4 / 3 + SLACK_S)["scheduler"] is True
        assert time.monotonic() - killed <= LEASE_S * 4 / 3 + SLACK_S
        assert lease_holder(db)[0] == taken_by["holder"]
    finally:
        for shard in shards:
            shard.kill()
        serve.terminate()  # `modbot serve` removes the application and stops Ray on SIGTERM
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
