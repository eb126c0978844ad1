"""One cog per feature, each with an ``async def setup(bot)`` (see bot.bot.EXTENSIONS)."""
