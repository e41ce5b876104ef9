"""Training augmentation (train/augment.py): SpecAugment-style masks and mixup, on hand-built tensors and batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from train.augment import SequenceAugment, mixup
from train.config import TrainConfig
from train.model_io import Batch, Example, ModelOutput, collate
from train.network_trainer import Trainer


def _zero_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-D boolean array."""
    runs, start = [], None
    for i, v in enumerate(list(mask) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def test_masks_zero_one_span_of_frames_and_one_band_of_dimensions_within_their_fractions():
    a = torch.arange(1, 1 + 100 * 20, dtype=torch.float32).reshape(100, 20)  # no zero anywhere
    augment = SequenceAugment(time_mask=0.3, feature_mask=0.25)
    rng = np.random.default_rng(0)
    widths = []
    for _ in range(200):
        out = augment(a, rng)
        assert out.shape == a.shape and torch.all(a > 0), "the stored tensor is never written to"
        zero = (out == 0).numpy()
        rows, cols = zero.all(1), zero.all(0)
        row_runs, col_runs = _zero_runs(rows), _zero_runs(cols)
        assert len(row_runs) <= 1 and len(col_runs) <= 1  # one contiguous span, one contiguous band
        t = row_runs[0][1] if row_runs else 0
        f = col_runs[0][1] if col_runs else 0
        assert t <= 30 and f <= 5
        # every zero lies in the masked span or band; every other value is the input's
        expected = a.clone()
        expected[rows] = 0
        expected[:, cols] = 0
        assert torch.equal(out, expected)
        widths.append((t, f))
    assert max(w[0] for w in widths) >= 25 and max(w[1] for w in widths) >= 4  # the widths reach their bounds
    assert min(w[0] for w in widths) == 0  # and include no mask at all
    assert torch.equal(augment(a, np.random.default_rng(5)), augment(a, np.random.default_rng(5)))  # seeded


def test_crop_then_mask_and_the_fractions_are_checked():
    a = torch.ones(40, 3)
    out = SequenceAugment(crop=0.5, time_mask=1.0)(a, np.random.default_rng(3))
    assert 20 <= out.shape[0] <= 40
    assert not SequenceAugment().active and SequenceAugment(feature_mask=0.1).active
    with pytest.raises(ValueError, match="time_mask"):
        SequenceAugment(time_mask=1.5)


def _batch() -> Batch:
    examples = []
    for i, (n, domain, label) in enumerate([(3, 0, 0), (5, 0, 1), (2, 1, 0), (4, 1, 2), (6, 0, 2)]):
        seq = torch.full((n, 2), float(i + 1))
        examples.append(Example(f"u{i}", {"mfcc": seq, "ge2e": torch.full((3,), float(10 * (i + 1)))}, label, domain))
    return collate(examples)


def test_mixup_mixes_each_row_with_a_row_of_its_own_language():
    batch = _batch()
    pairings = set()
    for seed in range(20):
        mixed = mixup(batch, 0.4, np.random.default_rng(seed))
        lam, partner = mixed.lam, mixed.partner.tolist()
        assert 0.0 <= lam <= 1.0 and sorted(partner) == list(range(len(batch)))  # a permutation of the rows
        pairings.add(tuple(partner))
        for i, j in enumerate(partner):
            assert batch.domains[j] == batch.domains[i]  # never across languages
            assert mixed.labels[i] == batch.labels[j]
            assert mixed.batch.lengths["mfcc"][i] == max(batch.lengths["mfcc"][i], batch.lengths["mfcc"][j])
            for kind, name in (("sequences", "mfcc"), ("embeddings", "ge2e")):
                x = getattr(batch, kind)[name]
                assert torch.allclose(getattr(mixed.batch, kind)[name][i], lam * x[i] + (1 - lam) * x[j])
        assert torch.equal(mixed.batch.labels, batch.labels) and torch.equal(mixed.batch.domains, batch.domains)
    assert len(pairings) > 1  # the pairing is drawn
    same = [mixup(batch, 0.4, np.random.default_rng(7)) for _ in range(2)]
    assert same[0].lam == same[1].lam and torch.equal(same[0].partner, same[1].partner)  # and seeded


def test_the_mixup_loss_is_the_same_mixture_of_the_two_label_sets():
    batch = _batch()
    trainer = Trainer(torch.nn.Linear(2, 3), TrainConfig(progress=False, mixup=0.4), [["a", "b", "c"], ["a", "b", "c"]],
                      alphas=[0.0, 0.0])
    mixed = mixup(batch, 0.4, np.random.default_rng(1))
    logits = torch.randn(len(batch), 3)
    output = ModelOutput(logits, torch.randn(len(batch), 4))
    total, ce, _ = trainer.loss(output, batch, mixed)
    expected = mixed.lam * F.cross_entropy(logits, batch.labels) + (1 - mixed.lam) * F.cross_entropy(logits, mixed.labels)
    assert torch.isclose(ce, expected) and torch.isclose(total, expected)
    plain, _, _ = trainer.loss(output, batch)
    assert torch.isclose(plain, F.cross_entropy(logits, batch.labels))
