"""The hard concrete distribution of Louizos, Welling and Kingma (2017), "Learning sparse neural networks
through L0 regularization", section 2.2: a continuous relaxation of a Bernoulli gate that is exactly 0 or
exactly 1 with positive probability and is differentiable in its location ``log_alpha``.

    u ~ U(0, 1)
    s = sigmoid((log u - log(1 - u) + log_alpha) / beta)        (a binary concrete sample, temperature beta)
    s_bar = s * (zeta - gamma) + gamma                          (stretched to the interval (gamma, zeta))
    xi = min(1, max(0, s_bar))                                  (hard-clipped into [0, 1])

At evaluation the deterministic gate of Louizos et al. (their eq. 13) is used:
``xi = min(1, max(0, sigmoid(log_alpha) * (zeta - gamma) + gamma))``.

The paper's eq. (9) writes ``s = Sigmoid(log(u) - log(1 - u) + log(kappa)) / beta``: the division by beta
outside the sigmoid cannot be meant (s would leave [0, 1] and beta would not be a temperature), and
``log(kappa)`` is Louizos et al.'s ``log(alpha)``. We follow Louizos et al.: the temperature divides the
logit inside the sigmoid, and the learnable parameter is ``log_alpha`` itself (kappa = exp(log_alpha)).
Paper values (section 5.1): beta = 0.9, gamma = -0.1, delta = 2 (Louizos et al.'s zeta).

Closed forms (Louizos et al., eq. 12): P(xi > 0) = sigmoid(log_alpha - beta * log(-gamma / zeta)), which is
also the expected L0 norm of a gate; P(xi = 1) = sigmoid(log_alpha - beta * log((1 - gamma) / (zeta - 1))).
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Section 5.1 (the paper's beta, gamma, delta).
BETA, GAMMA, ZETA = 0.9, -0.1, 2.0


def _check(beta: float, gamma: float, zeta: float) -> None:
    if not (beta > 0 and gamma < 0 and zeta > 1):
        raise ValueError(f"hard concrete needs beta > 0, gamma < 0 < 1 < zeta, got beta={beta}, gamma={gamma}, zeta={zeta}")


def sample(log_alpha: torch.Tensor, beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """One reparameterised sample per entry of ``log_alpha`` (any shape) -> same shape, values in [0, 1]."""
    _check(beta, gamma, zeta)
    # u in (eps, 1 - eps): log(u) and log(1 - u) stay finite (float32 rand can return exactly 0)
    eps = 1e-6
    u = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype)
    u = u.clamp(eps, 1.0 - eps)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / beta)
    return (s * (zeta - gamma) + gamma).clamp(0.0, 1.0)


def deterministic(log_alpha: torch.Tensor, gamma: float = GAMMA, zeta: float = ZETA) -> torch.Tensor:
    """The test-time gate min(1, max(0, sigmoid(log_alpha) * (zeta - gamma) + gamma)), same shape."""
    return (torch.sigmoid(log_alpha) * (zeta - gamma) + gamma).clamp(0.0, 1.0)


def prob_nonzero(log_alpha: torch.Tensor, beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA) -> torch.Tensor:
    """P(xi > 0), i.e. the expected L0 norm of each gate (differentiable in ``log_alpha``)."""
    _check(beta, gamma, zeta)
    return torch.sigmoid(log_alpha - beta * math.log(-gamma / zeta))


def prob_one(log_alpha: torch.Tensor, beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA) -> torch.Tensor:
    """P(xi = 1)."""
    _check(beta, gamma, zeta)
    return torch.sigmoid(log_alpha - beta * math.log((1.0 - gamma) / (zeta - 1.0)))


class HardConcreteGates(nn.Module):
    """A tensor of ``shape`` learnable hard-concrete gates.

    ``forward()`` -> xi of ``shape``: a fresh sample in training mode, the deterministic gate in eval
    mode. ``log_alpha`` starts at ``init_log_alpha`` (0: P(xi > 0) = 0.94 with the paper's values, i.e. the
    search starts from an almost fully connected architecture, as Louizos et al.'s drop rate 0.5 init).
    """

    def __init__(self, shape: tuple[int, ...], beta: float = BETA, gamma: float = GAMMA, zeta: float = ZETA,
                 init_log_alpha: float = 0.0):
        super().__init__()
        _check(beta, gamma, zeta)
        self.beta, self.gamma, self.zeta = beta, gamma, zeta
        self.log_alpha = nn.Parameter(torch.full(tuple(shape), float(init_log_alpha)))

    def sample(self, shape_prefix: tuple[int, ...] = ()) -> torch.Tensor:
        """Independent samples of shape ``shape_prefix + shape``."""
        log_alpha = self.log_alpha.expand(*shape_prefix, *self.log_alpha.shape)
        return sample(log_alpha, self.beta, self.gamma, self.zeta)

    def deterministic(self) -> torch.Tensor:
        return deterministic(self.log_alpha, self.gamma, self.zeta)

    def prob_nonzero(self) -> torch.Tensor:
        return prob_nonzero(self.log_alpha, self.beta, self.gamma, self.zeta)

    def expected_l0(self) -> torch.Tensor:
        """Sum of P(xi > 0) over the gates: Louizos et al.'s differentiable L0 penalty."""
        return self.prob_nonzero().sum()

    def forward(self) -> torch.Tensor:
        return self.sample() if self.training else self.deterministic()
