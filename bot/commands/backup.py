"""`modbot backup` and `modbot restore`: a copy of the bot's database and adapter registry, and putting it back.

A backup is a directory: the database (one self-contained SQLite file, copied with SQLite's online backup
API, so the bot may keep running and writing), the adapter registry's version directories, and
``manifest.json`` (what was copied, sizes, SHA-256, the schema version, the time). It is written under a
temporary name and renamed when complete, so a directory with the backup's name is always a whole backup.

Restore is its own command rather than a flag of backup: it destroys the current state and needs the bot
stopped, while backup is harmless and runs beside the bot (from cron), so a typo in a cron line can never
restore. Restore refuses while another connection has the database open, checks every file against the
manifest before touching anything, and replaces the database and the adapter directory by renaming
verified copies into place.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from model.errors import ModbotError

MANIFEST = "manifest.json"
FORMAT = "modbot-backup"
FORMAT_VERSION = 1
DATABASE_FILE = "modbot.sqlite3"
ADAPTERS = "adapters"
JOBS = "jobs"
_CHUNK = 1 << 20
_IN_USE_WAIT_S = 1.0  # how long restore waits for the database before calling it in use
_JOBS_REASON = ("job working files (the corrections exported for a job, its spec, log and progress): the database "
                "holds the corrections, and a job that was running is marked failed when the bot starts")


class BackupError(ModbotError):
    """A backup cannot be made or restored; the message says why in one sentence."""


def register(subparsers) -> None:
    backup = subparsers.add_parser(
        "backup",
        help="copy the database and the adapter registry to a new directory (safe while the bot runs)",
        description="Copy the bot's database (MODBOT_DB) and adapter registry (MODBOT_ADAPTER_DIR) to a new "
        "directory, with a manifest of sizes and SHA-256 checksums. Safe while the bot runs and writes: the "
        "database is copied with SQLite's online backup API. The adapters' jobs/ directory (job working "
        "files) is not copied. Files are created 0600, directories 0700: they hold message text.",
    )
    backup.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="the directory to create (it must not exist)")
    backup.add_argument("--quiet", action="store_true", help="print nothing when it works (for cron)")
    backup.set_defaults(handler=run_backup)

    restore = subparsers.add_parser(
        "restore",
        help="put a backup's database and adapters back (stop the bot first)",
        description="Check a backup made by `modbot backup` against its manifest, then put its database at "
        "MODBOT_DB and its adapter versions at MODBOT_ADAPTER_DIR, replacing what is there. Stop the bot "
        "first: restore refuses while the database is open elsewhere. Run it as the user the bot runs as.",
    )
    restore.add_argument("backup", type=Path, metavar="DIR", help="a directory made by `modbot backup`")
    restore.add_argument("--replace", action="store_true",
                         help="replace the current database and adapter directory (required when they exist)")
    restore.set_defaults(handler=run_restore)


def run_backup(args: argparse.Namespace) -> int:
    from bot.settings import Settings

    settings = Settings.from_env()
    manifest = backup(settings.db_path, settings.adapter_dir, args.out)
    if not args.quiet:
        database, adapters = describe(manifest)
        print(f"modbot: backed up {database}{f' and {adapters}' if adapters else ''} to {args.out}", file=sys.stderr)
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from bot.settings import Settings

    settings = Settings.from_env()
    done = restore(args.backup, settings.db_path, settings.adapter_dir, replace=args.replace)
    database, adapters = describe(done.manifest)
    text = f"modbot: restored the backup made {done.manifest['created_at']}: {database} to {settings.db_path}"
    if done.adapters:
        text += f", {adapters} to {settings.adapter_dir}"
    print(text, file=sys.stderr)
    if done.relocated:
        print(f"modbot: the registry's version directories ({done.relocated}) now point into {settings.adapter_dir} "
              f"(they were in {done.manifest['source']['adapter_dir']})", file=sys.stderr)
    if not done.adapters:
        print(f"modbot: the backup has no adapter directory; {settings.adapter_dir} was left as it was",
              file=sys.stderr)
    return 0


def describe(manifest: dict) -> tuple[str, str | None]:
    """("the database (size, schema version)", "N adapter versions (v1, v2)" or None without adapters)."""
    database = f"the database ({_size(manifest['files'][0]['bytes'])}, schema version {manifest['schema_version']})"
    if manifest["adapters"] is None:
        return database, None
    copied = [v["name"] for v in manifest["versions"] if v["copied"]]
    adapters = f"{len(copied)} adapter version{'s' if len(copied) != 1 else ''}"
    return database, adapters + (f" ({', '.join(copied)})" if copied else "")


# --------------------------------------------------------------------------- backup


def backup(db_path: Path, adapter_dir: Path, out: Path) -> dict:
    """Write a backup of ``db_path`` and ``adapter_dir`` to the new directory ``out``; return its manifest."""
    if not db_path.is_file():
        raise BackupError(f"MODBOT_DB={db_path}: no such database (run the bot first, or point MODBOT_DB at it).")
    if out.exists() or out.is_symlink():
        raise BackupError(f"--out {out} already exists: a backup goes to a new directory, it never overwrites one.")
    target = out.resolve()
    adapters_at = adapter_dir.resolve()
    if target == adapters_at or adapters_at in target.parents:
        raise BackupError(f"--out {out} is inside MODBOT_ADAPTER_DIR={adapter_dir}: choose a directory outside it.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))  # 0700
    except OSError as exc:
        raise BackupError(f"Cannot create --out {out}: {_reason(exc)}.") from None
    try:
        database = staging / DATABASE_FILE
        _copy_database(db_path, database)
        schema_version, versions = asyncio.run(_read_registry(database))
        files = [_entry(DATABASE_FILE, database)]
        skipped: list[dict] = []
        copied_names: set[str] = set()
        if adapters_at.is_dir():
            unfinished = {Path(v.path).resolve(): v for v in versions if v.status == "training" and v.path}
            _copy_adapters(adapters_at, staging / ADAPTERS, unfinished, files, skipped, copied_names)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "schema_version": schema_version,
            "source": {"database": str(db_path.resolve()), "adapter_dir": str(adapters_at)},
            "database": DATABASE_FILE,
            "adapters": ADAPTERS if adapters_at.is_dir() else None,
            "versions": [{"number": v.number, "name": v.name, "status": v.status,
                          "copied": v.path is not None and Path(v.path).resolve().parent == adapters_at
                          and Path(v.path).name in copied_names}
                         for v in sorted(versions, key=lambda v: v.number)],
            "files": files,
            "skipped": skipped,
        }
        _write_private(staging / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        _fsync_directory(staging)
        os.rename(staging, target)
        _fsync_directory(target.parent)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BackupError(f"Cannot write the backup to {out}: {_reason(exc)}.") from None
        raise
    return manifest


def _copy_database(source: Path, target: Path) -> None:
    """An online, consistent copy: one backup step reads one snapshot while the bot's writes go on in the WAL."""
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # its journal takes its mode
    src = dst = None
    try:
        # mode=rw: never create a database that is not there; the last connection to close tidies the WAL.
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        dst = sqlite3.connect(target, isolation_level=None)
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE").fetchall()  # the copy is one self-contained file
        # Rebuilt from its live rows: text the bot erased may linger in free space of the live file (where
        # SQLite's secure_delete is off); the backup, kept for weeks, must not carry it.
        dst.execute("VACUUM")
        check = dst.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"MODBOT_DB={source}: the copy fails SQLite's check ({check}); the database itself "
                              "may be damaged.")
    except sqlite3.Error as exc:
        raise BackupError(f"MODBOT_DB={source}: cannot back it up: {exc}.") from None
    finally:
        for conn in (src, dst):
            if conn is not None:
                conn.close()
    _fsync_file(target)


