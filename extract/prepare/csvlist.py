"""Any user corpus listed in a CSV file with a header and the columns ``path,label[,speaker][,utt_id]``.

``--root`` is the CSV file itself. Relative paths are relative to the CSV's folder. Labels go through
:func:`sercore.labels.normalise_label`. Without a ``speaker`` column (or with an empty cell) the
speaker is ``unknown``, as for folder corpora (see :mod:`extract.prepare.folder`). Without ``utt_id``
the id is the audio path relative to the CSV's folder, without its suffix. A listed file that does
not exist is an error, since a manifest pointing at missing audio only fails later, mid-extraction.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sercore.errors import DataError
from sercore.labels import normalise_label

from .base import AUDIO_SUFFIXES, Recording, Scan, require_recordings
from .folder import UNKNOWN_SPEAKER

REQUIRED = ("path", "label")


def _read_rows(csv_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(csv_path, f"unreadable CSV ({exc.__class__.__name__}: {exc})") from None
    return header, rows


def scan(root: str | Path, *, language: str, **_) -> Scan:
    csv_path = Path(root).expanduser()
    if not csv_path.exists():
        raise DataError(csv_path, "CSV file does not exist")
    if not csv_path.is_file():
        raise DataError(csv_path, "not a file: --root must be the CSV file for --dataset csv")
    csv_path = csv_path.resolve()
    header, rows = _read_rows(csv_path)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DataError(csv_path, f"malformed CSV: missing column(s) {', '.join(missing)} "
                                  f"(header is {','.join(header) or 'empty'}; need path,label[,speaker][,utt_id], comma-separated)")
    base = csv_path.parent
    result = Scan()
    labels: dict[str, str] = {}
    for number, row in enumerate(rows, 2):
        where = f"{csv_path}:{number}"
        if None in row or any(row.get(c) is None for c in REQUIRED):
            raise DataError(where, "malformed CSV row: wrong number of fields")
        raw_path, raw_label = row["path"].strip(), row["label"].strip()
        if not raw_path or not raw_label:
            raise DataError(where, "malformed CSV row: empty path or label")
        audio = Path(raw_path).expanduser()
        audio = audio if audio.is_absolute() else base / audio
        if audio.suffix.lower() not in AUDIO_SUFFIXES:
            raise DataError(where, f"{raw_path} is not an audio file ({', '.join(AUDIO_SUFFIXES)})")
        if not audio.is_file():
            raise DataError(audio, f"audio file listed in {csv_path.name} line {number} does not exist")
        if raw_label not in labels:
            labels[raw_label] = normalise_label(raw_label, where=where)
        utt_id = (row.get("utt_id") or "").strip()
        if not utt_id:
            try:
                utt_id = audio.relative_to(base).with_suffix("").as_posix()
            except ValueError:  # an absolute path outside the CSV's folder
                utt_id = audio.with_suffix("").as_posix().lstrip("/")
        speaker = (row.get("speaker") or "").strip() or UNKNOWN_SPEAKER
        result.recordings.append(Recording(utt_id=utt_id, path=audio, speaker=speaker, language=language,
                                           emotion=labels[raw_label]))
    return require_recordings(result, csv_path, "rows of path,label")
