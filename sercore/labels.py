"""One emotion vocabulary across corpora, so that multi-domain training compares like with like."""

from __future__ import annotations

import unicodedata

from .errors import DataError

#: The normalised vocabulary, in the order used for class indices when all eight appear.
EMOTIONS: tuple[str, ...] = (
    "neutral",
    "happy",
    "angry",
    "sad",
    "fear",
    "disgust",
    "boredom",
    "surprise",
)

# Spellings found in corpus folder names, annotation files and user CSVs (lower case, no accents).
_ALIASES: dict[str, str] = {
    "neutral": "neutral", "neutre": "neutral", "neu": "neutral", "calm": "neutral",
    "happy": "happy", "happiness": "happy", "joy": "happy", "joie": "happy", "hap": "happy",
    "excited": "happy", "exc": "happy", "gio": "happy", "gioia": "happy",
    "angry": "angry", "anger": "angry", "colere": "angry", "ang": "angry", "rab": "angry", "rabbia": "angry",
    "sad": "sad", "sadness": "sad", "tristesse": "sad", "tri": "sad", "tristezza": "sad",
    "fear": "fear", "fearful": "fear", "peur": "fear", "fea": "fear", "pau": "fear", "paura": "fear",
    "disgust": "disgust", "disgusted": "disgust", "degout": "disgust", "dis": "disgust", "disgusto": "disgust",
    "boredom": "boredom", "bored": "boredom",
    "surprise": "surprise", "surprised": "surprise", "sur": "surprise", "sor": "surprise", "sorpresa": "surprise",
}


def _key(raw: str) -> str:
    # NFD splits every accented letter (whether the name came in NFC or NFD) into base + combining mark.
    return "".join(c for c in unicodedata.normalize("NFD", raw) if not unicodedata.combining(c)).strip().casefold()


def normalise_label(raw: str, *, where: str = "label") -> str:
    """Map a corpus-specific label to the shared vocabulary, or raise :class:`DataError` naming ``where``."""
    key = _key(raw)
    try:
        return _ALIASES[key]
    except KeyError:
        raise DataError(where, f"unknown emotion label {raw!r} (known: {', '.join(EMOTIONS)} and their usual spellings)") from None


def sorted_labels(labels) -> list[str]:
    """The labels present, in vocabulary order (stable class indices across runs and corpora)."""
    present = set(labels)
    return [e for e in EMOTIONS if e in present]
