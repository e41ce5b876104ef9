"""Corpora no one prepared for: ``<root>/<label>/*.wav`` folders and ``path,label[,speaker]`` CSV lists."""

import re
import unicodedata
from collections import Counter

import pytest
from click.testing import CliRunner

from extract.cli import main as extract_main
from extract.prepare import prepare_corpus
from sercore.errors import DataError, OptionError
from sercore.manifest import read_manifest
from sercore.splits import check_disjoint, speaker_split

from tests._prepare_helpers import write_wav


def folder_corpus(root, labels=("angry", "Happiness", unicodedata.normalize("NFD", "Tristesse"), "neutral"),
                  speakers=("s1", "s2", "s3", "s4"), suffixes=(".wav", ".flac", ".ogg")):
    for label in labels:
        for spk in speakers:
            for k, suffix in enumerate(suffixes):
                write_wav(root / label / f"{spk}_take{k}{suffix}")  # soundfile picks the format from the suffix
    return root


# --- folder ------------------------------------------------------------------------------------------

def test_folder_labels_are_normalised_and_ids_are_relative_paths(tmp_path):
    root = folder_corpus(tmp_path / "swahili")
    prepared = prepare_corpus("folder", root, name="sw_corpus", language="sw", manifest_dir=tmp_path / "m")
    rows = read_manifest(tmp_path / "m" / "sw_corpus.csv")
    assert len(rows) == 4 * 4 * 3
    assert Counter(u.emotion for u in rows) == {"angry": 12, "happy": 12, "sad": 12, "neutral": 12}
    assert {u.language for u in rows} == {"sw"}
    assert {u.speaker for u in rows} == {"unknown"}  # documented default: no speaker information
    by_id = {u.utt_id: u for u in rows}
    assert by_id["Happiness/s2_take1"].path == str((root / "Happiness" / "s2_take1.flac").resolve())
    assert prepared.skipped == []


def test_folder_speaker_pattern_enables_speaker_independent_splits(tmp_path):
    root = folder_corpus(tmp_path / "c")
    with pytest.raises(DataError, match="speaker protocol needs at least 3 speakers per language, 'sw' has 1"):
        prepare_corpus("folder", root, language="sw", protocol="speaker", manifest_dir=tmp_path / "m")
    rows = prepare_corpus("folder", root, language="sw", protocol="speaker", speaker_pattern=r"^(s\d)_",
                          manifest_dir=tmp_path / "m").utterances
    assert {u.speaker for u in rows} == {"s1", "s2", "s3", "s4"}
    check_disjoint([u.utt_id for u in rows], [u.speaker for u in rows], [u.split for u in rows], "speaker")
    named = prepare_corpus("folder", root, language="sw", speaker_pattern=r"take(?P<speaker>\d)", manifest_dir=tmp_path / "m")
    assert {u.speaker for u in named.utterances} == {"0", "1", "2"}


def test_folder_speaker_pattern_errors(tmp_path):
    root = folder_corpus(tmp_path / "c", labels=("angry",), speakers=("s1",), suffixes=(".wav",))
    with pytest.raises(DataError, match="not a regular expression"):
        prepare_corpus("folder", root, language="sw", speaker_pattern="(", manifest_dir=tmp_path / "m")
    with pytest.raises(DataError, match="does not match --speaker-pattern") as err:
        prepare_corpus("folder", root, language="sw", speaker_pattern=r"^spk\d", manifest_dir=tmp_path / "m")
    assert err.value.where.endswith("s1_take0.wav")


def test_folder_needs_a_language_code(tmp_path):
    root = folder_corpus(tmp_path / "c")
    with pytest.raises(DataError, match="--language is required for a folder corpus"):
        prepare_corpus("folder", root, manifest_dir=tmp_path / "m")
    with pytest.raises(DataError, match="not a language code"):
        prepare_corpus("folder", root, language="Swahili!", manifest_dir=tmp_path / "m")


def test_folder_labels_outside_the_vocabulary_are_classes_of_their_own(tmp_path):
    root = folder_corpus(tmp_path / "c", labels=("Calm", "neutral", "Contempt", "Frustration"), suffixes=(".wav",))
    prepared = prepare_corpus("folder", root, language="sw", manifest_dir=tmp_path / "m")
    assert Counter(u.emotion for u in read_manifest(prepared.manifest)) == \
        {"neutral": 4, "calm": 4, "contempt": 4, "frustrated": 4}  # nothing merged into neutral
    lines = prepared.summary().splitlines()
    assert "  emotions: neutral 4, calm 4, contempt 4, frustrated 4" in lines
    assert "  outside the built-in vocabulary, kept as classes of their own: calm, contempt, frustrated" in lines
    assert "  merged: none (every label kept as the corpus gives it)" in lines


