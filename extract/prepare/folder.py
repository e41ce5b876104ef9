"""Any user corpus laid out as ``<root>/<label>/*.wav`` (any suffix of :data:`extract.audio.AUDIO_SUFFIXES`:
.flac, .ogg, .mp3...; sub-folders allowed).

Label folder names go through :func:`sercore.labels.normalise_label`: spellings fold together (``angry``,
``Anger``, ``colère``...), any other name is a class of its own (``contempt``, ``calm``).
The utterance id is the path below ``<root>`` without its suffix (``angry/take_01``), so equal file
names under different labels do not clash.

Speakers: a folder corpus says nothing about who speaks. By default every file gets the speaker
``unknown``: the random protocol works, and the speaker-independent protocol refuses (one speaker per
file would silently turn it into a random split that merely *claims* to be speaker-independent). Give
``speaker_pattern``, a regular expression searched in the file name (without suffix), to take the
speaker from it: the group named ``speaker``, else the first group, else the whole match
(e.g. ``^(\\d+)_`` for ``07_hello.wav``).
"""

from __future__ import annotations

import re
from pathlib import Path

from sercore.errors import DataError
from sercore.labels import normalise_label

from .base import Recording, Scan, audio_files, require_dir, require_recordings

UNKNOWN_SPEAKER = "unknown"


def compile_speaker_pattern(pattern: str | None, where: str | Path) -> re.Pattern | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise DataError(where, f"--speaker-pattern {pattern!r} is not a regular expression ({exc})") from None


def speaker_from_name(pattern: re.Pattern | None, path: Path) -> str:
    """The speaker the pattern finds in ``path``'s name, or ``unknown`` without a pattern."""
    if pattern is None:
        return UNKNOWN_SPEAKER
    match = pattern.search(path.stem)
    if match is None:
        raise DataError(path, f"file name does not match --speaker-pattern {pattern.pattern!r}")
    if "speaker" in pattern.groupindex:
        speaker = match["speaker"]
    else:
        speaker = match[1] if pattern.groups else match[0]
    if not speaker:
        raise DataError(path, f"--speaker-pattern {pattern.pattern!r} matched an empty speaker")
    return speaker


def scan(root: str | Path, *, language: str, speaker_pattern: str | None = None, **_) -> Scan:
    root = require_dir(root)
    pattern = compile_speaker_pattern(speaker_pattern, root)
    result = Scan()
    labels: dict[str, str] = {}
    for path in audio_files(root):
        parts = path.relative_to(root).parts
        if len(parts) == 1:
            result.skip(path, "directly under the root, not inside a label folder")
            continue
        folder = parts[0]
        if folder not in labels:
            labels[folder] = normalise_label(folder, where=root / folder)
        rel = Path(*parts).with_suffix("").as_posix()
        result.recordings.append(Recording(
            utt_id=rel, path=path, speaker=speaker_from_name(pattern, path), language=language, emotion=labels[folder],
        ))
    return require_recordings(result, root, "<root>/<label>/*.wav (or .flac, .ogg, .mp3...)")
