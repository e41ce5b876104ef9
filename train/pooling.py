"""Pooled statistics: one fixed-length vector per utterance from the stored features.

The input of the linear heads (``train --model logreg|linsvm|rbfsvm``, :mod:`train.pooled_heads`), of every simple
reference model in ``bench/`` and of the linear probes, defined once here:

- a sequence feature (``kind == "sequence"``, frames x dim) gives the mean and the standard deviation over
  frames of the frames and of their deltas (librosa's regression deltas over 9 frames, fewer for short
  sequences): 4 * dim values, in that order;
- a vector feature (``kind == "embedding"``, dim) is kept as it is.

    from train.pooling import pooled_features
    x = pooled_features(data, ["mfcc", "ge2e"])    # (utterances, 4 * 40 + 256)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: librosa's default delta window; shorter sequences use the largest odd width that fits (3 at least).
DELTA_WIDTH = 9


def deltas(frames: np.ndarray, width: int = DELTA_WIDTH) -> np.ndarray:
    """(frames, dim) -> (frames, dim): regression deltas along time; zeros for sequences under 3 frames."""
    import librosa

    n = frames.shape[0]
    width = min(width, n if n % 2 else n - 1)
    if width < 3:
        return np.zeros_like(frames)
    return librosa.feature.delta(frames.T, width=width, axis=-1).T.astype(frames.dtype, copy=False)


def sequence_statistics(frames: np.ndarray) -> np.ndarray:
    """(frames, dim) -> (4 * dim,): mean and std of the frames, then mean and std of their deltas."""
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError(f"expected a non-empty (frames, dim) array, got shape {frames.shape}")
    d = deltas(frames)
    return np.concatenate([frames.mean(0), frames.std(0), d.mean(0), d.std(0)])


def pool(array: np.ndarray, kind: str) -> np.ndarray:
    """One utterance's stored feature -> its pooled vector (statistics of a sequence; a vector as it is)."""
    if kind == "sequence":
        return sequence_statistics(array)
    if kind == "embedding":
        return np.asarray(array, dtype=np.float32).reshape(-1)
    raise ValueError(f"unknown feature kind {kind!r} (expected 'sequence' or 'embedding')")


def pooled_feature(arrays: Sequence[np.ndarray], kind: str) -> np.ndarray:
    """Utterances' arrays of one feature -> (utterances, pooled dim)."""
    return np.stack([pool(a, kind) for a in arrays])


def pooled_features(data, features: Sequence[str]) -> np.ndarray:
    """``data`` (a :class:`train.domains.DomainData`) -> (utterances, total pooled dim), features side by side
    in the given order, rows in ``data.utt_ids`` order."""
    return np.concatenate([pooled_feature(data.features[f], data.kinds[f]) for f in features], axis=1)
