"""The bot's side of a Ray Serve application deployed by `modbot serve` (MODBOT_BACKEND=ray).

A thin client: it sends each message to the application and gets its Prediction back; no model, and no
torch, in this process. Which adapter version the replicas use is the multiplexed model id the requests
carry, so serving another version is a matter of sending another id: the replicas load it on first use.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from .adapter import brief, read_adapter
from .backend import Served
from .config import DEFAULT_RAY_APP, MODEL_ALIASES, ModelSettings, resolve_model_name
from .errors import AdapterError, ModelError
from .predictions import ZERO_SHOT, Prediction
from .ray_app import adapter_from_model_id, adapter_model_id

log = logging.getLogger(__name__)

# How long a request may wait for its answer: the first one for a version loads it on a replica.
REQUEST_TIMEOUT_S = 300.0


class RayBackend:
    """An InferenceBackend whose model runs in the Ray Serve application ``app_name``."""

    def __init__(self, address: str | None = None, app_name: str = DEFAULT_RAY_APP,
                 timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        import ray
        from ray import serve

        self._timeout_s = timeout_s
        self._app_name = app_name
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            connect_ray(address)
        try:
            self._handle = serve.get_app_handle(app_name)
        except Exception as exc:  # Serve's words for "no such application", or no Serve at all
            self.close()
            raise ModelError(f"No Ray Serve application named {app_name!r} runs on the Ray cluster at "
                             f"{_where(address)} ({brief(exc)}). Deploy it with `modbot serve`, or set "
                             "MODBOT_RAY_APP to the name it was deployed under.") from None
        info = self._call(self._handle.describe.remote())
        self._model_name: str = info["model"]
        self._lock = threading.Lock()
        self._served = Served("ray", self._model_name, info["default_adapter_version"],
                              adapter_from_model_id(info["default_model_id"]))
        self._model_id = info["default_model_id"]
        self._handles: dict[str, object] = {}

    @classmethod
    def from_settings(cls, settings: ModelSettings) -> RayBackend:
        """The application MODBOT_RAY_APP on the Ray cluster at RAY_ADDRESS, which must serve MODBOT_MODEL."""
        backend = cls(settings.ray_address, settings.ray_app)
        expected = _model_name(settings.model)
        if expected is not None and expected != backend.model_name:
            backend.close()
            raise ModelError(f"The Ray Serve application {settings.ray_app!r} serves {backend.model_name}, but "
                             f"MODBOT_MODEL is {settings.model}: give the bot the MODBOT_MODEL that `modbot serve` "
                             "was started with (adapters and their registry belong to one model).")
        return backend

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def adapter_version(self) -> str:
        return self._served.adapter_version

    def served(self) -> Served:
        return self._served

    def classify(self, texts: Sequence[str | None]) -> list[Prediction]:
        """One request per message, sent together: the replicas batch them (and other clients' messages)."""
        handle = self._handle_for(self._model_id)
        responses = [handle.classify.remote(text) for text in texts]
        return [self._call(response) for response in responses]

    def serve_adapter(self, path: Path | None) -> Served:
        """Send ``path``'s version with every request from now on, once a replica has loaded it.

        The adapter is checked here first (AdapterError for a directory that is not a usable adapter), then
        loaded on a replica; if that fails, the version served before is kept and the replica's reason raised.
        """
        if path is not None:
            read_adapter(path)  # the clear sentence for a missing or incomplete directory, before any request
        model_id = adapter_model_id(path)
        result = self._call(self._handle_for(model_id).warm.remote(model_id))
        if "error" in result:
            error = AdapterError if result["adapter_error"] else ModelError
            raise error(result["error"])
        with self._lock:
            self._model_id = model_id
            self._served = Served("ray", self._model_name, result["adapter_version"] or ZERO_SHOT,
                                  adapter_from_model_id(model_id))
        log.info("Ray Serve app %s serves adapter %s from now on", self._app_name, result["adapter_version"])
        return self._served

    def close(self) -> None:
        """Disconnect from Ray when this backend connected (the application keeps running)."""
        if self._owns_connection:
            import ray

            ray.shutdown()
            self._owns_connection = False

    def _handle_for(self, model_id: str):
        with self._lock:
            if model_id not in self._handles:
                self._handles[model_id] = self._handle.options(multiplexed_model_id=model_id)
            return self._handles[model_id]

    def _call(self, response):
        """A response's result; Ray's errors become one sentence each."""
        from ray.exceptions import GetTimeoutError, RayError

        try:
            return response.result(timeout_s=self._timeout_s)
        except GetTimeoutError:
            raise ModelError(f"The Ray Serve application {self._app_name!r} did not answer within "
                             f"{self._timeout_s:.0f} s. Check its replicas with `serve status`.") from None
        except RayError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ModelError):
                raise type(cause)(str(cause)) from None
            raise ModelError(f"The Ray Serve application {self._app_name!r} failed to classify: "
                             f"{brief(exc)}") from None


def connect_ray(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (host:port, or ray://host:port), or the one started on this machine.

    ModelError, in one sentence, when there is none: an address nothing listens on is found out within
    seconds, before Ray would retry it for minutes.
    """
    if address and address != "auto":
        _check_listening(address)
        _use_the_clusters_token()
    import ray

    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # its INFO lines are per request and replica
    try:
        ray.init(address=address or "auto", log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ModelError(f"Ray is not reachable at {_where(address)} ({brief(exc)}). Start it with "
                         "`modbot serve`, and set RAY_ADDRESS to the address it prints.") from None


def _use_the_clusters_token() -> None:
    """Ray 2.60 clusters require a token by default (`ray.init` and `ray start` write it to ~/.ray/auth_token),
    but a client joining a given address only sends it in token mode: without this, a bot started with
    RAY_ADDRESS is refused with InvalidAuthToken by the cluster `modbot serve` started. Ray's own rule for a
    new local cluster, applied to joining one: token mode when RAY_AUTH_MODE is unset and a token exists (it
    also refreshes Ray's cached configuration, which setting the variable alone would not)."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _check_listening(address: str, timeout_s: float = 5.0) -> None:
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except ValueError:
        raise ModelError(f"RAY_ADDRESS={address!r} is not an address: use host:port (the Ray head's GCS "
                         "port, 6379 by default) or ray://host:port.") from None
    except OSError as exc:
        raise ModelError(f"Ray is not reachable at RAY_ADDRESS={address}: nothing answers there ({exc}). "
                         "Start it with `modbot serve` (or `ray start --head`) and check the address.") from None


def _model_name(model: str) -> str | None:
    """The name a backend gives the model of MODBOT_MODEL=``model`` (model.loader's), None when it cannot be
    told here (a directory on the cluster's machines only)."""
    alias = model.strip().lower()
    if alias in MODEL_ALIASES:
        return alias
    try:
        return resolve_model_name(model)[1]
    except ModelError:
        return None


def _where(address: str | None) -> str:
    return f"RAY_ADDRESS={address}" if address else "this machine (RAY_ADDRESS is not set)"

