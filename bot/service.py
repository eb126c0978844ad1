"""The classification service: how the bot's messages reach the model.

Messages go into a bounded asyncio queue; a drain task takes them out in micro-batches (up to the
batch size, or whatever arrived within a few milliseconds) and runs each batch on a single worker
thread, so the event loop never runs a forward pass and a burst becomes a few large batches.

Each batch goes to the model.InferenceBackend that bot.model_manager owns. Which adapter that backend
serves is the manager's business (it switches adapters between batches); the service only classifies.

While a retraining job has the GPU to itself (MODBOT_RETRAIN_SERVING), the manager pauses the service and
releases the model: the batch in progress finishes, and every other message, queued or new, is refused with
ServingPaused, which its caller records to classify once the manager resumes the service with a model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from model import InferenceBackend, Prediction
from model.errors import ModbotError

log = logging.getLogger(__name__)

DROP_REPORT_INTERVAL = 10.0  # seconds between two warnings about a full queue


class QueueFull(ModbotError):
    """The service's queue is full: the message was dropped (and counted)."""


class ServiceClosed(ModbotError):
    """The service was closed before the message was classified."""


class ServingPaused(ModbotError):
    """Classification is paused while a retraining job has the model's memory; the message was not classified."""


@dataclass(frozen=True)
class ServiceStats:
    queued: int
    in_flight: int  # messages in the batch the model is classifying now
    classified: int
    dropped: int
    batches: int
    largest_batch: int
    batch_sizes: dict[int, int]  # batch size -> how many batches had it
    seconds_in_model: float


