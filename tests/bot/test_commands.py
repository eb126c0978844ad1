"""The /mod commands through SimCord: permissions (hidden and refused), settings, queue, stats, classify."""

from __future__ import annotations

import pytest
from discord import app_commands
from simcord import SetupError

from bot import storage

from .conftest import HATE_WORD, OFFENSIVE_WORD


async def test_mod_commands_are_hidden_from_members_without_manage_messages(env, server):
    assert not [name for name in server.member.available_commands(server.general) if name.startswith("mod")]
    with pytest.raises(SetupError, match="not visible"):
        await server.member.slash(server.general, "mod queue")
    visible = server.mod.available_commands(server.general)
    assert {"mod queue", "mod stats", "mod classify", "mod setup"} <= set(visible)


async def test_mod_commands_are_refused_at_run_time_without_the_permission(env, server):
    # A moderator sees the group but the settings commands need Manage Server (for the whole server).
    result = await server.mod.slash(server.general, "mod threshold", label="hate", value=0.1)
    assert result.ephemeral and result.response.content == (
        "You need the Manage Server permission for the whole server (not only in a channel) to use this.")
    assert (await storage.get_guild_config(env.bot.db, server.guild.id)).thresholds["hate"] == 0.5

    # An admin override that shows /mod to a plain member does not get him past the bot's own check.
    command = next(c for c in await env.bot.tree.fetch_commands() if c.name == "mod")
    server.guild.set_command_permissions(command, {server.member: True})
    result = await server.member.slash(server.general, "mod queue")
    assert result.ephemeral and "Manage Messages" in result.response.content
    result = await server.member.slash(server.general, "mod setup", review_channel=server.general)
    assert result.ephemeral and "Manage Server" in result.response.content
    assert (await storage.get_guild_config(env.bot.db, server.guild.id)).review_channel_id == server.modlog.id
    # each refusal went through the command tree's error handlers as a MissingPermissions
    refused = env.errors
    assert len(refused) == 3 and all(isinstance(e, app_commands.MissingPermissions) for e in refused)


async def test_threshold_range_is_enforced(env, server):
    with pytest.raises(Exception, match="1"):
        await server.admin.slash(server.general, "mod threshold", label="hate", value=1.5)


async def test_settings_show_what_was_set(env, server):
    lounge = server.guild.create_text_channel("lounge")
    await server.admin.slash(server.general, "mod exempt", channel=lounge)
    await server.admin.slash(server.general, "mod exempt", role=server.mods_role)
    await server.admin.slash(server.general, "mod threshold", label="hate", value=0.75)
    await server.admin.slash(server.general, "mod action", label="offensive", action="delete")
    result = await server.admin.slash(server.general, "mod settings")
    fields = {f.name: f.value for f in result.response.embeds[0].fields}
    assert fields["Review channel"] == server.modlog.mention
    assert fields["Hate"] == "threshold 0.75\naction flag"
    assert fields["Offensive"] == "threshold 0.50\naction delete"
    assert lounge.mention in fields["Exempt"] and server.mods_role.mention in fields["Exempt"]
    assert fields["Model"] == "keyword-test · adapter test-1"
    # The labelling guide moderators review by, as the model's prompt states it.
    from model.prompt import INSTRUCTION

    guide = fields["What the labels mean (review by this guide)"]
    assert "**hate**: it attacks, dehumanises" in guide and "docs/labels.md" in guide
    for line in guide.splitlines()[:3]:
        assert line.replace("**", "") in INSTRUCTION
    result = await server.admin.slash(server.general, "mod exempt")
    assert result.response.content == "Give either a channel or a role."


async def test_queue_lists_unreviewed_flags_newest_first_in_pages(env, server):
    for i in range(7):
        await server.member.send(server.general, f"{HATE_WORD} {i}")
    await server.mod.click(server.cards()[0], label="Confirm (hate)")  # the oldest is reviewed
    result = await server.mod.slash(server.general, "mod queue")
    embed = result.response.embeds[0]
    assert embed.title == "Flags to review: 6"
    assert [f"{HATE_WORD} {i}" in f.value for f, i in zip(embed.fields, range(6, 1, -1), strict=True)] == [True] * 5
    assert embed.footer.text == "page 1 of 2"
    await server.mod.click(result.response, label="Next")
    page = result.response.embeds[0]
    assert page.footer.text == "page 2 of 2" and len(page.fields) == 1 and f"{HATE_WORD} 1" in page.fields[0].value


async def test_stats_count_classifications_flags_reviews_and_precision(env, server):
    await server.member.send(server.general, "hello")
    await server.member.send(server.general, f"{HATE_WORD} a")
    await server.member.send(server.general, f"{HATE_WORD} b")
    await server.member.send(server.general, f"{OFFENSIVE_WORD}")
    cards = server.cards()
    await server.mod.click(cards[0], label="Confirm (hate)")
    await server.mod.click(cards[1], label="Neutral")
    result = await server.mod.slash(server.general, "mod stats")
    fields = {f.name: f.value for f in result.response.embeds[0].fields}
    week = fields["Last 7 days"]
    assert "classified 4, corrections 2" in week
    assert "**hate**: predicted 2, flagged 2, reviewed 2, confirmed 1 (precision 50%)" in week
    assert "**offensive**: predicted 1, flagged 1, reviewed 0, confirmed 0 (precision n/a)" in week
    assert "keyword-test · adapter test-1" in fields["Model"]


async def test_classify_command(env, server):
    result = await server.mod.slash(server.general, "mod classify", text=f"such an {OFFENSIVE_WORD}")
    assert result.ephemeral
    assert result.response.content.startswith("**offensive** — hate 0.10 · offensive 0.70 · neutral 0.20")
    assert "would be flagged as **offensive**" in result.response.content
