"""What every corpus preparer returns, and the checks shared by all of them.

A preparer only *scans*: it reads folder listings, file names and annotation text, never audio, so
preparing even IEMOCAP takes seconds. It returns a :class:`Scan` (labelled recordings without a split,
plus every file it chose not to use and why); :func:`extract.prepare.prepare_corpus` assigns splits,
writes the manifest and prints the summary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sercore.errors import DataError

from ..audio import AUDIO_SUFFIXES


@dataclass(frozen=True)
class Recording:
    """One labelled recording found by a preparer, before a split is assigned."""

    utt_id: str
    path: Path
    speaker: str
    language: str
    emotion: str


@dataclass(frozen=True)
class Skipped:
    """A file the preparer saw and did not use: nothing is dropped without a trace."""

    path: str
    reason: str


@dataclass
class Scan:
    recordings: list[Recording] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append(Skipped(str(path), reason))


def require_dir(root: str | Path, what: str = "corpus root") -> Path:
    """The absolute corpus folder, or a :class:`DataError` naming it."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(root, f"{what} does not exist")
    if not root.is_dir():
        raise DataError(root, f"{what} is not a folder")
    return root.resolve()


def is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES


def audio_files(folder: Path, *, recursive: bool = True) -> list[Path]:
    """Audio files under ``folder``, sorted so that a scan is reproducible."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(p for p in pattern if is_audio(p))


def require_recordings(scan: Scan, root: Path, hint: str) -> Scan:
    """A corpus with no usable audio is an error, not an empty manifest."""
    if not scan.recordings:
        detail = f" ({len(scan.skipped)} file(s) skipped, e.g. {scan.skipped[0].path}: {scan.skipped[0].reason})" if scan.skipped else ""
        raise DataError(root, f"no usable audio found; expected {hint}{detail}")
    return scan


def scan_named_files(root: str | Path, name: re.Pattern, recording: Callable[[Path, re.Match], "Recording | str"], *,
                     form: str, example: str) -> Scan:
    """The scan of a corpus whose file names say everything (EmoDB, EMOVO, CaFE, RAVDESS).

    Every audio file under ``root`` (sorted) whose stem matches ``name`` goes to ``recording(path, match)``,
    which returns the :class:`Recording`, or the reason to skip the file, or raises :class:`DataError` for a
    name that matches the layout but says something impossible (an unknown emotion code). A file whose
    name does not match is skipped as "name is not <form>". No recording at all is an error naming
    ``example``.
    """
    root = require_dir(root)
    result = Scan()
    for path in audio_files(root):
        match = name.match(path.stem)
        found = recording(path, match) if match else f"name is not {form}"
        if isinstance(found, str):
            result.skip(path, found)
        else:
            result.recordings.append(found)
    return require_recordings(result, root, example)
