"""`modbot classify`: label messages from the arguments, a file or standard input."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model import Classifier, ModelSettings
from model.errors import ModbotError
from model.labels import LABELS


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="label messages hate / offensive / neutral",
        description="Label messages with the configured model and adapter (MODBOT_MODEL, MODBOT_ADAPTER, ...). "
        "Messages come from the arguments, from --file (one per line) or from standard input.",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="messages to label")
    parser.add_argument("--file", type=Path, help="a file with one message per line")
    parser.add_argument("--adapter", type=Path, help="adapter directory (default: MODBOT_ADAPTER or the shipped one)")
    parser.add_argument("--json", action="store_true", help="one JSON object per message and line")
    parser.set_defaults(handler=run)


def read_messages(args: argparse.Namespace) -> list[str]:
    if args.file is not None:
        try:
            return args.file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ModbotError(f"Cannot read --file {args.file}: {exc}") from None
    if args.texts:
        return list(args.texts)
    if sys.stdin.isatty():
        raise ModbotError("No messages: pass them as arguments, with --file FILE, or on standard input.")
    return sys.stdin.read().splitlines()


def run(args: argparse.Namespace) -> int:
    messages = read_messages(args)
    settings = ModelSettings.from_env()
    if args.adapter is not None:
        settings = ModelSettings(**{**settings.__dict__, "adapter": args.adapter})
    classifier = Classifier.from_settings(settings)
    if classifier.is_zero_shot:
        print(
            f"modbot: no adapter for {classifier.model_name}: classifying zero-shot "
            "(the base model's own guesses; train an adapter with `modbot train`).",
            file=sys.stderr,
        )
    else:
        print(f"modbot: {classifier.model_name} with adapter {classifier.adapter_version}", file=sys.stderr)
    for text, prediction in zip(messages, classifier.classify(messages), strict=True):
        if args.json:
            print(json.dumps({"text": text, **prediction.to_dict()}, ensure_ascii=False))
        else:
            probabilities = "  ".join(f"{label} {prediction.probabilities[label]:.3f}" for label in LABELS)
            note = " (skipped: nothing to classify)" if prediction.skipped else ""
            print(f"{prediction.label:<9}  {probabilities}  | {_preview(text)}{note}")
    return 0


def _preview(text: str, width: int = 80) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"
