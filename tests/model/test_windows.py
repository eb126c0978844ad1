"""Long messages are read in overlapping windows; the most severe window decides."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from model import Classifier, ModelSettings
from model.labels import most_severe
from model.prompt import PromptBuilder


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_windows_cover_every_token_and_overlap_by_half(tokenizer):
    builder = PromptBuilder(tokenizer, max_message_tokens=16)
    text = " ".join(f"w{i}" for i in range(60))
    windows = builder.encode_windows(text)
    all_ids = builder._encode(" " + text)
    assert len(all_ids) > 16 and len(windows) > 2
    assert all(len(w.message) == 16 and w.prefix == builder.prefix and w.suffix == builder.suffix for w in windows)
    assert not any(w.truncated for w in windows)
    # Consecutive windows share half a window, and together they are the whole message.
    stride = 8
    for i, window in enumerate(windows[:-1]):
        assert window.message == tuple(all_ids[i * stride:i * stride + 16])
    assert windows[-1].message == tuple(all_ids[-16:])


def test_a_short_message_is_one_window(tokenizer):
    builder = PromptBuilder(tokenizer, max_message_tokens=64)
    assert builder.encode_windows("hello there") == [builder.encode("hello there")]


def test_words_only_a_loose_reading_of_leetspeak_decodes_are_read_both_ways(tokenizer):
    builder = PromptBuilder(tokenizer, max_message_tokens=64)
    as_written, loosely = builder.encode_windows("they 4r3 4pe5")
    assert as_written == builder.encode("they 4r3 4pe5")
    assert loosely.message == builder._encode(" they are apes")
    # A long message reads its sentence passages loosely; its windows read it as written.
    long = "hello there friends. " * 30 + "they 4r3 4pe5. " + "see you all soon. " * 30
    parts = [builder.tokenizer.decode(p.message) for p in builder.encode_windows(long)]
    assert any("they are apes" in part for part in parts) and any("4r3 4pe5" in part for part in parts)


def test_a_sentence_without_its_full_stop_is_still_read_apart_from_the_next(tokenizer):
    builder = PromptBuilder(tokenizer, max_message_tokens=16)
    message = ("we met at the station and walked along the river for an hour or two. "
               "those people are vermin and should all be thrown out "
               "Good morning everyone, I hope you all slept well and had a nice breakfast")
    passages = [builder.tokenizer.decode(p).strip() for p in builder._sentence_passages(message, 64)]
    assert any(p.startswith("those people are vermin") and "Good" not in p for p in passages)
    assert any(p.startswith("Good morning everyone") for p in passages)
    assert not any(p.startswith("I hope") for p in passages)  # "I" starts no sentence


def test_too_many_windows_are_spread_over_the_message_and_marked_truncated(tokenizer):
    builder = PromptBuilder(tokenizer, max_message_tokens=16)
    text = " ".join(f"w{i}" for i in range(2000))
    windows = builder.encode_windows(text, max_windows=5)
    all_ids = builder._encode(" " + text)
    assert len(windows) == 5 and all(w.truncated for w in windows)
    assert windows[0].message == tuple(all_ids[:16]) and windows[-1].message == tuple(all_ids[-16:])


def test_most_severe_window_decides():
    neutral, offensive, hate = [0.1, 0.1, 0.8], [0.1, 0.7, 0.2], [0.5, 0.3, 0.2]
    assert most_severe([neutral, offensive, hate, neutral]) == 2
    assert most_severe([neutral, offensive, [0.05, 0.9, 0.05]]) == 2
    assert most_severe([[0.1, 0.1, 0.8], [0.2, 0.2, 0.6], [0.0, 0.1, 0.9]]) == 1  # the least neutral


@pytest.fixture
def tiny_classifier(tiny_settings):
    return Classifier.from_settings(ModelSettings(**{**tiny_settings.__dict__, "max_message_tokens": 16}))


def test_classifier_reads_long_messages_in_windows_and_reports_the_deciding_one(tiny_classifier):
    clf = tiny_classifier
    parts = ["good morning all", "the weather is nice today", "see you at the meeting later"] * 12
    long_text = " ".join(parts)
    windows = clf.prompts.encode_windows(long_text)
    assert len(windows) > 3
    [prediction] = clf.classify([long_text])
    assert prediction.windows == len(windows) and not prediction.truncated
    # The message's probabilities are exactly those of its most severe window, classified on its own.
    from model.scoring import label_log_likelihoods

    serving = clf._serving_for_current_model()
    rows = serving.score(windows).softmax(-1).tolist()
    expected = rows[most_severe(rows)]
    for label, p in zip(("hate", "offensive", "neutral"), expected, strict=True):
        assert prediction.probabilities[label] == pytest.approx(p, abs=1e-4)
    assert label_log_likelihoods is not None


def test_short_and_long_messages_share_batches_and_keep_their_order(tiny_classifier):
    clf = tiny_classifier
    texts = ["hi", "word " * 300, "", "another short one"]
    batched = clf.classify(texts)
    alone = [clf.classify([text])[0] for text in texts]
    assert [p.windows for p in batched] == [p.windows for p in alone]
    assert batched[2].skipped
    for a, b in zip(batched, alone, strict=True):
        assert a.label == b.label
        for label in a.probabilities:
            assert a.probabilities[label] == pytest.approx(b.probabilities[label], abs=1e-4)


def test_overlap_shrinks_before_any_token_goes_unread(tokenizer):
    builder = PromptBuilder(tokenizer, max_message_tokens=16)
    text = " ".join(f"w{i}" for i in range(200))
    all_ids = builder._encode(" " + text)
    needed_without_overlap = -(-len(all_ids) // 16)
    windows = builder.encode_windows(text, max_windows=needed_without_overlap + 1)
    assert len(windows) <= needed_without_overlap + 1 and not any(w.truncated for w in windows)
    covered = set()
    position = 0
    for window in windows:  # each window continues where the previous one's tokens are found
        position = next(i for i in range(position, len(all_ids)) if tuple(all_ids[i:i + 16]) == window.message)
        covered.update(range(position, position + 16))
    assert covered == set(range(len(all_ids)))
    assert len(builder.encode_windows(text, max_windows=1)) == 1


def test_a_long_message_s_sentences_are_also_read_on_their_own(tokenizer):
    builder = PromptBuilder(tokenizer, max_message_tokens=32)
    filler = "We met at the station and talked about the weather for a while. "
    text = filler * 6 + "They are vermin. " + filler * 6
    windows = builder.encode_windows(text)
    without_passages = PromptBuilder(tokenizer, max_message_tokens=32)
    without_passages._sentence_passages = lambda message, max_passages: []
    passages = windows[len(without_passages.encode_windows(text)):]
    # The hidden sentence is read with nothing around it, not even the harmless sentence before it.
    assert any(p.message == builder._encode(" They are vermin.") for p in passages)
    assert len(passages) == 13  # one per sentence


def test_sentences_beyond_twice_max_windows_are_packed_together(tokenizer):
    builder = PromptBuilder(tokenizer, max_message_tokens=32)
    text = " ".join(f"Line {i} is here." for i in range(40))
    alone = builder._sentence_passages(text, 40)
    assert len(alone) == 40 and alone[7] == builder._encode(" Line 7 is here.")
    packed = builder._sentence_passages(text, 39)
    assert 0 < len(packed) <= 39 and all(len(p) <= 32 for p in packed)
    assert sum(map(len, packed)) == sum(map(len, alone))  # every sentence once, in order


def test_sentence_passages_are_bounded_by_max_windows(tokenizer):
    builder = PromptBuilder(tokenizer, max_message_tokens=16)
    text = "Yes. No. " * 500
    windows = builder.encode_windows(text, max_windows=8)
    assert len(windows) <= 8 + 16  # windows, and at most twice as many passages


def test_a_capitalised_word_ends_a_sentence_only_between_pieces_of_four_words_or_more():
    from model.prompt import split_sentences

    # Chat that leaves the full stop out is still split where the next sentence starts.
    assert split_sentences("those people are vermin Good morning everyone, how are you") == [
        "those people are vermin", "Good morning everyone, how are you"]
    # Prose capitalises names: a bare group name is not cut off to be read alone.
    assert split_sentences("their rights depended on ceasing to be Jews. Holy Week starts on Sunday here") == [
        "their rights depended on ceasing to be Jews.", "Holy Week starts on Sunday here"]
    assert split_sentences("we met in Berlin last year and it was great") == [
        "we met in Berlin last year and it was great"]
