"""`modbot run` and `modbot corrections export` from the command line, and the settings they read."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import discord
import pytest

from bot import Settings, storage
from bot.cli import main
from bot.settings import SettingsError
from model import Prediction

BOT_VARIABLES = ("DISCORD_TOKEN", "MODBOT_DB", "MODBOT_DEV_GUILD", "MODBOT_RETENTION_DAYS", "MODBOT_QUEUE_SIZE",
                 "MODBOT_BATCH_WAIT_MS", "MODBOT_LOG_LEVEL", "MODBOT_SYNC_COMMANDS", "MODBOT_OWNER_IDS",
                 "MODBOT_TRAINING_GUILDS", "MODBOT_RETRAIN_SERVING")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No bot variables in the environment and no .env in the working directory."""
    for name in BOT_VARIABLES:
        monkeypatch.setenv(name, "")  # recorded, so whatever .env loads is undone after the test
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_settings_defaults_and_parsing():
    settings = Settings.from_env({})
    assert settings.db_path.name == "modbot.sqlite3" and settings.retention_days == 30
    assert settings.token is None and settings.dev_guild is None
    settings = Settings.from_env({"DISCORD_TOKEN": "abc", "MODBOT_DEV_GUILD": "123", "MODBOT_DB": "/x/y.db",
                                  "MODBOT_RETENTION_DAYS": "7", "MODBOT_BATCH_SIZE": "4"})
    assert (settings.token, settings.dev_guild, str(settings.db_path), settings.retention_days) == (
        "abc", 123, "/x/y.db", 7)
    assert settings.model.batch_size == 4
    assert "abc" not in repr(settings)  # the token is never printed


@pytest.mark.parametrize(("variable", "value"), [
    ("MODBOT_RETENTION_DAYS", "soon"), ("MODBOT_RETENTION_DAYS", "0"), ("MODBOT_DEV_GUILD", "my-server"),
    ("MODBOT_QUEUE_SIZE", "-1"), ("MODBOT_LOG_LEVEL", "LOUD"), ("MODBOT_BATCH_WAIT_MS", "fast"),
])
def test_a_wrong_setting_names_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_retrain_options_take_their_types_from_train_args():
    from pathlib import Path

    from training.args import TrainArgs

    raw = "threads=2,gradient_checkpointing=yes,lr=1e-3,max_steps=none,per_class=50,strategy=attention,device=cuda"
    options = Settings.from_env({"MODBOT_RETRAIN_OPTIONS": raw}).retrain_options
    assert options == {"threads": 2, "gradient_checkpointing": True, "lr": 0.001, "max_steps": None,
                       "per_class": 50, "strategy": "attention", "device": "cuda"}
    args = TrainArgs(data=(Path("train.jsonl"),), out=Path("out"), **options)  # what the job builds: no TypeError
    assert (args.threads, args.gradient_checkpointing) == (2, True)
    assert Settings.from_env({"MODBOT_RETRAIN_OPTIONS": "gradient-checkpointing=off"}).retrain_options == {
        "gradient_checkpointing": False}


@pytest.mark.parametrize(("raw", "named"), [
    ("gradient_checkpointing=maybe", "gradient_checkpointing='maybe' is not true or false"),
    ("threads=two", "threads='two' is not a whole number"),
    ("lr=fast", "lr='fast' is not a number"),
    ("epochs=0", "epochs must be 1 or more"),
    ("optimizer=sgd", "optimizer 'sgd'"),
    ("nonsense=1", "'nonsense' is not a training option"),
    ("epochs", "'epochs' is not an option=value pair"),
    ("data=x.csv", "data is chosen by the job"),
    ("model=gpt2", "model is set by MODBOT_MODEL"),
])
def test_a_wrong_retrain_option_is_one_line_naming_it(clean_env, capsys, raw, named):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"MODBOT_RETRAIN_OPTIONS": raw})
    message = str(raised.value)
    assert message.startswith("MODBOT_RETRAIN_OPTIONS: ") and named in message and "\n" not in message
    clean_env.setenv("MODBOT_RETRAIN_OPTIONS", raw)
    assert main(["retrain"]) == 2
    assert capsys.readouterr().err == f"modbot: error: {message}\n"


def test_run_without_a_token_is_one_line_and_exit_2(clean_env, capsys):
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modbot: error: DISCORD_TOKEN is not set") and err.count("\n") == 1


def test_run_with_a_rejected_token_is_one_line_and_exit_2(clean_env, capsys):
    clean_env.setenv("DISCORD_TOKEN", "not-a-real-token")

    async def rejected(self, token):  # what discord.py raises when Discord answers 401
        raise discord.LoginFailure("Improper token has been passed.")

    clean_env.setattr(discord.Client, "login", rejected)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modbot: error: Discord rejected DISCORD_TOKEN") and err.count("\n") == 1
    assert "not-a-real-token" not in err


def test_run_with_a_wrong_setting_names_it(clean_env, capsys):
    clean_env.setenv("DISCORD_TOKEN", "x")
    clean_env.setenv("MODBOT_RETENTION_DAYS", "a month")
    assert main(["run"]) == 2
    assert "MODBOT_RETENTION_DAYS='a month'" in capsys.readouterr().err


def test_run_reads_dotenv(clean_env, tmp_path, capsys):
    (tmp_path / ".env").write_text("MODBOT_RETENTION_DAYS=never\n")
    assert main(["run"]) == 2
    assert "MODBOT_RETENTION_DAYS='never'" in capsys.readouterr().err


