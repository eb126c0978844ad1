"""`modbot demo`: the real bot in a simulated Discord server (SimCord), offline, with the default model.

An admin sets the review channel with /mod setup, members send the script in bot/data/demo_messages.txt,
the bot labels every message and posts review cards, and a moderator reviews each card with the real
buttons, correcting the ones the script says the bot got wrong, then reports the messages the bot missed
with the "Label message" menu. The script's labels follow docs/labels.md. No token, no network.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import tempfile
from pathlib import Path

from model.errors import ModbotError
from model.labels import LABELS, parse_label

DEMO_MESSAGES = Path(__file__).resolve().parent.parent / "data" / "demo_messages.txt"
AUTHORS = ("sam", "riley", "kai")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the bot offline against a simulated Discord server",
        description="Run the real bot against a simulated Discord server (SimCord) with the configured model "
        "(default: smollm2-135m and its shipped adapter): no token, no network.",
    )
    parser.add_argument("--db", type=Path, help="a new SQLite file for the demo (default: one in a temporary directory)")
    parser.set_defaults(handler=run)


def read_script(path: Path = DEMO_MESSAGES) -> list[tuple[str, str]]:
    """(the label a moderator would give, the message) for each line of the demo script."""
    script = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        expected, _, text = line.partition("\t")
        try:
            script.append((parse_label(expected), text.strip()))
        except ValueError as exc:
            raise ModbotError(f"{path}:{number}: {exc}") from None
    return script


def run(args: argparse.Namespace) -> int:
    if args.log_level is None:
        # discord.py's start-up notes (SimCord's self-check builds a bare client) are noise in a demo transcript.
        logging.getLogger("discord").setLevel(logging.ERROR)
    try:
        import simcord  # noqa: F401
    except ImportError:
        raise ModbotError("The demo needs SimCord: run `make setup` (or pip install 'simcord[pytest]').") from None
    from bot import Settings
    from model.backends import create_backend

    settings = Settings.from_env()
    db_path = args.db or Path(tempfile.mkdtemp(prefix="modbot-demo-")) / "modbot-demo.sqlite3"
    if db_path.exists():
        raise ModbotError(f"--db {db_path} already exists: the demo starts from an empty database; give a new path.")
    # The demo's own database; nothing of the real bot's configuration but the model is used.
    settings = dataclasses.replace(settings, token=None, db_path=db_path, dev_guild=None, sync_commands=True,
                                   adapter_dir=db_path.parent / "adapters")  # its versions stay beside it too
    script = read_script()
    print("modbot demo: the real bot, built by create_bot, in a simulated Discord server (SimCord).")
    print("No token, no network.\n")
    backend = create_backend(settings.model)  # the model `modbot run` serves, with the configured adapter
    served = backend.served()
    adapter = "no adapter: zero-shot" if served.adapter_path is None else f"adapter {served.adapter_version}"
    print(f"Model: {served.model}, {adapter}\n")
    try:
        asyncio.run(_demo(settings, backend, script))
    finally:
        backend.close()
    return 0


async def _demo(settings, backend, script: list[tuple[str, str]]) -> None:
    import discord
    import simcord

    from bot import create_bot, storage

    bot = create_bot(settings, backend=backend)
    try:
        # A generous settle timeout: on a busy CPU a batch of the real model can take seconds.
        async with simcord.run(bot, settle_timeout=300) as env:
            guild = env.create_guild("Demo Server")
            general = guild.create_text_channel("general")
            modlog = guild.create_text_channel("mod-log")
            admins = guild.create_role("Admins", permissions=discord.Permissions(manage_guild=True,
                                                                                 manage_messages=True))
            mods = guild.create_role("Moderators", permissions=discord.Permissions(manage_messages=True))
            admin = guild.add_member(env.create_user("alice"), roles=[admins])
            moderator = guild.add_member(env.create_user("mo"), roles=[mods])
            authors = [guild.add_member(env.create_user(name)) for name in AUTHORS]
            names = {member.id: member.name for member in (admin, moderator, *authors)}
            print(f'Server "Demo Server": #general and #mod-log; alice (admin), mo (moderator), '
                  f"{', '.join(AUTHORS)} (members)\n")

            result = await admin.slash(general, "mod setup", review_channel=modlog)
            print("alice> /mod setup review_channel:#mod-log")
            print(f"  bot (only alice sees this)> {_names(result.response.content, names, env)}\n")

            print("Messages in #general, as the bot labelled them:")
            expected_by_flag: dict[int, str] = {}
            missed = []
            for index, (expected, text) in enumerate(script):
                author = authors[index % len(authors)]
                message = await author.send(general, text)
                prediction = await storage.latest_prediction(bot.db, message.id)
                flag = await storage.flag_for_message(bot.db, message.id)
                probabilities = "  ".join(f"{label} {prediction.probabilities[label]:.2f}" for label in LABELS)
                note = f"  -> flagged as {flag.label}, flag #{flag.id}" if flag else ""
                print(f"  {author.name:<6} {prediction.label:<9} {probabilities}  | {text}{note}")
                if flag:
                    expected_by_flag[flag.id] = expected
                elif expected != "neutral":
                    missed.append((message, expected))

            cards = [m for m in modlog.history() if m.embeds]
            print(f"\nReview cards posted in #mod-log: {len(cards)}")
            for card in cards:
                _print_card(card, names, env)

            print("\nThe moderator mo reviews each card with its buttons:")
            for card in cards:
                flag_id = int(card.embeds[0].footer.text.removeprefix("flag #"))
                flag = await storage.get_flag(bot.db, flag_id)
                expected = expected_by_flag[flag_id]
                button = f"Confirm ({flag.label})" if expected == flag.label else expected.capitalize()
                await moderator.click(card, label=button)
                after = await storage.get_flag(bot.db, flag_id)
                what = "confirmed" if expected == flag.label else f"corrected: the bot said {flag.label}"
                print(f'  flag #{flag_id}: presses "{button}" -> stored {after.decision.label} ({what}); '
                      f"the card now reads: {_names(_field(modlog, card.id, 'Decision'), names, env)}")

            print('\nMessages the bot did not flag that a moderator would: mo reports each with the "Label message" '
                  "menu (right-click the message > Apps):")
            if not missed:
                print("  none this time: the bot flagged every message the script marks hate or offensive.")
            for message, expected in missed:
                shown = await moderator.context_menu(general, "Label message", message)
                await moderator.click(shown.response, label=expected.capitalize())
                print(f'  "{message.content}": presses "{expected.capitalize()}" -> '
                      f"{shown.response.content.replace('**', '')}")

            print("\nCorrections stored (training data for the next adapter; `modbot corrections export` writes "
                  "them as JSONL):")
            async for correction in storage.corrections(bot.db):
                print(f"  {correction.label:<9} (bot: {correction.predicted or '-':<9}) by @{names[correction.moderator_id]}"
                      f"  | {correction.text}")
            stats = bot.service.stats()
            print(f"\nClassified {stats.classified} messages in {stats.batches} batches "
                  f"({stats.seconds_in_model:.2f} s in the model); dropped {stats.dropped}.")
    finally:
        await bot.close()
    print(f"\nSQLite database: {settings.db_path.resolve()}")
    print(f"  export the corrections: MODBOT_DB={settings.db_path.resolve()} modbot corrections export "
          "--out corrections.jsonl")


def _names(text: str, names: dict[int, str], env) -> str:
    """Show <@id> and <#id> mentions as names, the way a Discord client would."""
    import re

    def channel_name(match):
        channel = env.bot.get_channel(int(match.group(1)))
        return f"#{channel.name}" if channel else match.group(0)

    text = re.sub(r"<@!?(\d+)>", lambda m: f"@{names.get(int(m.group(1)), m.group(1))}", text)
    text = re.sub(r"<#(\d+)>", channel_name, text)
    return re.sub(r"<t:\d+:R>", "just now", text)


def _field(channel, message_id: int, name: str) -> str:
    message = next(m for m in channel.history() if m.id == message_id)
    return {f.name: f.value for f in message.embeds[0].fields}[name].replace("\n", " ")


def _print_card(card, names, env) -> None:
    embed = card.embeds[0]
    fields = {f.name: _names(f.value, names, env).replace("\n", " | ") for f in embed.fields}
    print(f"  ┌ {embed.footer.text}: {embed.title}")
    print(f"  │ {embed.description}")
    print(f"  │ author {fields['Author']}, in {fields['Where'].split(' · ')[0]}")
    print(f"  │ prediction {fields['Prediction']}")
    print(f"  │ model {fields['Model']}; action: {fields['Action']}")
    buttons = "  ".join(f"[{child.label}]" for row in card.components for child in row.children)
    print(f"  └ {buttons}")
