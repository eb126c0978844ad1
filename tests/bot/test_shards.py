"""Several bot processes: MODBOT_SHARD_COUNT / MODBOT_SHARD_IDS, the scheduler lease, and the work each
process does for its own shards' servers. (Two real processes: test_shard_processes.py.)"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import discord
import pytest
import simcord

from bot import Settings, storage
from bot.lease import LEASE_NAME, LEASE_S
from bot.settings import SettingsError
from model import Prediction

from .conftest import HATE_WORD, Server

SHARDS = {"shard_count": 2, "shard_ids": (1,)}  # this process runs shard 1 of 2; another runs shard 0
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)  # older than any retention period


def guild_on(shard: int, count: int = 2) -> int:
    """A server id that Discord's formula ((id >> 22) % count) puts on ``shard``."""
    return (1000 * count + shard) << 22


class ShardServer(Server):
    """conftest.Server, created on a given shard."""

    def __init__(self, env, shard_id: int) -> None:
        create_guild = env.create_guild
        env.create_guild = lambda name: create_guild(name, shard_id=shard_id)
        try:
            super().__init__(env)
        finally:
            env.create_guild = create_guild


@pytest.fixture
def simcord_bot(make_bot, settings):
    return make_bot(settings_=replace(settings, **SHARDS))


# --------------------------------------------------------------------------- settings


def test_shard_settings_are_read_and_checked():
    assert Settings.from_env({}).shard_count is None and not Settings.from_env({}).sharded  # one process
    settings = Settings.from_env({"MODBOT_SHARD_COUNT": "4", "MODBOT_SHARD_IDS": "0, 2-3"})
    assert (settings.shard_count, settings.shard_ids, settings.sharded) == (4, (0, 2, 3), True)
    assert Settings.from_env({"MODBOT_SHARD_COUNT": "2"}).shard_ids is None  # all shards in this process

    cases = {
        (("MODBOT_SHARD_IDS", "0"),): "MODBOT_SHARD_IDS needs MODBOT_SHARD_COUNT",
        (("MODBOT_SHARD_COUNT", "2"), ("MODBOT_SHARD_IDS", "2")): "shard 2 does not exist: with MODBOT_SHARD_COUNT=2 "
                                                                   "the shards are 0 to 1",
        (("MODBOT_SHARD_COUNT", "2"), ("MODBOT_SHARD_IDS", "0,0")): "give each shard once",
        (("MODBOT_SHARD_COUNT", "4"), ("MODBOT_SHARD_IDS", "one")): "'one' is not a shard number",
        (("MODBOT_SHARD_COUNT", "4"), ("MODBOT_SHARD_IDS", "3-1")): "the range '3-1' is backwards",
        (("MODBOT_SHARD_COUNT", "two"),): "MODBOT_SHARD_COUNT='two' is not a whole number",
        (("MODBOT_SHARD_COUNT", "0"),): "MODBOT_SHARD_COUNT=0 is not valid",
    }
    for env, expected in cases.items():
        with pytest.raises(SettingsError) as caught:
            Settings.from_env(dict(env))
        assert expected in str(caught.value), (env, str(caught.value))


# --------------------------------------------------------------------------- the lease itself


