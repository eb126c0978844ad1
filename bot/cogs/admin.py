"""The /mod commands: review channel, thresholds, actions, exemptions, the queue, statistics, settings.

Who may run each one (see bot.checks): the settings need Manage Server for the whole server; statistics and
the model's figures need Manage Messages for the whole server; /mod queue and /mod classify need Manage
Messages where they are run, and the queue lists only the flags of channels where the moderator may read and
review messages; /mod rollback and /mod forget are the bot owner's.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from model.errors import ModbotError
from model.labels import DEFINITIONS, FLAGGABLE, GUIDE, LABELS

from .. import cards, checks, retrain, storage
from ..bot import ModBot
from ..service import QueueFull, ServiceClosed, ServingPaused

log = logging.getLogger(__name__)

PAGE_SIZE = 5
NO_REVIEW_CHANNEL = (
    "\n\n**No review channel is set**: flagged messages are stored but not posted. "
    "Set one with `/mod setup review_channel:#channel`."
)

Label = Literal["hate", "offensive"]
Action = Literal["flag", "delete", "timeout", "none"]
ExemptChannel = discord.TextChannel | discord.Thread | discord.CategoryChannel | discord.VoiceChannel | discord.ForumChannel


def label_guide() -> str:
    """The labelling guide in short, as the model's prompt states it; the examples are in docs/labels.md."""
    lines = [f"**{label}**: {DEFINITIONS[label]}." for label in LABELS]
    return "\n".join(lines) + f"\nBorderline examples: `{GUIDE}` in modbot's repository."