def test_folder_label_that_cannot_be_a_class_name_is_named(tmp_path):
    root = folder_corpus(tmp_path / "c")
    write_wav(root / "calm=neutral" / "x.wav")
    with pytest.raises(DataError, match="emotion label 'calm=neutral' is not a label name") as err:
        prepare_corpus("folder", root, language="sw", manifest_dir=tmp_path / "m")
    assert err.value.where == str((root / "calm=neutral").resolve())


def test_folder_duplicate_ids_and_stray_files(tmp_path):
    root = folder_corpus(tmp_path / "c", suffixes=(".wav",))
    write_wav(root / "loose.wav")
    prepared = prepare_corpus("folder", root, language="sw", manifest_dir=tmp_path / "m")
    assert [s.reason for s in prepared.skipped] == ["directly under the root, not inside a label folder"]
    write_wav(root / "angry" / "s1_take0.flac")  # same id as angry/s1_take0.wav
    with pytest.raises(DataError, match="duplicate utterance id 'angry/s1_take0'"):
        prepare_corpus("folder", root, language="sw", manifest_dir=tmp_path / "m")


def test_folder_missing_root_and_no_audio(tmp_path):
    with pytest.raises(DataError, match="corpus root does not exist"):
        prepare_corpus("folder", tmp_path / "nope", language="sw", manifest_dir=tmp_path / "m")
    (tmp_path / "empty" / "angry").mkdir(parents=True)
    with pytest.raises(DataError, match="no usable audio found"):
        prepare_corpus("folder", tmp_path / "empty", language="sw", manifest_dir=tmp_path / "m")


def speaker_emotion_corpus(root, speakers=("spk1", "spk2", "spk3", "spk4"), labels=("angry", "happy", "sad"), takes=2):
    for spk in speakers:
        for label in labels:
            for k in range(takes):
                write_wav(root / spk / label / f"{k:03d}.wav")
    return root


def test_folder_layout_names_the_speaker_and_emotion_levels(tmp_path):
    root = speaker_emotion_corpus(tmp_path / "c")
    plain = prepare_corpus("folder", root, language="sw", manifest_dir=tmp_path / "m")
    assert {u.emotion for u in plain.utterances} == {"spk1", "spk2", "spk3", "spk4"}  # the top folder taken as label
    assert len(plain.warnings()) == 1
    assert "none of the labels (spk1, spk2, spk3, spk4) is in the built-in vocabulary" in plain.warnings()[0]
    assert "--layout" in plain.warnings()[0]
    prepared = prepare_corpus("folder", root, language="sw", protocol="speaker", layout="{speaker}/{emotion}/*",
                              manifest_dir=tmp_path / "m")
    rows = read_manifest(prepared.manifest)
    assert Counter(u.emotion for u in rows) == {"angry": 8, "happy": 8, "sad": 8}
    assert Counter(u.speaker for u in rows) == {"spk1": 6, "spk2": 6, "spk3": 6, "spk4": 6}
    assert {u.utt_id for u in rows} >= {"spk1/angry/000", "spk4/sad/001"}
    assert prepared.warnings() == []
    check_disjoint([u.utt_id for u in rows], [u.speaker for u in rows], [u.split for u in rows], "speaker")


def test_folder_layout_skips_files_that_do_not_fit_it(tmp_path):
    root = speaker_emotion_corpus(tmp_path / "c", speakers=("spk1",), labels=("angry",), takes=1)
    write_wav(root / "spk1" / "loose.wav")
    write_wav(root / "spk1" / "angry" / "deeper" / "x.wav")  # sub-folders below the named levels are allowed
    write_wav(root / "notes" / "angry" / "y.wav")
    prepared = prepare_corpus("folder", root, language="sw", layout="spk*/{emotion}/*", manifest_dir=tmp_path / "m")
    assert sorted(u.utt_id for u in prepared.utterances) == ["spk1/angry/000", "spk1/angry/deeper/x"]
    assert {u.speaker for u in prepared.utterances} == {"unknown"}
    assert sorted((s.path.split("/c/")[1], s.reason) for s in prepared.skipped) == [
        ("notes/angry/y.wav", "folder 'notes' does not match 'spk*' of --layout 'spk*/{emotion}/*'"),
        ("spk1/loose.wav", "1 folder level(s) below the root, --layout 'spk*/{emotion}/*' needs 2"),
    ]


