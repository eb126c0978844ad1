"""Readers, merging, sampling and splitting, on small fixtures; every bad input names its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.dataset import (
    class_counts,
    merge_sources,
    require_every_class,
    stratified_split,
    take_per_class,
)
from training.errors import DataError
from training.formats import read_examples

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DAVIDSON = FIXTURES / "training_davidson.csv"
TEXT_LABEL = FIXTURES / "training_text_label.csv"
PROMPT_COMPLETION = FIXTURES / "training_prompt_completion.jsonl"
CORRECTIONS = FIXTURES / "training_corrections.jsonl"


def test_davidson_reader_maps_classes_and_skips_the_index_column():
    examples = read_examples(DAVIDSON)
    assert class_counts(examples) == {"hate": 4, "offensive": 4, "neutral": 4}
    first = examples[0]
    assert first.label == "hate" and first.text.startswith('"@Blackman38Tide')  # the tweet column, not the index
    assert first.line == 2 and first.source == str(DAVIDSON)


def test_text_label_reader_counts_lines_of_multi_line_messages():
    examples = read_examples(TEXT_LABEL)
    assert len(examples) == 25
    assert examples[0].label == "offensive" and "\n" in examples[0].text
    # The first record spans several physical lines; the second starts after them.
    assert examples[0].line == 2 and examples[1].line == 2 + examples[0].text.count("\n") + 1


def test_prompt_completion_reader_strips_separators_and_stop_sequences():
    examples = read_examples(PROMPT_COMPLETION)
    assert [(e.text, e.label) for e in examples] == [
        ("you are all wonderful people", "neutral"),
        ("shut up you absolute clown", "offensive"),
        ("those people should all be deported", "hate"),
        ("see you at the meeting tomorrow", "neutral"),
    ]
    assert [e.line for e in examples] == [1, 2, 3, 5]  # the blank line is skipped but counted


def test_correction_export_reader_keeps_text_and_corrected_label():
    examples = read_examples(CORRECTIONS)
    assert [(e.text, e.label) for e in examples][:2] == [
        ("see you at the meeting tomorrow", "offensive"),
        ("go back where you came from, vermin", "hate"),
    ]


def test_later_source_overrides_a_label_and_is_counted():
    merged = merge_sources([PROMPT_COMPLETION, CORRECTIONS])
    labels = {e.text: e.label for e in merged.examples}
    assert labels["see you at the meeting tomorrow"] == "offensive"  # the correction wins
    assert merged.overrides == 1 and merged.duplicates == 0
    assert len(merged.examples) == 4 + 3 - 1


def test_duplicates_by_normalised_text_are_dropped(tmp_path):
    path = tmp_path / "dupes.csv"
    path.write_text("text,label\nHello  @bob &amp; you,neutral\nhello @alice & you,neutral\nhi,hate\n")
    merged = merge_sources([path])
    assert merged.duplicates == 1 and len(merged.examples) == 2


def test_balanced_sampling_and_stratified_split_are_seeded_and_per_class():
    examples = read_examples(TEXT_LABEL)
    taken, rest = take_per_class(examples, 3, seed=1)
    assert class_counts(taken) == {"hate": 3, "offensive": 3, "neutral": 3}
    assert len(rest) == len(examples) - 9
    assert [e.text for e in take_per_class(examples, 3, seed=1)[0]] == [e.text for e in taken]
    assert [e.text for e in take_per_class(examples, 3, seed=2)[0]] != [e.text for e in taken]
    train, val = stratified_split(examples, 0.25, seed=0)
    assert class_counts(val) == {"hate": 2, "offensive": 2, "neutral": 2}
    assert len(train) + len(val) == len(examples)
    assert not {e.text for e in train} & {e.text for e in val}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad_label.csv", "text,label\nfine message,neutral\nanother,rude\n", "bad_label.csv:3: unknown label 'rude'"),
        ("bad_class.csv", ",count,hate_speech,offensive_language,neither,class,tweet\n0,3,0,0,3,7,hi\n",
         "bad_class.csv:2: unknown class '7'"),
        ("no_label.csv", "text,category\nhi,neutral\n", "no_label.csv:1: missing column(s) text, label"),
        ("empty.csv", "\n  \n", "empty.csv: the file is empty"),
        ("header_only.csv", "text,label\n", "header_only.csv: the file has a header but no examples"),
        ("bad_json.jsonl", '{"text": "a", "label": "hate"}\n{oops\n', "bad_json.jsonl:2: not valid JSON"),
        ("no_keys.jsonl", '{"message": "a", "label": "hate"}\n', "no_keys.jsonl:1: missing key(s)"),
        ("bad_completion.jsonl", '{"prompt": "a", "completion": " spam"}\n',
         "bad_completion.jsonl:1: unknown label 'spam'"),
    ],
)
def test_bad_inputs_name_the_file_and_line(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as error:
        read_examples(path)
    assert str(error.value).startswith(str(tmp_path / expected.split(":")[0]))
    assert expected in str(error.value)


def test_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_examples(tmp_path / "nope.csv")


def test_a_class_with_no_examples_is_refused(tmp_path):
    path = tmp_path / "two_classes.csv"
    path.write_text("text,label\na,hate\nb,neutral\n")
    with pytest.raises(DataError, match=r"two_classes.csv: the training set has no 'offensive' examples"):
        require_every_class(read_examples(path), "training", [path])
