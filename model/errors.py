"""Errors that carry a message meant for the person running modbot."""


class ModbotError(Exception):
    """A problem the user can fix: the message says what was wrong and what to do.

    Every package's user-facing errors derive from this one. Entry points print ``str(error)`` on one
    line and exit with status 2; they never show a traceback for it.
    """


class ModelError(ModbotError):
    """A problem with the model settings, the base model or an adapter."""


class AdapterError(ModelError):
    """An adapter directory cannot be used: missing, incomplete, corrupt, or made for another model.

    The adapter is at fault, not the base model: the bot can fall back to another version.
    """
