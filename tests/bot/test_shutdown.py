"""Stopping the bot: the queued messages are classified, or recorded and classified at the next start."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import threading
import time

import simcord

from bot import storage
from bot.bot import ModBot
from bot.cli import main

from .conftest import HATE_WORD, KeywordClassifier, Server


class Slow(KeywordClassifier):
    """Takes ``seconds`` per batch; blocks on ``gate`` first when one is given."""

    def __init__(self, seconds: float = 0.0, gate=None) -> None:
        super().__init__()
        self.seconds, self.gate = seconds, gate

    def classify(self, texts):
        if self.gate is not None:
            self.gate.wait(30)
        time.sleep(self.seconds)
        return super().classify(texts)


def small_batches(settings):
    return dataclasses.replace(settings, model=dataclasses.replace(settings.model, batch_size=2))


async def send_without_waiting(env, server, count: int) -> list[int]:
    """Post ``count`` messages (every fourth one hateful) and wait until the bot has handed every one to its
    classification service, without settling."""
    ids = [env.backend.create_message(server.general.id, server.member.id,
                                      f"{HATE_WORD} number {i}" if i % 4 == 0 else f"message number {i}").id
           for i in range(count)]
    for _ in range(500):
        stats = env.bot.service.stats()
        if stats.queued + stats.in_flight + stats.classified >= count:
            break
        await asyncio.sleep(0.01)
    return ids


async def test_shutdown_classifies_the_queued_messages_before_it_stops(make_bot, settings, caplog):
    caplog.set_level(logging.INFO, logger="bot")
    gate = threading.Event()  # the model waits until every message is queued
    bot = make_bot(settings_=small_batches(settings), classifier_=Slow(0.02, gate=gate))
    async with simcord.run(bot) as env:
        server = Server(env)
        await server.set_review_channel()
        ids = await send_without_waiting(env, server, 40)
        assert env.bot.service.stats().queued > 10  # still queued when the bot is told to stop
        db_path = env.bot.settings.db_path
        gate.set()
        await env.bot.close()
        assert len(server.cards()) == 10
    conn = await storage.open_database(db_path)
    try:
        assert [await storage.latest_prediction(conn, i) is not None for i in ids] == [True] * 40
        assert await storage.pending_messages(conn) == []
    finally:
        await conn.close()
    assert "Stopping: classifying the" in caplog.text and "not classified" not in caplog.text


async def test_messages_still_queued_after_the_shutdown_bound_are_classified_at_the_next_start(
        make_bot, settings, monkeypatch, caplog):
    from bot import bot as bot_module

    monkeypatch.setattr(bot_module, "SHUTDOWN_DRAIN_SECONDS", 0.3)
    gate = threading.Event()  # the classifier is stuck until the end of the test
    bot = make_bot(settings_=small_batches(settings), classifier_=Slow(gate=gate))
    try:
        async with simcord.run(bot) as env:
            server = Server(env)
            await server.set_review_channel()
            ids = await send_without_waiting(env, server, 40)
            await env.bot.close()
            gate.set()  # the batch the shutdown cut short ends; nothing waits for its result
            conn = await storage.open_database(settings.db_path)
            pending = await storage.pending_messages(conn)
            assert await storage.count_predictions(conn) == 0
            await conn.close()
            assert sorted(p.message_id for p in pending) == sorted(ids)
            assert "Stopping: 40 queued messages were not classified within 0 s; they are recorded" in caplog.text

            deleted = ids[4]  # deleted while the bot was down: it is not classified at the next start
            env.backend.delete_message(server.general.id, deleted)
            await env.restart_bot(make_bot())
            await env.settle()
            db = env.bot.db
            assert [await storage.latest_prediction(db, i) is not None for i in ids] == [i != deleted for i in ids]
            assert await storage.pending_messages(db) == []
            assert len(server.cards()) == 9
    finally:
        gate.set()


def test_sigterm_closes_the_bot_as_ctrl_c_does(monkeypatch, tmp_path):
    """systemd stops a service with SIGTERM: `modbot run` closes the bot (drain, record) instead of just ending."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", "not-a-real-token")
    monkeypatch.setenv("MODBOT_DB", str(tmp_path / "m.sqlite3"))
    closed = []

    async def start(self, token, *, reconnect=True):  # instead of connecting: the service manager says stop
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(200):
            if self.is_closed():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("SIGTERM did not close the bot")

    real_close = ModBot.close

    async def close(self):
        closed.append(asyncio.current_task().get_name())
        await real_close(self)

    monkeypatch.setattr(ModBot, "start", start)
    monkeypatch.setattr(ModBot, "close", close)
    # Before `modbot run` handles SIGTERM itself, this keeps it from ending the test run.
    previous = signal.signal(signal.SIGTERM, lambda *_: closed.append("default handler"))
    try:
        assert main(["run"]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert closed and "default handler" not in closed