async def _read_registry(database: Path) -> tuple[int, list]:
    """(the schema version, the adapter versions) recorded in the copy at ``database``."""
    import aiosqlite

    from bot import storage

    conn = await aiosqlite.connect(database, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    try:
        try:
            applied = await storage.applied_migrations(conn)
        except sqlite3.OperationalError:
            raise BackupError(f"{database.name}: not a modbot database (it has no schema_migrations table).") from None
        try:
            versions = await storage.list_versions(conn, limit=1_000_000)
        except sqlite3.OperationalError:
            versions = []  # a database from before the adapter registry
    finally:
        await conn.close()
    return (max(applied) if applied else 0), versions


def _copy_adapters(source: Path, target: Path, unfinished: dict, files: list[dict], skipped: list[dict],
                   copied: set[str]) -> None:
    """Copy the registry's directories, leaving out jobs/, temporaries and the version a job is still writing."""
    target.mkdir(mode=0o700)
    for entry in sorted(source.iterdir()):
        name = f"{ADAPTERS}/{entry.name}"
        if entry.name == JOBS:
            skipped.append({"path": name, "reason": _JOBS_REASON})
        elif entry.name.startswith("."):
            skipped.append({"path": name, "reason": "a temporary of a write in progress"})
        elif entry.resolve() in unfinished:
            skipped.append({"path": name, "reason": f"version {unfinished[entry.resolve()].number} was still being "
                            "trained: the bot marks it failed after a restore"})
        else:
            before = len(files)
            try:
                _copy_entry(entry, target / entry.name, name, files, skipped)
            except FileNotFoundError:
                # Removed while we copied (a failed job's candidate): it is not part of the registry any more.
                del files[before:]
                shutil.rmtree(target / entry.name, ignore_errors=True)
                (target / entry.name).unlink(missing_ok=True)
                skipped.append({"path": name, "reason": "removed while the backup ran"})
                continue
            copied.add(entry.name)
    _fsync_directory(target)


def _copy_entry(source: Path, target: Path, name: str, files: list[dict], skipped: list[dict]) -> None:
    if source.is_dir() and not source.is_symlink():
        target.mkdir(mode=0o700)
        for child in sorted(source.iterdir()):
            _copy_entry(child, target / child.name, f"{name}/{child.name}", files, skipped)
        _fsync_directory(target)
    elif source.is_file():
        size, digest = _copy_file(source, target)
        files.append({"path": name, "bytes": size, "sha256": digest})
    else:
        skipped.append({"path": name, "reason": "not a regular file or directory"})


def _entry(name: str, path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return {"path": name, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


# --------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class Restored:
    manifest: dict
    adapters: bool  # the adapter directory was restored (the backup had one)
    relocated: int  # versions whose directories were moved from the backup's adapter directory to this one


def restore(backup_dir: Path, db_path: Path, adapter_dir: Path, *, replace: bool) -> Restored:
    """Put the backup in ``backup_dir`` at ``db_path`` and ``adapter_dir``: checked first, then renamed into place."""
    manifest = read_manifest(backup_dir)
    entries = manifest["files"]
    has_adapters = manifest["adapters"] is not None
    db_path = Path(os.path.abspath(db_path))
    adapter_dir = Path(os.path.abspath(adapter_dir))
    present = [f"MODBOT_DB={db_path}"] if db_path.exists() else []
    if has_adapters and adapter_dir.exists():
        present.append(f"MODBOT_ADAPTER_DIR={adapter_dir}")
    if present and not replace:
        raise BackupError(f"{' and '.join(present)} already exist{'s' if len(present) == 1 else ''}: add --replace "
                          "to replace them with the backup (stop the bot first).")
    if db_path.exists():
        _release(db_path)

    staged_db = staged_adapters = None
    try:
        try:
            staged_db, staged_adapters = _stage(backup_dir, entries, db_path, adapter_dir if has_adapters else None)
            relocated = 0
            old_dir, new_dir = Path(manifest["source"]["adapter_dir"]), adapter_dir.resolve()
            if has_adapters and old_dir != new_dir:
                relocated = asyncio.run(_relocate_versions(staged_db, old_dir, new_dir))
        except OSError as exc:
            raise BackupError(f"Cannot restore {backup_dir}: {_reason(exc)}; nothing was replaced.") from None
        except sqlite3.Error as exc:
            raise BackupError(f"Cannot restore {backup_dir}: its database cannot be updated ({exc}); nothing was "
                              "replaced.") from None
        # Everything is checked and lies beside its target: now replace, by renames.
        try:
            for suffix in ("-wal", "-shm", "-journal"):  # a stale WAL would be replayed into the restored file
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
            os.replace(staged_db, db_path)
            staged_db = None
            _fsync_directory(db_path.parent)
        except OSError as exc:
            raise BackupError(f"Cannot restore {backup_dir}: {_reason(exc)}; nothing was replaced.") from None
        if has_adapters:
            try:
                _swap_directory(staged_adapters, adapter_dir)
                staged_adapters = None
            except OSError as exc:
                raise BackupError(f"Restored the database, but not the adapters to {adapter_dir}: {_reason(exc)}; "
                                  f"run the restore again.") from None
    finally:
        if staged_db is not None:
            staged_db.unlink(missing_ok=True)
        if staged_adapters is not None:
            shutil.rmtree(staged_adapters, ignore_errors=True)
    return Restored(manifest, has_adapters, relocated)


def _stage(backup_dir: Path, entries: list[dict], db_path: Path, adapter_dir: Path | None) -> tuple[Path, Path | None]:
    """Checked copies of the backup's files beside their targets (the database file, the adapter directory)."""
    staged_adapters = None
    db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, name = tempfile.mkstemp(prefix=f".{db_path.name}.restore-", dir=db_path.parent)  # 0600
    os.close(handle)
    staged_db = Path(name)
    try:
        _copy_verified(backup_dir, entries[0], staged_db)
        _take_owner(staged_db, db_path.parent)
        if adapter_dir is not None:
            adapter_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            staged_adapters = Path(tempfile.mkdtemp(prefix=f".{adapter_dir.name}.restore-", dir=adapter_dir.parent))
            _take_owner(staged_adapters, adapter_dir.parent)
            for entry in entries[1:]:
                relative = PurePosixPath(entry["path"]).relative_to(ADAPTERS)
                target = staged_adapters.joinpath(*relative.parts)
                for directory in reversed(target.relative_to(staged_adapters).parents[:-1]):
                    if not (staged_adapters / directory).is_dir():
                        (staged_adapters / directory).mkdir(mode=0o700)
                        _take_owner(staged_adapters / directory, adapter_dir.parent)
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                _copy_verified(backup_dir, entry, target)
                _take_owner(target, adapter_dir.parent)
            _fsync_directory(staged_adapters)
    except BaseException:
        staged_db.unlink(missing_ok=True)
        if staged_adapters is not None:
            shutil.rmtree(staged_adapters, ignore_errors=True)
        raise
    return staged_db, staged_adapters


def _swap_directory(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``; an existing ``target`` is renamed aside first and removed after."""
    replaced = None
    if target.exists():
        replaced = Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced-", dir=target.parent))
        os.replace(target, replaced)
    try:
        os.replace(new, target)
    except OSError:
        if replaced is not None:
            os.replace(replaced, target)  # put the old one back
        raise
    _fsync_directory(target.parent)
    if replaced is not None:
        shutil.rmtree(replaced)


def _reason(exc: OSError) -> str:
    return f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")


def read_manifest(backup_dir: Path) -> dict:
    """The manifest of ``backup_dir``, checked for shape: names inside the backup, the database first."""
    path = backup_dir / MANIFEST
    if not backup_dir.is_dir():
        raise BackupError(f"{backup_dir}: no such backup directory.")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{backup_dir} is not a modbot backup (it has no {MANIFEST}).") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} cannot be read: {exc}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a modbot backup manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{path} has format version {manifest.get('format_version')!r}; this modbot reads "
                          f"version {FORMAT_VERSION}.")
    from bot import storage

    latest = max((number for number, _, _ in storage.available_migrations()), default=0)
    schema = manifest.get("schema_version")
    if not isinstance(schema, int):
        raise BackupError(f"{path} does not say the database's schema version.")
    if schema > latest:
        raise BackupError(f"{backup_dir}: the database has schema version {schema}, newer than this modbot's "
                          f"({latest}): upgrade modbot (git pull, make setup) before restoring it.")
    files = manifest.get("files")
    if (not isinstance(files, list) or not files or any(not isinstance(f, dict) for f in files)
            or files[0].get("path") != manifest.get("database")):
        raise BackupError(f"{path} does not list the database first.")
    for entry in files:
        name = PurePosixPath(str(entry.get("path", "")))
        if (name.is_absolute() or ".." in name.parts or not isinstance(entry.get("bytes"), int)
                or not isinstance(entry.get("sha256"), str)
                or (entry is not files[0] and (name.parts[:1] != (ADAPTERS,) or len(name.parts) < 2))):
            raise BackupError(f"{path} has an entry that is not a file of the backup: {entry.get('path')!r}.")
    if not isinstance(manifest.get("source"), dict) or "adapter_dir" not in manifest["source"]:
        raise BackupError(f"{path} does not say where the adapters came from.")
    return manifest


def _copy_verified(backup_dir: Path, entry: dict, target: Path) -> None:
    """Copy one file of the backup to ``target`` (already created 0600), refusing it unless it matches."""
    source = backup_dir.joinpath(*PurePosixPath(entry["path"]).parts)
    try:
        size, digest = _copy_file(source, target, exclusive=False)
    except FileNotFoundError:
        raise BackupError(f"{backup_dir} is incomplete: {entry['path']} is missing; nothing was replaced.") from None
    if size != entry["bytes"] or digest != entry["sha256"]:
        raise BackupError(f"{backup_dir}: {entry['path']} does not match its checksum in {MANIFEST} (damaged or "
                          "changed since the backup); nothing was replaced.")


def _release(db_path: Path) -> None:
    """Refuse if another connection has the database open; otherwise fold its WAL in, so none is left beside it.

    Leaving WAL mode needs the database to itself: while the bot (or any modbot command) has it open,
    SQLite answers "database is locked". That is the cheap check that the bot is stopped.
    """
    try:
        conn = sqlite3.connect(f"{db_path.as_uri()}?mode=rw", uri=True, timeout=_IN_USE_WAIT_S,
                               isolation_level=None)
    except sqlite3.Error:
        return  # not openable as a database (damaged): nothing can be using it, and it is being replaced
    try:
        conn.execute("PRAGMA journal_mode = DELETE").fetchall()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise BackupError(f"MODBOT_DB={db_path} is in use (the bot, or another modbot command, has it open): "
                              "stop the bot first (systemctl stop modbot).") from None
    except sqlite3.DatabaseError:
        pass  # damaged: it is being replaced
    finally:
        conn.close()


async def _relocate_versions(database: Path, old_dir: Path, new_dir: Path) -> int:
    """Point the registry's version and job directories that were under ``old_dir`` at the same names under
    ``new_dir`` (a restore to another place); return how many versions moved."""
    import aiosqlite

    from bot import storage

    def moved(path: Path | None) -> str | None:
        if path is None:
            return None
        try:
            return str(new_dir / path.relative_to(old_dir))
        except ValueError:
            return str(path)  # outside the registry (a job prepared elsewhere): leave it

    conn = await aiosqlite.connect(database, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    try:
        try:
            versions = await storage.list_versions(conn, limit=1_000_000)
        except sqlite3.OperationalError:
            return 0  # a database from before the adapter registry
        changed = [(moved(v.path), moved(v.job_dir), v.number) for v in versions
                   if (moved(v.path), moved(v.job_dir)) != (_text(v.path), _text(v.job_dir))]
        async with storage.transaction(conn):
            for row in changed:
                await conn.execute("UPDATE adapter_versions SET path = ?, job_dir = ? WHERE number = ?", row)
    finally:
        await conn.close()
    return len(changed)


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path)


# --------------------------------------------------------------------------- files


def _copy_file(source: Path, target: Path, *, exclusive: bool = True) -> tuple[int, str]:
    """Copy ``source`` to ``target`` (created 0600, or an existing file overwritten), synced; (size, SHA-256)."""
    digest = hashlib.sha256()
    size = 0
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    with open(source, "rb") as src, os.fdopen(os.open(target, flags, 0o600), "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return size, digest.hexdigest()


def _write_private(path: Path, text: str) -> None:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (a power cut cannot undo it)."""
    _fsync_file(path)


def _take_owner(path: Path, of: Path) -> None:
    """Run as root (sudo), give what is restored the owner of the directory it goes into: the bot's user."""
    if os.geteuid() != 0:
        return
    owner = of.stat()
    os.chown(path, owner.st_uid, owner.st_gid)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
