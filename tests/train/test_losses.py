"""The contrastive auxiliary loss against a hand computation (numpy), and its edge cases."""

import numpy as np
import pytest
import torch

from train.losses import ContrastiveAuxLoss


def _reference(x, y, w=10.0, b=-5.0, reduction="sum"):
    """GE2E softmax loss by hand: keep emotions with > 5 samples; leave-one-out own centroid."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    kept = [c for c in sorted(set(y)) if list(y).count(c) > 5]
    losses = []
    for i in range(len(x)):
        if y[i] not in kept:
            continue
        scores = []
        for c in kept:
            members = [j for j in range(len(x)) if y[j] == c and j != i]  # excludes i only for its own class
            centroid = x[members].mean(0)
            scores.append(w * x[i] @ centroid / np.linalg.norm(centroid) + b)
        scores = np.array(scores)
        own = kept.index(y[i])
        losses.append(-(scores[own] - np.log(np.exp(scores).sum())))
    return np.sum(losses) if reduction == "sum" else np.mean(losses)


def test_matches_hand_computed_value():
    rng = np.random.default_rng(0)
    y = np.array([0] * 6 + [1] * 8 + [2] * 3 + [3] * 7)  # class 2 has too few samples and is left out
    x = rng.normal(size=(len(y), 5)) + np.eye(5)[y] * 2
    loss = ContrastiveAuxLoss()
    got = loss(torch.tensor(x, dtype=torch.float32), torch.tensor(y)).item()
    assert got == pytest.approx(_reference(x, y), rel=1e-5)
    mean = ContrastiveAuxLoss(reduction="mean")(torch.tensor(x, dtype=torch.float32), torch.tensor(y)).item()
    assert mean == pytest.approx(_reference(x, y, reduction="mean"), rel=1e-5)
    assert mean == pytest.approx(got / 21, rel=1e-5)  # 6 + 8 + 7 retained samples


def test_small_hand_example():
    # two classes of six identical unit vectors each, orthogonal: cos = 1 to the own centroid, 0 to the other
    x = np.array([[1.0, 0.0]] * 6 + [[0.0, 1.0]] * 6)
    y = np.array([0] * 6 + [1] * 6)
    got = ContrastiveAuxLoss()(torch.tensor(x, dtype=torch.float32), torch.tensor(y)).item()
    per_sample = -np.log(np.exp(10 - 5) / (np.exp(10 - 5) + np.exp(0 - 5)))
    assert got == pytest.approx(12 * per_sample, rel=1e-3)  # float32 softmax


def test_own_centroid_excludes_the_sample():
    # class 0: one sample far from the other five; with the full centroid it would partly "see itself"
    x = np.array([[1.0, 0.0]] * 5 + [[0.0, 1.0]] + [[0.0, 1.0]] * 6)
    y = np.array([0] * 6 + [1] * 6)
    loss = ContrastiveAuxLoss()
    scores, target, kept = loss.similarity(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
    # sample 5's own centroid (without it) is exactly [1, 0]: cos 0, so S = b = -5
    assert scores[5, 0].item() == pytest.approx(-5.0, abs=1e-5)
    assert scores[5, 1].item() == pytest.approx(10 * 1.0 - 5, abs=1e-5)  # other class's full centroid is [0, 1]
    assert kept.tolist() == [0, 1] and target.tolist() == y.tolist()


def test_no_contrast_gives_zero_with_a_graph():
    x = torch.randn(10, 4, requires_grad=True)
    loss = ContrastiveAuxLoss()(x, torch.tensor([0] * 7 + [1] * 3))  # one qualifying class only
    assert loss.item() == 0.0
    loss.backward()
    assert x.grad is not None and torch.all(x.grad == 0)


def test_w_and_b_are_learnable_and_gradients_flow():
    loss = ContrastiveAuxLoss()
    assert loss.w.item() == 10.0 and loss.b.item() == -5.0
    x = torch.randn(14, 6, requires_grad=True)
    value = loss(x, torch.tensor([0] * 7 + [1] * 7))
    value.backward()
    assert loss.w.grad is not None and loss.b.grad is not None and x.grad.abs().sum() > 0
