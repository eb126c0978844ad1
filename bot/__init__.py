"""modbot's Discord side: the bot, its storage, the classification service and the `modbot` commands.

``from bot import Settings, create_bot`` builds the bot without connecting; discord.py is imported
only when one of them is first used, so `modbot classify` stays quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .bot import ModBot, create_bot
    from .settings import Settings

__all__ = ["ModBot", "Settings", "create_bot"]


def __getattr__(name: str):
    if name == "Settings":
        from .settings import Settings

        return Settings
    if name in ("create_bot", "ModBot"):
        from . import bot as _bot

        return getattr(_bot, name)
    raise AttributeError(name)
