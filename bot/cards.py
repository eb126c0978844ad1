"""Review cards: the embed a flagged message becomes in the review channel, and its persistent buttons.

Each button is a :class:`ReviewButton`, a ``DynamicItem`` whose custom id carries the flag's id
(``modbot:review:<flag id>:<choice>``). discord.py rebuilds it from the custom id on every press, the
state comes from the database, so the buttons keep working after the bot restarts.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

import discord

from model.labels import LABELS

from . import storage

if TYPE_CHECKING:
    from .bot import ModBot

log = logging.getLogger(__name__)

CUSTOM_ID = "modbot:review:{flag_id}:{choice}"
CHOICES = ("confirm", "hate", "offensive", "neutral", "change")
QUOTE_LIMIT = 1500  # characters of the message shown on the card (an embed description holds 4096)

COLOURS = {
    "hate": discord.Colour.red(),
    "offensive": discord.Colour.orange(),
    "neutral": discord.Colour.green(),
}
PENDING_COLOUR = discord.Colour.gold()
GONE_COLOUR = discord.Colour.dark_grey()

ACTION_TEXT = {
    "flag": "flagged for review",
    "delete": "message deleted",
    "timeout": "message deleted, author timed out",
}


def custom_id(flag_id: int, choice: str) -> str:
    return CUSTOM_ID.format(flag_id=flag_id, choice=choice)


def jump_url(guild_id: int, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id}/{channel_id}/{message_id}"


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """The message as a Markdown quote, its own formatting shown literally, cut to ``limit`` characters."""
    shown = text if len(text) <= limit else text[:limit]
    escaped = discord.utils.escape_markdown(shown)
    quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in escaped.splitlines() or [""])
    if len(text) > limit:
        quoted += f"\n… ({len(text) - limit:,} more characters)"
    return quoted


def probabilities_text(probabilities: dict[str, float]) -> str:
    return " · ".join(f"{label} {probabilities[label]:.2f}" for label in LABELS)


def _timestamp(moment) -> str:
    return discord.utils.format_dt(moment, "R")


def render_card(flag: storage.Flag, *, reopened_by: int | None = None) -> discord.Embed:
    prediction = flag.prediction
    decision = flag.decision
    if flag.text is None and decision is None:
        colour = GONE_COLOUR
    elif decision is None or reopened_by is not None:
        colour = PENDING_COLOUR if decision is None else COLOURS[decision.label]
    else:
        colour = COLOURS[decision.label]
    title = f"Flagged as {flag.label} ({prediction.probabilities[flag.label]:.2f})"
    if flag.text is not None:
        description = quote(flag.text)
    elif decision is not None and not flag.message_deleted:  # the text a moderator decided on, until deleted
        description = quote(decision.text)
    else:
        description = "*The message was deleted; its text was erased.*" if flag.message_deleted else (
            "*The text was erased: the flag was not reviewed within the retention period.*"
        )
    embed = discord.Embed(title=title, description=description, colour=colour, timestamp=prediction.created_at)
    embed.add_field(name="Author", value=f"<@{flag.author_id}> (`{flag.author_id}`)", inline=True)
    embed.add_field(
        name="Where",
        value=f"<#{flag.channel_id}> · [jump to message]({jump_url(flag.guild_id, flag.channel_id, flag.message_id)})",
        inline=True,
    )
    verdict = f"**{flag.label}**"
    if prediction.label != flag.label:
        verdict += f" (most probable: {prediction.label})"
    embed.add_field(name="Prediction", value=f"{verdict}\n{probabilities_text(prediction.probabilities)}", inline=False)
    embed.add_field(name="Model", value=f"{prediction.model} · adapter {prediction.adapter_version}", inline=True)
    action = ACTION_TEXT[flag.action]
    if flag.action_result:
        action = f"{flag.action}: {flag.action_result}"
    if flag.message_deleted and flag.action == "flag":
        action += "; the message was deleted since"
    embed.add_field(name="Action", value=action, inline=True)
    if decision is None:
        embed.add_field(name="Decision", value="Pending review", inline=False)
    else:
        how = "confirmed" if decision.label == flag.label else "corrected"
        value = f"**{decision.label}**: {how} by <@{decision.moderator_id}> {_timestamp(decision.created_at)}"
        if reopened_by is not None:
            value += f"\n<@{reopened_by}> is changing it: choose the new label below."
        embed.add_field(name="Decision", value=value, inline=False)
        if len(flag.decisions) > 1:
            history = [
                f"{c.label} by <@{c.moderator_id}> {_timestamp(c.created_at)}" for c in flag.decisions[-6:-1]
            ]
            embed.add_field(name="Earlier decisions", value="\n".join(history), inline=False)
    embed.set_footer(text=f"flag #{flag.id}")
    return embed


def render_erased() -> discord.Embed:
    """What a card becomes when its message is erased on request: no text, no decision, no buttons."""
    return discord.Embed(title="Flagged message erased",
                         description="*Its text and the decisions on it were erased on request (`modbot forget`).*",
                         colour=GONE_COLOUR)


def card_view(flag: storage.Flag, *, reopened: bool = False) -> discord.ui.View:
    """The card's buttons: the four choices while undecided (or being changed), else a Change button."""
    view = discord.ui.View(timeout=None)
    decided = flag.decision is not None and not reopened
    gone = flag.text is None and flag.decision is None
    for choice, label, style in (
        ("confirm", f"Confirm ({flag.label})", discord.ButtonStyle.success),
        ("hate", "Hate", discord.ButtonStyle.danger),
        ("offensive", "Offensive", discord.ButtonStyle.primary),
        ("neutral", "Neutral", discord.ButtonStyle.secondary),
    ):
        view.add_item(ReviewButton(flag.id, choice, label=label, style=style, disabled=decided or gone))
    if decided:
        view.add_item(ReviewButton(flag.id, "change", label="Change", style=discord.ButtonStyle.secondary))
    return view


class ReviewButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"modbot:review:(?P<flag_id>[0-9]{1,19}):(?P<choice>confirm|hate|offensive|neutral|change)",
):
    def __init__(
        self,
        flag_id: int,
        choice: str,
        *,
        label: str | None = None,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        disabled: bool = False,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                label=label or choice.capitalize(), style=style, disabled=disabled, custom_id=custom_id(flag_id, choice)
            )
        )
        self.flag_id = flag_id
        self.choice = choice

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> ReviewButton:
        return cls(int(match["flag_id"]), match["choice"], label=item.label, style=item.style)

    async def callback(self, interaction: discord.Interaction) -> None:
        review = interaction.client.get_cog("Review")
        if review is None:
            await interaction.response.send_message("Reviewing is unavailable right now.", ephemeral=True)
            return
        await review.press(interaction, self.flag_id, self.choice)


async def post_card(bot: ModBot, flag: storage.Flag, channel: discord.abc.Messageable) -> discord.Message | None:
    """Post the card; a Discord error is logged and the flag stays stored (and in /mod queue)."""
    try:
        message = await channel.send(embed=render_card(flag), view=card_view(flag))
    except discord.HTTPException as exc:
        log.warning("Could not post the review card for flag %d in channel %s: %s", flag.id,
                    getattr(channel, "id", "?"), exc)
        return None
    await storage.set_flag_card(bot.db, flag.id, message.channel.id, message.id)
    return message


async def refresh_card(bot: ModBot, flag: storage.Flag) -> None:
    """Re-render a posted card from the database (after a decision elsewhere, or a deletion)."""
    if flag.card_channel_id is None or flag.card_message_id is None:
        return
    channel = bot.get_channel(flag.card_channel_id)
    if channel is None:
        return
    try:
        await channel.get_partial_message(flag.card_message_id).edit(embed=render_card(flag), view=card_view(flag))
    except discord.HTTPException as exc:
        log.warning("Could not update the review card of flag %d: %s", flag.id, exc)
