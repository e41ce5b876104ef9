"""Standardisation of features: with training-split statistics (:class:`FeatureScaler`) or per speaker
(:class:`SpeakerScaler`)."""

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

