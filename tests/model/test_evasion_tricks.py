"""The evasion benchmark's tricks (bench/evasion_tricks.py): each one changes the text, and the disguises a
reader cannot see through still show the reader the original message. No model."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest

from bench.evasion_tricks import (
    CYRILLIC,
    GREEK,
    INJECTION,
    INVISIBLE_SEPARATOR,
    PDF,
    RLO,
    SOFT_HYPHEN,
    TARGETS,
    TRICKS,
    ZWJ,
    ZWSP,
    filler,
)

MESSAGE = "Those people are the worst, get them out of this server"


def disguise(name: str, text: str = MESSAGE, seed: int = 0) -> str:
    return TRICKS[name][1](text, random.Random(seed))


@pytest.mark.parametrize("name", TRICKS)
def test_every_trick_changes_the_text_the_same_way_for_a_seed(name):
    assert disguise(name) != MESSAGE
    assert disguise(name, seed=3) == disguise(name, seed=3)
    assert TRICKS[name][1].__doc__, "the table prints what each trick simulates"
    assert TRICKS[name][0] in TARGETS


@pytest.mark.parametrize(("name", "mark"), [("zero_width_joiner", ZWJ), ("invisible_separator", INVISIBLE_SEPARATOR),
                                            ("zero_width_space", ZWSP), ("soft_hyphen", SOFT_HYPHEN)])
def test_invisible_characters_sit_between_letters_and_the_reader_sees_the_original(name, mark):
    text = disguise(name)
    assert text.replace(mark, "") == MESSAGE
    assert text.count(mark) == sum(len(word) - 1 for word in MESSAGE.replace(",", "").split())
    assert unicodedata.category(mark) == "Cf"  # a format character: nothing is drawn


def test_rtl_override_renders_as_the_original():
    text = disguise("rtl_override")
    assert text.startswith(RLO) and text.endswith(PDF)
    assert MESSAGE not in text  # stored backwards ...
    assert text[1:-1][::-1] == MESSAGE  # ... and laid out right to left, so the reader sees it forwards


@pytest.mark.parametrize(("name", "table", "script"), [("cyrillic_lookalikes", CYRILLIC, "CYRILLIC"),
                                                       ("greek_lookalikes", GREEK, "GREEK")])
def test_lookalikes_are_another_script_that_reads_as_the_original(name, table, script):
    text = disguise(name)
    back = {lookalike: latin for latin, lookalike in table.items()}
    assert "".join(back.get(char, char) for char in text) == MESSAGE
    swapped = [char for char, original in zip(text, MESSAGE, strict=True) if char != original]
    assert len(swapped) >= 10
    assert all(unicodedata.name(char).startswith(script) for char in swapped)


@pytest.mark.parametrize(("name", "kind"), [("fullwidth", "FULLWIDTH"), ("math_letters", "MATHEMATICAL")])
def test_wide_and_math_letters_are_compatibility_forms_of_the_original(name, kind):
    text = disguise(name)
    assert unicodedata.normalize("NFKC", text) == MESSAGE
    letters = [char for char in text if char.isalpha()]
    assert all(kind in unicodedata.name(char) or char == "\u210e" for char in letters)


def test_math_letters_draw_both_styles_and_keep_italic_h():
    text = disguise("math_letters", "hh " * 40)
    names = {unicodedata.name(char) for char in text if char.isalpha()}
    assert names == {"MATHEMATICAL BOLD SMALL H", "PLANCK CONSTANT"}  # italic small h was encoded as U+210E
    assert unicodedata.normalize("NFKC", text) == "hh " * 40


def test_spacing_tricks_keep_the_letters_in_order():
    assert disguise("spaced_out", "hate you") == "h a t e   y o u"
    assert disguise("dotted", "hate you") == "h.a.t.e y.o.u"
    assert disguise("camel_case", "we hate you, go away") == "WeHateYou,GoAway"
    assert disguise("underscores", "we hate you, go away") == "we_hate_you,_go_away"
    assert disguise("no_spaces", "we hate you, go away") == "wehateyou,goaway"
    assert disguise("no_spaces", "RT @someone: we hate you") == "RT @someone: wehateyou"  # a mention stays apart
    stretched = disguise("stretched", "hate you")
    assert len(stretched) >= len("hate you") + 6
    assert re.sub(r"(.)\1+", r"\1", stretched) == "hate you"  # only repeated letters, nothing new


def test_leetspeak_swaps_most_of_the_letters_it_has_digits_for():
    text = disguise("leetspeak", "seat toes " * 20)
    assert set(text) <= set("seat toes43170 5")
    assert sum(char.isdigit() for char in text) >= 0.6 * sum(char in "aeiost" for char in "seat toes " * 20)


def test_long_message_tricks_hide_the_message_in_harmless_chat():
    middle = disguise("hidden_in_middle")
    before, after = middle.split(MESSAGE)
    assert len(before) >= 3000 and len(after) >= 3000
    front = disguise("padded_in_front")
    assert front.endswith(MESSAGE) and len(front) >= 2000 + len(MESSAGE)
    assert len(set(filler(random.Random(1), 3000).split(". "))) > 20  # varied sentences, not one repeated


def test_injections_keep_the_message_and_add_instructions_or_a_fake_example():
    assert disguise("instructions_before") == f"{INJECTION}\n\n{MESSAGE}"
    assert disguise("instructions_after") == f"{MESSAGE}\n\n{INJECTION}"
    assert disguise("fake_example").endswith(f"Category: neutral\n\nMessage: {MESSAGE}")


def test_fancy_text_tricks_draw_every_letter_in_another_form():
    small = disguise("small_capitals")
    assert all(unicodedata.name(c).startswith(("LATIN LETTER SMALL CAPITAL", "LATIN SMALL LETTER O WITH OGONEK"))
               or c == "x" for c in small if c.isalpha())
    turned = disguise("upside_down")
    assert turned[-1] == "ʇ" and turned[0] == "ɹ"  # "those ... server" reversed, with turned letters
    boxed = disguise("regional_indicators").replace(ZWSP, "")
    assert all(0x1F1E6 <= ord(c) <= 0x1F1FF for c in boxed if c not in " ,")
    assert ZWSP in disguise("regional_indicators")  # so that no two letters render as a flag
    link = disguise("masked_link")
    assert link.startswith(f"[{MESSAGE}](https://") and link.endswith(")")
