"""How many writes one SQLite file in WAL mode takes from 1, 2 and 4 bot processes at once: the ceiling of
several bot processes on one host (MODBOT_SHARD_COUNT / MODBOT_SHARD_IDS), and when PostgreSQL is needed.

    .venv/bin/python bench/sqlite_writers.py [--processes 1 2 4] [--seconds 10] [--flag-every 10]
                                             [--out bench/results/sqlite_writers.json]

Each process opens the database with the bot's own code (``storage.open_database``: WAL, synchronous=NORMAL,
a 5 s busy timeout, the retry on "database is locked") and writes what the bot writes for each message, as
fast as it can for ``--seconds``: ``storage.add_prediction`` for every message, and for one in ``--flag-every``
the flag and its card (``add_flag``, ``set_flag_card``), as a flagged message adds. The processes start at the
same instant on a fresh database file; the first also renews the scheduler lease every 20 s as the holder does.

Figures, per run: messages stored per second (all processes together, and per process), statements per
second, and the latency of one message's writes (p50, p99, max, in ms, ``time.perf_counter`` around the
awaits: the aiosqlite thread hop, SQLite's write lock and the retries while another process holds it).
The machine's cores and load average are recorded beside them: on a 2-core machine shared with others, 4
writer processes also compete for the CPU, so the figures are a floor for a dedicated host.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import percentile  # noqa: E402

RESULTS = REPO / "bench" / "results" / "sqlite_writers.json"


async def write(db: Path, index: int, start_at: float, seconds: float, flag_every: int) -> dict:
    from bot import storage
    from bot.lease import LEASE_NAME, LEASE_S
    from model import Prediction

    conn = await storage.open_database(db)
    hate = Prediction("hate", {"hate": 0.9, "offensive": 0.07, "neutral": 0.03}, "bench", "v1")
    neutral = Prediction("neutral", {"hate": 0.02, "offensive": 0.08, "neutral": 0.9}, "bench", "v1")
    latencies: list[float] = []
    statements = 0
    next_renewal = 0.0
    await asyncio.sleep(max(0.0, start_at - time.time()))
    end = time.time() + seconds
    n = 0
    while time.time() < end:
        n += 1
        flagged = n % flag_every == 0
        now = datetime.now(UTC)
        began = time.perf_counter()
        record = await storage.add_prediction(
            conn, guild_id=1000 + index, channel_id=2000 + index, message_id=index * 10**9 + n, author_id=n % 500,
            prediction=hate if flagged else neutral, text="some message text" if flagged else None, now=now)
        statements += 1
        if flagged:
            flag = await storage.add_flag(conn, record, label="hate", action="flag", now=now)
            await storage.set_flag_card(conn, flag.id, 3000 + index, index * 10**9 + n)
            statements += 3  # add_flag reads the flag back
        latencies.append(time.perf_counter() - began)
        if index == 0 and time.time() >= next_renewal:
            await storage.take_lease(conn, LEASE_NAME, "bench", now=now, expires_at=now + timedelta(seconds=LEASE_S))
            next_renewal = time.time() + LEASE_S / 3
    await conn.close()
    return {"messages": n, "statements": statements, "latencies_ms": [round(x * 1000, 3) for x in latencies]}


def run(processes: int, seconds: float, flag_every: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="modbot-writers-") as tmp:
        db = Path(tmp) / "modbot.sqlite3"
        subprocess.run([sys.executable, __file__, "--migrate", str(db)], check=True)  # not timed
        start_at = time.time() + 3.0  # every process imported and connected by then
        workers = [
            subprocess.Popen([sys.executable, __file__, "--worker", str(i), "--db", str(db), "--start-at",
                              str(start_at), "--seconds", str(seconds), "--flag-every", str(flag_every)],
                             stdout=subprocess.PIPE, text=True)
            for i in range(processes)
        ]
        results = []
        for worker in workers:
            out, _ = worker.communicate()
            if worker.returncode != 0:
                raise SystemExit(f"error: a writer process failed (exit status {worker.returncode})")
            results.append(json.loads(out))
    latencies = sorted(x for r in results for x in r["latencies_ms"])
    messages = sum(r["messages"] for r in results)
    return {
        "processes": processes,
        "seconds": seconds,
        "messages": messages,
        "messages_per_s": round(messages / seconds, 1),
        "messages_per_s_per_process": [round(r["messages"] / seconds, 1) for r in results],
        "statements_per_s": round(sum(r["statements"] for r in results) / seconds, 1),
        "latency_ms": {"p50": statistics.median(latencies), "p99": percentile(latencies, 99),
                       "max": latencies[-1]},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--flag-every", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--migrate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.migrate is not None:
        from bot import storage

        async def migrate() -> None:
            await (await storage.open_database(args.migrate)).close()

        asyncio.run(migrate())
        return 0
    if args.worker is not None:
        result = asyncio.run(write(args.db, args.worker, args.start_at, args.seconds, args.flag_every))
        print(json.dumps(result))
        return 0

    load_before = os.getloadavg()
    rows = []
    for processes in args.processes:
        row = run(processes, args.seconds, args.flag_every)
        rows.append(row)
        print(f"{processes} process(es): {row['messages_per_s']:.0f} messages/s, p99 {row['latency_ms']['p99']:.1f} ms",
              file=sys.stderr)
    import sqlite3

    summary = {
        "command": " ".join([".venv/bin/python", "bench/sqlite_writers.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "sqlite": sqlite3.sqlite_version,
        "machine": {"cores": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "writes_per_message": f"add_prediction; 1 in {args.flag_every} also add_flag and set_flag_card",
        "rows": rows,
    }
    print("| processes | messages/s (all) | per process | statements/s | p50 ms | p99 ms | max ms |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        lat = row["latency_ms"]
        print(f"| {row['processes']} | {row['messages_per_s']:.0f} | "
              f"{', '.join(f'{x:.0f}' for x in row['messages_per_s_per_process'])} | {row['statements_per_s']:.0f} | "
              f"{lat['p50']:.2f} | {lat['p99']:.2f} | {lat['max']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
