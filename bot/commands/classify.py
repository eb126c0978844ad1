"""`modbot classify`: label messages from the arguments, a file or standard input."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import model
from model import ModelSettings
from model.errors import AdapterError, ModbotError
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
    parser.add_argument("--adapter", type=Path, help="adapter directory (default: MODBOT_ADAPTER, else the active "
                        "version of the bot's registry in MODBOT_DB, else the shipped one)")
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
        settings = replace(settings, adapter=args.adapter)
    settings, source = with_registry_adapter(settings)
    classifier = load_classifier(settings, source)
    if classifier.is_zero_shot:
        print(
            f"modbot: no adapter for {classifier.model_name}: classifying zero-shot "
            "(the base model's own guesses; train an adapter with `modbot train`).",
            file=sys.stderr,
        )
    else:
        where = f" ({source})" if source else ""
        print(f"modbot: {classifier.model_name} with adapter {classifier.adapter_version}{where}", file=sys.stderr)
    for text, prediction in zip(messages, classifier.classify(messages), strict=True):
        if args.json:
            print(json.dumps({"text": text, **prediction.to_dict()}, ensure_ascii=False))
        else:
            probabilities = "  ".join(f"{label} {prediction.probabilities[label]:.3f}" for label in LABELS)
            note = " (skipped: nothing to classify)" if prediction.skipped else ""
            print(f"{prediction.label:<9}  {probabilities}  | {_preview(text)}{note}")
    return 0


def with_registry_adapter(settings: ModelSettings) -> tuple[ModelSettings, str | None]:
    """The adapter the bot serves, for `modbot classify` and `modbot eval`: when neither --adapter nor
    MODBOT_ADAPTER chose one, the active version of the registry in MODBOT_DB (default modbot.sqlite3), if it
    has one for this model; else the settings as they are. Returns the settings and, for a registry version,
    words saying which it is."""
    if settings.adapter is not None or not settings.use_default_adapter:
        return settings, None
    import asyncio

    from bot import storage
    from bot.settings import DEFAULT_DB

    db = os.environ.get("MODBOT_DB", "").strip() or str(DEFAULT_DB)
    active = asyncio.run(storage.read_active_version(db))
    if active is None or active.path is None or active.model != settings.model:
        return settings, None
    source = f"version {active.number}, the active version in {db}"
    return replace(settings, adapter=Path(active.path)), source


def load_classifier(settings: ModelSettings, source: str | None) -> model.Classifier:
    """Classifier.from_settings; an unusable registry version is named as such (with the way around it)."""
    try:
        return model.Classifier.from_settings(settings)  # imports torch: only when classifying
    except AdapterError as exc:
        if source is None:
            raise
        raise AdapterError(f"{exc} (That adapter is {source}: choose another with --adapter or "
                           "MODBOT_ADAPTER.)") from None


def _preview(text: str, width: int = 80) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"
