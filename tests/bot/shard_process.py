"""One bot process of a sharded application, for test_shard_processes.py: the real bot (create_bot with
MODBOT_SHARD_COUNT / MODBOT_SHARD_IDS settings, so an AutoShardedBot) and its real scheduler lease, on the
database file given, with the keyword stand-in for the model.

    python -m tests.bot.shard_process --db FILE --shard N --shards 2 --lease-s 6 [--adapter-dir DIR] [--model-from-env]

With --model-from-env the model is what the environment says (MODBOT_MODEL, MODBOT_BACKEND=ray, RAY_ADDRESS ...),
as for `modbot run`, instead of the keyword stand-in. That backend is called outside SimCord's virtual clock
(RealClockBackend), as a real bot's would be.

SimCord's Discord lives in one process, so each shard process has its own: a server on its shard, with a
review channel, where a member posts a hateful message (which is all a shard of the real Discord would show
it). Virtual time follows real time, so the lease's heartbeat runs as it would in production.

Prints JSON lines on stdout: {"ready": ..., "holder": ..., "guild": ..., "message": ...} once the message is
classified, then {"scheduler": true|false} whenever this process starts or stops running the scheduled jobs.
Logs go to stderr. SIGTERM stops it cleanly (the bot closes and gives the lease up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import logging
import signal
import sys
import time
from pathlib import Path

import discord
import simcord

from bot import Settings, create_bot, model_manager, storage
from bot.lease import SchedulerLease
from model import ModelSettings

from .conftest import HATE_WORD, KeywordClassifier


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


_create_backend = model_manager.create_backend


class RealClockBackend:
    """The backend the settings choose (for Ray Serve, model.ray_backend's thin client), each call of it run in an
    empty context instead of the caller's.

    SimCord replaces time.monotonic for the whole process and answers with its virtual clock whenever the
    caller's context belongs to its bot, and asyncio.to_thread carries the bot's context into the thread that
    calls the backend. From there it reached Ray Serve's router, whose event loop runs the tasks a request
    creates in the context of the thread that sent it: their timers (the 0.1-1 s deadline for a replica's queue
    length, the back-off between tries) were set on the virtual clock, far behind the loop's real one, and fired
    at once. The router then probed and cancelled without pause (thousands of times a second, "Failed to get
    queue length ... within 0.1s" logged 2 ms after the request), each cancellation an error the replica
    serialises, until the replica missed its health checks and Serve replaced it; the second process's bot
    never got its model. No clock but the real one exists in a real bot's process.
    """

    def __init__(self, settings) -> None:
        self._backend = contextvars.Context().run(_create_backend, settings)

    def __getattr__(self, name: str):
        value = getattr(self._backend, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            return contextvars.Context().run(value, *args, **kwargs)

        return call


async def main(args: argparse.Namespace) -> None:
    model = ModelSettings.from_env() if args.model_from_env else ModelSettings(use_default_adapter=False)
    settings = Settings(db_path=Path(args.db), adapter_dir=Path(args.adapter_dir), batch_wait_ms=2,
                        model=model, sync_commands=True, shard_count=args.shards, shard_ids=(args.shard,),
                        log_level="INFO")
    if args.model_from_env:
        model_manager.create_backend = RealClockBackend  # the bot still makes, owns and closes its backend
    bot = create_bot(settings, backend=None if args.model_from_env else KeywordClassifier())
    bot.scheduler = SchedulerLease(bot, period_s=args.lease_s)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with simcord.run(bot) as env:
        last = time.monotonic()  # the bot's clock is brought up to the real one after each step
        for n in range(10 * args.shard):  # the two simulated Discords count ids alike: keep the processes' apart
            env.create_user(f"filler {n}")
        guild = env.create_guild(f"shard {args.shard}", shard_id=args.shard)
        general = guild.create_text_channel("general")
        modlog = guild.create_text_channel("mod-log")
        admin = guild.add_member(env.create_user("alice"), roles=[
            guild.create_role("Admins", permissions=discord.Permissions(manage_guild=True, manage_messages=True))])
        member = guild.add_member(env.create_user("bob"))
        await admin.slash(general, "mod setup", review_channel=modlog)
        message = await member.send(general, f"{HATE_WORD} on shard {args.shard}")
        stored = await storage.latest_prediction(bot.db, message.id)
        say(ready=True, holder=bot.scheduler.holder, guild=guild.id, message=message.id,
            label=stored.label if stored else None, cards=len([m for m in modlog.history() if m.embeds]),
            shards=sorted(bot.shards), model=stored.model if stored else None,
            adapter_version=stored.adapter_version if stored else None, torch_loaded="torch" in sys.modules)
        held = None
        while not stop.is_set():
            now = time.monotonic()
            await env.advance_time(now - last)  # the bot's clock follows the real one
            last = now
            if bot.runs_scheduled_jobs != held:
                held = bot.runs_scheduled_jobs
                say(scheduler=held)
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.2)
            except TimeoutError:
                pass
    await bot.close()  # as `modbot run` does on SIGTERM: among the rest, it gives the lease up
    say(stopped=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--adapter-dir", default="adapters")
    parser.add_argument("--shard", type=int, required=True)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--lease-s", type=float, default=6.0)
    parser.add_argument("--model-from-env", action="store_true")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(parser.parse_args()))
