"""EMOVO, CaFE and IEMOCAP layouts: parsing, label mapping, speakers and their bad-input errors."""

import unicodedata
from collections import Counter

import pytest

from extract.prepare import prepare_corpus
from sercore.errors import DataError
from sercore.manifest import read_manifest
from sercore.splits import check_disjoint

from tests._prepare_helpers import cafe_corpus, emovo_corpus, iemocap_corpus, write_wav


# --- EMOVO -------------------------------------------------------------------------------------------

def test_emovo_codes_and_speakers(tmp_path):
    root = emovo_corpus(tmp_path / "emovo")
    rows = read_manifest(prepare_corpus("emovo", root, manifest_dir=tmp_path / "m").manifest)
    assert len(rows) == 3 * 7 * 2
    by_id = {u.utt_id: u for u in rows}
    assert (by_id["dis-f1-b1"].emotion, by_id["dis-f1-b1"].speaker, by_id["dis-f1-b1"].language) == ("disgust", "f1", "it")
    assert {by_id[f"{c}-m1-l2"].emotion for c in ("gio", "neu", "pau", "rab", "sor", "tri")} == \
        {"happy", "neutral", "fear", "angry", "surprise", "sad"}
    assert Counter(u.emotion for u in rows) == {e: 6 for e in ("disgust", "happy", "neutral", "fear", "angry", "surprise", "sad")}


def test_emovo_unknown_code_and_foreign_names(tmp_path):
    root = emovo_corpus(tmp_path / "emovo")
    write_wav(root / "f1" / "take1.wav")
    prepared = prepare_corpus("emovo", root, manifest_dir=tmp_path / "m")
    assert [s.path for s in prepared.skipped] == [str((root / "f1" / "take1.wav").resolve())]
    bad = write_wav(root / "f1" / "ans-f1-b1.wav")
    with pytest.raises(DataError, match="unknown EMOVO emotion code 'ans'") as err:
        prepare_corpus("emovo", root, manifest_dir=tmp_path / "m")
    assert err.value.where == str(bad.resolve())


# --- CaFE --------------------------------------------------------------------------------------------

def test_cafe_folders_in_any_spelling_and_intensities(tmp_path):
    root = cafe_corpus(tmp_path / "CaFE")
    prepared = prepare_corpus("cafe", root, manifest_dir=tmp_path / "m")
    rows = prepared.utterances
    # 6 emotions x 2 intensities + neutral without intensity, x 3 speakers x 2 texts.
    assert len(rows) == (6 * 2 + 1) * 3 * 2
    counts = Counter(u.emotion for u in rows)
    assert counts == {"angry": 12, "disgust": 12, "happy": 12, "fear": 12, "surprise": 12, "sad": 12, "neutral": 6}
    by_id = {u.utt_id: u for u in rows}
    assert (by_id["02-C-2-1"].emotion, by_id["02-C-2-1"].speaker, by_id["02-C-2-1"].language) == ("angry", "02", "fr")
    assert by_id["01-D-1-2"].emotion == "disgust"  # NFD folder name
    assert by_id["03-P-1-1"].emotion == "fear"  # upper-case folder name
    assert by_id["01-N-1-1"].emotion == "neutral"
    assert prepared.skipped == []


def test_cafe_accentless_folders_and_a_wrapper_folder(tmp_path):
    root = tmp_path / "download"
    write_wav(root / "CaFE_48k" / "Colere" / "Fort" / "01-C-2-1.wav")
    write_wav(root / "CaFE_48k" / "Degout" / "Faible" / "01-D-1-1.wav")
    write_wav(root / "CaFE_48k" / unicodedata.normalize("NFD", "Colère") / "Faible" / "02-C-1-1.wav")
    write_wav(root / "stray.wav")
    prepared = prepare_corpus("cafe", root, manifest_dir=tmp_path / "m")
    assert {u.utt_id: u.emotion for u in prepared.utterances} == {"01-C-2-1": "angry", "01-D-1-1": "disgust", "02-C-1-1": "angry"}
    assert [s.reason for s in prepared.skipped] == ["name is not CaFE's SS-E-I-T (e.g. 03-C-2-4)"]
    write_wav(root / "04-J-1-1.wav")  # a CaFE name, but no emotion folder says what it is
    assert [s.reason for s in prepare_corpus("cafe", root, manifest_dir=tmp_path / "m").skipped] == \
        ["not inside an emotion folder", "name is not CaFE's SS-E-I-T (e.g. 03-C-2-4)"]


def test_cafe_unknown_folder_names_the_folder(tmp_path):
    root = cafe_corpus(tmp_path / "CaFE")
    write_wav(root / "Amusement" / "Fort" / "01-A-2-1.wav")
    with pytest.raises(DataError, match="unknown CaFE emotion folder 'Amusement'") as err:
        prepare_corpus("cafe", root, manifest_dir=tmp_path / "m")
    assert err.value.where == str((root / "Amusement").resolve())


def test_cafe_initial_must_agree_with_folder_and_be_known(tmp_path):
    root = cafe_corpus(tmp_path / "CaFE")
    bad = write_wav(root / "Joie" / "Fort" / "01-T-2-9.wav")
    with pytest.raises(DataError, match=r"initial 'T' \(sad\) disagrees with its folder \(happy\)") as err:
        prepare_corpus("cafe", root, manifest_dir=tmp_path / "m")
    assert err.value.where == str(bad.resolve())
    bad.unlink()
    write_wav(root / "Joie" / "Fort" / "01-X-2-9.wav")
    with pytest.raises(DataError, match="unknown CaFE emotion initial 'X'"):
        prepare_corpus("cafe", root, manifest_dir=tmp_path / "m")


