"""`modbot run`: start the bot with DISCORD_TOKEN from the environment or `.env`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from model.config import resolve_model_name
from model.errors import ModbotError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="start the Discord bot",
        description="Start the bot: it connects with DISCORD_TOKEN and classifies every message of the servers "
        "it is in. Settings come from the environment and .env (see .env.example).",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import aiohttp
    import discord

    from bot import Settings, create_bot

    settings = Settings.from_env()
    if args.log_level is None:  # .env is read only now: let its MODBOT_LOG_LEVEL apply
        logging.getLogger().setLevel(settings.logging_level)
    token = settings.require_token()
    # A MODBOT_MODEL that names nothing is found out before the bot connects, not after it has logged in.
    resolve_model_name(settings.model.model)
    bot = create_bot(settings)
    try:
        asyncio.run(_serve(bot, token))
    except KeyboardInterrupt:
        pass  # Ctrl-C: the bot closed as on SIGTERM
    except discord.LoginFailure:
        raise ModbotError(
            "Discord rejected DISCORD_TOKEN: copy a fresh token from the developer portal "
            "(Applications > your app > Bot > Reset Token)."
        ) from None
    except discord.PrivilegedIntentsRequired:
        raise ModbotError(
            "Discord refused the Message Content intent: turn it on in the developer portal "
            "(Applications > your app > Bot > Privileged Gateway Intents > Message Content Intent)."
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise ModbotError(f"Cannot reach Discord: {exc}") from None
    return 0


async def _serve(bot, token: str) -> None:
    """What ``bot.run`` does, plus SIGTERM (systemd's stop) closing the bot as Ctrl-C does: the close
    classifies the queued messages and records what it cannot finish, instead of the process just ending."""
    async with bot:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(bot.close()))
        await bot.start(token)
