"""`modbot corrections export`: the moderators' corrections as JSONL, for training."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from model.errors import ModbotError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "corrections",
        help="export the moderators' corrections",
        description="Work with the corrections stored in the bot's database (MODBOT_DB).",
    )
    actions = parser.add_subparsers(dest="corrections_command", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export",
        help="write every correction as JSONL",
        description="Write every correction, oldest first, one JSON object per line: text, label (the "
        "moderator's), predicted, probabilities, message_id, guild_id, channel_id, author_id, "
        "moderator_id, created_at. A later line for the same message supersedes an earlier one.",
    )
    export.add_argument("--out", required=True, help="the JSONL file to write ('-' for standard output)")
    export.add_argument("--guild", type=int, help="only this server's corrections")
    export.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from bot.settings import Settings

    db_path = Settings.from_env().db_path
    if not db_path.is_file():
        raise ModbotError(f"MODBOT_DB={db_path}: no such database (run the bot first, or point MODBOT_DB at it).")
    lines = asyncio.run(_export_lines(db_path, args.guild))
    if args.out == "-":
        sys.stdout.writelines(lines)
    else:
        write_atomically(Path(args.out), lines)
    where = "standard output" if args.out == "-" else args.out
    print(f"modbot: wrote {len(lines)} corrections from {db_path} to {where}", file=sys.stderr)
    return 0


async def _export_lines(db_path: Path, guild_id: int | None) -> list[str]:
    from bot import storage

    conn = await storage.open_database(db_path)
    try:
        return [
            json.dumps(correction.to_export(), ensure_ascii=False) + "\n"
            async for correction in storage.corrections(conn, guild_id)
        ]
    finally:
        await conn.close()


def write_atomically(path: Path, lines: list[str]) -> None:
    """Write to a temporary file beside ``path`` and rename it into place: a reader never sees half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.writelines(lines)
        os.replace(temporary, path)
    except OSError as exc:
        raise ModbotError(f"Cannot write --out {path}: {exc}") from None
