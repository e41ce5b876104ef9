"""EmoDB layout, the shared preparation steps (splits, summary, skipped files) and the bad-input errors."""

from collections import Counter

import pytest
from click.testing import CliRunner

from extract.cli import main as extract_main
from extract.prepare import prepare_corpus, prepare_dataset
from sercore.errors import DataError
from sercore.manifest import read_manifest

from tests._prepare_helpers import emodb_corpus, write_wav

SEVEN = ("angry", "boredom", "disgust", "fear", "happy", "sad", "neutral")


def test_emodb_names_map_to_speakers_and_emotions(tmp_path):
    root = emodb_corpus(tmp_path / "emodb")
    prepared = prepare_corpus("emodb", root, manifest_dir=tmp_path / "m")
    rows = read_manifest(prepared.manifest)
    assert prepared.manifest == tmp_path / "m" / "emodb.csv"
    assert len(rows) == 4 * 7 * 2
    by_id = {u.utt_id: u for u in rows}
    assert by_id["03a01Wa"].emotion == "angry" and by_id["03a01Wa"].speaker == "03"
    assert by_id["08a01Lb"].emotion == "boredom" and by_id["08a01Lb"].speaker == "08"
    assert by_id["09a01Ea"].emotion == "disgust"
    assert by_id["10a01Aa"].emotion == "fear"
    assert by_id["03a01Fa"].emotion == "happy"
    assert by_id["03a01Ta"].emotion == "sad"
    assert by_id["03a01Na"].emotion == "neutral"
    assert {u.language for u in rows} == {"de"}
    assert by_id["03a01Wa"].path == str((root / "wav" / "03a01Wa.wav").resolve())
    assert Counter(u.emotion for u in rows) == {e: 8 for e in SEVEN}


def test_random_protocol_is_stratified_disjoint_and_seeded(tmp_path):
    root = emodb_corpus(tmp_path / "emodb", speakers=("03", "08", "09", "10", "11"), takes="abcd")  # 20 per class
    rows = prepare_corpus("emodb", root, manifest_dir=tmp_path / "m", seed=3).utterances
    for emotion in SEVEN:
        splits = Counter(u.split for u in rows if u.emotion == emotion)
        assert splits == {"test": 4, "valid": 3, "train": 13}  # 20% test, then 20% of the other 16
    assert len({u.utt_id for u in rows}) == len(rows)
    again = prepare_corpus("emodb", root, manifest_dir=tmp_path / "m", seed=3).utterances
    other = prepare_corpus("emodb", root, manifest_dir=tmp_path / "m", seed=4).utterances
    assert [u.split for u in again] == [u.split for u in rows]
    assert [u.split for u in other] != [u.split for u in rows]


def test_speaker_protocol_keeps_every_speaker_in_one_split(tmp_path):
    root = emodb_corpus(tmp_path / "emodb", speakers=("03", "08", "09", "10", "11"))
    for seed in range(4):
        rows = prepare_corpus("emodb", root, protocol="speaker", seed=seed, manifest_dir=tmp_path / "m").utterances
        split_of = {}
        for u in rows:
            assert split_of.setdefault(u.speaker, u.split) == u.split
        assert sorted(Counter(split_of.values()).items()) == [("test", 1), ("train", 3), ("valid", 1)]


def test_summary_reports_counts_and_skipped_files(tmp_path, capsys):
    root = emodb_corpus(tmp_path / "emodb")
    write_wav(root / "wav" / "notes.wav")
    write_wav(root / "wav" / "extra" / "03a01W.wav")  # no take letter
    (root / "README.txt").write_text("not audio, not considered")
    manifest = prepare_dataset("emodb", root, manifest_dir=tmp_path / "m", protocol="speaker")
    out = capsys.readouterr().out
    assert manifest == tmp_path / "m" / "emodb.csv"
    assert "emodb: 56 utterances, 4 speakers, language de (56)" in out
    assert "angry 8" in out and "boredom 8" in out
    assert "splits (speaker protocol, seed 0): train 28, valid 14, test 14" in out
    assert "test speakers:" in out and "valid speakers:" in out
    assert "skipped 2 file(s)" in out and "notes.wav" in out and "03a01W.wav" in out
    skipped_csv = (tmp_path / "m" / "emodb.skipped.csv").read_text()
    assert "notes.wav" in skipped_csv and "03a01W.wav" in skipped_csv
    # A clean re-run removes the stale list rather than leaving it to mislead.
    (root / "wav" / "notes.wav").unlink()
    (root / "wav" / "extra" / "03a01W.wav").unlink()
    prepare_dataset("emodb", root, manifest_dir=tmp_path / "m", echo=None)
    assert not (tmp_path / "m" / "emodb.skipped.csv").exists()


