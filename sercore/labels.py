"""Emotion labels: an open vocabulary, spellings folded together, semantic merges only when asked for.

- :data:`EMOTIONS` is the built-in vocabulary: the eight classes most corpora share, in the order used for
  class indices. It is not a closed list: a label outside it (RAVDESS's *calm*, IEMOCAP's *excited* or
  *frustrated*, *contempt*...) is a class of its own, named by its canonical spelling.
- :func:`normalise_label` maps *spellings and translations* of one label to one name (``Anger``, ``colère``,
  ``rabbia`` -> ``angry``; ``Frustration`` -> ``frustrated``). It never merges two emotions.
- Merging two emotions (``calm`` into ``neutral``) changes what is being classified, so it is always explicit:
  ``--merge calm=neutral`` (:func:`parse_merges`), or a corpus preparer that documents its protocol's merge
  (IEMOCAP's four-class set: excited -> happy). The preparation summary reports every merge.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Iterable

from .errors import DataError, OptionError

#: The built-in vocabulary, in the order used for class indices (labels outside it follow, sorted).
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

#: Spellings and translations found in corpus folder names, annotation files and user CSVs (folded: lower case,
#: no accents) -> canonical label. Only ways of writing *one* emotion; never a merge of two emotions.
ALIASES: dict[str, str] = {
    "neutral": "neutral", "neutre": "neutral", "neu": "neutral", "neutro": "neutral",
    "happy": "happy", "happiness": "happy", "joy": "happy", "joie": "happy", "hap": "happy",
    "gio": "happy", "gioia": "happy",
    "angry": "angry", "anger": "angry", "colere": "angry", "ang": "angry", "rab": "angry", "rabbia": "angry",
    "sad": "sad", "sadness": "sad", "tristesse": "sad", "tri": "sad", "tristezza": "sad",
    "fear": "fear", "fearful": "fear", "peur": "fear", "fea": "fear", "pau": "fear", "paura": "fear",
    "disgust": "disgust", "disgusted": "disgust", "degout": "disgust", "dis": "disgust", "disgusto": "disgust",
    "boredom": "boredom", "bored": "boredom",
    "surprise": "surprise", "surprised": "surprise", "sur": "surprise", "sor": "surprise", "sorpresa": "surprise",
    # Outside the built-in eight: classes of their own, spellings folded all the same.
    "calm": "calm", "calmness": "calm",
    "excited": "excited", "excitement": "excited", "exc": "excited",
    "frustrated": "frustrated", "frustration": "frustrated", "fru": "frustrated",
    "contempt": "contempt", "contemptuous": "contempt",
}

#: What a label outside the aliases may look like once canonical: letters/digits, inner spaces, '-' or '_'.
#: (No '=' or ',', which separate ``--merge`` pairs; no '/' or control characters.)
_LABEL = re.compile(r"^[^\W_](?:[\w -]*[^\W_])?$")


def fold(text: str) -> str:
    """Compare names as a person would: NFC or NFD forms, accents, case and outer spaces do not matter."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def normalise_label(raw: str, *, where: str = "label") -> str:
    """The canonical name of a corpus label (see the module docstring); :class:`DataError` naming ``where``
    for text that cannot be a label (empty, control characters, '=', ',', '/').

    A known spelling maps to its alias; any other label is kept as a class of its own, in NFC, lower case,
    with runs of spaces made one (``"Very  Happy"`` -> ``"very happy"``).
    """
    key = fold(raw)
    if key in ALIASES:
        return ALIASES[key]
    label = " ".join(unicodedata.normalize("NFC", raw).casefold().split())
    if not _LABEL.match(label):
        raise DataError(where, f"emotion label {raw!r} is not a label name (letters or digits, with inner spaces, "
                               "'-' or '_'; known spellings: " + ", ".join(EMOTIONS) + ", calm, excited, ...)")
    return label


def is_canonical(label: str) -> bool:
    """Whether ``label`` is already its own canonical name (what a manifest or store must hold)."""
    try:
        return normalise_label(label) == label
    except DataError:
        return False


def in_vocabulary(label: str) -> bool:
    """Whether ``label`` is one of the built-in :data:`EMOTIONS` (others are open-vocabulary classes)."""
    return label in EMOTIONS


def sorted_labels(labels: Iterable[str]) -> list[str]:
    """The labels present, built-in ones in vocabulary order, then the others alphabetically: stable class
    indices across runs and corpora."""
    present = set(labels)
    return [e for e in EMOTIONS if e in present] + sorted(present.difference(EMOTIONS))


def parse_merges(specs: Iterable[str], *, where: str = "--merge") -> dict[str, str]:
    """``["calm=neutral", "excited=happy,frustrated=angry"]`` -> ``{"calm": "neutral", ...}`` (canonical names).

    Each item is ``SOURCE=TARGET``; items may also be comma-separated. Refused with :class:`OptionError` (a
    usage error): a malformed item, a label merged into itself, one source given two targets, and chains
    (``a=b`` with ``b=c``: say ``a=c,b=c``), which would otherwise depend on the order they are applied in.
    A label that cannot be a class name is a :class:`DataError` from :func:`normalise_label`.
    """
    merges: dict[str, str] = {}
    for spec in specs:
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            source, sep, target = item.partition("=")
            if not sep or not source.strip() or not target.strip():
                raise OptionError(where, f"{item!r} is not SOURCE=TARGET (e.g. --merge calm=neutral)")
            source = normalise_label(source, where=f"{where} {item}")
            target = normalise_label(target, where=f"{where} {item}")
            if source == target:
                raise OptionError(where, f"{item!r} merges {source!r} into itself")
            if merges.get(source, target) != target:
                raise OptionError(where, f"{source!r} is merged into both {merges[source]!r} and {target!r}")
            merges[source] = target
    chained = sorted(t for t in merges.values() if t in merges)
    if chained:
        raise OptionError(where, f"{chained[0]!r} is both merged into {merges[chained[0]]!r} and a merge target; "
                                 "give every source its final target")
    return merges

