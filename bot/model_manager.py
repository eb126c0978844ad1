"""What the bot serves, decided in one place: the model manager.

Every cog and command goes through :class:`ModelManager` to change the adapter the bot serves, and reads what
is served from it:

* **start-up**: the registry's active version for this model, or, when it cannot be loaded, the versions active
  before it (the broken one is marked failed with the reason, its directory kept), else the configured adapter
  (MODBOT_ADAPTER, or the shipped one), which the registry then records;
* **promotion** of the version a retraining job made (:meth:`ModelManager.promote`) and **rollback** to an
  earlier one (:meth:`ModelManager.rollback`): the adapter is served first, the registry records it after, so
  the registry never names a version the bot cannot serve;
* a **watcher of the registry**: a version made active by another process (`modbot retrain` in the shell, or
  another bot process) is served within seconds, without a command. The watcher is a thread that asks SQLite
  every WATCH_S seconds whether anything was committed (``PRAGMA data_version``, a read of a counter in
  shared memory) and, only then, which version is active. The event loop hears of it only when the active
  version changed: an idle bot, or a test that advances its clock by a month, wakes for nothing.

The model itself is an :class:`model.InferenceBackend` (one base model with adapters swapped on it, or a Ray
Serve application): the classification service classifies with it, and the manager only tells it which
adapter to serve. Every call into it blocks, so it runs in a worker thread, never on the event loop.

**Making way for a retraining job** (MODBOT_RETRAIN_SERVING): the job loads its own copy of the base model, and
on the flagship's card (GPT-J-6B in 8-bit, ~6.5 GB, on an 11 GB GPU) the two do not fit together. Just before
a job starts, :meth:`ModelManager.make_way_for_retrain` decides (:func:`retrain_serving`) whether to release
the served model: ``pause`` always, ``auto`` only when the served model is on a CUDA device whose free memory
cannot hold the job (computed from parameter counts by training.memory), ``keep`` never. Released, the
classification service refuses messages with ServingPaused and the flagging cog records them (the
``pending_messages`` table a shutdown uses). When the job ends, whatever the end, the manager loads the base
again with the adapter to serve (the promoted one, if any) and resumes the service; the bot then classifies
what was recorded.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from model import AdapterError, InferenceBackend, ModelError, ModelSettings, Served
from model.adapter import brief, read_adapter, shipped_adapter
from model.errors import ModbotError
from training.memory import GB, job_bytes, model_size

from . import retrain, storage
from .service import ClassificationService
from .settings import Settings

log = logging.getLogger(__name__)

WATCH_S = 2.0  # how often the registry watcher asks SQLite whether the database changed


class RollbackRefused(ModbotError):
    """`/mod rollback` cannot make that version active; the message says why."""


def _now() -> datetime:
    return datetime.now(UTC)


def configured_adapter(settings: ModelSettings) -> Path | None:
    """The adapter the settings ask for: MODBOT_ADAPTER, else the one shipped for the model, else none."""
    if settings.adapter is not None:
        return settings.adapter
    return shipped_adapter(settings.model) if settings.use_default_adapter else None


def create_backend(settings: ModelSettings) -> InferenceBackend:
    """The backend the settings choose (model.backends: in this process, or a Ray Serve application), with no
    adapter yet: the manager chooses which one it serves. Blocking: call it in a worker thread."""
    from model.backends import create_backend as create

    return create(replace(settings, adapter=None, use_default_adapter=False))


@dataclass(frozen=True)
class ServingPlan:
    """What the served model does while a retraining job trains, and why (one clause, for the log and Discord)."""

    pause: bool
    reason: str


def _device(name: str, serving: str) -> str:
    """A device name as the job and the loader resolve it: ``cuda`` is ``cuda:0``; ``auto`` is CUDA where the
    bot serves on CUDA (it is available), else the CPU."""
    name = name.strip().lower()
    if name == "auto":
        name = "cuda" if serving.startswith("cuda") else "cpu"
    return "cuda:0" if name == "cuda" else name


def retrain_serving(mode: str, *, in_process: bool, serving_device: str, job_device: str,
                    free_bytes: int | None = None, job_bytes: int | None = None) -> ServingPlan:
    """Whether the served model makes way for a retraining job (MODBOT_RETRAIN_SERVING ``mode``).

    ``in_process``: the model is in the bot's process (MODBOT_BACKEND=local); ``serving_device``: where it is
    served; ``job_device``: where the job trains (MODBOT_RETRAIN_OPTIONS device, else MODBOT_DEVICE);
    ``free_bytes``: the serving GPU's free memory, and ``job_bytes`` the job's (training.memory.job_bytes), both
    needed only by ``auto`` on a GPU.
    """
    if not in_process:
        return ServingPlan(False, "the model runs in the Ray Serve application, not in the bot "
                                  "(MODBOT_RETRAIN_SERVING does not apply)")
    if mode == "keep":
        return ServingPlan(False, "MODBOT_RETRAIN_SERVING=keep")
    if mode == "pause":
        return ServingPlan(True, "MODBOT_RETRAIN_SERVING=pause")
    serving, job = _device(serving_device, serving_device), _device(job_device, serving_device)
    if not serving.startswith("cuda"):
        return ServingPlan(False, f"the model is served on the {serving.upper()}, not a GPU")
    if job != serving:
        return ServingPlan(False, f"the job trains on {job}, the model is served on {serving}")
    if free_bytes is None or job_bytes is None:
        return ServingPlan(False, f"the free memory of {serving} is not known")
    if free_bytes >= job_bytes:
        return ServingPlan(False, f"{serving} has {free_bytes / GB:.1f} GB free, enough for the job's "
                                  f"{job_bytes / GB:.1f} GB (computed)")
    return ServingPlan(True, f"{serving} has {free_bytes / GB:.1f} GB free and the job needs about "
                             f"{job_bytes / GB:.1f} GB (computed from its parameter counts)")


def job_memory(model, quantization: str, device_type: str, metadata: dict, options: dict) -> int:
    """The bytes a retraining job needs (training.memory.job_bytes) on a base like the loaded ``model``, training
    as the job will: the active adapter's strategy and hyperparameters (its ``metadata``) under
    MODBOT_RETRAIN_OPTIONS (``options``), as training.retrain.train_args chooses them."""
    hyper = {**(metadata.get("hyperparameters") or {}), **options}
    strategy = options.get("strategy", metadata.get("strategy", hyper.get("strategy", "all")))
    return job_bytes(model_size(model), quantization, device_type, strategy=str(strategy),
                     lora_r=int(hyper.get("lora_r", 8)), optimizer=str(hyper.get("optimizer", "adam8bit")))


def _release(holder: list) -> None:
    """Close the backend in ``holder`` and free its memory: the last reference to it is the list's."""
    backend = holder.pop()
    base = getattr(backend, "base", None)
    cuda = base is not None and getattr(base.device, "type", None) == "cuda"
    del base
    backend.close()
    del backend
    gc.collect()
    if cuda:
        import torch

        torch.cuda.empty_cache()  # hand the freed blocks back to the driver: the job is another process


