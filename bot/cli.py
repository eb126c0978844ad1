"""The `modbot` command line. Each subcommand lives in its own module with a `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from model.errors import ModbotError
from model.quiet import quiet_transformers

from .settings import load_dotenv_file

# One module per subcommand (or group of related subcommands), registered in this order.
COMMAND_MODULES: tuple[str, ...] = (
    "bot.commands.classify",
    "bot.commands.demo",
    "bot.commands.train",
    "bot.commands.run",
    "bot.commands.corrections",
    "bot.commands.retrain",
    "bot.commands.augment",
    "bot.commands.backup",
    "bot.commands.forget",
    "bot.commands.serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modbot",
        description="Self-hosted Discord moderation bot: labels messages hate / offensive / neutral.",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default: MODBOT_LOG_LEVEL or WARNING)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def configure_logging(level_name: str | None) -> None:
    level_name = (level_name or os.environ.get("MODBOT_LOG_LEVEL") or "WARNING").upper()
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        raise ModbotError(f"Log level {level_name!r} is not valid: use DEBUG, INFO, WARNING or ERROR.")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_transformers()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        load_dotenv_file()  # before any setting is read, MODBOT_LOG_LEVEL included
        configure_logging(args.log_level)
        return int(args.handler(args) or 0)
    except ModbotError as exc:
        print(f"modbot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modbot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
