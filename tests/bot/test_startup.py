"""Start-up through SimCord: setup_hook may run more than once on the same client (a re-login)."""

from __future__ import annotations

import logging

from bot import storage
from bot.bot import EXTENSIONS

from .conftest import HATE_WORD


async def test_a_relogin_keeps_every_extension_the_database_and_the_service(env, server, caplog):
    bot = env.bot
    db, service = bot.db, bot.service
    caplog.set_level(logging.INFO, logger="bot")

    await env.restart_bot(bot)  # the same client logs in again: discord.py runs its setup_hook once more

    assert env.bot is bot
    assert bot.failed_extensions == {}
    assert "Could not load" not in caplog.text
    assert set(bot.extensions) == set(EXTENSIONS)
    # Nothing opened twice: the connection and the worker thread of the first start are the ones in use.
    assert bot.db is db and bot.service is service
    # and the bot still does its work: a flagged message gets a card whose buttons store a decision
    await server.member.send(server.general, f"{HATE_WORD} after the re-login")
    [card] = server.cards()
    await server.mod.click(card, label="Confirm (hate)")
    [correction] = [c async for c in storage.corrections(bot.db)]
    assert correction.label == "hate" and correction.moderator_id == server.mod.id
    result = await server.admin.slash(server.general, "mod settings")
    assert {f.name: f.value for f in result.response.embeds[0].fields}["Review channel"] == server.modlog.mention