def test_cafe_non_matching_names_are_listed(tmp_path):
    root = cafe_corpus(tmp_path / "CaFE")
    odd = write_wav(root / "Peur" / "Fort" / "take 3.wav")
    prepared = prepare_corpus("cafe", root, manifest_dir=tmp_path / "m")
    assert [s.path for s in prepared.skipped] == [str(odd.resolve())]
    assert "SS-E-I-T" in prepared.skipped[0].reason


# --- IEMOCAP -----------------------------------------------------------------------------------------

def test_iemocap_four_classes_merged_happy_and_speakers(tmp_path):
    root = iemocap_corpus(tmp_path / "IEMOCAP")
    prepared = prepare_corpus("iemocap", root, manifest_dir=tmp_path / "m")
    rows = {u.utt_id: u for u in prepared.utterances}
    # 2 sessions x 2 dialogs x (neu, hap, exc, ang, sad) kept; fru and xxx skipped.
    assert len(rows) == 2 * 2 * 5
    assert Counter(u.emotion for u in rows.values()) == {"neutral": 4, "happy": 8, "angry": 4, "sad": 4}
    assert rows["Ses01F_impro01_F000"].emotion == "neutral"
    assert rows["Ses01F_impro01_M001"].emotion == "happy"  # hap
    assert rows["Ses01F_impro01_F002"].emotion == "happy"  # exc merged
    assert rows["Ses01F_impro01_M003"].emotion == "angry"
    assert rows["Ses02M_script02_1_F004"].emotion == "sad"
    # The speaker is the session plus the gender of whoever speaks the turn, not of the dialog's first actor.
    assert rows["Ses01F_impro01_M001"].speaker == "Ses01M"
    assert rows["Ses02M_script02_1_F004"].speaker == "Ses02F"
    assert {u.speaker for u in rows.values()} == {"Ses01F", "Ses01M", "Ses02F", "Ses02M"}
    assert {u.language for u in rows.values()} == {"en"}
    assert rows["Ses01F_impro01_F000"].path == str((root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav").resolve())
    reasons = Counter(s.reason for s in prepared.skipped)
    assert reasons == {"label 'fru' is outside the 4-class set": 4, "label 'xxx' is outside the 4-class set": 4}
    # The merge is the four-class protocol's, documented in the preparer, and the summary says so.
    assert [str(m) for m in prepared.merges] == ["excited -> happy (4, iemocap's protocol)"]
    assert "  merged: excited -> happy (4, iemocap's protocol)" in prepared.summary().splitlines()


def test_iemocap_speaker_protocol(tmp_path):
    root = iemocap_corpus(tmp_path / "IEMOCAP", sessions=(1, 2, 3))
    rows = prepare_corpus("iemocap", root, protocol="speaker", manifest_dir=tmp_path / "m").utterances
    check_disjoint([u.utt_id for u in rows], [u.speaker for u in rows], [u.split for u in rows], "speaker")
    assert Counter(u.split for u in rows)["test"] > 0 and Counter(u.split for u in rows)["valid"] > 0


def test_iemocap_unlabelled_audio_is_listed(tmp_path):
    root = iemocap_corpus(tmp_path / "IEMOCAP")
    extra = write_wav(root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F099.wav")
    prepared = prepare_corpus("iemocap", root, manifest_dir=tmp_path / "m")
    assert (str(extra.resolve()), "no label line in dialog/EmoEvaluation") in [(s.path, s.reason) for s in prepared.skipped]


def test_iemocap_unknown_label_names_file_and_line(tmp_path):
    root = iemocap_corpus(tmp_path / "IEMOCAP", extra_lines={1: ["[9.0000 - 9.5000]\tSes01F_impro01_F050\tbor\t[2.0, 2.0, 2.0]"]})
    with pytest.raises(DataError, match="unknown IEMOCAP label 'bor'") as err:
        prepare_corpus("iemocap", root, manifest_dir=tmp_path / "m")
    txt = (root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt").resolve()
    assert err.value.where == f"{txt}:{2 + 7 * 4 + 1}"


def test_iemocap_missing_audio_of_a_kept_label(tmp_path):
    root = iemocap_corpus(tmp_path / "IEMOCAP")
    gone = root / "Session2/sentences/wav/Ses02M_script02_1/Ses02M_script02_1_F004.wav"
    gone.unlink()
    with pytest.raises(DataError, match="audio of Ses02M_script02_1_F004 .* is missing") as err:
        prepare_corpus("iemocap", root, manifest_dir=tmp_path / "m")
    assert err.value.where == str(gone.resolve())


def test_iemocap_root_without_sessions(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match="no Session1..Session5 folders"):
        prepare_corpus("iemocap", tmp_path / "x", manifest_dir=tmp_path / "m")
    (tmp_path / "x" / "Session1").mkdir()
    with pytest.raises(DataError, match="no label files"):
        prepare_corpus("iemocap", tmp_path / "x", manifest_dir=tmp_path / "m")
