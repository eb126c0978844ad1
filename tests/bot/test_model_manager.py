"""The model manager owns what the bot serves: start-up from the registry, what another process makes active
(served within seconds, without a command), rollback; `/mod model` only reads.

Through SimCord with the keyword stand-in backend (conftest.KeywordClassifier), whose serve_adapter reads and
checks the adapter directory as the real backend does. The same paths with the real tiny model and a real
`modbot retrain` are in test_retrain.py and test_unloadable_adapters.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import Settings, storage
from model.labels import LABELS

from .conftest import HATE_WORD


def make_adapter(path: Path, version: str) -> Path:
    """A complete adapter directory (a few-shot one: metadata only, no weights to read)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "modbot_adapter.json").write_text(json.dumps({
        "version": version, "base_model": "keyword-test", "base_fingerprint": {}, "template_id": "test",
        "labels": list(LABELS), "strategy": "few-shot"}))
    return path


@pytest.fixture
async def simcord_bot(make_bot, settings):
    """A bot whose registry already holds version 1 (kw-1), active: what earlier runs leave."""
    conn = await storage.open_database(settings.db_path)
    await storage.register_adapter(conn, number=1, name="kw-1", model=settings.model.model,
                                   path=make_adapter(settings.adapter_dir / "v1", "kw-1"), source=None,
                                   now=datetime.now(UTC))
    await conn.close()
    return make_bot()


async def promote_elsewhere(settings, version_name: str, *, complete: bool = True) -> storage.AdapterVersion:
    """What `modbot retrain` in a shell leaves, through its own connection: a new version, active."""
    other = await storage.open_database(settings.db_path)
    try:
        version = await storage.start_job(other, model=settings.model.model, adapter_dir=settings.adapter_dir,
                                          parent=1, origin="shell", started_by=None, now=datetime.now(UTC))
        if complete:
            make_adapter(version.path, version_name)
        else:  # the job's directory without its metadata: not an adapter
            version.path.mkdir(parents=True)
        return await storage.activate_version(other, version.number, now=datetime.now(UTC))
    finally:
        await other.close()


async def wait_until(env, predicate, what: str, timeout: float = 30.0) -> float:
    """Real time (the watcher is a thread), no command and no virtual clock; the seconds it took."""
    started = time.perf_counter()
    while not await predicate():
        assert time.perf_counter() - started < timeout, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.05)
    await env.settle()
    return time.perf_counter() - started


def card_model(server) -> str:
    return {f.name: f.value for f in server.cards()[-1].embeds[0].fields}["Model"]


def make_owner(env, member) -> None:
    env.bot.settings = replace(env.bot.settings,
                               owner_ids=Settings.from_env({"MODBOT_OWNER_IDS": str(member.id)}).owner_ids)


async def test_the_registry_s_active_version_is_served_at_start_off_the_event_loop(env, server, settings,
                                                                                    classifier):
    assert env.bot.models.served.adapter_version == "kw-1" and env.bot.models.version.number == 1
    assert classifier.served_paths == [(settings.adapter_dir / "v1")]
    assert threading.main_thread().name not in classifier.serve_threads
    await server.member.send(server.general, f"{HATE_WORD} at start")
    assert "adapter kw-1" in card_model(server)


async def test_a_version_made_active_by_another_process_is_served_within_seconds_without_a_command(
        env, server, settings, classifier):
    v2 = await promote_elsewhere(settings, "kw-2")

    async def served():
        return env.bot.models.served.adapter_version == "kw-2"

    waited = await wait_until(env, served, "the promoted version served")
    assert waited < 30
    assert classifier.served_paths[-1] == v2.path and env.bot.models.version.number == 2
    assert (await storage.active_version(env.bot.db)).number == 2
    await server.member.send(server.general, f"{HATE_WORD} after the promotion")
    assert "adapter kw-2" in card_model(server)


