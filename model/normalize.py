"""Undoing the encoding tricks that hide words from a classifier, so the model reads what a member sees.

Each rule below exists because a member can use it to make text *look* normal in Discord while the
characters underneath are different. They run before tokenising, in training and in serving alike.
The order matters: what a reader sees is decided first (bidi, invisible characters), then characters
are folded to the letters they look like, then the spellings that stretch or split words are undone.

Obfuscations that change the *letters* a reader sees (character swaps, deletions, most leetspeak) cannot
be undone without guessing; the model learns those from obfuscated training examples
(`training/augment.py`). The one leetspeak rule here only touches words that are plainly written in it.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from .word_breaks import is_word, split_run_together

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt) plus the bidi controls: code points that
# render as nothing. Members put them between letters (k\u200dill) to split a word for the tokenizer.
_DEFAULT_IGNORABLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
_IGNORABLE = re.compile(f"[{_DEFAULT_IGNORABLE}]")
# Blank characters that are not Unicode whitespace (Braille blank, Hangul fillers' cousins) read as a space.
_BLANKS = re.compile("[\u2800\u3000\u1680\u2000-\u200a\u202f\u205f]")
# Explicit overrides reorder the letters a member sees: U+202E followed by "tsixer" renders "rexist".
_OVERRIDES = re.compile("[\u202d\u202e]")


def resolve_overrides(text: str) -> str:
    """The text in the order it is displayed, when it uses left-to-right or right-to-left overrides.

    Only text with an override goes through the Unicode bidi algorithm (python-bidi, the Rust
    unicode-bidi crate): ordinary right-to-left scripts keep their logical order, which is what a
    language model reads.
    """
    if not _OVERRIDES.search(text):
        return text
    from bidi import get_display

    return "\n".join(get_display(line) if _OVERRIDES.search(line) else line for line in text.split("\n"))


def remove_invisible(text: str) -> str:
    """Drop every character that renders as nothing: default-ignorable code points and format (Cf) characters."""
    text = _IGNORABLE.sub("", text)
    if not text.isascii():
        text = "".join(ch for ch in text if ch.isascii() or unicodedata.category(ch) != "Cf")
    return _BLANKS.sub(" ", text)


def strip_latin_marks(text: str) -> str:
    """Remove accents and stacked combining marks from Latin letters ("ìdìöt", zalgo text), and marks
    stacked on spaces and punctuation (a strikethrough drawn with U+0335 over every character).

    Accents are a cheap way to make a word unknown to the tokenizer while it reads the same; English
    loses nothing without them.
    """
    if text.isascii():
        return text
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.combining(ch) and out and out[-1].isascii():
            continue  # a mark on an ASCII letter, space or punctuation (its base already emitted)
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _ascii_letter(prototype: str) -> str | None:
    """The ASCII letter a confusables prototype reads as, if it reads as one.

    TR39 gives some look-alikes a prototype that is a Latin letter but not an ASCII one: a letter with a
    combining mark (Greek "η" -> "n" with a line below), a small capital (Cyrillic "т" and Greek "τ" ->
    "ᴛ"), or kra (Cyrillic "к" and Greek "κ" -> "ĸ", a small capital K). A reader sees the plain letter.
    """
    base = "".join(ch for ch in unicodedata.normalize("NFD", prototype) if not unicodedata.combining(ch))
    if len(base) != 1:
        return None
    if base.isascii():
        return base if base.isalpha() else None
    name = unicodedata.name(base, "")
    if name.startswith("LATIN LETTER SMALL CAPITAL ") and len(name) == len("LATIN LETTER SMALL CAPITAL X"):
        return name[-1].lower()
    if name == "LATIN SMALL LETTER KRA":
        return "k"
    return None


@lru_cache(maxsize=1)
def _latin_lookalikes() -> dict[str, str]:
    """Non-ASCII character -> the ASCII letter it is confusable with, from Unicode TR39's confusables table.

    The table is the one maintained by the confusable_homoglyphs package (generated from Unicode's
    confusables.txt); single characters whose prototype reads as one ASCII letter are kept
    (`_ascii_letter`). TR39 is case-sensitive and lists some capitals but not their small letters (Greek
    "Χ" is confusable with "X", "χ" with nothing Latin): a small letter without an entry of its own takes
    its capital's letter in small, as it looks the same at x-height ("χ" -> "x").
    """
    from confusable_homoglyphs.confusables import confusables_data

    mapping: dict[str, str] = {}
    for char, glyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for glyph in glyphs:
            letter = _ascii_letter(glyph.get("c", ""))
            if letter:
                mapping[char] = letter
                break
    # Small capitals ("ʏᴏᴜ ᴀʀᴇ", a favourite of "fancy text" generators) read as their letter; TR39 lists
    # only the ones that look like another letter, so a word in small capitals was read as a foreign script.
    for code in range(0x0250, 0xAB70):
        char = chr(code)
        letter = _ascii_letter(char)
        if letter and char not in mapping:
            mapping[char] = letter
    for char, letter in list(mapping.items()):
        small = char.lower()
        if letter.isupper() and len(small) == 1 and small != char and small not in mapping:
            mapping[small] = letter.lower()
    return mapping


_WORD = re.compile(r"\S+")


def _script(char: str) -> str:
    return unicodedata.name(char, "").split(" ")[0]  # "CYRILLIC", "GREEK", "LATIN", ...


def map_lookalikes(text: str) -> str:
    """Fold letters of other scripts that look Latin (Cyrillic "а", Greek "ο") into Latin, word by word.

    A word that mixes Latin letters with look-alikes is folded. A word spelled only in look-alikes is
    folded unless the message is genuinely written in that script: when it also has letters of the script
    that look like no Latin letter ("как" stays in "Здравствуйте, как дела"), the word is that language.
    """
    if text.isascii():
        return text
    table = _latin_lookalikes()
    genuine_scripts = {_script(ch) for ch in text if ch.isalpha() and not ch.isascii() and ch not in table}

    def fold(match: re.Match) -> str:
        word = match.group(0)
        if word.isascii():
            return word
        letters = [ch for ch in word if ch.isalpha()]
        foreign = [ch for ch in letters if not ch.isascii()]
        if not foreign:
            return word
        has_latin = len(foreign) < len(letters)
        disguised = all(ch in table for ch in foreign) and not any(_script(ch) in genuine_scripts for ch in foreign)
        if not (has_latin or disguised):
            return word
        return "".join(table.get(ch, ch) for ch in word)

    return _WORD.sub(fold, text)


# Letters spelled out with one separator between them: "k i l l", "k.i.l.l", "k-i-l-l", "k*i*l*l".
# With spaces, four letters or more ("u r a" is ordinary chat), or three once the message has used the
# trick on a longer word ("f u c k  y o u"); with other separators, three or more.
_SPACED_4 = re.compile(r"(?<![\w])(?:[A-Za-z] ){3,}[A-Za-z](?![\w])")
_SPACED_3 = re.compile(r"(?<![\w])(?:[A-Za-z] ){2,}[A-Za-z](?![\w])")
_DOTTED = re.compile(r"(?<![\w.\-_*])(?:[A-Za-z]([.\-_*]))(?:[A-Za-z]\1){1,}[A-Za-z](?![\w])")


def _join(match: re.Match) -> str:
    run = match.group(0)
    word = run.replace(" ", "")
    # "a" and "i" are words of their own ("you are a l o s e r", "i h a t e you"), unless the letters
    # make one word with them ("i d i o t", "a s s h o l e").
    if run[0] in "aAiI" and len(run) >= 9 and not is_word(word):
        return run[:2] + run[2:].replace(" ", "")
    return word


def join_spaced_letters(text: str) -> str:
    """Join words spelled out letter by letter, which the tokenizer would read as separate letters.

    Words separated by two or more spaces stay separate ("f u c k  y o u" -> "fuck you").
    """
    joined = _SPACED_4.sub(_join, text)
    if joined != text:
        joined = _SPACED_3.sub(_join, joined)
    return _DOTTED.sub(lambda m: m.group(0).replace(m.group(1), ""), joined)


_LEET = {"4": "a", "@": "a", "3": "e", "1": "i", "!": "i", "0": "o", "5": "s", "$": "s", "7": "t"}
_LEET_TOKEN = re.compile(r"[A-Za-z0-9@$!]+")


def undo_leetspeak(text: str, loose: bool = False) -> str:
    """Read digits and symbols as the letters they stand for, in words plainly written in leetspeak.

    A token qualifies when it has at least two letters, a substitute character *between* two of its
    letters ("1d10t", "h4t3", "b!tch") and no digit that is not a substitute; then every substitute in it
    is read ("h4t3" -> "hate"). Numbers, versions and names with a number only at an end ("ps5",
    "covid19", "4k", "2nd") and ids with other digits are left alone.

    ``loose`` also reads words that leetspeak has left with one letter, or none between its substitutes
    ("4r3", "h035", "7h15", "4pe5"): any token with a letter and substitute digits, and no other digit.
    That also misreads "ps5" and "4k", so the loose reading is never the only one: the classifier reads
    it *besides* the message as written (`model.prompt.PromptBuilder.encode_windows`).
    """

    def fold(match: re.Match) -> str:
        token = match.group(0)
        letter_positions = [i for i, ch in enumerate(token) if ch.isalpha()]
        if not letter_positions or any(ch.isdigit() and ch not in _LEET for ch in token):
            return token
        if "@" in token and text[match.end():match.end() + 1] == ".":
            return token  # an e-mail address
        inside = token[letter_positions[0]:letter_positions[-1]]
        if len(letter_positions) >= 2 and any(ch in _LEET for ch in inside):
            return "".join(_LEET.get(ch, ch) for ch in token)
        if loose and any(ch.isdigit() for ch in token):
            return "".join(_LEET.get(ch, ch) if ch.isdigit() or ch in inside else ch for ch in token)
        return token

    return _LEET_TOKEN.sub(fold, text)


# Letters that double in English words keep two ("gooood" -> "good", "killlll" -> "kill"); the others
# keep one ("fuuuuck" -> "fuck", "shiiiit" -> "shit").
_DOUBLING = set("bcdefglmnoprstz")
_STRETCHED = re.compile(r"([A-Za-z])\1{2,}")


def squeeze_stretched(text: str) -> str:
    """Shorten a letter repeated three times or more, which stretches a word past the tokenizer's vocabulary."""

    def squeeze(match: re.Match) -> str:
        letter = match.group(1)
        return letter * (2 if letter.lower() in _DOUBLING else 1)

    return _STRETCHED.sub(squeeze, text)


