"""Normalisation against encoding tricks: each rule undoes what a member can hide, and leaves ordinary text alone."""

from __future__ import annotations

import pytest

from model.normalize import (
    join_spaced_letters,
    map_lookalikes,
    normalize_text,
    remove_invisible,
    resolve_overrides,
    squeeze_stretched,
    undo_leetspeak,
)
from model.prompt import normalize_message


@pytest.mark.parametrize("separator", ["\u200d", "\u200b", "\u2063", "\u00ad", "\u2060", "\ufeff", "\u180e",
                                       "\U000e0041", "\ufe0f", "\u034f"])
def test_invisible_characters_between_letters_are_removed(separator):
    assert remove_invisible(separator.join("vermin")) == "vermin"


def test_right_to_left_override_reads_as_displayed():
    hidden = "\u202e" + "they are vermin"[::-1] + "\u202c"
    assert normalize_text(hidden) == "they are vermin"
    assert normalize_text("hi \u202e" + "you idiot"[::-1] + "\u202c ok") == "hi you idiot ok"
    # Genuine right-to-left text without an override keeps its logical order.
    assert resolve_overrides("שלום friends") == "שלום friends"


@pytest.mark.parametrize("spoofed", ["\u0456d\u0456\u043et",  # Cyrillic i, i, o
                                     "id\u03b9ot",  # Greek iota
                                     "\uff49\uff44\uff49\uff4f\uff54",  # fullwidth
                                     "\U0001d422\U0001d41d\U0001d422\U0001d428\U0001d42d",  # mathematical bold
                                     "\u00ecd\u00ee\u00f6t",  # accents
                                     "i\u0336d\u0336i\u0336o\u0336t"])  # combining strokes
def test_look_alike_letters_fold_into_latin(spoofed):
    assert normalize_text(spoofed) == "idiot"


@pytest.mark.parametrize(("spoofed", "reads"), [
    ("\u03c4he\u03b7", "then"),  # Greek tau and eta: TR39's prototypes are small capital T and n with a mark
    ("\u03baill", "kill"),  # Greek kappa: prototype kra, a small capital K
    ("\u043a\u0438ll \u0442he\u043c", "kill them"),  # Cyrillic ka, te, em (em through its capital)
    ("\u03c7\u03c7\u03c7", "xxx"),  # Greek chi: only the capital is in the table
])
def test_look_alikes_whose_prototype_is_not_plain_ascii_fold_too(spoofed, reads):
    assert map_lookalikes(spoofed.replace("\u0438", "i")) == reads


def test_words_genuinely_in_another_script_stay_as_written():
    assert map_lookalikes("привет мир") == "привет мир"
    assert normalize_text("Здравствуйте, как дела") == "Здравствуйте, как дела"


def test_spaced_out_letters_are_joined_but_chat_abbreviations_are_not():
    assert join_spaced_letters("you are a l o s e r") == "you are a loser"
    assert join_spaced_letters("f u c k  y o u") == "fuck  you"
    assert join_spaced_letters("i h a t e you") == "i hate you"
    assert join_spaced_letters("I D I O T, a s s h o l e") == "IDIOT, asshole"  # "a" and "i" start a word
    assert join_spaced_letters("k.i.l.l yourself") == "kill yourself"
    assert join_spaced_letters("u r a legend") == "u r a legend"
    assert join_spaced_letters("e.g. the U.S. team") == "e.g. the U.S. team"


def test_leetspeak_is_read_only_in_words_written_in_it():
    assert undo_leetspeak("you 1d10t, 1 h4t3 y0u") == "you idiot, 1 hate you"
    assert undo_leetspeak("b!tch") == "bitch"
    for kept in ("ps5", "covid19", "mp3", "2nd", "4k", "h2o", "1v1", "a@b.com", "@user"):
        assert undo_leetspeak(kept) == kept


def test_a_loose_reading_also_decodes_words_left_with_one_letter():
    assert undo_leetspeak("y0u 4r3 4pe5 h035, 7h15 1s it") == "you 4r3 4pe5 h035, 7h15 1s it"
    assert undo_leetspeak("y0u 4r3 4pe5 h035, 7h15 1s it", loose=True) == "you are apes hoes, this is it"
    for kept in ("@user", "hi!", "covid19", "h2o", "2nd", "2024", "a@b.com"):
        assert undo_leetspeak(kept, loose=True) == kept


