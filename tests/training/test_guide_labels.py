"""The guide's relabelling of disability slurs thrown as generic insults (training/guide_labels.py)."""

from training.formats import Example
from training.guide_labels import disability_insults_as_offensive, is_disability_insult


def test_a_disability_slur_at_one_person_is_an_insult():
    assert is_disability_insult("@someone yes you do retard")
    assert is_disability_insult("quit being a total spastic and read the chat")


def test_a_message_that_names_a_protected_group_is_left_alone():
    assert not is_disability_insult("disabled people are retards and should be locked away")
    assert not is_disability_insult("these muslims are retarded")
    assert not is_disability_insult("you stupid fag, you're retarded")
    assert not is_disability_insult("shut up you retarded coon")  # a slur from the augmentation's own lexicon


def test_words_that_only_contain_a_slur_are_not_one():
    assert not is_disability_insult("we visited a Hmong village")
    assert not is_disability_insult("mongoose spotted in the garden")


def test_only_hate_labels_change_and_the_count_says_how_many():
    examples = [
        Example("what retard took my loot", "hate", "davidson.csv", 3),
        Example("what retard took my loot again", "offensive"),
        Example("the fire retardant worked", "neutral"),
        Example("disabled people are retards", "hate"),
        Example("good morning", "neutral"),
    ]
    relabelled, changed = disability_insults_as_offensive(examples)
    assert changed == 1
    assert [e.label for e in relabelled] == ["offensive", "offensive", "neutral", "hate", "neutral"]
    assert relabelled[0].source == "davidson.csv" and relabelled[0].line == 3
