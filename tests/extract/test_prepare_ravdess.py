"""RAVDESS (speech part): file-name fields, eight classes with calm its own, 24 actors as speakers, FLAC or WAV."""

from collections import Counter

import pytest
from click.testing import CliRunner

from extract.cli import main as extract_main
from extract.prepare import PREPARERS, prepare_corpus
from sercore.errors import DataError
from sercore.manifest import read_manifest
from sercore.splits import check_disjoint

from tests._prepare_helpers import ravdess_corpus, write_wav

EIGHT = {"neutral": 4, "calm": 8, "happy": 8, "sad": 8, "angry": 8, "fear": 8, "disgust": 8, "surprise": 8}


@pytest.mark.parametrize("suffix", [".flac", ".wav"])
def test_fields_give_eight_classes_with_calm_kept_and_actors_as_speakers(tmp_path, suffix):
    root = ravdess_corpus(tmp_path / "ravdess", suffix=suffix)
    prepared = prepare_corpus("ravdess", root, manifest_dir=tmp_path / "m")
    rows = read_manifest(prepared.manifest)
    assert len(rows) == 4 * 60
    assert Counter(u.emotion for u in rows) == {e: 4 * n for e, n in EIGHT.items()}  # calm is not neutral
    by_id = {u.utt_id: u for u in rows}
    u = by_id["03-01-06-02-01-02-03"]
    assert (u.emotion, u.speaker, u.language) == ("fear", "03", "en")
    assert u.path == str((root / "Actor_03" / f"03-01-06-02-01-02-03{suffix}").resolve())
    assert by_id["03-01-02-01-02-01-04"].emotion == "calm" and by_id["03-01-08-02-01-01-01"].emotion == "surprise"
    assert {u.speaker for u in rows} == {"01", "02", "03", "04"}
    lines = prepared.summary().splitlines()
    assert "  outside the built-in vocabulary, kept as classes of their own: calm" in lines
    assert "  merged: none (every label kept as the corpus gives it)" in lines
    assert prepared.skipped == []


def test_calm_merged_into_neutral_only_when_asked_and_reported(tmp_path):
    root = ravdess_corpus(tmp_path / "ravdess", actors=(1, 2, 3))
    prepared = prepare_corpus("ravdess", root, merge=["calm=neutral"], manifest_dir=tmp_path / "m")
    counts = Counter(u.emotion for u in read_manifest(prepared.manifest))
    assert counts["neutral"] == 3 * (4 + 8) and "calm" not in counts and len(counts) == 7
    assert "  merged: calm -> neutral (24, --merge)" in prepared.summary().splitlines()


def test_speaker_protocol_holds_out_whole_actors(tmp_path):
    root = ravdess_corpus(tmp_path / "ravdess", actors=(1, 2, 3, 4, 5))
    rows = prepare_corpus("ravdess", root, protocol="speaker", manifest_dir=tmp_path / "m").utterances
    check_disjoint([u.utt_id for u in rows], [u.speaker for u in rows], [u.split for u in rows], "speaker")
    assert Counter(len({u.speaker for u in rows if u.split == s}) for s in ("valid", "test")) == {1: 2}


def test_song_other_modalities_and_foreign_names_are_skipped_with_reasons(tmp_path):
    root = ravdess_corpus(tmp_path / "ravdess", actors=(1,))
    write_wav(root / "Actor_01" / "03-02-03-01-01-01-01.wav")  # song
    write_wav(root / "Actor_01" / "01-01-03-01-01-01-01.wav")  # full audio-video (its audio track)
    write_wav(root / "Actor_01" / "notes.wav")
    prepared = prepare_corpus("ravdess", root, manifest_dir=tmp_path / "m")
    assert len(prepared.utterances) == 60
    assert sorted(s.reason for s in prepared.skipped) == [
        "modality 01 is not audio-only (03)",
        "name is not RAVDESS's MM-VV-EE-II-SS-RR-AA (e.g. 03-01-02-01-01-01-01)",
        "vocal channel 02 is song, not speech (01)"]


@pytest.mark.parametrize("name, problem", [
    ("03-01-09-01-01-01-01", "unknown RAVDESS emotion code '09'"),
    ("03-01-03-03-01-01-01", "unknown RAVDESS intensity '03'"),
    ("03-01-03-01-01-01-02", "actor field 02 disagrees with its folder Actor_01"),
])
def test_impossible_fields_name_the_file(tmp_path, name, problem):
    root = ravdess_corpus(tmp_path / "ravdess", actors=(1,))
    bad = write_wav(root / "Actor_01" / f"{name}.flac")
    with pytest.raises(DataError, match=problem) as err:
        prepare_corpus("ravdess", root, manifest_dir=tmp_path / "m")
    assert err.value.where == str(bad.resolve())


def test_registry_knows_ravdess_as_english(tmp_path):
    assert PREPARERS["ravdess"].languages == ("en",) and PREPARERS["ravdess"].merges == {}
    assert [name for name, p in PREPARERS.items() if "en" in p.languages] == ["iemocap", "ravdess", "demo"]
    with pytest.raises(DataError, match="no usable audio found; expected RAVDESS files"):
        prepare_corpus("ravdess", tmp_path, manifest_dir=tmp_path / "m")


def test_cli_prepare_ravdess_with_and_without_merge(tmp_path):
    root = ravdess_corpus(tmp_path / "ravdess", actors=(1, 2, 3))
    runner = CliRunner()
    args = ["prepare", "--dataset", "ravdess", "--root", str(root), "--manifest-dir", str(tmp_path / "m")]
    kept = runner.invoke(extract_main, args)
    assert kept.exit_code == 0, kept.output
    assert "emotions: neutral 12, happy 24, angry 24, sad 24, fear 24, disgust 24, surprise 24, calm 24" in kept.output
    merged = runner.invoke(extract_main, [*args, "--merge", "Calm=neutral"])
    assert merged.exit_code == 0, merged.output
    assert "merged: calm -> neutral (24, --merge)" in merged.output
    assert "calm" not in {u.emotion for u in read_manifest(tmp_path / "m" / "ravdess.csv")}
