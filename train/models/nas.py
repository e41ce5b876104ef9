"""The architecture-search module of section 4.3.2 (eq. 8), after SNR (Ma et al., 2019):

    u_i = sum_j xi_ij W_ij v_j        i, j = 1..M

v_j are the M low-level feature embeddings (the experts, projected to a common width D), u_i the M
higher-level ones, W_ij a (D, D) transition matrix and xi_ij in [0, 1] a hard-concrete gate
(:mod:`train.models.hard_concrete`) that switches the connection j -> i on or off. The paper's prose says
W_ij goes "from the i-th low-level to the j-th higher-level" embedding, the opposite of its formula; we
follow the formula (xi_ij, W_ij feed u_i from v_j).

Choices the paper leaves open:

- **One architecture per domain**: figure 2 says the module "searches for optimal neural architecture for
  each domain", so every domain k has its own gate parameters ``log_alpha[k, i, j]`` (K x M x M numbers),
  and row r of a batch is routed with its domain's gates.
- **Shared transition matrices**: W_ij are shared by all domains (they are part of the shared bottom; the
  per-domain part is which connections are used, plus the gates and towers). Per-domain W_ij would
  multiply the module's M^2 D^2 weights by K for corpora of a few hundred utterances.
- **Linear**: eq. (8) has no bias and no non-linearity, so none is added.
- Training draws an independent xi per row (Louizos et al.'s estimator, lower variance than one draw per
  batch); evaluation uses the deterministic gate.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import hard_concrete
from .hard_concrete import BETA, GAMMA, ZETA


class NasModule(nn.Module):
    """(v (batch, n_experts, dim), domains (batch,)) -> (u (batch, n_experts, dim), xi (batch, n_experts, n_experts)).

    ``xi[r, i, j]`` is the gate of the connection v_j -> u_i used for row r (its domain's architecture).
    """

    def __init__(self, n_experts: int, dim: int, n_domains: int, beta: float = BETA, gamma: float = GAMMA,
                 zeta: float = ZETA, init_log_alpha: float = 0.0):
        super().__init__()
        self.n_experts, self.dim, self.n_domains = n_experts, dim, n_domains
        # W[i, j] is W_ij, acting as u += W_ij @ v_j; initialised like nn.Linear(dim, dim) weights
        self.weight = nn.Parameter(torch.empty(n_experts, n_experts, dim, dim))
        bound = 1.0 / math.sqrt(dim)
        nn.init.uniform_(self.weight, -bound, bound)
        self.gates = hard_concrete.HardConcreteGates((n_domains, n_experts, n_experts), beta, gamma, zeta, init_log_alpha)

    def connections(self, domains: torch.Tensor) -> torch.Tensor:
        """xi (batch, M, M) for rows of ``domains``: sampled in training mode, deterministic in eval mode."""
        log_alpha = self.gates.log_alpha[domains]
        g = self.gates
        if self.training:
            return hard_concrete.sample(log_alpha, g.beta, g.gamma, g.zeta)
        return hard_concrete.deterministic(log_alpha, g.gamma, g.zeta)

    def forward(self, v: torch.Tensor, domains: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xi = self.connections(domains)
        transformed = torch.einsum("bjd,ijed->bije", v, self.weight)  # W_ij v_j for every (i, j)
        u = torch.einsum("bij,bije->bie", xi, transformed)
        return u, xi

    def expected_l0(self) -> torch.Tensor:
        """Expected number of open connections, summed over domains (Louizos et al.'s L0 penalty)."""
        return self.gates.expected_l0()

    @torch.no_grad()
    def probabilities(self) -> dict[str, torch.Tensor]:
        """Per domain (K, M, M): ``p_open`` = P(xi_ij > 0) and ``gate`` = the deterministic xi_ij used at evaluation."""
        return {"p_open": self.gates.prob_nonzero().detach().cpu(), "gate": self.gates.deterministic().detach().cpu()}
