"""`modbot backup` and `modbot restore`: an online copy while the bot writes, and putting it back, checked."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import storage
from bot.cli import main
from model import Prediction

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
PREDICTION = Prediction("offensive", {"hate": 0.1, "offensive": 0.7, "neutral": 0.2}, "m", "v1")


@pytest.fixture
def env(monkeypatch, tmp_path):
    """The bot's database and adapter registry under tmp_path, named the way an owner names them (.env or the
    environment), and no other MODBOT_ variable."""
    for name in [name for name in os.environ if name.startswith("MODBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODBOT_DB", str(tmp_path / "live" / "modbot.sqlite3"))
    monkeypatch.setenv("MODBOT_ADAPTER_DIR", str(tmp_path / "live" / "adapters"))
    return monkeypatch


def live(tmp_path) -> tuple[Path, Path]:
    return tmp_path / "live" / "modbot.sqlite3", tmp_path / "live" / "adapters"


async def _fill(db_path: Path, adapter_dir: Path, texts: list[str]) -> None:
    """A database with flagged messages and a registered adapter version whose training data holds text."""
    conn = await storage.open_database(db_path)
    try:
        for number, text in enumerate(texts):
            await storage.add_prediction(conn, guild_id=1, channel_id=2, message_id=number, author_id=4,
                                         prediction=PREDICTION, text=text, now=NOW)
        version = adapter_dir.resolve() / "v1"
        version.mkdir(parents=True)
        (version / "adapter_config.json").write_text('{"r": 8}\n')
        (version / "adapter_model.safetensors").write_bytes(os.urandom(4096))
        (version / "train.jsonl").write_text(json.dumps({"text": texts[0], "label": "offensive"}) + "\n")
        await storage.register_adapter(conn, number=1, name="v1", model="m", path=version, source=None, now=NOW)
    finally:
        await conn.close()


async def _texts(db_path: Path) -> list[str]:
    conn = await storage.open_database(db_path)
    try:
        return [(await storage.latest_prediction(conn, number)).text
                for number in range(await storage.count_predictions(conn))]
    finally:
        await conn.close()


async def _versions(db_path: Path) -> list[storage.AdapterVersion]:
    conn = await storage.open_database(db_path)
    try:
        return await storage.list_versions(conn, limit=100)
    finally:
        await conn.close()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modbot: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def _modes(root: Path) -> set[tuple[str, int]]:
    """(kind, permission bits) of everything under ``root``, itself included."""
    found = {("dir", stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found.add(("dir" if path.is_dir() else "file", stat.S_IMODE(path.stat().st_mode)))
    return found


# --------------------------------------------------------------------------- backup


def test_a_backup_taken_while_the_bot_writes_holds_every_committed_row(env, tmp_path, capsys):
    """Another connection writes pairs of rows, each pair in one transaction, all through the backup: the copy is
    a valid database holding every pair committed before the backup started and never half a pair."""
    db_path, adapter_dir = live(tmp_path)
    asyncio.run(_fill(db_path, adapter_dir, ["first"]))
    committed = []  # pairs committed so far, in order
    started, stop = threading.Event(), threading.Event()
    errors = []

    async def write_pairs():
        conn = await storage.open_database(db_path)
        try:
            pair = 0
            while not stop.is_set():
                async with storage.transaction(conn):
                    for half in (0, 1):
                        await storage.add_prediction(conn, guild_id=1, channel_id=2, message_id=1000 + 2 * pair + half,
                                                     author_id=4, prediction=PREDICTION, text=f"pair {pair}", now=NOW)
                committed.append(pair)
                pair += 1
                if pair == 20:
                    started.set()
        finally:
            await conn.close()

    def writer():
        try:
            asyncio.run(write_pairs())
        except BaseException as exc:  # the test fails on it below
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(60)
        before = len(committed)
        assert main(["backup", "--out", str(tmp_path / "backup")]) == 0
        after_backup = len(committed)
        while len(committed) < after_backup + 20 and not errors:  # the writer is still going after it
            threading.Event().wait(0.01)
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    assert "backed up the database" in capsys.readouterr().err

    copy = tmp_path / "backup" / "modbot.sqlite3"
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        pairs = [row[0] for row in conn.execute(
            "SELECT message_id FROM predictions WHERE message_id >= 1000 ORDER BY message_id")]
    finally:
        conn.close()
    assert len(pairs) % 2 == 0  # never half a transaction
    assert pairs == list(range(1000, 1000 + len(pairs)))  # a prefix of what was committed, no gaps
    assert len(pairs) // 2 >= before
    assert len(pairs) // 2 < len(committed)  # a snapshot: the rows written after it are not in it
    assert not [p for p in (tmp_path / "backup").iterdir() if p.name.endswith(("-wal", "-shm", "-journal"))]


def test_a_backup_holds_the_registry_and_a_manifest_and_only_its_owner_can_read_it(env, tmp_path, capsys):
    db_path, adapter_dir = live(tmp_path)
    asyncio.run(_fill(db_path, adapter_dir, ["you idiot"]))
    out = tmp_path / "backups" / "monday"  # its parent is created too
    assert main(["backup", "--out", str(out)]) == 0
    assert capsys.readouterr().err.strip() == (
        f"modbot: backed up the database ({os.path.getsize(out / 'modbot.sqlite3') / 1024:.1f} KiB, schema version "
        f"{max(n for n, _, _ in storage.available_migrations())}) and 1 adapter version (v1) to {out}")

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema_version"] == max(n for n, _, _ in storage.available_migrations())
    assert datetime.fromisoformat(manifest["created_at"]).tzinfo is not None
    assert manifest["versions"] == [{"number": 1, "name": "v1", "status": "active", "copied": True}]
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == {"modbot.sqlite3", "adapters/v1/adapter_config.json",
                           "adapters/v1/adapter_model.safetensors", "adapters/v1/train.jsonl"}
    assert listed["adapters/v1/train.jsonl"]["bytes"] == (adapter_dir / "v1" / "train.jsonl").stat().st_size
    import hashlib

    assert listed["adapters/v1/adapter_model.safetensors"]["sha256"] == hashlib.sha256(
        (adapter_dir / "v1" / "adapter_model.safetensors").read_bytes()).hexdigest()
    # Message text is in the database and in train.jsonl: nobody but the owner reads any of it.
    assert _modes(out) == {("dir", 0o700), ("file", 0o600)}
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    assert asyncio.run(_texts(out / "modbot.sqlite3")) == ["you idiot"]

    assert main(["backup", "--out", str(out / "again"), "--quiet"]) == 0
    assert capsys.readouterr().err == ""  # for cron: silent when it works


def test_text_erased_before_the_backup_is_not_in_it(env, tmp_path):
    """Even where SQLite leaves deleted bytes in the file (secure_delete off, as in many builds), the backup is
    rebuilt from the live rows: an erased message's text does not travel into backups kept for weeks."""
    db_path, adapter_dir = live(tmp_path)
    secrets = [f"secret message {number:03d} " * 10 for number in range(200)]
    asyncio.run(_fill(db_path, adapter_dir, ["first"]))

    async def add_and_forget():
        conn = await storage.open_database(db_path)
        try:
            await conn.execute("PRAGMA secure_delete = OFF")
            for number, text in enumerate(secrets, start=100):
                await storage.add_prediction(conn, guild_id=1, channel_id=2, message_id=number, author_id=4,
                                             prediction=PREDICTION, text=text, now=NOW)
            await storage.forget_message(conn, 150)
        finally:
            await conn.close()

    asyncio.run(add_and_forget())
    assert main(["backup", "--out", str(tmp_path / "backup")]) == 0
    data = (tmp_path / "backup" / "modbot.sqlite3").read_bytes()
    assert b"secret message 049 " in data  # kept
    assert b"secret message 050 " not in data  # erased