class RegistryWatcher:
    """A thread that calls ``notify`` whenever the registry's active version changes, whoever changed it.

    It keeps its own read-only connection: SQLite's ``data_version`` changes when another connection (the bot's
    own, `modbot retrain`'s, another bot process's) commits, so most looks cost one pragma and nothing else.
    """

    def __init__(self, db_path: Path, notify: Callable[[], None], *, active: int | None,
                 interval: float = WATCH_S) -> None:
        self.db_path = Path(db_path).resolve()
        self.interval = interval
        self._notify = notify
        self._seen = active  # the active version the manager knows of
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modbot-registry-watcher", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        data_version = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    if conn is None:
                        conn = sqlite3.connect(f"{self.db_path.as_uri()}?mode=ro", uri=True)
                        data_version = None
                    changed = conn.execute("PRAGMA data_version").fetchone()[0]
                    if changed == data_version:
                        continue
                    data_version = changed
                    row = conn.execute("SELECT number FROM adapter_versions WHERE status = 'active'").fetchone()
                except sqlite3.Error as exc:
                    if not self._failing:  # said once, not every few seconds
                        log.warning("The registry watcher cannot read %s (%s); it keeps trying", self.db_path, exc)
                        self._failing = True
                    if conn is not None:
                        conn.close()
                        conn = None
                    continue
                if self._failing:
                    log.info("The registry watcher reads %s again", self.db_path)
                    self._failing = False
                active = row[0] if row else None
                if active != self._seen:
                    self._seen = active
                    self._notify()
        finally:
            if conn is not None:
                conn.close()


