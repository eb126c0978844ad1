"""Numbered SQL migrations, applied in order by bot.storage.migrate (a package so that they are installed)."""
