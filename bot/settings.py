"""The bot's settings: one frozen dataclass built once from the environment (and `.env`)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from model import ModelSettings
from model.config import int_setting
from model.errors import ModbotError

DEFAULT_DB = Path("modbot.sqlite3")
DEFAULT_ADAPTER_DIR = Path("adapters")
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# What the bot's own model does while a retraining job it started trains (bot.model_manager.retrain_serving):
# auto = make way only when the job would not fit beside it on its GPU; keep = serve on; pause = always make way.
RETRAIN_SERVING = ("auto", "keep", "pause")


class SettingsError(ModbotError):
    """A bot setting is missing or not valid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the bot needs to start. Build it with :meth:`from_env`; it validates itself."""

    token: str | None = field(default=None, repr=False)  # never printed, never logged
    db_path: Path = DEFAULT_DB
    dev_guild: int | None = None
    retention_days: int = 30
    queue_size: int = 1000
    batch_wait_ms: float = 5.0
    log_level: str = "INFO"
    sync_commands: bool = True
    model: ModelSettings = field(default_factory=ModelSettings)
    # Retraining (see the README's "Retraining" section).
    adapter_dir: Path = DEFAULT_ADAPTER_DIR
    retrain_min_corrections: int = 20
    retrain_every_s: int | None = None  # None: no scheduled retraining
    eval_data: Path | None = None  # None: the validation set that shipped with the active adapter's lineage
    retrain_threads: int | None = None  # torch threads of the job; None: torch's default
    retrain_options: dict = field(default_factory=dict)  # TrainArgs overrides, e.g. {"epochs": 3}
    retrain_serving: str = "auto"  # RETRAIN_SERVING: release the served model while a job trains?
    # The model is shared by every server: only its owner changes it (see bot.checks).
    owner_ids: frozenset[int] = frozenset()  # besides the application's owner or team
    training_guilds: frozenset[int] | None = None  # servers whose corrections train the model; None: all
    # Several processes of one application (the README's "Scaling out"); both None: one process, no sharding.
    shard_count: int | None = None  # the application's shards, across all its processes
    shard_ids: tuple[int, ...] | None = None  # the shards this process runs; None: all of them

    def __post_init__(self) -> None:
        if self.retention_days < 1:
            raise SettingsError(
                f"MODBOT_RETENTION_DAYS={self.retention_days} is not valid: use a whole number of days, 1 or more."
            )
        if self.queue_size < 1:
            raise SettingsError(f"MODBOT_QUEUE_SIZE={self.queue_size} is not valid: use a whole number, 1 or more.")
        if not 0 <= self.batch_wait_ms <= 1000:
            raise SettingsError(
                f"MODBOT_BATCH_WAIT_MS={self.batch_wait_ms:g} is not valid: use a number of milliseconds from 0 to 1000."
            )
        if self.retrain_min_corrections < 1:
            raise SettingsError(
                f"MODBOT_RETRAIN_MIN_CORRECTIONS={self.retrain_min_corrections} is not valid: use a whole number, 1 or more."
            )
        if self.retrain_every_s is not None and self.retrain_every_s < 60:
            raise SettingsError("MODBOT_RETRAIN_EVERY is too short: use at least 1m (for example 12h or 7d).")
        if self.retrain_threads is not None and self.retrain_threads < 1:
            raise SettingsError(f"MODBOT_RETRAIN_THREADS={self.retrain_threads} is not valid: use 1 or more.")
        if self.retrain_serving not in RETRAIN_SERVING:
            raise SettingsError(f"MODBOT_RETRAIN_SERVING={self.retrain_serving!r} is not valid: use auto, keep or pause.")
        if self.retrain_serving == "pause" and self.model.backend == "ray":
            raise SettingsError("MODBOT_RETRAIN_SERVING=pause does not apply with MODBOT_BACKEND=ray: the model runs in "
                                "the Ray Serve application, not in the bot, so the bot has no model to release. Use "
                                "auto or keep, and train on another GPU (MODBOT_RETRAIN_OPTIONS=device=cuda:1) or "
                                "machine.")
        if self.shard_ids is not None and self.shard_count is None:
            raise SettingsError("MODBOT_SHARD_IDS needs MODBOT_SHARD_COUNT: set the application's number of shards "
                                "(the same in every process), or unset both to run one process without sharding.")
        if self.shard_count is not None and self.shard_count < 1:
            raise SettingsError(f"MODBOT_SHARD_COUNT={self.shard_count} is not valid: use a whole number, 1 or more.")
        if self.shard_ids is not None:
            outside = sorted(i for i in self.shard_ids if not 0 <= i < self.shard_count)
            if outside:
                raise SettingsError(
                    f"MODBOT_SHARD_IDS: shard {outside[0]} does not exist: with MODBOT_SHARD_COUNT={self.shard_count} "
                    f"the shards are 0 to {self.shard_count - 1}."
                )
            if not self.shard_ids or len(set(self.shard_ids)) != len(self.shard_ids):
                raise SettingsError("MODBOT_SHARD_IDS: give each shard once, for example 0,1 or 0-3.")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"MODBOT_LOG_LEVEL={self.log_level!r} is not valid: use one of {', '.join(LOG_LEVELS)}.")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` or, by default, from the process environment and `.env`.

        Variables already set in the environment win over `.env`, so a deployment can override the file.
        """
        if env is None:
            load_dotenv_file()
            env = os.environ
        token = env.get("DISCORD_TOKEN", "").strip() or None
        db = env.get("MODBOT_DB", "").strip()
        return cls(
            token=token,
            db_path=Path(db).expanduser() if db else DEFAULT_DB,
            dev_guild=_optional_id(env, "MODBOT_DEV_GUILD"),
            retention_days=_int(env, "MODBOT_RETENTION_DAYS", 30),
            queue_size=_int(env, "MODBOT_QUEUE_SIZE", 1000),
            batch_wait_ms=_float(env, "MODBOT_BATCH_WAIT_MS", 5.0),
            log_level=(env.get("MODBOT_LOG_LEVEL", "").strip() or "INFO").upper(),
            sync_commands=_bool(env, "MODBOT_SYNC_COMMANDS", True),
            model=ModelSettings.from_env(env),
            adapter_dir=_path(env, "MODBOT_ADAPTER_DIR") or DEFAULT_ADAPTER_DIR,
            retrain_min_corrections=_int(env, "MODBOT_RETRAIN_MIN_CORRECTIONS", 20),
            retrain_every_s=parse_duration(env.get("MODBOT_RETRAIN_EVERY", ""), "MODBOT_RETRAIN_EVERY"),
            eval_data=_path(env, "MODBOT_EVAL_DATA"),
            retrain_threads=_int(env, "MODBOT_RETRAIN_THREADS", 0) or None,
            retrain_options=parse_options(env.get("MODBOT_RETRAIN_OPTIONS", ""), "MODBOT_RETRAIN_OPTIONS"),
            retrain_serving=env.get("MODBOT_RETRAIN_SERVING", "").strip().lower() or "auto",
            owner_ids=_id_list(env, "MODBOT_OWNER_IDS", "user"),
            training_guilds=_training_guilds(env),
            shard_count=_shard_count(env),
            shard_ids=_shard_ids(env),
        )

    @property
    def sharded(self) -> bool:
        """Whether this is one of several processes (or shards) of the application: MODBOT_SHARD_COUNT is set."""
        return self.shard_count is not None

    def require_token(self) -> str:
        if not self.token:
            raise SettingsError(
                "DISCORD_TOKEN is not set: put the bot token from the Discord developer portal "
                "(Applications > your app > Bot > Reset Token) in .env or the environment."
            )
        return self.token

    @property
    def logging_level(self) -> int:
        return logging.getLevelName(self.log_level)


