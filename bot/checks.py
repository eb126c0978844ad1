"""Who may do what. Three kinds of authority, from the narrowest:

* **Manage Messages in a message's channel** (with View Channel and Read Message History there): see that
  message's flag and review it. A helper granted Manage Messages in one channel moderates that channel only.
* **A permission held for the whole server** (its roles, not a channel's overwrites): what concerns the whole
  server, its settings (Manage Server) and its statistics (Manage Messages).
* **The bot's owner** (the application's owner or its team members, plus ``MODBOT_OWNER_IDS``): the model,
  which every server the bot is in shares; retraining, cancelling a retraining and rollback.

Checks for slash commands raise a ``CheckFailure`` whose message is the sentence shown to the user.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

if TYPE_CHECKING:
    from .bot import ModBot

log = logging.getLogger(__name__)

PERMISSION_NAMES = {"manage_guild": "Manage Server", "manage_messages": "Manage Messages",
                    "administrator": "Administrator"}
NOT_OWNER = "Only the bot's owner can {action}: every server the bot is in shares the model."


def permission_names(permissions: Iterable[str]) -> str:
    return " and ".join(PERMISSION_NAMES.get(p, p) for p in permissions)


class MissingServerPermissions(app_commands.MissingPermissions):
    """The permission is held in this channel only (or not at all), and the command needs it server-wide."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(missing)
        self.args = (f"You need the {permission_names(missing)} permission for the whole server (not only in a "
                     "channel) to use this.",)


class NotOwner(app_commands.CheckFailure):
    """The command changes the shared model; the message says who may."""


def server_permissions(**wanted: bool) -> Callable[[Any], Any]:
    """Like ``app_commands.checks.has_permissions``, but from the member's roles, not the channel's overwrites."""
    unknown = set(wanted) - set(discord.Permissions.VALID_FLAGS)
    if unknown:
        raise TypeError(f"invalid permission(s): {', '.join(sorted(unknown))}")

    def predicate(interaction: discord.Interaction) -> bool:
        if not isinstance(interaction.user, discord.Member):
            raise app_commands.NoPrivateMessage()
        held = interaction.user.guild_permissions
        missing = [name for name, value in wanted.items() if getattr(held, name) != value]
        if missing:
            raise MissingServerPermissions(missing)
        return True

    return app_commands.check(predicate)


async def is_owner(bot: ModBot, user: discord.abc.User) -> bool:
    """The application's owner or team member (asked of Discord once, then cached), or one of MODBOT_OWNER_IDS."""
    if user.id in bot.settings.owner_ids:
        return True
    try:
        return await bot.is_owner(user)
    except discord.HTTPException as exc:  # the application's information is unavailable: only the setting counts
        log.warning("Could not read the application's owner from Discord: %s", exc)
        return False


def owner_only(action: str) -> Callable[[Any], Any]:
    """Refuse anyone but the bot's owner, saying so: "Only the bot's owner can <action>: ..."."""

    async def predicate(interaction: discord.Interaction) -> bool:
        if not await is_owner(interaction.client, interaction.user):
            raise NotOwner(NOT_OWNER.format(action=action))
        return True

    return app_commands.check(predicate)


async def find_channel(guild: discord.Guild, channel_id: int) -> discord.abc.GuildChannel | discord.Thread | None:
    """The channel or thread from the cache, else from Discord (an archived thread); None if it is gone."""
    channel = guild.get_channel_or_thread(channel_id)
    if channel is not None:
        return channel
    try:
        return await guild.fetch_channel(channel_id)
    except (discord.HTTPException, discord.InvalidData):
        return None


def may_moderate(member: discord.Member, channel: discord.abc.GuildChannel | discord.Thread | None) -> bool:
    """Whether ``member`` may read and review the messages of ``channel``.

    A channel the bot can no longer find (deleted) cannot be asked: then the permission must be server-wide.
    """
    if channel is None:
        return member.guild_permissions.manage_messages
    held = channel.permissions_for(member)
    return held.view_channel and held.read_message_history and held.manage_messages


async def moderated_channels(guild: discord.Guild, member: discord.Member, channel_ids: Iterable[int]) -> set[int]:
    """The ids among ``channel_ids`` of the channels whose messages ``member`` may read and review."""
    return {channel_id for channel_id in channel_ids
            if may_moderate(member, await find_channel(guild, channel_id))}