# Words run together with capitals or underscores marking where each starts ("YouAreAnIdiot",
# "kill_all_of_them") read as one unknown token to the tokenizer; a reader sees the words. A token
# qualifies with three parts or more, two of them with small letters, so names ("McDonald", "iPhone",
# "PlayStation") and acronyms ("NASA", "macOS") stay as written; hashtags and @handles are left alone.
_CAMEL_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z][a-z']*|^[a-z][a-z']*")
_CAMEL_TOKEN = re.compile(r"(?<![\w#@'])[A-Za-z][A-Za-z']*[A-Z][A-Za-z']*(?![\w'])")
_JOINED_BY_UNDERSCORE = re.compile(r"(?<=[A-Za-z0-9,.!?;:])_+(?=[A-Za-z])|(?<=[A-Za-z])_+(?=[0-9,.!?;:])")
# Words run together with nothing between them ("ihateyouallgetout"): twelve letters or more, all of one
# case (the first may be a capital, at the start of a sentence).
_RUN_TOGETHER = re.compile(r"(?<![\w#@'/])(?:[A-Za-z][a-z]{11,}|[A-Z]{12,})(?![\w'@])")


def _split_camel(match: re.Match) -> str:
    token = match.group(0)
    parts = _CAMEL_PART.findall(token)
    if "".join(parts) != token or len(parts) < 3 or sum(part != part.upper() for part in parts) < 2:
        return token
    return " ".join(parts)


