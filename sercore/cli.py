"""What every command shares: ``--version``, ``-v/--verbose`` and ``-q/--quiet`` through :mod:`logging`, the
exit codes of :mod:`sercore.errors`, and the help's list of the environment variables read.

    @click.command(epilog=epilog(EXAMPLES, ["MGSER_CONFIG"]))
    @common_options
    def main(..., verbose: int, quiet: bool):
        with command_errors(verbose):
            say("what happened")      # INFO on the "mgser" logger: shown unless --quiet
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import traceback
from typing import Callable, Iterator, Sequence

import click

from .errors import EXIT_BUG, EXIT_INTERRUPTED, SerError, environment_problem

LOGGER = "mgser"

#: Every environment variable a command reads, with what for (shown by --help and in docs/index.md).
ENVIRONMENT = {
    "MGSER_CONFIG": "a weights file (TOML or JSON) naming the pretrained checkpoints (docs/features.md, Pretrained weights)",
    "MGSER_WAV2VEC_CHECKPOINT": "the wav2vec checkpoint, when --wav2vec-checkpoint is not given",
    "MGSER_ALLOSAURUS_MODEL": "the Allosaurus model folder, when --allosaurus-model is not given",
    "MGSER_BYOL_CHECKPOINT": "the BYOL-A checkpoint, when --byol-checkpoint is not given",
    "OMP_NUM_THREADS": "threads per process for torch and numpy",
    "TRAIN_ARGS": "extra train arguments for every grid cell (--train-args)",
    "EXTRACT_ARGS": "extra extract arguments for the grid's extraction (--extract-args)",
    "SLURM_CONF": "the slurm.conf that sbatch and scancel read (mgser cluster slurm)",
}

#: Ranges of the numeric options the commands share (click types: out of range is a usage error, and --help shows
#: the interval). Far beyond any use, low enough that no library overflows on them.
WORKERS = click.IntRange(0, 1_024)
THREADS = click.IntRange(1, 1_024)
BATCH_SIZE = click.IntRange(1, 100_000)
WAV2VEC_LAYER = click.IntRange(0, 1_000)
SEED = click.IntRange(0, 2 ** 31 - 1)

EXIT_STATUS_HELP = ("Exit status: 0 success, 1 unexpected error (a bug; -v shows the traceback), 2 usage error, "
                    "3 data error (bad or stale input), 4 environment error (disk, permission, lock, CUDA, "
                    "cluster), 5 finished but some inputs failed, 130 interrupted.")


def name_list(value: str | None, option: str) -> list[str] | None:
    """An option's comma-separated names: ``"mfcc, ge2e"`` -> ``["mfcc", "ge2e"]``, None when it is not given. An
    empty name (``","``, ``mfcc,,``, ``""``) or a name given twice is a usage error (click's, exit 2) naming the option."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")]
    if not all(names):
        raise click.BadParameter(f"{value!r}: an empty name (expected NAME[,NAME...])", param_hint=option)
    twice = sorted({n for n in names if names.count(n) > 1}, key=names.index)
    if twice:
        raise click.BadParameter(f"{value!r}: {', '.join(twice)} given twice", param_hint=option)
    return names


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("mgser")
    except PackageNotFoundError:
        return "unknown (not installed)"


def epilog(examples: str = "", environment: Sequence[str | tuple[str, str]] = ()) -> str:
    """The end of a command's --help: examples, the environment variables it reads (a name described in
    ``ENVIRONMENT``, or a (name, description) pair), the exit codes."""
    parts = []
    if examples.strip():
        parts.append("\b\nExamples:\n" + "\n".join("  " + line.strip() for line in examples.strip().splitlines()))
    if environment:
        described = [(v, ENVIRONMENT[v]) if isinstance(v, str) else v for v in environment]
        width = max(len(v) for v, _ in described)
        parts.append("\b\nEnvironment:\n" + "\n".join(f"  {v:<{width}}  {what}" for v, what in described))
    parts.append(EXIT_STATUS_HELP)
    return "\n\n".join(parts)


class _ClickHandler(logging.Handler):
    """Log records as plain lines through click.echo (stdout for INFO, stderr for warnings and errors), looked
    up at each record so that output captured by a test runner lands in the right stream."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            click.echo(message, err=record.levelno >= logging.WARNING)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """The toolkit's messages (logger ``mgser``) at INFO, other libraries' at WARNING; ``-v``: both at INFO,
    ``-vv``: DEBUG; ``--quiet``: warnings and errors only."""
    own = logging.WARNING if quiet else (logging.DEBUG if verbose >= 2 else logging.INFO)
    others = logging.WARNING if quiet or verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, _ClickHandler)]:
        root.removeHandler(h)
    handler = _ClickHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(min(own, others))
    handler.addFilter(lambda r: r.levelno >= (own if r.name.startswith(LOGGER) else others))
    logging.getLogger(LOGGER).setLevel(own)


def say(message: str) -> None:
    """A progress or result line of a command (INFO on the ``mgser`` logger: hidden by --quiet)."""
    logging.getLogger(LOGGER).info(message)


def warn(message: str) -> None:
    """A line about something the user should look at (WARNING on the ``mgser`` logger: shown with --quiet)."""
    logging.getLogger(LOGGER).warning(message)


def show_progress(quiet: bool = False) -> bool:
    """Whether a command draws progress bars: never with ``--quiet``, and only when stderr is a terminal (stderr
    redirected to a file or a pipe gets the messages, not a bar redrawn in place)."""
    if quiet:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


def common_options(f: Callable) -> Callable:
    """``--version``, ``-v/--verbose`` (repeatable) and ``-q/--quiet`` (no progress bars, warnings and errors only);
    the command receives ``verbose`` and ``quiet`` and should call :func:`setup_logging` (done by
    :func:`command_errors`)."""
    f = click.option("-q", "--quiet", is_flag=True, help="No progress bars; only warnings and errors.")(f)
    f = click.option("-v", "--verbose", count=True, help="More messages (-vv: debugging), tracebacks of unexpected errors.")(f)
    return click.version_option(version(), "--version", message="%(prog)s (mgser) %(version)s")(f)


_interrupt_reported = threading.Lock()


def report_interrupt() -> None:
    """``interrupted`` on stderr, once per process: a command's error handling and the interrupt watchdog of
    :func:`sercore.cluster.exit_after` may both get there."""
    if _interrupt_reported.acquire(blocking=False):
        click.echo("interrupted", err=True)


@contextlib.contextmanager
def command_errors(verbose: int = 0, quiet: bool = False) -> Iterator[None]:
    """Set up logging, then turn errors into one line on stderr and the documented exit code: a
    :class:`~sercore.errors.SerError` its own (3 data, 4 environment), an ``OSError`` of a full disk, a quota, a
    missing permission or a read-only medium 4 naming the path, Ctrl-C 130, anything else 1 (a bug;
    the traceback with ``-v``). Usage errors are click's (2)."""
    setup_logging(verbose, quiet)
    try:
        yield
    except SerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        report_interrupt()
        sys.exit(EXIT_INTERRUPTED)
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except OSError as exc:  # a full disk, a read-only folder, no permission: the machine's problem, the path named
        problem = environment_problem(exc)
        if problem is None:
            if verbose:
                traceback.print_exc()
            click.echo(f"error: unexpected {type(exc).__name__}: {exc} (a bug; rerun with -v for the traceback)", err=True)
            sys.exit(EXIT_BUG)
        click.echo(f"error: {problem}", err=True)
        sys.exit(problem.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, the code of a bug
        if verbose:
            traceback.print_exc()
        click.echo(f"error: unexpected {type(exc).__name__}: {exc} (a bug; rerun with -v for the traceback)", err=True)
        sys.exit(EXIT_BUG)
