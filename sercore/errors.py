"""Errors with a one-line message that names the file or folder at fault, and the exit codes of every command.

Exit codes (the same for ``extract``, ``train``, ``predict`` and the grid; documented in docs/reliability.md):

====  =========================================================================================
0     success
1     an unexpected error (a bug): one line, plus the traceback with ``--verbose``
2     usage error: a bad option or argument (click's own code for usage errors)
3     data error: a bad or stale input file, manifest, store, bundle or weights file
4     environment error: no space left, no permission, a lock held by another process, no CUDA
5     finished, but some inputs failed (``--strict`` with skipped utterances, files ``predict``
      could not read, grid cells that failed)
130   interrupted (Ctrl-C)
====  =========================================================================================
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_DATA = 3
EXIT_ENVIRONMENT = 4
EXIT_PARTIAL = 5
EXIT_INTERRUPTED = 130


class SerError(Exception):
    """Base class of every error the toolkit raises on purpose; the CLIs print its message in one line."""

    exit_code = EXIT_DATA


class LocatedError(SerError):
    """An error at a place: ``where`` is the file, folder or device at fault; the message always starts with it."""

    def __init__(self, where: str | Path, problem: str):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")


class DataError(LocatedError):
    """Bad input data: a missing root, an unreadable manifest or audio file, an unknown label (``where``: the file
    or folder at fault)."""

    exit_code = EXIT_DATA


class StoreError(DataError):
    """A feature store that is missing, incomplete, corrupt or incompatible with what was asked."""


class OptionError(DataError):
    """An option that is missing or does not fit the data (``--root`` for a corpus that needs one): a usage error."""

    exit_code = EXIT_USAGE


class PartialFailure(DataError):
    """The work finished, but some inputs failed and the user asked for that to be an error (``--strict``)."""

    exit_code = EXIT_PARTIAL


class EnvironmentProblem(LocatedError):
    """The machine, not the data: no space left, no permission, a lock held by another process, no CUDA
    (``where``: the path or device at fault)."""

    exit_code = EXIT_ENVIRONMENT


#: errno values that mean "the machine, not the data" (full disk, quota, no permission, read-only medium).
_ENVIRONMENT_ERRNOS = {28: "no space left on device", 122: "disk quota exceeded", 13: "permission denied",
                       1: "operation not permitted", 30: "read-only file system"}


def environment_problem(exc: OSError, where: str | Path | None = None) -> SerError | None:
    """An :class:`EnvironmentProblem` naming the path for an ``OSError`` of a full disk, a quota, a missing
    permission or a read-only medium (None for other errors, which the caller reports its own way)."""
    problem = _ENVIRONMENT_ERRNOS.get(getattr(exc, "errno", None) or -1)
    if problem is None:
        return None
    return EnvironmentProblem(getattr(exc, "filename", None) or where or "?", problem)
