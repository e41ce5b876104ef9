"""CSV tables: the one place that writes and reads them (with pandas).

Every CSV the toolkit writes (manifests, ``skipped.csv``, ``metrics.csv``, the gate and NAS tables, the studies'
tables, ``predict --output``) goes through :func:`write_csv`, so they share one format: UTF-8, a header row,
comma-separated, quoted only where a value needs it (a comma, a quote or a line break), rows ended by ``\\r\\n``
(the format of Python's :mod:`csv` module, which wrote them before), written atomically
(:func:`sercore.fsio.write_atomic`). Values are written as given: format numbers before (``f"{x:.4f}"``) where
the file fixes their precision.

:func:`read_csv_text` reads one back the way :class:`csv.DictReader` did: every cell a string as written (no
number parsing, ``"NA"`` stays ``"NA"``), ``None`` for the cells a short row lacks, blank lines skipped, a UTF-8
byte-order mark dropped. A row with more fields than the header, and a header that names a column twice, are
errors naming their line (:class:`CsvError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from .fsio import write_atomic

if TYPE_CHECKING:
    import pandas as pd

#: How every row of a written CSV ends (the :mod:`csv` module's default, which the files have always had).
LINE_END = "\r\n"


class CsvError(ValueError):
    """A CSV file that cannot be read as a table; ``line``: the row at fault when known, counted from the header as
    1 (the row's line in the file unless a value above it spans lines)."""

    def __init__(self, problem: str, line: int | None = None):
        super().__init__(problem)
        self.line = line


def write_csv(path: str | Path, rows: pd.DataFrame | Iterable[Sequence | Mapping], columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` (a DataFrame, or rows as sequences in ``columns`` order or as mappings keyed by column) under
    the header ``columns`` (default: the frame's columns) to ``path``, atomically; returns ``path``.

    A value is written as ``str(value)`` (a float in full precision), ``None`` and NaN as an empty field.
    """
    import pandas as pd  # here, not above: importing a module that writes tables must stay quick

    if isinstance(rows, pd.DataFrame):
        frame = (rows if columns is None else rows[list(columns)]).astype(object)
    else:
        if columns is None:
            raise TypeError("write_csv: columns are needed for rows that are not a DataFrame")
        frame = pd.DataFrame(list(rows), columns=list(columns), dtype=object)  # object: each value as given, never cast
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, encoding="utf-8", lineterminator=LINE_END))


def read_csv_text(path: str | Path) -> pd.DataFrame:
    """The table in CSV file ``path``, read as :class:`csv.DictReader` reads it (see the module docstring): columns
    named as in the header, cells as strings (``None`` where a short row ends early). A file without a header gives
    a frame without columns.

    Raises :class:`UnicodeDecodeError` for a file that is not UTF-8, :class:`OSError` for one that cannot be read,
    and :class:`CsvError` for broken quoting, a row with more fields than the header or a column named twice.
    """
    import pandas as pd

    _check_row_widths(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, index_col=False, encoding="utf-8-sig",
                            engine="python", skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except pd.errors.ParserError as exc:
        raise CsvError(str(exc).strip()) from None
    frame = frame.astype(object)
    return frame.where(frame.notna(), None)


def _check_row_widths(path: str | Path) -> None:
    """Refuse a header that names a column twice and a row with more fields than the header, by its line (rows
    counted as lines, blank ones included; a value over two lines is one row). pandas cannot be asked: it drops a
    trailing empty field of the first row and takes a longer first row for one with an index column."""
    import csv

    header: list[str] | None = None
    with open(path, newline="", encoding="utf-8-sig") as f:
        try:
            for line, row in enumerate(csv.reader(f), start=1):
                if header is None:
                    if any(cell.strip() for cell in row):  # blank lines above the header are skipped, as pandas does
                        header = row
                        twice = sorted({name for name in header if header.count(name) > 1})
                        if twice:
                            raise CsvError(f"line {line}: the header names {', '.join(map(repr, twice))} more than once", line)
                elif len(row) > len(header):
                    raise CsvError(f"line {line}: {len(row)} fields, the header has {len(header)}", line)
        except csv.Error as exc:
            raise CsvError(str(exc)) from None


__all__ = ["LINE_END", "CsvError", "read_csv_text", "write_csv"]
