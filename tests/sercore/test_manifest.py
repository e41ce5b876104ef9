"""Manifests: a lossless round trip, atomic writes, and one-line errors for everything that is wrong."""

import pytest

from sercore.errors import DataError
from sercore.manifest import COLUMNS, Utterance, manifest_path, read_manifest, write_manifest


def utt(i, **kw):
    fields = dict(utt_id=f"u{i}", path=f"/data/u{i}.wav", speaker="s1", language="de", emotion="happy", split="train")
    return Utterance(**{**fields, **kw})


def test_round_trip_keeps_every_field_including_awkward_text(tmp_path):
    rows = [utt(0), utt(1, path="/data/with, comma \"quoted\".wav", emotion="sad", split="test"),
            utt(2, utt_id="angry/ß-ü", speaker="Ses01M", language="fr", emotion="surprise", split="valid")]
    path = write_manifest(rows, manifest_path(tmp_path / "m", "x"))
    assert path == tmp_path / "m" / "x.csv"
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(COLUMNS)
    assert read_manifest(path) == rows
    assert not list((tmp_path / "m").glob("*.tmp"))


def test_write_refuses_bad_rows_and_leaves_the_old_manifest(tmp_path):
    path = write_manifest([utt(0)], tmp_path / "x.csv")
    before = path.read_text()
    for bad, problem in (([utt(0), utt(0)], "duplicate utterance id 'u0'"),
                         ([utt(1, emotion="Contempt")], "emotion 'Contempt', not a label in its canonical spelling"),
                         ([utt(1, emotion="happiness")], "emotion 'happiness'"),
                         ([utt(1, split="dev")], "split 'dev'"),
                         ([utt(1, speaker="")], "has no speaker")):
        with pytest.raises(DataError, match=problem) as err:
            write_manifest(bad, path)
        assert err.value.where == str(path)
    assert path.read_text() == before


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="manifest not found"):
        read_manifest(tmp_path / "none.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("path,label\n/a.wav,sad\n")
    with pytest.raises(DataError, match=r"missing column\(s\) utt_id, speaker, language, emotion, split"):
        read_manifest(wrong)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataError, match="unreadable manifest") as err:
        read_manifest(binary)
    assert err.value.where == str(binary)
    short = tmp_path / "short.csv"
    short.write_text(",".join(COLUMNS) + "\nu1,/a.wav,s1\n")
    with pytest.raises(DataError, match="has no language, emotion, split"):
        read_manifest(short)


def test_a_manifest_saved_with_a_bom_reads_the_same(tmp_path):
    """A spreadsheet saves UTF-8 with a byte-order mark; the first column is still utt_id."""
    rows = [utt(0), utt(1, split="test")]
    path = write_manifest(rows, tmp_path / "x.csv")
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_manifest(path) == rows


def test_a_row_with_more_fields_than_the_header_is_refused_by_line(tmp_path):
    """An unquoted comma in a hand-edited path shifts the fields: refused, not read into the wrong columns."""
    path = tmp_path / "x.csv"
    path.write_text(",".join(COLUMNS) + "\nu1,/a.wav,s1,de,sad,train\nu2,/b,c.wav,s1,de,sad,train\n")
    with pytest.raises(DataError, match=r"unreadable manifest \(line 3: 7 fields, the header has 6\)") as err:
        read_manifest(path)
    assert err.value.where == str(path)
