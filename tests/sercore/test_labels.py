"""Labels: spellings fold together, everything else is a class of its own, and merges happen only when asked."""

from collections import Counter

import pytest
from click.testing import CliRunner

from extract.cli import main as extract_main
from extract.prepare import prepare_corpus
from sercore.errors import DataError
from sercore.labels import EMOTIONS, is_canonical, normalise_label, parse_merges, sorted_labels

from tests._prepare_helpers import iemocap_corpus, ravdess_corpus


@pytest.mark.parametrize("raw, label", [
    ("Anger", "angry"), ("colère", "angry"), ("COLE\u0300RE", "angry"), (" Tristezza ", "sad"), ("fearful", "fear"),
    ("Surprised", "surprise"), ("neutro", "neutral"),
    # outside the built-in eight: kept, never folded into a neighbour
    ("calm", "calm"), ("Calm", "calm"), ("exc", "excited"), ("Frustration", "frustrated"), ("contemptuous", "contempt"),
    ("Mépris", "mépris"), ("Very  Happy", "very happy"), ("狂喜", "狂喜"), ("level_3", "level_3"),
])
def test_spellings_fold_together_and_other_labels_stay_their_own(raw, label):
    assert normalise_label(raw) == label and is_canonical(label) and not is_canonical(f" {label}")


def test_no_alias_merges_two_emotions():
    """calm, excited and frustrated were once aliases of neutral/happy: a merge the user never asked for."""
    assert [normalise_label(x) for x in ("calm", "excited", "frustrated")] == ["calm", "excited", "frustrated"]


@pytest.mark.parametrize("raw", ["", "  ", "calm=neutral", "sad,happy", "sad/angry", "-x", "zero\u200bwidth", "_", "a\x00b"])
def test_text_that_cannot_name_a_class_is_refused(raw):
    with pytest.raises(DataError, match="is not a label name") as err:
        normalise_label(raw, where="list.csv:7")
    assert err.value.where == "list.csv:7"


def test_class_order_is_the_vocabulary_then_the_others_sorted():
    assert sorted_labels(["contempt", "sad", "calm", "neutral", "sad"]) == ["neutral", "sad", "calm", "contempt"]
    assert sorted_labels(EMOTIONS[::-1]) == list(EMOTIONS)


def test_merges_are_parsed_canonical_and_consistent():
    assert parse_merges(["Calm=neutral", "excited=happy, frustrated=angry", ""]) == \
        {"calm": "neutral", "excited": "happy", "frustrated": "angry"}
    for specs, problem in ((["calm"], "not SOURCE=TARGET"), (["=neutral"], "not SOURCE=TARGET"),
                           (["calm=Calm"], "merges 'calm' into itself"),
                           (["calm=neutral", "calm=sad"], "'calm' is merged into both 'neutral' and 'sad'"),
                           (["calm=neutral,neutral=sad"], "'neutral' is both merged into 'sad' and a merge target"),
                           (["calm=neu/tral"], "is not a label name")):
        with pytest.raises(DataError, match=problem):
            parse_merges(specs)


def test_a_merge_of_a_label_no_utterance_has_is_refused(tmp_path):
    """A typo in --merge would otherwise change nothing, without a word."""
    root = ravdess_corpus(tmp_path / "r", actors=(1,))
    with pytest.raises(DataError, match="--merge: clam=neutral: no utterance of .* is labelled 'clam'"):
        prepare_corpus("ravdess", root, merge=["clam=neutral"], manifest_dir=tmp_path / "m")


def test_user_merges_meet_the_preparer_documented_ones(tmp_path):
    root = iemocap_corpus(tmp_path / "IEMOCAP")
    with pytest.raises(DataError, match="iemocap already merges 'excited' into 'happy'"):
        prepare_corpus("iemocap", root, merge=["excited=neutral"], manifest_dir=tmp_path / "m")
    with pytest.raises(DataError, match="'happy' is both merged into 'angry' and a merge target"):
        prepare_corpus("iemocap", root, merge=["happy=angry"], manifest_dir=tmp_path / "m")
    prepared = prepare_corpus("iemocap", root, merge={"sad": "neutral"}, manifest_dir=tmp_path / "m")
    assert Counter(u.emotion for u in prepared.utterances) == {"neutral": 8, "happy": 8, "angry": 4}
    assert [str(m) for m in prepared.merges] == ["excited -> happy (4, iemocap's protocol)", "sad -> neutral (4, --merge)"]


def test_cli_refuses_a_malformed_merge_as_a_usage_error(tmp_path):
    root = ravdess_corpus(tmp_path / "r", actors=(1,))
    result = CliRunner().invoke(extract_main, ["prepare", "--dataset", "ravdess", "--root", str(root),
                                               "--manifest-dir", str(tmp_path / "m"), "--merge", "calm"])
    assert result.exit_code == 2
    assert "Invalid value for '--merge': 'calm' is not SOURCE=TARGET (e.g. --merge calm=neutral)" in result.output
    assert not (tmp_path / "m").exists()


def test_cli_merge_that_does_not_apply_is_one_line_and_a_usage_error(tmp_path):
    root = ravdess_corpus(tmp_path / "r", actors=(1,))
    result = CliRunner().invoke(extract_main, ["prepare", "--dataset", "ravdess", "--root", str(root),
                                               "--manifest-dir", str(tmp_path / "m"), "--merge", "clam=neutral"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --merge: clam=neutral: no utterance of {root} is labelled 'clam' "
        "(labels: neutral, happy, angry, sad, fear, disgust, surprise, calm)"]
