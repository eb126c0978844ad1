"""`modbot retrain`: the bot's retraining job from the shell (cron, or a GPU next to the bot), same gate, same registry."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from model.errors import ModbotError

EXIT_REJECTED = 3
EXIT_CANCELLED = 130


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "retrain",
        help="retrain the adapter on the moderators' corrections (what /retrain does)",
        description="Export the corrections from MODBOT_DB, train a new adapter version under MODBOT_ADAPTER_DIR "
        "from the active one, measure it next to the active one on the gold set (MODBOT_EVAL_DATA) and on "
        "held-out corrections, and promote it if it passes the gate. The running bot serves a version promoted "
        "here from its next /mod model, /retrain status or /retrain start, scheduled check or restart. Exit "
        f"status: 0 promoted, {EXIT_REJECTED} rejected by the gate, 2 refused or failed, {EXIT_CANCELLED} "
        "interrupted (Ctrl-C stops the job cleanly).",
    )
    parser.add_argument("--force", action="store_true",
                        help="run with fewer new corrections than MODBOT_RETRAIN_MIN_CORRECTIONS")
    parser.add_argument("--device", help="train on this device (auto, cpu, cuda, cuda:N); default MODBOT_DEVICE")
    parser.add_argument("--json", action="store_true", help="print the job's result as one JSON object at the end")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from bot.settings import Settings

    settings = Settings.from_env()
    if args.device:
        settings = replace(settings, retrain_options={**settings.retrain_options, "device": args.device})
    if not settings.db_path.is_file():
        raise ModbotError(f"MODBOT_DB={settings.db_path}: no such database (run the bot first, or point MODBOT_DB at it).")
    return asyncio.run(_run(settings, args))


async def _run(settings, args: argparse.Namespace) -> int:
    from bot import retrain, storage
    from model.loader import default_adapter_dir

    conn = await storage.open_database(settings.db_path)
    job = None
    try:
        active = await storage.active_version(conn)
        if active is None or active.model != settings.model.model:
            # The bot never ran with this model: register the adapter it would serve, as the bot does.
            await retrain.register_serving(conn, settings, default_adapter_dir(settings.model))
        job = await retrain.start_job(conn, settings, origin="shell", force=args.force)
        version = await storage.get_version(conn, job.number)
        _say(f"retraining version {job.number} from version {version.parent} on {version.corrections} corrections "
             f"(job files in {job.spec.job_dir})")
        shown = None
        while True:
            lines = job.poll()
            if lines:
                await storage.set_job_progress(conn, job.number, job.last.get("phase", "starting"), job.last)
            for progress in lines:
                line = retrain.describe_progress(progress)
                if line != shown:
                    _say(line)
                    shown = line
            job.enforce_cancel()
            end = retrain.outcome(job)
            if end is not None:
                break
            await asyncio.sleep(1.0)
        job_done, job = job, None
        if end.status == "promote":
            from model import read_adapter

            read_adapter(job_done.spec.out)  # complete and valid: the bot will load it
            result = await retrain.promote(conn, job_done, end)
        else:
            result = await retrain.record_end(conn, job_done, end)
        print(f"version {result.number}: {result.status}: {end.reason}")
        for line in retrain.figures_lines(result.figures):
            print(f"  {line}")
        if args.json:
            print(json.dumps({"version": result.number, "status": result.status, "reason": end.reason,
                              "figures": result.figures, "data": result.data}))
        if result.status == "active":
            return 0
        if result.status == "rejected":
            return EXIT_REJECTED
        raise ModbotError(f"the retraining job {result.status}: {end.reason}")
    except (KeyboardInterrupt, asyncio.CancelledError):
        if job is not None:
            _say("stopping the job ...")
            job.cancel()
            while job.returncode is None:
                time.sleep(0.2)
            await retrain.record_end(conn, job, retrain.outcome(job))
            _say(f"version {job.number} cancelled: nothing changed")
        return EXIT_CANCELLED
    except BaseException:
        if job is not None and job.returncode is None:
            job.kill()
            job.process.wait()
            end = retrain.outcome(job)
            await retrain.record_end(conn, job, retrain.Outcome("failed", "`modbot retrain` stopped: " + end.reason))
        raise
    finally:
        await conn.close()


def _say(line: str) -> None:
    print(f"modbot retrain: {line}", file=sys.stderr, flush=True)