def separate_marked_words(text: str) -> str:
    """Put the spaces back between words joined by capitals or underscores ("GoBackHome", "go_back_home")."""
    text = _JOINED_BY_UNDERSCORE.sub(" ", text)
    return _CAMEL_TOKEN.sub(_split_camel, text)


def separate_run_together_words(text: str) -> str:
    """Put the spaces back between words run together with nothing between them ("gobackhomeyouidiot")."""
    return _RUN_TOGETHER.sub(lambda match: " ".join(split_run_together(match.group(0)) or [match.group(0)]), text)


# Regional indicator symbols render as boxed letters, and a pair of them as that country's flag:
# "🇮 🇩 🇮 🇴 🇹", or the letters run together with invisible characters between them, reads as a word.
# Read before invisible characters are removed: members put them between the letters to stop a pair
# rendering as a flag, so two symbols count as a flag only when nothing stands between them.
_RI = "[\U0001F1E6-\U0001F1FF]"
_REGIONAL_INDICATORS = re.compile(f"{_RI}(?:[{_DEFAULT_IGNORABLE}]*{_RI})*")


def read_regional_indicators(text: str) -> str:
    """Regional indicator letters as the letters they show; a pair on its own is a flag and stays one.

    They are read in small letters: the boxes show no case, and the model reads shouted text less well.
    """
    if text.isascii():
        return text

    def read(match: re.Match) -> str:
        run = match.group(0)
        if len(run) == 2:
            return run
        return "".join(chr(ord(ch) - 0x1F1E6 + ord("a")) if ch >= "\U0001F1E6" else ch for ch in run)

    return _REGIONAL_INDICATORS.sub(read, text)


