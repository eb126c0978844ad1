"""Put the spaces back into words run together with none ("ihopeyourhivkillsyou").

Written without spaces, a message becomes one long unknown token to the tokenizer, and the model reads
it as noise; a member reads the words. The `wordsegment` package finds the most probable words by their
frequency, alone and in pairs, on the web (Google's Web 1T corpus): "muslimsarescum" is "muslims are
scum", not "muslims a res cum".

Cutting a word that is merely rare or misspelt would change what an ordinary message says
("assimiliation" -> "as simili ation"), so a run is only split when all of these hold:
- it is not itself a word of the list (333,000 words with names and places: "scunthorpe" stays whole);
- it makes three words or more: two are too often a long word the list lacks, cut where a shorter word
  fits ("intersection ality", "speed runners"), while words run together on purpose come several at a
  time;
- every piece of four letters or fewer is a frequent word, and at most a fifth of its letters are in
  longer pieces that are not (a name: "yusuf", "jamie"). A frequent word is among the 100,000 most
  frequent for seven letters or more, the 20,000 for five or six, the 10,000 for three or four, and an
  English word for one or two letters: a misspelt word cuts into rare fragments ("simili", "ation",
  "lym"), and the list also has codes and abbreviations ("jkl", "pc").
The lists are read the first time a run needs them (under a second, about 95 MB).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

import wordsegment

_FEWEST_PIECES = 3
_SHORT_PIECE = 4
_MOST_UNKNOWN_LETTERS = 1 / 5
# (letters at least, rank below): the rarer a word, the longer it must be to count as a frequent word
_FREQUENT_RANKS = ((7, 100_000), (5, 20_000), (3, 10_000))
_SHORT_WORDS = frozenset(
    "a i am an as at be by do go he hi if in is it me my no of oh ok on or so to up us we ya yo".split()
)
_loading = threading.Lock()


@dataclass(frozen=True)
class _Segmenter:
    segmenter: wordsegment.Segmenter
    frequent: frozenset[str]


@lru_cache(maxsize=1)
def _load() -> _Segmenter:
    segmenter = wordsegment.Segmenter()
    segmenter.load()
    ranked = sorted(segmenter.unigrams, key=segmenter.unigrams.__getitem__, reverse=True)
    frequent = frozenset(
        word for rank, word in enumerate(ranked)
        if word in _SHORT_WORDS or any(len(word) >= letters and rank < below for letters, below in _FREQUENT_RANKS)
    )
    return _Segmenter(segmenter, frequent)


def _segmenter() -> _Segmenter:
    with _loading:  # the classifier's worker threads may meet their first run together
        return _load()


def is_word(letters: str) -> bool:
    """Whether ``letters`` (any case) is a word of the list."""
    return letters.lower() in _segmenter().segmenter.unigrams


def split_run_together(run: str) -> list[str] | None:
    """The words of ``run`` (ASCII letters only), in its own case, if it is words written without
    spaces; else None."""
    if is_word(run):
        return None
    loaded = _segmenter()
    lower = run.lower()
    pieces = loaded.segmenter.segment(lower)
    if len(pieces) < _FEWEST_PIECES or "".join(pieces) != lower:
        return None
    unknown = [piece for piece in pieces if piece not in loaded.frequent]
    if any(len(piece) <= _SHORT_PIECE for piece in unknown):
        return None
    if sum(len(piece) for piece in unknown) > _MOST_UNKNOWN_LETTERS * len(lower):
        return None
    words, start = [], 0
    for piece in pieces:
        words.append(run[start:start + len(piece)])
        start += len(piece)
    return words
