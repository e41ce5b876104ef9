"""Training data for torch: a domain's utterances as a :class:`FeatureDataset` of
:class:`~train.model_io.Example` s, and :class:`ClassBalancedBatchSampler`, whose batches give every
class enough samples for the contrastive loss."""

from __future__ import annotations

import math
from typing import Hashable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from sercore.errors import StoreError

from .augment import SequenceAugment
from .model_io import Example
from .domains import DomainData
from .batch_limits import crop_center, padded_lengths
from .scaling import FeatureScaler, SpeakerScaler


class FeatureDataset(Dataset):
    """The utterances ``indices`` of a domain as :class:`Example` s (tensors built once, in memory).

    ``augment`` (training augmentation, not in the paper; :class:`train.augment.SequenceAugment`): each time an
    utterance is drawn, each of its sequence features (not the inputs of fine-tunable modules such as
    ``ge2e_mel``) is cropped and masked, from a generator seeded with ``seed``.

    ``max_frames`` (feature -> frames, ``train.batch_limits.max_frames``): longer sequences are cropped to their
    central part once, here (the memory bound of ``train --max-seconds``).

    ``speakers`` (speaker name -> index among the fit's training speakers): each example's ``speaker``; -1 for a
    speaker not in it, and for every example without it (``train --speaker-adversarial``).
    """

    def __init__(self, data: DomainData, indices: Sequence[int], classes: Sequence[str], domain: int = 0,
                 scaler: FeatureScaler | SpeakerScaler | None = None, augment: SequenceAugment | None = None, seed: int = 0,
                 max_frames: Mapping[str, int] | None = None, speakers: Mapping[str, int] | None = None):
        index = {c: i for i, c in enumerate(classes)}
        missing = sorted({data.emotions[i] for i in indices} - set(index))
        if missing:
            raise StoreError(data.paths[0].parent, f"emotion(s) {missing} are not among the classes {list(classes)}")
        self.indices = list(indices)
        self.labels = [index[data.emotions[i]] for i in self.indices]
        self.domain = domain
        self.utt_ids = [data.utt_ids[i] for i in self.indices]
        self.speakers = [(speakers or {}).get(data.speakers[i], -1) for i in self.indices]
        self._features = []
        for i in self.indices:
            feats = {}
            for name, arrays in data.features.items():
                a = arrays[i] if scaler is None else scaler(name, arrays[i], i)
                a = crop_center(a, (max_frames or {}).get(name)) if a.ndim == 2 else a
                feats[name] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
            self._features.append(feats)
        self.augment = augment if augment is not None and augment.active else None
        self.inputs = frozenset(data.inputs.values())  # never augmented: their module sees the whole utterance
        self._rng = np.random.default_rng([seed, domain])

    def __len__(self) -> int:
        return len(self.indices)

    def lengths(self) -> list[int]:
        """Per item, its longest sequence in frames (what it pads a batch to; 0 with embeddings only)."""
        return [padded_lengths(f) for f in self._features]

    def __getitem__(self, k: int) -> Example:
        features = self._features[k]
        if self.augment is not None:
            features = {name: self.augment(a, self._rng) if a.ndim == 2 and name not in self.inputs else a
                        for name, a in features.items()}
        return Example(self.utt_ids[k], features, self.labels[k], self.domain, self.speakers[k])


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches holding ``per_class`` examples of every group (class, or (domain, class) pair).

    The contrastive loss only uses emotions with more than five samples in a batch, and with ordinary
    shuffled batches the small classes rarely reach that. So each batch takes ``per_class`` examples
    from each group, drawn without replacement from a shuffled pool per group that is refilled when it
    runs out; an epoch has ``ceil(n / batch size)`` batches, i.e. about one pass over the data. Small
    classes are thereby seen more often than large ones (the class prior the classifier learns is
    uniform, which is what UA rewards). Deterministic for a given seed and epoch (:meth:`set_epoch`).

    ``lengths`` (per example, the frames it pads a batch to; not in the paper): the epoch's examples are
    drawn the same way, then regrouped by length: each group's draws are sorted by length and batch b gets every group's
    b-th block of ``per_class``, so a batch holds utterances of one length quantile and pads far less than
    one that holds the longest utterance of the corpus (the batch order is shuffled).
    """

    def __init__(self, groups: Sequence[Hashable], per_class: int = 8, seed: int = 0, n_batches: int | None = None,
                 lengths: Sequence[int] | None = None):
        if per_class < 1:
            raise ValueError("per_class must be at least 1")
        self.per_class = per_class
        self.seed = seed
        self.epoch = 0
        pools: dict[Hashable, list[int]] = {}
        for i, g in enumerate(groups):
            pools.setdefault(g, []).append(i)
        self.pools = [np.array(v) for _, v in sorted(pools.items(), key=lambda kv: str(kv[0]))]
        self.batch_size = per_class * len(self.pools)
        self.n_batches = n_batches or max(1, math.ceil(len(groups) / self.batch_size))
        if lengths is not None and len(lengths) != len(groups):
            raise ValueError(f"{len(lengths)} lengths for {len(groups)} examples")
        self.lengths = None if lengths is None else np.asarray(lengths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        queues = [list(rng.permutation(p)) for p in self.pools]
        batches: list[list[list[int]]] = []  # per batch, per group: its per_class draws
        for _ in range(self.n_batches):
            drawn: list[list[int]] = []
            for q, pool in zip(queues, self.pools):
                while len(q) < self.per_class:
                    q.extend(rng.permutation(pool))
                drawn.append([int(i) for i in q[: self.per_class]])
                del q[: self.per_class]
            if self.lengths is None:
                batch = [i for d in drawn for i in d]
                yield [batch[i] for i in rng.permutation(len(batch))]
            else:
                batches.append(drawn)
        if self.lengths is None:
            return
        by_group = []  # per group: the epoch's draws sorted by length, one row per batch
        for g in range(len(self.pools)):
            drawn = np.asarray([b[g] for b in batches], dtype=np.int64).ravel()
            by_group.append(drawn[np.argsort(self.lengths[drawn], kind="stable")].reshape(self.n_batches, self.per_class))
        for b in rng.permutation(self.n_batches):
            batch = [int(i) for rows in by_group for i in rows[b]]
            yield [batch[i] for i in rng.permutation(len(batch))]

