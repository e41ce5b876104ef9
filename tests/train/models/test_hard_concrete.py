"""The hard concrete distribution (Louizos et al., 2017) with the paper's beta 0.9, gamma -0.1, zeta 2."""

import math

import pytest
import torch

from train.models import hard_concrete as hc
from train.models.nas import NasModule

N = 200_000


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _samples(log_alpha: float, n: int = N) -> torch.Tensor:
    return hc.sample(torch.full((n,), float(log_alpha)))


def test_samples_lie_in_unit_interval_and_hit_both_ends():
    for log_alpha in (-2.0, 0.0, 2.0):
        xi = _samples(log_alpha)
        assert xi.min() >= 0.0 and xi.max() <= 1.0
        zeros, ones = int((xi == 0).sum()), int((xi == 1).sum())
        # exactly 0 and exactly 1 with positive probability (thousands of hits each), and values in between too
        assert zeros > 1000 and ones > 1000, (log_alpha, zeros, ones)
        assert int(((xi > 0) & (xi < 1)).sum()) > 1000


def test_mean_increases_with_log_alpha():
    means = [float(_samples(a).mean()) for a in (-3.0, -1.0, 0.0, 1.0, 3.0)]
    assert all(b > a + 0.02 for a, b in zip(means, means[1:])), means


@pytest.mark.parametrize("log_alpha", [-2.0, -0.5, 0.0, 1.0, 2.5])
def test_open_and_one_probabilities_match_the_closed_forms(log_alpha):
    xi = _samples(log_alpha)
    la = torch.tensor(log_alpha)
    p_open = float(hc.prob_nonzero(la))
    p_one = float(hc.prob_one(la))
    # binomial standard error at N = 200k is <= 0.0012; 5 sigma
    assert abs(float((xi > 0).float().mean()) - p_open) < 0.006
    assert abs(float((xi == 1).float().mean()) - p_one) < 0.006
    # the closed form as Louizos et al. write it
    assert p_open == pytest.approx(1 / (1 + math.exp(-(log_alpha - 0.9 * math.log(0.1 / 2.0)))), rel=1e-6)


def test_deterministic_gate_is_the_clipped_stretched_sigmoid():
    la = torch.tensor([-10.0, -2.0, 0.0, 0.5, 10.0])
    expected = torch.clamp(torch.sigmoid(la) * 2.1 - 0.1, 0, 1)
    assert torch.allclose(hc.deterministic(la), expected)
    assert hc.deterministic(la)[0] == 0.0 and hc.deterministic(la)[-1] == 1.0


def test_sample_is_differentiable_in_log_alpha():
    la = torch.zeros(1000, requires_grad=True)
    hc.sample(la).sum().backward()
    assert la.grad is not None and (la.grad > 0).any() and torch.isfinite(la.grad).all()


def test_module_samples_in_training_and_is_deterministic_in_eval():
    gates = hc.HardConcreteGates((3, 4))
    gates.train()
    assert not torch.equal(gates(), gates())
    gates.eval()
    assert torch.equal(gates(), gates()) and torch.allclose(gates(), hc.deterministic(gates.log_alpha))
    assert float(gates.expected_l0().detach()) == pytest.approx(12 * float(hc.prob_nonzero(torch.tensor(0.0))))


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError):
        hc.HardConcreteGates((2,), gamma=0.1)


def test_nas_module_routes_each_row_with_its_domains_architecture():
    nas = NasModule(n_experts=3, dim=4, n_domains=2)
    with torch.no_grad():
        nas.gates.log_alpha[0].fill_(-20.0)  # domain 0: every connection closed
        nas.gates.log_alpha[1].fill_(20.0)  # domain 1: every connection open
    v = torch.randn(4, 3, 4)
    domains = torch.tensor([0, 1, 0, 1])
    nas.eval()
    u, xi = nas(v, domains)
    assert u.shape == (4, 3, 4) and xi.shape == (4, 3, 3)
    assert torch.all(u[domains == 0] == 0) and torch.all(xi[domains == 1] == 1)
    # open: u_i = sum_j W_ij v_j
    expected = torch.einsum("ijed,bjd->bie", nas.weight, v[domains == 1])
    assert torch.allclose(u[domains == 1], expected, atol=1e-5)
    probs = nas.probabilities()
    assert probs["p_open"].shape == (2, 3, 3) and float(probs["gate"][0].max()) == 0.0
