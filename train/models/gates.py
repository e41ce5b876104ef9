"""Softmax gating networks over the M feature experts (section 4.3.1, eq. 7): g_k(x) = softmax(W_k x).

``W_k`` is (M, d), with d the width of the selector x (the GE2E embedding by default); no bias, as in the
paper's formula and in MMoE (Ma et al., 2018), unless ``bias=True`` (``--gate-bias``, not in the paper):
g_k(x) = softmax(W_k x + b_k). Why it can matter: the selector is standardised with its own language's
training statistics (``--standardize``, on by default), so over a language's training rows x averages to 0
and so do the logits W_k x; a bias-free gate moves its language's mean weights away from 1/M only through
the spread of its logits across utterances (large W), while b_k is a per-language preference that does not
depend on the utterance (docs/results/gates.md). :class:`DomainGates` holds one gate per domain
(MMoE and the paper's model: "the parameter of multiple gates are not shared across different domains") or
a single gate used by every domain (OMoE).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class SoftmaxGate(nn.Module):
    """Selector x (batch, selector_dim) -> gate weights (batch, n_experts), each row summing to 1.

    With ``bias``, b starts at log(``init``) (default: uniform), so that an x of 0 gets the weights ``init``.
    """

    def __init__(self, selector_dim: int, n_experts: int, bias: bool = False, init: Sequence[float] | None = None):
        super().__init__()
        self.linear = nn.Linear(selector_dim, n_experts, bias=bias)
        if bias:  # b = log(init), so softmax(b) = init; by default 0: uniform, as without a bias
            with torch.no_grad():
                self.linear.bias.copy_(torch.zeros(n_experts) if init is None else torch.as_tensor(init, dtype=torch.float32).log())
        elif init is not None:
            raise ValueError("initial gate weights need a gate bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(x), dim=-1)


class DomainGates(nn.Module):
    """(x (batch, selector_dim), domains (batch,)) -> weights (batch, n_experts): row r uses its domain's gate.

    ``shared=True`` (OMoE): one gate for all ``n_domains``; otherwise one independent gate per domain.
    ``bias``: each gate has a bias b_k (module docstring), initialised to log(``init``) (weights summing to 1;
    default uniform).
    """

    def __init__(self, selector_dim: int, n_experts: int, n_domains: int, shared: bool = False, bias: bool = False,
                 init: Sequence[float] | None = None):
        super().__init__()
        self.shared = shared
        self.n_domains = n_domains
        self.gates = nn.ModuleList(SoftmaxGate(selector_dim, n_experts, bias, init) for _ in range(1 if shared else n_domains))

    def gate(self, domain: int) -> SoftmaxGate:
        """The gate domain ``domain`` uses (the same module for every domain when shared)."""
        if not 0 <= domain < self.n_domains:
            raise IndexError(f"domain {domain} out of range 0..{self.n_domains - 1}")
        return self.gates[0 if self.shared else domain]

    def forward(self, x: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return self.gates[0](x)
        out = x.new_zeros(x.shape[0], self.gates[0].linear.out_features)
        for d in domains.unique().tolist():
            rows = (domains == d).nonzero(as_tuple=True)[0]
            out = out.index_copy(0, rows, self.gate(d)(x[rows]))
        return out