async def test_the_lease_goes_to_one_process_and_to_another_when_it_expires_or_is_given_up(tmp_path):
    # Two connections to one file, as two processes have.
    first = await storage.open_database(tmp_path / "modbot.sqlite3")
    second = await storage.open_database(tmp_path / "modbot.sqlite3")
    try:
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        minute = timedelta(seconds=LEASE_S)
        assert await storage.take_lease(first, LEASE_NAME, "A", now=t0, expires_at=t0 + minute)
        assert not await storage.take_lease(second, LEASE_NAME, "B", now=t0, expires_at=t0 + minute)
        # A renews before it expires: B still cannot take it, even after A's first period.
        assert await storage.take_lease(first, LEASE_NAME, "A", now=t0 + minute / 3, expires_at=t0 + minute * 4 / 3)
        assert not await storage.take_lease(second, LEASE_NAME, "B", now=t0 + minute, expires_at=t0 + 2 * minute)
        lease = await storage.get_lease(second, LEASE_NAME)
        assert (lease.holder, lease.acquired_at, lease.expires_at) == ("A", t0, t0 + minute * 4 / 3)
        # A stops renewing (it died): once expired, B takes it, and A's late renewal is refused.
        later = t0 + minute * 4 / 3
        assert await storage.take_lease(second, LEASE_NAME, "B", now=later, expires_at=later + minute)
        assert not await storage.take_lease(first, LEASE_NAME, "A", now=later, expires_at=later + minute)
        assert (await storage.get_lease(first, LEASE_NAME)).holder == "B"
        # B stops cleanly: A takes it at its next try, long before B's period would have ended.
        assert not await storage.release_lease(first, LEASE_NAME, "A")  # not A's to give up
        assert await storage.release_lease(second, LEASE_NAME, "B")
        assert await storage.take_lease(first, LEASE_NAME, "A", now=later, expires_at=later + minute)
    finally:
        await first.close()
        await second.close()


async def test_processes_opening_a_new_database_at_the_same_moment_migrate_it_once(tmp_path):
    # systemd starts modbot@0 and modbot@1 together: the second waits for the first's migrations, then has none.
    path = tmp_path / "modbot.sqlite3"
    connections = await asyncio.gather(*(storage.open_database(path) for _ in range(3)))
    try:
        every = [number for number, _, _ in storage.available_migrations()]
        for conn in connections:
            assert await storage.applied_migrations(conn) == every
    finally:
        for conn in connections:
            await conn.close()


# --------------------------------------------------------------------------- one shard process in SimCord


async def test_a_shard_process_runs_its_shards_and_classifies_only_its_servers(env):
    bot = env.bot
    assert isinstance(bot, discord.AutoShardedClient)
    assert (bot.shard_count, bot.shard_ids, sorted(bot.shards)) == (2, [1], [1])
    ours = ShardServer(env, shard_id=1)
    await ours.set_review_channel()
    theirs = ShardServer(env, shard_id=0)  # run by the other process: this one never hears of it

    mine = await ours.member.send(ours.general, f"{HATE_WORD} on shard 1")
    other = await theirs.member.send(theirs.general, f"{HATE_WORD} on shard 0")

    assert [guild.id for guild in bot.guilds] == [ours.guild.id]
    assert (await storage.latest_prediction(bot.db, mine.id)).label == "hate"
    assert len(ours.cards()) == 1
    assert await storage.latest_prediction(bot.db, other.id) is None
    # Alone, it holds the scheduler lease: it runs the scheduled jobs.
    assert bot.runs_scheduled_jobs
    assert (await storage.get_lease(bot.db, LEASE_NAME)).holder == bot.scheduler.holder


async def test_the_heartbeat_renews_the_lease(env):
    before = await storage.get_lease(env.bot.db, LEASE_NAME)
    await env.advance_time(LEASE_S)  # three heartbeats
    after = await storage.get_lease(env.bot.db, LEASE_NAME)
    assert after.holder == before.holder and after.acquired_at == before.acquired_at
    assert after.expires_at > before.expires_at
    assert env.bot.runs_scheduled_jobs


async def old_flag(bot, guild_id: int, channel_id: int, card: tuple[int, int], text: str) -> storage.Flag:
    """A flag stored LONG_AGO, as another process stores one for a server of its shard."""
    prediction = await storage.add_prediction(
        bot.db, guild_id=guild_id, channel_id=channel_id, message_id=guild_id + 7, author_id=42,
        prediction=Prediction("hate", {"hate": 0.9, "offensive": 0.07, "neutral": 0.03}, "m", "v"),
        text=text, now=LONG_AGO)
    flag = await storage.add_flag(bot.db, prediction, label="hate", action="flag", now=LONG_AGO)
    await storage.set_flag_card(bot.db, flag.id, *card)
    return flag