@pytest.mark.parametrize("layout, problem", [
    ("{speaker}/*", "no {emotion} level"),
    ("{emotion}/{emotion}/*", "{emotion} appears 2 times"),
    ("{speaker}/{mood}/*", "'{mood}' is not a folder level"),
    ("**/{emotion}/*", "'**' is not a folder level"),
])
def test_folder_layout_errors_name_the_option(tmp_path, layout, problem):
    root = speaker_emotion_corpus(tmp_path / "c", speakers=("spk1",), labels=("angry",), takes=1)
    with pytest.raises(OptionError, match=re.escape(problem)) as err:
        prepare_corpus("folder", root, language="sw", layout=layout, manifest_dir=tmp_path / "m")
    assert err.value.where == "--layout"


def test_folder_layout_refusals(tmp_path):
    root = speaker_emotion_corpus(tmp_path / "c", speakers=("spk1",), labels=("angry",), takes=1)
    with pytest.raises(OptionError, match="--speaker-pattern: does not apply: --layout '{speaker}/{emotion}/\\*' takes"):
        prepare_corpus("folder", root, language="sw", layout="{speaker}/{emotion}/*", speaker_pattern="(.*)",
                       manifest_dir=tmp_path / "m")
    listing = csv_corpus(tmp_path / "l", ["a.wav,sad,s"])
    with pytest.raises(OptionError, match="--layout: applies to folder corpora only, not csv"):
        prepare_corpus("csv", listing, language="sw", layout="{emotion}/*", manifest_dir=tmp_path / "m")


def test_cli_folder_with_layout(tmp_path):
    root = speaker_emotion_corpus(tmp_path / "c")
    args = ["prepare", "--dataset", "folder", "--root", str(root), "--language", "sw", "--manifest-dir", str(tmp_path / "m")]
    result = CliRunner().invoke(extract_main, [*args, "--layout", "{speaker}/{emotion}/*", "--protocol", "speaker"])
    assert result.exit_code == 0, result.output
    assert "folder: 24 utterances, 4 speakers, language sw (24)" in result.output
    assert "built-in vocabulary" not in result.output
    plain = CliRunner().invoke(extract_main, args)
    assert plain.exit_code == 0, plain.output
    assert "none of the labels (spk1, spk2, spk3, spk4) is in the built-in vocabulary" in plain.output
    bad = CliRunner().invoke(extract_main, [*args, "--layout", "{speaker}/*"])
    assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0, bad.output
    assert "--layout" in bad.output


def test_prepare_reports_speakers_by_emotion_and_warns_of_a_confound(tmp_path):
    # 26 of 29 speakers act a single emotion; 3 act all four
    root = tmp_path / "c"
    singles = ["angry"] * 10 + ["happy"] * 8 + ["sad"] * 6 + ["neutral"] * 2
    for k, label in enumerate(singles):
        speaker_emotion_corpus(root, speakers=(f"p{k:02d}",), labels=(label,), takes=3)
    speaker_emotion_corpus(root, speakers=("all0", "all1", "all2"), labels=("angry", "happy", "sad", "neutral"), takes=1)
    prepared = prepare_corpus("folder", root, language="sw", protocol="speaker", layout="{speaker}/{emotion}/*",
                              manifest_dir=tmp_path / "m")
    lines = prepared.summary().splitlines()
    table = lines.index("  speakers x emotions:")
    assert lines[table + 1].split() == ["speaker", "neutral", "happy", "angry", "sad"]
    assert lines[table + 2].split() == ["all0", "1", "1", "1", "1"]
    assert lines[table + 5].split() == ["p00", "0", "0", "3", "0"]
    assert len([line for line in lines if line.startswith("    p")]) == 26
    warnings = prepared.warnings()
    assert warnings[0] == ("warning: folder: speaker and emotion are confounded: 26 of 29 speakers act mostly one emotion "
                           "(26 a single one), so speaker-independent folds lack whole emotions in test and valid; "
                           "with train --folds 5 (or fewer) every fold has every emotion")
    assert warnings[1].startswith("warning: folder: the test split lacks ") and "the valid split lacks " in warnings[1]
    assert len(warnings) == 2


