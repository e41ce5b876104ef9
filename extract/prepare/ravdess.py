"""RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song), its speech part: North American English.

Layout: ``<root>/Actor_AA/03-01-EE-II-SS-RR-AA.wav`` (or ``.flac``; the actor folders are optional), seven
two-digit fields: modality (``03`` audio only), vocal channel (``01`` speech, ``02`` song), emotion, intensity
(``01`` normal, ``02`` strong), statement, repetition, actor. 24 actors (the speakers) x 60 takes = 1,440 files.

Emotions: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful (fear), 07 disgust, 08 surprised
(surprise). **Calm is kept as a class of its own**: eight classes, as the corpus defines them. Papers that
merge it into neutral say so; here that is ``extract prepare --dataset ravdess --merge calm=neutral``, and the
summary reports it.

Skipped with their reason: song files (vocal channel 02: the song part has other emotions and is not
speech), files of another modality, names that are not seven two-digit fields. Refused: an emotion code
outside 01-08, an intensity other than 01/02, an actor field that disagrees with its ``Actor_AA`` folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from sercore.errors import DataError

from .base import Recording, Scan, scan_named_files

LANGUAGE = "en"

#: Emotion field -> label (``calm`` is outside the built-in vocabulary: a class of its own).
EMOTION_CODES: dict[str, str] = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fear", "07": "disgust",
    "08": "surprise",
}
AUDIO_ONLY, SPEECH = "03", "01"
INTENSITIES = ("01", "02")

NAME = re.compile(r"^(?P<modality>\d{2})-(?P<channel>\d{2})-(?P<emotion>\d{2})-(?P<intensity>\d{2})-"
                  r"(?P<statement>\d{2})-(?P<repetition>\d{2})-(?P<actor>\d{2})$")
_ACTOR_FOLDER = re.compile(r"^actor_(\d+)$", re.IGNORECASE)


def _recording(path: Path, match: re.Match) -> Recording | str:
    if match["modality"] != AUDIO_ONLY:
        return f"modality {match['modality']} is not audio-only ({AUDIO_ONLY})"
    if match["channel"] != SPEECH:
        return f"vocal channel {match['channel']} is song, not speech ({SPEECH})"
    code = match["emotion"]
    if code not in EMOTION_CODES:
        raise DataError(path, f"unknown RAVDESS emotion code {code!r} (known: 01-08)")
    if match["intensity"] not in INTENSITIES:
        raise DataError(path, f"unknown RAVDESS intensity {match['intensity']!r} (known: 01 normal, 02 strong)")
    folder = _ACTOR_FOLDER.match(path.parent.name)
    if folder and int(folder[1]) != int(match["actor"]):
        raise DataError(path, f"actor field {match['actor']} disagrees with its folder {path.parent.name}")
    return Recording(utt_id=path.stem, path=path, speaker=match["actor"], language=LANGUAGE, emotion=EMOTION_CODES[code])


def scan(root: str | Path, **_) -> Scan:
    return scan_named_files(root, NAME, _recording, form="RAVDESS's MM-VV-EE-II-SS-RR-AA (e.g. 03-01-02-01-01-01-01)",
                            example="RAVDESS files like Actor_01/03-01-02-01-01-01-01.flac")
