"""Erasure on request: `modbot forget --user ID | --message ID` and `/mod forget`, shared.

A member's messages (or one message) are erased everywhere modbot wrote them:

* the database (:func:`bot.storage.erase_messages`): corrections and flags deleted, stored texts erased,
  a message waiting for the next start forgotten, review cards queued for the bot to rewrite;
* every data file (JSONL) in the adapter registry: each version's ``train.jsonl``, ``retrain_val.jsonl``,
  ``test.jsonl`` ..., each job directory's exported ``corrections.jsonl``, ``corrections_train.jsonl``,
  ``heldout.jsonl``, ``train_pool.jsonl`` ..., and the directories prepared for another machine that are still
  here. A line that carries ids (the correction export: ``message_id``, ``author_id``) goes when they match; a
  line that carries only its text goes when its text is the text of an erased correction, compared as training
  deduplicates them (:func:`training.dataset.text_key`). Files are rewritten under a temporary name and renamed
  into place, 0600.

What cannot be erased is said: the adapter versions that were trained on the text (their weights may still
carry it) and how to be rid of them. Nothing here imports discord.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from model.adapter import METADATA_FILE, TRAINING_SET_FILE
from training.dataset import text_key

from . import storage
from .settings import Settings

log = logging.getLogger(__name__)

# Files whose lines were trained on: a version's own training set, and a job's training data.
TRAINED_FILES = frozenset({TRAINING_SET_FILE, "train_pool.jsonl", "corrections_train.jsonl"})


@dataclass
class Report:
    """What one erasure did, in numbers and paths (never the text)."""

    target: str  # "user 123" or "message 456"
    rows: storage.ErasedRows
    files: dict[Path, int] = field(default_factory=dict)  # file -> lines removed
    errors: list[str] = field(default_factory=list)  # files that could not be rewritten
    trained: list[int] = field(default_factory=list)  # versions with an adapter trained on the text
    active: storage.AdapterVersion | None = None
    active_is_soup: bool = False
    clean: int | None = None  # the newest version with an adapter not trained on it
    running: int | None = None  # a job training now

    @property
    def erased(self) -> bool:
        """Whether anything was erased this time."""
        rows = self.rows
        return bool(rows.corrections or rows.flags or rows.texts or rows.pending or rows.cards or self.files)

    def summary(self) -> dict:
        rows = self.rows
        return {"corrections": rows.corrections, "flags": rows.flags, "texts": rows.texts, "pending": rows.pending,
                "cards": rows.cards, "files": {str(path): n for path, n in self.files.items()},
                "trained": self.trained, "errors": self.errors}

    def lines(self, *, cards: str) -> list[str]:
        """The report, one line per place. ``cards``: what became of the review cards, in the caller's words."""
        rows = self.rows
        if not self.erased:
            lines = [f"Nothing stored about {self.target}: no correction, flag, stored text or data file line."]
        else:
            lines = [f"Erased the messages of {self.target}:",
                     f"- database: {rows.corrections} corrections, {rows.flags} flags, {rows.texts} stored message "
                     f"texts, {rows.pending} messages waiting to be classified",
                     f"- review cards: {cards}"]
            by_directory: dict[Path, list[tuple[str, int]]] = {}
            for path, removed in sorted(self.files.items()):
                by_directory.setdefault(path.parent, []).append((path.name, removed))
            if by_directory:
                lines.append(f"- data files: {sum(self.files.values())} lines in {len(self.files)} files")
                lines += [f"  - {directory}: " + ", ".join(f"{name} {n}" for name, n in files)
                          for directory, files in by_directory.items()]
            else:
                lines.append("- data files: no line held it")
        lines += [f"- could not rewrite {error}" for error in self.errors]
        if self.trained:
            versions = ", ".join(f"v{number}" for number in self.trained)
            lines.append(f"Adapter versions trained on it: {versions}. Their weights may still carry it; their data "
                         "files no longer do.")
            if self.active is not None and self.active.number in self.trained:
                if self.active_is_soup:
                    where = (f"roll back to v{self.clean} (`/mod rollback version:{self.clean}`), the newest version "
                             "not trained on it, then retrain" if self.clean is not None else
                             "no version without it is left: train a new adapter (`modbot train`)")
                    lines.append(f"The active version v{self.active.number} is one of them, and a retrain from it "
                                 f"keeps its weights (the new adapter joins its soup): {where}.")
                else:
                    lines.append(f"The active version v{self.active.number} is one of them: retrain "
                                 "(`modbot retrain --force` or `/retrain start force:True`) to serve a model trained "
                                 "without it.")
        if self.running is not None:
            lines.append(f"Version v{self.running} is being trained now, perhaps on it: cancel it, or run this again "
                         "when it ends.")
        lines.append("Not reached: backups, files written with `modbot corrections export`, and job directories "
                     "copied to other machines.")
        return lines


