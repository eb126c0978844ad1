"""Retraining through SimCord: `/retrain`, the job process, the gate, the registry, hot swap and rollback.

Every job here is the real one: `python -m training.retrain` in its own process, on the tiny 2-layer GPT-J
with a `1d` adapter. Such a randomly initialised model learns the label *priors* of its data within a few
steps, not the messages' content, so the scenarios are built on priors: the first adapter is trained on
data where hate is the majority (it labels everything hate, with ~0.7), corrections that agree keep it
so, and a flood of corrections saying "neutral" about hate messages (a careless or malicious moderator)
turns the candidate into an always-neutral model whose macro-F1 on the gold set falls: the gate's job.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
import weakref
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import discord
import pytest
from discord import app_commands
from simcord import SetupError

from bot import Settings, checks, create_bot, retrain, storage
from bot.cogs.retrain import POLL_S

WORDS = ["the", "quick", "brown", "fox", "lazy", "dog", "good", "friend", "meeting", "time", "what", "like"]
KEYWORDS = {"hate": "vermin", "offensive": "idiot", "neutral": "friend"}


def make_examples(counts: dict[str, int], seed: int, exclude: set[str] = frozenset()) -> list[dict]:
    rng = random.Random(seed)
    out, seen = [], set(exclude)
    for label, count in counts.items():
        made = 0
        while made < count:
            text = " ".join(rng.choice(WORDS) for _ in range(3)) + f" {KEYWORDS[label]} {rng.randint(0, 99)}"
            if text in seen:
                continue
            seen.add(text)
            out.append({"text": text, "label": label})
            made += 1
    return out


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def first_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    """A `1d` adapter on the tiny GPT-J trained on hate-majority data, with a gold `val.jsonl` beside it."""
    import torch

    from training.args import TrainArgs
    from training.recipe import run_training

    root = tmp_path_factory.mktemp("first-adapter")
    base = make_examples({"hate": 40, "offensive": 10, "neutral": 10}, seed=1)
    gold = make_examples({"hate": 20, "offensive": 5, "neutral": 5}, seed=2, exclude={e["text"] for e in base})
    write_jsonl(root / "train.jsonl", base)
    write_jsonl(root / "gold.jsonl", gold)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = TrainArgs(data=(root / "train.jsonl",), out=root / "adapter", model=str(tiny_model_dir), device="cpu",
                         quantization="none", strategy="1d", epochs=3, lr=0.1, batch_size=8, optimizer="adamw",
                         warmup_ratio=0.0, max_message_tokens=32, val_fraction=0.1, version="first",
                         cache_dir=root / "cache")
        run_training(args, echo=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    (root / "adapter" / "val.jsonl").write_text((root / "gold.jsonl").read_text())
    return root / "adapter"


@pytest.fixture
def retrain_options() -> dict:
    return {}


@pytest.fixture
def retrain_every() -> int | None:
    return None


@pytest.fixture
def retrain_serving() -> str:
    return "auto"  # on the CPU: the model keeps serving while the job trains


@pytest.fixture
def settings(tmp_path, tiny_settings, first_adapter, retrain_options, retrain_every, retrain_serving) -> Settings:
    return Settings(db_path=tmp_path / "modbot.sqlite3", batch_wait_ms=2, adapter_dir=tmp_path / "adapters",
                    model=replace(tiny_settings, adapter=first_adapter), retrain_min_corrections=20,
                    retrain_threads=1, retrain_options=retrain_options, retrain_every_s=retrain_every,
                    retrain_serving=retrain_serving)


SLOW_JOB = pytest.mark.parametrize("retrain_options", [{"epochs": 500}], ids=["slow-job"])
# What the flagship's 11 GB card needs (MODBOT_RETRAIN_SERVING=auto decides it there): the model makes way.
PAUSE = pytest.mark.parametrize("retrain_serving", ["pause"], ids=["pause"])


@pytest.fixture
async def simcord_bot(settings):
    bot = create_bot(settings)  # the real tiny classifier, loaded by the bot from the registry / settings
    yield bot
    cog = bot.get_cog("Retrain")
    if cog is not None and cog.job is not None:
        cog.job.kill()
    await bot.close()


class Server:
    def __init__(self, env) -> None:
        self.env = env
        self.guild = env.create_guild("Retrain Server")
        self.general = self.guild.create_text_channel("general")
        self.modlog = self.guild.create_text_channel("mod-log")
        owners = self.guild.create_role("Owners", permissions=discord.Permissions(administrator=True))
        admins = self.guild.create_role("Admins", permissions=discord.Permissions(manage_guild=True,
                                                                                  manage_messages=True))
        self.owner = self.guild.add_member(env.create_user("olga"), roles=[owners])
        self.admin = self.guild.add_member(env.create_user("alice"), roles=[admins])
        self.member = self.guild.add_member(env.create_user("bob"))

    def cards(self) -> list[discord.Message]:
        return [m for m in self.modlog.history() if m.embeds and m.embeds[0].title.startswith("Flagged")]


def make_owners(env, *members) -> None:
    """What MODBOT_OWNER_IDS does, for users SimCord created after the bot was built."""
    ids = ",".join(str(m.id) for m in members)
    env.bot.settings = replace(env.bot.settings, owner_ids=Settings.from_env({"MODBOT_OWNER_IDS": ids}).owner_ids)


def not_owner(action: str) -> str:
    return f"Only the bot's owner can {action}: every server the bot is in shares the model."


@pytest.fixture
async def server(env) -> Server:
    server = Server(env)
    make_owners(env, server.owner)  # olga administers this server and owns the bot
    result = await server.owner.slash(server.general, "mod setup", review_channel=server.modlog)
    assert "Review cards will be posted" in result.response.content
    return server


async def add_corrections(db, records: list[dict], first_id: int = 1000) -> None:
    for offset, record in enumerate(records):
        await storage.add_correction(db, guild_id=1, channel_id=2, message_id=first_id + offset, author_id=3,
                                     text=record["text"], label=record["label"], moderator_id=4,
                                     now=datetime.now(UTC))


async def wait_until(env, predicate, what: str, timeout: float = 120.0):
    """Advance SimCord's clock (the bot reads the job's progress every POLL_S) until ``predicate()``."""
    deadline = time.perf_counter() + timeout
    while True:
        await env.advance_time(POLL_S)
        value = await predicate()
        if value:
            return value
        if time.perf_counter() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)  # real time for the job process


async def job_phase(env, number: int, phase: str):
    version = await storage.get_version(env.bot.db, number)
    return version if version.phase == phase or version.status != "training" else None


async def job_ended(env, number: int):
    version = await storage.get_version(env.bot.db, number)
    return version if version.status != "training" else None


def status_edits(env, message: discord.Message) -> list[str]:
    """The description of every edit of the status message, in order."""
    path = f"/channels/{message.channel.id}/messages/{message.id}"
    return [entry.json["embeds"][0]["description"] for entry in env.http_requests
            if entry.method == "PATCH" and entry.path == path and entry.json and entry.json.get("embeds")]


def status_message(server: Server) -> discord.Message:
    [message] = [m for m in server.general.history() if m.embeds and m.embeds[0].title.startswith("Retraining")]
    return message


# --------------------------------------------------------------------------- the tests


async def test_admin_retrain_runs_to_the_end_promotes_and_rollback_restores(env, server, settings):
    db = env.bot.db
    v1 = await storage.active_version(db)
    assert v1.number == 1 and v1.origin == "startup" and (settings.adapter_dir / "v1" / "train.jsonl").is_file()
    assert env.bot.service.adapter_version == "first"
    await add_corrections(db, make_examples({"hate": 25}, seed=3))

    result = await server.owner.slash(server.general, "retrain start")
    assert result.ephemeral and result.response.content.startswith("Retraining started: version 2, from version 1, "
                                                                    "on 25 corrections.")
    message = status_message(server)
    version = await wait_until(env, lambda: job_ended(env, 2), "the job to end")
    assert version.status == "active", version.reason

    # the status message moved through the phases, in order, and ends with the verdict and both pairs of figures
    edits = status_edits(env, message)
    phases = [next((p for p in ("exporting", "training", "evaluating", "promoted") if p in edit), None) for edit in edits]
    seen = [p for i, p in enumerate(phases) if p and p not in phases[:i]]
    assert seen == ["exporting", "training", "evaluating", "promoted"], edits
    assert any("epoch" in edit and "step" in edit and "loss" in edit and "left" in edit for edit in edits), edits
    final = status_message(server).embeds[0]
    figures = {f.name: f.value for f in final.fields}["Evaluation (new vs active)"]
    assert "gold set macro-F1: new" in figures and "held-out corrections accuracy: new" in figures

    # the registry: v2 active with its parent, data and figures; v1 previous; v2's directory is a full adapter
    v2, v1 = await storage.get_version(db, 2), await storage.get_version(db, 1)
    assert (v2.status, v2.parent, v2.started_by, v2.origin) == ("active", 1, server.owner.id, "discord")
    assert v1.status == "previous"
    assert v2.data["corrections"] == 25 and v2.data["corrections_held_out"] + v2.data["corrections_trained"] == 25
    assert v2.figures["candidate"]["gold"]["macro_f1"] >= v2.figures["active"]["gold"]["macro_f1"] - 0.01
    trained_on = (settings.adapter_dir / "v2" / "train.jsonl").read_text()
    assert "vermin" in trained_on and (settings.adapter_dir / "v2" / "retrain_val.jsonl").is_file()

    # hot swap through the model manager: v2 is served without a restart, and the next card shows it
    assert env.bot.service.adapter_version == "v2" and env.bot.models.version.number == 2
    await server.member.send(server.general, "those vermin again 7")
    card = server.cards()[-1]
    assert "adapter v2" in {f.name: f.value for f in card.embeds[0].fields}["Model"]

    model = await server.admin.slash(server.general, "mod model")
    fields = {f.name: f.value for f in model.response.embeds[0].fields}
    assert "Active: version 2 (v2)" in fields and "**v1** previous" in fields["Last versions"]

    # /mod rollback is for the bot's owner; it brings version 1 back the same way
    refused = await server.admin.slash(server.general, "mod rollback", version=1)
    assert refused.ephemeral and refused.response.content == not_owner("roll the model back")
    assert [type(e) for e in env.errors] == [checks.NotOwner]
    result = await server.owner.slash(server.general, "mod rollback", version=1)
    assert "Version 1 (first) is active again" in result.response.content
    assert (await storage.active_version(db)).number == 1 and env.bot.service.adapter_version == "first"
    assert (await storage.get_version(db, 2)).status == "previous"
    await server.member.send(server.general, "those vermin again 8")
    assert "adapter first" in {f.name: f.value for f in server.cards()[-1].embeds[0].fields}["Model"]


async def test_retrain_is_hidden_from_non_administrators_and_refused_to_all_but_the_owner(env, server):
    assert not [n for n in server.admin.available_commands(server.general) if n.startswith("retrain")]
    with pytest.raises(SetupError, match="not visible"):
        await server.admin.slash(server.general, "retrain start")
    assert "retrain start" in server.owner.available_commands(server.general)
    command = next(c for c in await env.bot.tree.fetch_commands() if c.name == "retrain")
    server.guild.set_command_permissions(command, {server.member: True})
    result = await server.member.slash(server.general, "retrain start", force=True)
    assert result.ephemeral and result.response.content == not_owner("retrain the model")
    result = await server.member.slash(server.general, "retrain status")
    assert result.ephemeral and result.response.content == "You need the Administrator permission to see the " \
                                                           "retraining status."
    assert await storage.latest_job(env.bot.db) is None
    assert [type(e) for e in env.errors] == [checks.NotOwner, app_commands.MissingPermissions]


async def test_too_few_corrections_without_force_are_refused(env, server):
    await add_corrections(env.bot.db, make_examples({"hate": 5}, seed=4))
    result = await server.owner.slash(server.general, "retrain start")
    assert result.response.content.startswith("Only 5 new corrections since version 1 was trained; the minimum is 20")
    assert await storage.latest_job(env.bot.db) is None
    assert not [m for m in server.general.history() if m.embeds]  # no status message: no job
    # force runs it anyway
    forced = await server.owner.slash(server.general, "retrain start", force=True)
    assert forced.response.content.startswith("Retraining started: version 2")
    env.bot.get_cog("Retrain").job.cancel()
    await wait_until(env, lambda: job_ended(env, 2), "the forced job to stop")


async def test_gate_rejection_keeps_the_old_adapter_and_says_why(env, server, settings):
    db = env.bot.db
    # a careless moderator marks a flood of hate messages neutral: the gold set says otherwise
    flood = [{"text": e["text"], "label": "neutral"} for e in make_examples({"hate": 60}, seed=5)]
    await add_corrections(db, flood)
    await server.owner.slash(server.general, "retrain start")
    version = await wait_until(env, lambda: job_ended(env, 2), "the job to end")
    assert version.status == "rejected", version.reason
    assert "gold macro-F1" in version.reason and "more than 0.01 below the active adapter" in version.reason
    new, old = version.figures["candidate"]["gold"]["macro_f1"], version.figures["active"]["gold"]["macro_f1"]
    assert new < old - 0.01
    assert (await storage.active_version(db)).number == 1 and env.bot.service.adapter_version == "first"
    assert (settings.adapter_dir / "v2" / "modbot_adapter.json").is_file()  # kept on disk, marked rejected
    final = status_message(server).embeds[0]
    assert "rejected by the evaluation gate" in final.description
    fields = {f.name: f.value for f in final.fields}
    assert "more than 0.01 below" in fields["Why it was rejected"] and "held-out corrections accuracy" in fields[
        "Evaluation (new vs active)"]


async def start_slow_job(env, server) -> int:
    await add_corrections(env.bot.db, make_examples({"hate": 20}, seed=6))
    await server.owner.slash(server.general, "retrain start")
    await wait_until(env, lambda: job_phase(env, 2, "training"), "training to start")
    return 2


@SLOW_JOB
async def test_cancel_stops_a_job_and_nothing_changes_while_classification_keeps_answering(env, server, settings):
    number = await start_slow_job(env, server)
    # the bot keeps serving while the job trains: a message is classified and flagged, commands answer
    classified = env.bot.service.classified
    await server.member.send(server.general, "filthy vermin 1")
    assert env.bot.service.classified == classified + 1
    assert "adapter first" in {f.name: f.value for f in server.cards()[-1].embeds[0].fields}["Model"]
    status = await server.owner.slash(server.general, "retrain status")
    assert status.response.embeds[0].description.startswith("**training: epoch")
    again = await server.owner.slash(server.general, "retrain start", force=True)
    assert again.response.content.startswith("A retraining job is already running (version 2, training")

    result = await server.owner.slash(server.general, "retrain cancel")
    assert result.response.content.startswith("Cancelling the job for version 2")
    version = await wait_until(env, lambda: job_ended(env, number), "the job to stop")
    assert version.status == "cancelled" and version.path is None
    assert (await storage.active_version(env.bot.db)).number == 1 and env.bot.service.adapter_version == "first"
    adapters = env.bot.settings.adapter_dir
    assert not (adapters / "v2").exists() and not list(adapters.glob(".v2.tmp-*"))
    assert "cancelled: nothing changed" in status_message(server).embeds[0].description
    assert (await server.owner.slash(server.general, "retrain cancel")).response.content == "No retraining job is running."


@SLOW_JOB
async def test_a_job_killed_mid_training_is_marked_failed_and_nothing_changes(env, server, settings):
    number = await start_slow_job(env, server)
    job = env.bot.get_cog("Retrain").job
    os.kill(job.process.pid, signal.SIGKILL)  # what the kernel's OOM killer does
    version = await wait_until(env, lambda: job_ended(env, number), "the job to be noticed dead")
    assert version.status == "failed" and "killed by SIGKILL" in version.reason and version.path is None
    assert (await storage.active_version(env.bot.db)).number == 1 and env.bot.service.adapter_version == "first"
    assert not (env.bot.settings.adapter_dir / "v2").exists()
    final = status_message(server).embeds[0]
    assert "failed" in final.description and "SIGKILL" in {f.name: f.value for f in final.fields}["Why it failed"]


async def test_a_job_left_running_by_a_dead_bot_is_marked_failed_at_the_next_start(env, server, settings):
    db = env.bot.db
    # what a bot that died mid-job leaves: a `training` row whose process is gone, a half-written directory
    version = await storage.start_job(db, model=settings.model.model, adapter_dir=settings.adapter_dir, parent=1,
                                      origin="discord", started_by=server.owner.id, now=datetime.now(UTC))
    await storage.set_job_pid(db, version.number, 2**22 + 12345)  # no such process
    half = settings.adapter_dir / f".v{version.number}.tmp-999"
    half.mkdir(parents=True)
    (half / "adapter_model.safetensors").write_bytes(b"half")
    old = env.bot
    await env.restart_bot(create_bot(settings))
    await old.close()
    failed = await storage.get_version(env.bot.db, version.number)
    assert failed.status == "failed" and failed.reason == "the bot stopped while the job was running"
    assert not half.exists() and (await storage.active_version(env.bot.db)).number == 1
    assert env.bot.service.adapter_version == "first"
    await env.bot.close()


@pytest.mark.parametrize("retrain_every", [3600], ids=["every-1h"])
async def test_scheduled_retraining_runs_when_due_and_posts_the_verdict_in_the_review_channel(env, server):
    await add_corrections(env.bot.db, make_examples({"hate": 5}, seed=7))
    await env.advance_time(3600)
    assert await storage.latest_job(env.bot.db) is None  # due, but fewer than the minimum: skipped
    await add_corrections(env.bot.db, make_examples({"hate": 20}, seed=8), first_id=2000)
    await env.advance_time(3600)
    version = await wait_until(env, lambda: job_ended(env, 2), "the scheduled job to end")
    assert version.origin == "schedule" and version.status == "active", version.reason
    [verdict] = [m for m in server.modlog.history() if m.embeds and m.embeds[0].title == "Retraining: version 2"]
    assert "promoted" in verdict.embeds[0].description
    fields = {f.name: f.value for f in verdict.embeds[0].fields}
    assert "the schedule" in fields["Started by"] and "gold set macro-F1" in fields["Evaluation (new vs active)"]
    assert env.bot.service.adapter_version == "v2"


def _shell_setup(monkeypatch, tmp_path, tiny_model_dir, first_adapter, corrections: list[dict]) -> Path:
    """A database holding ``corrections`` and the environment `modbot retrain` reads, in ``tmp_path``."""
    db_path = tmp_path / "modbot.sqlite3"

    async def seed():
        conn = await storage.open_database(db_path)
        await add_corrections(conn, corrections)
        await conn.close()

    asyncio.run(seed())
    monkeypatch.chdir(tmp_path)
    for name, value in {"MODBOT_DB": str(db_path), "MODBOT_MODEL": str(tiny_model_dir), "MODBOT_DEVICE": "cpu",
                        "MODBOT_QUANTIZATION": "none", "MODBOT_ADAPTER": str(first_adapter),
                        "MODBOT_ADAPTER_DIR": str(tmp_path / "adapters"), "MODBOT_RETRAIN_THREADS": "1",
                        "MODBOT_CACHE_DIR": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(name, value)
    return db_path


def test_modbot_retrain_runs_the_same_job_from_the_shell(monkeypatch, tmp_path, tiny_model_dir, first_adapter, capsys):
    from bot.cli import main

    db_path = _shell_setup(monkeypatch, tmp_path, tiny_model_dir, first_adapter,
                           make_examples({"hate": 22}, seed=9))
    assert main(["retrain", "--json"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("version 2: active: gold macro-F1") and "training: epoch" in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "active" and result["figures"]["candidate"]["heldout"]["n"] >= 1

    async def registry():
        conn = await storage.open_database(db_path)
        try:
            return [(v.number, v.status, v.origin) for v in await storage.list_versions(conn)]
        finally:
            await conn.close()

    assert asyncio.run(registry()) == [(2, "active", "shell"), (1, "previous", "startup")]
    # too few new corrections since version 2: refused in one line, exit status 2
    assert main(["retrain"]) == 2
    assert capsys.readouterr().err.startswith("modbot: error: Only 0 new corrections since version 2 was trained")


def test_the_job_process_is_not_given_the_discord_token(monkeypatch, tmp_path, tiny_model_dir, first_adapter, capsys):
    import subprocess

    from bot import retrain
    from bot.cli import main

    _shell_setup(monkeypatch, tmp_path, tiny_model_dir, first_adapter, make_examples({"hate": 21}, seed=11))
    monkeypatch.setenv("DISCORD_TOKEN", "the-bot-token")
    monkeypatch.setenv("SOME_UNRELATED_SECRET", "not-for-the-job")
    seen = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        # What the job process really holds (read while it starts up: importing torch takes seconds), once it
        # runs the job's command: until then /proc shows the environment it was forked with, this test's.
        deadline = time.monotonic() + 30
        command = "\0".join(str(part) for part in args[0]).encode()
        while not Path(f"/proc/{process.pid}/cmdline").read_bytes().startswith(command) and time.monotonic() < deadline:
            time.sleep(0.01)
        raw = Path(f"/proc/{process.pid}/environ").read_bytes()
        seen.append(dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item))
        return process

    monkeypatch.setattr(retrain.subprocess, "Popen", popen)
    assert main(["retrain"]) == 0  # the job still has everything it needs
    assert "version 2: active" in capsys.readouterr().out
    [job_env] = seen
    assert "DISCORD_TOKEN" not in job_env and "SOME_UNRELATED_SECRET" not in job_env
    assert "the-bot-token" not in "".join(job_env.values())
    assert job_env["PATH"] == os.environ["PATH"] and job_env["OMP_NUM_THREADS"] == "1"


def test_a_job_prepared_here_runs_on_another_machine_and_is_finished_here(monkeypatch, tmp_path, tiny_model_dir,
                                                                         first_adapter, capsys):
    import shutil

    import torch

    from bot.cli import main

    _shell_setup(monkeypatch, tmp_path, tiny_model_dir, first_adapter, make_examples({"hate": 21}, seed=10))
    assert main(["retrain", "--prepare", "job"]) == 0
    assert capsys.readouterr().out.startswith("prepared version 2 (from version 1, 21 corrections)")
    assert main(["retrain"]) == 2  # the prepared job holds the slot
    assert "already running (version 2" in capsys.readouterr().err

    elsewhere = tmp_path / "gpu-box" / "job"  # "another machine": the directory moves, nothing else comes along
    shutil.copytree(tmp_path / "job", elsewhere)
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGTERM)
    try:
        assert main(["retrain", "--run", str(elsewhere)]) == 0
    finally:
        torch.set_num_threads(threads)
        signal.signal(signal.SIGTERM, handler)
    assert "the candidate passes the gate" in capsys.readouterr().out
    back = tmp_path / "back"
    shutil.copytree(elsewhere, back)
    assert main(["retrain", "--finish", str(back)]) == 0
    assert capsys.readouterr().out.startswith("version 2: active: gold macro-F1")
    assert (tmp_path / "adapters" / "v2" / "modbot_adapter.json").is_file()
    assert main(["retrain", "--finish", str(back)]) == 2  # once only
    assert "version 2 is active, not a job waiting for its result" in capsys.readouterr().err


def test_finish_recomputes_the_verdict_and_an_edited_promote_flag_does_not_promote(monkeypatch, tmp_path,
                                                                                   tiny_model_dir, first_adapter,
                                                                                   capsys):
    import torch

    from bot.cli import main

    # a flood of hate messages labelled neutral: the candidate fails the gate on the gold set
    flood = [{"text": e["text"], "label": "neutral"} for e in make_examples({"hate": 60}, seed=5)]
    db_path = _shell_setup(monkeypatch, tmp_path, tiny_model_dir, first_adapter, flood)
    assert main(["retrain", "--prepare", "job"]) == 0
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGTERM)
    try:
        assert main(["retrain", "--run", "job"]) == 0
    finally:
        torch.set_num_threads(threads)
        signal.signal(signal.SIGTERM, handler)
    assert "the candidate is rejected by the gate" in capsys.readouterr().out

    result_file = tmp_path / "job" / "result.json"
    result = json.loads(result_file.read_text())
    assert result["promote"] is False
    result_file.write_text(json.dumps({**result, "promote": True, "reasons": ["all kept, trust me"]}))
    assert main(["retrain", "--finish", "job"]) == 3  # rejected, whatever the file says
    out = capsys.readouterr().out
    assert out.startswith("version 2: rejected: gold macro-F1") and "more than 0.01 below the active adapter" in out
    assert "trust me" not in out

    async def registry():
        conn = await storage.open_database(db_path)
        try:
            return [(v.number, v.status) for v in await storage.list_versions(conn)]
        finally:
            await conn.close()

    assert asyncio.run(registry()) == [(2, "rejected"), (1, "active")]


async def wait_served(env, adapter_version: str, timeout: float = 30.0) -> float:
    """Wait in real time (no command, no virtual clock) until the bot serves ``adapter_version``; the seconds."""
    started = time.perf_counter()
    while env.bot.models.served.adapter_version != adapter_version:
        waited = time.perf_counter() - started
        assert waited < timeout, f"adapter {adapter_version} not served after {waited:.0f} s"
        await asyncio.sleep(0.1)
    await env.settle()
    return time.perf_counter() - started


async def test_a_version_promoted_by_modbot_retrain_in_the_shell_is_served_within_30_s_without_a_command(
        env, server, settings, tiny_model_dir, first_adapter, tmp_path, caplog):
    import logging
    import subprocess
    import sys

    db = env.bot.db
    await add_corrections(db, make_examples({"hate": 22}, seed=9))
    caplog.set_level(logging.INFO, logger="bot")
    # `modbot retrain` in a shell on the bot's machine: another process, the same database and registry
    shell_env = {**os.environ, "MODBOT_DB": str(settings.db_path), "MODBOT_MODEL": str(tiny_model_dir),
                 "MODBOT_DEVICE": "cpu", "MODBOT_QUANTIZATION": "none", "MODBOT_ADAPTER": str(first_adapter),
                 "MODBOT_ADAPTER_DIR": str(settings.adapter_dir), "MODBOT_RETRAIN_THREADS": "1",
                 "MODBOT_CACHE_DIR": str(tmp_path / "cache"), "MODBOT_RETRAIN_MIN_CORRECTIONS": "20"}
    out_file, err_file = tmp_path / "retrain.out", tmp_path / "retrain.err"
    with open(out_file, "w") as out, open(err_file, "w") as err:
        shell = subprocess.Popen([sys.executable, "-m", "bot.cli", "retrain"], cwd=tmp_path, env=shell_env,
                                 stdout=out, stderr=err)
    deadline = time.perf_counter() + 300
    while shell.poll() is None:  # the bot keeps running meanwhile
        if time.perf_counter() > deadline:
            shell.kill()
            raise AssertionError("modbot retrain did not finish")
        await asyncio.sleep(0.5)
    out, err = out_file.read_text(), err_file.read_text()
    assert shell.returncode == 0, err[-2000:]
    assert out.startswith("version 2: active"), out

    version = await storage.active_version(db)
    assert (version.number, version.origin) == (2, "shell")
    waited = await wait_served(env, "v2")  # no command: the registry watcher
    since_promotion = (datetime.now(UTC) - version.activated_at).total_seconds()
    assert since_promotion <= 30, f"served {since_promotion:.1f} s after the promotion"
    assert env.bot.models.version.number == 2 and env.bot.service.adapter_version == "v2"
    assert any("Now serving adapter version 2 (v2), made active outside the bot" in r.getMessage()
               for r in caplog.records)
    print(f"served {waited:.1f} s after `modbot retrain` exited, {since_promotion:.1f} s after the promotion")

    await server.member.send(server.general, "vermin from the shell 1")
    assert "adapter v2" in {f.name: f.value for f in server.cards()[-1].embeds[0].fields}["Model"]
    result = await server.admin.slash(server.general, "mod model")
    fields = {f.name: f.value for f in result.response.embeds[0].fields}
    assert fields["Serving"].endswith("adapter v2") and "Active: version 2 (v2)" in fields


async def test_an_administrator_of_another_server_cannot_change_the_shared_model(env, server, settings, tmp_path):
    import shutil

    db = env.bot.db
    other = env.create_guild("Other Server")
    lobby = other.create_text_channel("lobby")
    bea = other.add_member(env.create_user("bea"), roles=[
        other.create_role("Admins", permissions=discord.Permissions(administrator=True))])
    # version 2 active (promoted from the shell), version 1 previous: something to roll back to
    version = await storage.start_job(db, model=settings.model.model, adapter_dir=settings.adapter_dir.resolve(),
                                      parent=1, origin="shell", started_by=None, now=datetime.now(UTC))
    shutil.copytree(settings.adapter_dir / "v1", version.path)
    await storage.activate_version(db, version.number, now=datetime.now(UTC))
    await add_corrections(db, make_examples({"hate": 25}, seed=12))

    # bea runs her own server, and can read what the model is...
    assert "from a probability of 0.90" in (
        await bea.slash(lobby, "mod threshold", label="hate", value=0.9)).response.content
    assert "Active: version 2 (v2)" in {f.name for f in (await bea.slash(lobby, "mod model")).response.embeds[0].fields}
    assert (await bea.slash(lobby, "retrain status")).response.embeds[0].title == "Retraining: version 2"
    # ...but neither rolls it back nor retrains it: every server would get her choice
    result = await bea.slash(lobby, "mod rollback", version=1)
    assert result.ephemeral and result.response.content == not_owner("roll the model back")
    assert (await storage.active_version(db)).number == 2
    result = await bea.slash(lobby, "retrain start")
    assert result.ephemeral and result.response.content == not_owner("retrain the model")
    assert (await storage.latest_job(db)).number == 2

    # the owner (MODBOT_OWNER_IDS) rolls back
    result = await server.owner.slash(server.general, "mod rollback", version=1)
    assert "Version 1 (first) is active again" in result.response.content
    assert (await storage.active_version(db)).number == 1 and env.bot.service.adapter_version == "first"

    # nor does she cancel the owner's retraining (here one prepared for another machine, which holds the slot)
    await retrain.prepare_remote(db, env.bot.settings, tmp_path / "job")
    result = await bea.slash(lobby, "retrain cancel")
    assert result.ephemeral and result.response.content == not_owner("cancel a retraining")
    assert (await storage.get_version(db, 3)).status == "training"
    result = await server.owner.slash(server.general, "retrain cancel")
    assert result.response.content.startswith("Version 3 (prepared for another machine) is cancelled")
    assert [type(e) for e in env.errors] == [checks.NotOwner] * 3


def test_corrections_from_servers_outside_modbot_training_guilds_do_not_train_the_model(
        monkeypatch, tmp_path, tiny_model_dir, first_adapter, capsys):
    from bot.cli import main

    trained = make_examples({"hate": 12}, seed=13)  # server 1 (add_corrections' guild)
    db_path = _shell_setup(monkeypatch, tmp_path, tiny_model_dir, first_adapter, trained)

    async def from_server_2():
        conn = await storage.open_database(db_path)
        for offset, record in enumerate(make_examples({"neutral": 30}, seed=14, exclude={e["text"] for e in trained})):
            await storage.add_correction(conn, guild_id=2, channel_id=5, message_id=5000 + offset, author_id=3,
                                         text=record["text"], label=record["label"], moderator_id=6,
                                         now=datetime.now(UTC))
        await conn.close()

    asyncio.run(from_server_2())
    monkeypatch.setenv("MODBOT_TRAINING_GUILDS", "1")
    # server 2's 30 corrections do not count towards the minimum...
    assert main(["retrain", "--prepare", "job"]) == 2
    assert capsys.readouterr().err.startswith("modbot: error: Only 12 new corrections since version 1 was trained")
    # ...and are not in what the job trains on
    assert main(["retrain", "--prepare", "job", "--force"]) == 0
    assert capsys.readouterr().out.startswith("prepared version 2 (from version 1, 12 corrections)")
    exported = [json.loads(line) for line in (tmp_path / "job" / "corrections.jsonl").read_text().splitlines()]
    assert {row["guild_id"] for row in exported} == {1} and sorted(r["text"] for r in exported) == sorted(
        e["text"] for e in trained)


@SLOW_JOB
async def test_a_cancel_asked_by_another_bot_process_stops_the_job_in_the_process_that_runs_it(env, server):
    number = await start_slow_job(env, server)
    running = await storage.running_job(env.bot.db)
    # What /retrain cancel does in a bot process that did not start the job (several processes, MODBOT_SHARD_IDS).
    retrain.request_cancel(running.job_dir)
    version = await wait_until(env, lambda: job_ended(env, number), "the job to stop")
    assert version.status == "cancelled" and version.path is None
    assert (await storage.active_version(env.bot.db)).number == 1 and env.bot.service.adapter_version == "first"
    assert "cancelled: nothing changed" in status_message(server).embeds[0].description


# --------------------------------------------------------------------------- MODBOT_RETRAIN_SERVING=pause


def fields_of(embed: discord.Embed) -> dict[str, str]:
    return {f.name: f.value for f in embed.fields}


def served_base(env) -> weakref.ref:
    """The served base model, without keeping it alive."""
    return weakref.ref(env.bot.models.backend.base.model)


async def the_model_is_released(env, base: weakref.ref) -> None:
    """While the job runs: no model in the bot (the served base model object is freed), the service refuses."""
    import gc

    models = env.bot.models
    assert models.paused and models.pause_reason == "MODBOT_RETRAIN_SERVING=pause"
    assert models._backend is None and env.bot.service.paused
    job = env.bot.get_cog("Retrain").job
    assert job is not None and job.returncode is None  # during the job
    gc.collect()
    assert base() is None


async def a_message_is_recorded_not_classified(env, server, text: str) -> discord.Message:
    message = await server.member.send(server.general, text)
    db = env.bot.db
    assert await storage.latest_prediction(db, message.id) is None
    assert [p.message_id for p in await storage.pending_messages(db)] == [message.id]
    return message


async def classified(env, message_id: int):
    await env.settle()
    return await storage.latest_prediction(env.bot.db, message_id)


@PAUSE
async def test_with_pause_the_job_has_the_model_to_itself_and_messages_meanwhile_are_classified_by_the_promoted_adapter(
        env, server):
    db = env.bot.db
    base = served_base(env)
    await add_corrections(db, make_examples({"hate": 25}, seed=3))
    result = await server.owner.slash(server.general, "retrain start")
    assert result.response.content.startswith("Retraining started: version 2")

    # the job process runs, and the bot holds no model: its base model is gone from memory
    await the_model_is_released(env, base)
    # a message that arrives now is recorded, not lost; moderators see why nothing is flagged
    message = await a_message_is_recorded_not_classified(env, server, "those vermin again 9")
    assert not server.cards()
    model = fields_of((await server.admin.slash(server.general, "mod model")).response.embeds[0])
    assert model["Serving"].endswith("adapter first (paused)")
    assert "MODBOT_RETRAIN_SERVING=pause" in model["Classification paused"]
    assert "1 message recorded" in model["Classification paused"]
    paused = fields_of(status_message(server).embeds[0])
    assert "New messages are recorded and classified when the job ends" in paused["Classification paused"]
    asked = await server.admin.slash(server.general, "mod classify", text="hello")
    assert "Classification is paused while a retraining job has the model's GPU" in asked.response.content

    version = await wait_until(env, lambda: job_ended(env, 2), "the job to end")
    assert version.status == "active", version.reason
    # the promoted adapter was loaded on a fresh base, and classified what was recorded
    record = await wait_until(env, lambda: classified(env, message.id), "the recorded message to be classified")
    assert record.adapter_version == "v2" and record.label == "hate"
    assert "adapter v2" in fields_of(server.cards()[-1].embeds[0])["Model"]
    assert await storage.pending_messages(db) == []
    assert not env.bot.models.paused and env.bot.service.adapter_version == "v2"
    final = fields_of(status_message(server).embeds[0])
    assert "resumed when it ended" in final["Classification"]
    assert "Classification paused" not in fields_of(
        (await server.admin.slash(server.general, "mod model")).response.embeds[0])
    # and it serves on: a new message is classified at once
    later = await server.member.send(server.general, "those vermin again 10")
    assert (await storage.latest_prediction(db, later.id)).adapter_version == "v2"


@PAUSE
@SLOW_JOB
@pytest.mark.parametrize("end", ["cancelled", "failed"])
async def test_with_pause_a_cancelled_or_failed_job_gives_the_model_back(env, server, end):
    base = served_base(env)
    number = await start_slow_job(env, server)
    await the_model_is_released(env, base)
    message = await a_message_is_recorded_not_classified(env, server, "filthy vermin 2")
    job = env.bot.get_cog("Retrain").job
    if end == "cancelled":
        await server.owner.slash(server.general, "retrain cancel")
    else:
        os.kill(job.process.pid, signal.SIGKILL)  # the job crashed, or the kernel's OOM killer
    version = await wait_until(env, lambda: job_ended(env, number), "the job to end")
    assert version.status == end
    record = await wait_until(env, lambda: classified(env, message.id), "the recorded message to be classified")
    assert record.adapter_version == "first"
    assert "adapter first" in fields_of(server.cards()[-1].embeds[0])["Model"]
    assert await storage.pending_messages(env.bot.db) == []
    assert not env.bot.models.paused and env.bot.service.adapter_version == "first"
    assert (await storage.active_version(env.bot.db)).number == 1
    assert "resumed when it ended" in fields_of(status_message(server).embeds[0])["Classification"]


@PAUSE
@SLOW_JOB
async def test_with_pause_messages_recorded_when_the_bot_stops_mid_job_are_classified_at_the_next_start(
        env, server, settings):
    base = served_base(env)
    number = await start_slow_job(env, server)
    await the_model_is_released(env, base)
    message = await a_message_is_recorded_not_classified(env, server, "filthy vermin 3")
    old = env.bot
    await env.restart_bot(create_bot(settings))  # the old bot stops: its job is killed, its records stay
    await old.close()
    record = await wait_until(env, lambda: classified(env, message.id), "the recorded message to be classified")
    assert record.adapter_version == "first" and not env.bot.models.paused
    assert (await storage.get_version(env.bot.db, number)).status == "failed"
    assert await storage.pending_messages(env.bot.db) == []
    await env.bot.close()


@PAUSE
async def test_with_pause_a_rejected_job_gives_the_model_back_with_the_active_adapter(env, server):
    base = served_base(env)
    flood = [{"text": e["text"], "label": "neutral"} for e in make_examples({"hate": 60}, seed=5)]
    await add_corrections(env.bot.db, flood)
    await server.owner.slash(server.general, "retrain start")
    await the_model_is_released(env, base)
    message = await a_message_is_recorded_not_classified(env, server, "filthy vermin 4")
    version = await wait_until(env, lambda: job_ended(env, 2), "the job to end")
    assert version.status == "rejected", version.reason
    record = await wait_until(env, lambda: classified(env, message.id), "the recorded message to be classified")
    assert record.adapter_version == "first" and not env.bot.models.paused
    assert await storage.pending_messages(env.bot.db) == []