# Upside-down text ("ʇoıpı" for "idiot"): turned letters, written in reverse so that it reads when the
# screen is turned. Plain letters that are each other turned round (d/p, b/q, n/u) swap too.
_TURNED = {
    "ɐ": "a", "ɔ": "c", "ǝ": "e", "ɟ": "f", "ƃ": "g", "ɥ": "h", "ı": "i", "ɾ": "j", "ʞ": "k", "ɯ": "m",
    "ɹ": "r", "ʇ": "t", "ʌ": "v", "ʍ": "w", "ʎ": "y", "∀": "A", "Ǝ": "E", "⊥": "T", "∩": "U", "Ԁ": "P",
    "d": "p", "p": "d", "b": "q", "q": "b", "n": "u", "u": "n", "¿": "?", "¡": "!", "˙": ".",
}
# Dotless i is also a Turkish letter, so it does not count as a sign of upside-down text on its own.
_TURNED_SIGNS = frozenset(ch for ch in _TURNED if not ch.isascii() and ch.isalpha() and ch != "ı")


def turn_upside_down_text(text: str) -> str:
    """Lines written upside down, turned the right way up.

    A line counts as upside down when it uses at least two different turned letters and they are at
    least a fifth of its letters: a stray "ǝ" in a phonetic spelling is left alone.
    """
    if text.isascii():
        return text

    def turn(line: str) -> str:
        letters = [ch for ch in line if ch.isalpha()]
        signs = [ch for ch in letters if ch in _TURNED_SIGNS]
        if len(set(signs)) < 2 or len(signs) < len(letters) / 5:
            return line
        return "".join(_TURNED.get(ch, ch) for ch in reversed(line))

    return "\n".join(turn(line) for line in text.split("\n"))


def reveal(text: str) -> str:
    """The characters a member sees: display order, nothing invisible, compatibility forms folded."""
    text = resolve_overrides(text)
    text = read_regional_indicators(text)
    text = remove_invisible(text)
    # Fullwidth, mathematical bold/italic/script, circled and other compatibility letters are the same
    # letters to a reader; NFKC folds them (and ligatures, superscripts) into plain ones.
    text = unicodedata.normalize("NFKC", text)
    return turn_upside_down_text(text)


def respell(text: str) -> str:
    """Words spelled the way the model knows them: no accents, look-alikes, spacing, leet, stretching or joining."""
    text = strip_latin_marks(text)
    text = map_lookalikes(text)
    text = join_spaced_letters(text)
    # Before leetspeak, whose letters take the case of their digits ("PARA$I7ES" -> "PARAsItES"), which
    # would read as capitals marking words; after stretching is undone, which a run's words need.
    text = separate_marked_words(text)
    text = undo_leetspeak(text)
    text = squeeze_stretched(text)
    return separate_run_together_words(text)


def normalize_text(text: str) -> str:
    """Every rule above, in order."""
    return respell(reveal(text))
