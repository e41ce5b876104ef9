"""One emotion vocabulary across corpora, so that multi-domain training compares like with like."""

from __future__ import annotations

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

_ACCENTS = str.maketrans("àâäéèêëîïôöùûüç", "aaaeeeeiioouuuc")


def normalise_label(raw: str, *, where: str = "label") -> str:
    """Map a corpus-specific label to the shared vocabulary, or raise :class:`DataError` naming ``where``."""
    key = raw.strip().lower().translate(_ACCENTS)
    try:
        return _ALIASES[key]
    except KeyError:
        raise DataError(where, f"unknown emotion label {raw!r} (known: {', '.join(EMOTIONS)} and their usual spellings)") from None


def sorted_labels(labels) -> list[str]:
    """The labels present, in vocabulary order (stable class indices across runs and corpora)."""
    present = set(labels)
    return [e for e in EMOTIONS if e in present]