async def _start_job(db_path: Path, adapter_dir: Path) -> storage.AdapterVersion:
    conn = await storage.open_database(db_path)
    try:
        return await storage.start_job(conn, model="m", adapter_dir=adapter_dir.resolve(), parent=1, origin="shell",
                                       started_by=None, now=NOW)
    finally:
        await conn.close()


def test_a_backup_leaves_out_job_files_and_the_version_still_being_trained(env, tmp_path, capsys):
    db_path, adapter_dir = live(tmp_path)
    asyncio.run(_fill(db_path, adapter_dir, ["you idiot"]))
    job = asyncio.run(_start_job(db_path, adapter_dir))
    Path(job.job_dir).mkdir(parents=True)
    (Path(job.job_dir) / "corrections.jsonl").write_text('{"text": "you idiot"}\n')
    Path(job.path).mkdir()
    (Path(job.path) / "adapter_config.json").write_text("{")  # half written
    (adapter_dir / ".v3.tmp-123").mkdir()
    assert main(["backup", "--out", str(tmp_path / "backup")]) == 0

    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert {entry["path"].split("/")[1] for entry in manifest["files"][1:]} == {"v1"}
    assert {entry["path"] for entry in manifest["skipped"]} == {"adapters/jobs", "adapters/v2", "adapters/.v3.tmp-123"}
    assert sorted(p.name for p in (tmp_path / "backup" / "adapters").iterdir()) == ["v1"]
    assert [(v["name"], v["status"], v["copied"]) for v in manifest["versions"]] == [
        ("v1", "active", True), ("v2", "training", False)]


