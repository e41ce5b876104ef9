"""Both split protocols: proportions, stratification, determinism and, above all, no leakage."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sercore.splits import check_disjoint, random_split, speaker_folds, speaker_split


def test_random_split_is_the_papers_protocol_per_class():
    labels = ["a"] * 50 + ["b"] * 20 + ["c"] * 5
    splits = random_split(labels, seed=0)
    by_class = {lab: Counter(s for s, label in zip(splits, labels) if label == lab) for lab in "abc"}
    assert by_class["a"] == {"test": 10, "valid": 8, "train": 32}
    assert by_class["b"] == {"test": 4, "valid": 3, "train": 13}
    assert by_class["c"] == {"test": 1, "valid": 1, "train": 3}


def test_random_split_is_seeded():
    labels = ["a", "b"] * 30
    assert random_split(labels, 7) == random_split(labels, 7)
    assert random_split(labels, 7) != random_split(labels, 8)


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.sampled_from("abcd"), min_size=1, max_size=80), seed=st.integers(0, 2**16))
def test_random_split_assigns_everything_once(labels, seed):
    splits = random_split(labels, seed)
    assert len(splits) == len(labels) and set(splits) <= {"train", "valid", "test"}
    for lab in set(labels):
        n = labels.count(lab)
        assert Counter(s for s, label in zip(splits, labels) if label == lab)["test"] == int(round(n * 0.2))


@settings(max_examples=60, deadline=None)
@given(n_speakers=st.integers(3, 12), per_speaker=st.integers(1, 5), seed=st.integers(0, 1000), fold=st.integers(0, 20))
def test_speaker_split_never_shares_a_speaker(n_speakers, per_speaker, seed, fold):
    speakers = [f"s{i}" for i in range(n_speakers) for _ in range(per_speaker)]
    splits = speaker_split(speakers, fold=fold, seed=seed)
    check_disjoint([f"u{i}" for i in range(len(speakers))], speakers, splits, "speaker")
    assert {"train", "valid", "test"} == set(splits)


def test_speaker_folds_cover_every_speaker_once_per_round():
    speakers = [f"s{i}" for i in range(10)]
    folds = speaker_folds(speakers, n_folds=5, seed=1)
    assert Counter(folds.values()) == {k: 2 for k in range(5)}
    tested = Counter(s for k in range(5) for s, sp in zip(speakers, speaker_split(speakers, k, 5, seed=1)) if sp == "test")
    assert tested == {s: 1 for s in speakers}  # leave-speakers-out: each speaker is tested exactly once


def test_speaker_folds_need_three_speakers():
    with pytest.raises(ValueError, match="need 3 to 2 folds"):
        speaker_folds(["a", "b", "a"])
    with pytest.raises(ValueError, match="need 3 to 4 folds"):
        speaker_folds(["a", "b", "c", "d"], n_folds=5)


def test_check_disjoint_catches_leaks():
    check_disjoint(["u1", "u2"], ["a", "a"], ["train", "test"], "random")
    with pytest.raises(ValueError, match="speaker 'a' is in both"):
        check_disjoint(["u1", "u2"], ["a", "a"], ["train", "test"], "speaker")
    with pytest.raises(ValueError, match="utterance 'u1' is in both"):
        check_disjoint(["u1", "u1"], ["a", "b"], ["train", "test"], "random")
    with pytest.raises(ValueError, match="duplicate utterance ids"):
        check_disjoint(["u1", "u1"], ["a", "b"], ["train", "train"], "random")
