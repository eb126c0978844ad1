"""Bot tests: the real bot from create_bot, driven through SimCord, with a real SQLite file per test."""

from __future__ import annotations

import threading
from pathlib import Path

import discord
import pytest

from bot import Settings, create_bot
from model import ZERO_SHOT, Prediction, Served, read_adapter
from model.labels import LABELS

HATE_WORD = "vermin"
OFFENSIVE_WORD = "idiot"


class KeywordClassifier:
    """A fast stand-in backend (model.InferenceBackend): hate for HATE_WORD, offensive for OFFENSIVE_WORD.

    It records every batch it is given and the thread it ran on, so tests can check the batching, and every
    adapter it is told to serve. Serving an adapter reads and checks its directory as the real backend does
    (model.read_adapter: metadata, files present) and takes its version name; the weights are not read.
    (The real backend is exercised by test_real_model.py and the tests that load the tiny model.)
    """

    model_name = "keyword-test"

    def __init__(self) -> None:
        self.adapter_version = "test-1"
        self.adapter_path: Path | None = None
        self.batches: list[list[str]] = []
        self.threads: set[str] = set()
        self.served_paths: list[Path | None] = []  # every serve_adapter call, and the threads they ran on
        self.serve_threads: set[str] = set()
        self.closed = False

    def serve_adapter(self, path: Path | None) -> Served:
        self.served_paths.append(path)
        self.serve_threads.add(threading.current_thread().name)
        version = read_adapter(path).version if path is not None else ZERO_SHOT  # raises AdapterError
        self.adapter_version, self.adapter_path = version, path
        return self.served()

    def served(self) -> Served:
        return Served("local", self.model_name, self.adapter_version, self.adapter_path)

    def close(self) -> None:
        self.closed = True

    def classify(self, texts: list[str]) -> list[Prediction]:
        self.batches.append(list(texts))
        self.threads.add(threading.current_thread().name)
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> Prediction:
        lowered = text.lower()
        if HATE_WORD in lowered:
            probabilities = {"hate": 0.9, "offensive": 0.07, "neutral": 0.03}
        elif OFFENSIVE_WORD in lowered:
            probabilities = {"hate": 0.1, "offensive": 0.7, "neutral": 0.2}
        else:
            probabilities = {"hate": 0.02, "offensive": 0.08, "neutral": 0.9}
        label = max(LABELS, key=probabilities.__getitem__)
        return Prediction(label, probabilities, self.model_name, self.adapter_version)


@pytest.fixture
def settings(tmp_path, tiny_settings) -> Settings:
    # The adapter registry in the test's own directory, not ./adapters of the checkout.
    return Settings(db_path=tmp_path / "modbot.sqlite3", model=tiny_settings, batch_wait_ms=2,
                    adapter_dir=tmp_path / "adapters")


@pytest.fixture
def classifier() -> KeywordClassifier:
    return KeywordClassifier()


@pytest.fixture
async def make_bot(settings, classifier):
    """Build bots (a restart needs a second one) and close them all, database included, at the end."""
    built = []

    def make(*, settings_: Settings | None = None, classifier_=None):
        bot = create_bot(settings_ or settings, backend=classifier_ or classifier)
        built.append(bot)
        return bot

    yield make
    for bot in built:
        await bot.close()


@pytest.fixture
def simcord_bot(make_bot):
    return make_bot()


@pytest.fixture
def env(simcord_env):
    return simcord_env


class Server:
    """A guild with #general and #mod-log, an admin, a moderator and a member."""

    def __init__(self, env) -> None:
        self.env = env
        self.guild = env.create_guild("Test Server")
        self.general = self.guild.create_text_channel("general")
        self.modlog = self.guild.create_text_channel("mod-log")
        admins = self.guild.create_role("Admins", permissions=discord.Permissions(manage_guild=True,
                                                                                  manage_messages=True))
        mods = self.guild.create_role("Mods", permissions=discord.Permissions(manage_messages=True))
        self.admin = self.guild.add_member(env.create_user("alice"), roles=[admins])
        self.mod = self.guild.add_member(env.create_user("mo"), roles=[mods])
        self.member = self.guild.add_member(env.create_user("bob"))
        self.mods_role = mods

    async def set_review_channel(self) -> None:
        result = await self.admin.slash(self.general, "mod setup", review_channel=self.modlog)
        assert "Review cards will be posted" in result.response.content

    def cards(self) -> list[discord.Message]:
        return [m for m in self.modlog.history() if m.embeds]


@pytest.fixture
async def server(env) -> Server:
    server = Server(env)
    await server.set_review_channel()
    return server
