"""Review: the card buttons, and the "Label message" context menu for messages the bot did not flag.

Every decision is appended to the corrections table, the training data of the next adapter. Reviewing a
message needs Manage Messages (with View Channel and Read Message History) in the message's channel, wherever
its card is posted.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from model.labels import LABELS
from model.prompt import has_content

from .. import cards, checks, storage
from ..bot import ModBot
from ..messages import message_text

log = logging.getLogger(__name__)

REFUSED = "You need the Manage Messages permission to review messages."
REFUSED_IN = "You need the Manage Messages permission in {channel} to review this message."
REFUSED_GONE = "Its channel is gone: you need the Manage Messages permission for the whole server to review it."
UNKNOWN_FLAG = "This flag is not in this server's records."
# A custom id can be forged; an id beyond SQLite's integer would make the lookup raise, not miss.
MAX_FLAG_ID = 2**63 - 1


class Review(commands.Cog):
    def __init__(self, bot: ModBot) -> None:
        self.bot = bot
        self.label_menu = app_commands.ContextMenu(name="Label message", callback=self.label_message)
        self.label_menu.default_permissions = discord.Permissions(manage_messages=True)
        self.label_menu.guild_only = True
        self.label_menu.error(self.label_menu_error)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(cards.ReviewButton)
        self.bot.tree.add_command(self.label_menu)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(cards.ReviewButton)
        self.bot.tree.remove_command(self.label_menu.name, type=self.label_menu.type)

    # ------------------------------------------------------------------ card buttons

    async def press(self, interaction: discord.Interaction, flag_id: int, choice: str) -> None:
        if interaction.guild is None or not isinstance(interaction.user, discord.Member):
            await interaction.response.send_message(REFUSED, ephemeral=True)
            return
        flag = await storage.get_flag(self.bot.db, flag_id) if 0 < flag_id <= MAX_FLAG_ID else None
        if flag is None or flag.guild_id != interaction.guild.id:
            await interaction.response.send_message(UNKNOWN_FLAG, ephemeral=True)
            return
        # Where the message is, not where the card is: a helper who moderates the review channel (or one
        # channel) does not thereby review every channel's messages.
        channel = await checks.find_channel(interaction.guild, flag.channel_id)
        if not checks.may_moderate(interaction.user, channel):
            await interaction.response.send_message(
                REFUSED_IN.format(channel=f"<#{flag.channel_id}>") if channel is not None else REFUSED_GONE,
                ephemeral=True)
            return
        if choice == "change":
            await interaction.response.edit_message(
                embed=cards.render_card(flag, reopened_by=interaction.user.id), view=cards.card_view(flag, reopened=True)
            )
            return
        text = flag.text if flag.text is not None else (flag.decision.text if flag.decision else None)
        if text is None:
            await interaction.response.edit_message(embed=cards.render_card(flag), view=cards.card_view(flag))
            await interaction.followup.send(
                "The message's text was erased, so there is nothing to label.", ephemeral=True
            )
            return
        label = flag.label if choice == "confirm" else choice
        correction = await storage.add_correction(
            self.bot.db,
            guild_id=flag.guild_id,
            channel_id=flag.channel_id,
            message_id=flag.message_id,
            author_id=flag.author_id,
            text=text,
            label=label,
            moderator_id=interaction.user.id,
            now=discord.utils.utcnow(),
            flag_id=flag.id,
            prediction=flag.prediction,
        )
        log.info("Flag %d: moderator %d decided %s (correction %d)", flag.id, interaction.user.id, label,
                 correction.id)
        flag = await storage.get_flag(self.bot.db, flag.id)
        await interaction.response.edit_message(embed=cards.render_card(flag), view=cards.card_view(flag))

    # ------------------------------------------------------------------ "Label message"

    @app_commands.checks.has_permissions(manage_messages=True)
    async def label_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        if message.author.bot:
            await interaction.response.send_message("Messages from bots are not classified.", ephemeral=True)
            return
        if not has_content(message_text(message)):
            await interaction.response.send_message("That message has no text to label.", ephemeral=True)
            return
        view = LabelChoice(self, interaction.user.id, message)
        await interaction.response.send_message(
            f"How should this message be labelled?\n{cards.quote(message_text(message), limit=300)}",
            view=view,
            ephemeral=True,
        )

    async def label_menu_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CheckFailure) and not interaction.response.is_done():
            await interaction.response.send_message(REFUSED, ephemeral=True)

    async def store_label(self, interaction: discord.Interaction, message: discord.Message, label: str) -> None:
        if not interaction.permissions.manage_messages:
            await interaction.response.send_message(REFUSED, ephemeral=True)
            return
        prediction = await storage.latest_prediction(self.bot.db, message.id)
        flag = await storage.flag_for_message(self.bot.db, message.id)
        correction = await storage.add_correction(
            self.bot.db,
            guild_id=message.guild.id,
            channel_id=message.channel.id,
            message_id=message.id,
            author_id=message.author.id,
            text=message_text(message),
            label=label,
            moderator_id=interaction.user.id,
            now=discord.utils.utcnow(),
            flag_id=flag.id if flag else None,
            prediction=prediction,
        )
        log.info("Message %d labelled %s by moderator %d (correction %d)", message.id, label, interaction.user.id,
                 correction.id)
        predicted = f" The bot had said {prediction.label}." if prediction else " The bot had not classified it."
        await interaction.response.edit_message(
            content=f"Stored **{label}** for that message; it will be used in the next retraining.{predicted}",
            view=None,
        )
        if flag is not None:
            await cards.refresh_card(self.bot, await storage.get_flag(self.bot.db, flag.id))


class LabelChoice(discord.ui.View):
    """The ephemeral choice of the three labels that "Label message" opens."""

    def __init__(self, review: Review, user_id: int, message: discord.Message) -> None:
        super().__init__(timeout=300)
        self.review = review
        self.user_id = user_id
        self.message = message
        styles = {"hate": discord.ButtonStyle.danger, "offensive": discord.ButtonStyle.primary,
                  "neutral": discord.ButtonStyle.secondary}
        for label in LABELS:
            button = discord.ui.Button(label=label.capitalize(), style=styles[label],
                                       custom_id=f"modbot:label:{message.id}:{label}")
            button.callback = self._make_callback(label)
            self.add_item(button)

    def _make_callback(self, label: str):
        async def callback(interaction: discord.Interaction) -> None:
            await self.review.store_label(interaction, self.message, label)
            self.stop()

        return callback

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id


async def setup(bot: ModBot) -> None:
    await bot.add_cog(Review(bot))
