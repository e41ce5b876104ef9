"""Dataset manifests: one typed row per utterance, stored as ``data_manifests/<dataset>.csv``."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Iterable, Sequence

from .errors import DataError
from .labels import is_canonical
from .tables import CsvError, read_csv_text, write_csv

SPLITS: tuple[str, ...] = ("train", "valid", "test")


@dataclass(frozen=True)
class Utterance:
    """One labelled recording. ``path`` is absolute so a manifest works from any directory."""

    utt_id: str
    path: str
    speaker: str
    language: str
    emotion: str
    split: str


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Utterance))


def manifest_path(manifest_dir: str | Path, dataset: str) -> Path:
    return Path(manifest_dir) / f"{dataset}.csv"


def validate(utterances: Sequence[Utterance], where: str | Path) -> None:
    """Refuse empty fields, duplicate ids, emotions not in their canonical spelling and unknown split names.

    Any emotion is a class (the vocabulary is open, see :mod:`sercore.labels`), but it must be written the
    way :func:`sercore.labels.normalise_label` writes it, so that ``Calm`` and ``calm`` cannot be two classes.
    """
    seen: set[str] = set()
    for u in utterances:
        empty = [c for c in COLUMNS if not getattr(u, c)]
        if empty:
            raise DataError(where, f"utterance {u.utt_id!r} has no {', '.join(empty)} (a short or hand-edited row?)")
        if u.utt_id in seen:
            raise DataError(where, f"duplicate utterance id {u.utt_id!r}")
        seen.add(u.utt_id)
        if not is_canonical(u.emotion):
            raise DataError(where, f"utterance {u.utt_id!r} has emotion {u.emotion!r}, not a label in its canonical "
                                   "spelling (lower case, e.g. 'neutral', 'calm'; prepare the corpus again)")
        if u.split not in SPLITS:
            raise DataError(where, f"utterance {u.utt_id!r} has split {u.split!r}, not one of {', '.join(SPLITS)}")


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> Path:
    """Write atomically (:func:`sercore.tables.write_csv`) so a crash never leaves half a manifest."""
    path = Path(path)
    rows = list(utterances)
    validate(rows, path)
    return write_csv(path, (astuple(u) for u in rows), COLUMNS)


def read_manifest(path: str | Path) -> list[Utterance]:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest not found (run `extract prepare` first)")
    try:
        table = read_csv_text(path)
    except (UnicodeDecodeError, CsvError) as exc:
        raise DataError(path, f"unreadable manifest ({exc})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataError(path, f"not a manifest: missing column(s) {', '.join(missing)}")
    rows = [Utterance(*row) for row in table[list(COLUMNS)].itertuples(index=False, name=None)]
    validate(rows, path)
    return rows
