"""Everything modbot keeps, in SQLite: the only module that writes SQL.

Every function takes an open connection (from :func:`open_database`), uses parameters for every value
and returns dataclasses. The connection is in autocommit mode: a write is one statement, or several in
one :func:`transaction`.

The bot's coroutines share one connection, and SQLite's transactions belong to the connection, not to
a coroutine: a statement another coroutine ran in the middle of a transaction would be committed or
rolled back with it. So every statement here takes the connection's turn (:func:`_turn`), and a
transaction holds that turn from BEGIN to COMMIT: nothing else runs on the connection meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from model import Prediction
from model.errors import ModbotError
from model.labels import FLAGGABLE, LABELS

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")

ACTIONS = ("flag", "delete", "timeout", "none")
_PAGE = 500  # rows per statement when reading a long list
BUSY_TIMEOUT_MS = 5000  # how long SQLite itself waits for another process's lock, per try
LOCKED_RETRY_SECONDS = 300.0  # how long a statement keeps trying while another process holds the database
_LOCKED_PAUSE = 0.1
EXEMPTION_KINDS = ("channel", "role")


class StorageError(ModbotError):
    """The database cannot be opened, migrated or used (another process held it for too long)."""


# --------------------------------------------------------------------------- opening, migrations


class _Turns:
    """Who may use one connection now: any number of single statements, or one transaction alone.

    Single statements in autocommit mode cannot disturb each other, so they run side by side as
    before. A transaction waits for the statements already running, then holds the connection from
    BEGIN to COMMIT; statements from other tasks that arrive meanwhile wait for it to end.
    """

    def __init__(self) -> None:
        self.transactions = asyncio.Lock()  # one transaction at a time
        self.owner: asyncio.Task | None = None  # the task whose transaction is open (or about to open)
        self.running = 0  # single statements in flight
        self.idle = asyncio.Event()  # no single statement in flight
        self.idle.set()
        self.open = asyncio.Event()  # no transaction open or waiting: single statements may start
        self.open.set()


_turns: weakref.WeakKeyDictionary[aiosqlite.Connection, _Turns] = weakref.WeakKeyDictionary()


def _turns_of(conn: aiosqlite.Connection) -> _Turns:
    turns = _turns.get(conn)
    if turns is None:
        turns = _turns[conn] = _Turns()
    return turns


@asynccontextmanager
async def transaction(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception, with the connection to itself.

    No other task's statement runs on the connection until it ends, so none can be committed or rolled
    back with it. A transaction inside a transaction (same task) joins the outer one. Its statements
    run in the task that opened it: a task it started and waited for would wait for it forever.
    """
    turns = _turns_of(conn)
    task = asyncio.current_task()
    if task is not None and turns.owner is task:
        yield
        return
    async with turns.transactions:
        turns.owner = task
        turns.open.clear()  # statements arriving from now on wait for this transaction
        try:
            await turns.idle.wait()  # ... and those already running finish first
            try:
                await _statement(conn, "BEGIN IMMEDIATE")
                yield
                await _statement(conn, "COMMIT")
            except BaseException:
                # Also when cancelled: the connection runs statements in order, so this ROLLBACK comes
                # after whatever statement the cancelled await had already handed to it.
                await _rollback(conn)
                raise
        finally:
            turns.owner = None
            turns.open.set()


async def _rollback(conn: aiosqlite.Connection) -> None:
    try:
        await _statement(conn, "ROLLBACK")
    except sqlite3.OperationalError:
        pass  # no transaction is open: BEGIN failed, or an error (a full disk) ended it already


async def _statement(
    conn: aiosqlite.Connection, sql: str, parameters: tuple | list = (), *, fetch: bool = False
) -> tuple[aiosqlite.Cursor, list[aiosqlite.Row]]:
    """Run one statement, outside any other task's transaction; its rows if ``fetch``. Closes its cursor."""
    turns = _turns_of(conn)
    task = asyncio.current_task()
    mine = task is not None and turns.owner is task
    if not mine:
        while not turns.open.is_set():
            await turns.open.wait()
        turns.running += 1  # no await between the check and this: no transaction can start in between
        turns.idle.clear()
    try:
        cursor = await _execute_when_unlocked(conn, sql, parameters)
        try:
            rows = list(await cursor.fetchall()) if fetch else []
        finally:
            await cursor.close()
        return cursor, rows
    finally:
        if not mine:
            turns.running -= 1
            if turns.running == 0:
                turns.idle.set()


