"""Storage: migrations, SQLite settings, and the queries the cogs rely on."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from bot import storage
from model import Prediction

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)


async def test_migrations_are_recorded_and_applied_once(tmp_path):
    path = tmp_path / "m.sqlite3"
    conn = await storage.open_database(path)
    assert await storage.applied_migrations(conn) == [n for n, _, _ in storage.available_migrations()]
    async with conn.execute("PRAGMA journal_mode") as cursor:
        assert (await cursor.fetchone())[0] == "wal"
    async with conn.execute("PRAGMA foreign_keys") as cursor:
        assert (await cursor.fetchone())[0] == 1
    await conn.close()
    conn = await storage.open_database(path)  # a second start applies nothing
    assert await storage.migrate(conn) == []
    await conn.close()


async def test_a_failing_migration_changes_nothing(tmp_path, monkeypatch):
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_initial.sql").write_text((storage.MIGRATIONS_DIR / "0001_initial.sql").read_text())
    (migrations / "0002_broken.sql").write_text("CREATE TABLE extra (id INTEGER);\nALTER TABLE nowhere ADD x INT;\n")
    monkeypatch.setattr(storage, "MIGRATIONS_DIR", migrations)
    with pytest.raises(storage.StorageError, match="0002_broken.sql failed, nothing was changed"):
        await storage.open_database(tmp_path / "m.sqlite3")
    (migrations / "0002_broken.sql").unlink()
    conn = await storage.open_database(tmp_path / "m.sqlite3")
    assert await storage.applied_migrations(conn) == [1]
    async with conn.execute("SELECT name FROM sqlite_master WHERE name = 'extra'") as cursor:
        assert await cursor.fetchone() is None
    await conn.close()


async def test_a_file_that_is_not_a_database_is_one_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a database " * 100)
    with pytest.raises(storage.StorageError, match="MODBOT_DB=.*not a usable modbot database"):
        await storage.open_database(path)


async def test_guild_config_defaults_and_flag_rule(tmp_path):
    conn = await storage.open_database(tmp_path / "m.sqlite3")
    config = await storage.get_guild_config(conn, 1)
    assert config.review_channel_id is None and config.thresholds == {"hate": 0.5, "offensive": 0.5}
    assert config.flag_label({"hate": 0.6, "offensive": 0.3, "neutral": 0.1}) == "hate"
    assert config.flag_label({"hate": 0.2, "offensive": 0.3, "neutral": 0.5}) is None
    await storage.set_threshold(conn, 1, "offensive", 0.25, NOW)
    await storage.set_action(conn, 1, "hate", "none", None, NOW)
    config = await storage.get_guild_config(conn, 1)
    # hate crossed its threshold but its action is none: offensive, also crossed, is flagged
    assert config.flag_label({"hate": 0.6, "offensive": 0.3, "neutral": 0.1}) == "offensive"
    await storage.set_action(conn, 1, "hate", "timeout", 60, NOW)
    config = await storage.get_guild_config(conn, 1)
    assert config.actions["hate"] == "timeout" and config.timeout_minutes["hate"] == 60
    assert config.timeout_minutes["offensive"] == 10
    await conn.close()


async def test_stats_windows(tmp_path):
    conn = await storage.open_database(tmp_path / "m.sqlite3")
    hate = Prediction("hate", {"hate": 0.9, "offensive": 0.05, "neutral": 0.05}, "m", "v")
    for days_ago in (1, 10):
        record = await storage.add_prediction(conn, guild_id=1, channel_id=2, message_id=days_ago, author_id=3,
                                              prediction=hate, text="x", now=NOW - timedelta(days=days_ago))
        flag = await storage.add_flag(conn, record, label="hate", action="flag", now=NOW - timedelta(days=days_ago))
        await storage.add_correction(conn, guild_id=1, channel_id=2, message_id=days_ago, author_id=3, text="x",
                                     label="hate" if days_ago == 1 else "neutral", moderator_id=4,
                                     now=NOW - timedelta(days=days_ago), flag_id=flag.id, prediction=record)
    week = await storage.stats(conn, 1, NOW - timedelta(days=7))
    month = await storage.stats(conn, 1, NOW - timedelta(days=30))
    assert (week.classified, week.labels["hate"].flags, week.labels["hate"].precision) == (1, 1, 1.0)
    assert (month.classified, month.labels["hate"].reviewed, month.labels["hate"].precision) == (2, 2, 0.5)
    await conn.close()


HATE = Prediction("hate", {"hate": 0.9, "offensive": 0.05, "neutral": 0.05}, "m", "v")


async def _predict(conn, message_id: int) -> storage.PredictionRecord:
    return await storage.add_prediction(conn, guild_id=1, channel_id=2, message_id=message_id, author_id=3,
                                        prediction=HATE, text=None, now=NOW)


@pytest.fixture
async def conn(tmp_path):
    conn = await storage.open_database(tmp_path / "m.sqlite3")
    yield conn
    await conn.close()


async def _prediction_ids(conn) -> list[int]:
    async with conn.execute("SELECT id FROM predictions ORDER BY id") as cursor:
        return [row[0] for row in await cursor.fetchall()]


async def test_a_write_from_another_coroutine_is_not_rolled_back_with_a_failed_transaction(conn, tmp_path):
    await storage.register_adapter(conn, number=1, name="v1", model="m", path=tmp_path / "v1", source=None, now=NOW)
    # registering number 1 again fails inside its transaction (after its first UPDATE) and rolls back;
    # a prediction stored meanwhile by another coroutine must stay stored
    registered, record = await asyncio.gather(
        storage.register_adapter(conn, number=1, name="v1", model="m", path=tmp_path / "v1", source=None, now=NOW),
        _predict(conn, 10),
        return_exceptions=True,
    )
    assert isinstance(registered, sqlite3.IntegrityError)
    assert await _prediction_ids(conn) == [record.id]
    assert (await storage.active_version(conn)).number == 1  # the failed transaction changed nothing


async def test_two_transactions_at_once_run_one_after_the_other(conn, tmp_path):
    for number in (1, 2, 3):
        await storage.register_adapter(conn, number=number, name=f"v{number}", model="m", path=tmp_path / f"v{number}",
                                       source=None, now=NOW)
    await asyncio.gather(storage.activate_version(conn, 1, now=NOW), storage.activate_version(conn, 2, now=NOW),
                         _predict(conn, 11))
    assert (await storage.active_version(conn)).number == 2
    statuses = {v.number: v.status for v in await storage.list_versions(conn)}
    assert statuses == {1: "previous", 2: "active", 3: "previous"}
    assert len(await _prediction_ids(conn)) == 1


async def test_no_statement_from_another_coroutine_enters_a_transaction(conn):
    inside, release = asyncio.Event(), asyncio.Event()

    async def transaction_that_fails():
        async with storage.transaction(conn):
            await _predict(conn, 1)
            inside.set()
            await release.wait()
            raise RuntimeError("the transaction fails after its first write")

    failing = asyncio.create_task(transaction_that_fails())
    await inside.wait()
    write = asyncio.create_task(_predict(conn, 2))
    read = asyncio.create_task(storage.latest_prediction(conn, 1))
    await asyncio.sleep(0.05)
    assert not write.done() and not read.done()  # both wait for the transaction to end
    release.set()
    with pytest.raises(RuntimeError, match="fails after its first write"):
        await failing
    assert await read is None  # it never saw the write that was rolled back
    assert await _prediction_ids(conn) == [(await write).id]


async def test_a_cancelled_transaction_is_rolled_back_and_the_connection_stays_usable(conn):
    started = asyncio.Event()

    async def slow_transaction():
        async with storage.transaction(conn):
            await _predict(conn, 1)
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(slow_transaction())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not conn.in_transaction
    record = await _predict(conn, 2)
    assert await _prediction_ids(conn) == [record.id]


# Another process that takes the database's write lock, holds it for argv[2] seconds, then lets go.
HOLD_THE_DATABASE = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def hold_the_database(path, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_DATABASE, str(path), str(seconds)],
                              stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"locked\n"
    return holder


async def test_a_write_waits_for_another_process_holding_the_database_longer_than_the_busy_timeout(
        conn, tmp_path, caplog):
    await storage._write(conn, "PRAGMA busy_timeout = 100")  # SQLite's own wait (5 s in use), made short
    holder = hold_the_database(tmp_path / "m.sqlite3", 1.0)
    record = await _predict(conn, 1)
    assert holder.wait(10) == 0
    assert await _prediction_ids(conn) == [record.id]
    assert "The database is locked by another process" in caplog.text


async def test_a_database_locked_for_too_long_is_one_clear_error(conn, tmp_path, monkeypatch):
    await storage._write(conn, "PRAGMA busy_timeout = 100")
    monkeypatch.setattr(storage, "LOCKED_RETRY_SECONDS", 0.3)
    holder = hold_the_database(tmp_path / "m.sqlite3", 2.0)
    with pytest.raises(storage.StorageError, match=r"stayed locked by another process for 0\.\d s"):
        await _predict(conn, 1)
    assert holder.wait(10) == 0
    assert await _prediction_ids(conn) == []


async def test_pending_messages_keep_ids_only_and_a_deletion_removes_them(conn):
    await storage.add_pending_message(conn, guild_id=1, channel_id=2, message_id=10, edited=False, now=NOW)
    await storage.add_pending_message(conn, guild_id=1, channel_id=2, message_id=10, edited=True, now=NOW)
    await storage.add_pending_message(conn, guild_id=1, channel_id=2, message_id=11, edited=True, now=NOW)
    pending = await storage.pending_messages(conn)
    # recorded new, then edited, before it was ever classified: it is still new (it may get a card)
    assert [(p.message_id, p.edited) for p in pending] == [(10, False), (11, True)]
    async with conn.execute("PRAGMA table_info(pending_messages)") as cursor:
        assert "text" not in {row["name"] for row in await cursor.fetchall()}
    await storage.forget_message(conn, 11)
    assert [p.message_id for p in await storage.pending_messages(conn)] == [10]
