"""CaFE (Canadian French Emotional speech dataset).

Layout: ``<root>/<Emotion>/<Intensity>/SS-E-I-T.wav``, e.g. ``Colère/Fort/03-C-2-4.wav``: emotion folders
Colère, Dégoût, Joie, Neutre, Peur, Surprise, Tristesse (accents optional, NFC or NFD, any case),
intensity sub-folders Faible/Fort except under Neutre; file names give speaker, emotion initial,
intensity and text. The emotion comes from the folder; the initial in the name must agree with it.
A wrapper folder above the emotion folders (e.g. ``CaFE_48k/``) is fine.
"""

from __future__ import annotations

import re
from pathlib import Path

from sercore.errors import DataError

from .base import Recording, Scan, audio_files, fold, require_dir, require_recordings

LANGUAGE = "fr"

#: Folder names (folded: lower case, no accents) -> vocabulary.
EMOTION_FOLDERS: dict[str, str] = {
    "colere": "angry", "degout": "disgust", "joie": "happy", "neutre": "neutral",
    "peur": "fear", "surprise": "surprise", "tristesse": "sad",
}
#: The initial each emotion's files carry in their names.
INITIALS: dict[str, str] = {"C": "angry", "D": "disgust", "J": "happy", "N": "neutral", "P": "fear", "S": "surprise", "T": "sad"}
INTENSITY_FOLDERS = ("faible", "fort")

_NAME = re.compile(r"^(?P<speaker>\d+)-(?P<initial>[A-Za-z])-(?P<intensity>\d+)-(?P<text>\d+)$")


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


def scan(root: str | Path, **_) -> Scan:
    root = require_dir(root)
    result = Scan()
    for path in audio_files(root):
        emotion = _emotion_of(path, root)
        if emotion is None:
            result.skip(path, "not inside an emotion folder")
            continue
        match = _NAME.match(path.stem)
        if match is None:
            result.skip(path, "name is not CaFE's SS-E-I-T (e.g. 03-C-2-4)")
            continue
        initial = match["initial"].upper()
        if initial not in INITIALS:
            raise DataError(path, f"unknown CaFE emotion initial {initial!r} (known: {', '.join(INITIALS)})")
        if INITIALS[initial] != emotion:
            raise DataError(path, f"emotion initial {initial!r} ({INITIALS[initial]}) disagrees with its folder ({emotion})")
        result.recordings.append(Recording(
            utt_id=path.stem, path=path, speaker=match["speaker"], language=LANGUAGE, emotion=emotion,
        ))
    return require_recordings(result, root, "CaFE files like Colère/Fort/03-C-2-4.wav")
