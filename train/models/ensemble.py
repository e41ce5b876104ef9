"""The fitted ensemble of ``train --model ensemble`` (:mod:`train.ensemble_weights`) as one module: every member, their
temperatures and weights, and the network's input standardisation, so that run folders, bundles and ``predict``
treat it as every other model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
from torch import nn

from ..config import ENSEMBLE_MEMBERS, HEAD_MODELS, SINGLE_MODEL
from ..model_io import Batch, DomainInfo, ModelOutput
from .pooled_head import PooledHead
from .single import build_single_domain_model

#: The combined probabilities are floored at this before their log is taken (the value of
#: ``train.calibration.FLOOR``; models see only the model contract and the configuration).
FLOOR = 1e-12


class InputScaler(nn.Module):
    """Per-feature standardisation ``(x - mean) / std`` of a batch (the network's training statistics); padding
    frames stay 0. Buffers ``mean_<i>``, ``std_<i>`` (dim) for feature i of ``kinds`` (identity unless loaded)."""

    def __init__(self, kinds: dict[str, str], dims: dict[str, int]):
        super().__init__()
        self.features = list(kinds)
        for i, f in enumerate(self.features):
            self.register_buffer(f"mean_{i}", torch.zeros(int(dims[f])))
            self.register_buffer(f"std_{i}", torch.ones(int(dims[f])))

    def set(self, feature: str, mean, std) -> None:
        i = self.features.index(feature)
        getattr(self, f"mean_{i}").copy_(torch.as_tensor(mean, dtype=torch.float32))
        getattr(self, f"std_{i}").copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, batch: Batch) -> Batch:
        sequences, embeddings = dict(batch.sequences), dict(batch.embeddings)
        for i, f in enumerate(self.features):
            mean, std = getattr(self, f"mean_{i}"), getattr(self, f"std_{i}")
            if f in sequences:
                x = sequences[f]
                frames = torch.arange(x.shape[1], device=x.device)[None, :] < batch.lengths[f].to(x.device)[:, None]
                sequences[f] = ((x - mean) / std) * frames[..., None].to(x.dtype)
            elif f in embeddings:
                embeddings[f] = (embeddings[f] - mean) / std
        return replace(batch, sequences=sequences, embeddings=embeddings)


class EnsembleModel(nn.Module):
    """Batch (unstandardised features) -> ModelOutput(logits = log of the weighted average of the members'
    calibrated probabilities (batch, classes), representation = the network's (batch, dim)).

    ``members``: names in :data:`~train.config.ENSEMBLE_MEMBERS` order (``single`` = the network, which reads the
    batch standardised by ``scaler``; the heads read it as it is). Buffers ``weights`` and ``temperatures``
    (members,), float64.
    """

    def __init__(self, network: nn.Module, heads: dict[str, PooledHead], scaler: InputScaler,
                 members: Sequence[str] = ENSEMBLE_MEMBERS):
        super().__init__()
        self.members = list(members)
        self.network, self.heads, self.scaler = network, nn.ModuleDict(heads), scaler
        self.register_buffer("weights", torch.full((len(self.members),), 1.0 / len(self.members), dtype=torch.float64))
        self.register_buffer("temperatures", torch.ones(len(self.members), dtype=torch.float64))

    def member_logits(self, batch: Batch) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each member's logits (batch, classes) before its temperature, and the network's representation."""
        out = self.network(self.scaler(batch))
        logits = []
        for name in self.members:
            logits.append(out.logits if name == SINGLE_MODEL else self.heads[name](batch).logits)
        return logits, out.representation

    def forward(self, batch: Batch) -> ModelOutput:
        logits, representation = self.member_logits(batch)
        p = sum(w * torch.softmax(z.double() / t, dim=-1)
                for z, w, t in zip(logits, self.weights, self.temperatures))
        return ModelOutput(torch.log(p.clamp_min(FLOOR)).float(), representation)


def build_ensemble(config, domains: Sequence[DomainInfo]) -> EnsembleModel:
    """The :data:`train.models.MODELS` builder of ``--model ensemble`` (unfitted: its state comes from a run or a
    bundle)."""
    if len(domains) != 1:
        raise ValueError(f"--model {config.model} is a single-language model; give one language")
    d = domains[0]
    heads = {m: PooledHead(m, d.kinds, d.dims, len(d.classes)) for m in ENSEMBLE_MEMBERS if m in HEAD_MODELS}
    return EnsembleModel(build_single_domain_model(config, list(domains)), heads, InputScaler(d.kinds, d.dims))
