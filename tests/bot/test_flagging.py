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


async def test_message_below_threshold_produces_no_card_but_is_stored(env, server):
    message = await server.member.send(server.general, "good morning, the event starts at 8pm")
    assert server.cards() == []
    prediction = await storage.latest_prediction(env.bot.db, message.id)
    assert prediction.label == "neutral"
    assert prediction.text is None  # the text of a message that is not flagged is never kept


async def test_threshold_decides(env, server):
    # offensive is 0.7 for the keyword classifier: flagged at the default 0.5, not at 0.8
    await server.admin.slash(server.general, "mod threshold", label="offensive", value=0.8)
    await server.member.send(server.general, f"you {OFFENSIVE_WORD}")
    assert server.cards() == []
    await server.admin.slash(server.general, "mod threshold", label="offensive", value=0.6)
    await server.member.send(server.general, f"you {OFFENSIVE_WORD} again")
    assert [c.embeds[0].title for c in server.cards()] == ["Flagged as offensive (0.70)"]


async def test_exempt_channel_role_bot_and_empty_messages_are_not_classified(env, server):
    lounge = server.guild.create_text_channel("lounge")
    result = await server.admin.slash(server.general, "mod exempt", channel=lounge)
    assert "no longer classified" in result.response.content
    trusted = server.guild.create_role("Trusted")
    result = await server.admin.slash(server.general, "mod exempt", role=trusted)
    assert "no longer classified" in result.response.content
    veteran = server.guild.add_member(env.create_user("vet"), roles=[trusted])
    other_bot = server.guild.add_member(env.create_user("otherbot", bot=True))

    await server.member.send(lounge, f"{HATE_WORD} in an exempt channel")
    await veteran.send(server.general, f"{HATE_WORD} from an exempt role")
    await other_bot.send(server.general, f"{HATE_WORD} from a bot")
    await server.member.send(server.general, "\u200b\u200b")  # renders as nothing
    await server.member.send(server.general, "", attachments=[("cat.png", b"\x89PNG")])
    assert server.cards() == []
    assert await storage.count_predictions(env.bot.db) == 0

    await server.admin.slash(server.general, "mod unexempt", channel=lounge)
    await server.member.send(lounge, f"{HATE_WORD} once the channel is no longer exempt")
    assert len(server.cards()) == 1


async def test_threads_are_classified_and_follow_their_channel_exemption(env, server):
    from simcord import ChannelHandle

    thread = ChannelHandle(env, server.guild, env.backend.create_thread(server.general.id, "chat", server.member.id))
    await server.member.send(thread, f"{HATE_WORD} in a thread")
    assert len(server.cards()) == 1
    await server.admin.slash(server.general, "mod exempt", channel=server.general)
    await server.member.send(thread, f"{HATE_WORD} in a thread of an exempt channel")
    assert len(server.cards()) == 1


async def test_a_message_at_discords_length_limit_is_classified_and_quoted_within_limits(env, server):
    text = (f"{HATE_WORD} and more words " * 100)[:2000]
    message = await server.member.send(server.general, text)
    card = server.cards()[0].embeds[0]
    assert len(card.description) <= 4096
    assert "500 more characters" in card.description
    assert (await storage.flag_for_message(env.bot.db, message.id)).text == text


async def test_card_post_failure_is_logged_and_the_bot_keeps_serving(env, server, caplog):
    env.inject_error("POST", f"/channels/{server.modlog.id}/messages", status=500)
    message = await server.member.send(server.general, f"{HATE_WORD} number one")
    assert server.cards() == []
    assert "Could not post the review card" in caplog.text
    flag = await storage.flag_for_message(env.bot.db, message.id)
    assert flag is not None and flag.card_message_id is None
    assert (await storage.latest_prediction(env.bot.db, message.id)).label == "hate"
    # the fault was one-off: the next message gets its card
    await server.member.send(server.general, f"{HATE_WORD} number two")
    assert len(server.cards()) == 1
    queue = await server.mod.slash(server.general, "mod queue")
    assert queue.response.embeds[0].title == "Flags to review: 2"


