"""In-process against Ray Serve: what the hop to a Ray Serve application costs per message, on this machine.

    .venv/bin/python bench/serve.py [--messages 200] [--data data/seed_val.csv] [--batch 16]

One run, the same messages (the first 200 of data/seed_val.csv), the default model with its shipped adapter
(ModelSettings() defaults: SmolLM2-135M, CPU, fp32), in this order:

- in-process: model.LocalBackend in this process, as `modbot run` with MODBOT_BACKEND=local, with torch on
  every core;
- Ray Serve, 1 replica: a local Ray instance (started here, with as many CPUs as the machine has) serving the
  application `modbot serve` deploys (model.ray_app), its one replica reserving every core, reached through
  model.ray_backend.RayBackend as a bot with MODBOT_BACKEND=ray reaches it;
- Ray Serve, 2 replicas: the same, each replica reserving half the cores;
- in-process again: on a machine shared with other jobs, the two in-process figures bracket the Ray ones
  and show how much the machine's speed moved during the run.

Each is warmed up, then sent the messages as the bot sends them, in batches of ``--batch`` one after the
other (a batch's messages go to the application as one request each; its replicas batch them again, up to
16 or what arrived within 10 ms). A message's latency is its batch's round trip. The hop's cost per message
is (Ray Serve's wall time - in-process wall time, the mean of both) / messages, for 1 replica, where both use
the same cores; the bare round trip of a request that runs no model is measured too. The labels must be
identical across the backends; the run fails otherwise. Figures go to bench/results/serve.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import percentile  # noqa: E402

RESULTS = REPO / "bench" / "results" / "serve.json"
APP = "modbot-bench"


def measure(backend, texts: list[str], batch: int) -> tuple[dict, list]:
    """Classify ``texts`` in batches of ``batch``, one after the other; figures and the predictions."""
    predictions, latencies = [], []
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        t = time.perf_counter()
        predictions += backend.classify(chunk)
        latencies += [time.perf_counter() - t] * len(chunk)
    total = time.perf_counter() - started
    latencies.sort()
    return {
        "messages": len(texts),
        "seconds": total,
        "messages_per_s": len(texts) / total,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 99),
        "adapter": backend.adapter_version,
    }, predictions


def bare_round_trip_ms(handle, requests: int) -> float:
    """The hop alone: a request that runs no model (``describe``) and its answer, one after the other."""
    started = time.perf_counter()
    for _ in range(requests):
        handle.describe.remote().result(timeout_s=60)
    return 1000 * (time.perf_counter() - started) / requests


def in_process(settings, texts: list[str], batch: int) -> tuple[dict, list]:
    from model import LocalBackend

    local = LocalBackend.from_settings(settings)
    try:
        local.classify(texts[: 2 * batch])  # warm up: serving copy, prefix cache
        return measure(local, texts, batch)
    finally:
        local.close()


def ray_serve(settings, texts: list[str], batch: int, replicas: int, cpus: int) -> tuple[dict, list]:
    from ray import serve

    from model.ray_app import ServeOptions, build_app
    from model.ray_backend import RayBackend

    options = ServeOptions(replicas=replicas, num_cpus=cpus / replicas, max_batch_size=16, batch_wait_timeout_s=0.01)
    started = time.perf_counter()
    serve.run(build_app(settings, options), name=APP, route_prefix=None)
    deploy_s = time.perf_counter() - started
    backend = RayBackend(app_name=APP)
    try:
        for _ in range(2 * replicas):  # every replica: serving copy, prefix cache
            backend.classify(texts[:batch])
        figures, predictions = measure(backend, texts, batch)
        figures["bare_round_trip_ms"] = bare_round_trip_ms(serve.get_app_handle(APP), len(texts))
    finally:
        backend.close()
        serve.delete(APP)
    return {**figures, "deploy_s": deploy_s, "replicas": replicas, "num_cpus_each": options.num_cpus}, predictions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "seed_val.csv")
    parser.add_argument("--batch", type=int, default=16, help="messages the client sends at once (default 16)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"error: {args.data}: no such file.", file=sys.stderr)
        return 1

    import model  # noqa: F401  (sets OMP_WAIT_POLICY before torch starts)
    from model import ModelSettings
    from training.formats import read_examples

    load_at_start = os.getloadavg()
    texts = [example.text for example in read_examples(args.data)][: args.messages]
    cpus = os.cpu_count() or 1
    settings = ModelSettings(device="cpu", quantization="none")

    rows, labels = [], {}
    figures, predictions = in_process(settings, texts, args.batch)
    rows.append({"name": "in-process (LocalBackend)", **figures})
    labels[rows[-1]["name"]] = [p.label for p in predictions]
    print(f"in-process: {figures['messages_per_s']:.1f} msg/s", file=sys.stderr)

    import ray
    from ray import serve

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        serve.start(proxy_location="Disabled")
        for replicas in (1, 2):
            figures, predictions = ray_serve(settings, texts, args.batch, replicas, cpus)
            name = f"Ray Serve, {replicas} replica{'s' if replicas > 1 else ''} ({figures['num_cpus_each']:g} CPU each)"
            rows.append({"name": name, **figures})
            labels[name] = [p.label for p in predictions]
            print(f"{name}: {figures['messages_per_s']:.1f} msg/s", file=sys.stderr)
    finally:
        serve.shutdown()
        ray.shutdown()
    # In-process again: the two in-process figures bracket the Ray ones and show how much the machine moved.
    figures, predictions = in_process(settings, texts, args.batch)
    rows.append({"name": "in-process again, after Ray", **figures})
    labels[rows[-1]["name"]] = [p.label for p in predictions]

    in_process_s = statistics.mean([rows[0]["seconds"], rows[-1]["seconds"]])
    hop_ms = 1000 * (rows[1]["seconds"] - in_process_s) / len(texts)
    reference = labels["in-process (LocalBackend)"]
    identical = all(value == reference for value in labels.values())
    differing = sorted({i for value in labels.values() for i, label in enumerate(value) if label != reference[i]})
    summary = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": str(args.data.relative_to(REPO) if args.data.is_relative_to(REPO) else args.data),
        "messages": len(texts),
        "client_batch": args.batch,
        "cpus": cpus,
        "load_average_at_start": load_at_start,  # other jobs on a shared machine show here
        "load_average_at_end": os.getloadavg(),
        "model": settings.model,
        "rows": rows,
        "hop_ms_per_message": hop_ms,
        "labels_identical": identical,
        "messages_with_differing_labels": differing,
        "label_counts": {label: reference.count(label) for label in sorted(set(reference))},
    }
    print(f"| backend ({len(texts)} messages, batches of {args.batch}) | messages/s | p50 ms | p99 ms |\n"
          "| --- | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['name']} | {row['messages_per_s']:.1f} | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} |")
    print(f"\nthe hop to Ray Serve: {hop_ms:+.1f} ms per message (1 replica against in-process, same cores); "
          "a request that runs no model takes " + ", ".join(f"{row['bare_round_trip_ms']:.1f} ms" for row in rows[1:3])
          + " there and back (1 and 2 replicas)")
    print(f"labels identical across the backends: {'yes' if identical else 'NO, messages ' + str(differing)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
