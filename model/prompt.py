"""The instruction prompt: one template, its id, message normalisation and token-budget truncation.

Training and serving both build prompts here, so what the adapter learned on is exactly what it sees
in production. A prompt is three token runs, ``prefix + message + suffix``:

    <instruction listing the categories>\n\nMessage:   <- prefix, identical for every message
     <normalised message text>                         <- message, cut to a token budget
    \n\nCategory:                                       <- suffix, the cue; the label follows it

Each run is tokenised on its own, so the prefix's tokens never depend on the message (its key/value
cache can be shared) and truncation can only ever cut the message.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .labels import DEFINITIONS, LABELS
from .normalize import respell, reveal, undo_leetspeak

# Recorded in every adapter's metadata; bump it whenever the text below, or what normalize_message does,
# changes.
TEMPLATE_ID = "modbot-instruct-v2"

# docs/labels.md in short: the model is told the same rule the moderators and the training data follow.
INSTRUCTION = (
    "Classify the following chat message. "
    + " ".join(f"{label}: {DEFINITIONS[label]}." for label in LABELS)
    + " Answer with exactly one of these categories: hate, offensive, neutral."
)
MESSAGE_MARKER = "Message:"
CUE = "Category:"

DEFAULT_MAX_MESSAGE_TOKENS = 256
TRUNCATION_MARK = " [...]"
# A message longer than the budget is read in windows that overlap by half, so any sentence up to half
# a window long lies whole in one of them. 64 windows of 64 tokens read 4,000 characters of ordinary
# text (Discord's limit, about 1,000 tokens) with that overlap, and up to 4,096 tokens with less; beyond
# that (4,000 emoji or CJK characters) the windows are spread over the message and it is marked
# truncated, so one message never costs more than 64 windows (bench/long_messages.py).
DEFAULT_MAX_WINDOWS = 64
# A short hateful sentence in the middle of a long, harmless message is drowned by the harmless text
# around it in a 64-token window, and even by one harmless sentence beside it. So a long message's
# sentences are also read each on its own, up to 128 of them (twice the windows: a sentence is a quarter
# of a window on average, and the instruction's cache is shared, so they cost about as much as half the
# windows). A message with more sentences than that (over Discord's limit, or one-word lines) has them
# packed, consecutive ones together, into at most 128 passages. The windows read every sentence in its
# context; the passages read it without anything around it.
# A sentence ends at closing punctuation, or where chat leaves it out: a word is followed by a capitalised
# one ("... never treated Good morning everyone"). A hateful line pasted without its full stop is then
# still read apart from the harmless sentence after it. "I" starts no sentence by itself, and neither
# does a capitalised word that would leave a piece of fewer than MIN_UNPUNCTUATED_WORDS words: prose
# capitalises names ("... ceasing to be Jews."), and a bare group name read alone looks like an attack.
MAX_PASSAGES_PER_WINDOW = 2
MIN_UNPUNCTUATED_WORDS = 4
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_CAPITALISED_START = re.compile(r"(?<=[a-z0-9,;:])\s+(?=(?!I\b)[A-Z][a-z])")
# Characters kept before tokenising (head and tail): five times Discord's limit, so tokenising a pasted
# novel never costs more than classifying it.
MAX_MESSAGE_CHARS = 20_000

_DISCORD_USER = re.compile(r"<@!?\d+>")
_DISCORD_ROLE = re.compile(r"<@&\d+>")
_DISCORD_CHANNEL = re.compile(r"<#\d+>")
_DISCORD_EMOJI = re.compile(r"<a?:(\w+):\d+>")
_DISCORD_TIMESTAMP = re.compile(r"<t:-?\d+(?::[tTdDfFR])?>")
_DISCORD_SLASH = re.compile(r"</([\w -]+):\d+>")
# Twitter/plain-text handles; our own placeholders and @everyone/@here are kept as they are.
_HANDLE = re.compile(r"(?<![\w@])@(?!(?:user|role|everyone|here)\b)\w+")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# Discord markdown a member sees rendered, not typed: a masked link shows its text ("[you idiot](https://...)"
# reads "you idiot"), and a heading or subtext marker at the start of a line ("# ", "-# ") only sets its size.
_MASKED_LINK = re.compile(r"\[([^\[\]\n]+)\]\(\s*<?((?:https?://|www\.)[^\s()<>]+)>?\s*\)", re.IGNORECASE)
_HEADING = re.compile(r"^[ \t]*(?:#{1,3}|-#)[ \t]+", re.MULTILINE)
_WHITESPACE = re.compile(r"\s+")
# Our own markers, wherever they appear inside a message, lose their colon so that the model sees
# exactly one "Message:" and one "Category:" per prompt.
_MARKERS = re.compile(r"\b(message|category)\s*:", re.IGNORECASE)


def normalize_message(text: str) -> str:
    """Turn a raw Discord message or tweet into the single line the model reads.

    Decodes HTML entities (tweets arrive as ``&amp;`` and ``&#128514;``), undoes encoding tricks
    (`model.normalize`: display order, invisible characters, look-alikes, spacing, leetspeak, stretching),
    reads Discord markdown as it renders (headings, masked links), replaces mentions, custom emoji and
    links with readable placeholders, collapses whitespace and
    defuses the prompt's own markers.
    """
    for _ in range(3):  # entities are sometimes escaped twice (``&amp;#128514;``)
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = reveal(text)
    text = _HEADING.sub("", text)
    text = _MASKED_LINK.sub(r"\1 \2", text)
    text = _DISCORD_ROLE.sub("@role", text)
    text = _DISCORD_USER.sub("@user", text)
    text = _DISCORD_CHANNEL.sub("#channel", text)
    text = _DISCORD_EMOJI.sub(r":\1:", text)
    text = _DISCORD_TIMESTAMP.sub("[time]", text)
    text = _DISCORD_SLASH.sub(r"/\1", text)
    text = _URL.sub("[link]", text)
    text = _HANDLE.sub("@user", text)
    text = respell(text)
    text = _WHITESPACE.sub(" ", text).strip()
    return _MARKERS.sub(lambda m: f"{m.group(1)} -", text)


def split_sentences(message: str) -> list[str]:
    """A message's sentences: at closing punctuation, and at a capitalised word where chat leaves the full
    stop out, unless that would leave a piece under MIN_UNPUNCTUATED_WORDS words (see _SENTENCE_END)."""
    sentences = []
    for sentence in _SENTENCE_END.split(message):
        pieces: list[str] = []
        for piece in _CAPITALISED_START.split(sentence):
            if pieces and (len(piece.split()) < MIN_UNPUNCTUATED_WORDS
                           or len(pieces[-1].split()) < MIN_UNPUNCTUATED_WORDS):
                pieces[-1] = f"{pieces[-1]} {piece}"
            else:
                pieces.append(piece)
        sentences += [piece for piece in pieces if piece.strip()]
    return sentences


def has_content(text: str | None) -> bool:
    """Whether there is anything to classify once the message is normalised."""
    return bool(text) and bool(normalize_message(text))


def completion_text(label: str) -> str:
    """The completion the model is trained to produce after the cue (note the leading space)."""
    return f" {label}"


def render_prompt(text: str) -> str:
    """The prompt as text, without token truncation (for display and for generate()-style use)."""
    return f"{INSTRUCTION}\n\n{MESSAGE_MARKER} {normalize_message(text)}\n\n{CUE}"


@dataclass(frozen=True)
class PromptIds:
    """A tokenised prompt, kept in its three runs."""

    prefix: tuple[int, ...]
    message: tuple[int, ...]
    suffix: tuple[int, ...]
    truncated: bool = False

    @property
    def ids(self) -> list[int]:
        return [*self.prefix, *self.message, *self.suffix]

    def __len__(self) -> int:
        return len(self.prefix) + len(self.message) + len(self.suffix)


class PromptBuilder:
    """Builds token ids for prompts and label completions with one tokenizer.

    ``examples`` (text, label) pairs are placed between the instruction and the message: that is the
    few-shot strategy, which trains nothing and puts labelled messages in the prompt instead.
    """

    def __init__(
        self,
        tokenizer,
        max_message_tokens: int = DEFAULT_MAX_MESSAGE_TOKENS,
        examples: Sequence[tuple[str, str]] = (),
        labels: Sequence[str] = LABELS,
    ) -> None:
        if max_message_tokens < 8:
            raise ValueError("max_message_tokens must be at least 8")
        self.tokenizer = tokenizer
        self.max_message_tokens = max_message_tokens
        self.labels = tuple(labels)
        shots = "".join(
            f"{MESSAGE_MARKER} {normalize_message(text)}\n\n{CUE}{completion_text(label)}\n\n"
            for text, label in examples
        )
        # Only the prefix may carry the tokenizer's special start token (if it adds one).
        self.prefix = tuple(tokenizer(f"{INSTRUCTION}\n\n{shots}{MESSAGE_MARKER}").input_ids)
        self.suffix = self._encode(f"\n\n{CUE}")
        self._truncation_mark = self._encode(TRUNCATION_MARK)
        self.label_ids: dict[str, tuple[int, ...]] = {
            label: self._encode(completion_text(label)) for label in self.labels
        }

    def _encode(self, text: str) -> tuple[int, ...]:
        return tuple(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _message_ids(self, message: str) -> tuple[str, tuple[int, ...], bool]:
        """The normalised message cut to MAX_MESSAGE_CHARS characters (head and tail), and its token ids."""
        cut = len(message) > MAX_MESSAGE_CHARS
        if cut:
            message = message[: MAX_MESSAGE_CHARS * 3 // 4] + message[-MAX_MESSAGE_CHARS // 4 :]
        return message, self._encode(f" {message}"), cut

    def _sentence_passages(self, message: str, max_passages: int) -> list[tuple[int, ...]]:
        """A long message's sentences, each on its own (cut to the budget: the windows read all of it); when
        there are more than ``max_passages``, consecutive ones are packed together, up to half a window
        each and more if that still makes too many."""
        sentences = [self._encode(f" {s}") for s in split_sentences(message)]
        if len(sentences) < 2:
            return []
        budget = self.max_message_tokens
        if len(sentences) <= max_passages:
            return [ids[:budget] for ids in sentences]
        room = max(1, budget // 2)
        while True:
            passages: list[tuple[int, ...]] = []
            for ids in sentences:
                if passages and len(passages[-1]) + len(ids) <= room:
                    passages[-1] = passages[-1] + ids
                else:
                    passages.append(ids[:budget])
            if len(passages) <= max_passages or room >= budget:
                return passages[:max_passages]
            room = min(budget, room * 2)

    def encode(self, text: str) -> PromptIds:
        """Tokenise one message into one prompt; a message over budget keeps its head and tail.

        Training uses this (its examples are short); serving reads every part with `encode_windows`.
        """
        budget = self.max_message_tokens
        # Tokenising a 50,000-character message costs more than classifying it: cut characters first,
        # far above any budget (no token is shorter than one character).
        message = normalize_message(text)
        max_chars = budget * 12
        if len(message) > max_chars:
            message = message[: max_chars * 3 // 4] + message[-max_chars // 4 :]
        ids, truncated = self._head_and_tail(self._encode(f" {message}"))
        return PromptIds(self.prefix, ids, self.suffix, truncated=truncated)

    def _head_and_tail(self, ids: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
        """Message ids cut to the budget, and whether they were cut."""
        budget = self.max_message_tokens
        if len(ids) <= budget:
            return ids, False
        # Keep three quarters from the head and the rest from the tail: an insult at the end of a long
        # message is still seen.
        room = budget - len(self._truncation_mark)
        head = room * 3 // 4
        tail = room - head
        return ids[:head] + self._truncation_mark + (ids[-tail:] if tail else ()), True

    def encode_windows(self, text: str, max_windows: int = DEFAULT_MAX_WINDOWS,
                       normalized: bool = False) -> list[PromptIds]:
        """Every part of a message as prompts: one if it fits the budget, else windows overlapping by half
        (by less, when half-overlapping windows would be more than ``max_windows``), followed by its
        sentences read on their own (at most twice ``max_windows`` passages; see _sentence_passages).

        A message with words that only a loose reading of leetspeak decodes ("4r3 4pe5") is read that way
        too: a short one as a second prompt, a long one in its sentence passages.

        ``truncated`` is set on every window when some part of the message was not read: even windows
        without overlap would be more than ``max_windows`` (they are then spread evenly over it), or more
        than MAX_MESSAGE_CHARS characters were given.
        """
        budget = self.max_message_tokens
        message, ids, cut = self._message_ids(text if normalized else normalize_message(text))
        loose = undo_leetspeak(message, loose=True)
        if len(ids) <= budget:
            parts = [ids]
            if loose != message:
                parts.append(self._head_and_tail(self._encode(f" {loose}"))[0])
            return [PromptIds(self.prefix, part, self.suffix, truncated=cut) for part in parts]
        last = len(ids) - budget
        # Half-overlapping windows; when that needs more than max_windows, the overlap shrinks (down to
        # none) before any token goes unread.
        stride = max(1, budget // 2, -(-last // (max_windows - 1))) if max_windows > 1 else last + budget
        if stride <= budget:
            starts = list(range(0, last, stride)) + [last]
        else:
            cut = True
            starts = [round(i * last / (max_windows - 1)) for i in range(max_windows)] if max_windows > 1 else [0]
        windows = [ids[start:start + budget] for start in starts]
        passages = self._sentence_passages(loose, MAX_PASSAGES_PER_WINDOW * max_windows)
        return [PromptIds(self.prefix, part, self.suffix, truncated=cut) for part in windows + passages]

    def encode_example(self, text: str, label: str) -> tuple[list[int], list[int]]:
        """Token ids and the loss labels of a training example: -100 everywhere but the completion."""
        prompt = self.encode(text).ids
        completion = list(self.label_ids[label])
        return prompt + completion, [-100] * len(prompt) + completion
