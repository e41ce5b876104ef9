"""CSV tables (sercore.tables): the csv module's format byte for byte, strings kept as written, a BOM dropped,
ragged rows named by line, atomic writes."""

import csv
import errno
import io

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sercore.errors import EnvironmentProblem
from sercore.tables import CsvError, read_csv_text, write_csv

AWKWARD = ["plain", "with, comma", 'quote "q"', "line\nbreak", "cr\rreturn", " spaced ", "ünïcødé ß", "", "#hash", "'single'"]


def csv_module_bytes(header, rows) -> bytes:
    """What csv.writer (the files' format before pandas) writes."""
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(header)
    w.writerows(rows)
    return text.getvalue().encode("utf-8")


def test_written_bytes_are_the_csv_modules(tmp_path):
    rows = [[a, i, 0.1 * i, i % 2 == 0, None if i % 3 else f"{i / 7:.4f}"] for i, a in enumerate(AWKWARD)]
    path = write_csv(tmp_path / "t.csv", rows, ["text", "int", "float", "bool", "maybe"])
    assert path == tmp_path / "t.csv"
    expected = csv_module_bytes(["text", "int", "float", "bool", "maybe"],
                                [[("" if v is None else v) for v in row] for row in rows])
    assert path.read_bytes() == expected
    assert b"\r\n" in expected  # the csv module's line end
    assert not list(tmp_path.glob("*.tmp"))


def test_rows_as_mappings_or_a_frame_follow_the_columns(tmp_path):
    a = write_csv(tmp_path / "a.csv", [{"b": 2, "a": 1}, {"a": 3}], ["a", "b"])
    b = write_csv(tmp_path / "b.csv", pd.DataFrame({"b": [2, None], "a": [1, 3], "c": ["x", "y"]}), ["a", "b"])
    assert a.read_bytes() == b"a,b\r\n1,2\r\n3,\r\n"
    assert b.read_bytes() == b"a,b\r\n1,2.0\r\n3,\r\n"  # a float column stays a float column
    assert write_csv(tmp_path / "e.csv", [], ["a", "b"]).read_bytes() == b"a,b\r\n"
    with pytest.raises(TypeError, match="columns"):
        write_csv(tmp_path / "x.csv", [(1, 2)])


def test_round_trip_keeps_every_cell_as_the_string_written(tmp_path):
    looks_typed = ["007", "NA", "null", "NaN", "1e3", "True", "-0", "nan", "None", "N/A"]
    rows = [[a, b] for a, b in zip(AWKWARD, looks_typed)]
    table = read_csv_text(write_csv(tmp_path / "t.csv", rows, ["a", "b"]))
    assert list(table.columns) == ["a", "b"]
    assert table.values.tolist() == rows
    assert all(type(v) is str for row in table.values.tolist() for v in row)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(st.characters(blacklist_categories=("Cs",))), st.text(st.characters(blacklist_categories=("Cs",)))),
                max_size=5))
def test_any_text_round_trips(tmp_path_factory, rows):
    path = write_csv(tmp_path_factory.mktemp("t") / "t.csv", rows, ["a", "b"])
    assert path.read_bytes() == csv_module_bytes(["a", "b"], rows)
    assert read_csv_text(path).values.tolist() == [list(r) for r in rows]


def test_reading_drops_a_bom_skips_blank_lines_and_marks_short_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfpath,label,speaker\r\na.wav,sad,s1\r\n\r\nb.wav,,\r\nc.wav\r\n")
    table = read_csv_text(path)
    assert list(table.columns) == ["path", "label", "speaker"]
    assert table.values.tolist() == [["a.wav", "sad", "s1"], ["b.wav", "", ""], ["c.wav", None, None]]
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert list(read_csv_text(empty).columns) == []
    header = tmp_path / "header.csv"
    header.write_text("a,b\n")
    assert list(read_csv_text(header).columns) == ["a", "b"] and read_csv_text(header).empty


@pytest.mark.parametrize("text, line", [("a,b\n1,2,3\n4,5\n", 2), ("a,b\n1,2\n3,4\n5,6,7\n", 4),
                                        ('a,b\n"x\ny",2\n5,6,7\n', 3),
                                        ("a,b\n1,2,\n", 2), ("a,b\n\n1,2,3\n", 3), ("\na,b\n1,2\n3,4,5\n", 4), ("  \na,b\n1,2\n3,4,5\n", 4)])  # rows counted, the header as 1 (a value over two lines: one row)
def test_a_row_with_more_fields_than_the_header_is_named_by_its_line(tmp_path, text, line):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(CsvError) as err:
        read_csv_text(path)
    assert err.value.line == line and str(err.value).startswith(f"line {line}: ")


def test_a_header_naming_a_column_twice_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("path,speaker,path\na.wav,s1,b.wav\n")
    with pytest.raises(CsvError, match=r"^line 1: the header names 'path' more than once$"):
        read_csv_text(path)


def test_broken_quoting_and_other_encodings_are_errors(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('a,b\n"unterminated,1\n2,3\n')
    with pytest.raises(CsvError) as err:
        read_csv_text(path)
    assert err.value.line is None
    path.write_bytes(b"a,b\n\xff\xfe,1\n")
    with pytest.raises(UnicodeDecodeError):
        read_csv_text(path)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = write_csv(tmp_path / "t.csv", [(1, 2)], ["a", "b"])
    before = path.read_bytes()

    class Unprintable:
        def __str__(self):
            raise ValueError("no text for this value")

    with pytest.raises(ValueError, match="no text"):
        write_csv(path, [(3, 4), (5, Unprintable())], ["a", "b"])
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]

    def full_disk(frame, target, **options):
        with open(target, "w") as f:
            f.write("a,b\r\n3,")  # half a row, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full_disk)
    with pytest.raises(EnvironmentProblem, match="no space left on device") as err:
        write_csv(path, [(3, 4)], ["a", "b"])
    assert err.value.where == str(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