async def test_retention_runs_in_the_lease_holder_only_and_moves_with_the_lease(env):
    bot, retention = env.bot, env.bot.get_cog("Retention")
    ours = ShardServer(env, shard_id=1)
    await ours.set_review_channel()
    message = await ours.member.send(ours.general, f"{HATE_WORD} long ago")
    await bot.db.execute("UPDATE predictions SET created_at = ? WHERE message_id = ?",
                         (LONG_AGO.isoformat(timespec="microseconds"), message.id))
    elsewhere = await old_flag(bot, guild_on(0), 555, (556, 557), f"{HATE_WORD} in a shard-0 server")

    # Another process holds the lease (it took it while this one was stalled): at its next heartbeat this
    # process finds out, and its daily pass does nothing.
    now = datetime.now(UTC)
    await bot.db.execute("UPDATE leases SET holder = 'the other process', expires_at = ?",
                         ((now + timedelta(hours=1)).isoformat(timespec="microseconds"),))
    await env.advance_time(LEASE_S / 3)
    assert not bot.runs_scheduled_jobs
    await retention.daily()
    assert (await storage.flag_for_message(bot.db, message.id)).text is not None

    # The other process dies: its lease expires, this one takes it over and runs the pass at once.
    await bot.db.execute("UPDATE leases SET expires_at = ?", ((now - timedelta(seconds=1)).isoformat(timespec="microseconds"),))
    await env.advance_time(LEASE_S / 3)
    assert bot.runs_scheduled_jobs
    assert (await storage.get_lease(bot.db, LEASE_NAME)).holder == bot.scheduler.holder
    assert (await storage.flag_for_message(bot.db, message.id)).text is None
    card = ours.cards()[0].embeds[0]
    assert HATE_WORD not in card.description and "erased" in card.description
    # The pass erased the other server's text too; its card is left for the process that runs its shard.
    assert (await storage.get_flag(bot.db, elsewhere.id)).text is None
    assert await storage.cards_to_refresh(bot.db) == [(elsewhere.id, guild_on(0))]
    await bot.get_cog("Privacy").erase_cards()
    assert await storage.cards_to_refresh(bot.db) == [(elsewhere.id, guild_on(0))]  # not this process's


async def test_a_card_left_by_another_process_is_rewritten_by_the_process_of_its_shard(env):
    bot = env.bot
    ours = ShardServer(env, shard_id=1)
    await ours.set_review_channel()
    message = await ours.member.send(ours.general, f"{HATE_WORD} to expire")
    flag = await storage.flag_for_message(bot.db, message.id)
    # The holder (another process) erased the text and left the card, as in the test above.
    assert await storage.erase_expired_texts(bot.db, datetime.now(UTC) + timedelta(days=1)) == [flag.id]
    await storage.add_card_to_refresh(bot.db, flag, datetime.now(UTC))
    assert HATE_WORD in ours.cards()[0].embeds[0].description

    assert await bot.get_cog("Privacy").erase_cards() == 0
    card = ours.cards()[0].embeds[0]
    assert HATE_WORD not in card.description and "erased" in card.description
    assert await storage.cards_to_refresh(bot.db) == []


async def test_messages_left_by_a_shutdown_are_fetched_again_by_the_process_of_their_shard(env):
    bot = env.bot
    ours = ShardServer(env, shard_id=1)
    await ours.set_review_channel()
    now = datetime.now(UTC)
    await storage.add_pending_message(bot.db, guild_id=guild_on(0), channel_id=1, message_id=2, edited=False, now=now)
    await bot.get_cog("Flagging").classify_pending()
    assert [item.message_id for item in await storage.pending_messages(bot.db)] == [2]  # shard 0's, left alone


async def test_without_shard_settings_the_bot_is_one_process_with_no_lease(make_bot, tmp_path):
    bot = make_bot()
    async with simcord.run(bot) as env:
        assert not isinstance(env.bot, discord.AutoShardedClient)
        assert bot.scheduler is None and bot.runs_scheduled_jobs
        assert await storage.get_lease(bot.db, LEASE_NAME) is None