def test_prepare_of_a_balanced_corpus_keeps_its_speaker_folds_and_says_nothing(tmp_path):
    root = speaker_emotion_corpus(tmp_path / "c", speakers=tuple(f"spk{i}" for i in range(6)))
    for seed in range(4):
        prepared = prepare_corpus("folder", root, language="sw", protocol="speaker", seed=seed,
                                  layout="{speaker}/{emotion}/*", manifest_dir=tmp_path / "m")
        speakers = [u.speaker for u in prepared.utterances]
        assert [u.split for u in prepared.utterances] == speaker_split(speakers, fold=0, seed=seed)  # the existing deal
        assert prepared.warnings() == []
    assert "  speakers x emotions:" in prepared.summary().splitlines()
    unknown = prepare_corpus("folder", folder_corpus(tmp_path / "u"), language="sw", manifest_dir=tmp_path / "m")
    assert "  speakers x emotions:" not in unknown.summary().splitlines()  # one speaker: no table


# --- csv ---------------------------------------------------------------------------------------------

def csv_corpus(root, rows, header="path,label,speaker"):
    root.mkdir(parents=True, exist_ok=True)
    for row in rows:
        path = row.split(",")[0]
        if path and not path.startswith("/") and path.endswith(".wav"):
            write_wav(root / path)
    (root / "list.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return root / "list.csv"


def test_csv_relative_and_absolute_paths_labels_speakers(tmp_path):
    elsewhere = write_wav(tmp_path / "other" / "z.wav")
    listing = csv_corpus(tmp_path / "yo", ["clips/a.wav,Anger,spk1", "clips/b.wav,joy,spk2",
                                           "clips/sub/c.wav,neutral,", f"{elsewhere},sadness,spk1"])
    rows = read_manifest(prepare_corpus("csv", listing, name="yoruba", language="yo", manifest_dir=tmp_path / "m").manifest)
    by_id = {u.utt_id: u for u in rows}
    # One file lies outside the CSV's folder: ids are relative to the folder holding all of them.
    assert set(by_id) == {"yo/clips/a", "yo/clips/b", "yo/clips/sub/c", "other/z"}
    by_id = {k.removeprefix("yo/"): u for k, u in by_id.items()}
    assert (by_id["clips/a"].emotion, by_id["clips/a"].speaker, by_id["clips/a"].language) == ("angry", "spk1", "yo")
    assert by_id["clips/b"].emotion == "happy"
    assert by_id["clips/sub/c"].speaker == "unknown"
    assert by_id["clips/a"].path == str((tmp_path / "yo" / "clips" / "a.wav").resolve())


def test_csv_of_absolute_paths_gives_ids_relative_to_the_corpus(tmp_path):
    """A list kept apart from its corpus (absolute paths): ids carry no machine layout, only the corpus's own."""
    corpus = tmp_path / "home" / "alice" / "data" / "ravdess"
    files = [write_wav(corpus / f"Actor_0{a}" / f"03-01-0{e}-01-01-01-0{a}.wav") for a in (1, 2) for e in (1, 2)]
    listing = tmp_path / "lists" / "ravdess.csv"
    listing.parent.mkdir()
    listing.write_text("path,label,speaker\n" + "".join(f"{f},{('neutral', 'calm')[i % 2]},{f.parent.name}\n"
                                                        for i, f in enumerate(files)), encoding="utf-8")
    prepared = prepare_corpus("csv", listing, language="en", manifest_dir=tmp_path / "m")
    assert sorted(u.utt_id for u in prepared.utterances) == [
        "Actor_01/03-01-01-01-01-01-01", "Actor_01/03-01-02-01-01-01-01",
        "Actor_02/03-01-01-01-01-01-02", "Actor_02/03-01-02-01-01-01-02"]
    assert all(str(tmp_path).strip("/") not in u.utt_id for u in read_manifest(prepared.manifest))
    assert {u.path for u in prepared.utterances} == {str(f) for f in files}
    # A relative path with ".." inside the CSV's folder is the same file, and the same id, as its plain form.
    (tmp_path / "lists" / "clips").mkdir()
    write_wav(tmp_path / "lists" / "clips" / "a.wav")
    listing.write_text("path,label\nclips/../clips/a.wav,sad\nclips/a.wav,happy\n", encoding="utf-8")
    with pytest.raises(DataError, match="duplicate utterance id 'clips/a'"):
        prepare_corpus("csv", listing, language="en", manifest_dir=tmp_path / "m")


def test_csv_utt_id_column_bom_and_header_case(tmp_path):
    listing = csv_corpus(tmp_path / "c", ["a.wav,sad,u1", "b.wav,fear,u2"], header="Path,Label,UTT_ID")
    listing.write_bytes(b"\xef\xbb\xbf" + listing.read_bytes())
    rows = prepare_corpus("csv", listing, language="yo", manifest_dir=tmp_path / "m").utterances
    assert {u.utt_id: u.emotion for u in rows} == {"u1": "sad", "u2": "fear"}


def test_csv_missing_audio_names_the_file(tmp_path):
    listing = csv_corpus(tmp_path / "c", ["a.wav,sad,s"])
    (tmp_path / "c" / "a.wav").unlink()
    with pytest.raises(DataError, match="audio file listed in list.csv line 2 does not exist") as err:
        prepare_corpus("csv", listing, language="yo", manifest_dir=tmp_path / "m")
    assert err.value.where == str(tmp_path / "c" / "a.wav")


@pytest.mark.parametrize("header, rows, problem, line", [
    ("file,emotion", ["a.wav,sad"], r"malformed CSV: missing column\(s\) path, label", None),
    ("path;label", ["a.wav;sad"], r"missing column\(s\) path, label", None),
    ("path,label", ["a.wav,sad/angry"], "emotion label 'sad/angry' is not a label name", 2),
    ("path,label", ["a.wav,sad", ",sad"], "empty path or label", 3),
    ("path,label", ["a.wav,sad,extra,fields"], "wrong number of fields", 2),
    ("path,label", ["a.txt,sad"], "a.txt is not an audio file", 2),
])
def test_csv_malformed_rows_are_named_by_line(tmp_path, header, rows, problem, line):
    listing = csv_corpus(tmp_path / "c", rows, header=header)
    with pytest.raises(DataError, match=problem) as err:
        prepare_corpus("csv", listing, language="yo", manifest_dir=tmp_path / "m")
    assert err.value.where == (f"{listing.resolve()}:{line}" if line else str(listing.resolve()))


def test_csv_unreadable_missing_or_not_a_file(tmp_path):
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"path,label\n\xff\xfe\x00\x81 not utf-8\n")
    with pytest.raises(DataError, match="unreadable CSV") as err:
        prepare_corpus("csv", binary, language="yo", manifest_dir=tmp_path / "m")
    assert err.value.where == str(binary.resolve())
    with pytest.raises(DataError, match="CSV file does not exist"):
        prepare_corpus("csv", tmp_path / "none.csv", language="yo", manifest_dir=tmp_path / "m")
    with pytest.raises(DataError, match="must be the CSV file"):
        prepare_corpus("csv", tmp_path, language="yo", manifest_dir=tmp_path / "m")
    header_only = csv_corpus(tmp_path / "h", [], header="path,label")
    with pytest.raises(DataError, match="no usable audio found"):
        prepare_corpus("csv", header_only, language="yo", manifest_dir=tmp_path / "m")