def load_dotenv_file() -> None:
    """Read `.env` (the working directory's, or the nearest above it) into the environment.

    The one settings path: every `modbot` command calls this at its entry (`bot.cli.main`), before any
    setting is read. Variables already set in the environment win, so a deployment can override the file.
    """
    from dotenv import find_dotenv, load_dotenv

    load_dotenv(find_dotenv(usecwd=True), override=False)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int_setting(env, name, default, error=SettingsError)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def parse_duration(raw: str, name: str) -> int | None:
    """Seconds in "30m", "12h", "7d", "2w"; None for empty or "off"."""
    raw = raw.strip().lower()
    if raw in ("", "off", "none", "0"):
        return None
    match = _DURATION.match(raw)
    if not match:
        raise SettingsError(f"{name}={raw!r} is not a duration: use a number and a unit, like 12h, 7d or 2w (or off).")
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


def parse_options(raw: str, name: str) -> dict:
    """Training options as "key=value,key=value": `modbot train`'s options, typed and checked by TrainArgs."""
    from training.args import parse_overrides
    from training.errors import TrainingError
    from training.retrain import SET_BY_THE_JOB

    try:
        return parse_overrides(raw, SET_BY_THE_JOB)
    except TrainingError as exc:
        raise SettingsError(f"{name}: {exc}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number (default {default:g}).") from None


def _optional_id(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) <= 0:
        raise SettingsError(
            f"{name}={raw!r} is not a Discord id: copy the server's id (Developer Mode > right-click the server > Copy Server ID)."
        )
    return int(raw)


def _id_list(env: Mapping[str, str], name: str, kind: str) -> frozenset[int]:
    """Discord ids separated by commas (empty: none)."""
    ids = set()
    for part in env.get(name, "").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) <= 0:
            raise SettingsError(
                f"{name}: {part!r} is not a Discord {kind} id: give ids separated by commas (Developer Mode > "
                f"right-click the {kind} > Copy {kind.capitalize()} ID)."
            )
        ids.add(int(part))
    return frozenset(ids)


def _training_guilds(env: Mapping[str, str]) -> frozenset[int] | None:
    """MODBOT_TRAINING_GUILDS: None (every server) when empty or "all"."""
    if env.get("MODBOT_TRAINING_GUILDS", "").strip().lower() in ("", "all"):
        return None
    return _id_list(env, "MODBOT_TRAINING_GUILDS", "server")


def _shard_count(env: Mapping[str, str]) -> int | None:
    """MODBOT_SHARD_COUNT: None (one process, no sharding) when empty."""
    raw = env.get("MODBOT_SHARD_COUNT", "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"MODBOT_SHARD_COUNT={raw!r} is not a whole number: give the application's number of "
                            "shards (the same in every process), or leave it empty for one process.") from None


def _shard_ids(env: Mapping[str, str]) -> tuple[int, ...] | None:
    """MODBOT_SHARD_IDS: shard numbers and ranges separated by commas ("0,1", "4-7"); None when empty."""
    raw = env.get("MODBOT_SHARD_IDS", "").strip()
    if not raw:
        return None
    ids: list[int] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        if not first.strip().isdigit() or (dash and not last.strip().isdigit()):
            raise SettingsError(f"MODBOT_SHARD_IDS: {part!r} is not a shard number: give numbers or ranges separated "
                                "by commas, for example 0,1 or 0-3.")
        start, end = int(first), int(last) if dash else int(first)
        if end < start:
            raise SettingsError(f"MODBOT_SHARD_IDS: the range {part!r} is backwards: write the lower shard first.")
        ids.extend(range(start, end + 1))
    return tuple(ids)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not valid: use true or false.")
