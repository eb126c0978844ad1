"""An adapter version that cannot be loaded never stops the bot and is never thrown away: it is marked failed
with the reason, its directory is kept, the last good version serves, and the log and `/mod model` say so.

Through SimCord with the real tiny classifier and, for a promotion, the real retraining job (see
test_retrain.py, whose fixtures these tests share).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from datetime import UTC, datetime

import pytest

from bot import create_bot, storage
from model import read_adapter

from . import test_retrain as shared

# The retraining tests' fixtures: the tiny classifier wearing its first adapter, the registry, the server.
first_adapter = shared.first_adapter
retrain_options = shared.retrain_options
retrain_every = shared.retrain_every
retrain_serving = shared.retrain_serving
settings = shared.settings
simcord_bot = shared.simcord_bot
server = shared.server


def damage(weights, how: str) -> bytes:
    """Damage an adapter's weights file as a full disk, a bad copy or a stray `rm` would; returns the original."""
    original = weights.read_bytes()
    if how == "truncated":
        weights.write_bytes(original[: len(original) // 2])
    elif how == "garbage":
        weights.write_bytes(b"\x00\x01 not safetensors " * 64)
    else:
        weights.unlink()
    return original


async def make_active_copy(db, settings, name: str = "v2", damaged: str | None = None) -> storage.AdapterVersion:
    """What a promotion from the shell leaves: version 2, a copy of version 1 named ``name``, active; its weights
    damaged first (see damage) when ``damaged`` says how."""
    version = await storage.start_job(db, model=settings.model.model, adapter_dir=settings.adapter_dir.resolve(),
                                      parent=1, origin="shell", started_by=None, now=datetime.now(UTC))
    shutil.copytree(settings.adapter_dir / "v1", version.path)
    meta = version.path / "modbot_adapter.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "version": name}))
    if damaged is not None:
        damage(read_adapter(version.path).weights_file, damaged)
    return await storage.activate_version(db, version.number, now=datetime.now(UTC))


def model_fields(result) -> dict[str, str]:
    return {f.name: f.value for f in result.response.embeds[0].fields}


def card_model(server) -> str:
    return {f.name: f.value for f in server.cards()[-1].embeds[0].fields}["Model"]


@pytest.mark.parametrize("how", ["truncated", "garbage", "missing"])
async def test_an_active_version_that_cannot_be_loaded_gives_way_to_the_last_good_one_at_start(
        env, server, settings, caplog, how):
    # The bot is down while the shell promotes (a running bot serves a promotion within seconds: the next tests)
    env.bot.models.stop_watching()
    weights = read_adapter(settings.adapter_dir / "v1").weights_file
    v2 = await make_active_copy(env.bot.db, settings, damaged=how)

    caplog.set_level(logging.INFO, logger="bot")
    old = env.bot
    await env.restart_bot(create_bot(settings))  # the next start: the bot comes up
    await old.close()
    bot = env.bot
    assert bot.failed_extensions == {} and bot.service.adapter_version == "first"

    # the registry: version 2 failed with the reason and its directory kept, version 1 active again (no new
    # version registered from MODBOT_ADAPTER)
    failed, active = await storage.get_version(bot.db, 2), await storage.active_version(bot.db)
    assert failed.status == "failed" and failed.path == v2.path and (v2.path / "modbot_adapter.json").is_file()
    assert failed.reason.startswith("its adapter cannot be loaded: ") and weights.name in failed.reason
    assert active.number == 1 and [v.number for v in await storage.list_versions(bot.db)] == [2, 1]
    # loudly: an ERROR naming the version, and a WARNING naming the one served instead
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("Adapter version 2 (v2) cannot be loaded and is marked failed" in m for m in errors), errors
    assert any(r.levelno == logging.WARNING and "Serving adapter version 1, the last good one, instead of version 2"
               in r.getMessage() for r in caplog.records)
    assert "Traceback" not in caplog.text

    result = await server.admin.slash(server.general, "mod model")
    fields = model_fields(result)
    assert "Active: version 1 (first)" in fields and "**v2** failed" in fields["Last versions"]
    assert fields["Could not be loaded"].startswith("**v2**: its adapter cannot be loaded: ")
    await server.member.send(server.general, "those vermin again 1")
    assert "adapter first" in card_model(server)
    await bot.close()


async def test_a_version_promoted_from_the_shell_that_cannot_be_loaded_is_marked_and_the_bot_keeps_serving(
        env, server, settings, caplog):
    caplog.set_level(logging.INFO, logger="bot")
    v2 = await make_active_copy(env.bot.db, settings, damaged="truncated")

    # No command: the registry watcher sees the promotion, the backend refuses the adapter
    deadline = time.perf_counter() + 30
    while (await storage.get_version(env.bot.db, 2)).status != "failed":
        assert time.perf_counter() < deadline, "the bot did not look at the promoted version within 30 s"
        await asyncio.sleep(0.1)
    await env.settle()
    assert env.bot.service.adapter_version == "first" and env.bot.models.version.number == 1
    assert v2.path.is_dir()
    assert (await storage.active_version(env.bot.db)).number == 1  # the registry says what is served
    result = await server.admin.slash(server.general, "mod model")
    fields = model_fields(result)
    assert "Active: version 1 (first)" in fields and fields["Could not be loaded"].startswith("**v2**: ")
    assert any(r.levelno == logging.ERROR and "Adapter version 2 (v2) cannot be loaded" in r.getMessage()
               for r in caplog.records)


async def test_a_promoted_adapter_that_fails_to_load_on_the_swap_is_kept_marked_and_explained(
        env, server, settings, caplog):
    db = env.bot.db
    await shared.add_corrections(db, shared.make_examples({"hate": 25}, seed=3))
    result = await server.owner.slash(server.general, "retrain start")
    assert result.response.content.startswith("Retraining started: version 2")
    cog = env.bot.get_cog("Retrain")
    # Let the job finish in real time while the bot's clock stands still (it reads the job's files only when
    # SimCord's clock moves), then damage the new adapter before the bot swaps it in.
    deadline = time.perf_counter() + 300
    while cog.job.returncode is None:
        assert time.perf_counter() < deadline, "the job did not finish"
        await asyncio.sleep(0.5)
    assert json.loads((cog.job.spec.job_dir / "result.json").read_text())["promote"] is True
    weights = read_adapter(settings.adapter_dir / "v2").weights_file
    original = damage(weights, "truncated")
    caplog.set_level(logging.INFO, logger="bot")

    version = await shared.wait_until(env, lambda: shared.job_ended(env, 2), "the job's end to be recorded")
    assert version.status == "failed" and version.path == (settings.adapter_dir / "v2").resolve()
    assert version.reason.startswith("the new adapter passed the gate but cannot be loaded: ")
    assert f"its directory is kept: {version.path}" in version.reason
    assert (version.path / "modbot_adapter.json").is_file() and (version.path / "train.jsonl").is_file()
    assert (await storage.active_version(db)).number == 1 and env.bot.service.adapter_version == "first"
    assert any(r.levelno == logging.ERROR and "version 2 passed the gate but cannot be loaded" in r.getMessage()
               for r in caplog.records)
    final = shared.status_message(server).embeds[0]
    assert "failed" in final.description
    assert "passed the gate but cannot be loaded" in {f.name: f.value for f in final.fields}["Why it failed"]
    assert model_fields(await server.admin.slash(server.general, "mod model"))["Could not be loaded"].startswith(
        "**v2**: the new adapter passed the gate")

    # kept, so it can be repaired and served: the owner restores the file and rolls forward to it
    weights.write_bytes(original)
    rolled = await server.owner.slash(server.general, "mod rollback", version=2)
    assert "Version 2 (v2) is active again" in rolled.response.content
    assert env.bot.service.adapter_version == "v2"