async def test_no_review_channel_posts_nothing_and_mod_commands_say_how_to_set_one(env):
    from .conftest import Server

    server = Server(env)  # no /mod setup
    message = await server.member.send(server.general, f"{HATE_WORD}!")
    assert server.cards() == []
    assert await storage.flag_for_message(env.bot.db, message.id) is not None
    result = await server.mod.slash(server.general, "mod queue")
    assert "/mod setup review_channel" in result.response.content


async def test_delete_and_timeout_actions(env, server):
    result = await server.admin.slash(server.general, "mod action", label="hate", action="timeout", minutes=15)
    assert "timed out for 15 min" in result.response.content
    message = await server.member.send(server.general, f"{HATE_WORD} here")
    assert message.id not in [m.id for m in server.general.history()]
    timed_out_until = env.backend.get_guild(server.guild.id).members[server.member.id].timed_out_until
    assert timed_out_until is not None  # set by the bot's PATCH on the member
    card = server.cards()[0].embeds[0]
    action = {f.name: f.value for f in card.fields}["Action"]
    assert "message deleted" in action and "timed out for 15 min" in action
    # the bot deleted it itself: the text stays for the review
    assert (await storage.flag_for_message(env.bot.db, message.id)).text == f"{HATE_WORD} here"

    await server.admin.slash(server.general, "mod action", label="offensive", action="none")
    carol = server.guild.add_member(env.create_user("carol"))  # bob is timed out: he cannot post
    await carol.send(server.general, f"{OFFENSIVE_WORD}")
    assert len(server.cards()) == 1


async def test_nothing_is_deleted_by_default(env, server):
    message = await server.member.send(server.general, f"{HATE_WORD} stays")
    assert message.id in [m.id for m in server.general.history()]


async def test_edit_is_classified_again_and_delete_erases_the_text(env, server):
    message = await server.member.send(server.general, "perfectly fine")
    assert server.cards() == []
    await server.member.edit(message, f"edited into {HATE_WORD}")
    assert len(server.cards()) == 1
    flag = await storage.flag_for_message(env.bot.db, message.id)
    assert flag.text == f"edited into {HATE_WORD}"
    await server.member.delete(message)
    flag = await storage.get_flag(env.bot.db, flag.id)
    assert flag.text is None and flag.message_deleted
    card = server.cards()[0]
    assert "deleted" in card.embeds[0].description
    assert HATE_WORD not in card.embeds[0].description
    assert all(child.disabled for row in card.components for child in row.children)


async def test_burst_of_200_messages_is_classified_in_batches_with_nothing_dropped(env, server, classifier):
    import time

    classifier.batches.clear()
    started = time.perf_counter()
    for i in range(200):
        server.guild  # noqa: B018 - keep the loop obvious
        env.backend.create_message(server.general.id, server.member.id, f"message number {i}")
    await env.settle(timeout=60)
    elapsed = time.perf_counter() - started
    service = env.bot.service.stats()
    assert await storage.count_predictions(env.bot.db) == 200
    assert service.classified == 200 and service.dropped == 0
    assert sum(len(b) for b in classifier.batches) == 200
    assert len(classifier.batches) < 200 / 4, classifier.batches  # batched, not one by one
    assert max(len(b) for b in classifier.batches) == env.bot.settings.model.batch_size
    assert classifier.threads == {next(iter(classifier.threads))} and "modbot-classifier" in next(
        iter(classifier.threads))
    print(f"burst of 200: {elapsed:.2f}s, {len(classifier.batches)} batches, sizes {service.batch_sizes}")


def test_a_50000_character_text_fits_a_card():
    from datetime import UTC, datetime

    from bot import cards

    text = ("**bold** <@123> " * 4000)[:50_000]
    now = datetime(2026, 5, 1, tzinfo=UTC)
    prediction = storage.PredictionRecord(1, 2, 3, 4, 5, "hate", {"hate": 0.9, "offensive": 0.05, "neutral": 0.05},
                                          "m", "v1", True, text, now)
    flag = storage.Flag(1, 2, 3, 4, 5, "hate", "flag", None, None, None, False, now, prediction)
    embed = cards.render_card(flag)
    assert len(embed) <= 6000 and len(embed.description) <= 4096  # Discord's limits for one embed
    assert embed.description.endswith("(48,500 more characters)")
    assert "\\*\\*bold\\*\\*" in embed.description  # the author's formatting is shown, not applied


