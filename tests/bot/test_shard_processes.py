"""Two bot processes of one sharded application against one database: both classify their shard's messages,
exactly one runs the scheduled jobs, and the other takes over when that one is killed (kill -9).

Each process is tests/bot/shard_process.py: the real bot with MODBOT_SHARD_COUNT=2 and its own
MODBOT_SHARD_IDS, the real scheduler lease (a 6 s period instead of a minute), in its own SimCord.
"""

from __future__ import annotations

import json
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
    def __init__(self, tmp_path: Path, shard: int) -> None:
        self.log_path = tmp_path / f"shard{shard}.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.bot.shard_process", "--db", str(tmp_path / "modbot.sqlite3"),
                 "--adapter-dir", str(tmp_path / "adapters"), "--shard", str(shard), "--shards", "2",
                 "--lease-s", str(LEASE_S)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True,
            )
        self.lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
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

