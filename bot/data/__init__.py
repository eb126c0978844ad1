"""Data files shipped with the bot (the demo script)."""