def test_unknown_emotion_letter_names_the_file(tmp_path):
    root = emodb_corpus(tmp_path / "emodb")
    bad = write_wav(root / "wav" / "03a01Xa.wav")
    with pytest.raises(DataError, match="unknown EmoDB emotion letter 'X'") as err:
        prepare_corpus("emodb", root, manifest_dir=tmp_path / "m")
    assert err.value.where == str(bad)
    assert not (tmp_path / "m" / "emodb.csv").exists()


def test_missing_root_and_a_file_as_root(tmp_path):
    with pytest.raises(DataError, match="corpus root does not exist") as err:
        prepare_corpus("emodb", tmp_path / "nowhere", manifest_dir=tmp_path / "m")
    assert err.value.where == str(tmp_path / "nowhere")
    (tmp_path / "f.wav").write_bytes(b"")
    with pytest.raises(DataError, match="not a folder"):
        prepare_corpus("emodb", tmp_path / "f.wav", manifest_dir=tmp_path / "m")


def test_corpus_without_audio(tmp_path):
    (tmp_path / "empty" / "wav").mkdir(parents=True)
    (tmp_path / "empty" / "wav" / "03a01Fa.txt").write_text("x")
    with pytest.raises(DataError, match="no usable audio found") as err:
        prepare_corpus("emodb", tmp_path / "empty", manifest_dir=tmp_path / "m")
    assert err.value.where == str((tmp_path / "empty").resolve())
    write_wav(tmp_path / "empty" / "wav" / "hello.wav")
    with pytest.raises(DataError, match=r"1 file\(s\) skipped, e.g. .*hello.wav"):
        prepare_corpus("emodb", tmp_path / "empty", manifest_dir=tmp_path / "m")


def test_unknown_layout_and_bad_manifest_name(tmp_path):
    with pytest.raises(DataError, match="unknown corpus layout"):
        prepare_corpus("shemo", tmp_path, manifest_dir=tmp_path / "m")
    root = emodb_corpus(tmp_path / "emodb", speakers=("03",))
    with pytest.raises(DataError, match="dataset name"):
        prepare_corpus("emodb", root, name="../oops", manifest_dir=tmp_path / "m")
    with pytest.raises(DataError, match="--language 'en' does not apply"):
        prepare_corpus("emodb", root, language="en", manifest_dir=tmp_path / "m")


def test_cli_prepare_prints_summary_and_one_line_errors(tmp_path):
    root = emodb_corpus(tmp_path / "emodb")
    runner = CliRunner()
    ok = runner.invoke(extract_main, ["prepare", "--dataset", "emodb", "--root", str(root), "--manifest-dir", str(tmp_path / "m")])
    assert ok.exit_code == 0, ok.output
    assert "emodb: 56 utterances, 4 speakers" in ok.output
    assert len(read_manifest(tmp_path / "m" / "emodb.csv")) == 56
    bad = runner.invoke(extract_main, ["prepare", "--dataset", "emodb", "--root", str(tmp_path / "nope"), "--manifest-dir", str(tmp_path / "m")])
    assert bad.exit_code == 3  # data error
    assert bad.output.strip() == f"error: {tmp_path / 'nope'}: corpus root does not exist"
    no_root = runner.invoke(extract_main, ["prepare", "--dataset", "emodb"])
    assert no_root.exit_code == 2 and "--root is required" in no_root.output