async def test_mod_model_only_reads(env, server, settings, classifier):
    env.bot.models.stop_watching()  # hold what is served still: only a command could change it now
    await promote_elsewhere(settings, "kw-2")
    result = await server.mod.slash(server.general, "mod model")
    fields = {f.name: f.value for f in result.response.embeds[0].fields}
    assert fields["Serving"] == "keyword-test · adapter kw-1"  # what is served, not what it would like to serve
    assert "Active: version 2 (v2)" in fields  # the registry, as it is
    assert classifier.served_paths == [settings.adapter_dir / "v1"]  # no adapter was loaded by the command
    await server.member.send(server.general, f"{HATE_WORD} still kw-1")
    assert "adapter kw-1" in card_model(server)


async def test_an_unloadable_version_made_active_elsewhere_is_refused_and_the_previous_keeps_serving(
        env, server, settings, classifier):
    v2 = await promote_elsewhere(settings, "kw-2", complete=False)

    async def refused():
        return (await storage.get_version(env.bot.db, 2)).status == "failed"

    await wait_until(env, refused, "the unloadable version refused")
    failed = await storage.get_version(env.bot.db, 2)
    assert failed.reason.startswith("its adapter cannot be loaded: ") and failed.path == v2.path and v2.path.is_dir()
    assert (await storage.active_version(env.bot.db)).number == 1  # the registry names what is served again
    assert env.bot.models.served.adapter_version == "kw-1" and env.bot.models.version.number == 1
    await server.member.send(server.general, f"{HATE_WORD} after the refusal")
    assert "adapter kw-1" in card_model(server)
    fields = {f.name: f.value for f in (await server.mod.slash(server.general, "mod model")).response.embeds[0].fields}
    assert fields["Could not be loaded"].startswith("**v2**: its adapter cannot be loaded: ")


async def test_rollback_goes_through_the_manager_and_a_broken_version_is_refused_in_a_sentence(
        env, server, settings, classifier):
    make_owner(env, server.admin)
    v2 = await promote_elsewhere(settings, "kw-2")

    async def served_v2():
        return env.bot.models.served.adapter_version == "kw-2"

    await wait_until(env, served_v2, "the promoted version served")
    loads = len(classifier.served_paths)
    result = await server.admin.slash(server.general, "mod rollback", version=1)
    assert result.response.content.startswith("Version 1 (kw-1) is active again")
    assert classifier.served_paths[loads:] == [settings.adapter_dir / "v1"]
    assert threading.main_thread().name not in classifier.serve_threads
    assert (await storage.active_version(env.bot.db)).number == 1 and env.bot.models.version.number == 1
    await server.member.send(server.general, f"{HATE_WORD} after the rollback")
    assert "adapter kw-1" in card_model(server)

    (v2.path / "modbot_adapter.json").unlink()  # version 2 is damaged meanwhile
    result = await server.admin.slash(server.general, "mod rollback", version=2)
    assert result.response.content.startswith(f"Version 2 cannot be loaded: {v2.path} is not a modbot adapter")
    assert "Traceback" not in result.response.content
    assert env.bot.models.served.adapter_version == "kw-1" and (await storage.active_version(env.bot.db)).number == 1


async def test_a_month_of_virtual_time_wakes_the_manager_for_nothing_and_it_still_serves_a_promotion(
        env, server, settings, monkeypatch):
    from .test_retention import only_the_daily_loop

    only_the_daily_loop(env)
    syncs = []
    sync = env.bot.models.sync

    async def counted() -> None:
        syncs.append(time.perf_counter())
        await sync()

    monkeypatch.setattr(env.bot.models, "sync", counted)
    await server.member.send(server.general, f"{HATE_WORD} before the month")  # the bot's own writes too
    started = time.perf_counter()
    await env.advance_time(29 * 86400)
    assert syncs == [] and time.perf_counter() - started < 60  # no loop of the manager's was stepped through

    await promote_elsewhere(settings, "kw-2")

    async def served():
        return env.bot.models.served.adapter_version == "kw-2"

    await wait_until(env, served, "the promoted version served after the month")
    assert len(syncs) == 1