@app_commands.guild_only()
@app_commands.default_permissions(manage_messages=True)
class Admin(commands.GroupCog, group_name="mod", group_description="modbot moderation settings and review"):
    def __init__(self, bot: ModBot) -> None:
        self.bot = bot
        super().__init__()

    async def cog_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if interaction.response.is_done():
            return
        if isinstance(error, checks.MissingServerPermissions | checks.NotOwner):
            await interaction.response.send_message(str(error), ephemeral=True)
        elif isinstance(error, app_commands.MissingPermissions):
            needed = checks.permission_names(error.missing_permissions)
            await interaction.response.send_message(f"You need the {needed} permission to use this.", ephemeral=True)
        elif isinstance(error, app_commands.NoPrivateMessage):
            await interaction.response.send_message("This command works only in a server.", ephemeral=True)

    async def _reply(self, interaction: discord.Interaction, content: str | None = None, **kwargs) -> None:
        """Answer ephemerally, reminding moderators to set a review channel while there is none."""
        config = await storage.get_guild_config(self.bot.db, interaction.guild_id)
        if config.review_channel_id is None:
            content = (content or "") + NO_REVIEW_CHANNEL
        if interaction.response.is_done():  # deferred: the answer replaces the "thinking" message
            await interaction.edit_original_response(content=content, **kwargs)
        else:
            await interaction.response.send_message(content, ephemeral=True, **kwargs)

    # ------------------------------------------------------------------ settings (Manage Server, server-wide)

    @app_commands.command(name="setup", description="Choose the channel where review cards are posted")
    @app_commands.describe(review_channel="The channel for review cards (only moderators should see it)")
    @checks.server_permissions(manage_guild=True)
    async def setup_(self, interaction: discord.Interaction, review_channel: discord.TextChannel) -> None:
        me = interaction.guild.me
        permissions = review_channel.permissions_for(me)
        missing = [name for name, ok in (("View Channel", permissions.view_channel),
                                         ("Send Messages", permissions.send_messages),
                                         ("Embed Links", permissions.embed_links)) if not ok]
        await storage.set_review_channel(self.bot.db, interaction.guild_id, review_channel.id, discord.utils.utcnow())
        log.info("Guild %d: review channel set to %d by %d", interaction.guild_id, review_channel.id,
                 interaction.user.id)
        message = f"Review cards will be posted in {review_channel.mention}."
        if missing:
            message += f"\n⚠️ I am missing {', '.join(missing)} there: grant them or cards cannot be posted."
        await interaction.response.send_message(message, ephemeral=True)

    @app_commands.command(name="threshold", description="Set the probability from which a label is flagged")
    @app_commands.describe(label="hate or offensive", value="From 0.0 to 1.0 (default 0.5); lower flags more")
    @checks.server_permissions(manage_guild=True)
    async def threshold(
        self, interaction: discord.Interaction, label: Label, value: app_commands.Range[float, 0.0, 1.0]
    ) -> None:
        await storage.set_threshold(self.bot.db, interaction.guild_id, label, value, discord.utils.utcnow())
        await self._reply(interaction, f"Messages are now flagged as **{label}** from a probability of {value:.2f}.")

    @app_commands.command(name="action", description="Choose what happens to a message flagged with a label")
    @app_commands.describe(
        label="hate or offensive",
        action="flag: post a card; delete: delete it and post a card; timeout: also time the author out; none: ignore",
        minutes="Timeout length in minutes (for timeout; default 10)",
    )
    @checks.server_permissions(manage_guild=True)
    async def action(
        self,
        interaction: discord.Interaction,
        label: Label,
        action: Action,
        minutes: app_commands.Range[int, 1, 40320] | None = None,
    ) -> None:
        await storage.set_action(self.bot.db, interaction.guild_id, label, action, minutes, discord.utils.utcnow())
        config = await storage.get_guild_config(self.bot.db, interaction.guild_id)
        described = {
            "flag": "a review card is posted",
            "delete": "the message is deleted and a review card is posted",
            "timeout": f"the message is deleted, its author timed out for {config.timeout_minutes[label]} min, "
                       "and a review card is posted",
            "none": "nothing happens",
        }[action]
        await self._reply(interaction, f"When a message is flagged as **{label}**, {described}.")

    @app_commands.command(name="exempt", description="Stop classifying messages in a channel or from a role")
    @checks.server_permissions(manage_guild=True)
    async def exempt(
        self, interaction: discord.Interaction, channel: ExemptChannel | None = None, role: discord.Role | None = None
    ) -> None:
        await self._change_exemption(interaction, channel, role, add=True)

    @app_commands.command(name="unexempt", description="Classify messages in a channel or from a role again")
    @checks.server_permissions(manage_guild=True)
    async def unexempt(
        self, interaction: discord.Interaction, channel: ExemptChannel | None = None, role: discord.Role | None = None
    ) -> None:
        await self._change_exemption(interaction, channel, role, add=False)

    async def _change_exemption(self, interaction, channel, role, *, add: bool) -> None:
        if (channel is None) == (role is None):
            await interaction.response.send_message("Give either a channel or a role.", ephemeral=True)
            return
        kind, target = ("channel", channel) if channel is not None else ("role", role)
        if add:
            changed = await storage.add_exemption(self.bot.db, interaction.guild_id, kind, target.id,
                                                  interaction.user.id, discord.utils.utcnow())
            text = f"Messages {'in' if kind == 'channel' else 'from'} {target.mention} are " + (
                "no longer classified." if changed else "already exempt.")
        else:
            changed = await storage.remove_exemption(self.bot.db, interaction.guild_id, kind, target.id)
            text = f"Messages {'in' if kind == 'channel' else 'from'} {target.mention} " + (
                "are classified again." if changed else "were not exempt.")
        await self._reply(interaction, text)

    @app_commands.command(name="settings", description="Show this server's modbot settings")
    @checks.server_permissions(manage_guild=True)
    async def settings(self, interaction: discord.Interaction) -> None:
        config = await storage.get_guild_config(self.bot.db, interaction.guild_id)
        embed = discord.Embed(title="modbot settings", colour=discord.Colour.blurple())
        embed.add_field(
            name="Review channel",
            value=f"<#{config.review_channel_id}>" if config.review_channel_id else "not set",
            inline=False,
        )
        for label in FLAGGABLE:
            action = config.actions[label]
            if action == "timeout":
                action += f" ({config.timeout_minutes[label]} min)"
            embed.add_field(name=label.capitalize(), value=f"threshold {config.thresholds[label]:.2f}\naction {action}")
        exempt = [f"<#{c}>" for c in sorted(config.exempt_channels)] + [f"<@&{r}>" for r in sorted(config.exempt_roles)]
        embed.add_field(name="Exempt", value=", ".join(exempt) or "nothing", inline=False)
        served = self.bot.models.served
        embed.add_field(name="Model", value=f"{served.model} · adapter {served.adapter_version}", inline=False)
        embed.add_field(name="What the labels mean (review by this guide)", value=label_guide(), inline=False)
        await self._reply(interaction, embed=embed)

    # ------------------------------------------------------------------ moderators (Manage Messages)

    @app_commands.command(name="queue", description="Flags not reviewed yet, newest first")
    @app_commands.checks.has_permissions(manage_messages=True)
    async def queue(self, interaction: discord.Interaction) -> None:
        view = QueuePages(self.bot, interaction.guild, interaction.user)
        embed = await view.render()
        await self._reply(interaction, embed=embed, view=view)

    @app_commands.command(name="stats", description="What the bot classified and how often moderators agreed")
    @checks.server_permissions(manage_messages=True)
    async def stats(self, interaction: discord.Interaction) -> None:
        now = discord.utils.utcnow()
        embed = discord.Embed(title="modbot statistics", colour=discord.Colour.blurple())
        for days in (7, 30):
            s = await storage.stats(self.bot.db, interaction.guild_id, now - timedelta(days=days))
            lines = [f"classified {s.classified}, corrections {s.corrections}"]
            for label in LABELS:
                ls = s.labels[label]
                line = f"**{label}**: predicted {ls.predicted}"
                if label in FLAGGABLE:
                    precision = f"{ls.precision:.0%}" if ls.precision is not None else "n/a"
                    line += (f", flagged {ls.flags}, reviewed {ls.reviewed}, confirmed {ls.confirmed}"
                             f" (precision {precision})")
                lines.append(line)
            embed.add_field(name=f"Last {days} days", value="\n".join(lines), inline=False)
        service = self.bot.service.stats()
        embed.add_field(
            name="Model",
            value=f"{self.bot.models.served.model} · adapter {self.bot.models.served.adapter_version}\n"
                  f"since start: {service.classified} classified in {service.batches} batches, "
                  f"{service.dropped} dropped (queue full)",
            inline=False,
        )
        await self._reply(interaction, embed=embed)

    @app_commands.command(name="classify", description="Label a text with the bot's model (only you see it)")
    @app_commands.describe(text="The text to label")
    @app_commands.checks.has_permissions(manage_messages=True)
    async def classify(self, interaction: discord.Interaction, text: app_commands.Range[str, 1, 2000]) -> None:
        # The text waits its turn behind the server's messages, which can take longer than the 3 s
        # Discord gives an interaction for its first answer.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            prediction = await self.bot.service.classify(text)
        except (QueueFull, ServiceClosed):
            await interaction.edit_original_response(content="The classifier is busy; try again in a moment.")
            return
        except ServingPaused:
            await interaction.edit_original_response(
                content="Classification is paused while a retraining job has the model's GPU (`/retrain status`); "
                        "try again when it ends.")
            return
        config = await storage.get_guild_config(self.bot.db, interaction.guild_id)
        flag = config.flag_label(prediction.probabilities)
        verdict = f"would be flagged as **{flag}**" if flag else "would not be flagged"
        await self._reply(
            interaction,
            f"**{prediction.label}** — {cards.probabilities_text(prediction.probabilities)}\n"
            f"In this server it {verdict}. ({prediction.model} · adapter {prediction.adapter_version})",
        )


    # ------------------------------------------------------------------ adapter versions

    @app_commands.command(name="model", description="The active model version, its figures and the last versions")
    @checks.server_permissions(manage_messages=True)
    async def model(self, interaction: discord.Interaction) -> None:
        # Only reads: what is served is the model manager's, which also serves what the shell promotes.
        served = self.bot.models.served
        active = await storage.active_version(self.bot.db)
        embed = discord.Embed(title="modbot model", colour=discord.Colour.blurple())
        embed.add_field(name="Serving", value=f"{served.model} · adapter {served.adapter_version}"
                        + (" (paused)" if self.bot.models.paused else ""), inline=False)
        if self.bot.models.paused:
            embed.colour = discord.Colour.orange()
            waiting = len(await storage.pending_messages(self.bot.db))
            embed.add_field(name="Classification paused", value=(
                f"The model is released while a retraining job trains ({self.bot.models.pause_reason}); it is "
                f"loaded again when the job ends. {waiting} message{'s' if waiting != 1 else ''} recorded, to "
                "classify then.")[:1024], inline=False)
        if self.bot.models.problem:
            embed.colour = discord.Colour.red()
            embed.add_field(name="Not served", value=self.bot.models.problem[:1024], inline=False)
        if active is None:
            embed.description = "No adapter version is registered (the bot serves a zero-shot model or a stand-in)."
            await self._reply(interaction, embed=embed)
            return
        trained = (f"retrained {discord.utils.format_dt(active.finished_at or active.created_at, 'R')} from "
                   f"version {active.parent} on {active.corrections} corrections"
                   if active.origin != "startup" else
                   f"registered at start-up {discord.utils.format_dt(active.created_at, 'R')} from `{active.source}`")
        active_since = discord.utils.format_dt(active.activated_at, "R") if active.activated_at else "?"
        embed.add_field(name=f"Active: version {active.number} ({active.name})",
                        value=f"{trained}; active since {active_since}", inline=False)
        lines = retrain.figures_lines(active.figures)
        validation = (active.figures or {}).get("validation")
        if not lines and validation:
            lines = [f"validation accuracy {validation['accuracy']:.3f}, macro-F1 {validation['macro_f1']:.3f} "
                     f"(n {validation['n']}, from its training run)"]
        embed.add_field(name="Figures", value="\n".join(lines) or "none recorded", inline=False)
        versions = await storage.list_versions(self.bot.db, limit=6)
        embed.add_field(
            name="Last versions",
            value="\n".join(
                f"**v{v.number}** {v.status} · {v.origin} {discord.utils.format_dt(v.created_at, 'R')}"
                + (f" · gold F1 {v.figures['candidate']['gold']['macro_f1']:.3f}"
                   if v.figures and "candidate" in v.figures else "")
                for v in versions
            ),
            inline=False,
        )
        # A failed version that kept its directory is one whose adapter could not be loaded (bot.retrain).
        unloadable = [v for v in versions if v.status == "failed" and v.path is not None]
        if unloadable:
            embed.colour = discord.Colour.red()
            embed.add_field(name="Could not be loaded",
                            value="\n".join(f"**v{v.number}**: {(v.reason or '?')[:300]}" for v in unloadable)[:1024],
                            inline=False)
        await self._reply(interaction, embed=embed)

    @app_commands.command(name="rollback", description="Make an earlier model version active again")
    @app_commands.describe(version="The version number (see /mod model)")
    @checks.owner_only("roll the model back")
    async def rollback(self, interaction: discord.Interaction, version: app_commands.Range[int, 1]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            activated, was = await self.bot.models.rollback(version)
        except ModbotError as exc:
            await interaction.edit_original_response(content=str(exc))
            return
        note = " It had been rejected by the evaluation gate: you chose to serve it anyway." if was == "rejected" else ""
        await self._reply(interaction, f"Version {activated.number} ({activated.name}) is active again; the next "
                                       f"batch of messages uses it.{note}")

    # ------------------------------------------------------------------ erasure on request (the bot's owner)

    @app_commands.command(name="forget", description="Erase a member's messages, or one message, everywhere the "
                                                     "bot keeps them")
    @app_commands.describe(user="The member (or a user id) whose messages to erase, in every server",
                           message_id="The id of one message to erase (right-click it > Copy Message ID)")
    @checks.owner_only("erase messages on request")
    async def forget(self, interaction: discord.Interaction, user: discord.User | None = None,
                     message_id: str | None = None) -> None:
        if (user is None) == (message_id is None):
            await interaction.response.send_message("Give either a user or a message_id.", ephemeral=True)
            return
        if message_id is not None and not (message_id.strip().isdigit() and 0 < int(message_id) < 2**63):
            await interaction.response.send_message(
                "message_id must be a message's id, a number (right-click the message > Copy Message ID).",
                ephemeral=True)
            return
        privacy = self.bot.get_cog("Privacy")
        if privacy is None:
            await interaction.response.send_message("Erasing is unavailable right now.", ephemeral=True)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        report, waiting = await privacy.forget(interaction.user.id, user_id=user.id if user is not None else None,
                                               message_id=int(message_id) if message_id is not None else None)
        queued = report.rows.cards
        cards_done = ("none quoted it" if not queued else f"{queued} rewritten" if not waiting else
                      f"{queued}, {waiting} of them not rewritten yet (tried again every few minutes)")
        await interaction.edit_original_response(content=fit_message(report.lines(cards=cards_done)))


def fit_message(lines: list[str], limit: int = 2000) -> str:
    """``lines`` within a Discord message's limit, the last ones (what to do next) kept whole."""
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    head, tail = lines[:-3], lines[-3:]
    while head and len("\n".join([*head, "…", *tail])) > limit:
        head.pop()
    return "\n".join([*head, "…", *tail])[:limit]


class QueuePages(discord.ui.View):
    """Pages through the unreviewed flags the moderator may review, PAGE_SIZE at a time."""

    def __init__(self, bot: ModBot, guild: discord.Guild, member: discord.Member) -> None:
        super().__init__(timeout=600)
        self.bot = bot
        self.guild = guild
        self.member = member
        self.page = 0
        self.total = 0

    async def render(self) -> discord.Embed:
        # Asked again for every page: a moderator's permissions can change while the view is open.
        channels = await storage.unreviewed_flag_channels(self.bot.db, self.guild.id)
        readable = await checks.moderated_channels(self.guild, self.member, channels)
        flags, self.total = await storage.unreviewed_flags(
            self.bot.db, self.guild.id, limit=PAGE_SIZE, offset=self.page * PAGE_SIZE, channel_ids=readable
        )
        pages = max(1, -(-self.total // PAGE_SIZE))
        embed = discord.Embed(title=f"Flags to review: {self.total}", colour=discord.Colour.gold())
        if not flags:
            embed.description = "Nothing to review."
        for flag in flags:
            where = cards.jump_url(flag.guild_id, flag.channel_id, flag.message_id)
            card = (f" · [card]({cards.jump_url(flag.guild_id, flag.card_channel_id, flag.card_message_id)})"
                    if flag.card_message_id else " · no card posted")
            text = cards.quote(flag.text, limit=150) if flag.text is not None else "*text erased*"
            embed.add_field(
                name=f"#{flag.id} {flag.label} ({flag.prediction.probabilities[flag.label]:.2f})",
                value=f"<@{flag.author_id}> in <#{flag.channel_id}> {discord.utils.format_dt(flag.created_at, 'R')}"
                      f" · [message]({where}){card}\n{text}",
                inline=False,
            )
        embed.set_footer(text=f"page {self.page + 1} of {pages}")
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page + 1 >= pages
        return embed

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.member.id:
            return False
        self.member = interaction.user  # with the roles it has now
        return True

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.page = max(0, self.page - 1)
        await interaction.response.edit_message(embed=await self.render(), view=self)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.page += 1
        await interaction.response.edit_message(embed=await self.render(), view=self)


async def setup(bot: ModBot) -> None:
    await bot.add_cog(Admin(bot))
