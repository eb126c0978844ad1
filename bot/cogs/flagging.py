"""Flagging: classify every new or edited message, store the prediction, act, and post a review card."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import discord
from discord.ext import commands

from model.prompt import has_content

from .. import cards, storage
from ..bot import ModBot
from ..messages import message_text
from ..service import QueueFull, ServiceClosed, ServingPaused

log = logging.getLogger(__name__)

# Message types that carry text a member wrote.
USER_MESSAGE_TYPES = (discord.MessageType.default, discord.MessageType.reply)
# Recorded messages classified at once: after a long retraining pause there may be thousands, more than the
# classification queue holds (MODBOT_QUEUE_SIZE), and each may have to be fetched from Discord again.
PENDING_AT_ONCE = 64


class Flagging(commands.Cog):
    def __init__(self, bot: ModBot) -> None:
        self.bot = bot
        # Messages the bot deleted itself (the delete and timeout actions): their text is kept for review.
        self._deleted_by_us: set[int] = set()
        self._resumed = False
        self._pending_lock = asyncio.Lock()  # one pass over the recorded messages at a time

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        if not self._resumed:  # once per start, not at every reconnection
            self._resumed = True
            await self.classify_pending()

    @commands.Cog.listener()
    async def on_classification_resumed(self) -> None:
        """The model is back after a retraining job had its GPU (bot.model_manager): classify what arrived."""
        await self.classify_pending()

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        await self.check(message, edited=False)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        before = payload.cached_message
        if before is not None and message_text(before) == message_text(payload.message):
            return  # an embed unfurled, a pin: the text did not change
        await self.check(payload.message, edited=True)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self.forget(payload.message_id)

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if payload.guild_id is None:
            return
        for message_id in payload.message_ids:
            await self.forget(message_id)

    # ------------------------------------------------------------------ classification

    async def check(self, message: discord.Message, *, edited: bool) -> None:
        with self.bot.handling_message():  # a shutdown lets this finish before it closes the database
            try:
                await self._check(message, edited=edited)
            except storage.StorageError as exc:  # another process held the database for minutes
                log.error("Message %d in channel %d was not stored: %s", message.id, message.channel.id, exc)

    async def _check(self, message: discord.Message, *, edited: bool) -> None:
        if message.guild is None or message.author.bot or message.webhook_id is not None:
            return
        text = message_text(message)  # forwards and polls carry their text outside message.content
        if message.type not in USER_MESSAGE_TYPES or not has_content(text):
            return
        config = await storage.get_guild_config(self.bot.db, message.guild.id)
        channel = message.channel
        channel_ids = {channel.id, getattr(channel, "parent_id", None), getattr(channel, "category_id", None)}
        parent = getattr(channel, "parent", None)
        if parent is not None:
            channel_ids.add(getattr(parent, "category_id", None))
        channel_ids.discard(None)
        if config.review_channel_id in channel_ids:
            return  # moderators discuss flagged messages there
        role_ids = [role.id for role in getattr(message.author, "roles", ())]
        if config.is_exempt(channel_ids, role_ids):
            return
        if edited and await storage.is_erased(self.bot.db, message.id):
            # An edit event that arrived after the deletion: not worth a classification. New messages skip
            # this query; add_prediction refuses to store any message deleted meanwhile.
            return
        try:
            prediction = await self.bot.service.classify(text)
        except QueueFull:  # the service logs the drops, a few lines per burst
            log.debug("Message %d in channel %d was not classified: the queue is full", message.id, channel.id)
            return
        except (ServiceClosed, ServingPaused):  # the bot is stopping, or a retraining job has the model's GPU:
            # recorded, and classified at the next start or when classification resumes
            await storage.add_pending_message(self.bot.db, guild_id=message.guild.id, channel_id=channel.id,
                                              message_id=message.id, edited=edited, now=discord.utils.utcnow())
            return
        label = config.flag_label(prediction.probabilities)
        log.debug("Message %d: %s %s", message.id, prediction.label, prediction.probabilities)
        record = await storage.add_prediction(
            self.bot.db,
            guild_id=message.guild.id,
            channel_id=channel.id,
            message_id=message.id,
            author_id=message.author.id,
            prediction=prediction,
            text=text if label else None,
            now=discord.utils.utcnow(),
        )
        if record is None:  # deleted while it was being classified: nothing is stored, no card is posted
            log.debug("Message %d in channel %d was deleted before its classification was stored", message.id,
                      channel.id)
            return
        if label is None:
            return
        if edited and await storage.flag_for_message(self.bot.db, message.id) is not None:
            return  # one card per message: the card already posted shows what was flagged
        flag = await storage.add_flag(
            self.bot.db, record, label=label, action=config.actions[label], now=discord.utils.utcnow()
        )
        log.info("Flagged message %d in channel %d as %s (%.2f): flag %d", message.id, channel.id, label,
                 prediction.probabilities[label], flag.id)
        if flag.action in ("delete", "timeout"):
            result = await self.act(message, flag, config.timeout_minutes[label])
            await storage.set_flag_action_result(self.bot.db, flag.id, result)
            flag = await storage.get_flag(self.bot.db, flag.id)
        if config.review_channel_id is None:
            return  # stored, shown by /mod queue; /mod tells moderators to set a review channel
        review_channel = self.bot.get_channel(config.review_channel_id)
        if review_channel is None:
            log.warning("Guild %d: the review channel %d no longer exists", message.guild.id,
                        config.review_channel_id)
            return
        await cards.post_card(self.bot, flag, review_channel)

    async def act(self, message: discord.Message, flag: storage.Flag, minutes: int) -> str:
        """Delete the message and, for ``timeout``, time its author out. Returns what happened."""
        done = []
        self._deleted_by_us.add(message.id)
        try:
            await message.delete()
            done.append("message deleted")
        except discord.NotFound:
            self._deleted_by_us.discard(message.id)
            done.append("the message was already deleted")
        except discord.HTTPException as exc:
            self._deleted_by_us.discard(message.id)
            log.warning("Could not delete flagged message %d: %s", message.id, exc)
            done.append(f"could not delete the message ({exc.text or exc.status})")
        if flag.action == "timeout":
            member = message.author
            if not isinstance(member, discord.Member):
                done.append("could not time out the author (no longer a member)")
                return "; ".join(done)
            try:
                await member.timeout(
                    timedelta(minutes=minutes), reason=f"modbot: flagged as {flag.label} (flag {flag.id})"
                )
                done.append(f"author timed out for {minutes} min")
            except discord.HTTPException as exc:
                log.warning("Could not time out the author of flagged message %d: %s", message.id, exc)
                done.append(f"could not time out the author ({exc.text or exc.status})")
        return "; ".join(done)

    async def classify_pending(self) -> None:
        """Classify the recorded messages: those the last shutdown left unclassified, and those that arrived while
        a retraining job had the model's GPU. Each is taken from discord.py's message cache, or fetched again."""
        async with self._pending_lock:
            # With several processes, each classifies the messages of its own shards' servers.
            pending = [item for item in await storage.pending_messages(self.bot.db)
                       if self.bot.owns_guild(item.guild_id)]
            if not pending:
                return
            log.info("Classifying %d recorded messages (left by the last shutdown, or that arrived while "
                     "classification was paused)", len(pending))
            cached = {message.id: message for message in self.bot.cached_messages}
            for start in range(0, len(pending), PENDING_AT_ONCE):
                if self.bot.service.paused or self.bot.service.closed:
                    return  # the rest stay recorded for the next resume or start
                await asyncio.gather(*(self._classify_pending(item, cached.get(item.message_id))
                                       for item in pending[start:start + PENDING_AT_ONCE]))

    async def _classify_pending(self, item: storage.PendingMessage, message: discord.Message | None = None) -> None:
        # Removed first: check() records it again if the bot stops (or pauses) before it is classified.
        await storage.remove_pending_message(self.bot.db, item.message_id)
        if message is not None:
            await self.check(message, edited=item.edited)
            return
        try:
            channel = self.bot.get_channel(item.channel_id) or await self.bot.fetch_channel(item.channel_id)
            message = await channel.fetch_message(item.message_id)
        except (discord.NotFound, discord.Forbidden) as exc:
            log.debug("Message %d left by the last shutdown is gone or out of reach: %s", item.message_id, exc)
            return
        except discord.HTTPException as exc:
            log.warning("Could not fetch message %d left by the last shutdown (%s); the next start tries again",
                        item.message_id, exc)
            await storage.add_pending_message(self.bot.db, guild_id=item.guild_id, channel_id=item.channel_id,
                                              message_id=item.message_id, edited=item.edited,
                                              now=discord.utils.utcnow())
            return
        await self.check(message, edited=item.edited)

    # ------------------------------------------------------------------ deletions

    async def forget(self, message_id: int) -> None:
        if message_id in self._deleted_by_us:
            self._deleted_by_us.discard(message_id)
            return
        for flag_id in await storage.forget_message(self.bot.db, message_id, discord.utils.utcnow()):
            flag = await storage.get_flag(self.bot.db, flag_id)
            if flag is not None:
                await cards.refresh_card(self.bot, flag)


async def setup(bot: ModBot) -> None:
    await bot.add_cog(Flagging(bot))
