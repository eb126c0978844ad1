"""Readers for every labelled-message format modbot accepts. Each yields `Example`s with their origin.

Formats, told apart by extension and header or keys:

* **Davidson CSV** (the Hate Speech and Offensive Language dataset's own layout), header
  ``[index,]count,hate_speech,offensive_language,neither,class,tweet``; ``class`` 0 = hate,
  1 = offensive, 2 = neither (neutral). A leading unnamed index column is allowed.
* **Text/label CSV**: a header with ``text`` and ``label`` columns, in any order (others ignored but an
  optional ``category``, which `modbot eval --by category` reports on). Labels are ``hate``,
  ``offensive``, ``neutral`` (``neither`` is accepted for neutral).
* **Prompt/completion JSONL** (the reference experiment's and OpenAI fine-tuning files), one object
  a line: ``{"prompt": "<message>", "completion": " hate"}``. A trailing separator that such files
  put after the message (``\\n\\n###\\n\\n``, ``->``, ``Category:``) is removed, and if the prompt is
  a full modbot prompt the message is taken out of it. The completion is a label, optionally followed
  by a stop sequence (``\\n``, ``###``, ``END``).
* **Correction export JSONL** (written by the bot when moderators correct a flag), one object a
  line: ``{"text": str, "label": "hate|offensive|neutral" (the corrected label), "predicted":
  str|null, "probabilities": {...}|null, "message_id": int, "guild_id": int, "channel_id": int,
  "author_id": int, "moderator_id": int, "created_at": ISO-8601 str}``. Only ``text`` and ``label``
  are required; the rest is kept out of training.

A JSONL line is read by its keys: ``prompt``/``completion`` or ``text``/``label``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from model.labels import LABELS, parse_label
from model.prompt import CUE, MESSAGE_MARKER

from .errors import DataError

DAVIDSON_COLUMNS = ("count", "hate_speech", "offensive_language", "neither", "class", "tweet")
DAVIDSON_CLASSES = {"0": "hate", "1": "offensive", "2": "neutral"}
_PROMPT_SEPARATORS = re.compile(r"(\s*(###|->|" + re.escape(CUE) + r")\s*)+$")
_COMPLETION_STOPS = re.compile(r"(\s*(###|END|\.)\s*)+$")


@dataclass(frozen=True)
class Example:
    """One labelled message and where it came from (file and 1-based line)."""

    text: str
    label: str
    source: str = ""
    line: int = 0
    category: str = ""  # an evaluation file's category column (``modbot eval --by category``)


def read_examples(path: Path | str) -> list[Example]:
    """Every example in ``path``, whatever its format; DataError names the file and line of a problem."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(path, "no such file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot be read as UTF-8 text ({exc}).") from None
    if not raw.strip():
        raise DataError(path, "the file is empty: it needs labelled messages (see `modbot train --help`).")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        examples = list(_read_jsonl(path, raw))
    else:
        examples = list(_read_csv(path, raw))
    if not examples:
        raise DataError(path, "the file has a header but no examples.")
    return examples


def _read_csv(path: Path, raw: str) -> Iterator[Example]:
    reader = csv.reader(raw.splitlines(keepends=True))
    header = [name.strip().lower() for name in next(reader)]
    if "tweet" in header and "class" in header:
        text_col, label_col, davidson = header.index("tweet"), header.index("class"), True
    elif "text" in header and "label" in header:
        text_col, label_col, davidson = header.index("text"), header.index("label"), False
    else:
        missing = "text, label" if "class" not in header and "tweet" not in header else (
            "tweet" if "tweet" not in header else "class")
        raise DataError(
            path,
            f"missing column(s) {missing}: the header is {','.join(header)!r}. Use a CSV with text and label "
            f"columns, or the Davidson layout ({','.join(DAVIDSON_COLUMNS)}).",
            line=1,
        )
    category_col = header.index("category") if "category" in header else None
    last_line = reader.line_num
    for row in reader:
        start, last_line = last_line + 1, reader.line_num  # a quoted field may span several lines
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(text_col, label_col):
            raise DataError(path, f"the row has {len(row)} column(s), the header {len(header)}.", line=start)
        value = row[label_col]
        if davidson:
            label = DAVIDSON_CLASSES.get(value.strip())
            if label is None:
                raise DataError(path, f"unknown class {value!r}: the Davidson layout uses 0 (hate), 1 "
                                      "(offensive) and 2 (neither).", line=start)
        else:
            label = _label(path, start, value)
        category = row[category_col].strip() if category_col is not None and category_col < len(row) else ""
        yield Example(row[text_col], label, str(path), start, category)


def _read_jsonl(path: Path, raw: str) -> Iterator[Example]:
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON ({exc.msg}).", line=number) from None
        if not isinstance(record, dict):
            raise DataError(path, "expected a JSON object on each line.", line=number)
        if "prompt" in record and "completion" in record:
            text = _message_from_prompt(str(record["prompt"]))
            label = _label(path, number, _COMPLETION_STOPS.sub("", str(record["completion"])))
        elif "text" in record and "label" in record:
            text, label = record["text"], _label(path, number, str(record["label"]))
        else:
            raise DataError(
                path,
                f"missing key(s): a line needs 'text' and 'label' (a correction export) or 'prompt' and "
                f"'completion'; it has {', '.join(sorted(record)) or 'none'}.",
                line=number,
            )
        if not isinstance(text, str):
            raise DataError(path, "the message text is not a string.", line=number)
        category = record.get("category")
        yield Example(text, label, str(path), number, category if isinstance(category, str) else "")


def _message_from_prompt(prompt: str) -> str:
    # A full modbot prompt: keep only what follows the last "Message:" marker.
    if MESSAGE_MARKER in prompt:
        prompt = prompt.rsplit(MESSAGE_MARKER, 1)[1]
    return _PROMPT_SEPARATORS.sub("", prompt).strip()


def _label(path: Path, line: int, value: str) -> str:
    try:
        return parse_label(value)
    except ValueError:
        raise DataError(path, f"unknown label {value.strip()!r}: use one of {', '.join(LABELS)}.", line=line) from None