def _locked(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "database is locked" in str(exc)


async def _execute_when_unlocked(conn: aiosqlite.Connection, sql: str, parameters: tuple | list) -> aiosqlite.Cursor:
    """Execute, trying again while another process holds the database (a backup, an open `sqlite3` shell).

    Each try already waits up to the busy timeout inside SQLite; past LOCKED_RETRY_SECONDS in all, the
    statement fails with a StorageError. Until then the caller (a prediction, a decision) keeps waiting
    with what it has to store, instead of losing it to `database is locked`.
    """
    waiting_since = next_warning = None
    while True:
        try:
            cursor = await conn.execute(sql, parameters)
        except sqlite3.OperationalError as exc:
            if not _locked(exc):
                raise
            now = time.monotonic()
            if waiting_since is None:
                waiting_since, next_warning = now, now
            waited = now - waiting_since
            if waited >= LOCKED_RETRY_SECONDS:
                raise StorageError(
                    f"The database stayed locked by another process for {waited:.1f} s; gave up: {exc}"
                ) from None
            if now >= next_warning:
                log.warning("The database is locked by another process: waiting to use it (%.0f s so far, "
                            "giving up after %.0f s)", waited, LOCKED_RETRY_SECONDS)
                next_warning = now + 30
            await asyncio.sleep(_LOCKED_PAUSE)
            continue
        if waiting_since is not None:
            log.warning("The database is free again after %.1f s", time.monotonic() - waiting_since)
        return cursor


async def _write(conn: aiosqlite.Connection, sql: str, parameters: tuple = ()) -> aiosqlite.Cursor:
    """Run one statement; the closed cursor still tells ``rowcount`` and ``lastrowid``."""
    cursor, _ = await _statement(conn, sql, parameters)
    return cursor


async def _write_returning(conn: aiosqlite.Connection, sql: str, parameters: tuple = ()) -> list[aiosqlite.Row]:
    _, rows = await _statement(conn, sql, parameters, fetch=True)
    return rows


async def _fetchall(conn: aiosqlite.Connection, sql: str, parameters: tuple | list = ()) -> list[aiosqlite.Row]:
    _, rows = await _statement(conn, sql, parameters, fetch=True)
    return rows


async def _fetchone(conn: aiosqlite.Connection, sql: str, parameters: tuple | list = ()) -> aiosqlite.Row | None:
    rows = await _fetchall(conn, sql, parameters)
    return rows[0] if rows else None



async def open_database(path: Path | str) -> aiosqlite.Connection:
    """Open (creating if needed) the database at ``path`` and bring its schema up to date."""
    path = Path(path)
    in_memory = str(path) == ":memory:"
    if not in_memory:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # It holds message text: its user's alone. SQLite gives the -wal and -shm the file's mode.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StorageError(f"MODBOT_DB={path}: cannot create it: {exc}") from None
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        raise StorageError(f"MODBOT_DB={path}: cannot open the database: {exc}") from None
    try:
        conn.row_factory = aiosqlite.Row
        await _write(conn, "PRAGMA journal_mode = WAL")
        await _write(conn, "PRAGMA foreign_keys = ON")
        await _write(conn, "PRAGMA synchronous = NORMAL")
        await _write(conn, f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        applied = await migrate(conn)
    except sqlite3.DatabaseError as exc:
        await conn.close()
        raise StorageError(f"MODBOT_DB={path}: not a usable modbot database: {exc}") from None
    except BaseException:
        await conn.close()
        raise
    if applied:
        log.info("Database %s: applied migrations %s", path, ", ".join(map(str, applied)))
    if not in_memory:
        _make_private(path)
    return conn


def _make_private(path: Path) -> None:
    """Make a database that earlier versions created readable by others (0644) its user's alone."""
    for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        try:
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
                log.info("Database %s: made readable by its owner only (it holds message text)", file)
        except FileNotFoundError:
            continue
        except OSError as exc:  # someone else's file: say so, and keep going
            log.warning("Database %s is readable by other users and could not be changed: %s", file, exc)


def available_migrations() -> list[tuple[int, str, Path]]:
    found = []
    for file in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _MIGRATION_NAME.match(file.name)
        if match:
            found.append((int(match.group(1)), match.group(2), file))
    return found


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3 knows where a statement, trigger bodies included, ends)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            if current.strip():
                statements.append(current.strip())
            current = ""
    if current.strip() and not all(part.strip().startswith("--") for part in current.splitlines() if part.strip()):
        raise StorageError(f"migration ends with an incomplete statement: {current.strip()[:60]!r}")
    return statements


async def migrate(conn: aiosqlite.Connection) -> list[int]:
    """Apply the pending migrations in one transaction and record them; return their numbers."""
    await _write(
        conn,
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in await _fetchall(conn, "SELECT version FROM schema_migrations")}
    if all(number in done for number, _, _ in available_migrations()):
        return []
    async with transaction(conn):
        # Looked at again under the write lock: another process opening the database at the same moment (several
        # bot processes, MODBOT_SHARD_IDS) may have applied them while this one waited for it.
        done = {row[0] for row in await _fetchall(conn, "SELECT version FROM schema_migrations")}
        pending = [(number, name, file) for number, name, file in available_migrations() if number not in done]
        for number, name, file in pending:
            for statement in _statements(file.read_text(encoding="utf-8")):
                try:
                    await _write(conn, statement)
                except sqlite3.Error as exc:
                    raise StorageError(f"migration {file.name} failed, nothing was changed: {exc}") from None
            await _write(
                conn,
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (number, name, _ts(datetime.now(UTC))),
            )
    return [number for number, _, _ in pending]


async def applied_migrations(conn: aiosqlite.Connection) -> list[int]:
    return [row[0] for row in await _fetchall(conn, "SELECT version FROM schema_migrations ORDER BY version")]


def _ts(moment: datetime) -> str:
    """One text format for every time, so that text order is time order."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------- guild settings


@dataclass(frozen=True)
class GuildConfig:
    guild_id: int
    review_channel_id: int | None = None
    thresholds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(FLAGGABLE, 0.5))
    actions: dict[str, str] = field(default_factory=lambda: dict.fromkeys(FLAGGABLE, "flag"))
    timeout_minutes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLAGGABLE, 10))
    exempt_channels: frozenset[int] = frozenset()
    exempt_roles: frozenset[int] = frozenset()

    def is_exempt(self, channel_ids: Iterable[int], role_ids: Iterable[int]) -> bool:
        return any(c in self.exempt_channels for c in channel_ids) or any(r in self.exempt_roles for r in role_ids)

    def flag_label(self, probabilities: dict[str, float]) -> str | None:
        """The label to flag a message for, or None.

        A label triggers when its probability reaches the guild's threshold and its action is not
        ``none``; when both trigger, the more probable one is flagged.
        """
        triggered = [
            label
            for label in FLAGGABLE
            if self.actions[label] != "none" and probabilities[label] >= self.thresholds[label]
        ]
        return max(triggered, key=probabilities.__getitem__) if triggered else None


async def get_guild_config(conn: aiosqlite.Connection, guild_id: int) -> GuildConfig:
    row = await _fetchone(conn, "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,))
    exemptions = await _fetchall(conn, "SELECT kind, target_id FROM exemptions WHERE guild_id = ?", (guild_id,))
    channels = frozenset(r["target_id"] for r in exemptions if r["kind"] == "channel")
    roles = frozenset(r["target_id"] for r in exemptions if r["kind"] == "role")
    if row is None:
        return GuildConfig(guild_id, exempt_channels=channels, exempt_roles=roles)
    return GuildConfig(
        guild_id=guild_id,
        review_channel_id=row["review_channel_id"],
        thresholds={label: row[f"{label}_threshold"] for label in FLAGGABLE},
        actions={label: row[f"{label}_action"] for label in FLAGGABLE},
        timeout_minutes={label: row[f"{label}_timeout_minutes"] for label in FLAGGABLE},
        exempt_channels=channels,
        exempt_roles=roles,
    )


async def _ensure_guild(conn: aiosqlite.Connection, guild_id: int, now: datetime) -> None:
    await _write(
        conn,
        "INSERT INTO guild_settings (guild_id, updated_at) VALUES (?, ?) ON CONFLICT (guild_id) DO NOTHING",
        (guild_id, _ts(now)),
    )


async def set_review_channel(conn: aiosqlite.Connection, guild_id: int, channel_id: int, now: datetime) -> None:
    await _write(
        conn,
        "INSERT INTO guild_settings (guild_id, review_channel_id, updated_at) VALUES (?, ?, ?)"
        " ON CONFLICT (guild_id) DO UPDATE SET review_channel_id = excluded.review_channel_id,"
        " updated_at = excluded.updated_at",
        (guild_id, channel_id, _ts(now)),
    )


def _check_flaggable(label: str) -> None:
    if label not in FLAGGABLE:
        raise ValueError(f"label must be one of {FLAGGABLE}, not {label!r}")


async def set_threshold(conn: aiosqlite.Connection, guild_id: int, label: str, value: float, now: datetime) -> None:
    _check_flaggable(label)
    if not 0.0 <= value <= 1.0:
        raise ValueError("threshold must be between 0 and 1")
    await _ensure_guild(conn, guild_id, now)
    # The column name comes from the fixed FLAGGABLE tuple, never from user input.
    column = {"hate": "hate_threshold", "offensive": "offensive_threshold"}[label]
    await _write(
        conn,
        f"UPDATE guild_settings SET {column} = ?, updated_at = ? WHERE guild_id = ?", (value, _ts(now), guild_id)
    )


async def set_action(
    conn: aiosqlite.Connection, guild_id: int, label: str, action: str, minutes: int | None, now: datetime
) -> None:
    _check_flaggable(label)
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}")
    await _ensure_guild(conn, guild_id, now)
    action_column, minutes_column = {
        "hate": ("hate_action", "hate_timeout_minutes"),
        "offensive": ("offensive_action", "offensive_timeout_minutes"),
    }[label]
    await _write(
        conn,
        f"UPDATE guild_settings SET {action_column} = ?, {minutes_column} = COALESCE(?, {minutes_column}),"
        " updated_at = ? WHERE guild_id = ?",
        (action, minutes, _ts(now), guild_id),
    )


async def add_exemption(
    conn: aiosqlite.Connection, guild_id: int, kind: str, target_id: int, created_by: int, now: datetime
) -> bool:
    """Exempt a channel or a role; False if it already was."""
    if kind not in EXEMPTION_KINDS:
        raise ValueError(f"kind must be one of {EXEMPTION_KINDS}")
    cursor = await _write(
        conn,
        "INSERT INTO exemptions (guild_id, kind, target_id, created_by, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (guild_id, kind, target_id, created_by, _ts(now)),
    )
    return cursor.rowcount == 1


async def remove_exemption(conn: aiosqlite.Connection, guild_id: int, kind: str, target_id: int) -> bool:
    """Remove an exemption; False if there was none."""
    cursor = await _write(
        conn,
        "DELETE FROM exemptions WHERE guild_id = ? AND kind = ? AND target_id = ?", (guild_id, kind, target_id)
    )
    return cursor.rowcount == 1


# --------------------------------------------------------------------------- predictions and flags


@dataclass(frozen=True)
class PredictionRecord:
    id: int
    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    label: str
    probabilities: dict[str, float]
    model: str
    adapter_version: str
    truncated: bool
    text: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: aiosqlite.Row, prefix: str = "") -> PredictionRecord:
        return cls(
            id=row[f"{prefix}id"],
            guild_id=row[f"{prefix}guild_id"],
            channel_id=row[f"{prefix}channel_id"],
            message_id=row[f"{prefix}message_id"],
            author_id=row[f"{prefix}author_id"],
            label=row[f"{prefix}label"],
            probabilities={label: row[f"{prefix}p_{label}"] for label in LABELS},
            model=row[f"{prefix}model"],
            adapter_version=row[f"{prefix}adapter_version"],
            truncated=bool(row[f"{prefix}truncated"]),
            text=row[f"{prefix}text"],
            created_at=_dt(row[f"{prefix}created_at"]),
        )


@dataclass(frozen=True)
class Correction:
    id: int
    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    flag_id: int | None
    prediction_id: int | None
    text: str
    predicted: str | None
    probabilities: dict[str, float] | None
    label: str
    moderator_id: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Correction:
        return cls(
            id=row["id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            message_id=row["message_id"],
            author_id=row["author_id"],
            flag_id=row["flag_id"],
            prediction_id=row["prediction_id"],
            text=row["text"],
            predicted=row["predicted"],
            probabilities=json.loads(row["probabilities"]) if row["probabilities"] else None,
            label=row["label"],
            moderator_id=row["moderator_id"],
            created_at=_dt(row["created_at"]),
        )

    def to_export(self) -> dict:
        """The JSONL object of `modbot corrections export` (the training readers' format)."""
        return {
            "text": self.text,
            "label": self.label,
            "predicted": self.predicted,
            "probabilities": self.probabilities,
            "message_id": self.message_id,
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "author_id": self.author_id,
            "moderator_id": self.moderator_id,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Flag:
    id: int
    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    label: str
    action: str
    action_result: str | None
    card_channel_id: int | None
    card_message_id: int | None
    message_deleted: bool
    created_at: datetime
    prediction: PredictionRecord
    decisions: tuple[Correction, ...] = ()  # oldest first; the last one is the current decision

    @property
    def decision(self) -> Correction | None:
        return self.decisions[-1] if self.decisions else None

    @property
    def text(self) -> str | None:
        return self.prediction.text


async def add_prediction(
    conn: aiosqlite.Connection,
    *,
    guild_id: int,
    channel_id: int,
    message_id: int,
    author_id: int,
    prediction: Prediction,
    text: str | None,
    now: datetime,
) -> PredictionRecord | None:
    """Store one classification. Pass ``text`` only for a message that is flagged.

    None, and nothing stored, for a message already deleted (:func:`forget_message`): its classification
    finished after the deletion, or an edit event arrived late. One statement, so a deletion is either
    before it (nothing stored) or after it (the text it stored is erased).
    """
    p = prediction.probabilities
    cursor = await _write(
        conn,
        "INSERT INTO predictions (guild_id, channel_id, message_id, author_id, label, p_hate, p_offensive,"
        " p_neutral, model, adapter_version, truncated, text, created_at)"
        " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
        " WHERE NOT EXISTS (SELECT 1 FROM erased_messages WHERE message_id = ?)",
        (
            guild_id, channel_id, message_id, author_id, prediction.label, p["hate"], p["offensive"],
            p["neutral"], prediction.model, prediction.adapter_version, int(prediction.truncated), text, _ts(now),
            message_id,
        ),
    )
    if cursor.rowcount != 1:
        return None
    return PredictionRecord(
        id=cursor.lastrowid, guild_id=guild_id, channel_id=channel_id, message_id=message_id,
        author_id=author_id, label=prediction.label, probabilities=dict(p), model=prediction.model,
        adapter_version=prediction.adapter_version, truncated=prediction.truncated, text=text,
        created_at=_dt(_ts(now)),
    )


async def latest_prediction(conn: aiosqlite.Connection, message_id: int) -> PredictionRecord | None:
    row = await _fetchone(conn, "SELECT * FROM predictions WHERE message_id = ? ORDER BY id DESC LIMIT 1", (message_id,))
    return PredictionRecord.from_row(row) if row else None


async def count_predictions(conn: aiosqlite.Connection, guild_id: int | None = None) -> int:
    if guild_id is None:
        sql, params = "SELECT COUNT(*) FROM predictions", ()
    else:
        sql, params = "SELECT COUNT(*) FROM predictions WHERE guild_id = ?", (guild_id,)
    return (await _fetchone(conn, sql, params))[0]


async def add_flag(
    conn: aiosqlite.Connection, prediction: PredictionRecord, *, label: str, action: str, now: datetime
) -> Flag:
    _check_flaggable(label)
    # A deletion between the prediction and its flag has already erased the prediction's text: the flag
    # says deleted, as the flags the deletion found do.
    cursor = await _write(
        conn,
        "INSERT INTO flags (prediction_id, guild_id, channel_id, message_id, author_id, label, action,"
        " message_deleted, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, EXISTS (SELECT 1 FROM erased_messages WHERE message_id = ?), ?)",
        (prediction.id, prediction.guild_id, prediction.channel_id, prediction.message_id,
         prediction.author_id, label, action, prediction.message_id, _ts(now)),
    )
    flag = await get_flag(conn, cursor.lastrowid)
    assert flag is not None
    return flag


async def set_flag_card(conn: aiosqlite.Connection, flag_id: int, channel_id: int, message_id: int) -> None:
    await _write(
        conn,
        "UPDATE flags SET card_channel_id = ?, card_message_id = ? WHERE id = ?", (channel_id, message_id, flag_id)
    )


async def set_flag_action_result(conn: aiosqlite.Connection, flag_id: int, result: str) -> None:
    await _write(conn, "UPDATE flags SET action_result = ? WHERE id = ?", (result, flag_id))


_FLAG_SELECT = (
    "SELECT f.*, p.id AS p_id, p.guild_id AS p_guild_id, p.channel_id AS p_channel_id,"
    " p.message_id AS p_message_id, p.author_id AS p_author_id, p.label AS p_label, p.p_hate AS p_p_hate,"
    " p.p_offensive AS p_p_offensive, p.p_neutral AS p_p_neutral, p.model AS p_model,"
    " p.adapter_version AS p_adapter_version, p.truncated AS p_truncated, p.text AS p_text,"
    " p.created_at AS p_created_at"
    " FROM flags f JOIN predictions p ON p.id = f.prediction_id"
)


def _flag_from_row(row: aiosqlite.Row, decisions: tuple[Correction, ...] = ()) -> Flag:
    return Flag(
        id=row["id"],
        guild_id=row["guild_id"],
        channel_id=row["channel_id"],
        message_id=row["message_id"],
        author_id=row["author_id"],
        label=row["label"],
        action=row["action"],
        action_result=row["action_result"],
        card_channel_id=row["card_channel_id"],
        card_message_id=row["card_message_id"],
        message_deleted=bool(row["message_deleted"]),
        created_at=_dt(row["created_at"]),
        prediction=PredictionRecord.from_row(row, prefix="p_"),
        decisions=decisions,
    )


async def get_flag(conn: aiosqlite.Connection, flag_id: int) -> Flag | None:
    row = await _fetchone(conn, f"{_FLAG_SELECT} WHERE f.id = ?", (flag_id,))
    if row is None:
        return None
    rows = await _fetchall(conn, "SELECT * FROM corrections WHERE flag_id = ? ORDER BY id", (flag_id,))
    return _flag_from_row(row, tuple(Correction.from_row(r) for r in rows))


async def flag_for_message(conn: aiosqlite.Connection, message_id: int) -> Flag | None:
    row = await _fetchone(conn, "SELECT id FROM flags WHERE message_id = ? ORDER BY id LIMIT 1", (message_id,))
    return await get_flag(conn, row["id"]) if row else None


_UNREVIEWED = " WHERE f.guild_id = ? AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.flag_id = f.id)"


async def unreviewed_flags(
    conn: aiosqlite.Connection, guild_id: int, *, limit: int, offset: int = 0,
    channel_ids: Collection[int] | None = None,
) -> tuple[list[Flag], int]:
    """The guild's flags that no moderator has decided yet, newest first, and how many there are.

    ``channel_ids``: only the flags of messages in these channels (None: every channel).
    """
    where, params = _UNREVIEWED, [guild_id]
    if channel_ids is not None:
        where += f" AND f.channel_id IN ({', '.join('?' * len(channel_ids))})"
        params += sorted(channel_ids)
    total = (await _fetchone(conn, f"SELECT COUNT(*) FROM flags f{where}", params))[0]
    rows = await _fetchall(conn, f"{_FLAG_SELECT}{where} ORDER BY f.id DESC LIMIT ? OFFSET ?", (*params, limit, offset))
    return [_flag_from_row(row) for row in rows], total


async def unreviewed_flag_channels(conn: aiosqlite.Connection, guild_id: int) -> list[int]:
    """The channels of the guild's unreviewed flags (to ask which of them a moderator may read)."""
    rows = await _fetchall(conn, f"SELECT DISTINCT f.channel_id FROM flags f{_UNREVIEWED} ORDER BY 1", (guild_id,))
    return [row[0] for row in rows]


async def forget_message(conn: aiosqlite.Connection, message_id: int, now: datetime | None = None) -> list[int]:
    """A message was deleted: erase its stored text (corrections keep theirs). Returns the flags it had.

    Its id is remembered first (:func:`is_erased`), so that what comes after the deletion (a classification
    still running, a late edit event, a message recorded for the next start) stores nothing.
    """
    await _write(conn, "INSERT INTO erased_messages (message_id, reason, erased_at) VALUES (?, 'deleted', ?)"
                       " ON CONFLICT (message_id) DO NOTHING", (message_id, _ts(now or datetime.now(UTC))))
    await _write(conn, "UPDATE predictions SET text = NULL WHERE message_id = ? AND text IS NOT NULL", (message_id,))
    await remove_pending_message(conn, message_id)
    rows = await _write_returning(
        conn, "UPDATE flags SET message_deleted = 1 WHERE message_id = ? RETURNING id", (message_id,)
    )
    return [row[0] for row in rows]


async def is_erased(conn: aiosqlite.Connection, message_id: int) -> bool:
    """Whether the message was deleted (or erased): its text must not be stored again."""
    return await _fetchone(conn, "SELECT 1 FROM erased_messages WHERE message_id = ?", (message_id,)) is not None


async def prune_erased_messages(conn: aiosqlite.Connection, cutoff: datetime) -> int:
    """Forget the ids of messages deleted before ``cutoff`` (what follows a deletion comes within seconds)."""
    cursor = await _write(conn, "DELETE FROM erased_messages WHERE reason = 'deleted' AND erased_at < ?",
                          (_ts(cutoff),))
    return cursor.rowcount


async def erase_expired_texts(conn: aiosqlite.Connection, cutoff: datetime) -> list[int]:
    """Erase the text of flagged messages older than ``cutoff`` that no moderator reviewed.

    Returns the ids of the flags whose text was erased. Corrections are not touched: they carry their
    own copy of the text, as training data.
    """
    rows = await _write_returning(
        conn,
        "UPDATE predictions SET text = NULL WHERE text IS NOT NULL AND created_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM corrections c WHERE c.prediction_id = predictions.id) RETURNING id",
        (_ts(cutoff),),
    )
    erased = [row[0] for row in rows]
    if not erased:
        return []
    flag_ids = []
    for start in range(0, len(erased), 500):
        chunk = erased[start : start + 500]
        placeholders = ", ".join("?" * len(chunk))
        rows = await _fetchall(conn, f"SELECT id FROM flags WHERE prediction_id IN ({placeholders}) ORDER BY id", chunk)
        flag_ids += [row[0] for row in rows]
    return flag_ids


# --------------------------------------------------------------------------- erasure on request


@dataclass(frozen=True)
class ErasedRows:
    """What :func:`erase_messages` removed from the database."""

    corrections: int  # correction rows deleted
    flags: int  # flag rows deleted (their review cards are queued in cards_to_erase)
    texts: int  # stored message texts (predictions) erased
    pending: int  # messages waiting for the next start, no longer classified then
    cards: int  # review cards queued to be rewritten
    correction_texts: tuple[str, ...]  # the deleted corrections' texts, to find them in training files
    message_ids: frozenset[int]  # every message of the request the database knew


async def erase_messages(
    conn: aiosqlite.Connection, *, user_id: int | None = None, message_id: int | None = None, now: datetime
) -> ErasedRows:
    """Erase from the database everything about one member's messages (``user_id``) or one message.

    Corrections and flags are deleted, stored texts erased (the classification rows stay, without text, for
    the statistics), a message waiting for the next start forgotten, the review cards that quote the text
    queued in ``cards_to_erase`` for the bot to rewrite. An erased message (``message_id``) is also remembered
    in ``erased_messages``, so that an edit of it, still in Discord, stores nothing. One transaction.
    """
    if (user_id is None) == (message_id is None):
        raise ValueError("give user_id or message_id")
    where, key = ("author_id = ?", user_id) if user_id is not None else ("message_id = ?", message_id)
    async with transaction(conn):
        corrections = await _fetchall(conn, f"SELECT message_id, text FROM corrections WHERE {where}", (key,))
        await _write(conn, f"DELETE FROM corrections WHERE {where}", (key,))
        flags = await _fetchall(conn, f"SELECT message_id, card_channel_id, card_message_id FROM flags WHERE {where}",
                                (key,))
        cards = {(row[1], row[2]) for row in flags if row[1] is not None and row[2] is not None}
        for channel_id, card_id in sorted(cards):
            await _write(conn, "INSERT INTO cards_to_erase (channel_id, message_id, created_at) VALUES (?, ?, ?)"
                               " ON CONFLICT DO NOTHING", (channel_id, card_id, _ts(now)))
        await _write(conn, f"DELETE FROM flags WHERE {where}", (key,))
        texts = (await _write(conn, f"UPDATE predictions SET text = NULL WHERE {where} AND text IS NOT NULL",
                              (key,))).rowcount
        predicted = await _fetchall(conn, f"SELECT DISTINCT message_id FROM predictions WHERE {where}", (key,))
        pending = 0
        if message_id is not None:
            pending = (await _write(conn, "DELETE FROM pending_messages WHERE message_id = ?", (message_id,))).rowcount
            await _write(conn, "INSERT INTO erased_messages (message_id, reason, erased_at) VALUES (?, 'forgotten', ?)"
                               " ON CONFLICT (message_id) DO UPDATE SET reason = 'forgotten'", (message_id, _ts(now)))
    ids = {row[0] for row in [*corrections, *flags, *predicted]} | ({message_id} if message_id is not None else set())
    return ErasedRows(corrections=len(corrections), flags=len(flags), texts=texts, pending=pending, cards=len(cards),
                      correction_texts=tuple(row[1] for row in corrections), message_ids=frozenset(ids))


async def cards_to_erase(conn: aiosqlite.Connection) -> list[tuple[int, int]]:
    """(channel id, message id) of the review cards still quoting erased text, oldest first."""
    rows = await _fetchall(conn, "SELECT channel_id, message_id FROM cards_to_erase ORDER BY created_at, message_id")
    return [(row[0], row[1]) for row in rows]


async def card_erased(conn: aiosqlite.Connection, channel_id: int, message_id: int) -> None:
    await _write(conn, "DELETE FROM cards_to_erase WHERE channel_id = ? AND message_id = ?", (channel_id, message_id))


@dataclass(frozen=True)
class Erasure:
    id: int
    user_id: int | None
    message_id: int | None
    requested_by: str
    summary: dict
    created_at: datetime


async def add_erasure(conn: aiosqlite.Connection, *, user_id: int | None, message_id: int | None, requested_by: str,
                      summary: dict, now: datetime) -> Erasure:
    rows = await _write_returning(
        conn, "INSERT INTO erasures (user_id, message_id, requested_by, summary, created_at) VALUES (?, ?, ?, ?, ?)"
              " RETURNING id", (user_id, message_id, requested_by, json.dumps(summary), _ts(now)))
    return Erasure(rows[0][0], user_id, message_id, requested_by, summary, _dt(_ts(now)))


async def earlier_erasures(conn: aiosqlite.Connection, *, user_id: int | None = None,
                           message_id: int | None = None) -> list[Erasure]:
    """The erasures of this member's messages, or of this message, oldest first."""
    column, key = ("user_id", user_id) if user_id is not None else ("message_id", message_id)
    rows = await _fetchall(conn, f"SELECT * FROM erasures WHERE {column} = ? ORDER BY id", (key,))
    return [Erasure(row["id"], row["user_id"], row["message_id"], row["requested_by"], json.loads(row["summary"]),
                    _dt(row["created_at"])) for row in rows]


# --------------------------------------------------------------------------- messages left by a shutdown


@dataclass(frozen=True)
class PendingMessage:
    """A message the bot received but had not classified when it stopped; the next start classifies it."""

    message_id: int
    guild_id: int
    channel_id: int
    edited: bool
    created_at: datetime


async def add_pending_message(
    conn: aiosqlite.Connection, *, guild_id: int, channel_id: int, message_id: int, edited: bool, now: datetime
) -> None:
    """Record a message to classify at the next start (ids only: it is fetched again from Discord then)."""
    # A message recorded twice (new, then edited) was never classified: it is new, not an edit. A message
    # deleted meanwhile is not recorded.
    await _write(
        conn,
        "INSERT INTO pending_messages (message_id, guild_id, channel_id, edited, created_at)"
        " SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM erased_messages WHERE message_id = ?)"
        " ON CONFLICT (message_id) DO UPDATE SET edited = MIN(edited, excluded.edited)",
        (message_id, guild_id, channel_id, int(edited), _ts(now), message_id),
    )


async def pending_messages(conn: aiosqlite.Connection) -> list[PendingMessage]:
    """Every recorded message, oldest first."""
    rows = await _fetchall(conn, "SELECT * FROM pending_messages ORDER BY created_at, message_id")
    return [
        PendingMessage(message_id=row["message_id"], guild_id=row["guild_id"], channel_id=row["channel_id"],
                       edited=bool(row["edited"]), created_at=_dt(row["created_at"]))
        for row in rows
    ]


async def remove_pending_message(conn: aiosqlite.Connection, message_id: int) -> None:
    await _write(conn, "DELETE FROM pending_messages WHERE message_id = ?", (message_id,))


# --------------------------------------------------------------------------- corrections


async def add_correction(
    conn: aiosqlite.Connection,
    *,
    guild_id: int,
    channel_id: int,
    message_id: int,
    author_id: int,
    text: str,
    label: str,
    moderator_id: int,
    now: datetime,
    flag_id: int | None = None,
    prediction: PredictionRecord | None = None,
) -> Correction:
    """Append a moderator's decision to the history (nothing is ever updated or deleted here)."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, not {label!r}")
    rows = await _write_returning(
        conn,
        "INSERT INTO corrections (guild_id, channel_id, message_id, author_id, flag_id, prediction_id, text,"
        " predicted, probabilities, label, moderator_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING *",
        (
            guild_id, channel_id, message_id, author_id, flag_id,
            prediction.id if prediction else None, text,
            prediction.label if prediction else None,
            json.dumps(prediction.probabilities) if prediction else None,
            label, moderator_id, _ts(now),
        ),
    )
    return Correction.from_row(rows[0])


def _in_guilds(guild_ids: Collection[int] | None) -> tuple[str, tuple[int, ...]]:
    """A condition (and its parameters) keeping the rows of these guilds; none for None (every guild)."""
    if guild_ids is None:
        return "", ()
    return f" AND guild_id IN ({', '.join('?' * len(guild_ids))})", tuple(sorted(guild_ids))


async def corrections(
    conn: aiosqlite.Connection, guild_id: int | None = None, *, guild_ids: Collection[int] | None = None
) -> AsyncIterator[Correction]:
    """Every correction, oldest first (a later one for the same message supersedes an earlier one).

    ``guild_id`` / ``guild_ids``: only that guild's, or these guilds' (MODBOT_TRAINING_GUILDS).
    Read a page at a time, so that no statement stays open on the shared connection while the caller
    works between rows.
    """
    where, params = _in_guilds(guild_ids if guild_id is None else (guild_id,))
    after = 0
    while True:
        rows = await _fetchall(conn, f"SELECT * FROM corrections WHERE id > ?{where} ORDER BY id LIMIT ?",
                               (after, *params, _PAGE))
        for row in rows:
            yield Correction.from_row(row)
        if len(rows) < _PAGE:
            return
        after = rows[-1]["id"]


async def count_corrections(
    conn: aiosqlite.Connection, guild_id: int | None = None, *, guild_ids: Collection[int] | None = None
) -> int:
    where, params = _in_guilds(guild_ids if guild_id is None else (guild_id,))
    return (await _fetchone(conn, f"SELECT COUNT(*) FROM corrections WHERE 1{where}", params))[0]


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class LabelStats:
    predicted: int = 0  # classifications whose most probable label is this one
    flags: int = 0
    reviewed: int = 0  # flags a moderator decided
    confirmed: int = 0  # ... and decided for the label the bot flagged

    @property
    def precision(self) -> float | None:
        """How often the moderators agreed with the bot's flags, of the flags they reviewed."""
        return self.confirmed / self.reviewed if self.reviewed else None


@dataclass(frozen=True)
class Stats:
    since: datetime
    classified: int
    corrections: int
    labels: dict[str, LabelStats]


async def stats(conn: aiosqlite.Connection, guild_id: int, since: datetime) -> Stats:
    since_ts = _ts(since)
    rows = await _fetchall(
        conn, "SELECT label, COUNT(*) FROM predictions WHERE guild_id = ? AND created_at >= ? GROUP BY label",
        (guild_id, since_ts),
    )
    predicted = {row[0]: row[1] for row in rows}
    rows = await _fetchall(
        conn,
        "SELECT f.label, COUNT(*) AS flags, COUNT(d.label) AS reviewed, COALESCE(SUM(d.label = f.label), 0)"
        " AS confirmed FROM flags f LEFT JOIN corrections d ON d.id ="
        " (SELECT MAX(c.id) FROM corrections c WHERE c.flag_id = f.id)"
        " WHERE f.guild_id = ? AND f.created_at >= ? GROUP BY f.label",
        (guild_id, since_ts),
    )
    flagged = {row[0]: row for row in rows}
    corrected = (await _fetchone(
        conn, "SELECT COUNT(*) FROM corrections WHERE guild_id = ? AND created_at >= ?", (guild_id, since_ts)
    ))[0]
    labels = {}
    for label in LABELS:
        row = flagged.get(label)
        labels[label] = LabelStats(
            predicted=predicted.get(label, 0),
            flags=row["flags"] if row else 0,
            reviewed=row["reviewed"] if row else 0,
            confirmed=row["confirmed"] if row else 0,
        )
    return Stats(since=since, classified=sum(predicted.values()), corrections=corrected, labels=labels)


# --------------------------------------------------------------------------- adapter versions (retraining)

VERSION_STATUSES = ("training", "active", "previous", "rejected", "failed", "cancelled")
VERSION_ORIGINS = ("startup", "discord", "schedule", "shell")


class JobAlreadyRunning(ModbotError):
    """Another retraining job is running (the registry allows one at a time)."""


@dataclass(frozen=True)
class AdapterVersion:
    number: int
    name: str
    model: str
    path: Path | None
    source: Path | None
    parent: int | None
    status: str
    origin: str
    started_by: int | None
    last_correction_id: int
    corrections: int
    job_dir: Path | None
    pid: int | None
    phase: str | None
    progress: dict | None
    data: dict | None
    figures: dict | None
    reason: str | None
    status_channel_id: int | None
    status_message_id: int | None
    created_at: datetime
    finished_at: datetime | None
    activated_at: datetime | None

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> AdapterVersion:
        def path(value):
            return Path(value) if value else None

        def loads(value):
            return json.loads(value) if value else None

        return cls(
            number=row["number"], name=row["name"], model=row["model"], path=path(row["path"]),
            source=path(row["source"]), parent=row["parent"], status=row["status"], origin=row["origin"],
            started_by=row["started_by"], last_correction_id=row["last_correction_id"],
            corrections=row["corrections"], job_dir=path(row["job_dir"]), pid=row["pid"], phase=row["phase"],
            progress=loads(row["progress"]), data=loads(row["data"]), figures=loads(row["figures"]),
            reason=row["reason"], status_channel_id=row["status_channel_id"],
            status_message_id=row["status_message_id"], created_at=_dt(row["created_at"]),
            finished_at=_dt(row["finished_at"]) if row["finished_at"] else None,
            activated_at=_dt(row["activated_at"]) if row["activated_at"] else None,
        )


async def _version_rows(conn: aiosqlite.Connection, where: str = "", params: tuple = (),
                        order: str = "number DESC", limit: int | None = None) -> list[AdapterVersion]:
    sql = "SELECT * FROM adapter_versions" + (f" WHERE {where}" if where else "") + f" ORDER BY {order}"
    if limit is not None:
        sql += " LIMIT ?"
        params = (*params, limit)
    return [AdapterVersion.from_row(row) for row in await _fetchall(conn, sql, params)]


async def get_version(conn: aiosqlite.Connection, number: int) -> AdapterVersion | None:
    rows = await _version_rows(conn, "number = ?", (number,))
    return rows[0] if rows else None


async def active_version(conn: aiosqlite.Connection) -> AdapterVersion | None:
    rows = await _version_rows(conn, "status = 'active'")
    return rows[0] if rows else None


async def running_job(conn: aiosqlite.Connection) -> AdapterVersion | None:
    rows = await _version_rows(conn, "status = 'training'")
    return rows[0] if rows else None


async def latest_job(conn: aiosqlite.Connection) -> AdapterVersion | None:
    """The running job, else the last one that ran (registered startup adapters are not jobs)."""
    rows = await _version_rows(conn, "origin != 'startup'", limit=1)
    return rows[0] if rows else None


async def latest_job_of(conn: aiosqlite.Connection, origin: str) -> AdapterVersion | None:
    rows = await _version_rows(conn, "origin = ?", (origin,), limit=1)
    return rows[0] if rows else None


async def list_versions(conn: aiosqlite.Connection, limit: int = 10) -> list[AdapterVersion]:
    return await _version_rows(conn, limit=limit)


async def next_version_number(conn: aiosqlite.Connection) -> int:
    return (await _fetchone(conn, "SELECT COALESCE(MAX(number), 0) + 1 FROM adapter_versions"))[0]


async def register_adapter(
    conn: aiosqlite.Connection, *, number: int, name: str, model: str, path: Path, source: Path | None,
    now: datetime, data: dict | None = None, figures: dict | None = None,
) -> AdapterVersion:
    """Record an adapter the bot serves without having trained it, and make it the active version."""
    async with transaction(conn):
        await _write(conn, "UPDATE adapter_versions SET status = 'previous' WHERE status = 'active'")
        await _write(
            conn,
            "INSERT INTO adapter_versions (number, name, model, path, source, status, origin, data, figures,"
            " created_at, finished_at, activated_at) VALUES (?, ?, ?, ?, ?, 'active', 'startup', ?, ?, ?, ?, ?)",
            (number, name, model, str(path), str(source) if source else None,
             json.dumps(data) if data is not None else None, json.dumps(figures) if figures is not None else None,
             _ts(now), _ts(now), _ts(now)),
        )
    version = await get_version(conn, number)
    assert version is not None
    return version


def version_paths(adapter_dir: Path, number: int) -> tuple[str, Path, Path]:
    """(name, adapter directory, job directory) of version ``number``."""
    return f"v{number}", adapter_dir / f"v{number}", adapter_dir / "jobs" / f"v{number}"


async def start_job(
    conn: aiosqlite.Connection, *, model: str, adapter_dir: Path, parent: int, origin: str,
    started_by: int | None, now: datetime,
) -> AdapterVersion:
    """Create the row of a version being trained. JobAlreadyRunning if another job holds the slot."""
    if origin not in VERSION_ORIGINS:
        raise ValueError(f"origin must be one of {VERSION_ORIGINS}")
    try:
        async with transaction(conn):  # the number is the next one when the row is written
            number = await next_version_number(conn)
            name, path, job_dir = version_paths(adapter_dir, number)
            await _write(
                conn,
                "INSERT INTO adapter_versions (number, name, model, path, parent, status, origin, started_by,"
                " job_dir, phase, created_at) VALUES (?, ?, ?, ?, ?, 'training', ?, ?, ?, 'exporting', ?)",
                (number, name, model, str(path), parent, origin, started_by, str(job_dir), _ts(now)),
            )
    except sqlite3.IntegrityError:
        raise JobAlreadyRunning("a retraining job is already running") from None
    version = await get_version(conn, number)
    assert version is not None
    return version


async def set_job_export(conn: aiosqlite.Connection, number: int, *, corrections: int, last_correction_id: int) -> None:
    await _write(conn, "UPDATE adapter_versions SET corrections = ?, last_correction_id = ? WHERE number = ?",
                 (corrections, last_correction_id, number))


async def set_job_pid(conn: aiosqlite.Connection, number: int, pid: int) -> None:
    await _write(conn, "UPDATE adapter_versions SET pid = ? WHERE number = ?", (pid, number))


async def set_job_progress(conn: aiosqlite.Connection, number: int, phase: str, progress: dict | None) -> None:
    await _write(conn, "UPDATE adapter_versions SET phase = ?, progress = ? WHERE number = ?",
                 (phase, json.dumps(progress) if progress is not None else None, number))


async def set_job_status_message(conn: aiosqlite.Connection, number: int, channel_id: int, message_id: int) -> None:
    await _write(conn, "UPDATE adapter_versions SET status_channel_id = ?, status_message_id = ? WHERE number = ?",
                 (channel_id, message_id, number))


async def finish_job(
    conn: aiosqlite.Connection, number: int, *, status: str, reason: str, now: datetime,
    data: dict | None = None, figures: dict | None = None, keep_path: bool = True,
) -> AdapterVersion:
    """End a job as rejected, failed or cancelled (promotion goes through :func:`activate_version`)."""
    if status not in ("rejected", "failed", "cancelled"):
        raise ValueError("a job ends as rejected, failed or cancelled, or is activated")
    await _write(
        conn,
        "UPDATE adapter_versions SET status = ?, reason = ?, finished_at = ?, data = COALESCE(?, data),"
        " figures = COALESCE(?, figures), path = CASE WHEN ? THEN path ELSE NULL END, pid = NULL"
        " WHERE number = ? AND status = 'training'",
        (status, reason, _ts(now), json.dumps(data) if data is not None else None,
         json.dumps(figures) if figures is not None else None, int(keep_path), number),
    )
    version = await get_version(conn, number)
    assert version is not None
    return version


async def activate_version(
    conn: aiosqlite.Connection, number: int, *, now: datetime, reason: str | None = None,
    data: dict | None = None, figures: dict | None = None,
) -> AdapterVersion:
    """Make ``number`` the active version and the active one previous, in one transaction."""
    async with transaction(conn):
        await _write(conn, "UPDATE adapter_versions SET status = 'previous' WHERE status = 'active' AND number != ?",
                     (number,))
        await _write(
            conn,
            "UPDATE adapter_versions SET status = 'active', activated_at = ?, pid = NULL,"
            " finished_at = COALESCE(finished_at, ?), reason = COALESCE(?, reason), data = COALESCE(?, data),"
            " figures = COALESCE(?, figures) WHERE number = ?",
            (_ts(now), _ts(now), reason, json.dumps(data) if data is not None else None,
             json.dumps(figures) if figures is not None else None, number),
        )
    version = await get_version(conn, number)
    assert version is not None
    return version


async def last_correction_id(conn: aiosqlite.Connection) -> int:
    return (await _fetchone(conn, "SELECT COALESCE(MAX(id), 0) FROM corrections"))[0]


async def count_corrections_since(
    conn: aiosqlite.Connection, correction_id: int, *, guild_ids: Collection[int] | None = None
) -> int:
    """Corrections stored after the one with id ``correction_id`` (the newest an adapter was trained on);
    ``guild_ids``: only these guilds' (None: every guild's)."""
    where, params = _in_guilds(guild_ids)
    return (await _fetchone(conn, f"SELECT COUNT(*) FROM corrections WHERE id > ?{where}",
                            (correction_id, *params)))[0]


async def mark_version_unloadable(conn: aiosqlite.Connection, number: int, *, reason: str,
                                  now: datetime) -> AdapterVersion:
    """Version ``number``'s adapter cannot be loaded: it becomes ``failed`` with ``reason``, and keeps its
    directory (a failed version with a path is one that could not be loaded; `/mod rollback` may serve it
    again once it is repaired)."""
    await _write(conn, "UPDATE adapter_versions SET status = 'failed', reason = ?, pid = NULL,"
                       " finished_at = COALESCE(finished_at, ?) WHERE number = ?", (reason, _ts(now), number))
    version = await get_version(conn, number)
    assert version is not None
    return version


async def previous_versions(conn: aiosqlite.Connection, model: str) -> list[AdapterVersion]:
    """``model``'s versions that were active before the active one, the most recently active first."""
    return await _version_rows(conn, "status = 'previous' AND model = ? AND path IS NOT NULL", (model,),
                               order="COALESCE(activated_at, created_at) DESC, number DESC")


async def read_active_version(path: Path | str) -> AdapterVersion | None:
    """The active version recorded in the database at ``path``, read without creating, migrating or writing
    it (`modbot classify` and `modbot eval`); None when there is no such file or no registry in it yet."""
    path = Path(path).expanduser()
    if not path.is_file():
        return None
    try:
        async with aiosqlite.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
            conn.row_factory = aiosqlite.Row
            rows = await conn.execute_fetchall("SELECT * FROM adapter_versions WHERE status = 'active'")
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise StorageError(f"The database {path} cannot be read ({exc}).") from None
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a modbot database ({exc}).") from None
    return AdapterVersion.from_row(rows[0]) if rows else None


# --------------------------------------------------------------------------- several bot processes


@dataclass(frozen=True)
class Lease:
    """Who holds a named lease (the 'scheduler': the process that runs the scheduled jobs) and until when."""

    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime


async def take_lease(conn: aiosqlite.Connection, name: str, holder: str, *, now: datetime,
                     expires_at: datetime) -> bool:
    """Take the lease ``name`` for ``holder`` until ``expires_at``, or renew it; False if another holds it.

    It is taken when nobody holds it, when its holder's time ran out (``expires_at <= now``: it died or
    hangs), or renewed when ``holder`` holds it already. One statement: SQLite's write lock makes the
    check and the write one step, so two processes cannot both take it.
    """
    rows = await _write_returning(
        conn,
        "INSERT INTO leases (name, holder, acquired_at, renewed_at, expires_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, renewed_at = excluded.renewed_at,"
        " expires_at = excluded.expires_at,"
        " acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at"
        "                    ELSE excluded.acquired_at END"
        " WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.renewed_at"
        " RETURNING holder",
        (name, holder, _ts(now), _ts(now), _ts(expires_at)),
    )
    return bool(rows)


async def release_lease(conn: aiosqlite.Connection, name: str, holder: str) -> bool:
    """Give the lease up (a clean stop), so another process takes it at its next try; False if not held."""
    cursor = await _write(conn, "DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
    return cursor.rowcount == 1


async def get_lease(conn: aiosqlite.Connection, name: str) -> Lease | None:
    row = await _fetchone(conn, "SELECT * FROM leases WHERE name = ?", (name,))
    if row is None:
        return None
    return Lease(name=row["name"], holder=row["holder"], acquired_at=_dt(row["acquired_at"]),
                 renewed_at=_dt(row["renewed_at"]), expires_at=_dt(row["expires_at"]))


async def add_card_to_refresh(conn: aiosqlite.Connection, flag: Flag, now: datetime) -> None:
    """Leave the card of ``flag`` for the process that runs its server's shard to re-render."""
    await _write(conn, "INSERT INTO cards_to_refresh (flag_id, guild_id, created_at) VALUES (?, ?, ?)"
                       " ON CONFLICT (flag_id) DO NOTHING", (flag.id, flag.guild_id, _ts(now)))


async def cards_to_refresh(conn: aiosqlite.Connection) -> list[tuple[int, int]]:
    """(flag id, guild id) of every card left to re-render, oldest first."""
    rows = await _fetchall(conn, "SELECT flag_id, guild_id FROM cards_to_refresh ORDER BY created_at, flag_id")
    return [(row[0], row[1]) for row in rows]


async def card_refreshed(conn: aiosqlite.Connection, flag_id: int) -> None:
    await _write(conn, "DELETE FROM cards_to_refresh WHERE flag_id = ?", (flag_id,))


async def prune_cards_to_refresh(conn: aiosqlite.Connection, cutoff: datetime) -> int:
    """Drop rows older than ``cutoff``: their server is run by no process any more (the bot left it)."""
    cursor = await _write(conn, "DELETE FROM cards_to_refresh WHERE created_at < ?", (_ts(cutoff),))
    return cursor.rowcount
