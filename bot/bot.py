"""The bot: settings, the database and the classification service, wired into a discord.py Bot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import aiosqlite
import discord
from discord import app_commands
from discord.ext import commands

from model import InferenceBackend

from . import lease, storage
from .model_manager import ModelManager
from .service import ClassificationService
from .settings import Settings

log = logging.getLogger(__name__)

# At shutdown: how long the queued messages may take to classify, then how long their handlers may take to
# store them (what is not done by then is recorded and classified at the next start).
SHUTDOWN_DRAIN_SECONDS = 10.0
SHUTDOWN_HANDLERS_SECONDS = 5.0

# One cog per feature, loaded in this order.
EXTENSIONS: tuple[str, ...] = (
    "bot.cogs.flagging",
    "bot.cogs.review",
    "bot.cogs.admin",
    "bot.cogs.retention",
    "bot.cogs.retrain",
    "bot.cogs.privacy",
)


def intents() -> discord.Intents:
    """Only what the bot reads: guilds, their messages, and the messages' text (a privileged intent)."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.message_content = True
    return wanted


class ModBot(commands.Bot):
    """Holds the settings, the database connection, the model manager and the classification service for the cogs."""

    def __init__(self, settings: Settings, *, backend: InferenceBackend | None = None) -> None:
        # The bot never joins voice: discord.py's warnings about missing voice libraries are noise.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        sharding = {}
        if settings.sharded:  # ShardedModBot: this process runs these shards of the application
            sharding = {"shard_count": settings.shard_count,
                        "shard_ids": list(settings.shard_ids) if settings.shard_ids is not None else None}
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents(),
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            **sharding,
        )
        self.settings = settings
        self._given_backend = backend
        self._db: aiosqlite.Connection | None = None
        self._models: ModelManager | None = None
        self._service: ClassificationService | None = None
        self.failed_extensions: dict[str, BaseException] = {}
        self._handlers: set[asyncio.Task] = set()  # tasks handling a message (see handling_message)
        self._closing = asyncio.Lock()
        self.tree.on_error = self.on_app_command_error
        # With several processes, the one holding this lease runs the scheduled jobs (bot.lease).
        self.scheduler = lease.SchedulerLease(self) if settings.sharded else None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the database is opened in setup_hook")
        return self._db

    @property
    def models(self) -> ModelManager:
        """What the bot serves: every cog and command reads and changes it here."""
        if self._models is None:
            raise RuntimeError("the model manager is started in setup_hook")
        return self._models

    @property
    def service(self) -> ClassificationService:
        if self._service is None:
            raise RuntimeError("the classification service is started in setup_hook")
        return self._service

    @property
    def runs_scheduled_jobs(self) -> bool:
        """Whether this process runs retention, the retraining schedule and orphaned jobs' clean-up now."""
        return self.scheduler is None or self.scheduler.held

    def owns_guild(self, guild_id: int) -> bool:
        """Whether this process runs the shard that ``guild_id`` belongs to (Discord's shard formula)."""
        settings = self.settings
        if settings.shard_count is None or settings.shard_ids is None:
            return True
        return (guild_id >> 22) % settings.shard_count in settings.shard_ids

    async def setup_hook(self) -> None:
        # discord.py runs this at every login; a second login of the same client (a retry after a failed
        # connect, a re-login) keeps what the first one set up instead of opening, starting and loading twice.
        if self._db is None:
            self._db = await storage.open_database(self.settings.db_path)
        if self.scheduler is not None:
            await self.scheduler.start()  # before the cogs load: they ask whether they schedule
        if self._service is None:
            self._service = await self._start_service()
        self.failed_extensions.clear()
        for extension in EXTENSIONS:
            if extension in self.extensions:
                continue
            try:
                await self.load_extension(extension)
            except Exception as exc:
                self.failed_extensions[extension] = exc
                log.exception("Could not load %s; the bot runs without it", extension)
        if self.settings.sync_commands:
            await self.sync_commands()

    async def _start_service(self) -> ClassificationService:
        if self._models is None:
            self._models = ModelManager(self.settings, self.db, backend=self._given_backend)
        if not self._models.started:
            # The registry's active version (after a retrain or a rollback) wins over the configured adapter; one
            # that cannot be loaded gives way to the last good one (bot.model_manager). Loading is off the event loop.
            await self._models.start()
        service = ClassificationService(
            self._models.backend,
            batch_size=self.settings.model.batch_size,
            queue_size=self.settings.queue_size,
            max_wait=self.settings.batch_wait_ms / 1000,
        )
        # Paused with the model while a retraining job has its GPU; when it resumes, the flagging cog classifies
        # the messages recorded meanwhile (on_classification_resumed).
        self._models.attach(service, on_resumed=lambda: self.dispatch("classification_resumed"))
        return service

    async def sync_commands(self) -> None:
        if self.settings.dev_guild is not None:
            guild = discord.Object(self.settings.dev_guild)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("Synced %d commands to the development guild %d", len(synced), guild.id)
        else:
            synced = await self.tree.sync()
            log.info("Synced %d global commands", len(synced))

    async def on_ready(self) -> None:
        log.info("Connected as %s (%s) to %d servers", self.user, getattr(self.user, "id", "?"), len(self.guilds))

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """The one global handler: cogs answer the errors they expect; this logs, and answers the rest."""
        command = interaction.command.qualified_name if interaction.command else "?"
        if isinstance(error, app_commands.CheckFailure | app_commands.TransformerError):
            log.debug("/%s refused for user %s: %s", command, interaction.user.id, error)
        else:
            original = getattr(error, "original", error)
            log.error("/%s failed", command, exc_info=(type(original), original, original.__traceback__))
        if not interaction.response.is_done():
            message = str(error) if isinstance(error, app_commands.CheckFailure) else (
                "Something went wrong; the error was logged for the bot's owner."
            )
            try:
                await interaction.response.send_message(message, ephemeral=True)
            except discord.HTTPException:
                log.debug("Could not answer the failed interaction", exc_info=True)

    @contextlib.contextmanager
    def handling_message(self) -> Iterator[None]:
        """Mark the running task as handling a message: close() lets it finish before closing the database."""
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._handlers.add(task)
        try:
            yield
        finally:
            self._handlers.discard(task)

    async def close(self) -> None:
        """Stop: classify what is queued (for a bounded time), record the rest for the next start, disconnect."""
        async with self._closing:
            try:
                if self._service is not None and not self._service.closed:
                    await self._finish_messages()
                await super().close()
            finally:
                if self._service is not None:
                    await self._service.close()
                    self._service = None
                if self._models is not None:
                    await self._models.close()
                    self._models = None
                if self.scheduler is not None and self._db is not None:
                    try:
                        await self.scheduler.stop()
                    except Exception:  # it expires by itself within a minute
                        log.warning("Could not give up the scheduler lease", exc_info=True)
                if self._db is not None:
                    await self._db.close()
                    self._db = None

    async def _finish_messages(self) -> None:
        unfinished = await self.service.close(timeout=SHUTDOWN_DRAIN_SECONDS)
        # The handlers that close() woke store their predictions and post their cards, or record their
        # messages for the next start: give them a moment while the database and Discord are still there.
        handlers = {task for task in self._handlers if task is not asyncio.current_task() and not task.done()}
        if handlers:
            _, still_running = await asyncio.wait(handlers, timeout=SHUTDOWN_HANDLERS_SECONDS)
            if still_running:
                log.warning("Stopping: %d messages were still being handled after %.0f s and were cut short",
                            len(still_running), SHUTDOWN_HANDLERS_SECONDS)
        if unfinished:
            log.warning("Stopping: %d queued messages were not classified within %.0f s; they are recorded and "
                        "the next start classifies them", unfinished, SHUTDOWN_DRAIN_SECONDS)


class ShardedModBot(ModBot, commands.AutoShardedBot):
    """The bot as one of several processes of one application: MODBOT_SHARD_COUNT shards in all, this process
    running MODBOT_SHARD_IDS (or all of them), each shard its own gateway connection."""


def create_bot(settings: Settings, *, backend: InferenceBackend | None = None) -> ModBot:
    """Build the whole bot without connecting. ``backend``: an already loaded model (tests, the demo); by default
    the model manager creates one from the settings at start-up."""
    cls = ShardedModBot if settings.sharded else ModBot
    return cls(settings, backend=backend)