def _modbot(args: list[str], cwd, **extra_env):
    """`modbot ARGS` in its own process, in ``cwd``, with no MODBOT_ variable nor DISCORD_TOKEN in its environment."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_") and k != "DISCORD_TOKEN"}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=cwd, env={**env, **extra_env},
                          capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("command", [
    ["classify", "hello"],
    ["eval", "--data", "data.csv"],
    ["train", "--data", "data.csv", "--out", "adapter"],
    ["compare", "--data", "data.csv", "--out", "compared", "--strategies", "few-shot"],
    ["soup", "a", "b", "--out", "soup", "--eval-on", "data.csv"],
], ids=lambda command: command[0])
def test_every_command_reads_dotenv(tmp_path, command):
    """A setting given only in .env (in the working directory) reaches every command: here a wrong one, which
    each command must refuse, naming it, before doing any work."""
    (tmp_path / "data.csv").write_text("text,label\nhello,neutral\nyou idiot,offensive\nvermin,hate\n")
    (tmp_path / ".env").write_text("MODBOT_DEVICE=from-dotenv\n")
    done = _modbot(command, tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("modbot: error: MODBOT_DEVICE='from-dotenv'")
    assert not any((tmp_path / name).exists() for name in ("adapter", "compared", "soup"))


def test_classify_uses_the_model_named_in_dotenv(tmp_path, tiny_model_dir):
    (tmp_path / ".env").write_text(f"MODBOT_MODEL={tiny_model_dir}\nMODBOT_DEVICE=cpu\nMODBOT_QUANTIZATION=none\n"
                                   f"MODBOT_ADAPTER=none\nMODBOT_CACHE_DIR={tmp_path / 'cache'}\n")
    done = _modbot(["classify", "--json", "hello there"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "classifying zero-shot" in done.stderr  # MODBOT_ADAPTER=none
    assert json.loads(done.stdout.strip().splitlines()[-1])["model"] == str(tiny_model_dir)


async def _fill(db_path):
    conn = await storage.open_database(db_path)
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    prediction = Prediction("offensive", {"hate": 0.1, "offensive": 0.7, "neutral": 0.2}, "m", "v1")
    record = await storage.add_prediction(conn, guild_id=1, channel_id=2, message_id=3, author_id=4,
                                          prediction=prediction, text="you idiot", now=now)
    flag = await storage.add_flag(conn, record, label="offensive", action="flag", now=now)
    await storage.add_correction(conn, guild_id=1, channel_id=2, message_id=3, author_id=4, text="you idiot",
                                 label="neutral", moderator_id=5, now=now, flag_id=flag.id, prediction=record)
    await storage.add_correction(conn, guild_id=1, channel_id=2, message_id=9, author_id=4, text="missed one",
                                 label="hate", moderator_id=6, now=now)
    await conn.close()


def test_corrections_export_writes_the_training_format(clean_env, tmp_path, capsys):
    db_path = tmp_path / "bot.sqlite3"
    asyncio.run(_fill(db_path))
    clean_env.setenv("MODBOT_DB", str(db_path))
    out = tmp_path / "out" / "corrections.jsonl"
    assert main(["corrections", "export", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [
        {"text": "you idiot", "label": "neutral", "predicted": "offensive",
         "probabilities": {"hate": 0.1, "offensive": 0.7, "neutral": 0.2}, "message_id": 3, "guild_id": 1,
         "channel_id": 2, "author_id": 4, "moderator_id": 5, "created_at": "2026-05-01T12:00:00+00:00"},
        {"text": "missed one", "label": "hate", "predicted": None, "probabilities": None, "message_id": 9,
         "guild_id": 1, "channel_id": 2, "author_id": 4, "moderator_id": 6,
         "created_at": "2026-05-01T12:00:00+00:00"},
    ]
    assert "wrote 2 corrections" in capsys.readouterr().err


def test_corrections_export_without_a_database(clean_env, tmp_path, capsys):
    clean_env.setenv("MODBOT_DB", str(tmp_path / "missing.sqlite3"))
    assert main(["corrections", "export", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "no such database" in capsys.readouterr().err
    assert not (tmp_path / "missing.sqlite3").exists()


def test_env_example_lists_every_bot_setting():
    from pathlib import Path

    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    listed = {line.split("=", 1)[0] for line in example.splitlines() if "=" in line and not line.startswith("#")}
    assert set(BOT_VARIABLES) <= listed


async def test_demo_runs_the_script_through_the_real_bot(tmp_path, tiny_settings, capsys):
    from bot.commands import demo

    from .conftest import KeywordClassifier

    settings = Settings(db_path=tmp_path / "demo.sqlite3", model=tiny_settings, adapter_dir=tmp_path / "adapters")
    script = [("neutral", "good morning"), ("offensive", "you idiot"), ("neutral", "this idiot boss fight"),
              ("hate", "a hateful message the model misses")]
    await demo._demo(settings, KeywordClassifier(), script)
    out = capsys.readouterr().out
    assert "Review cards will be posted in #mod-log." in out
    assert "riley  offensive" in out and "-> flagged as offensive, flag #1" in out
    assert 'flag #1: presses "Confirm (offensive)" -> stored offensive (confirmed)' in out
    assert 'flag #2: presses "Neutral" -> stored neutral (corrected: the bot said offensive)' in out
    assert "neutral   (bot: offensive) by @mo  | this idiot boss fight" in out
    # The miss is reported through the "Label message" menu.
    assert '"a hateful message the model misses": presses "Hate" -> Stored hate for that message' in out
    assert "hate      (bot: neutral  ) by @mo  | a hateful message the model misses" in out
    assert f"SQLite database: {settings.db_path.resolve()}" in out
    conn = await storage.open_database(settings.db_path)
    assert [c.label async for c in storage.corrections(conn)] == ["offensive", "neutral", "hate"]
    await conn.close()


def test_demo_script_is_valid():
    from bot.commands.demo import read_script

    script = read_script()
    assert len(script) >= 6 and {label for label, _ in script} == {"hate", "offensive", "neutral"}
