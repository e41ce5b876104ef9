"""CaFE (Canadian French Emotional speech dataset).

Layout: ``<root>/<Emotion>/<Intensity>/SS-E-I-T.wav``, e.g. ``Colère/Fort/03-C-2-4.wav``: emotion folders
Colère, Dégoût, Joie, Neutre, Peur, Surprise, Tristesse (accents optional, NFC or NFD, any case),
intensity sub-folders Faible/Fort except under Neutre; file names give speaker, emotion initial,
intensity and text. The emotion comes from the folder; the initial in the name must agree with it.
A wrapper folder above the emotion folders (e.g. ``CaFE_48k/``) is fine.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from sercore.errors import DataError
from sercore.labels import fold

from .base import Recording, Scan, require_dir, scan_named_files

LANGUAGE = "fr"

#: Folder names (folded: lower case, no accents) -> vocabulary.
EMOTION_FOLDERS: dict[str, str] = {
    "colere": "angry", "degout": "disgust", "joie": "happy", "neutre": "neutral",
    "peur": "fear", "surprise": "surprise", "tristesse": "sad",
}
#: The initial each emotion's files carry in their names.
INITIALS: dict[str, str] = {"C": "angry", "D": "disgust", "J": "happy", "N": "neutral", "P": "fear", "S": "surprise", "T": "sad"}
INTENSITY_FOLDERS = ("faible", "fort")

NAME = re.compile(r"^(?P<speaker>\d+)-(?P<initial>[A-Za-z])-(?P<intensity>\d+)-(?P<text>\d+)$")


def _emotion_of(path: Path, root: Path) -> str | None:
    """The emotion of the nearest emotion folder above ``path``; None for a file directly under ``root``."""
    folders = path.relative_to(root).parts[:-1]
    for name in reversed(folders):
        if fold(name) in EMOTION_FOLDERS:
            return EMOTION_FOLDERS[fold(name)]
    if not folders:
        return None
    label_folder = path.parent.parent if fold(path.parent.name) in INTENSITY_FOLDERS else path.parent
    raise DataError(label_folder, f"unknown CaFE emotion folder {label_folder.name!r} "
                                  "(known: Colère, Dégoût, Joie, Neutre, Peur, Surprise, Tristesse)")


def _recording(root: Path, path: Path, match: re.Match) -> Recording | str:
    emotion = _emotion_of(path, root)
    if emotion is None:
        return "not inside an emotion folder"
    initial = match["initial"].upper()
    if initial not in INITIALS:
        raise DataError(path, f"unknown CaFE emotion initial {initial!r} (known: {', '.join(INITIALS)})")
    if INITIALS[initial] != emotion:
        raise DataError(path, f"emotion initial {initial!r} ({INITIALS[initial]}) disagrees with its folder ({emotion})")
    return Recording(utt_id=path.stem, path=path, speaker=match["speaker"], language=LANGUAGE, emotion=emotion)


def scan(root: str | Path, **_) -> Scan:
    root = require_dir(root)
    return scan_named_files(root, NAME, partial(_recording, root), form="CaFE's SS-E-I-T (e.g. 03-C-2-4)",
                            example="CaFE files like Colère/Fort/03-C-2-4.wav")
