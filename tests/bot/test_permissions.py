"""Who may do what (bot.checks), through SimCord: a permission granted in one channel reaches that channel only,
and the model every server shares is its owner's to change."""

from __future__ import annotations

from dataclasses import replace

import discord
import pytest
from discord import app_commands
from simcord import SetupError

from bot import Settings, checks, storage
from bot.settings import SettingsError

from .conftest import HATE_WORD, OFFENSIVE_WORD


class Channels:
    """#help, where the Helpers role has Manage Messages (and nowhere else); #staff-only, which only the Staff
    role (with Manage Messages server-wide) and the bot can read; a helper and a staff member."""

    def __init__(self, env, server) -> None:
        guild = server.guild
        self.helpers = guild.create_role("Helpers")
        self.staff_role = guild.create_role("Staff", permissions=discord.Permissions(manage_messages=True))
        self.help = guild.create_text_channel(
            "help", overwrites={self.helpers: discord.PermissionOverwrite(manage_messages=True)})
        self.staff = guild.create_text_channel("staff-only", overwrites={
            guild.default_role: discord.PermissionOverwrite(view_channel=False),
            self.staff_role: discord.PermissionOverwrite(view_channel=True),
            env.bot.user: discord.PermissionOverwrite(view_channel=True),
        })
        self.helper = guild.add_member(env.create_user("hal"), roles=[self.helpers])
        self.staffer = guild.add_member(env.create_user("stef"), roles=[self.staff_role])


@pytest.fixture
def channels(env, server) -> Channels:
    return Channels(env, server)


def queue_lines(result) -> tuple[str, str]:
    embed = result.response.embeds[0]
    return embed.title, "\n".join(f.value for f in embed.fields)


# --------------------------------------------------------------------------- point 1: channel grants


async def test_a_channel_grant_of_manage_messages_does_not_reach_the_server_wide_commands(env, server, channels):
    # Discord shows the /mod group where the helper holds Manage Messages (it cannot hide single subcommands)...
    assert "mod queue" in channels.helper.available_commands(channels.help)
    with pytest.raises(SetupError, match="not visible"):
        await channels.helper.slash(server.general, "mod queue")

    # ...but what concerns the whole server needs the permission from the helper's roles, not a channel's.
    for command, options in (("mod threshold", {"label": "hate", "value": 0.1}), ("mod stats", {}),
                             ("mod settings", {}), ("mod model", {}),
                             ("mod setup", {"review_channel": channels.help})):
        result = await channels.helper.slash(channels.help, command, **options)
        assert result.ephemeral
        assert "permission for the whole server (not only in a channel)" in result.response.content, command
    config = await storage.get_guild_config(env.bot.db, server.guild.id)
    assert config.thresholds["hate"] == 0.5 and config.review_channel_id == server.modlog.id

    # Manage Server granted in one channel's overwrites does not make a server manager either.
    managers = server.guild.create_text_channel(
        "managers", overwrites={channels.helpers: discord.PermissionOverwrite(manage_guild=True, manage_messages=True)})
    result = await channels.helper.slash(managers, "mod threshold", label="hate", value=0.1)
    assert result.response.content == ("You need the Manage Server permission for the whole server (not only in a "
                                       "channel) to use this.")
    assert (await storage.get_guild_config(env.bot.db, server.guild.id)).thresholds["hate"] == 0.5
    assert all(isinstance(e, app_commands.MissingPermissions) for e in env.errors)

    # What concerns only the text the helper gives stays available where the grant is.
    result = await channels.helper.slash(channels.help, "mod classify", text=f"such an {OFFENSIVE_WORD}")
    assert result.response.content.startswith("**offensive**")
    # A moderator for the whole server keeps the server-wide reading commands; an administrator keeps everything.
    assert (await server.mod.slash(server.general, "mod stats")).response.embeds[0].title == "modbot statistics"
    result = await server.admin.slash(server.general, "mod threshold", label="hate", value=0.7)
    assert "from a probability of 0.70" in result.response.content


async def test_the_queue_lists_only_flags_from_channels_the_moderator_can_read_and_review(env, server, channels):
    await server.member.send(server.general, f"{HATE_WORD} in general")
    await server.member.send(channels.help, f"{HATE_WORD} in help")
    await channels.staffer.send(channels.staff, f"{HATE_WORD} staff secret")
    assert len(server.cards()) == 3

    # the helper moderates #help only: its flags, nothing from #general or the channel he cannot even see
    title, text = queue_lines(await channels.helper.slash(channels.help, "mod queue"))
    assert title == "Flags to review: 1" and "in help" in text
    assert "staff secret" not in text and "in general" not in text and str(channels.staff.id) not in text

    # a moderator for the whole server who cannot read #staff-only
    title, text = queue_lines(await server.mod.slash(server.general, "mod queue"))
    assert title == "Flags to review: 2" and "in help" in text and "in general" in text
    assert "staff secret" not in text

    # staff read #staff-only and moderate everywhere
    title, text = queue_lines(await channels.staffer.slash(channels.staff, "mod queue"))
    assert title == "Flags to review: 3" and "staff secret" in text