@pytest.mark.parametrize("case, expected", [
    ("no database", "MODBOT_DB={db}: no such database"),
    ("not a database", "MODBOT_DB={db}: cannot back it up: file is not a database."),
    ("out exists", "--out {out} already exists"),
    ("out inside the adapters", "--out {adapters}/backup is inside MODBOT_ADAPTER_DIR"),
])
def test_backup_errors_are_one_line_and_leave_nothing_behind(env, tmp_path, capsys, case, expected):
    db_path, adapter_dir = live(tmp_path)
    out = tmp_path / "out"
    if case == "not a database":
        db_path.parent.mkdir()
        db_path.write_text("these are not the pages you are looking for\n" * 100)
    elif case != "no database":
        asyncio.run(_fill(db_path, adapter_dir, ["hello"]))
    if case == "out exists":
        out.mkdir()
    if case == "out inside the adapters":
        out = adapter_dir / "backup"
    assert main(["backup", "--out", str(out)]) == 2
    line = _one_line_error(capsys)
    assert expected.format(db=db_path, out=out, adapters=adapter_dir) in line
    if case == "no database":
        assert not db_path.exists()  # never creates one
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial backup
    assert out.exists() == (case == "out exists")


# --------------------------------------------------------------------------- restore


def test_restore_puts_the_database_and_the_adapters_back(env, tmp_path, capsys):
    db_path, adapter_dir = live(tmp_path)
    asyncio.run(_fill(db_path, adapter_dir, ["you idiot", "vermin"]))
    assert main(["backup", "--out", str(tmp_path / "backup")]) == 0
    weights = (adapter_dir / "v1" / "adapter_model.safetensors").read_bytes()

    # After the backup: a lost row, a lost weights file, a stray version directory.
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM predictions WHERE message_id = 0")
    conn.commit()
    conn.close()
    (adapter_dir / "v1" / "adapter_model.safetensors").unlink()
    (adapter_dir / "v7").mkdir()
    capsys.readouterr()

    assert main(["restore", str(tmp_path / "backup")]) == 2  # the current state exists: --replace is needed
    assert "add --replace" in _one_line_error(capsys)
    assert not (adapter_dir / "v1" / "adapter_model.safetensors").exists()

    assert main(["restore", str(tmp_path / "backup"), "--replace"]) == 0
    err = capsys.readouterr().err
    assert f"to {db_path}, 1 adapter version (v1) to {adapter_dir}" in err
    assert asyncio.run(_texts(db_path)) == ["you idiot", "vermin"]
    assert sorted(p.name for p in adapter_dir.iterdir()) == ["v1"]
    assert (adapter_dir / "v1" / "adapter_model.safetensors").read_bytes() == weights
    [version] = asyncio.run(_versions(db_path))
    assert (version.status, Path(version.path)) == ("active", adapter_dir.resolve() / "v1")
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert _modes(adapter_dir) == {("dir", 0o700), ("file", 0o600)}
    assert not [p for p in (db_path.parent).iterdir() if p.name.startswith(".")]  # no temporaries left


def test_restore_elsewhere_points_the_registry_at_the_new_adapter_directory(env, tmp_path, capsys):
    """A new machine or another checkout: the versions' directories follow MODBOT_ADAPTER_DIR, so the bot
    serves the restored active version instead of falling back to the shipped adapter."""
    db_path, adapter_dir = live(tmp_path)
    asyncio.run(_fill(db_path, adapter_dir, ["you idiot"]))
    assert main(["backup", "--out", str(tmp_path / "backup")]) == 0
    env.setenv("MODBOT_DB", str(tmp_path / "new" / "state" / "bot.sqlite3"))
    env.setenv("MODBOT_ADAPTER_DIR", str(tmp_path / "new" / "registry"))
    assert main(["restore", str(tmp_path / "backup")]) == 0  # nothing there yet: no --replace needed
    assert "now point into" in capsys.readouterr().err
    [version] = asyncio.run(_versions(tmp_path / "new" / "state" / "bot.sqlite3"))
    assert Path(version.path) == (tmp_path / "new" / "registry" / "v1").resolve()
    assert (Path(version.path) / "adapter_config.json").is_file()


