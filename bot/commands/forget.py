"""`modbot forget --user ID | --message ID`: erase a member's messages, or one message, everywhere modbot wrote them."""

from __future__ import annotations

import argparse
import asyncio

from model.errors import ModbotError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "forget",
        help="erase a member's messages (or one message) everywhere modbot wrote them",
        description="Erase the text of a member's messages, or of one message, from the database (MODBOT_DB: "
        "corrections, flags, stored texts, messages waiting to be classified) and from every data file of the "
        "adapter registry (MODBOT_ADAPTER_DIR: each version's train.jsonl and other data files, each job's "
        "exported corrections and data splits), then say what was erased where and which adapter versions were "
        "trained on it (their weights may still carry it). The review cards that quote it are rewritten by the "
        "bot. Safe while the bot runs. It cannot be undone; backups are not reached.",
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", type=_discord_id, metavar="ID", help="the member's Discord user id")
    target.add_argument("--message", type=_discord_id, metavar="ID", help="the message's Discord id")
    parser.set_defaults(handler=run)


def _discord_id(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 2**63:
        raise argparse.ArgumentTypeError(f"{value!r} is not a Discord id (a number, like 123456789012345678)")
    return int(value)


def run(args: argparse.Namespace) -> int:
    from bot.settings import Settings

    settings = Settings.from_env()
    if not settings.db_path.is_file():
        raise ModbotError(f"MODBOT_DB={settings.db_path}: no such database (point MODBOT_DB at the bot's database).")
    report = asyncio.run(_forget(settings, args.user, args.message))
    cards = report.rows.cards
    print("\n".join(report.lines(cards=f"{cards} queued: the bot rewrites them within minutes while it runs, or "
                                       "at its next start" if cards else "none quoted it")))
    if report.errors:
        raise ModbotError(f"{len(report.errors)} files could not be rewritten and still hold the text (see above).")
    return 0


async def _forget(settings, user_id: int | None, message_id: int | None):
    from bot import storage
    from bot.forget import forget_everywhere

    conn = await storage.open_database(settings.db_path)
    try:
        return await forget_everywhere(conn, settings, user_id=user_id, message_id=message_id, requested_by="shell")
    finally:
        await conn.close()
