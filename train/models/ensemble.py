"""The fitted ensemble of ``train --model ensemble`` (:mod:`train.ensemble_weights`) and of ``train --transfer-to``
(:mod:`train.transfer`) as one module: every member, their temperatures and weights, and the network's input
standardisation, so that run folders, bundles and ``predict`` treat it as every other model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch
from torch import nn

from ..config import ENSEMBLE_MEMBERS, HEAD_MODELS, SINGLE_MODEL, ensemble_members
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

    ``members``: names in the order of :func:`~train.config.ensemble_members` (``single`` = the network, which reads the
    batch standardised by ``scaler``; the heads read it as it is). Buffers ``weights`` and ``temperatures``
    (members,), float64. ``speaker_norm`` (``train --model ensemble --speaker-norm``, ``--transfer-to``): the heads read pooled
    statistics standardised with their speaker's (:func:`train.scaling.speaker_standardised`, which needs the
    speaker's other files): the caller pools (:meth:`pool`), standardises and passes them as ``pooled``.
    """

    def __init__(self, network: nn.Module, heads: dict[str, PooledHead], scaler: InputScaler,
                 members: Sequence[str] = ENSEMBLE_MEMBERS, speaker_norm: bool = False):
        super().__init__()
        self.members, self.speaker_norm = list(members), bool(speaker_norm)
        self.network, self.heads, self.scaler = network, nn.ModuleDict(heads), scaler
        self.register_buffer("weights", torch.full((len(self.members),), 1.0 / len(self.members), dtype=torch.float64))
        self.register_buffer("temperatures", torch.ones(len(self.members), dtype=torch.float64))

    def pool(self, batch: Batch) -> torch.Tensor:
        """(batch, dim) the heads' input before standardisation (every head pools the same features)."""
        return next(iter(self.heads.values())).pool(batch)

    def member_logits(self, batch: Batch, pooled: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Each member's logits (batch, classes) before its temperature, and the network's representation;
        ``pooled`` (batch, dim): the heads' input standardised per speaker (needed with ``speaker_norm``; without
        it the batch is pooled once for every head)."""
        if self.speaker_norm and pooled is None:
            raise ValueError("the heads read pooled statistics standardised per speaker: give them as pooled")
        out = self.network(self.scaler(batch))
        return self._members(out.logits, self.pool(batch) if pooled is None else pooled), out.representation

    def network_logits(self, batch: Batch) -> torch.Tensor:
        """(batch, classes) the network's logits before its temperature."""
        return self.network(self.scaler(batch)).logits

    def logits_from_pooled(self, pooled: torch.Tensor, network_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The ensemble's logits (as :meth:`forward`'s) from the heads' input ``pooled`` (batch, dim; standardised per
        speaker with ``speaker_norm``) and :meth:`network_logits`; and ``pooled``."""
        return self.combine(self._members(network_logits, pooled)), pooled

    def _members(self, network_logits: torch.Tensor, pooled: torch.Tensor) -> list[torch.Tensor]:
        """Every member's logits, in member order: the network's as given, each head's from ``pooled``."""
        return [network_logits if name == SINGLE_MODEL else self.heads[name].logits_from_pooled(pooled)[0]
                for name in self.members]

    def combine(self, logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """Members' logits (batch, classes) each -> log of the weighted average of their calibrated probabilities."""
        p = sum(w * torch.softmax(z.double() / t, dim=-1) for z, w, t in zip(logits, self.weights, self.temperatures))
        return torch.log(p.clamp_min(FLOOR)).float()

    def forward(self, batch: Batch, pooled: torch.Tensor | None = None) -> ModelOutput:
        logits, representation = self.member_logits(batch, pooled)
        return ModelOutput(self.combine(logits), representation)


def build_ensemble(config, domains: Sequence[DomainInfo]) -> EnsembleModel:
    """The :data:`train.models.MODELS` builder of ``--model ensemble`` (unfitted: its state comes from a run or a
    bundle); its members are :func:`train.config.ensemble_members` of ``config``."""
    if len(domains) != 1:
        raise ValueError(f"--model {config.model} is a single-language model; give one language")
    d = domains[0]
    members = ensemble_members(config)
    heads = {m: PooledHead(m, d.kinds, d.dims, len(d.classes)) for m in members if m in HEAD_MODELS}
    return EnsembleModel(build_single_domain_model(config, list(domains)), heads, InputScaler(d.kinds, d.dims), members,
                         speaker_norm=config.train.speaker_norm)
