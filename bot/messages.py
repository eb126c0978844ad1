"""What a member wrote in a Discord message: the text the bot classifies, stores and shows on a card."""

from __future__ import annotations

import discord


def message_text(message: discord.Message) -> str:
    """The message's content, the content of each message it forwards, and its poll's question and answers.

    A forward (Discord's message snapshots) and a poll carry their text outside ``content``, which is empty
    for them: judged by ``content`` alone they would never be classified. The parts are joined by new lines.
    """
    parts = [message.content]
    parts += [snapshot.content for snapshot in getattr(message, "message_snapshots", None) or ()]
    poll = getattr(message, "poll", None)
    if poll is not None:
        parts.append(poll.question)
        parts += [answer.text for answer in poll.answers]
    return "\n".join(part for part in parts if part and part.strip())
