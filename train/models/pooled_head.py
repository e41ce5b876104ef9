"""The fitted heads of ``train --model logreg|linsvm|rbfsvm`` as a model: :class:`PooledHead` computes the pooled
statistics (:mod:`train.pooling`), the standardisation and the decision values of a head that scikit-learn fitted
(:mod:`train.pooled_heads` chooses and fits it, :func:`train.pooled_heads.head_module` copies it into this module), so that run
folders, bundles and ``predict`` treat it as every other model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..config import HEAD_MODELS
from ..model_io import Batch, DomainInfo, ModelOutput
from ..pooling import pool


def pooled_dim(kinds: dict[str, str], dims: dict[str, int]) -> int:
    """Width of the pooled vector of features ``kinds`` (4 * dim per sequence feature, dim per embedding)."""
    return sum(4 * int(dims[f]) if k == "sequence" else int(dims[f]) for f, k in kinds.items())


class PooledHead(nn.Module):
    """Pooling, standardisation and decision values of a fitted head; ``logits = decision / temperature``.

    Buffers (their shapes are taken from the state dict when it is loaded: the number of support vectors is
    known only after fitting): ``mean``, ``scale`` (dim); linear heads ``coef`` (classes, dim), ``intercept``
    (classes); ``rbfsvm`` ``support`` (vectors, dim), ``pair_coef`` (pairs, vectors), ``intercept`` (pairs),
    ``gamma`` (1); every head ``temperature`` (1). Scalars are of shape (1,): the bundle's checksum
    reads every tensor as bytes.
    """

    def __init__(self, kind: str, kinds: dict[str, str], dims: dict[str, int], n_classes: int):
        super().__init__()
        if kind not in HEAD_MODELS:
            raise ValueError(f"unknown head {kind!r} (known: {', '.join(HEAD_MODELS)})")
        self.kind, self.kinds, self.n_classes = kind, dict(kinds), int(n_classes)
        dim = pooled_dim(kinds, dims)
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("temperature", torch.ones(1, dtype=torch.float64))
        if kind == "rbfsvm":
            pairs = n_classes * (n_classes - 1) // 2
            self.register_buffer("support", torch.zeros(0, dim, dtype=torch.float64))
            self.register_buffer("pair_coef", torch.zeros(pairs, 0, dtype=torch.float64))
            self.register_buffer("intercept", torch.zeros(pairs, dtype=torch.float64))
            self.register_buffer("gamma", torch.ones(1, dtype=torch.float64))
        else:
            self.register_buffer("coef", torch.zeros(n_classes, dim, dtype=torch.float64))
            self.register_buffer("intercept", torch.zeros(n_classes, dtype=torch.float64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("support", "pair_coef"):  # sized by the fit
            if name in self._buffers and prefix + name in state_dict:
                self._buffers[name] = torch.empty_like(state_dict[prefix + name], device=self._buffers[name].device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def pool(self, batch: Batch) -> torch.Tensor:
        """(batch, dim) pooled features of a batch (:func:`train.pooling.pool`, per utterance)."""
        rows = []
        for i in range(len(batch)):
            parts = []
            for f, kind in self.kinds.items():
                if kind == "sequence":
                    frames = batch.sequences[f][i, : int(batch.lengths[f][i])]
                    parts.append(pool(frames.detach().float().cpu().numpy(), kind))
                else:
                    parts.append(pool(batch.embeddings[f][i].detach().float().cpu().numpy(), kind))
            rows.append(np.concatenate(parts))
        return torch.as_tensor(np.stack(rows), dtype=torch.float64, device=self.mean.device)

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.mean.dtype) - self.mean) / self.scale

    def decision(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised (n, dim) -> (n, classes) decision values, those of the scikit-learn head."""
        if self.kind != "rbfsvm":
            return z @ self.coef.T + self.intercept
        d2 = (z * z).sum(1, keepdim=True) + (self.support * self.support).sum(1)[None, :] - 2 * z @ self.support.T
        kernel = torch.exp(-self.gamma * d2.clamp_min(0))
        pairwise = kernel @ self.pair_coef.T + self.intercept  # (n, pairs): > 0 votes for the pair's first class
        return ovr_from_pairs(pairwise, self.n_classes)

    def logits_from_pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled (n, dim) -> (logits, standardised features)."""
        z = self.standardise(x)
        return self.decision(z) / self.temperature, z

    def forward(self, batch: Batch) -> ModelOutput:
        logits, z = self.logits_from_pooled(self.pool(batch))
        return ModelOutput(logits.float(), z.float())


def pairs(n_classes: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]


def ovr_from_pairs(pairwise: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(n, pairs) one-vs-one decisions -> (n, classes): votes plus confidences scaled into (-1/3, 1/3), as
    scikit-learn's ``SVC.decision_function`` (``decision_function_shape="ovr"``) computes them."""
    if n_classes == 2:  # the public dual_coef_ and intercept_ of a binary SVC give class 1's decision: [0, s]
        return torch.stack([torch.zeros_like(pairwise[:, 0]), pairwise[:, 0]], dim=1)
    votes = pairwise.new_zeros(pairwise.shape[0], n_classes)
    confidence = pairwise.new_zeros(pairwise.shape[0], n_classes)
    for p, (i, j) in enumerate(pairs(n_classes)):
        votes[:, i] += (pairwise[:, p] > 0).to(votes.dtype)
        votes[:, j] += (pairwise[:, p] <= 0).to(votes.dtype)
        confidence[:, i] += pairwise[:, p]
        confidence[:, j] -= pairwise[:, p]
    return votes + confidence / (3 * (confidence.abs() + 1))


def build_head(config, domains: Sequence[DomainInfo]) -> PooledHead:
    """The :data:`train.models.MODELS` builder of ``--model logreg|linsvm|rbfsvm`` (unfitted: its state comes from
    a run or a bundle)."""
    if len(domains) != 1:
        raise ValueError(f"--model {config.model} is a single-language model; give one language")
    d = domains[0]
    return PooledHead(config.model, d.kinds, d.dims, len(d.classes))
