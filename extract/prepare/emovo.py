"""EMOVO (Italian Emotional Speech Database).

Layout: ``<root>/<speaker>/EEE-SS-TT.wav``, e.g. ``f1/dis-f1-b1.wav``: emotion code, speaker (also the
folder name), sentence id. Six actors (f1-f3, m1-m3) x seven emotions x fourteen sentences.
"""

from __future__ import annotations

import re
from pathlib import Path

from sercore.errors import DataError

from .base import Recording, Scan, audio_files, require_dir, require_recordings

LANGUAGE = "it"

#: Italian codes: disgusto, gioia, neutro, paura, rabbia, sorpresa, tristezza.
EMOTION_CODES: dict[str, str] = {
    "dis": "disgust", "gio": "happy", "neu": "neutral", "pau": "fear", "rab": "angry", "sor": "surprise", "tri": "sad",
}

_NAME = re.compile(r"^(?P<emotion>[a-z]{3})-(?P<speaker>[a-z]\d+)-(?P<sentence>[a-z]+\d+)$", re.IGNORECASE)


def scan(root: str | Path, **_) -> Scan:
    root = require_dir(root)
    result = Scan()
    for path in audio_files(root):
        match = _NAME.match(path.stem)
        if match is None:
            result.skip(path, "name is not EMOVO's EEE-SS-TT (e.g. dis-f1-b1)")
            continue
        code = match["emotion"].lower()
        if code not in EMOTION_CODES:
            raise DataError(path, f"unknown EMOVO emotion code {code!r} (known: {', '.join(EMOTION_CODES)})")
        result.recordings.append(Recording(
            utt_id=path.stem, path=path, speaker=match["speaker"].lower(), language=LANGUAGE, emotion=EMOTION_CODES[code],
        ))
    return require_recordings(result, root, "EMOVO files like f1/dis-f1-b1.wav")
