"""The real default model (SmolLM2-135M with its shipped adapter, when committed) behind the real bot."""

from __future__ import annotations

import pytest

from bot import Settings, storage
from model import ModelSettings
from model.backends import create_backend
from tests.real_model import REAL_MODEL_TIMEOUT_S

# Each message goes through the real model: SimCord waits for it as long as the model may take here.
pytestmark = [pytest.mark.real_model, pytest.mark.simcord(settle_timeout=REAL_MODEL_TIMEOUT_S)]


@pytest.fixture(scope="module")
def real_classifier():
    """The bot's backend for the default model with its shipped adapter, loaded once for the module."""
    backend = create_backend(ModelSettings(device="cpu", quantization="none"))
    yield backend
    backend.close()


@pytest.fixture
def settings(tmp_path, real_classifier):
    return Settings(db_path=tmp_path / "modbot.sqlite3", model=ModelSettings(device="cpu", quantization="none"),
                    adapter_dir=tmp_path / "adapters")


@pytest.fixture
def classifier(real_classifier):
    return real_classifier


async def test_real_model_labels_messages_and_cards_show_its_versions(env, server, real_classifier):
    # Thresholds of 0 flag every message, whatever this model says, so the card is certain.
    await server.admin.slash(server.general, "mod threshold", label="hate", value=0.0)
    await server.admin.slash(server.general, "mod threshold", label="offensive", value=0.0)
    message = await server.member.send(server.general, "people like them are animals and should be thrown out")
    prediction = await storage.latest_prediction(env.bot.db, message.id)
    assert prediction.model == real_classifier.model_name
    assert prediction.adapter_version == real_classifier.adapter_version
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-4
    [card] = server.cards()
    fields = {f.name: f.value for f in card.embeds[0].fields}
    assert fields["Model"] == f"{real_classifier.model_name} · adapter {real_classifier.adapter_version}"
    await server.mod.click(card, label="Neutral")
    [correction] = [c async for c in storage.corrections(env.bot.db)]
    assert correction.label == "neutral" and correction.predicted == prediction.label


async def test_real_model_flags_exactly_what_crosses_the_threshold(env, server):
    texts = ["good morning everyone", "shut up, nobody asked for your stupid opinion",
             "you are such an idiot, get lost", "thanks for the help yesterday"]
    flagged = []
    for text in texts:
        message = await server.member.send(server.general, text)
        prediction = await storage.latest_prediction(env.bot.db, message.id)
        if any(prediction.probabilities[label] >= 0.5 for label in ("hate", "offensive")):
            flagged.append(text)
    assert [c.embeds[0].description.removeprefix("> ") for c in server.cards()] == flagged