async def test_a_message_that_arrives_while_another_process_holds_the_database_is_stored_after(
        env, server, tmp_path):
    from .test_storage import hold_the_database

    async with env.bot.db.execute("PRAGMA busy_timeout = 100"):  # SQLite's own wait (5 s in use), made short
        pass
    holder = hold_the_database(env.bot.settings.db_path, 1.0)
    message = await server.member.send(server.general, f"those people are {HATE_WORD}")
    assert holder.wait(10) == 0
    prediction = await storage.latest_prediction(env.bot.db, message.id)
    assert prediction is not None and prediction.label == "hate"
    assert len(server.cards()) == 1


async def test_a_database_locked_for_too_long_loses_the_message_with_one_log_line(env, server, monkeypatch, caplog):
    from .test_storage import hold_the_database

    async with env.bot.db.execute("PRAGMA busy_timeout = 100"):
        pass
    monkeypatch.setattr(storage, "LOCKED_RETRY_SECONDS", 0.3)
    holder = hold_the_database(env.bot.settings.db_path, 2.0)
    message = await server.member.send(server.general, f"those people are {HATE_WORD}")
    assert holder.wait(10) == 0
    assert await storage.latest_prediction(env.bot.db, message.id) is None
    [line] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert line.getMessage().startswith(f"Message {message.id} in channel {server.general.id} was not stored: "
                                        "The database stayed locked by another process")
    assert line.exc_info is None and env.errors == []


async def test_a_queue_overflow_logs_a_few_lines_not_two_per_dropped_message(make_bot, settings, caplog):
    import dataclasses
    import time

    import simcord

    from .conftest import KeywordClassifier, Server

    class Slow(KeywordClassifier):
        def classify(self, texts):
            time.sleep(0.02)
            return super().classify(texts)

    bot = make_bot(settings_=dataclasses.replace(settings, queue_size=4), classifier_=Slow())
    async with simcord.run(bot) as env:
        server = Server(env)
        for i in range(150):
            env.backend.create_message(server.general.id, server.member.id, f"message number {i}")
        await env.settle(timeout=60)
        dropped = env.bot.service.stats().dropped
        stored = await storage.count_predictions(env.bot.db)
    assert dropped > 50 and stored == 150 - dropped
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert 1 <= len(lines) <= 3, lines
    assert lines[-1].endswith(f"{dropped} since start")


