"""Seeded train/valid/test assignments for the two evaluation protocols.

Both the preparer (which writes one assignment into the manifest) and the trainer (which draws
one per seed or fold) call these functions, so a given seed always means the same split.

- ``random`` is the paper's protocol (section 3): 20% of the utterances go to test, then 20% of
  the rest to validation, stratified by emotion so every class keeps its share.
- ``speaker`` is speaker-independent: speakers are dealt into folds; fold ``k`` is the test set,
  fold ``k + 1`` the validation set, the rest train. No speaker is ever in two splits. Given the
  utterances' emotions, the speakers are dealt so that every fold has every emotion where the corpus
  allows: the plain seeded deal when it already does (the folds of balanced corpora such as EmoDB, EMOVO
  and RAVDESS), else a grouped, stratified deal when that covers more (see :func:`speaker_folds`).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal, Sequence

import numpy as np

from .labels import sorted_labels

Protocol = Literal["random", "speaker"]
PROTOCOLS: tuple[str, ...] = ("random", "speaker")


def random_split(labels: Sequence[str], seed: int, test_fraction: float = 0.2, valid_fraction: float = 0.2) -> list[str]:
    """Stratified split: for each label, round(n * test_fraction) test items, then round(rest * valid_fraction) valid."""
    rng = np.random.default_rng(seed)
    labels = list(labels)
    out = ["train"] * len(labels)
    for label in sorted(set(labels)):
        idx = np.array([i for i, lab in enumerate(labels) if lab == label])
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        n_valid = int(round((len(idx) - n_test) * valid_fraction))
        for i in idx[:n_test]:
            out[i] = "test"
        for i in idx[n_test:n_test + n_valid]:
            out[i] = "valid"
    return out


def speaker_folds(speakers: Sequence[str], n_folds: int | None = None, seed: int = 0,
                  emotions: Sequence[str] | None = None) -> dict[str, int]:
    """Deal the speakers (shuffled by ``seed``) round-robin into ``n_folds`` folds; default one speaker per fold.

    With ``emotions`` (utterance ``i`` of ``speakers[i]`` has ``emotions[i]``) and a deal that leaves some fold
    without some emotion, the speakers are dealt again, grouped and stratified (:func:`stratified_speaker_folds`),
    and that deal is kept when its folds hold more (fold, emotion) pairs. A deal whose every fold has every
    emotion is never changed.
    """
    unique = sorted(set(speakers))
    if n_folds is None:
        n_folds = len(unique)
    if not 3 <= n_folds <= len(unique):
        raise ValueError(f"speaker-independent splits need 3 to {len(unique)} folds for {len(unique)} speakers, got {n_folds}")
    order = np.random.default_rng(seed).permutation(len(unique))
    dealt = {unique[j]: rank % n_folds for rank, j in enumerate(order)}
    if emotions is None:
        return dealt
    by_speaker = _emotions_by_speaker(speakers, emotions)
    covered = _coverage(dealt, by_speaker)
    if covered == n_folds * len({e for c in by_speaker.values() for e in c}):
        return dealt
    stratified = stratified_speaker_folds(speakers, emotions, n_folds, seed)
    return stratified if _coverage(stratified, by_speaker) > covered else dealt


def stratified_speaker_folds(speakers: Sequence[str], emotions: Sequence[str], n_folds: int, seed: int = 0) -> dict[str, int]:
    """Speakers dealt into ``n_folds`` folds so that each fold has every emotion where the corpus allows.

    Grouped (a speaker's utterances stay together) and stratified, greedily: speakers holding the rarest
    emotions first (ties in the order shuffled by ``seed``), each into the fold that most lacks its emotions
    (an emotion weighs 1 / the number of speakers acting it), ties to the fold with the fewest speakers, then
    the fewest utterances. An empty fold lacks everything, so no fold stays empty.
    """
    by_speaker = _emotions_by_speaker(speakers, emotions)
    unique = sorted(by_speaker)
    holders = Counter(e for counts in by_speaker.values() for e in counts)
    shuffled = [unique[j] for j in np.random.default_rng(seed).permutation(len(unique))]
    order = sorted(shuffled, key=lambda s: (min(holders[e] for e in by_speaker[s]), -len(by_speaker[s])))
    present: list[set[str]] = [set() for _ in range(n_folds)]
    n_speakers, n_utts = [0] * n_folds, [0] * n_folds
    folds: dict[str, int] = {}
    for s in order:
        def rank(k: int) -> tuple:
            gain = sum(1 / holders[e] for e in by_speaker[s] if e not in present[k])
            return (-gain, n_speakers[k], n_utts[k], k)

        k = min(range(n_folds), key=rank)
        folds[s] = k
        present[k] |= set(by_speaker[s])
        n_speakers[k] += 1
        n_utts[k] += sum(by_speaker[s].values())
    return folds


def missing_emotions(emotions: Sequence[str], splits: Sequence[str], names: Sequence[str] = ("test", "valid")) -> dict[str, list[str]]:
    """The emotions of the whole set that split ``name`` lacks, for each of ``names`` that lacks some (in class order)."""
    every = set(emotions)
    out = {}
    for name in names:
        lacking = every - {e for e, s in zip(emotions, splits) if s == name}
        if lacking:
            out[name] = sorted_labels(lacking)
    return out


def _emotions_by_speaker(speakers: Sequence[str], emotions: Sequence[str]) -> dict[str, Counter]:
    if len(speakers) != len(emotions):
        raise ValueError(f"{len(speakers)} speakers for {len(emotions)} emotions")
    by_speaker: dict[str, Counter] = {}
    for s, e in zip(speakers, emotions):
        by_speaker.setdefault(s, Counter())[e] += 1
    return by_speaker


def _coverage(folds: dict[str, int], by_speaker: dict[str, Counter]) -> int:
    """How many (fold, emotion) pairs the folds hold."""
    return len({(k, e) for s, k in folds.items() for e in by_speaker[s]})


def speaker_split(speakers: Sequence[str], fold: int, n_folds: int | None = None, seed: int = 0,
                  emotions: Sequence[str] | None = None) -> list[str]:
    """Test = speakers of ``fold``, valid = speakers of the next fold, train = everyone else
    (speakers dealt by :func:`speaker_folds`, stratified by ``emotions`` when given)."""
    folds = speaker_folds(speakers, n_folds, seed, emotions)
    n = max(folds.values()) + 1
    fold %= n
    valid_fold = (fold + 1) % n
    return ["test" if folds[s] == fold else "valid" if folds[s] == valid_fold else "train" for s in speakers]


def check_disjoint(utt_ids: Sequence[str], speakers: Sequence[str], splits: Sequence[str], protocol: str) -> None:
    """Leakage guard: raise if the three lists are not parallel (one entry per utterance), if an utterance id is
    listed twice (any protocol), or if a speaker is in two splits (speaker protocol)."""
    if not len(utt_ids) == len(speakers) == len(splits):
        raise ValueError(f"{len(utt_ids)} utterance ids, {len(speakers)} speakers and {len(splits)} splits: "
                         "a split needs one speaker and one split per utterance")
    seen: dict[str, str] = {}
    for u, sp in zip(utt_ids, splits):
        if u in seen:
            where = f"both {seen[u]!r} and {sp!r}" if seen[u] != sp else f"{sp!r} twice"
            raise ValueError(f"leakage: utterance {u!r} is in {where}")
        seen[u] = sp
    if protocol == "speaker":
        where: dict[str, str] = {}
        for s, sp in zip(speakers, splits):
            if where.setdefault(s, sp) != sp:
                raise ValueError(f"leakage: speaker {s!r} is in both {where[s]!r} and {sp!r} under the speaker-independent protocol")
