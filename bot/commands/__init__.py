"""`modbot` subcommands, one module each (see bot.cli.COMMAND_MODULES)."""
