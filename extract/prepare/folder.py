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

Other layouts: ``layout`` says which folder level is the label and which the speaker, as a path below the root
of ``{emotion}`` (required), ``{speaker}`` (optional) and folder patterns (``*`` any folder, ``wav*``...), ending
in ``*`` for the files, e.g. ``{speaker}/{emotion}/*`` for ``<root>/<speaker>/<emotion>/NNN.wav``. The default is
``{emotion}/*``. Deeper sub-folders are allowed below the named levels; a file with fewer folder levels, or in a
folder that does not match its pattern, is skipped with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from sercore.errors import DataError, OptionError
from sercore.labels import normalise_label

from .base import Recording, Scan, audio_files, require_dir, require_recordings

UNKNOWN_SPEAKER = "unknown"
DEFAULT_LAYOUT = "{emotion}/*"
_FIELDS = {"{emotion}": "emotion", "{label}": "emotion", "{speaker}": "speaker"}


@dataclass(frozen=True)
class Layout:
    """A parsed ``--layout``: one entry per folder level below the root, ``emotion``, ``speaker`` or a pattern."""

    text: str
    levels: tuple[str, ...]

    def level(self, field: str) -> int | None:
        return self.levels.index(field) if field in self.levels else None


def parse_layout(text: str | None) -> Layout:
    """``{speaker}/{emotion}/*`` -> its folder levels; a layout that cannot be read is an :class:`OptionError`."""
    text = text or DEFAULT_LAYOUT
    parts = [p for p in text.strip().strip("/").split("/")]
    if parts and parts[-1] in ("*", "**"):
        parts = parts[:-1]  # the files (and any sub-folders below the named levels)
    levels: list[str] = []
    for part in parts:
        if part in _FIELDS:
            levels.append(_FIELDS[part])
        elif not part or part in (".", "..") or "**" in part or "{" in part or "}" in part:
            raise OptionError("--layout", f"{text!r}: {part!r} is not a folder level (use {{emotion}}, {{speaker}} "
                                          "or a folder pattern such as *, e.g. '{speaker}/{emotion}/*')")
        else:
            levels.append("pattern:" + part)
    for field, most in (("emotion", 1), ("speaker", 1)):
        if levels.count(field) > most:
            raise OptionError("--layout", f"{text!r}: {{{field}}} appears {levels.count(field)} times")
    if "emotion" not in levels:
        raise OptionError("--layout", f"{text!r}: no {{emotion}} level (e.g. '{{speaker}}/{{emotion}}/*')")
    return Layout(text, tuple(levels))


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


def scan(root: str | Path, *, language: str, speaker_pattern: str | None = None, layout: str | None = None, **_) -> Scan:
    root = require_dir(root)
    shape = parse_layout(layout)
    speaker_level = shape.level("speaker")
    if speaker_level is not None and speaker_pattern:
        raise OptionError("--speaker-pattern", f"does not apply: --layout {shape.text!r} takes the speaker from a folder level")
    pattern = compile_speaker_pattern(speaker_pattern, root)
    result = Scan()
    labels: dict[str, str] = {}
    emotion_level = shape.level("emotion")
    for path in audio_files(root):
        parts = path.relative_to(root).parts
        folders = parts[:-1]
        if len(folders) < len(shape.levels):
            result.skip(path, "directly under the root, not inside a label folder" if not folders and layout is None
                        else f"{len(folders)} folder level(s) below the root, --layout {shape.text!r} needs {len(shape.levels)}")
            continue
        mismatch = next((f"folder {folder!r} does not match {level[len('pattern:'):]!r} of --layout {shape.text!r}"
                         for folder, level in zip(folders, shape.levels)
                         if level.startswith("pattern:") and not fnmatchcase(folder, level[len("pattern:"):])), None)
        if mismatch:
            result.skip(path, mismatch)
            continue
        folder = folders[emotion_level]
        if folder not in labels:
            labels[folder] = normalise_label(folder, where=root.joinpath(*folders[:emotion_level + 1]))
        speaker = folders[speaker_level] if speaker_level is not None else speaker_from_name(pattern, path)
        rel = Path(*parts).with_suffix("").as_posix()
        result.recordings.append(Recording(
            utt_id=rel, path=path, speaker=speaker, language=language, emotion=labels[folder],
        ))
    return require_recordings(result, root, f"{'<root>/<label>/*.wav' if layout is None else shape.text} (or .flac, .ogg, .mp3...)")