@pytest.mark.parametrize("damaged", ["modbot.sqlite3", "adapters/v1/train.jsonl"])
def test_a_damaged_backup_is_refused_by_its_checksum_and_nothing_is_replaced(env, tmp_path, capsys, damaged):
    db_path, adapter_dir = live(tmp_path)
    asyncio.run(_fill(db_path, adapter_dir, ["you idiot"]))
    assert main(["backup", "--out", str(tmp_path / "backup")]) == 0
    target = tmp_path / "backup" / damaged
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, other contents
    target.write_bytes(bytes(data))
    asyncio.run(_fill(tmp_path / "new.sqlite3", tmp_path / "new-adapters", ["kept", "also kept"]))
    env.setenv("MODBOT_DB", str(tmp_path / "new.sqlite3"))
    env.setenv("MODBOT_ADAPTER_DIR", str(tmp_path / "new-adapters"))
    capsys.readouterr()

    assert main(["restore", str(tmp_path / "backup"), "--replace"]) == 2
    line = _one_line_error(capsys)
    assert f"{damaged} does not match its checksum" in line and "nothing was replaced" in line
    assert asyncio.run(_texts(tmp_path / "new.sqlite3")) == ["kept", "also kept"]
    assert json.loads((tmp_path / "new-adapters" / "v1" / "train.jsonl").read_text())["text"] == "kept"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # staged copies removed


def test_restore_refuses_while_the_bot_has_the_database_open(env, tmp_path, capsys):
    db_path, adapter_dir = live(tmp_path)
    asyncio.run(_fill(db_path, adapter_dir, ["you idiot"]))
    assert main(["backup", "--out", str(tmp_path / "backup")]) == 0
    bot = sqlite3.connect(db_path)  # open and idle, as the running bot's connection is
    try:
        bot.execute("PRAGMA journal_mode = WAL")
        bot.execute("INSERT INTO schema_migrations VALUES (999, 'marker', 'now')")
        bot.commit()
        capsys.readouterr()
        assert main(["restore", str(tmp_path / "backup"), "--replace"]) == 2
        assert "is in use" in _one_line_error(capsys)
        assert bot.execute("SELECT count(*) FROM schema_migrations WHERE version = 999").fetchone() == (1,)
    finally:
        bot.close()
    assert main(["restore", str(tmp_path / "backup"), "--replace"]) == 0  # stopped: now it restores
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM schema_migrations WHERE version = 999").fetchone() == (0,)
    conn.close()


@pytest.mark.parametrize("case, expected", [
    ("no directory", "{backup}: no such backup directory."),
    ("no manifest", "{backup} is not a modbot backup (it has no manifest.json)."),
    ("newer schema", "{backup}: the database has schema version 999, newer than this modbot's"),
    ("missing file", "{backup} is incomplete: adapters/v1/train.jsonl is missing; nothing was replaced."),
    ("escaping path", "has an entry that is not a file of the backup: 'adapters/../../etc/passwd'"),
])
def test_restore_errors_are_one_line(env, tmp_path, capsys, case, expected):
    db_path, adapter_dir = live(tmp_path)
    asyncio.run(_fill(db_path, adapter_dir, ["you idiot"]))
    backup = tmp_path / "backup"
    if case != "no directory":
        assert main(["backup", "--out", str(backup)]) == 0
    manifest_path = backup / "manifest.json"
    if case == "no manifest":
        manifest_path.unlink()
    elif case in ("newer schema", "escaping path"):
        manifest = json.loads(manifest_path.read_text())
        if case == "newer schema":
            manifest["schema_version"] = 999
        else:
            manifest["files"].append({"path": "adapters/../../etc/passwd", "bytes": 1, "sha256": "0" * 64})
        manifest_path.write_text(json.dumps(manifest))
    elif case == "missing file":
        (backup / "adapters" / "v1" / "train.jsonl").unlink()
    capsys.readouterr()
    assert main(["restore", str(backup), "--replace"]) == 2
    assert expected.format(backup=backup) in _one_line_error(capsys)
    assert asyncio.run(_texts(db_path)) == ["you idiot"]


def test_backup_and_restore_read_dotenv_like_every_command(tmp_path):
    """From the checkout, as cron runs it: MODBOT_DB and MODBOT_ADAPTER_DIR come from .env in the working
    directory, and the commands exist under `modbot`."""
    import subprocess
    import sys

    asyncio.run(_fill(tmp_path / "state" / "bot.sqlite3", tmp_path / "state" / "registry", ["you idiot"]))
    (tmp_path / ".env").write_text("MODBOT_DB=state/bot.sqlite3\nMODBOT_ADAPTER_DIR=state/registry\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_")}

    def modbot(*args):
        return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=180)

    done = modbot("backup", "--out", "nightly", "--quiet")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert (tmp_path / "nightly" / "adapters" / "v1" / "train.jsonl").is_file()
    done = modbot("restore", "nightly", "--replace")
    assert done.returncode == 0, done.stderr
    assert "to state/bot.sqlite3, 1 adapter version (v1) to state/registry" in done.stderr
