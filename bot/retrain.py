"""Retraining, the bot's side: the registry of adapter versions, starting and following a job, the verdict.

The job itself (`training.retrain`) runs in its own process and only reads and writes files. This module,
shared by the retrain cog and `modbot retrain`, does everything around it:

* checks that a job may start (none running, enough new corrections or ``force``, an active adapter that
  has its training set, a gold validation set), creates the version's row (status ``training``: the
  database allows one at a time), exports the corrections to the job directory and writes ``spec.json``;
* launches ``python -m training.retrain --spec ...`` and follows it through its progress file, without
  waiting on it: :meth:`Job.poll` reads what was appended since the last call and never blocks;
* records the end: promoted (bot.model_manager serves it, then :func:`promote`), rejected (the
  adapter stays on disk), cancelled or failed (nothing is kept; a half-written directory is removed), or
  failed because the promoted adapter cannot be loaded (kept on disk, with the reason);
* says which versions may serve at start-up (:func:`serving_candidates`; bot.model_manager serves them) and
  marks one that cannot be loaded (:func:`record_unloadable`).

Nothing here imports discord.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from model.adapter import METADATA_FILE, TRAINING_SET_FILE, read_adapter
from model.errors import ModbotError
from training.retrain import MAX_F1_DROP, JobSpec, gate

from . import storage
from .settings import Settings

log = logging.getLogger(__name__)

# A gold validation set shipped with an adapter. `test.jsonl` is the held-out split that
# `modbot train --test-per-class` writes (the shipped adapter has one): annotators' labels, never trained on.
GOLD_FILES = ("val.jsonl", "val.csv", "gold.jsonl", "gold.csv", "test.jsonl")
CANCEL_GRACE_S = 30.0  # after SIGTERM, how long a job may take to stop before it is killed
CANCEL_REQUEST = "cancel-requested"  # in the job's directory, from another bot process: see request_cancel
# What stays in the directory of a job that kept no adapter (cancelled, failed, interrupted): its spec, progress,
# result and log hold paths, phases, counts, figures and errors, never message text. Everything else there is
# the job's data (the exported corrections, its splits, the gold set, a soup member with its train.jsonl).
JOB_FILES_KEPT = frozenset({"spec.json", "progress.jsonl", "result.json", "job.log"})
# The only variables the job process inherits: where Python, its libraries and the model cache are, the locale,
# and the settings of the libraries it runs (torch, CUDA, Hugging Face). Everything else it needs is in its
# spec; DISCORD_TOKEN and the rest of the bot's environment stay with the bot.
JOB_ENV_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
                           "VIRTUAL_ENV", "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
                           "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"})
JOB_ENV_PREFIXES = ("LC_", "PYTHON", "XDG_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH", "PYTORCH_", "CUDA_",
                    "NVIDIA_", "OMP_", "KMP_", "MKL_", "OPENBLAS_", "BNB_", "TOKENIZERS_")


class RetrainRefused(ModbotError):
    """A job cannot start now; the message says why."""


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- the registry at start-up


async def serving_candidates(conn: aiosqlite.Connection, settings: Settings) -> list[storage.AdapterVersion]:
    """The active version, then the versions active before it (newest first); none when the configured
    adapter is to be served instead."""
    active = await storage.active_version(conn)
    if active is None or active.model != settings.model.model or active.path is None:
        return []
    explicit = settings.model.adapter
    if explicit is not None:
        known = {Path(p).resolve() for v in await storage.list_versions(conn, limit=10_000)
                 for p in (v.path, v.source) if p is not None}
        if Path(explicit).resolve() not in known:
            log.info("MODBOT_ADAPTER=%s is not a registered version: serving it (it becomes the active version)",
                     explicit)
            return []
    return [active, *await storage.previous_versions(conn, settings.model.model)]


async def record_unloadable(conn: aiosqlite.Connection, version: storage.AdapterVersion,
                            error: Exception) -> storage.AdapterVersion:
    """Mark ``version`` failed because its adapter cannot be loaded, keeping its directory (to inspect, restore,
    and serve again with `/mod rollback`), and say so in the log."""
    reason = f"its adapter cannot be loaded: {error}"
    log.error("Adapter version %d (%s) cannot be loaded and is marked failed; its directory %s is kept: %s",
              version.number, version.name, version.path, error)
    return await storage.mark_version_unloadable(conn, version.number, reason=reason, now=_now())


async def register_serving(conn: aiosqlite.Connection, settings: Settings,
                           path: Path | None) -> storage.AdapterVersion | None:
    """Make sure the registry's active version is what the bot serves.

    The first start (or a start with another model, or another adapter than the active version's) registers
    the serving adapter (``path``) as a new version, copied into its own directory under MODBOT_ADAPTER_DIR.
    ``path`` None (a zero-shot classifier, or a stand-in without an adapter directory) registers nothing, and
    there is then nothing to retrain.
    """
    active = await storage.active_version(conn)
    if path is None:
        return None
    if (active is not None and active.model == settings.model.model and path.resolve() in
            {Path(p).resolve() for p in (active.path, active.source) if p is not None}):
        return active
    info = read_adapter(path)
    number = await storage.next_version_number(conn)
    target = settings.adapter_dir.resolve() / f"v{number}"
    await _copy_tree(path, target)
    version = await storage.register_adapter(
        conn, number=number, name=info.version, model=settings.model.model, path=target, source=path.resolve(), now=_now(),
        data={"counts": (info.metadata.get("data") or {}).get("counts")},
        figures={"validation": _short(info.metadata.get("validation"))},
    )
    log.info("Registered the serving adapter %s (from %s) as version %d", info.version, path, number)
    return version


async def _copy_tree(source: Path, target: Path) -> None:
    def copy() -> None:
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            shutil.copytree(source, tmp, dirs_exist_ok=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    await asyncio.to_thread(copy)


def _short(metrics: dict | None) -> dict | None:
    if not metrics:
        return None
    return {"accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"), "n": metrics.get("n")}


async def fail_stale_jobs(conn: aiosqlite.Connection, settings: Settings) -> list[storage.AdapterVersion]:
    """A job left ``training`` by a bot that died is marked failed (a live `modbot retrain` job is left alone,
    and so is a job that another live bot process launched and follows: see MODBOT_SHARD_IDS)."""
    job = await storage.running_job(conn)
    if job is None:
        return []
    alive = job.pid is not None and _job_process_alive(job)
    if job.origin == "shell" and (alive or job.pid is None):
        return []  # a live `modbot retrain`, or a job prepared for another machine (`--prepare`)
    if alive and _followed_by_another_bot(job.pid, settings.db_path):
        return []
    if alive:
        _signal_job(job.pid, signal.SIGKILL)
    reason = ("the bot stopped while the job was running" if job.origin != "shell"
              else "`modbot retrain` stopped while the job was running")
    _remove_candidate(job)
    failed = await storage.finish_job(conn, job.number, status="failed", reason=reason, now=_now(), keep_path=False)
    log.warning("Retraining job for version %d was marked failed: %s", job.number, reason)
    return [failed]


def _followed_by_another_bot(pid: int, db_path: Path) -> bool:
    """Whether the job ``pid`` was launched by another process that still runs a bot on this database.

    The process that launches a job is its parent and follows it; when that process dies, the job is given
    to init (or a subreaper), which has no modbot database open. Linux (/proc) only: elsewhere, False.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the name in parentheses may hold spaces
    except (OSError, ValueError, IndexError):
        return False
    if parent in (0, 1, os.getpid()):
        return False
    try:
        database = db_path.resolve()
        fds = Path(f"/proc/{parent}/fd")
        return any(_link(fd) == database for fd in fds.iterdir())
    except OSError:
        return False


def _link(fd: Path) -> Path | None:
    try:
        return Path(os.readlink(fd))
    except OSError:
        return None


def _job_process_alive(job: storage.AdapterVersion) -> bool:
    """Whether ``job.pid`` is still this job's process (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{job.pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        try:
            os.kill(job.pid, 0)
        except OSError:
            return False
        return job.job_dir is None  # no /proc: trust the pid only when nothing better is known
    return job.job_dir is not None and str(job.job_dir) in cmdline


def _signal_job(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the job leads its own process group (start_new_session)
    except OSError:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


# --------------------------------------------------------------------------- the gold set


async def lineage(conn: aiosqlite.Connection, version: storage.AdapterVersion) -> list[storage.AdapterVersion]:
    """``version``, its parent, its parent's parent ... (the chain of retrains back to a registered adapter)."""
    chain = [version]
    seen = {version.number}
    while chain[-1].parent is not None and chain[-1].parent not in seen:
        parent = await storage.get_version(conn, chain[-1].parent)
        if parent is None:
            break
        chain.append(parent)
        seen.add(parent.number)
    return chain


def resolve_eval_data(settings: Settings, chain: list[storage.AdapterVersion]) -> Path:
    """MODBOT_EVAL_DATA, else the gold validation set that shipped with the active adapter's lineage."""
    if settings.eval_data is not None:
        if not settings.eval_data.is_file():
            raise RetrainRefused(f"MODBOT_EVAL_DATA={settings.eval_data}: no such file.")
        return settings.eval_data
    looked = []
    for version in chain:
        for directory in (version.path, version.source):
            if directory is None:
                continue
            for name in GOLD_FILES:
                candidate = Path(directory) / name
                looked.append(str(candidate))
                if candidate.is_file():
                    return candidate
        meta_dir = version.source or version.path
        meta_file = Path(meta_dir) / METADATA_FILE if meta_dir else None
        if meta_file is not None and meta_file.is_file():
            try:
                sources = (json.loads(meta_file.read_text(encoding="utf-8")).get("data") or {}).get("val_sources") or []
            except (OSError, json.JSONDecodeError):
                sources = []
            for source in sources:
                if Path(source).is_file():
                    return Path(source)
    raise RetrainRefused(
        "No gold validation set for the evaluation gate: none shipped with the active adapter's lineage "
        f"(looked for {', '.join(GOLD_FILES)} beside version {chain[0].number} and its ancestors). "
        "Set MODBOT_EVAL_DATA to a labelled file (text,label CSV, JSONL or the Davidson CSV)."
    )


# --------------------------------------------------------------------------- starting a job


@dataclass
class Job:
    """A running job this process started, followed through its progress file."""

    number: int
    spec: JobSpec
    process: subprocess.Popen
    log_file: Path
    offset: int = 0
    last: dict = field(default_factory=dict)  # the latest progress line
    cancel_requested_at: float | None = None

    def poll(self) -> list[dict]:
        """Progress lines appended since the last call (never blocks: a small file read)."""
        try:
            with open(self.spec.progress_file, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        lines = []
        for raw in chunk[: end + 1].splitlines():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:
                log.warning("Retraining job %d: unreadable progress line %r", self.number, raw[:200])
        if lines:
            self.last = lines[-1]
        return lines

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def cancel(self) -> None:
        import time

        if self.cancel_requested_at is None:
            self.cancel_requested_at = time.monotonic()
            _signal_job(self.process.pid, signal.SIGTERM)

    def enforce_cancel(self) -> None:
        """Kill a job that ignored SIGTERM for longer than the grace period."""
        import time

        if (self.cancel_requested_at is not None and self.returncode is None
                and time.monotonic() - self.cancel_requested_at > CANCEL_GRACE_S):
            _signal_job(self.process.pid, signal.SIGKILL)

    def kill(self) -> None:
        _signal_job(self.process.pid, signal.SIGKILL)

    @property
    def cancel_requested(self) -> bool:
        """Whether another bot process asked for it to be cancelled (:func:`request_cancel`)."""
        return (self.spec.job_dir / CANCEL_REQUEST).exists()


def request_cancel(job_dir: Path | str) -> None:
    """Ask the bot process that launched a job, and follows it, to cancel it: with several bot processes
    (MODBOT_SHARD_IDS), `/retrain cancel` may reach another one. That process's watch loop sees the file
    within a few seconds and cancels the job as its own command would."""
    (Path(job_dir) / CANCEL_REQUEST).touch(mode=0o600)


async def check_start(conn: aiosqlite.Connection, settings: Settings, *, force: bool) -> tuple[storage.AdapterVersion, int]:
    """(the active version, new corrections since it was trained), or RetrainRefused saying why not."""
    running = await storage.running_job(conn)
    if running is not None:
        raise RetrainRefused(
            f"A retraining job is already running (version {running.number}, {running.phase or 'starting'}, "
            f"started {running.created_at:%Y-%m-%d %H:%M} UTC). Follow it with `/retrain status` or stop it "
            "with `/retrain cancel`."
        )
    active = await storage.active_version(conn)
    if active is None or active.path is None:
        raise RetrainRefused("The bot serves no registered adapter (zero-shot or a test stand-in): there is "
                             "nothing to retrain. Train one with `modbot train` and set MODBOT_ADAPTER.")
    if not (Path(active.path) / TRAINING_SET_FILE).is_file():
        raise RetrainRefused(f"The active adapter (version {active.number}) has no {TRAINING_SET_FILE}, so a "
                             "retrain cannot start from its data. Train one with `modbot train`.")
    total = await storage.count_corrections(conn, guild_ids=settings.training_guilds)
    if total == 0:
        where = "" if settings.training_guilds is None else " from the servers in MODBOT_TRAINING_GUILDS"
        raise RetrainRefused(f"There are no corrections{where} yet: moderators' decisions on review cards and "
                             "`Label message` are what a retrain learns from.")
    new = await storage.count_corrections_since(conn, active.last_correction_id, guild_ids=settings.training_guilds)
    if new < settings.retrain_min_corrections and not force:
        raise RetrainRefused(
            f"Only {new} new correction{'s' if new != 1 else ''} since version {active.number} was trained; "
            f"the minimum is {settings.retrain_min_corrections} (MODBOT_RETRAIN_MIN_CORRECTIONS). "
            "Wait for more, or start it anyway with force."
        )
    return active, new


async def start_job(
    conn: aiosqlite.Connection, settings: Settings, *, origin: str, started_by: int | None = None,
    force: bool = False, echo: bool = False,
    before_launch: Callable[[storage.AdapterVersion, storage.AdapterVersion], Awaitable[object]] | None = None,
) -> Job:
    """Check, register, export the corrections, write the spec and launch the job process.

    ``before_launch(version, active)`` runs once everything but the launch is done (``version``: the job's,
    ``active``: the one it trains from): the bot's model manager makes way for the job there
    (MODBOT_RETRAIN_SERVING), so a refused job never pauses classification.
    """
    active, _ = await check_start(conn, settings, force=force)
    gold = resolve_eval_data(settings, await lineage(conn, active))
    try:
        version = await storage.start_job(conn, model=settings.model.model, adapter_dir=settings.adapter_dir.resolve(),
                                          parent=active.number, origin=origin, started_by=started_by, now=_now())
    except storage.JobAlreadyRunning:
        raise RetrainRefused("A retraining job is already running: follow it with `/retrain status`.") from None
    try:
        return await _launch(conn, settings, version, active, gold, echo=echo, before_launch=before_launch)
    except BaseException as exc:
        reason = str(exc) if isinstance(exc, ModbotError | OSError) else f"could not start: {exc!r}"
        remove_job_data(version.job_dir)
        await storage.finish_job(conn, version.number, status="failed", reason=reason, now=_now(), keep_path=False)
        raise


async def _launch(conn, settings: Settings, version: storage.AdapterVersion, active: storage.AdapterVersion,
                  gold: Path, *, echo: bool, before_launch=None) -> Job:
    job_dir = Path(version.job_dir)
    job_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # its files hold message text
    for stale in ("progress.jsonl", "result.json"):
        (job_dir / stale).unlink(missing_ok=True)
    lines, newest = await export_corrections(conn, settings)
    corrections_file = job_dir / "corrections.jsonl"
    _write_atomically(corrections_file, "".join(lines))
    await storage.set_job_export(conn, version.number, corrections=len(lines), last_correction_id=newest)
    model = settings.model
    spec = JobSpec(
        version=version.name, out=Path(version.path).resolve(), active_adapter=Path(active.path).resolve(),
        corrections=corrections_file.resolve(), gold=gold.resolve(), job_dir=job_dir.resolve(), model=model.model,
        quantization=model.quantization, device=model.device, cache_dir=model.cache_dir,
        options=dict(settings.retrain_options) or None, threads=settings.retrain_threads,
    )
    spec_file = job_dir / "spec.json"
    _write_atomically(spec_file, spec.to_json())
    env = job_environment(os.environ)
    if settings.retrain_threads:
        env["OMP_NUM_THREADS"] = str(settings.retrain_threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    log_file = job_dir / "job.log"
    if before_launch is not None:
        await before_launch(version, active)
    command = [sys.executable, "-m", "training.retrain", "--spec", str(spec_file.resolve())]
    if echo:
        command.append("--echo")
    with open(log_file, "ab", opener=_private) as log_handle:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_handle,
                                   stderr=None if echo else subprocess.STDOUT, env=env, start_new_session=True)
    await storage.set_job_pid(conn, version.number, process.pid)
    await storage.set_job_progress(conn, version.number, "starting", {"phase": "starting", "corrections": len(lines)})
    log.info("Retraining job for version %d started (pid %d, %d corrections, gold set %s)", version.number,
             process.pid, len(lines), gold)
    return Job(version.number, spec, process, log_file)


async def export_corrections(conn: aiosqlite.Connection, settings: Settings) -> tuple[list[str], int]:
    """The job's corrections as JSONL lines, and the newest one's id: only the servers in
    MODBOT_TRAINING_GUILDS (every server's by default), since they train the model every server shares."""
    lines, newest = [], 0
    async for correction in storage.corrections(conn, guild_ids=settings.training_guilds):
        lines.append(json.dumps(correction.to_export(), ensure_ascii=False) + "\n")
        newest = max(newest, correction.id)
    return lines, newest


def job_environment(environ) -> dict[str, str]:
    """The part of ``environ`` the job process is given (see JOB_ENV_NAMES)."""
    return {name: value for name, value in environ.items()
            if name in JOB_ENV_NAMES or name.startswith(JOB_ENV_PREFIXES)}


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", opener=_private) as handle:
        handle.write(text)
    os.replace(tmp, path)


def _private(path, flags: int) -> int:
    """An ``opener`` creating files 0600: the job's files hold message text."""
    return os.open(path, flags, 0o600)


# --------------------------------------------------------------------------- the end of a job


@dataclass(frozen=True)
class Outcome:
    status: str  # promote, rejected, cancelled, failed
    reason: str
    result: dict | None = None


def outcome(job: Job) -> Outcome | None:
    """What the finished job came to, or None while it runs."""
    code = job.returncode
    if code is None:
        return None
    job.poll()
    result = None
    try:
        result = json.loads(job.spec.result_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        pass
    if job.cancel_requested_at is not None:
        return Outcome("cancelled", "cancelled with /retrain cancel; nothing changed")
    if code == 0 and result and result.get("status") == "completed":
        return verdict(result, job.spec.max_f1_drop)
    if result and result.get("status") == "error":
        return Outcome("failed", result["error"], result)
    return Outcome("failed", _crash_reason(code, job.log_file))


def verdict(result: dict, max_f1_drop: float = MAX_F1_DROP) -> Outcome:
    """Promote or reject a completed job by the gate, recomputed here from its figures.

    The job's own ``promote`` and ``reasons`` are not trusted: result.json is a file that anyone who can
    write the job directory can edit (and a job run elsewhere comes back through other hands).
    """
    try:
        candidate, active = result["candidate"], result["active"]
        for figures in (candidate, active):
            float(figures["gold"]["macro_f1"])
        if (candidate.get("heldout") is None) != (active.get("heldout") is None):
            raise ValueError("held-out figures for only one of the two adapters")
        for figures in (candidate, active):
            if figures.get("heldout") is not None:
                float(figures["heldout"]["accuracy"])
        promote, reasons = gate(candidate, active, max_f1_drop)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Outcome("failed", f"the job's result.json has no usable gate figures ({exc!r})", result)
    return Outcome("promote" if promote else "rejected", "; ".join(reasons), result)


def _crash_reason(code: int, log_file: Path) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"the job process was killed by {name}{hint}"
    tail = ""
    try:
        lines = [line.strip() for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines()]
        tail = next((line for line in reversed(lines) if line and not line.startswith(("File ", "^"))), "")
    except OSError:
        pass
    if "out of memory" in tail.lower() or "MemoryError" in tail:
        return f"the job ran out of memory (exit status {code}): {tail[:300]}"
    return f"the job crashed (exit status {code}): {tail[:300] or 'see ' + str(log_file)}"


def _remove_candidate(version: storage.AdapterVersion) -> None:
    """Remove what a failed or cancelled job left: its adapter directory and any temporary one, and the message
    text in its job directory."""
    remove_job_data(version.job_dir)
    if version.path is None:
        return
    path = Path(version.path)
    shutil.rmtree(path, ignore_errors=True)
    if path.parent.is_dir():
        for leftover in path.parent.glob(f".{path.name}.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def remove_job_data(job_dir: Path | str | None) -> None:
    """Remove the message text a job left in its directory, keeping the few files without any (JOB_FILES_KEPT).

    For a job that kept no adapter: nothing it was given or made is needed any more.
    """
    if job_dir is None or not Path(job_dir).is_dir():
        return
    removed = 0
    for entry in Path(job_dir).iterdir():
        if entry.name in JOB_FILES_KEPT:
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError as exc:  # said, not swallowed: what stays holds message text
            log.warning("Could not remove %s, which holds message text: %s", entry, exc)
    if removed:
        log.info("Removed the data of the job in %s (%d entries); kept its spec, progress, result and log",
                 job_dir, removed)


async def record_end(conn: aiosqlite.Connection, job: Job, end: Outcome, *,
                     keep_adapter: bool = False) -> storage.AdapterVersion:
    """Record a rejected, cancelled or failed job (promotion: :func:`promote`, after the swap is ready).

    ``keep_adapter``: a failed job's adapter directory stays (a candidate that passed the gate but could not
    be loaded: the evidence of what went wrong, and `/mod rollback` can serve it once it is repaired).
    """
    version = await storage.get_version(conn, job.number)
    assert version is not None
    result = end.result or {}
    figures = {k: result[k] for k in ("candidate", "active") if k in result} or None
    if end.status in ("cancelled", "failed"):
        keep = keep_adapter and end.status == "failed"
        if not keep:
            _remove_candidate(version)
        status = end.status
    else:
        keep = True
        status = "rejected"
    return await storage.finish_job(conn, job.number, status=status, reason=end.reason, now=_now(),
                                    data=result.get("data"), figures=figures, keep_path=keep)


async def promote(conn: aiosqlite.Connection, job: Job, end: Outcome) -> storage.AdapterVersion:
    result = end.result or {}
    figures = {k: result[k] for k in ("candidate", "active") if k in result} or None
    return await storage.activate_version(conn, job.number, now=_now(), reason=end.reason, data=result.get("data"),
                                          figures=figures)


# --------------------------------------------------------------------------- words


PHASE_TEXT = {
    "starting": "corrections exported, starting the job",
    "exporting": "exporting the corrections",
    "preparing": "exporting the training data",
    "training": "training",
    "evaluating": "evaluating",
    "verdict": "verdict",
    "cancelled": "cancelled",
    "error": "error",
}


# The sets a job evaluates on, as its progress lines name them.
SET_TEXT = {"validate": "validation set", "gold": "gold set", "heldout": "held-out corrections",
            "test": "test split"}


def describe_progress(progress: dict | None) -> str:
    """One line: the phase and how far it is (epoch, step, loss and validation while training; which adapter on
    which set while evaluating) and the time left, which is the whole job's, evaluation included."""
    if not progress:
        return "starting"
    phase = progress.get("phase", "starting")
    text = PHASE_TEXT.get(phase, phase)
    evaluated = (f"{SET_TEXT.get(progress['set'], progress['set'])} "
                 f"{int(100 * progress.get('done', 0) / max(1, progress.get('total') or 1))}%"
                 if progress.get("set") else None)
    if phase == "training" and progress.get("steps"):
        parts = [f"epoch {progress.get('epoch', 0)}/{progress.get('epochs', '?')}",
                 f"step {progress.get('step', 0)}/{progress['steps']}"]
        if progress.get("loss") is not None:
            parts.append(f"loss {progress['loss']:.3f}")
        if evaluated:
            parts.append(f"{evaluated} validated")
        text += ": " + ", ".join(parts)
    elif phase == "evaluating" and progress.get("adapter"):
        text += " the " + ("new adapter" if progress["adapter"] == "candidate" else "active adapter")
        if evaluated:
            text += f": {evaluated}"
    elif phase == "preparing" and progress.get("data"):
        data = progress["data"]
        text += (f": {sum(data['train'].values())} training messages, {data['corrections_trained']} corrections "
                 f"trained on, {data['corrections_held_out']} held out for the gate")
    if phase in ("training", "evaluating") and progress.get("eta_s") is not None:
        text += f", about {format_duration(progress['eta_s'])} left"
    return text


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def figures_lines(figures: dict | None) -> list[str]:
    """The two pairs of figures of the gate: gold macro-F1 and held-out accuracy, new vs active."""
    if not figures or "candidate" not in figures:
        return []
    new, old = figures["candidate"], figures["active"]
    lines = [f"gold set macro-F1: new {new['gold']['macro_f1']:.3f} vs active {old['gold']['macro_f1']:.3f} "
             f"(n {new['gold']['n']})"]
    if new.get("heldout"):
        lines.append(f"held-out corrections accuracy: new {new['heldout']['accuracy']:.3f} vs active "
                     f"{old['heldout']['accuracy']:.3f} (n {new['heldout']['n']})")
    else:
        lines.append("held-out corrections: none this time")
    return lines


# --------------------------------------------------------------------------- a job on another machine


REMOTE_NOTE = "prepared for another machine (`modbot retrain --prepare`)"


async def prepare_remote(conn: aiosqlite.Connection, settings: Settings, directory: Path, *,
                         force: bool = False) -> storage.AdapterVersion:
    """A self-contained job directory (spec with relative paths, the corrections, the active adapter, the gold
    set) to run elsewhere with ``modbot retrain --run``; the version's row holds the job slot until
    ``--finish`` (or ``/retrain cancel``)."""
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        raise RetrainRefused(f"--prepare {directory}: the directory exists and is not empty.")
    active, _ = await check_start(conn, settings, force=force)
    gold = resolve_eval_data(settings, await lineage(conn, active))
    try:
        version = await storage.start_job(conn, model=settings.model.model, adapter_dir=settings.adapter_dir.resolve(),
                                          parent=active.number, origin="shell", started_by=None, now=_now())
    except storage.JobAlreadyRunning:
        raise RetrainRefused("A retraining job is already running: wait for it, or stop it first.") from None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        await _copy_tree(Path(active.path), directory / "active")
        shutil.copyfile(gold, directory / f"gold{gold.suffix}")
        lines, newest = await export_corrections(conn, settings)
        _write_atomically(directory / "corrections.jsonl", "".join(lines))
        await storage.set_job_export(conn, version.number, corrections=len(lines), last_correction_id=newest)
        model = settings.model
        spec = {
            "version": version.name, "out": "candidate", "active_adapter": "active",
            "corrections": "corrections.jsonl", "gold": f"gold{gold.suffix}", "job_dir": ".",
            "model": model.model, "quantization": model.quantization, "device": model.device, "cache_dir": None,
            "options": dict(settings.retrain_options) or None, "threads": settings.retrain_threads,
        }
        _write_atomically(directory / "spec.json", json.dumps(spec, indent=2) + "\n")
        await storage.set_job_progress(conn, version.number, "starting",
                                       {"phase": "starting", "note": REMOTE_NOTE, "job_dir": str(directory)})
    except BaseException as exc:
        remove_job_data(directory)
        await storage.finish_job(conn, version.number, status="failed", reason=f"--prepare failed: {exc}",
                                 now=_now(), keep_path=False)
        raise
    return await storage.get_version(conn, version.number)


async def finish_remote(conn: aiosqlite.Connection, settings: Settings,
                        directory: Path) -> tuple[storage.AdapterVersion, Outcome]:
    """Record a job run elsewhere: its candidate is copied to the version's directory, then promoted or rejected."""
    directory = directory.resolve()
    try:
        spec = json.loads((directory / "spec.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RetrainRefused(f"--finish {directory}: no readable spec.json ({exc}).") from None
    number = int(str(spec.get("version", "")).lstrip("v") or 0)
    version = await storage.get_version(conn, number)
    if version is None or version.status != "training" or version.origin != "shell":
        state = version.status if version else "unknown"
        raise RetrainRefused(f"--finish {directory}: version {number} is {state}, not a job waiting for its result.")
    try:
        result = json.loads((directory / "result.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        result = None
    if not result or result.get("status") != "completed":
        error = (result or {}).get("error") or "the job has no result.json: it did not finish (run it again with --run)"
        end = Outcome("failed", f"the job run elsewhere failed: {error}", result)
        remove_job_data(directory)
        return await storage.finish_job(conn, number, status="failed", reason=end.reason, now=_now(),
                                        keep_path=False), end
    end = verdict(result)  # the bot's own gate on the figures, not the file's promote flag
    if end.status == "failed":
        remove_job_data(directory)
        return await storage.finish_job(conn, number, status="failed", reason=end.reason, now=_now(),
                                        keep_path=False), end
    read_adapter(directory / "candidate")  # complete and valid, or ModelError
    await _copy_tree(directory / "candidate", Path(version.path))
    figures = {k: result[k] for k in ("candidate", "active") if k in result}
    if end.status == "promote":
        return await storage.activate_version(conn, number, now=_now(), reason=end.reason, data=result.get("data"),
                                              figures=figures), end
    return await storage.finish_job(conn, number, status="rejected", reason=end.reason, now=_now(),
                                    data=result.get("data"), figures=figures), end
