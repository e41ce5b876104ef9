"""One run's split of a domain under a protocol: which utterances train, validate and test (leakage checked)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

from sercore.errors import StoreError
from sercore.manifest import SPLITS
from sercore.splits import PROTOCOLS, check_disjoint, missing_emotions, random_split, speaker_split

from .domains import DomainData


#: The seed of the random protocol that is the split the stores were written with (train.h5 / valid.h5 / test.h5,
#: i.e. the manifest's, whatever seed prepared it or however it was edited); other seeds draw a split.
STORES_SEED = 0


def split_source(protocol: str, run: int) -> str:
    """In words, which split run value ``run`` (a seed, or a fold) of ``protocol`` trains and tests on."""
    if protocol == "random":
        return "the stores' split (train.h5, valid.h5, test.h5)" if run == STORES_SEED else f"random split drawn with seed {run}"
    return f"speaker fold {run}"


def split_key(protocol: str, first_seed: int, run: int) -> int:
    """What run number ``run`` of an experiment draws its split with: seed ``first_seed + run`` under the random
    protocol, speaker fold ``run`` under the speaker one (the value :func:`draw_split` and :func:`split_source`
    take)."""
    return first_seed + run if protocol == "random" else run


def n_runs(data: DomainData, protocol: str, seeds: int, n_folds: int | None = None) -> int:
    """Runs of an experiment: ``seeds`` under the random protocol, every speaker fold under the speaker one."""
    if protocol == "random":
        return seeds
    speakers = len(set(data.speakers))
    return n_folds or speakers


def draw_split(data: DomainData, protocol: str, run: int, n_folds: int | None = None) -> list[str]:
    """The split of each utterance for run ``run`` (a seed, or a fold), checked for leakage.

    ``random``: seed :data:`STORES_SEED` (0) is the split the stores were written with (the manifest's, whatever
    seed prepared it); any other seed ``run`` is :func:`sercore.splits.random_split` with that seed over the
    utterances in ``utt_id`` order. ``speaker``: fold ``run`` of :func:`sercore.splits.speaker_split` is the test set,
    fold ``run + 1`` the validation set (speakers dealt with seed 0, one speaker per fold by default).
    """
    where = Path(data.paths[0]).parent
    if protocol == "random":
        splits = list(data.store_splits) if run == STORES_SEED else random_split(data.emotions, seed=run)
    elif protocol == "speaker":
        try:
            splits = speaker_split(data.speakers, fold=run, n_folds=n_folds, seed=0, emotions=data.emotions)
        except ValueError as exc:
            raise StoreError(where, f"speaker protocol impossible for language {data.spec.language!r}: {exc}") from None
    else:
        raise StoreError(where, f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    try:  # ids are unique here (load_domain refuses a repeat): this checks the split, one per utterance, whole speakers
        check_disjoint(data.utt_ids, data.speakers, splits, protocol)
    except ValueError as exc:
        raise StoreError(where, str(exc)) from None
    for name in SPLITS:
        if name not in splits:
            if protocol == "random" and run == STORES_SEED:
                raise StoreError(where, f"the stores' split (seed {run} of the random protocol) has no {name} utterance of "
                                        f"language {data.spec.language!r}")
            raise StoreError(where, f"run {run} of the {protocol} protocol leaves the {name} split empty")
    if protocol == "speaker":
        report_missing_emotions(data, splits, run)
    return splits


def report_missing_emotions(data: DomainData, splits: Sequence[str], run: int) -> None:
    """One warning line when fold ``run``'s test or validation set lacks some of the domain's emotions (its UA
    then averages over the emotions present, and the epoch is chosen on those)."""
    lacking = missing_emotions(data.emotions, splits)
    if lacking:
        logging.getLogger("mgser.train").warning(
            "%s fold %d: %s (no speaker of the split acts them; UA averages over the emotions present)",
            data.spec.language, run, "; ".join(f"{name} lacks {', '.join(e)}" for name, e in lacking.items()))



def split_indices(splits: Sequence[str]) -> Mapping[str, list[int]]:
    return {name: [i for i, s in enumerate(splits) if s == name] for name in SPLITS}


def few_shot(indices: Sequence[int], emotions: Sequence[str], k: int, seed: int) -> list[int]:
    """At most ``k`` of ``indices`` per emotion (``emotions[i]`` is utterance i's), drawn with ``seed``; in
    ascending order. The draws are nested: the utterances kept at k are also kept at every larger k."""
    import numpy as np

    by_emotion: dict[str, list[int]] = {}
    for i in sorted(indices):
        by_emotion.setdefault(emotions[i], []).append(i)
    rng = np.random.default_rng(seed)
    kept = [i for e in sorted(by_emotion) for i in rng.permutation(by_emotion[e])[:k].tolist()]
    return sorted(kept)