async def forget_everywhere(conn: aiosqlite.Connection, settings: Settings, *, user_id: int | None = None,
                 message_id: int | None = None, requested_by: str) -> Report:
    """Erase a member's messages (``user_id``) or one message everywhere; the database first, then the files.

    The file work runs in a worker thread (a registry holds a few MB of JSONL), so the bot keeps serving.
    """
    now = datetime.now(UTC)
    target = f"user {user_id}" if user_id is not None else f"message {message_id}"
    rows = await storage.erase_messages(conn, user_id=user_id, message_id=message_id, now=now)
    versions = await storage.list_versions(conn, limit=1_000_000)
    directories = _data_directories(settings.adapter_dir, versions)
    report = Report(target, rows)
    # The matcher is built in the thread too: it normalises the texts, which may load word lists (a second).
    report.files, report.errors = await asyncio.to_thread(
        lambda: _erase_files(directories, _Matcher(user_id, rows.message_ids, rows.correction_texts)))

    trained = _trained_versions(report.files, versions)
    for earlier in await storage.earlier_erasures(conn, user_id=user_id, message_id=message_id):
        trained |= set(earlier.summary.get("trained") or ())
    trained = _with_soups_containing(trained, versions)
    with_adapter = {v.number: v for v in versions if v.path is not None and Path(v.path).is_dir()}
    report.trained = sorted(n for n in trained if n in with_adapter)
    report.active = next((v for v in versions if v.status == "active"), None)
    if report.active is not None:
        report.active_is_soup = _is_soup(report.active)
        report.clean = max((n for n, v in with_adapter.items() if n not in trained and v.model == report.active.model
                            and v.status == "previous"), default=None)
    running = next((v for v in versions if v.status == "training"), None)
    report.running = running.number if running is not None else None
    await storage.add_erasure(conn, user_id=user_id, message_id=message_id, requested_by=requested_by,
                              summary=report.summary(), now=now)
    log.info("Erased %s: %d corrections, %d flags, %d texts, %d lines in %d files; trained on it: %s", target,
             rows.corrections, rows.flags, rows.texts, sum(report.files.values()), len(report.files),
             report.trained or "none")
    return report


# --------------------------------------------------------------------------- the files


class _Matcher:
    """Which lines of a data file hold the erased messages."""

    def __init__(self, user_id: int | None, message_ids: frozenset[int], texts: tuple[str, ...]) -> None:
        self.user_id = user_id
        self.message_ids = set(message_ids)
        self.keys = {key for key in map(text_key, texts) if key}

    def learn(self, record: dict) -> None:
        """A correction export line of an erased message: its text is erased wherever it was copied."""
        if self.carries_ids(record) and isinstance(record.get("text"), str):
            key = text_key(record["text"])
            if key:
                self.keys.add(key)

    def carries_ids(self, record: dict) -> bool:
        return (_int(record.get("message_id")) in self.message_ids
                or (self.user_id is not None and _int(record.get("author_id")) == self.user_id))

    def matches(self, record: dict) -> bool:
        if self.carries_ids(record):
            return True
        text = record.get("text")
        return isinstance(text, str) and text_key(text) in self.keys


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _data_directories(adapter_dir: Path, versions: list[storage.AdapterVersion]) -> list[Path]:
    """The adapter registry, the registry's directories kept elsewhere (after a restore, a prepared job)."""
    found = [Path(adapter_dir)]
    for version in versions:
        found += [Path(p) for p in (version.path, version.job_dir) if p is not None]
        prepared = (version.progress or {}).get("job_dir")  # `modbot retrain --prepare DIR`
        if prepared:
            found.append(Path(prepared))
    unique: list[Path] = []
    for directory in found:
        directory = directory.resolve()
        if directory.is_dir() and not any(directory.is_relative_to(other) for other in unique):
            unique = [other for other in unique if not other.is_relative_to(directory)] + [directory]
    return unique


def _jsonl_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*.jsonl") if path.is_file() and not path.is_symlink())


def _records(path: Path) -> list[tuple[str, dict | None]]:
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines(keepends=True)
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        out.append((line, record if isinstance(record, dict) else None))
    return out


def _erase_files(directories: list[Path], matcher: _Matcher) -> tuple[dict[Path, int], list[str]]:
    files = [path for directory in directories for path in _jsonl_files(directory)]
    # First the exports, which carry ids: they give the texts of erased messages whose correction rows were
    # deleted before (by hand, as the README once advised), so that their copies in train.jsonl go too.
    for path in files:
        try:
            for _, record in _records(path):
                if record is not None:
                    matcher.learn(record)
        except OSError:
            continue  # said below, when it is rewritten
    removed: dict[Path, int] = {}
    errors: list[str] = []
    for path in files:
        try:
            records = _records(path)
            kept = [line for line, record in records if record is None or not matcher.matches(record)]
            if len(kept) < len(records):
                _rewrite(path, kept)
                removed[path] = len(records) - len(kept)
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
    return removed, errors


def _rewrite(path: Path, lines: list[str]) -> None:
    """Replace ``path`` by ``lines``: written beside it, 0600, and renamed into place."""
    tmp = path.with_name(f".{path.name}.forget-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8", errors="surrogateescape",
                  opener=lambda name, flags: os.open(name, flags, 0o600)) as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # a file left by an earlier run would keep its mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- the adapters trained on it


def _trained_versions(files: dict[Path, int], versions: list[storage.AdapterVersion]) -> set[int]:
    """The versions whose training data held an erased line: a version directory's train.jsonl, a job's data."""
    homes = []
    for version in versions:
        for directory in (version.path, version.job_dir, (version.progress or {}).get("job_dir")):
            if directory:
                homes.append((Path(directory).resolve(), version.number))
    trained = set()
    for path in files:
        if path.name not in TRAINED_FILES:
            continue
        for home, number in homes:
            if path.is_relative_to(home):
                trained.add(number)
    return trained


def _is_soup(version: storage.AdapterVersion) -> bool:
    try:
        metadata = json.loads((Path(version.path) / METADATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False
    return bool(metadata.get("soup_of"))


def _with_soups_containing(trained: set[int], versions: list[storage.AdapterVersion]) -> set[int]:
    """Add the soups retrained from a trained version: they average its weights in (training.retrain)."""
    trained = set(trained)
    for version in sorted(versions, key=lambda v: v.number):
        if version.parent in trained and version.path is not None and _is_soup(version):
            trained.add(version.number)
    return trained