def test_stretched_letters_are_squeezed():
    assert squeeze_stretched("fuuuuuck shiiiit") == "fuck shit"
    assert squeeze_stretched("so gooooood, killllll it") == "so good, kill it"
    assert squeeze_stretched("good book") == "good book"


def test_ordinary_messages_are_unchanged():
    for text in ("have a nice day!", "meeting at 10:30, bring the 2nd draft", "café crème and naïve art",
                 "lol that was wild", "I'm a trans woman and proud of it"):
        assert normalize_message(text) == normalize_text(text).strip()
    assert normalize_message("have a nice day!") == "have a nice day!"
    assert normalize_message("I'm a trans woman and proud of it") == "I'm a trans woman and proud of it"


def test_everything_invisible_is_nothing_to_classify():
    assert normalize_message("\u200b\u200d\u2063\ufeff \u202e\u202c") == ""


def _boxed(*words: str) -> str:
    """Regional indicator letters, kept apart by zero width spaces so that no pair renders as a flag."""
    return " ".join("\u200b".join(chr(0x1F1E6 + ord(c) - ord("a")) for c in word) for word in words)


@pytest.mark.parametrize(("fancy", "reads"), [
    ("ʏᴏᴜ ᴀʀᴇ ᴀɴ ɪᴅɪᴏᴛ", "you are an idiot"),  # small capitals
    ("ʇoıpı uɐ ǝɹɐ noʎ", "you are an idiot"),  # upside down
    ("y̵o̵u̵ ̵i̵d̵i̵o̵t̵", "you idiot"),  # marks stacked on spaces too
    (_boxed("you", "an", "idiot"), "you an idiot"),  # regional indicators
    # Ordinary text the same rules must leave alone (French loses only its accents, as before).
    ("i love \U0001F1EF\U0001F1F5 so much", "i love \U0001F1EF\U0001F1F5 so much"),  # a flag stays a flag
    ("the word is /ˈbʌtər/", "the word is /ˈbʌtər/"),  # one turned letter: phonetics, not upside down
    ("bonjour, ça va? on se voit à midi", "bonjour, ca va? on se voit a midi"),
    ("dude, pop up quick", "dude, pop up quick"),
])
def test_fancy_text_reads_as_the_letters_it_shows(fancy, reads):
    assert normalize_text(fancy) == reads


def test_discord_markdown_reads_as_rendered():
    assert normalize_message("# you idiot") == "you idiot"
    assert normalize_message("-# small print\n## heading") == "small print heading"
    assert normalize_message("[you idiot](https://example.com/a)") == "you idiot [link]"
    assert normalize_message("#hashtag and #1 fan, [a](b)") == "#hashtag and #1 fan, [a](b)"


@pytest.mark.parametrize(("joined", "reads"), [
    ("YouAreAnIdiot, GoBackHome", "You Are An Idiot, Go Back Home"),  # capitals mark each word
    ("USAIsGreat", "USA Is Great"),  # an acronym stays one word
    ("you_are_an_idiot,_get_out", "you are an idiot, get out"),  # underscores
    ("ihopeyoulosethematchtonight", "i hope you lose the match tonight"),  # nothing between the words
    ("IHOPEYOULOSEEVERYMATCH", "I HOPE YOU LOSE EVERY MATCH"),
    # Ordinary text the same rules must leave alone.
    ("McDonald's, my iPhone, a PlayStation and NASA on macOS", "McDonald's, my iPhone, a PlayStation and NASA on macOS"),
    ("#NeverGiveUp @SomeUserName", "#NeverGiveUp @SomeUserName"),  # hashtags and handles
    ("__init__ and _italic_ text", "__init__ and _italic_ text"),
    ("incomprehensibilities in scunthorpe", "incomprehensibilities in scunthorpe"),  # words of the list
    ("intersectionality and speedrunners", "intersectionality and speedrunners"),  # two pieces: a word it lacks
    ("assimiliation is fundementalist", "assimiliation is fundementalist"),  # misspelt: rare fragments
    ("hahahahahahahaha asdfghjklqwerty", "hahahahahahahaha asdfghjklqwerty"),
])
def test_words_run_together_read_as_words(joined, reads):
    assert normalize_text(joined) == reads
