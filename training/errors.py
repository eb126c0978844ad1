"""Errors in training input: each names the file (and line, where there is one) and what to do."""

from __future__ import annotations

from pathlib import Path

from model.errors import ModbotError


class DataError(ModbotError):
    """A dataset that cannot be trained or evaluated on as it is."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.line = line


class TrainingError(ModbotError):
    """A training configuration that cannot run (bad option, output directory in the way, ...)."""
