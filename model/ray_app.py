"""modbot's classifier as a Ray Serve application (`modbot serve`; the bot reaches it through model.ray_backend).

Each replica loads the base model once and labels the messages it is sent in batches (``serve.batch``: up to
``max_batch_size`` messages, or whatever arrived within ``batch_wait_timeout_s``). The adapter version travels
with each request as its multiplexed model id (the adapter's directory, or "zero-shot"): a replica puts a
version on its base when a request asks for it (model.LocalBackend: one base, one adapter version at a time),
so a promotion changes what the replicas serve without redeploying or restarting them.

torch is imported inside the replicas only: the deploying command and the bot's thin client never load it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ray import serve

from .adapter import read_adapter
from .backend import Served
from .config import ModelSettings
from .errors import AdapterError, ModbotError, ModelError
from .predictions import ZERO_SHOT, Prediction

log = logging.getLogger(__name__)

DEPLOYMENT_NAME = "Classifier"


def adapter_model_id(path: Path | str | None) -> str:
    """The multiplexed model id of an adapter directory: its absolute path, or "zero-shot" for no adapter."""
    return ZERO_SHOT if path is None else str(Path(path).expanduser().resolve())


def adapter_from_model_id(model_id: str) -> Path | None:
    return None if model_id == ZERO_SHOT else Path(model_id)


@dataclass(frozen=True)
class ServeOptions:
    """How the application is deployed: replicas, what each one reserves, how requests are batched."""

    replicas: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.01

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ModbotError(f"--replicas {self.replicas} is not valid: use 1 or more.")
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ModbotError("--num-cpus and --num-gpus cannot be negative.")
        if self.num_cpus == 0 and self.num_gpus == 0:
            raise ModbotError("Each replica needs a CPU or a GPU: give --num-cpus or --num-gpus more than 0.")
        if self.max_batch_size < 1:
            raise ModbotError(f"--max-batch-size {self.max_batch_size} is not valid: use 1 or more.")
        if self.batch_wait_timeout_s < 0:
            raise ModbotError("--batch-wait-timeout cannot be negative.")

    @property
    def threads(self) -> int:
        """torch threads in each replica: the CPUs it reserves, at least one."""
        return max(1, int(self.num_cpus))


@serve.deployment(name=DEPLOYMENT_NAME)
class ClassifierReplica:
    """One replica: the base model, loaded once (model.LocalBackend), with the adapter version requests ask for.

    Built by Ray Serve from ``build_app``, never by hand.
    """

    async def __init__(self, settings: ModelSettings, options: ServeOptions) -> None:
        import torch

        from .local_backend import LocalBackend

        torch.set_num_threads(options.threads)
        # Loaded now, so that a model or adapter that cannot load fails the deployment, not the first message.
        self._backend = await asyncio.to_thread(LocalBackend.from_settings, settings)
        self._default_id = adapter_model_id(self._backend.served().adapter_path)
        # A version is put on the base, and the batch classified with it, under this lock: a batch asking for
        # another version waits until this one is done.
        self._serving = asyncio.Lock()
        self.classify_batch.set_max_batch_size(options.max_batch_size)
        self.classify_batch.set_batch_wait_timeout_s(options.batch_wait_timeout_s)
        async with self._serving:
            await self.adapter(self._default_id)  # tells Serve's router which version this replica holds

    # LocalBackend puts one adapter version at a time on the base, so each replica holds one: Serve's router
    # sends a request to a replica that holds its version when one can take it, and a replica asked for
    # another version swaps (LocalBackend.serve_adapter: no second base, the old version freed).
    @serve.multiplexed(max_num_models_per_replica=1)
    async def adapter(self, model_id: str) -> Served:
        """Put ``model_id``'s version on the base (called with ``_serving`` held)."""
        path = adapter_from_model_id(model_id)
        if self._backend.served().adapter_path != path:
            await asyncio.to_thread(self._backend.serve_adapter, path)
        return self._backend.served()

    async def describe(self) -> dict:
        """The base model, and the adapter served to requests that name none."""
        return {"model": self._backend.model_name, "default_model_id": self._default_id,
                "default_adapter_version": self._default_version()}

    def _default_version(self) -> str:
        path = adapter_from_model_id(self._default_id)
        return ZERO_SHOT if path is None else read_adapter(path).version

    async def warm(self, model_id: str) -> dict:
        """Serve ``model_id`` on this replica now. A problem comes back as its sentence, not as an exception."""
        try:
            async with self._serving:
                served = await self.adapter(model_id)
        except ModelError as exc:
            return {"error": str(exc), "adapter_error": isinstance(exc, AdapterError)}
        return {"model": served.model, "adapter_version": served.adapter_version, "replica": os.getpid()}

    async def classify(self, text: str | None) -> Prediction:
        """Label one message; the messages that arrive together are labelled as one batch."""
        return await self.classify_batch(text)

    @serve.batch
    async def classify_batch(self, texts: list[str | None]) -> list[Prediction]:
        # serve.batch splits a batch by model id: all of these ask for the same adapter version.
        model_id = serve.get_multiplexed_model_id() or self._default_id
        async with self._serving:
            await self.adapter(model_id)
            return await asyncio.to_thread(self._backend.classify, texts)


def build_app(settings: ModelSettings, options: ServeOptions):
    """The application `modbot serve` deploys: ``options.replicas`` replicas of the classifier of ``settings``."""
    deployment = ClassifierReplica.options(
        num_replicas=options.replicas,
        ray_actor_options={"num_cpus": options.num_cpus, "num_gpus": options.num_gpus},
        # Enough requests in flight per replica for a batch to fill while the previous one runs.
        max_ongoing_requests=max(8, 4 * options.max_batch_size),
    )
    return deployment.bind(settings, options)
