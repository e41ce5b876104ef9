"""train/pooling.py: the pooled statistics shared by the linear heads, the baselines and the probes."""

from __future__ import annotations

import numpy as np
import pytest

from train.pooling import deltas, pool, pooled_features, sequence_statistics
from tests._train_helpers import make_stores
from train.domains import load_domain, resolve_domain


def test_statistics_of_a_ramp_are_its_mean_std_and_slope():
    t = np.arange(20, dtype=np.float32)
    frames = np.stack([t, 3 * t + 1], axis=1)  # (20, 2), slopes 1 and 3
    stats = sequence_statistics(frames)
    assert stats.shape == (8,)
    np.testing.assert_allclose(stats[:2], frames.mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats[2:4], frames.std(0), rtol=1e-6)
    np.testing.assert_allclose(stats[4:6], [1.0, 3.0], rtol=1e-4)  # the delta of a line is its slope
    np.testing.assert_allclose(stats[6:8], [0.0, 0.0], atol=1e-4)


def test_short_sequences_get_a_narrower_window_or_zero_deltas():
    assert np.all(deltas(np.ones((2, 3), np.float32)) == 0)
    assert deltas(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)).shape == (4, 3)


def test_vectors_are_kept_and_bad_input_is_refused():
    v = np.array([1.0, -2.0, 3.0], np.float32)
    np.testing.assert_array_equal(pool(v, "embedding"), v)
    with pytest.raises(ValueError, match="kind"):
        pool(v, "image")
    with pytest.raises(ValueError, match="non-empty"):
        sequence_statistics(np.zeros((0, 3), np.float32))


def test_pooled_features_of_a_domain(tmp_path):
    make_stores(tmp_path, seq_dim=6, emb_dim=5)
    data = load_domain(resolve_domain("de", tmp_path), tmp_path, ["mfcc", "ge2e"])
    x = pooled_features(data, ["mfcc", "ge2e"])
    assert x.shape == (len(data), 4 * 6 + 5)
    np.testing.assert_array_equal(x[:, 24:], np.stack(data.features["ge2e"]))
    np.testing.assert_allclose(x[3, :6], data.features["mfcc"][3].mean(0), rtol=1e-5)
