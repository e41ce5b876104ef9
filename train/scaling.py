"""Standardisation of features: with training-split statistics (:class:`FeatureScaler`) or per speaker
(:class:`SpeakerScaler`) for the network's frames and vectors; :func:`standardise` and
:func:`speaker_standardised` for pooled vectors (the heads of ``train --model logreg|linsvm|rbfsvm``, transfer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .domains import DomainData


@dataclass
class FeatureScaler:
    """Per-dimension standardisation with statistics of the training split only (frames pooled for sequences)."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @classmethod
    def fit(cls, data: DomainData, indices: Sequence[int], skip: Sequence[str] = ()) -> "FeatureScaler":
        mean, std = {}, {}
        for name, arrays in data.features.items():
            if name in skip:
                continue
            rows = np.concatenate([np.atleast_2d(arrays[i]) for i in indices]).astype(np.float64)
            mean[name] = rows.mean(0).astype(np.float32)
            std[name] = np.maximum(rows.std(0), 1e-5).astype(np.float32)
        return cls(mean, std)

    def __call__(self, name: str, array: np.ndarray, index: int | None = None) -> np.ndarray:
        """``array`` of feature ``name`` (utterance ``index`` of the domain, unused here) standardised."""
        if name not in self.mean:
            return array
        return (array - self.mean[name]) / self.std[name]


@dataclass
class SpeakerScaler:
    """Per-speaker standardisation (not in the paper): each utterance with its own speaker's statistics.

    The statistics of a speaker come from all of that speaker's utterances, whatever their split, and use
    no label: the usual speaker normalisation of emotion recognition, which needs some unlabelled audio of
    every speaker, the test speakers included. It removes what is constant within a speaker (vocal tract,
    recording set-up, and most of a speaker embedding such as GE2E), so the model learns how a speaker's
    emotional speech departs from that speaker's average.
    """

    by_speaker: dict[str, FeatureScaler]
    speakers: list[str]  # speaker of every utterance of the domain, by index

    @classmethod
    def fit(cls, data: DomainData, skip: Sequence[str] = ()) -> "SpeakerScaler":
        groups: dict[str, list[int]] = {}
        for i, speaker in enumerate(data.speakers):
            groups.setdefault(speaker, []).append(i)
        return cls({sp: FeatureScaler.fit(data, idx, skip) for sp, idx in groups.items()}, list(data.speakers))

    def __call__(self, name: str, array: np.ndarray, index: int | None = None) -> np.ndarray:
        if index is None:
            raise ValueError("per-speaker standardisation needs the utterance's index")
        return self.by_speaker[self.speakers[index]](name, array)


def standardise(x: np.ndarray, unlabelled: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x standardised, mean, scale) with the statistics of the ``unlabelled`` rows (scale 1 where constant)."""
    mean, std = unlabelled.mean(0), unlabelled.std(0)
    scale = np.where(std > 1e-8, std, 1.0)
    return (x - mean) / scale, mean, scale


def speaker_standardised(x: np.ndarray, speakers: Sequence[str], rows: np.ndarray | None = None) -> np.ndarray:
    """Pooled vectors (n, dim), each speaker's standardised with the statistics of that speaker's ``rows``
    (default: all of them; no label is used); a speaker with fewer than two of ``rows`` with those of all ``rows``.

    The per-speaker normalisation of ``--speaker-norm`` for the heads: transductive, as :class:`SpeakerScaler`
    (a test speaker's statistics come from that speaker's unlabelled test audio)."""
    speakers = np.asarray(speakers)
    rows = np.arange(len(x)) if rows is None else np.asarray(rows, dtype=np.int64)
    out = standardise(x, x[rows])[0]
    for s in np.unique(speakers):
        own = rows[speakers[rows] == s]
        if len(own) >= 2:
            mask = speakers == s
            out[mask] = standardise(x[mask], x[own])[0]
    return out
