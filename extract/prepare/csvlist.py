"""Any user corpus listed in a CSV file with a header and the columns ``path,label[,speaker][,utt_id]``.

``--root`` is the CSV file itself. Relative paths are relative to the CSV's folder. Labels go through
:func:`sercore.labels.normalise_label`. Without a ``speaker`` column (or with an empty cell) the
speaker is ``unknown``, as for folder corpora (see :mod:`extract.prepare.folder`). Without ``utt_id``
the id is the audio path, without its suffix, relative to the corpus: the CSV's folder when every listed
file lies below it, else the deepest folder holding all listed files (a list in ``/home/alice`` of
``/data/ravdess/Actor_01/x.wav``... gives ``Actor_01/x``). Ids never carry the machine's layout, so
stores, bundles and reports made from them can move. A listed file that
does not exist is an error, since a manifest pointing at missing audio only fails later, mid-extraction.
"""

from __future__ import annotations

import os
from pathlib import Path

from sercore.errors import DataError
from sercore.labels import normalise_label
from sercore.tables import CsvError, read_csv_text

from .base import AUDIO_SUFFIXES, Recording, Scan, require_recordings
from .folder import UNKNOWN_SPEAKER

REQUIRED = ("path", "label")


def _read_rows(csv_path: Path) -> tuple[list[str], list[dict[str, str | None]]]:
    """The header (names stripped, lower case) and the rows (``None`` for a field a short row lacks)."""
    try:
        table = read_csv_text(csv_path)
    except CsvError as exc:
        if exc.line is not None:
            raise DataError(f"{csv_path}:{exc.line}", "malformed CSV row: wrong number of fields") from None
        raise DataError(csv_path, f"unreadable CSV ({exc.__class__.__name__}: {exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(csv_path, f"unreadable CSV ({exc.__class__.__name__}: {exc})") from None
    table.columns = [str(h).strip().lower() for h in table.columns]
    return list(table.columns), table.to_dict("records")


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
    listed: list[tuple[Path, str, str, str]] = []  # audio, label, speaker, utt_id (may be empty)
    for number, row in enumerate(rows, 2):
        where = f"{csv_path}:{number}"
        if any(row.get(c) is None for c in REQUIRED):
            raise DataError(where, "malformed CSV row: wrong number of fields")
        raw_path, raw_label = row["path"].strip(), row["label"].strip()
        if not raw_path or not raw_label:
            raise DataError(where, "malformed CSV row: empty path or label")
        audio = Path(os.path.normpath(base / Path(raw_path).expanduser()))  # an absolute path stays as it is
        if audio.suffix.lower() not in AUDIO_SUFFIXES:
            raise DataError(where, f"{raw_path} is not an audio file ({', '.join(AUDIO_SUFFIXES)})")
        if not audio.is_file():
            raise DataError(audio, f"audio file listed in {csv_path.name} line {number} does not exist")
        if raw_label not in labels:
            labels[raw_label] = normalise_label(raw_label, where=where)
        speaker = (row.get("speaker") or "").strip() or UNKNOWN_SPEAKER
        listed.append((audio, labels[raw_label], speaker, (row.get("utt_id") or "").strip()))
    folders = {audio.parent for audio, *_ in listed}
    corpus = base if all(f.is_relative_to(base) for f in folders) else Path(os.path.commonpath(sorted(folders)))
    for audio, label, speaker, utt_id in listed:
        utt_id = utt_id or audio.relative_to(corpus).with_suffix("").as_posix()
        result.recordings.append(Recording(utt_id=utt_id, path=audio, speaker=speaker, language=language, emotion=label))
    return require_recordings(result, csv_path, "rows of path,label")
