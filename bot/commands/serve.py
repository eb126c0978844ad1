"""`modbot serve`: deploy the classifier as a Ray Serve application, for bots started with MODBOT_BACKEND=ray."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from model.errors import ModbotError

# How a replica's traceback names modbot's own errors (model.errors.AdapterError: <the sentence>).
_MODBOT_ERROR = re.compile(r"model\.errors\.\w+Error: (.+)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the classifier from a Ray Serve application",
        description="Deploy the configured model and adapter (MODBOT_MODEL, MODBOT_ADAPTER, ...) as a Ray Serve "
        "application: replicas that each load the base model once, batch the messages they receive and serve "
        "the adapter version each request names. With RAY_ADDRESS, it is deployed on that Ray cluster and "
        "the command returns; without, a Ray instance is started on this machine and served until Ctrl-C. "
        "Bots use it with MODBOT_BACKEND=ray and RAY_ADDRESS.",
    )
    parser.add_argument("--replicas", type=int, default=1, help="replicas of the model (default 1)")
    parser.add_argument("--num-cpus", type=float, default=1.0,
                        help="CPUs each replica reserves, and its torch threads (default 1)")
    parser.add_argument("--num-gpus", type=float, default=0.0,
                        help="GPUs each replica reserves; a fraction shares one (default 0: CPU only)")
    parser.add_argument("--max-batch-size", type=int, default=16,
                        help="most messages a replica labels in one batch (default 16)")
    parser.add_argument("--batch-wait-timeout", type=float, default=0.01, metavar="SECONDS",
                        help="how long a replica waits for a batch to fill (default 0.01 s)")
    parser.add_argument("--app", default=None,
                        help="the application's name (default MODBOT_RAY_APP, else modbot)")
    parser.add_argument("--stop", action="store_true",
                        help="remove the application from the Ray cluster at RAY_ADDRESS instead")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from model import ModelSettings

    settings = ModelSettings.from_env()
    app_name = args.app or settings.ray_app
    if args.stop:
        return _stop(settings.ray_address, app_name)
    from model.adapter import read_adapter
    from model.loader import default_adapter_dir
    from model.ray_app import ServeOptions

    options = ServeOptions(replicas=args.replicas, num_cpus=args.num_cpus, num_gpus=args.num_gpus,
                           max_batch_size=args.max_batch_size, batch_wait_timeout_s=args.batch_wait_timeout)
    settings = _for_replicas(settings)
    adapter = default_adapter_dir(settings)
    if adapter is not None:
        read_adapter(adapter)  # a bad adapter in one sentence here, not in a replica's log

    import ray
    from ray import serve

    from model.ray_app import build_app
    from model.ray_backend import connect_ray

    address = settings.ray_address
    if address:
        connect_ray(address)
    else:
        print("modbot: starting a Ray instance on this machine ...", file=sys.stderr)
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        address = ray.get_runtime_context().gcs_address
    quiet = logging.getLogger("ray.serve")  # its INFO lines are per request and replica
    quiet.setLevel(logging.WARNING)
    serve.start(proxy_location="Disabled")
    quiet.setLevel(logging.WARNING)  # again: starting Serve configures its logger
    _check_resources(options, app_name)
    print(f"modbot: deploying {options.replicas} replica(s) of {settings.model} "
          f"({options.num_cpus:g} CPU, {options.num_gpus:g} GPU each) as {app_name!r} ...", file=sys.stderr)
    try:
        serve.run(build_app(settings, options), name=app_name, route_prefix=None)
    except Exception as exc:  # a replica that failed to start: Ray retried it, then gave up
        raise ModbotError(f"The Ray Serve application {app_name!r} could not start: {_replica_error(app_name, exc)}"
                          ) from None
    info = serve.get_app_handle(app_name).describe.remote().result(timeout_s=60)
    print(f"modbot: Ray Serve application {app_name!r} serves {info['model']} with adapter "
          f"{info['default_adapter_version']}.")
    print(f"modbot: start bots with MODBOT_BACKEND=ray RAY_ADDRESS={address}"
          + (f" MODBOT_RAY_APP={app_name}" if app_name != settings.ray_app else ""))
    if settings.ray_address:
        return 0  # the application lives on in the cluster
    print("modbot: serving until Ctrl-C (or SIGTERM).", file=sys.stderr)
    _wait_for_stop()
    print("modbot: stopping the application and Ray ...", file=sys.stderr)
    serve.shutdown()
    ray.shutdown()
    return 0


def _for_replicas(settings):
    """The settings with paths made absolute: a replica's working directory is not this one's."""
    from model.config import resolve_model_name

    kind, target = resolve_model_name(settings.model)
    if kind == "local":
        settings = replace(settings, model=target)
    if settings.adapter is not None:
        settings = replace(settings, adapter=Path(settings.adapter).expanduser().resolve())
    return replace(settings, cache_dir=Path(settings.cache_dir).expanduser().resolve())


def _check_resources(options, app_name: str) -> None:
    """Refuse replicas the cluster cannot place: Serve would wait for them without end."""
    import ray
    from ray import serve

    total, free = ray.cluster_resources(), ray.available_resources()
    # Replacing a running application frees what its replicas hold; a new one gets only what is free.
    new = app_name not in serve.status().applications
    for name, each in (("CPU", options.num_cpus), ("GPU", options.num_gpus)):
        needed = each * options.replicas
        if needed > total.get(name, 0):
            raise ModbotError(f"{options.replicas} replica(s) with {each:g} {name} each need {needed:g} {name}s, "
                              f"but the Ray cluster has {total.get(name, 0):g}: lower --replicas or "
                              f"--num-{name.lower()}s, or add nodes.")
        if new and needed > free.get(name, 0):
            raise ModbotError(f"{options.replicas} replica(s) with {each:g} {name} each need {needed:g} {name}s, "
                              f"but only {free.get(name, 0):g} of the Ray cluster's {total.get(name, 0):g} are free "
                              "(other applications or tasks hold the rest): lower --replicas or "
                              f"--num-{name.lower()}s, or stop what holds them.")


def _stop(address: str | None, app_name: str) -> int:
    from ray import serve

    from model.ray_backend import connect_ray

    if not address:
        raise ModbotError("--stop needs RAY_ADDRESS: a `modbot serve` without it stops with Ctrl-C.")
    connect_ray(address)
    if app_name not in serve.status().applications:
        raise ModbotError(f"No Ray Serve application named {app_name!r} runs at RAY_ADDRESS={address}.")
    serve.delete(app_name)
    print(f"modbot: removed the Ray Serve application {app_name!r}.")
    return 0


def _wait_for_stop() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass


def _replica_error(app_name: str, exc: BaseException) -> str:
    """Why the replicas did not start: the sentence of modbot's own error in a replica, if that was it."""
    from ray import serve

    try:
        deployments = serve.status().applications[app_name].deployments
        messages = [deployment.message for deployment in deployments.values() if deployment.message]
    except Exception:  # Serve itself is gone: its own error is all there is
        messages = []
    for message in messages + [str(exc)]:
        ours = _MODBOT_ERROR.findall(message)
        if ours:
            return ours[-1].strip()
    lines = [line.strip() for line in "\n".join(messages + [str(exc)]).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
