"""Retention: unreviewed flags lose their text after MODBOT_RETENTION_DAYS; corrections keep theirs."""

from __future__ import annotations

from bot import storage

from .conftest import HATE_WORD


def only_the_daily_loop(env) -> None:
    """Advancing a month through the privacy cog's five-minute loop would settle the bot 8,000 times."""
    env.bot.get_cog("Privacy").queued_cards.cancel()


async def test_unreviewed_texts_are_erased_after_the_retention_period(env, server):
    reviewed = await server.member.send(server.general, f"{HATE_WORD} reviewed")
    unreviewed = await server.member.send(server.general, f"{HATE_WORD} never reviewed")
    await server.mod.click(server.cards()[0], label="Confirm (hate)")
    only_the_daily_loop(env)

    await env.advance_time(29 * 86400)
    assert (await storage.flag_for_message(env.bot.db, unreviewed.id)).text is not None

    await env.advance_time(2 * 86400)  # past the default 30 days
    flag = await storage.flag_for_message(env.bot.db, unreviewed.id)
    assert flag.text is None
    card = server.cards()[1]
    assert HATE_WORD not in card.embeds[0].description and "erased" in card.embeds[0].description
    assert (await storage.flag_for_message(env.bot.db, reviewed.id)).text == f"{HATE_WORD} reviewed"
    [correction] = [c async for c in storage.corrections(env.bot.db)]
    assert correction.text == f"{HATE_WORD} reviewed"


async def test_the_ids_of_deleted_messages_are_kept_a_week_then_dropped(env, server):
    message = await server.member.send(server.general, f"{HATE_WORD} deleted")
    await server.member.delete(message)
    only_the_daily_loop(env)
    await env.advance_time(6 * 86400)
    assert await storage.is_erased(env.bot.db, message.id)  # a late edit is still refused
    await env.advance_time(2 * 86400)
    assert not await storage.is_erased(env.bot.db, message.id)  # the table does not grow for ever
    assert (await storage.flag_for_message(env.bot.db, message.id)).text is None
