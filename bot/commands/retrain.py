"""`modbot retrain`: the bot's retraining job from the shell (cron, or a GPU next to the bot), same gate, same registry."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

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
        "interrupted (Ctrl-C or SIGTERM stops the job cleanly). A job that keeps no adapter (interrupted, "
        "failed) leaves no message text behind: its directory keeps only its spec, progress, result and log.",
    )
    parser.add_argument("--force", action="store_true",
                        help="run with fewer new corrections than MODBOT_RETRAIN_MIN_CORRECTIONS")
    parser.add_argument("--device", help="train on this device (auto, cpu, cuda, cuda:N); default MODBOT_DEVICE")
    parser.add_argument("--json", action="store_true", help="print the job's result as one JSON object at the end")
    remote = parser.add_argument_group(
        "on another machine",
        "A GPU machine without the bot's files: --prepare on the bot's machine, copy the directory over, --run "
        "there, copy it back, --finish on the bot's machine. The job holds the registry's slot in between "
        "(/retrain cancel releases it).")
    steps = remote.add_mutually_exclusive_group()
    steps.add_argument("--prepare", type=Path, metavar="DIR",
                       help="write a self-contained job directory (corrections, active adapter, gold set, spec)")
    steps.add_argument("--run", type=Path, metavar="DIR", help="run a prepared job directory here")
    steps.add_argument("--finish", type=Path, metavar="DIR",
                       help="record a job directory that ran elsewhere: promote or reject its adapter")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from bot.settings import Settings

    if args.run is not None:  # the other machine: no database, no bot settings, only the job directory
        from training.retrain import main as run_job

        spec = args.run / "spec.json"
        if not spec.is_file():
            raise ModbotError(f"--run {args.run}: no spec.json there (make the directory with --prepare).")
        if args.device:
            data = json.loads(spec.read_text(encoding="utf-8"))
            data["options"] = {**(data.get("options") or {}), "device": args.device}
            spec.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        code = run_job(["--spec", str(spec), "--echo"])
        if code == 0:
            result = json.loads((args.run / "result.json").read_text(encoding="utf-8"))
            verdict = "passes the gate" if result["promote"] else "is rejected by the gate"
            print(f"the candidate {verdict}: {'; '.join(result['reasons'])}")
            print(f"copy {args.run} back to the bot's machine and run `modbot retrain --finish DIR` there")
        return code
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
    restore_sigterm = _stop_on_sigterm()
    try:
        if args.prepare is not None or args.finish is not None:
            return await _remote(conn, settings, args)
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
        restore_sigterm()
        await conn.close()


def _stop_on_sigterm():
    """SIGTERM (`kill`, systemd, a CI timeout) stops the job as Ctrl-C does, instead of leaving it running,
    unrecorded, with its data on disk. Returns what puts the previous handler back."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)
    stopping = False

    def stop() -> None:
        nonlocal stopping
        if not stopping:  # once: a second SIGTERM must not cut the clean-up short
            stopping = True
            task.cancel()

    loop.add_signal_handler(signal.SIGTERM, stop)

    def restore() -> None:
        loop.remove_signal_handler(signal.SIGTERM)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    return restore


async def _remote(conn, settings, args: argparse.Namespace) -> int:
    from bot import retrain, storage
    from model.loader import default_adapter_dir

    if args.prepare is not None:
        active = await storage.active_version(conn)
        if active is None or active.model != settings.model.model:
            await retrain.register_serving(conn, settings, default_adapter_dir(settings.model))
        version = await retrain.prepare_remote(conn, settings, args.prepare, force=args.force)
        print(f"prepared version {version.number} (from version {version.parent}, {version.corrections} corrections) "
              f"in {args.prepare.resolve()}")
        print("copy it to the training machine, run `modbot retrain --run DIR` there, copy it back and run "
              "`modbot retrain --finish DIR` here")
        return 0
    version, end = await retrain.finish_remote(conn, settings, args.finish)
    print(f"version {version.number}: {version.status}: {end.reason}")
    for line in retrain.figures_lines(version.figures):
        print(f"  {line}")
    if version.status == "active":
        return 0
    if version.status == "rejected":
        return EXIT_REJECTED
    raise ModbotError(f"the retraining job {version.status}: {end.reason}")


def _say(line: str) -> None:
    print(f"modbot retrain: {line}", file=sys.stderr, flush=True)
