"""Errors with a one-line message that names the file or folder at fault."""

from __future__ import annotations

from pathlib import Path


class SerError(Exception):
    """Base class of every error the toolkit raises on purpose; the CLIs print its message in one line."""


class DataError(SerError):
    """Bad input data: a missing root, an unreadable manifest or audio file, an unknown label.

    ``where`` is the file or folder at fault; the message always starts with it.
    """

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


class StoreError(DataError):
    """A feature store that is missing, incomplete, corrupt or incompatible with what was asked."""
