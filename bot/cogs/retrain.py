"""Retraining from the moderators' corrections: `/retrain start|status|cancel`, the job's status message and
scheduled retraining. A promoted adapter is served through the model manager (bot.model_manager), which also
serves a version `modbot retrain` promoted from the shell.

Every server the bot is in is judged by the same model, so starting and cancelling a retraining (and
`/mod rollback`) are the bot owner's (see `bot.checks`); `/retrain status` is for any server's administrators.

The job runs in its own process (see `bot.retrain`). A `tasks.loop` follows it every few seconds by
reading what the job appended to its progress file, so nothing here waits on the process: the event loop
keeps serving while it trains. The classifier does too, unless the model manager released the model to give
the job its GPU (MODBOT_RETRAIN_SERVING): then the status message says classification is paused, and the
model is loaded again when the job ends, however it ends.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import discord
from discord import app_commands
from discord.ext import commands, tasks

from model.errors import ModbotError

from .. import checks, retrain, storage
from ..bot import ModBot

log = logging.getLogger(__name__)

POLL_S = 2.0  # how often a running job's progress file is read
SCHEDULE_CHECK_S = 3600.0  # with MODBOT_RETRAIN_EVERY: how often the schedule is consulted (at most)
RESUME_RETRY_S = 60.0  # after a job, how long before trying again to load a model that could not be loaded
EDIT_EVERY_S = 10.0  # the status message is edited at most this often while a phase lasts
REFUSED = "You need the Administrator permission to see the retraining status."

COLOURS = {
    "training": discord.Colour.blurple(),
    "active": discord.Colour.green(),
    "previous": discord.Colour.light_grey(),
    "rejected": discord.Colour.orange(),
    "failed": discord.Colour.red(),
    "cancelled": discord.Colour.dark_grey(),
}
STATUS_TEXT = {
    "training": "running",
    "active": "promoted: the new version is serving",
    "previous": "promoted (since replaced)",
    "rejected": "rejected by the evaluation gate: the active version keeps serving",
    "failed": "failed: the active version keeps serving",
    "cancelled": "cancelled: nothing changed",
}


@app_commands.guild_only()
@app_commands.default_permissions(administrator=True)
class Retrain(commands.GroupCog, group_name="retrain",
              group_description="Retrain the model from the moderators' corrections"):
    def __init__(self, bot: ModBot) -> None:
        self.bot = bot
        self.job: retrain.Job | None = None
        self._last_edit = 0.0
        self._last_phase: str | None = None
        self._next_scheduled: datetime | None = None
        self._paused_for: set[int] = set()  # jobs for which classification was paused (this run of the bot)
        self._resume_at = 0.0
        super().__init__()

    # ------------------------------------------------------------------ lifecycle

    async def cog_load(self) -> None:
        db, settings = self.bot.db, self.bot.settings
        for failed in await retrain.fail_stale_jobs(db, settings):
            await self._edit_status(failed)
        if settings.retrain_every_s:
            last = await storage.latest_job_of(db, "schedule")
            start = last.created_at if last else discord.utils.utcnow()
            self._next_scheduled = start + timedelta(seconds=settings.retrain_every_s)
            log.info("Scheduled retraining every %s; next check %s", retrain.format_duration(settings.retrain_every_s),
                     self._next_scheduled.isoformat(timespec="minutes"))
            self.schedule.change_interval(seconds=min(SCHEDULE_CHECK_S, settings.retrain_every_s))
            self.schedule.start()

    @commands.Cog.listener()
    async def on_scheduler_acquired(self) -> None:
        """Taken over from a bot process that died: its job (now nobody's) is stopped and marked failed."""
        if self.job is None:
            for failed in await retrain.fail_stale_jobs(self.bot.db, self.bot.settings):
                await self._edit_status(failed)

    async def cog_unload(self) -> None:
        self.watch.cancel()
        self.schedule.cancel()
        if self.job is not None:
            # The bot is stopping: the job cannot report to anyone. The next start marks it failed.
            self.job.kill()

    async def cog_app_command_error(self, interaction: discord.Interaction,
                                    error: app_commands.AppCommandError) -> None:
        if interaction.response.is_done():
            return
        if isinstance(error, checks.NotOwner):
            await interaction.response.send_message(str(error), ephemeral=True)
        elif isinstance(error, app_commands.MissingPermissions):
            await interaction.response.send_message(REFUSED, ephemeral=True)
        elif isinstance(error, app_commands.NoPrivateMessage):
            await interaction.response.send_message("This command works only in a server.", ephemeral=True)

    # ------------------------------------------------------------------ commands

    @app_commands.command(name="start", description="Train a new adapter on the corrections and promote it if it "
                                                    "passes the evaluation gate")
    @app_commands.describe(force="Run even with fewer new corrections than the minimum (MODBOT_RETRAIN_MIN_CORRECTIONS)")
    @checks.owner_only("retrain the model")
    async def start(self, interaction: discord.Interaction, force: bool = False) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            job = await self._start_job(origin="discord", started_by=interaction.user.id, force=force)
        except retrain.RetrainRefused as exc:
            await interaction.edit_original_response(content=str(exc))
            return
        except (ModbotError, OSError) as exc:
            log.exception("Could not start a retraining job")
            await interaction.edit_original_response(content=f"The retraining job could not start: {exc}")
            return
        self._follow(job)
        version = await storage.get_version(self.bot.db, job.number)
        message = None
        try:
            message = await interaction.channel.send(embed=self.render(version))
            await storage.set_job_status_message(self.bot.db, job.number, message.channel.id, message.id)
        except discord.HTTPException as exc:
            log.warning("Could not post the retraining status message: %s", exc)
        where = f" Progress: {message.jump_url}" if message else " Follow it with `/retrain status`."
        await interaction.edit_original_response(
            content=f"Retraining started: version {job.number}, from version {version.parent}, on "
                    f"{version.corrections} corrections.{where}"
        )

    @app_commands.command(name="status", description="The running retraining job, or the last one")
    @app_commands.checks.has_permissions(administrator=True)
    async def status(self, interaction: discord.Interaction) -> None:
        version = await storage.latest_job(self.bot.db)
        if version is None:
            new = await self._new_corrections()
            await interaction.response.send_message(
                f"No retraining has run yet. {new} new corrections since the active version was trained "
                f"(the minimum to start is {self.bot.settings.retrain_min_corrections}).", ephemeral=True)
            return
        await interaction.response.send_message(embed=self.render(version), ephemeral=True)

    @app_commands.command(name="cancel", description="Stop the running retraining job; nothing changes")
    @checks.owner_only("cancel a retraining")
    async def cancel(self, interaction: discord.Interaction) -> None:
        running = await storage.running_job(self.bot.db)
        if running is None:
            await interaction.response.send_message("No retraining job is running.", ephemeral=True)
            return
        if running.origin == "shell" and running.pid is None:  # prepared for another machine
            await storage.finish_job(self.bot.db, running.number, status="cancelled", now=datetime.now(UTC),
                                     reason="cancelled with /retrain cancel; its result will not be accepted",
                                     keep_path=False)
            await interaction.response.send_message(
                f"Version {running.number} (prepared for another machine) is cancelled: `modbot retrain --finish` "
                "will refuse its result, and the active version keeps serving.", ephemeral=True)
            return
        if (self.bot.settings.sharded and running.origin != "shell" and running.job_dir is not None
                and (self.job is None or self.job.number != running.number)):
            # Another bot process of this application (MODBOT_SHARD_IDS) started it and follows it.
            retrain.request_cancel(running.job_dir)
            await interaction.response.send_message(
                f"Cancelling the job for version {running.number}: the bot process that runs it stops it within a few "
                "seconds, its files are removed and the active version keeps serving.", ephemeral=True)
            return
        if self.job is None or self.job.number != running.number:
            await interaction.response.send_message(
                f"Version {running.number} is being trained by `modbot retrain` on the bot's machine, not by the "
                "bot: stop it there (Ctrl-C).", ephemeral=True)
            return
        self.job.cancel()
        await interaction.response.send_message(
            f"Cancelling the job for version {running.number}: it stops now, its files are removed and the active "
            "version keeps serving.", ephemeral=True)

    # ------------------------------------------------------------------ following the job

    async def _start_job(self, *, origin: str, started_by: int | None = None, force: bool = False) -> retrain.Job:
        """retrain.start_job, the model manager making way for the job just before it is launched; a job that
        cannot start gives the model back at once."""
        async def make_way(version: storage.AdapterVersion, active: storage.AdapterVersion) -> None:
            plan = await self.bot.models.make_way_for_retrain(active)
            if plan.pause:
                self._paused_for.add(version.number)

        try:
            return await retrain.start_job(self.bot.db, self.bot.settings, origin=origin, started_by=started_by,
                                           force=force, before_launch=make_way)
        except BaseException:
            await self._resume()
            raise

    async def _resume(self) -> None:
        """Load the model again if it was released for a job, and classify; on failure, try again later."""
        if not self.bot.models.paused:
            return
        try:
            await self.bot.models.resume()
        except Exception as exc:
            self._resume_at = time.monotonic() + RESUME_RETRY_S
            log.error("Retraining: the model could not be loaded again after the job; classification stays paused "
                      "(messages are recorded) and it is tried again in %.0f s: %s", RESUME_RETRY_S, exc,
                      exc_info=not isinstance(exc, ModbotError))
            if not self.watch.is_running():
                self.watch.start()

    def _follow(self, job: retrain.Job) -> None:
        self.job = job
        self._last_phase, self._last_edit = "starting", time.monotonic()
        if not self.watch.is_running():
            self.watch.start()

    @tasks.loop(seconds=POLL_S)
    async def watch(self) -> None:
        """Runs while a job runs: reads its progress, edits the status message, records the end. After it, until
        the model released for the job is loaded again."""
        if self.job is not None:
            try:
                await self.follow()
            except Exception:  # the loop must survive: it is the only thing following the job
                log.exception("Retraining: following the job failed")
        if self.job is None:
            if self.bot.models.paused and time.monotonic() >= self._resume_at:
                await self._resume()
            if not self.bot.models.paused:
                self.watch.stop()

    @tasks.loop(seconds=SCHEDULE_CHECK_S)
    async def schedule(self) -> None:
        """Only with MODBOT_RETRAIN_EVERY. (No loop runs otherwise: an idle bot polls nothing.)"""
        if self.job is not None:
            return
        try:
            await self.maybe_schedule()
        except Exception:
            log.exception("Retraining: checking the schedule failed")

    async def follow(self) -> None:
        job = self.job
        assert job is not None
        db = self.bot.db
        lines = job.poll()
        if lines:
            await storage.set_job_progress(db, job.number, job.last.get("phase", "starting"), job.last)
            # Every phase the job went through since the last look is shown once, with its latest line
            # (a fast job can prepare, train and start evaluating between two looks).
            passed = [line for line, after in zip(lines, [*lines[1:], None], strict=True)
                      if after is None or after.get("phase") != line.get("phase")][:-1]
            version = await storage.get_version(db, job.number)
            for line in passed:
                self._last_phase = line.get("phase")
                await self._edit_status(replace(version, phase=line.get("phase"), progress=line))
        if job.cancel_requested_at is None and job.cancel_requested:  # /retrain cancel in another bot process
            job.cancel()
        job.enforce_cancel()
        end = retrain.outcome(job)
        if end is None:
            phase = job.last.get("phase")
            now = time.monotonic()
            if phase != self._last_phase or now - self._last_edit >= EDIT_EVERY_S:
                self._last_phase, self._last_edit = phase, now
                await self._edit_status(await storage.get_version(db, job.number))
            return
        self.job = None
        if end.status == "promote":
            version = await storage.get_version(db, job.number)
            try:
                version = await self.bot.models.promote(job, end)
            except Exception as exc:
                # Kept and marked, with why: the evidence, and `/mod rollback` serves it once repaired.
                log.error("Retraining: version %d passed the gate but cannot be loaded; it is marked failed and its "
                          "directory %s is kept: %s", job.number, version.path, exc,
                          exc_info=not isinstance(exc, ModbotError))
                end = retrain.Outcome("failed", f"the new adapter passed the gate but cannot be loaded: {exc} "
                                                f"(its directory is kept: {version.path})", end.result)
                version = await retrain.record_end(db, job, end, keep_adapter=True)
        else:
            version = await retrain.record_end(db, job, end)
            log.info("Retraining: version %d %s (%s)", version.number, version.status, end.reason)
        await self._resume()  # a promotion loaded the model already; otherwise the one served before the job
        await self._edit_status(version)
        if version.origin == "schedule":
            await self._post_to_review_channels(version)

    async def _edit_status(self, version: storage.AdapterVersion | None) -> None:
        if version is None or version.status_message_id is None:
            return
        channel = self.bot.get_channel(version.status_channel_id)
        if channel is None:
            return
        try:
            await channel.get_partial_message(version.status_message_id).edit(embed=self.render(version))
        except discord.HTTPException as exc:
            log.warning("Could not update the retraining status message: %s", exc)

    async def _post_to_review_channels(self, version: storage.AdapterVersion) -> None:
        for guild in self.bot.guilds:
            config = await storage.get_guild_config(self.bot.db, guild.id)
            channel = self.bot.get_channel(config.review_channel_id) if config.review_channel_id else None
            if channel is None:
                continue
            try:
                await channel.send(embed=self.render(version))
            except discord.HTTPException as exc:
                log.warning("Could not post the scheduled retraining verdict in guild %d: %s", guild.id, exc)

    # ------------------------------------------------------------------ the schedule

    async def maybe_schedule(self) -> None:
        if not self.bot.runs_scheduled_jobs:
            return  # another bot process holds the scheduler lease (bot.lease)
        every = self.bot.settings.retrain_every_s
        # a minute of slack: the loop's wake-ups are not to the microsecond, and a retrain is not either
        if (not every or self._next_scheduled is None
                or discord.utils.utcnow() + timedelta(minutes=1) < self._next_scheduled):
            return
        self._next_scheduled = discord.utils.utcnow() + timedelta(seconds=every)
        try:
            job = await self._start_job(origin="schedule")
        except retrain.RetrainRefused as exc:
            log.info("Scheduled retraining skipped: %s", exc)
            return
        self._follow(job)
        log.info("Scheduled retraining started: version %d", job.number)

    async def _new_corrections(self) -> int:
        active = await storage.active_version(self.bot.db)
        return await storage.count_corrections_since(self.bot.db, active.last_correction_id if active else 0,
                                                     guild_ids=self.bot.settings.training_guilds)

    # ------------------------------------------------------------------ the status embed

    def render(self, version: storage.AdapterVersion) -> discord.Embed:
        status = version.status
        title = f"Retraining: version {version.number}"
        embed = discord.Embed(title=title, colour=COLOURS.get(status, discord.Colour.blurple()))
        if status == "training":
            embed.description = f"**{retrain.describe_progress(version.progress or {'phase': version.phase})}**"
        else:
            embed.description = f"**{STATUS_TEXT[status]}**"
        who = {"discord": f"<@{version.started_by}>" if version.started_by else "a moderator",
               "schedule": "the schedule (MODBOT_RETRAIN_EVERY)", "shell": "`modbot retrain`",
               "startup": "start-up"}[version.origin]
        embed.add_field(name="Started by", value=f"{who} {discord.utils.format_dt(version.created_at, 'R')}",
                        inline=True)
        embed.add_field(name="From", value=f"version {version.parent} · {version.corrections} corrections", inline=True)
        data = version.data or (version.progress or {}).get("data")
        if data and "train" in data:
            embed.add_field(
                name="Data",
                value=f"{sum(data['train'].values())} training messages ({data['corrections_trained']} from "
                      f"corrections, {data['overrides']} labels replaced by a correction), "
                      f"{data['corrections_held_out']} corrections held out, gold set of {sum(data['gold'].values())}",
                inline=False,
            )
        if version.number in self._paused_for:
            if status == "training" and self.bot.models.paused:
                embed.add_field(name="Classification paused", value=(
                    f"The model is released while the job trains ({self.bot.models.pause_reason}). New messages "
                    "are recorded and classified when the job ends.")[:1024], inline=False)
            elif status != "training":
                embed.add_field(name="Classification", value=(
                    "Paused while the job trained; "
                    + ("still paused: the model could not be loaded again (see `/mod model`)."
                       if self.bot.models.paused else
                       "resumed when it ended, and the messages recorded meanwhile are being classified.")),
                    inline=False)
        lines = retrain.figures_lines(version.figures)
        if lines:
            embed.add_field(name="Evaluation (new vs active)", value="\n".join(lines), inline=False)
        if version.reason and status != "training":
            name = {"rejected": "Why it was rejected", "failed": "Why it failed"}.get(status, "Verdict")
            embed.add_field(name=name, value=version.reason[:1000], inline=False)
        embed.set_footer(text=f"status: {status}")
        return embed


async def setup(bot: ModBot) -> None:
    await bot.add_cog(Retrain(bot))
