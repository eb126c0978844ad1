"""The shipped adapter on the real default model: a flagged message stays flagged however it is disguised."""

from __future__ import annotations

import pytest

from model import Classifier, ModelSettings

pytestmark = pytest.mark.real_model

# Messages of the labelling guide's two flagged kinds, written for this test (not training data).
CANDIDATES = [
    "you are a pathetic loser and everyone here laughs at you",
    "shut your mouth you worthless idiot",
    "those people are filthy rats and should be driven out of our town",
    "nobody wants your kind here, go back where you came from",
    "i swear i will find you and beat you up",
]
FILLER = ("hey all, the raid starts at nine tonight so grab your potions. "
          "also the new map looks great and the patch notes are up in the news channel. ")


@pytest.fixture(scope="module")
def classifier():
    return Classifier.from_settings(ModelSettings(device="cpu", quantization="none"))


def zero_width(text: str) -> str:
    return "\u200d".join(text)


def reversed_with_override(text: str) -> str:
    return "\u202e" + text[::-1] + "\u202c"


def cyrillic(text: str) -> str:
    return text.translate(str.maketrans("aeopcx", "\u0430\u0435\u043e\u0440\u0441\u0445"))


def hidden_in_a_long_message(text: str) -> str:
    return FILLER * 8 + text + ". " + FILLER * 8


def test_disguises_do_not_turn_a_flagged_message_neutral(classifier):
    flagged = [text for text, p in zip(CANDIDATES, classifier.classify(CANDIDATES), strict=True)
               if p.label != "neutral"]
    assert len(flagged) >= 4, "the shipped adapter should flag plain insults, threats and dehumanising messages"
    for disguise in (zero_width, reversed_with_override, cyrillic, hidden_in_a_long_message):
        predictions = classifier.classify([disguise(text) for text in flagged])
        assert [p.label for p in predictions].count("neutral") == 0, disguise.__name__
    [long] = classifier.classify([hidden_in_a_long_message(flagged[0])])
    assert long.windows > 1 and not long.truncated
