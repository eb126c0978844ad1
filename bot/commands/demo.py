"""`modbot demo`: label the repository's sample messages with the default model, offline."""

from __future__ import annotations

import argparse
from pathlib import Path

from model import Classifier, ModelSettings
from model.labels import LABELS

DEMO_MESSAGES = Path(__file__).resolve().parent.parent / "data" / "demo_messages.txt"


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="label a few sample messages offline with the default model")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    messages = [line for line in DEMO_MESSAGES.read_text(encoding="utf-8").splitlines() if line.strip()]
    classifier = Classifier.from_settings(ModelSettings.from_env())
    mode = "zero-shot (no adapter yet)" if classifier.is_zero_shot else f"adapter {classifier.adapter_version}"
    print(f"modbot demo: {classifier.model_name}, {mode}\n")
    for text, prediction in zip(messages, classifier.classify(messages), strict=True):
        probabilities = "  ".join(f"{label} {prediction.probabilities[label]:.2f}" for label in LABELS)
        print(f"{prediction.label:<9} {probabilities}   {text}")
    return 0
