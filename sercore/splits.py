"""Seeded train/valid/test assignments for the two evaluation protocols.

Both the preparer (which writes one assignment into the manifest) and the trainer (which draws
one per seed or fold) call these functions, so a given seed always means the same split.

- ``random`` is the paper's protocol (section 3): 20% of the utterances go to test, then 20% of
  the rest to validation, stratified by emotion so every class keeps its share.
- ``speaker`` is speaker-independent: speakers are dealt into folds; fold ``k`` is the test set,
  fold ``k + 1`` the validation set, the rest train. No speaker is ever in two splits.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

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


def speaker_folds(speakers: Sequence[str], n_folds: int | None = None, seed: int = 0) -> dict[str, int]:
    """Deal the speakers (shuffled by ``seed``) round-robin into ``n_folds`` folds; default one speaker per fold."""
    unique = sorted(set(speakers))
    if n_folds is None:
        n_folds = len(unique)
    if not 3 <= n_folds <= len(unique):
        raise ValueError(f"speaker-independent splits need 3 to {len(unique)} folds for {len(unique)} speakers, got {n_folds}")
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[j]: rank % n_folds for rank, j in enumerate(order)}


def speaker_split(speakers: Sequence[str], fold: int, n_folds: int | None = None, seed: int = 0) -> list[str]:
    """Test = speakers of ``fold``, valid = speakers of the next fold, train = everyone else."""
    folds = speaker_folds(speakers, n_folds, seed)
    n = max(folds.values()) + 1
    fold %= n
    valid_fold = (fold + 1) % n
    return ["test" if folds[s] == fold else "valid" if folds[s] == valid_fold else "train" for s in speakers]


def check_disjoint(utt_ids: Sequence[str], speakers: Sequence[str], splits: Sequence[str], protocol: str) -> None:
    """Leakage guard: raise if an utterance (any protocol) or a speaker (speaker protocol) is in two splits."""
    seen: dict[str, str] = {}
    for u, sp in zip(utt_ids, splits):
        if seen.setdefault(u, sp) != sp:
            raise ValueError(f"leakage: utterance {u!r} is in both {seen[u]!r} and {sp!r}")
    if len(seen) != len(utt_ids):
        raise ValueError("leakage: duplicate utterance ids across splits")
    if protocol == "speaker":
        where: dict[str, str] = {}
        for s, sp in zip(speakers, splits):
            if where.setdefault(s, sp) != sp:
                raise ValueError(f"leakage: speaker {s!r} is in both {where[s]!r} and {sp!r} under the speaker-independent protocol")
