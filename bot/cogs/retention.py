"""Retention: once a day, erase the text of flags nobody reviewed within MODBOT_RETENTION_DAYS.

Corrections keep their text: they are the training data of the next adapter. The same pass drops the ids of
messages deleted more than a week ago, kept so that nothing arriving after a deletion stores the text again.

With several bot processes, only the one holding the scheduler lease (bot.lease) runs the pass, for every
server; the cards it cannot reach (servers of other processes' shards) are left in the database for the
process that runs their shard, which rewrites them within five minutes (bot.cogs.privacy).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import discord
from discord.ext import commands, tasks

from .. import cards, storage
from ..bot import ModBot

log = logging.getLogger(__name__)

DELETED_IDS_DAYS = 7  # a classification or an edit event that follows a deletion comes within seconds


class Retention(commands.Cog):
    def __init__(self, bot: ModBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.daily.start()

    async def cog_unload(self) -> None:
        self.daily.cancel()

    @tasks.loop(hours=24)
    async def daily(self) -> None:
        if not self.bot.runs_scheduled_jobs:
            log.debug("Retention: another process runs the scheduled jobs")
            return
        try:
            await self.erase_expired()
        except Exception:  # an error must not stop the loop: it runs again tomorrow
            log.exception("Retention: erasing expired texts failed")

    @commands.Cog.listener()
    async def on_scheduler_acquired(self) -> None:
        """Taken over from a process that stopped: run the pass now, not up to a day from now."""
        await self.daily()

    async def erase_expired(self) -> list[int]:
        now = discord.utils.utcnow()
        await storage.prune_erased_messages(self.bot.db, now - timedelta(days=DELETED_IDS_DAYS))
        await storage.prune_cards_to_refresh(self.bot.db, now - timedelta(days=DELETED_IDS_DAYS))
        cutoff = now - timedelta(days=self.bot.settings.retention_days)
        flag_ids = await storage.erase_expired_texts(self.bot.db, cutoff)
        if flag_ids:
            log.info("Retention: erased the text of %d unreviewed flags older than %d days", len(flag_ids),
                     self.bot.settings.retention_days)
        for flag_id in flag_ids:
            flag = await storage.get_flag(self.bot.db, flag_id)
            if flag is None:
                continue
            if self.bot.owns_guild(flag.guild_id):
                await cards.refresh_card(self.bot, flag)
            else:  # another process runs the server's shard: it rewrites the card
                await storage.add_card_to_refresh(self.bot.db, flag, now)
        return flag_ids


async def setup(bot: ModBot) -> None:
    await bot.add_cog(Retention(bot))
