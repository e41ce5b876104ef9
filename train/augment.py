"""Training augmentation (none of it is in the paper; all of it is off in ``--preset paper``).

* :class:`SequenceAugment`: per utterance, each time it is drawn, on each sequence feature (not on the input of a
  fine-tuned module such as ``ge2e_mel``, which its module sees as extracted): a random contiguous crop
  (``--crop``), then SpecAugment-style masks (Park et al. 2019): one span of frames (``--time-mask``) and one
  band of feature dimensions (``--feature-mask``) set to 0, which is the training mean once features are
  standardised. Utterance embeddings (GE2E, BYOL) are left as they are.
* :func:`mixup` (``--mixup ALPHA``, Zhang et al. 2018): each batch becomes lam * itself + (1 - lam) * a shuffle of
  its rows within each language, lam ~ Beta(ALPHA, ALPHA) per batch; the losses are the same mixture of the two
  label sets (:class:`Mixed`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .model_io import Batch


@dataclass(frozen=True)
class SequenceAugment:
    """Crop and masks for one (frames, dim) sequence; fractions in [0, 1], 0 turns each off."""

    crop: float = 0.0  # keep a contiguous part of at least this fraction of the frames
    time_mask: float = 0.0  # then zero one span of up to this fraction of the (kept) frames
    feature_mask: float = 0.0  # and one band of up to this fraction of the dimensions

    def __post_init__(self) -> None:
        for name in ("crop", "time_mask", "feature_mask"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {value}")

    @property
    def active(self) -> bool:
        return self.crop > 0 or self.time_mask > 0 or self.feature_mask > 0

    def __call__(self, a: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """``a`` (frames, dim) -> an augmented (frames', dim) tensor (``a`` itself is never written to)."""
        n, dim = a.shape
        if self.crop > 0 and n > 1:
            keep = int(rng.integers(max(1, int(np.ceil(self.crop * n))), n + 1))
            start = int(rng.integers(0, n - keep + 1))
            a = a[start:start + keep]
            n = keep
        if self.time_mask > 0 or self.feature_mask > 0:
            a = a.clone()
            for axis, size, fraction in ((0, n, self.time_mask), (1, dim, self.feature_mask)):
                width = int(rng.integers(0, int(fraction * size) + 1)) if fraction > 0 else 0
                if width:
                    start = int(rng.integers(0, size - width + 1))
                    a.narrow(axis, start, width).zero_()
        return a


@dataclass
class Mixed:
    """A mixed batch: ``batch`` = lam * rows + (1 - lam) * rows ``partner``; ``labels`` are the partners' labels."""

    batch: Batch
    partner: torch.Tensor  # (batch,) int64: the row each row was mixed with (same language)
    labels: torch.Tensor  # (batch,) the partner rows' labels
    lam: float


def mixup(batch: Batch, alpha: float, rng: np.random.Generator) -> Mixed:
    """Mix every row with a random row of the same language (``batch.domains``); sequences are mixed frame by frame
    over their zero-padded extent, so a mixed row is as long as the longer of its two."""
    lam = float(rng.beta(alpha, alpha))
    domains = batch.domains.cpu().numpy()
    partner = np.arange(len(domains))
    for d in np.unique(domains):
        rows = np.flatnonzero(domains == d)
        partner[rows] = rows[rng.permutation(len(rows))]
    index = torch.from_numpy(partner)
    sequences, lengths = {}, {}
    for name, x in batch.sequences.items():
        sequences[name] = lam * x + (1.0 - lam) * x[index.to(x.device)]
        lengths[name] = torch.maximum(batch.lengths[name], batch.lengths[name][index])
    embeddings = {name: lam * x + (1.0 - lam) * x[index.to(x.device)] for name, x in batch.embeddings.items()}
    mixed = replace(batch, sequences=sequences, lengths=lengths, embeddings=embeddings, utt_ids=list(batch.utt_ids))
    return Mixed(mixed, index, batch.labels[index.to(batch.labels.device)], lam)
