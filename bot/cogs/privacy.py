"""Erasure on request, the bot's side: `/mod forget` runs bot.forget, and the review cards that still quote
erased text are rewritten, right away for `/mod forget`, at start-up and every few minutes for `modbot forget`
(which runs beside the bot and cannot reach Discord).

Every process runs this loop, for the cards it can reach: with several bot processes (MODBOT_SHARD_IDS), a card
lives in a server that only one of them runs. The same loop re-renders the cards whose text the retention pass
of another process erased (storage.cards_to_refresh).
"""

from __future__ import annotations

import logging

import discord
from discord.ext import commands, tasks

from .. import cards, storage
from ..bot import ModBot
from ..forget import Report, forget_everywhere

log = logging.getLogger(__name__)

ERASE_CARDS_EVERY_S = 300.0  # how soon a card erased by `modbot forget` is rewritten while the bot runs


class Privacy(commands.Cog):
    def __init__(self, bot: ModBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.queued_cards.start()

    async def cog_unload(self) -> None:
        self.queued_cards.cancel()

    @tasks.loop(seconds=ERASE_CARDS_EVERY_S)
    async def queued_cards(self) -> None:
        try:
            await self.erase_cards()
        except Exception:  # the loop must survive: it runs again in a few minutes
            log.exception("Rewriting the review cards of erased messages failed")

    @queued_cards.before_loop
    async def _until_ready(self) -> None:
        await self.bot.wait_until_ready()  # the channels are known from then on

    async def erase_cards(self) -> int:
        """Rewrite the queued cards without their text and buttons; returns how many wait for another try."""
        waiting = 0
        some_shards = self.bot.settings.shard_ids is not None  # other processes run the other servers
        for channel_id, message_id in await storage.cards_to_erase(self.bot.db):
            channel = self.bot.get_channel(channel_id)
            if channel is None and some_shards:
                continue  # in a server of another process (or a channel deleted since: ids only, kept)
            if channel is not None:
                try:
                    await channel.get_partial_message(message_id).edit(embed=cards.render_erased(), view=None)
                except discord.NotFound:
                    pass  # the card was deleted: nothing quotes the text any more
                except discord.Forbidden as exc:
                    log.warning("Cannot rewrite the review card %d in channel %d, which quotes erased text; "
                                "delete it by hand: %s", message_id, channel_id, exc)
                except discord.HTTPException as exc:
                    log.warning("Could not rewrite the review card %d of an erased message (tried again in a few "
                                "minutes): %s", message_id, exc)
                    waiting += 1
                    continue
            await storage.card_erased(self.bot.db, channel_id, message_id)
        for flag_id, guild_id in await storage.cards_to_refresh(self.bot.db):
            if not self.bot.owns_guild(guild_id):
                continue
            flag = await storage.get_flag(self.bot.db, flag_id)
            if flag is not None:
                await cards.refresh_card(self.bot, flag)
            await storage.card_refreshed(self.bot.db, flag_id)
        return waiting

    async def forget(self, requested_by: int, *, user_id: int | None = None,
                     message_id: int | None = None) -> tuple[Report, int]:
        """Erase everywhere (bot.forget), then rewrite the cards now. Returns the report and the cards left."""
        report = await forget_everywhere(self.bot.db, self.bot.settings, user_id=user_id, message_id=message_id,
                                         requested_by=str(requested_by))
        return report, await self.erase_cards()


async def setup(bot: ModBot) -> None:
    await bot.add_cog(Privacy(bot))
