"""EMOVO (Italian Emotional Speech Database).

Layout: ``<root>/<speaker>/EEE-SS-TT.wav``, e.g. ``f1/dis-f1-b1.wav``: emotion code, speaker (also the
folder name), sentence id. Six actors (f1-f3, m1-m3) x seven emotions x fourteen sentences.
"""

from __future__ import annotations

import re
from pathlib import Path

from sercore.errors import DataError

from .base import Recording, Scan, scan_named_files

LANGUAGE = "it"

#: Italian codes: disgusto, gioia, neutro, paura, rabbia, sorpresa, tristezza.
EMOTION_CODES: dict[str, str] = {
    "dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear", "rab": "angry", "sor": "surprise", "tri": "sad",
}

NAME = re.compile(r"^(?P<emotion>[a-z]{3})-(?P<speaker>[a-z]\d+)-(?P<sentence>[a-z]+\d+)$", re.IGNORECASE)


def _recording(path: Path, match: re.Match) -> Recording:
    code = match["emotion"].lower()
    if code not in EMOTION_CODES:
        raise DataError(path, f"unknown EMOVO emotion code {code!r} (known: {', '.join(EMOTION_CODES)})")
    return Recording(utt_id=path.stem, path=path, speaker=match["speaker"].lower(), language=LANGUAGE,
                     emotion=EMOTION_CODES[code])


def scan(root: str | Path, **_) -> Scan:
    return scan_named_files(root, NAME, _recording, form="EMOVO's EEE-SS-TT (e.g. dis-f1-b1)",
                            example="EMOVO files like f1/dis-f1-b1.wav")