class ClassificationService:
    def __init__(
        self,
        backend: InferenceBackend | None,
        *,
        batch_size: int = 16,
        queue_size: int = 1000,
        max_wait: float = 0.005,
    ) -> None:
        self._backend = backend
        self.batch_size = max(1, batch_size)
        self.max_wait = max(0.0, max_wait)
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[Prediction]]] = asyncio.Queue(maxsize=queue_size)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modbot-classifier")
        self._drainer: asyncio.Task[None] | None = None
        self._closed = False
        self._paused = backend is None
        self._names = ("", "")  # (model, adapter) served before a pause
        self._abandoned = 0  # messages of a batch cut short by close()
        self.classified = 0
        self._in_flight = 0
        self.dropped = 0
        self._dropped_unreported = 0
        self._last_drop_report: float | None = None
        self._batch_sizes: Counter[int] = Counter()
        self._seconds_in_model = 0.0

    # ------------------------------------------------------------------ public API

    @property
    def model_name(self) -> str:
        return self._backend.model_name if self._backend is not None else self._names[0]

    @property
    def adapter_version(self) -> str:
        """The adapter served (while paused: the one served before)."""
        return self._backend.adapter_version if self._backend is not None else self._names[1]

    @property
    def paused(self) -> bool:
        return self._paused

    async def classify(self, text: str) -> Prediction:
        """Queue ``text`` and wait for its prediction. Raises QueueFull when the queue is full, ServingPaused
        while classification is paused (also for a message queued when the pause began)."""
        if self._closed:
            raise ServiceClosed("the classification service is closed")
        if self._paused:
            raise ServingPaused("classification is paused while a retraining job trains")
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((text, future))
        except asyncio.QueueFull:
            self.dropped += 1
            self._dropped_unreported += 1
            now = time.monotonic()
            if self._last_drop_report is None or now - self._last_drop_report >= DROP_REPORT_INTERVAL:
                self._report_drops()
            raise QueueFull(f"the classification queue is full ({self._queue.maxsize} messages)") from None
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain(), name="modbot-classify-drain")
        return await future

    def _report_drops(self) -> None:
        """One warning for the drops since the last one: at most one per interval during a burst."""
        if not self._dropped_unreported:
            return
        since = "" if self._last_drop_report is None else f" in the last {time.monotonic() - self._last_drop_report:.0f} s"
        log.warning(
            "Classification queue full (%d messages): %d message%s dropped%s, %d since start",
            self._queue.maxsize, self._dropped_unreported, "" if self._dropped_unreported == 1 else "s", since,
            self.dropped,
        )
        self._dropped_unreported = 0
        self._last_drop_report = time.monotonic()

    def stats(self) -> ServiceStats:
        return ServiceStats(
            queued=self._queue.qsize(),
            in_flight=self._in_flight,
            classified=self.classified,
            dropped=self.dropped,
            batches=sum(self._batch_sizes.values()),
            largest_batch=max(self._batch_sizes, default=0),
            batch_sizes=dict(sorted(self._batch_sizes.items())),
            seconds_in_model=self._seconds_in_model,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    async def pause(self) -> int:
        """Stop classifying: let the batch in progress finish, refuse the queued messages and every new one
        with ServingPaused, and let go of the backend (the caller may then release its model). Returns how
        many queued messages were refused."""
        self._paused = True
        drainer = self._drainer
        if drainer is not None and not drainer.done():
            await asyncio.wait({drainer})  # it stops after its batch (see _drain)
        refused = 0
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(ServingPaused("classification was paused for a retraining job"))
                refused += 1
        if self._backend is not None:
            self._names = (self._backend.model_name, self._backend.adapter_version)
        self._backend = None
        return refused

    def resume(self, backend: InferenceBackend) -> None:
        """Classify again, with ``backend``."""
        self._backend = backend
        self._paused = False

    async def close(self, timeout: float = 0.0) -> int:
        """Stop taking messages, classify what is queued for up to ``timeout`` seconds, and fail the rest.

        The callers of what was not classified get ServiceClosed (they record their message for the
        next start). Returns how many that was.
        """
        self._closed = True
        drainer = self._drainer
        queued = self._queue.qsize()
        if queued and timeout > 0 and drainer is not None and not drainer.done():
            log.info("Stopping: classifying the %d queued messages (for up to %.0f s)", queued, timeout)
            await asyncio.wait({drainer}, timeout=timeout)
        if drainer is not None and not drainer.done():
            drainer.cancel()  # the batch it runs fails with ServiceClosed, counted in self._abandoned
            try:
                await drainer
            except asyncio.CancelledError:
                pass
        unfinished, self._abandoned = self._abandoned, 0
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(ServiceClosed("the classification service was closed"))
                unfinished += 1
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._report_drops()
        return unfinished

    # ------------------------------------------------------------------ the drain

    async def _drain(self) -> None:
        """Run batches until the queue is empty, then end (the next message starts a new drain)."""
        loop = asyncio.get_running_loop()
        while not self._queue.empty() and not self._paused:
            if self._queue.qsize() < self.batch_size and self.max_wait > 0:
                # Let a burst accumulate for a few milliseconds rather than run a batch of one. The wait
                # happens on the worker thread, idle until this batch is formed: the event loop stays free
                # and no loop timer is involved (SimCord's virtual clock would hold a timer back).
                await loop.run_in_executor(self._executor, time.sleep, self.max_wait)
                if self._paused:
                    break
            batch = []
            while len(batch) < self.batch_size and not self._queue.empty():
                text, future = self._queue.get_nowait()
                if not future.done():  # its waiter may have been cancelled
                    batch.append((text, future))
            if not batch:
                continue
            texts = [text for text, _ in batch]
            started = time.perf_counter()
            self._in_flight = len(batch)
            try:
                predictions = await loop.run_in_executor(self._executor, self._backend.classify, texts)
            except asyncio.CancelledError:
                # Closed while this batch ran: its callers record their messages for the next start.
                for _, future in batch:
                    if not future.done():
                        future.set_exception(ServiceClosed("the classification service was closed"))
                        self._abandoned += 1
                raise
            except Exception as exc:
                log.exception("Classifying a batch of %d messages failed", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self._in_flight = 0
            elapsed = time.perf_counter() - started
            self._seconds_in_model += elapsed
            self._batch_sizes[len(batch)] += 1
            self.classified += len(batch)
            log.debug("Classified a batch of %d in %.1f ms", len(batch), elapsed * 1000)
            for (_, future), prediction in zip(batch, predictions, strict=True):
                if not future.done():
                    future.set_result(prediction)
        self._report_drops()  # the queue has drained: the burst that filled it is over
