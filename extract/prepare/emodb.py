"""EmoDB (Berlin Database of Emotional Speech, German).

Layout: ``<root>/wav/SSTTTEV.wav`` (or the files directly under ``<root>``), e.g. ``03a01Fa.wav``:
``SS`` speaker, ``TTT`` text, ``E`` emotion as a German initial, ``V`` take version.
"""

from __future__ import annotations

import re
from pathlib import Path

from sercore.errors import DataError

from .base import Recording, Scan, scan_named_files

LANGUAGE = "de"

#: German initials: Wut, Langeweile, Ekel, Angst, Freude, Trauer, Neutral.
EMOTION_LETTERS: dict[str, str] = {
    "W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral",
}

NAME = re.compile(r"^(?P<speaker>\d{2})(?P<text>[a-z]\d{2})(?P<emotion>[A-Za-z])(?P<version>[a-z]+)$")


def _recording(path: Path, match: re.Match) -> Recording:
    letter = match["emotion"]
    if letter not in EMOTION_LETTERS:
        raise DataError(path, f"unknown EmoDB emotion letter {letter!r} (known: {', '.join(EMOTION_LETTERS)})")
    return Recording(utt_id=path.stem, path=path, speaker=match["speaker"], language=LANGUAGE,
                     emotion=EMOTION_LETTERS[letter])


def scan(root: str | Path, **_) -> Scan:
    return scan_named_files(root, NAME, _recording, form="EmoDB's SSTTTEV (e.g. 03a01Fa)",
                            example="EmoDB files like wav/03a01Fa.wav")
