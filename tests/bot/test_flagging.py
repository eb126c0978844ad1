"""Flagging through SimCord: what produces a review card and what does not."""

from __future__ import annotations

from bot import storage

from .conftest import HATE_WORD, OFFENSIVE_WORD


async def test_message_above_threshold_produces_a_card(env, server):
    message = await server.member.send(server.general, f"those people are {HATE_WORD}")
    cards = server.cards()
    assert len(cards) == 1
    embed = cards[0].embeds[0]
    assert embed.title == "Flagged as hate (0.90)"
    assert HATE_WORD in embed.description
    fields = {f.name: f.value for f in embed.fields}
    assert server.member.mention in fields["Author"]
    assert f"/{server.general.id}/{message.id}" in fields["Where"]
    assert "hate 0.90 · offensive 0.07 · neutral 0.03" in fields["Prediction"]
    assert fields["Model"] == "keyword-test · adapter test-1"
    buttons = [child for row in cards[0].components for child in row.children]
    assert [b.label for b in buttons] == ["Confirm (hate)", "Hate", "Offensive", "Neutral"]
    flag = await storage.flag_for_message(env.bot.db, message.id)
    assert buttons[0].custom_id == f"modbot:review:{flag.id}:confirm"
    assert flag.text == f"those people are {HATE_WORD}"
