"""Review through SimCord: the card buttons, their permissions, restarts, and the "Label message" menu."""

from __future__ import annotations

import discord
from discord import app_commands
from simcord import assert_error

from bot import storage

from .conftest import HATE_WORD, OFFENSIVE_WORD


def buttons(card: discord.Message) -> dict[str, discord.Button]:
    return {child.label: child for row in card.components for child in row.children}


def decision(card: discord.Message) -> str:
    return {f.name: f.value for f in card.embeds[0].fields}["Decision"]


async def test_member_without_manage_messages_is_refused_and_nothing_is_stored(env, server):
    await server.member.send(server.general, f"{HATE_WORD} everywhere")
    card = server.cards()[0]
    # bob cannot see #mod-log in a real setup; here he can, and the bot must still refuse him
    result = await server.member.click(card, label="Neutral")
    assert result.ephemeral
    assert "Manage Messages" in result.response.content
    assert await storage.count_corrections(env.bot.db) == 0
    assert decision(server.cards()[0]) == "Pending review"


async def test_moderator_press_stores_the_correction_and_updates_the_card(env, server):
    message = await server.member.send(server.general, f"you {OFFENSIVE_WORD}")
    card = server.cards()[0]
    await server.mod.click(card, label="Neutral")

    [correction] = [c async for c in storage.corrections(env.bot.db)]
    assert (correction.label, correction.predicted, correction.text) == ("neutral", "offensive", f"you {OFFENSIVE_WORD}")
    assert (correction.message_id, correction.author_id, correction.moderator_id) == (
        message.id, server.member.id, server.mod.id)
    assert correction.guild_id == server.guild.id and correction.channel_id == server.general.id
    assert correction.probabilities == {"hate": 0.1, "offensive": 0.7, "neutral": 0.2}

    card = server.cards()[0]
    assert decision(card).startswith(f"**neutral**: corrected by {server.mod.mention}")
    state = buttons(card)
    assert all(state[label].disabled for label in ("Confirm (offensive)", "Hate", "Offensive", "Neutral"))
    assert not state["Change"].disabled

    # a second decision: Change reopens the card, the new label is stored, the first kept in the history
    await server.admin.click(card, label="Change")
    card = server.cards()[0]
    assert not buttons(card)["Confirm (offensive)"].disabled
    await server.admin.click(card, label="Confirm (offensive)")
    history = [c async for c in storage.corrections(env.bot.db)]
    assert [(c.label, c.moderator_id) for c in history] == [("neutral", server.mod.id), ("offensive", server.admin.id)]
    card = server.cards()[0]
    assert decision(card).startswith(f"**offensive**: confirmed by {server.admin.mention}")
    assert "neutral by" in {f.name: f.value for f in card.embeds[0].fields}["Earlier decisions"]
    flags, total = await storage.unreviewed_flags(env.bot.db, server.guild.id, limit=5)
    assert total == 0


async def test_buttons_keep_working_after_a_restart(env, server, make_bot):
    await server.member.send(server.general, f"{HATE_WORD} before the restart")
    old_bot = env.bot
    await env.restart_bot(make_bot())
    await old_bot.close()
    assert env.bot is not old_bot

    await server.mod.click(server.cards()[0], label="Confirm (hate)")
    [correction] = [c async for c in storage.corrections(env.bot.db)]
    assert correction.label == "hate" and correction.moderator_id == server.mod.id
    assert decision(server.cards()[0]).startswith("**hate**: confirmed")


async def test_label_message_stores_a_false_negative(env, server):
    message = await server.member.send(server.general, "a subtle insult the model missed")
    assert server.cards() == []
    shown = await server.mod.context_menu(server.general, "Label message", message)
    assert shown.ephemeral
    await server.mod.click(shown.response, label="Offensive")
    [correction] = [c async for c in storage.corrections(env.bot.db)]
    assert (correction.label, correction.predicted, correction.flag_id) == ("offensive", "neutral", None)
    assert correction.text == "a subtle insult the model missed"
    assert "Stored **offensive**" in shown.response.content


async def test_label_message_is_hidden_from_and_refused_to_members(env, server):
    message = await server.member.send(server.general, "hello")
    try:
        await server.member.context_menu(server.general, "Label message", message)
    except Exception as exc:  # SimCord refuses what the Discord client would not show
        assert "not visible to this user" in str(exc)
    else:
        raise AssertionError("the context menu should be hidden from a member without Manage Messages")

    # A member whose permission was granted per command by an admin sees it, but the bot still checks.
    command = next(c for c in await env.bot.tree.fetch_commands() if c.name == "Label message")
    server.guild.set_command_permissions(command, {server.member: True})
    result = await server.member.context_menu(server.general, "Label message", message)
    assert result.ephemeral and "Manage Messages" in result.response.content
    assert_error(env, app_commands.MissingPermissions)
    assert await storage.count_corrections(env.bot.db) == 0


async def test_label_message_on_a_flagged_message_updates_its_card(env, server):
    message = await server.member.send(server.general, f"{HATE_WORD} flagged")
    shown = await server.mod.context_menu(server.general, "Label message", message)
    await server.mod.click(shown.response, label="Offensive")
    [correction] = [c async for c in storage.corrections(env.bot.db)]
    flag = await storage.flag_for_message(env.bot.db, message.id)
    assert correction.flag_id == flag.id and correction.label == "offensive"
    assert decision(server.cards()[0]).startswith(f"**offensive**: corrected by {server.mod.mention}")


async def test_label_message_refuses_messages_without_text_or_from_bots(env, server):
    await server.member.send(server.general, f"{HATE_WORD}")
    card = server.cards()[0]  # a message from the bot itself
    result = await server.mod.context_menu(server.modlog, "Label message", card)
    assert result.ephemeral and result.response.content == "Messages from bots are not classified."
    assert await storage.count_corrections(env.bot.db) == 0


async def test_a_forged_flag_id_too_large_for_sqlite_is_refused_like_an_unknown_one(env, server):
    # A modified client can send any custom id; here the forged button sits on a message in #mod-log.
    # 19 digits match the button's template but not SQLite's 64-bit integer.
    forged = "modbot:review:9999999999999999999:confirm"
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(label="Forged", custom_id=forged))
    message = await env.bot.get_channel(server.modlog.id).send("a card", view=view)

    result = await server.mod.click(message, custom_id=forged)
    assert result.ephemeral
    assert result.response.content == "This flag is not in this server's records."
    assert env.errors == []
    assert await storage.count_corrections(env.bot.db) == 0
