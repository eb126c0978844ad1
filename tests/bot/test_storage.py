"""Storage: migrations, SQLite settings, and the queries the cogs rely on."""

from __future__ import annotations

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
