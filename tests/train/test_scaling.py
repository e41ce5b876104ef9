"""train/scaling.py: standardisation of pooled vectors, globally and per speaker."""

from __future__ import annotations

import numpy as np

from train.scaling import speaker_standardised, standardise


def test_standardise_uses_the_given_rows_and_leaves_constant_dimensions_at_scale_one():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [10.0, 5.0]])
    z, mean, scale = standardise(x, x[:2])
    assert np.allclose(mean, [2.0, 5.0]) and np.allclose(scale, [1.0, 1.0])
    assert np.allclose(z, [[-1.0, 0.0], [1.0, 0.0], [8.0, 0.0]])


def test_each_speaker_is_standardised_with_its_own_statistics():
    rng = np.random.default_rng(0)
    speakers = np.array(["a"] * 20 + ["b"] * 30)
    x = rng.normal(size=(50, 4))
    x[speakers == "b"] = 10 + 3 * x[speakers == "b"]  # another voice: offset and spread
    z = speaker_standardised(x, speakers)
    for s in "ab":
        assert np.allclose(z[speakers == s].mean(0), 0, atol=1e-9)
        assert np.allclose(z[speakers == s].std(0), 1, atol=1e-9)
    # one speaker's statistics never depend on another speaker's rows
    other = x.copy()
    other[speakers == "b"] += 100
    assert np.array_equal(speaker_standardised(other, speakers)[speakers == "a"], z[speakers == "a"])


def test_statistics_from_the_given_rows_and_a_speaker_with_fewer_than_two_of_them_takes_the_global_ones():
    rng = np.random.default_rng(1)
    speakers = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 3)
    x = rng.normal(size=(23, 3)) + np.repeat([[0.0], [5.0], [-5.0]], [10, 10, 3], axis=0)
    rows = np.array([*range(0, 6), *range(10, 16), 20])  # c has one row among them
    z = speaker_standardised(x, speakers, rows)
    a = x[:6]
    assert np.allclose(z[:10], (x[:10] - a.mean(0)) / a.std(0))
    assert np.allclose(z[20:], standardise(x[20:], x[rows])[0])