def test_csv_duplicate_rows(tmp_path):
    listing = csv_corpus(tmp_path / "c", ["a.wav,sad,s", "b.wav,happy,s", "a.wav,sad,s"])
    with pytest.raises(DataError, match="duplicate utterance id 'a'"):
        prepare_corpus("csv", listing, language="yo", manifest_dir=tmp_path / "m")


def test_cli_folder_with_speaker_pattern(tmp_path):
    root = folder_corpus(tmp_path / "c")
    result = CliRunner().invoke(extract_main, [
        "prepare", "--dataset", "folder", "--root", str(root), "--language", "sw", "--name", "sw",
        "--speaker-pattern", r"^(s\d)_", "--protocol", "speaker", "--manifest-dir", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "sw: 48 utterances, 4 speakers, language sw (48)" in result.output
    assert "test speakers:" in result.output


def test_summary_counts_agree_in_number(tmp_path):
    root = folder_corpus(tmp_path / "c", labels=("angry",), speakers=("s1",), suffixes=(".wav",))
    first = prepare_corpus("folder", root, language="sw", manifest_dir=tmp_path / "m").summary().splitlines()[0]
    assert first == "folder: 1 utterance, 1 speaker, language sw (1)"
    folder_corpus(root, labels=("angry",), speakers=("s2",), suffixes=(".wav",))
    first = prepare_corpus("folder", root, language="sw", manifest_dir=tmp_path / "m").summary().splitlines()[0]
    assert first == "folder: 2 utterances, 1 speaker, language sw (2)"