async def test_a_card_button_needs_manage_messages_where_the_message_is_not_only_where_the_card_is(
        env, server, channels):
    # Cards go to #review, where the helpers also have Manage Messages (they help triage there).
    review = server.guild.create_text_channel(
        "review", overwrites={channels.helpers: discord.PermissionOverwrite(manage_messages=True)})
    await server.admin.slash(server.general, "mod setup", review_channel=review)
    await server.member.send(server.general, f"{HATE_WORD} in general")
    await server.member.send(channels.help, f"{HATE_WORD} in help")
    general_card, help_card = [m for m in review.history() if m.embeds]

    result = await channels.helper.click(general_card, label="Neutral")
    assert result.ephemeral
    assert result.response.content == (f"You need the Manage Messages permission in {server.general.mention} to "
                                       "review this message.")
    assert await storage.count_corrections(env.bot.db) == 0

    await channels.helper.click(help_card, label="Confirm (hate)")
    [correction] = [c async for c in storage.corrections(env.bot.db)]
    assert (correction.channel_id, correction.moderator_id, correction.label) == (
        channels.help.id, channels.helper.id, "hate")

    # a moderator for the whole server reviews the #general card from the same review channel
    await server.mod.click([m for m in review.history() if m.embeds][0], label="Neutral")
    assert await storage.count_corrections(env.bot.db) == 2


async def test_label_message_follows_the_grant_of_the_message_channel(env, server, channels):
    # A guard: the context menu is run in the message's own channel, so its permissions are the ones Discord
    # gives the interaction (this held before the permission review too).
    in_help = await server.member.send(channels.help, "a subtle insult in help")
    shown = await channels.helper.context_menu(channels.help, "Label message", in_help)
    await channels.helper.click(shown.response, label="Offensive")
    assert [c.message_id async for c in storage.corrections(env.bot.db)] == [in_help.id]

    in_general = await server.member.send(server.general, "a subtle insult in general")
    with pytest.raises(SetupError, match="not visible"):
        await channels.helper.context_menu(server.general, "Label message", in_general)
    command = next(c for c in await env.bot.tree.fetch_commands() if c.name == "Label message")
    server.guild.set_command_permissions(command, {channels.helper: True})
    result = await channels.helper.context_menu(server.general, "Label message", in_general)
    assert result.ephemeral and "Manage Messages" in result.response.content
    assert await storage.count_corrections(env.bot.db) == 1
    assert [type(e) for e in env.errors] == [app_commands.MissingPermissions]


# --------------------------------------------------------------------------- point 2: the bot's owner


def test_owner_and_training_guild_settings():
    settings = Settings.from_env({})
    assert settings.owner_ids == frozenset() and settings.training_guilds is None
    settings = Settings.from_env({"MODBOT_OWNER_IDS": " 11, 22 ,", "MODBOT_TRAINING_GUILDS": "33,44"})
    assert settings.owner_ids == {11, 22} and settings.training_guilds == {33, 44}
    assert Settings.from_env({"MODBOT_TRAINING_GUILDS": "all"}).training_guilds is None


@pytest.mark.parametrize(("variable", "value"), [("MODBOT_OWNER_IDS", "alice"), ("MODBOT_OWNER_IDS", "12,-3"),
                                                 ("MODBOT_TRAINING_GUILDS", "my server")])
def test_a_wrong_id_list_names_the_variable(variable, value):
    with pytest.raises(SettingsError, match=f"^{variable}: .* is not a Discord"):
        Settings.from_env({variable: value})


async def test_the_owner_is_the_application_owner_or_one_of_modbot_owner_ids(env, server):
    # SimCord's application is owned by the bot's own account; discord.py asks Discord for it once.
    assert await checks.is_owner(env.bot, env.bot.user)
    assert not await checks.is_owner(env.bot, server.admin)
    env.bot.settings = replace(env.bot.settings, owner_ids=Settings.from_env(
        {"MODBOT_OWNER_IDS": f"{server.admin.id}"}).owner_ids)
    assert await checks.is_owner(env.bot, server.admin)


async def test_model_commands_of_a_bot_without_registered_versions_refuse_other_servers_admins(env, server):
    # A second server's Administrator runs everything about their own server, not the shared model.
    other = env.create_guild("Other Server")
    general = other.create_text_channel("general")
    admins = other.create_role("Admins", permissions=discord.Permissions(administrator=True))
    bea = other.add_member(env.create_user("bea"), roles=[admins])
    for command, options, action in (("retrain start", {"force": True}, "retrain the model"),
                                     ("retrain cancel", {}, "cancel a retraining"),
                                     ("mod rollback", {"version": 1}, "roll the model back")):
        result = await bea.slash(general, command, **options)
        assert result.ephemeral
        assert result.response.content == f"Only the bot's owner can {action}: every server the bot is in shares the model."
    assert await storage.latest_job(env.bot.db) is None
    result = await bea.slash(general, "mod threshold", label="hate", value=0.8)
    assert "from a probability of 0.80" in result.response.content
    assert "No retraining has run yet" in (await bea.slash(general, "retrain status")).response.content

    # the owner (MODBOT_OWNER_IDS) gets past the check: this bot has no adapter to retrain, and says so
    env.bot.settings = replace(env.bot.settings, owner_ids=frozenset({bea.id}))
    result = await bea.slash(general, "retrain start", force=True)
    assert result.response.content.startswith("The bot serves no registered adapter")
    assert all(isinstance(e, checks.NotOwner) for e in env.errors)