def send_poll(env, server, question: str, answers: list[str]):
    """A poll from the member, built in SimCord's backend (its members have no poll-sending helper)."""
    from datetime import UTC, datetime, timedelta

    from simcord.backend.models.message import Poll, PollAnswer

    poll = Poll(question=question, answers=[PollAnswer(i, text) for i, text in enumerate(answers, start=1)],
                expiry=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    return env.backend.create_message(server.general.id, server.member.id, "", poll=poll)


async def test_a_forwarded_message_is_classified_by_what_it_forwards(env, server, classifier):
    lounge = server.guild.create_text_channel("lounge")
    await server.admin.slash(server.general, "mod exempt", channel=lounge)
    original = await server.member.send(lounge, f"those people are {HATE_WORD}")
    assert server.cards() == []  # exempt where it was written
    forward = await server.member.forward(original, server.general)
    assert forward.content == "" and forward.message_snapshots  # the text is in the snapshot only
    [card] = server.cards()
    assert f"those people are {HATE_WORD}" in card.embeds[0].description
    assert (await storage.flag_for_message(env.bot.db, forward.id)).text == f"those people are {HATE_WORD}"
    assert classifier.batches[-1] == [f"those people are {HATE_WORD}"]


async def test_a_poll_is_classified_by_its_question_and_answers(env, server, classifier):
    stored = send_poll(env, server, f"are those people {HATE_WORD}?", ["yes", "obviously"])
    await env.settle()
    [card] = server.cards()
    text = f"are those people {HATE_WORD}?\nyes\nobviously"
    assert (await storage.flag_for_message(env.bot.db, stored.id)).text == text
    assert classifier.batches[-1] == [text]
    # a harmless poll is classified too (and not flagged)
    harmless = send_poll(env, server, "pizza or pasta tonight?", ["pizza", "pasta"])
    await env.settle()
    assert (await storage.latest_prediction(env.bot.db, harmless.id)).label == "neutral"
    assert len(server.cards()) == 1


async def test_label_message_labels_a_poll_by_its_text(env, server):
    stored = send_poll(env, server, "who is the worst here?", ["you", "me"])
    await env.settle()
    message = next(m for m in server.general.history() if m.id == stored.id)
    shown = await server.mod.context_menu(server.general, "Label message", message)
    await server.mod.click(shown.response, label="Offensive")
    [correction] = [c async for c in storage.corrections(env.bot.db)]
    assert correction.text == "who is the worst here?\nyou\nme"


# --------------------------------------------------------------------------- deletions erase the text for good


async def test_deleting_a_reviewed_message_erases_its_text_from_the_card(env, server):
    message = await server.member.send(server.general, f"those people are {HATE_WORD}")
    await server.mod.click(server.cards()[0], label="Confirm (hate)")
    assert HATE_WORD in server.cards()[0].embeds[0].description  # reviewed: the card quotes what was decided on
    await server.member.delete(message)
    embed = server.cards()[0].embeds[0]
    assert HATE_WORD not in embed.description and "deleted" in embed.description
    assert {f.name: f.value for f in embed.fields}["Decision"].startswith("**hate**: confirmed")
    assert (await storage.flag_for_message(env.bot.db, message.id)).text is None


class GatedClassifier:
    """The keyword classifier, held at the start of each batch until the test releases it."""

    def __init__(self, inner) -> None:
        import threading

        self.inner_classify = inner.classify
        self.started, self.release = threading.Event(), threading.Event()

    def classify(self, texts):
        self.started.set()
        self.release.wait(30)
        return self.inner_classify(texts)


async def test_a_message_deleted_while_it_is_classified_is_neither_stored_nor_carded(env, server, classifier,
                                                                                     monkeypatch):
    import asyncio
    import time

    gated = GatedClassifier(classifier)
    monkeypatch.setattr(classifier, "classify", gated.classify)  # the bot's backend, held at each batch
    flagging = env.bot.get_cog("Flagging")
    deletions_handled = asyncio.Event()
    handle_deletion = flagging.forget

    async def forget(message_id):
        await handle_deletion(message_id)
        deletions_handled.set()

    monkeypatch.setattr(flagging, "forget", forget)
    try:
        stored = env.backend.create_message(server.general.id, server.member.id, f"those people are {HATE_WORD}")
        deadline = time.monotonic() + 10
        while not gated.started.is_set():  # the bot received it and the classifier has it
            assert time.monotonic() < deadline, "the message never reached the classifier"
            await asyncio.sleep(0.01)
        env.backend.delete_message(server.general.id, stored.id)
        await asyncio.wait_for(deletions_handled.wait(), 10)  # the bot handled the deletion first
    finally:
        gated.release.set()
    await env.settle()
    assert server.cards() == []
    assert await storage.flag_for_message(env.bot.db, stored.id) is None
    assert await storage.latest_prediction(env.bot.db, stored.id) is None


async def test_an_edit_event_arriving_after_the_deletion_stores_nothing(env, server, classifier):
    from simcord.backend import serializers

    message = await server.member.send(server.general, "perfectly fine")
    # Discord delivered the edit after the deletion: the edit's payload, made before the message was deleted
    stored = env.backend.get_message(server.general.id, message.id)
    stored.content = f"edited into {HATE_WORD}"
    late_edit = dict(serializers.message_payload(env.backend, stored))
    await server.member.delete(message)
    batches = len(classifier.batches)
    env.backend.emit("MESSAGE_UPDATE", late_edit)
    await env.settle()
    assert server.cards() == []
    assert await storage.flag_for_message(env.bot.db, message.id) is None
    assert all(p is None or p.text is None for p in [await storage.latest_prediction(env.bot.db, message.id)])
    assert len(classifier.batches) == batches  # not even classified


async def test_a_message_the_bot_deleted_itself_keeps_its_text_for_the_review(env, server):
    await server.admin.slash(server.general, "mod action", label="hate", action="delete")
    message = await server.member.send(server.general, f"{HATE_WORD} removed by the bot")
    assert not await storage.is_erased(env.bot.db, message.id)
    assert HATE_WORD in server.cards()[0].embeds[0].description
