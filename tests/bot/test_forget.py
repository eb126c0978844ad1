"""Erasure on request: `modbot forget` (a subprocess, after a real retrain) and `/mod forget` (SimCord)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import discord

from bot import Settings, checks, storage

from .conftest import HATE_WORD
from .test_retrain import add_corrections, first_adapter, make_examples  # noqa: F401 (first_adapter: a fixture)

REPO = Path(__file__).resolve().parents[2]
BOB = 424242424242424242  # the member who asks for their messages to be erased


def modbot(tmp_path: Path, env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def files_holding(root: Path, text: str) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and text in path.read_text(errors="replace")]


def test_forget_a_member_after_a_retrain_erases_their_text_from_every_file(tmp_path, tiny_model_dir,
                                                                          first_adapter):  # noqa: F811
    db_path = tmp_path / "modbot.sqlite3"
    others = make_examples({"hate": 16, "offensive": 3, "neutral": 3}, seed=41)
    theirs = [f"bob wrote these words {n} vermin" for n in range(5)]

    async def seed():
        conn = await storage.open_database(db_path)
        await add_corrections(conn, others)  # author 3
        for n, text in enumerate(theirs):
            await storage.add_correction(conn, guild_id=1, channel_id=2, message_id=5000 + n, author_id=BOB,
                                         text=text, label="hate", moderator_id=4, now=datetime.now(UTC))
        await conn.close()

    asyncio.run(seed())
    env = {**os.environ, "PYTHONPATH": str(REPO), "MODBOT_DB": str(db_path), "MODBOT_MODEL": str(tiny_model_dir),
           "MODBOT_DEVICE": "cpu", "MODBOT_QUANTIZATION": "none", "MODBOT_ADAPTER": str(first_adapter),
           "MODBOT_ADAPTER_DIR": str(tmp_path / "adapters"), "MODBOT_RETRAIN_THREADS": "1",
           "MODBOT_CACHE_DIR": str(tmp_path / "cache")}
    retrained = modbot(tmp_path, env, "retrain", "--force")
    assert retrained.returncode in (0, 3), retrained.stderr  # promoted or rejected: version 2 is kept either way
    adapters = tmp_path / "adapters"
    job, v2 = adapters / "jobs" / "v2", adapters / "v2"
    # where a retrain copied bob's messages
    assert all(job / "corrections.jsonl" in files_holding(adapters, text) for text in theirs)
    assert any(v2 / "train.jsonl" in files_holding(adapters, text) for text in theirs)
    # What the README used to advise: delete the rows. The files keep the text all the same.
    with sqlite3.connect(db_path) as conn:
        conn.execute("DELETE FROM corrections WHERE author_id = ?", (BOB,))

    result = modbot(tmp_path, env, "forget", "--user", str(BOB))
    assert result.returncode == 0, result.stderr
    assert all(files_holding(adapters, text) == [] for text in theirs), result.stdout
    assert all(files_holding(tmp_path / "modbot.sqlite3", text) == [] for text in theirs)
    # the others' corrections are still there, in the export and in what v2 was trained on
    kept = [r["text"] for r in others if v2 / "train.jsonl" in files_holding(adapters, r["text"])]
    assert kept and all(job / "corrections.jsonl" in files_holding(adapters, r["text"]) for r in others)
    out = result.stdout
    assert out.startswith(f"Erased the messages of user {BOB}:")
    assert "- database: 0 corrections, 0 flags, 0 stored message texts" in out  # the rows were already gone
    assert f"  - {job}: corrections.jsonl 5, " in out and "train_pool.jsonl" in out
    assert f"  - {v2}: " in out and "train.jsonl" in out
    assert "Adapter versions trained on it: v2. Their weights may still carry it" in out
    for path in (job / "corrections.jsonl", job / "train_pool.jsonl", v2 / "train.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert not list(path.parent.glob(f".{path.name}.*"))  # no temporary file left
    # written down (counts, never text), so that a second run still says which versions learned from it
    again = modbot(tmp_path, env, "forget", "--user", str(BOB))
    assert again.returncode == 0 and again.stdout.startswith(f"Nothing stored about user {BOB}")
    assert "Adapter versions trained on it: v2." in again.stdout
    with sqlite3.connect(db_path) as conn:
        summaries = [json.loads(s) for (s,) in conn.execute("SELECT summary FROM erasures WHERE user_id = ?", (BOB,))]
    assert [s["trained"] for s in summaries] == [[2], [2]]
    assert not any(text in json.dumps(summaries) for text in theirs)


def test_forget_refuses_a_bad_id_and_a_missing_database_in_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MODBOT_DB": str(tmp_path / "none.sqlite3")}
    result = modbot(tmp_path, env, "forget", "--user", "bob", timeout=120)
    assert result.returncode == 2 and "is not a Discord id" in result.stderr.splitlines()[-1]
    result = modbot(tmp_path, env, "forget", "--message", "123", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"modbot: error: MODBOT_DB={tmp_path / 'none.sqlite3'}: no such database (point " \
                                    "MODBOT_DB at the bot's database)."


# --------------------------------------------------------------------------- /mod forget, through SimCord


def make_owner(env, member) -> None:
    env.bot.settings = replace(env.bot.settings,
                               owner_ids=Settings.from_env({"MODBOT_OWNER_IDS": str(member.id)}).owner_ids)


async def a_retrain_on(env, tmp_path: Path) -> tuple[Path, Path]:
    """What a retrain leaves from the corrections stored now: the job's export and the adapter's train.jsonl
    (the real job is exercised above; here the files are what matters)."""
    adapters = env.bot.settings.adapter_dir
    job, v2 = adapters / "jobs" / "v2", adapters / "v2"
    job.mkdir(parents=True)
    v2.mkdir(parents=True)
    corrections = [c async for c in storage.corrections(env.bot.db)]
    (job / "corrections.jsonl").write_text("".join(json.dumps(c.to_export()) + "\n" for c in corrections))
    base = [{"text": "a message everyone may read", "label": "neutral"}]
    (v2 / "train.jsonl").write_text("".join(json.dumps({"text": t, "label": "hate"}) + "\n"
                                            for t in [c.text for c in corrections]) +
                                    "".join(json.dumps(r) + "\n" for r in base))
    (v2 / "modbot_adapter.json").write_text(json.dumps({"version": "v2"}))
    await storage.register_adapter(env.bot.db, number=2, name="v2", model="keyword-test", path=v2, source=None,
                                   now=datetime.now(UTC))
    return job, v2


def erased(card: discord.Message) -> bool:
    return card.embeds[0].title == "Flagged message erased" and not card.components


async def test_the_owner_forgets_a_member_everywhere_and_their_cards_are_rewritten(env, server, tmp_path):
    carol = server.guild.add_member(env.create_user("carol"))
    first = await server.member.send(server.general, f"bob says they are {HATE_WORD}")
    second = await server.member.send(server.general, f"bob insists they are {HATE_WORD}")
    hers = await carol.send(server.general, f"carol says they are {HATE_WORD}")
    for card in server.cards()[:2]:
        await server.mod.click(card, label="Confirm (hate)")
    await server.mod.click(server.cards()[2], label="Confirm (hate)")
    job, v2 = await a_retrain_on(env, tmp_path)

    refused = await server.admin.slash(server.general, "mod forget", user=server.member)
    assert refused.response.content == ("Only the bot's owner can erase messages on request: every server the bot "
                                        "is in shares the model.")
    assert [type(e) for e in env.errors] == [checks.NotOwner]
    assert await storage.count_corrections(env.bot.db) == 3

    make_owner(env, server.admin)
    result = await server.admin.slash(server.general, "mod forget", user=server.member)
    reply = result.response.content
    assert result.ephemeral and reply.startswith(f"Erased the messages of user {server.member.id}:")
    assert "- database: 2 corrections, 2 flags, 2 stored message texts, 0 messages waiting" in reply
    assert "- review cards: 2 rewritten" in reply
    assert f"  - {job.resolve()}: corrections.jsonl 2" in reply and f"  - {v2.resolve()}: train.jsonl 2" in reply
    assert "Adapter versions trained on it: v2." in reply
    assert "The active version v2 is one of them: retrain" in reply

    cards = server.cards()
    assert erased(cards[0]) and erased(cards[1]) and not erased(cards[2])
    assert HATE_WORD not in cards[0].embeds[0].description + cards[1].embeds[0].description
    assert "carol says" in cards[2].embeds[0].description
    for message in (first, second):
        assert await storage.flag_for_message(env.bot.db, message.id) is None
        assert (await storage.latest_prediction(env.bot.db, message.id)).text is None
    assert [c.text async for c in storage.corrections(env.bot.db)] == [f"carol says they are {HATE_WORD}"]
    assert (await storage.flag_for_message(env.bot.db, hers.id)).text is not None
    for path in (job / "corrections.jsonl", v2 / "train.jsonl"):
        text = path.read_text()
        assert "bob says" not in text and "bob insists" not in text and "carol says" in text
    assert "a message everyone may read" in (v2 / "train.jsonl").read_text()


async def test_forget_from_the_shell_while_the_bot_runs_and_the_late_edit_of_an_erased_message(env, server):
    from bot.cogs.privacy import ERASE_CARDS_EVERY_S
    from bot.forget import forget_everywhere

    message = await server.member.send(server.general, f"those people are {HATE_WORD}")
    report = await forget_everywhere(env.bot.db, env.bot.settings, message_id=message.id, requested_by="shell")
    assert report.rows.flags == 1 and report.rows.cards == 1
    assert not erased(server.cards()[0])  # `modbot forget` cannot reach Discord: the bot rewrites it ...
    await env.advance_time(ERASE_CARDS_EVERY_S)
    assert erased(server.cards()[0])  # ... within minutes
    assert await storage.cards_to_erase(env.bot.db) == []
    # still in Discord and edited: the erased message is not stored again
    await server.member.edit(message, f"those people are still {HATE_WORD}")
    assert len(server.cards()) == 1 and await storage.flag_for_message(env.bot.db, message.id) is None
    assert (await storage.latest_prediction(env.bot.db, message.id)).text is None


async def test_mod_forget_needs_one_target_and_a_message_id_that_is_a_number(env, server):
    make_owner(env, server.admin)
    result = await server.admin.slash(server.general, "mod forget")
    assert result.response.content == "Give either a user or a message_id."
    result = await server.admin.slash(server.general, "mod forget", message_id="the bad one")
    assert result.response.content.startswith("message_id must be a message's id, a number")
    result = await server.admin.slash(server.general, "mod forget", message_id="123456")
    assert result.response.content.startswith("Nothing stored about message 123456")


async def test_a_soup_keeps_what_its_parent_learned_so_forget_says_to_roll_back_first(tmp_path):
    """The shipped adapter is a soup, and a retrain from a soup joins it: the new soup averages in the weights of
    the one it came from, even when its own data no longer holds the text. Retraining it would keep them."""
    from bot.forget import forget_everywhere

    conn = await storage.open_database(tmp_path / "modbot.sqlite3")
    now = datetime.now(UTC)

    def adapter(name: str, texts: list[str]) -> Path:
        path = tmp_path / "adapters" / name
        path.mkdir(parents=True)
        (path / "modbot_adapter.json").write_text(json.dumps({"version": name, "soup_of": [{"version": "a"}]}))
        (path / "train.jsonl").write_text("".join(json.dumps({"text": t, "label": "hate"}) + "\n" for t in texts))
        return path

    try:
        await storage.register_adapter(conn, number=1, name="v1", model="m", path=adapter("v1", ["public data"]),
                                       source=None, now=now)
        await storage.register_adapter(conn, number=2, name="v2", model="m",
                                       path=adapter("v2", ["public data", "bob's words"]), source=None, now=now)
        job = await storage.start_job(conn, model="m", adapter_dir=tmp_path / "adapters", parent=2, origin="shell",
                                      started_by=None, now=now)
        adapter("v3", ["public data"])  # trained after bob's correction was deleted, joined to v2's soup
        await storage.activate_version(conn, job.number, now=now)
        await storage.add_correction(conn, guild_id=1, channel_id=2, message_id=7, author_id=BOB, text="bob's words",
                                     label="hate", moderator_id=4, now=now)
        settings = Settings(db_path=tmp_path / "modbot.sqlite3", adapter_dir=tmp_path / "adapters")
        report = await forget_everywhere(conn, settings, user_id=BOB, requested_by="shell")
    finally:
        await conn.close()
    assert report.trained == [2, 3]
    text = "\n".join(report.lines(cards="none quoted it"))
    assert ("The active version v3 is one of them, and a retrain from it keeps its weights (the new adapter joins "
            "its soup): roll back to v1 (`/mod rollback version:1`), the newest version not trained on it, then "
            "retrain.") in text
    assert "bob's words" not in (tmp_path / "adapters" / "v2" / "train.jsonl").read_text()
