"""The scheduler lease: when one Discord application runs as several bot processes (MODBOT_SHARD_COUNT and
MODBOT_SHARD_IDS), exactly one of them runs the scheduled jobs.

Those jobs are the retention pass, the retraining schedule (MODBOT_RETRAIN_EVERY) and taking over a retraining
job whose process died. The process that holds the 'scheduler' lease in the database runs them; it renews the
lease three times per period, and another process takes it once the period has passed without a renewal (its
holder died, or hangs), so the jobs move within LEASE_S + LEASE_S / 3 of the holder's death. A holder that stops
cleanly gives the lease up, and another process takes it at its next try.

Work that lives in a server (a review card in its channel, a message to fetch again) is not leased: only the
process that runs the server's shard can reach it, so each process does it for its own servers.

One process without MODBOT_SHARD_COUNT runs no lease and no heartbeat: it runs the scheduled jobs itself.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from discord.ext import tasks

from . import storage

if TYPE_CHECKING:
    from .bot import ModBot

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
# How long the lease lasts without a renewal: the longest the scheduled jobs go without a process after their
# holder dies. A minute is nothing to a daily retention pass or an hourly schedule, and keeps the heartbeat to
# one small write every 20 s.
LEASE_S = 60.0
# The holder counts itself the holder for this share of the period after a renewal, not the whole period: it
# stops scheduling a little before another process may take the lease.
OWN_SHARE = 0.8


def holder_id(shard_ids: tuple[int, ...] | None) -> str:
    """Names this process in the leases table: host, pid and shards (for a person), a random tag (unique)."""
    shards = ",".join(map(str, shard_ids)) if shard_ids is not None else "all"
    return f"{socket.gethostname()} pid {os.getpid()} shards {shards} #{secrets.token_hex(3)}"


class SchedulerLease:
    """Takes, renews and gives up the lease for one bot; tells the cogs when it is won or lost.

    ``held`` says whether this process runs the scheduled jobs now. Winning it dispatches the
    ``scheduler_acquired`` event (the cogs catch up: a retention pass, the dead holder's retraining job),
    losing it ``scheduler_lost``. Times are the host's wall clock (``time.time``), which every process on
    the host shares.
    """

    def __init__(self, bot: ModBot, *, period_s: float | None = None) -> None:
        self.bot = bot
        self.period_s = period_s or LEASE_S
        self.holder = holder_id(bot.settings.shard_ids)
        self._held_until: float | None = None
        self._heartbeat = tasks.loop(seconds=self.period_s / 3)(self._beat)

    @property
    def held(self) -> bool:
        return self._held_until is not None and time.time() < self._held_until

    async def start(self) -> None:
        """Try once now (so the cogs loaded next know whether they schedule), then keep trying or renewing."""
        if self._heartbeat.is_running():
            return
        await self.try_take()
        self._heartbeat.start()

    async def _beat(self) -> None:
        try:
            await self.try_take()
        except Exception:  # the heartbeat must survive: another try comes in a third of the period
            log.exception("Scheduler lease: could not renew or take it")

    async def try_take(self) -> bool:
        """Renew the lease, or take it if it is free or expired; True if this process holds it now."""
        had = self.held
        previous = None if had else await storage.get_lease(self.bot.db, LEASE_NAME)
        now = time.time()
        taken = await storage.take_lease(self.bot.db, LEASE_NAME, self.holder, now=_utc(now),
                                         expires_at=_utc(now + self.period_s))
        if taken:
            self._held_until = now + self.period_s * OWN_SHARE
            if not had:
                before = ""
                if previous is not None and previous.holder != self.holder:
                    before = f"; it was held by {previous.holder} until {previous.expires_at:%H:%M:%S} UTC"
                log.info("Scheduler lease: this process (%s) runs the scheduled jobs%s", self.holder, before)
                self.bot.dispatch("scheduler_acquired")
        else:
            self._held_until = None
            if had:
                log.warning("Scheduler lease: lost (not renewed in time; another process took it): this process "
                            "stops running the scheduled jobs")
                self.bot.dispatch("scheduler_lost")
            elif previous is not None:
                log.debug("Scheduler lease: held by %s until %s", previous.holder, previous.expires_at.isoformat())
        return taken

    async def stop(self) -> None:
        """Stop renewing and give the lease up, so that another process takes it at its next try."""
        self._heartbeat.cancel()
        if self._held_until is None:
            return
        self._held_until = None
        if await storage.release_lease(self.bot.db, LEASE_NAME, self.holder):
            log.info("Scheduler lease: given up (this process is stopping)")


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