class ModelManager:
    """The one owner of what the bot serves: start-up, promotion, rollback and the registry watcher.

    ``backend``: one already made (tests, the demo); by default the manager creates one from the settings and
    closes it with itself.
    """

    def __init__(self, settings: Settings, db: aiosqlite.Connection, *, backend: InferenceBackend | None = None,
                 watch_s: float = WATCH_S) -> None:
        self.settings = settings
        self.db = db
        self._backend = backend
        self._owns_backend = backend is None
        self._served: Served | None = None
        self._version: storage.AdapterVersion | None = None
        self._lock = asyncio.Lock()  # one change of adapter at a time
        self._watch_s = watch_s
        self._watcher: RegistryWatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sync_task: asyncio.Task | None = None
        self._sync_again = False
        self.problem: str | None = None  # why the registry's active version is not served, when it is not
        self._service: ClassificationService | None = None
        self._on_resumed: Callable[[], None] | None = None
        self.pause_reason: str | None = None  # why the model is released, while a retraining job has its GPU
        self._missed_sync = False  # the registry changed while paused

    # ------------------------------------------------------------------ what is served (reads only)

    @property
    def backend(self) -> InferenceBackend:
        if self._backend is None:
            raise RuntimeError("no model is loaded: the model manager is started in setup_hook, and releases the "
                               "model while a retraining job has its GPU")
        return self._backend

    @property
    def paused(self) -> bool:
        """Whether the model is released while a retraining job trains (messages are recorded meanwhile)."""
        return self.pause_reason is not None

    @property
    def started(self) -> bool:
        return self._served is not None

    @property
    def served(self) -> Served:
        """What the backend serves, as of the manager's last change (no call into the backend)."""
        if self._served is None:
            raise RuntimeError("the model manager is started in setup_hook")
        return self._served

    @property
    def version(self) -> storage.AdapterVersion | None:
        """The registry's version being served; None for an adapter the registry does not hold (a stand-in)."""
        return self._version

    # ------------------------------------------------------------------ start-up

    async def start(self) -> Served:
        """Serve the registry's active version (or the last good one, or the configured adapter), record it in
        the registry, and start watching the registry."""
        settings = self.settings
        if self._backend is None:
            self._backend = await asyncio.to_thread(create_backend, settings.model)
        served = None
        broken: list[storage.AdapterVersion] = []
        for version in await retrain.serving_candidates(self.db, settings):
            try:
                served = await self._serve(version.path)
            except AdapterError as exc:
                await retrain.record_unloadable(self.db, version, exc)
                broken.append(version)
                continue
            if broken:
                await storage.activate_version(self.db, version.number, now=_now())
                log.warning("Serving adapter version %d, the last good one, instead of version %d, which cannot be "
                            "loaded (see /mod model)", version.number, broken[0].number)
            break
        if served is None:
            if self._owns_backend:  # a broken configured adapter stops the start here, as a broken base does
                if broken:
                    log.warning("No registered adapter version can be loaded: serving the configured adapter instead")
                served = await self._serve(configured_adapter(settings.model))
            else:  # a backend made by the caller serves what the caller chose
                served = self._served = await asyncio.to_thread(self.backend.served)
                if broken:
                    log.warning("No registered adapter version can be loaded: serving adapter %s instead",
                                served.adapter_version)
        try:
            self._version = await retrain.register_serving(self.db, settings, served.adapter_path)
        except (ModbotError, OSError) as exc:
            log.error("Could not register the serving adapter, retraining is unavailable: %s", exc)
        log.info("Classifier: %s, adapter %s%s", served.model, served.adapter_version,
                 f" (version {self._version.number})" if self._version else "")
        self._watch()
        return served

    def attach(self, service: ClassificationService, on_resumed: Callable[[], None] | None = None) -> None:
        """The service that classifies with the backend: paused and resumed with the model. ``on_resumed`` is
        called (on the event loop) when classification resumes after a pause."""
        self._service = service
        self._on_resumed = on_resumed

    def _watch(self) -> None:
        if self._watcher is not None or self._watch_s <= 0 or str(self.settings.db_path) == ":memory:":
            return
        self._loop = asyncio.get_running_loop()
        self._watcher = RegistryWatcher(self.settings.db_path, self._registry_changed_threadsafe,
                                        active=self._version.number if self._version else None,
                                        interval=self._watch_s)
        self._watcher.start()

    # ------------------------------------------------------------------ changes

    async def promote(self, job: retrain.Job, end: retrain.Outcome) -> storage.AdapterVersion:
        """Serve the version a job made and record it active. Raises what the backend raised (AdapterError for
        an adapter it cannot load) with the previous version still served and still active."""
        version = await storage.get_version(self.db, job.number)
        async with self._lock:
            await self._activate(version, lambda: retrain.promote(self.db, job, end))
        log.info("Retraining: version %d promoted and serving (%s)", job.number, end.reason)
        return self._version

    async def rollback(self, number: int) -> tuple[storage.AdapterVersion, str]:
        """Make an earlier version active (a rejected one too, or a failed one whose directory was kept and
        repaired); returns it and the status it had. RollbackRefused says why not."""
        version = await storage.get_version(self.db, number)
        if version is None:
            raise RollbackRefused(f"There is no version {number}. `/mod model` lists them.")
        if version.status == "active":
            raise RollbackRefused(f"Version {number} is already the active version.")
        if version.status not in ("previous", "rejected", "failed") or version.path is None:
            raise RollbackRefused(f"Version {number} was {version.status}: it has no adapter to serve.")
        if version.model != self.settings.model.model:
            raise RollbackRefused(f"Version {number} belongs to model {version.model}, but the bot serves "
                                  f"{self.settings.model.model}.")
        if await storage.running_job(self.db) is not None:
            raise RollbackRefused("A retraining job is running: wait for it or stop it with `/retrain cancel` first.")
        was = version.status
        async with self._lock:
            try:
                await self._activate(version, lambda: storage.activate_version(self.db, number, now=_now()))
            except ModelError as exc:
                raise RollbackRefused(f"Version {number} cannot be loaded: {exc}") from None
        log.info("Rolled back to adapter version %d", number)
        return self._version, was

    async def sync(self) -> None:
        """Serve the registry's active version if another process made another one active.

        A version whose adapter cannot be loaded is marked failed with the reason (its directory kept) and the
        version served stays, active again.
        """
        async with self._lock:
            if self.paused:  # nothing is loaded: served when the retraining job ends
                self._missed_sync = True
                return
            active = await storage.active_version(self.db)
            if (active is None or active.path is None or active.model != self.settings.model.model
                    or (self._version is not None and active.number == self._version.number)):
                self.problem = None  # whatever could not be served is no longer asked for
                return
            try:
                await self._serve(active.path)
            except AdapterError as exc:
                await retrain.record_unloadable(self.db, active, exc)
                if self._version is not None:
                    await storage.activate_version(self.db, self._version.number, now=_now())
                    log.warning("Still serving adapter version %d, active again", self._version.number)
                return
            except Exception as exc:
                # Not the adapter's fault (memory, the base model, the Ray application): it stays active in the
                # registry and is tried again at its next change, or at the next start.
                self.problem = f"version {active.number} is active but cannot be served now: {brief(exc)}"
                log.error("Adapter version %d became active outside the bot but cannot be served; still serving "
                          "%s: %s", active.number, self._served.adapter_version, exc,
                          exc_info=not isinstance(exc, ModbotError))
                return
            self._version = active
        log.info("Now serving adapter version %d (%s), made active outside the bot", active.number, active.name)

    async def _activate(self, version: storage.AdapterVersion, record) -> None:
        """Serve ``version``, then ``record()`` it in the registry; if recording fails, serve the previous again."""
        previous = self._served
        await self._serve(version.path)
        try:
            self._version = await record()
        except BaseException:
            if previous is not None:
                try:
                    await self._serve(previous.adapter_path)
                except Exception:
                    log.exception("Could not serve %s again after the registry refused version %d",
                                  previous.adapter_version, version.number)
            raise

    async def _serve(self, path: Path | None) -> Served:
        """Serve ``path``; while paused, the base model is loaded again first and classification resumes."""
        if self._backend is None:
            self._backend = await asyncio.to_thread(create_backend, self.settings.model)
        served = await asyncio.to_thread(self.backend.serve_adapter, Path(path) if path is not None else None)
        self._served = served
        self.problem = None
        if self.paused:
            self._resume_service()
        return served

    # ------------------------------------------------------------------ making way for a retraining job

    async def make_way_for_retrain(self, active: storage.AdapterVersion) -> ServingPlan:
        """Called just before a retraining job (from ``active``) is launched: release the served model if
        MODBOT_RETRAIN_SERVING says so (:func:`retrain_serving`). Returns the plan."""
        if self.paused:  # still released after the last job (it could not be loaded again): stays so
            return ServingPlan(True, self.pause_reason)
        try:
            metadata = (await asyncio.to_thread(read_adapter, active.path)).metadata if active.path else {}
        except ModbotError:
            metadata = {}
        plan = await asyncio.to_thread(self._plan, metadata)
        if plan.pause:
            await self.pause(plan.reason)
        else:
            log.info("Retraining: the model keeps serving while the job trains (%s)", plan.reason)
        return plan

    def _plan(self, metadata: dict) -> ServingPlan:
        """retrain_serving with what this process knows: where the model is, the GPU's free memory, the job's
        size from the served base's parameter counts and the active adapter's hyperparameters. Blocking."""
        settings = self.settings
        in_process = settings.model.backend != "ray"
        base = getattr(self._backend, "base", None)
        if in_process and settings.retrain_serving != "keep" and (not self._owns_backend or base is None):
            return ServingPlan(False, "the model was handed to the bot ready-made (a test or the demo), and the "
                                      "bot cannot load it again")
        options = settings.retrain_options
        serving_device = str(base.device) if base is not None else "cpu"
        free = needed = None
        if settings.retrain_serving == "auto" and in_process and base.device.type == "cuda":
            import torch

            try:
                free, _ = torch.cuda.mem_get_info(base.device)
                needed = job_memory(base.model, base.quantization, "cuda", metadata, options)
            except Exception as exc:  # decided without it (served on: the job's own error says what failed)
                log.warning("Retraining: could not measure the free memory of %s for the job: %s", base.device, exc)
                free = needed = None
        return retrain_serving(settings.retrain_serving, in_process=in_process, serving_device=serving_device,
                               job_device=str(options.get("device", settings.model.device)), free_bytes=free,
                               job_bytes=needed)

    async def pause(self, reason: str) -> None:
        """Release the served model: the batch in progress finishes, the messages after it are recorded by
        their handlers (ServingPaused), and the base model's memory is freed (its GPU memory handed back)."""
        async with self._lock:
            if self.paused or self._backend is None:
                return
            self.pause_reason = reason
            refused = await self._service.pause() if self._service is not None else 0
            holder = [self._backend]
            self._backend = None
            await asyncio.to_thread(_release, holder)
        log.warning("Classification paused while the retraining job trains (%s): the model is released, and the "
                    "messages that arrive are recorded and classified when the job ends (%d queued ones recorded)",
                    reason, refused)

    async def resume(self) -> bool:
        """Load the model again and classify, after a retraining job ended (a promotion already did it: then
        nothing to do). Serves what was served before the pause; a version made active meanwhile by another
        process is served next, as the watcher would. Returns whether it resumed; raises what loading raised,
        still paused (the caller tries again later)."""
        async with self._lock:
            if not self.paused:
                return False
            try:
                await self._serve(self._served.adapter_path)
            except Exception as exc:
                self.problem = f"the model could not be loaded again after the retraining job: {brief(exc)}"
                raise
        return True

    def _resume_service(self) -> None:
        reason, self.pause_reason = self.pause_reason, None
        if self._service is not None:
            self._service.resume(self._backend)
        log.info("Classification resumed with adapter %s (it was paused: %s)", self._served.adapter_version, reason)
        if self._missed_sync:
            self._missed_sync = False
            self._registry_changed()
        if self._on_resumed is not None:
            self._on_resumed()

    # ------------------------------------------------------------------ the watcher, on the event loop's side

    def _registry_changed_threadsafe(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._registry_changed)
        except RuntimeError:  # the loop closed meanwhile: the bot is gone
            pass

    def _registry_changed(self) -> None:
        if self._sync_task is not None and not self._sync_task.done():
            self._sync_again = True  # the running sync looks once more when it is done
            return
        self._sync_task = asyncio.get_running_loop().create_task(self._sync_changes(), name="modbot-model-sync")

    async def _sync_changes(self) -> None:
        while True:
            self._sync_again = False
            try:
                await self.sync()
            except Exception:  # the watcher must survive: it is what serves the shell's promotions
                log.exception("Serving the registry's active version failed")
            if not self._sync_again:
                return

    # ------------------------------------------------------------------ the end

    def stop_watching(self) -> None:
        """Stop the registry watcher: what another process makes active is then served at the next start."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    async def close(self) -> None:
        await asyncio.to_thread(self.stop_watching)
        if self._sync_task is not None and not self._sync_task.done():
            self._sync_task.cancel()
            try:
                await self._sync_task
            except asyncio.CancelledError:
                pass
        if self._backend is not None and self._owns_backend:
            await asyncio.to_thread(self._backend.close)
