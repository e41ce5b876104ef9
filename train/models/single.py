"""The single-language model of section 4.1 (figure 1).

Every 2-D feature goes through its own :class:`SequenceEncoder`; the encodings and the 1-D features
(GE2E, BYOL) are concatenated into the audio representation g (+) s(z'), which feeds both the
contrastive auxiliary loss and the language's :class:`ClassificationTower`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Mapping, Sequence

import torch
from torch import nn

from sercore.errors import OptionError

from ..config import EncoderConfig, TowerConfig
from ..model_io import Batch, DomainInfo, ModelOutput
from .encoder import SequenceEncoder
from .ge2e import Ge2eEncoder
from .layer_weights import LayerWeightedSum
from .tower import ClassificationTower

#: The feature resemblyzer's VoiceEncoder makes: with GE2E fine-tuning it is recomputed from its input (the stored
#: feature whose provenance says ``input_of: ge2e``, i.e. ``ge2e_mel``; ``DomainInfo.inputs``).
GE2E_FEATURE = "ge2e"


class FeatureEncoders(nn.Module):
    """Batch -> (batch, output_dim): the concatenated encodings of ``features`` (in that order).

    ``kinds[name]`` is "sequence" (encoded by a SequenceEncoder of ``encoders[name]`` sizes) or
    "embedding" (used as is). A sequence feature with ``layers[name]`` > 1 stored hidden layers first goes through
    its :class:`LayerWeightedSum` (``layer_weighting[name]``). With ``ge2e`` given, the ``ge2e`` embedding is computed by that
    (fine-tuned) encoder from ``batch.sequences[ge2e_input]`` (``ge2e_mel``) instead of read from the batch,
    then standardised like the stored one, each row with its own language's statistics (buffers
    ``ge2e_mean``/``ge2e_std``, (n_domains, dim), row d for ``Batch.domains`` d; identity unless set).
    """

    def __init__(self, features: Sequence[str], kinds: Mapping[str, str], dims: Mapping[str, int],
                 encoders: Mapping[str, EncoderConfig], ge2e: Ge2eEncoder | None = None, ge2e_input: str = "",
                 layers: Mapping[str, int] | None = None, n_domains: int = 1):
        super().__init__()
        self.ge2e_input = ge2e_input
        self.features = list(features)
        self.kinds = {f: kinds[f] for f in self.features}
        layers = {f: n for f, n in (layers or {}).items() if f in self.kinds and kinds[f] == "sequence" and n > 1}
        # stacked hidden layers (frames, n * width) -> their learned weighted sum (frames, width)
        self.layer_weighting = nn.ModuleDict({f: LayerWeightedSum(n, dims[f] // n) for f, n in layers.items()})
        self.sequence_encoders = nn.ModuleDict({
            f: SequenceEncoder(dims[f] // layers.get(f, 1), **asdict(encoders[f])) for f in self.features if kinds[f] == "sequence"
        })
        self.ge2e = ge2e if GE2E_FEATURE in self.features else None
        if self.ge2e is not None:
            self.register_buffer("ge2e_mean", torch.zeros(n_domains, self.ge2e.output_dim))
            self.register_buffer("ge2e_std", torch.ones(n_domains, self.ge2e.output_dim))
        self.output_dims = {f: (self.sequence_encoders[f].output_dim if kinds[f] == "sequence" else dims[f]) for f in self.features}
        self.output_dim = sum(self.output_dims.values())

    def encode(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Each feature's (batch, dim) encoding."""
        out = {}
        for f in self.features:
            if f in self.sequence_encoders:
                x = batch.sequences[f]
                if f in self.layer_weighting:
                    x = self.layer_weighting[f](x)
                out[f] = self.sequence_encoders[f](x, batch.lengths[f])
            elif f == GE2E_FEATURE and self.ge2e is not None:
                frames, lengths = batch.sequences[self.ge2e_input], batch.lengths[self.ge2e_input]
                rows = batch.domains.to(self.ge2e_mean.device)
                out[f] = (self.ge2e(frames, lengths) - self.ge2e_mean[rows]) / self.ge2e_std[rows]
            else:
                out[f] = batch.embeddings[f]
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights saved when one (dim,) pair of statistics served every language: that pair for each language
        for name in ("ge2e_mean", "ge2e_std"):
            saved, own = state_dict.get(prefix + name), getattr(self, name, None)
            if saved is not None and own is not None and saved.ndim == 1 and own.ndim == 2:
                state_dict[prefix + name] = saved.expand_as(own).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = self.encode(batch)
        return torch.cat([parts[f] for f in self.features], dim=-1)


class SingleDomainModel(nn.Module):
    """Batch -> ModelOutput(logits (batch, n_classes), representation (batch, encoders.output_dim),
    hidden (batch, tower units): the tower's last hidden layer)."""

    def __init__(self, encoders: FeatureEncoders, n_classes: int, tower: TowerConfig):
        super().__init__()
        self.encoders = encoders
        self.tower = ClassificationTower(encoders.output_dim, n_classes, tower.units, tower.activations, tower.dropout,
                                         tower.input_dropout)

    def represent(self, batch: Batch) -> torch.Tensor:
        return self.encoders(batch)

    def forward(self, batch: Batch) -> ModelOutput:
        representation = self.represent(batch)
        hidden = self.tower.hidden(representation)
        return ModelOutput(self.tower.output(hidden), representation, hidden=hidden)


def build_single_domain_model(config, domains: list[DomainInfo]) -> SingleDomainModel:
    """Builder registered as ``--model single`` (one domain)."""
    if len(domains) != 1:
        names = ", ".join(d.language for d in domains)
        raise OptionError("--model", f"the single-domain model takes one domain, got {len(domains)} ({names}); "
                         "use a multi-domain --model for several languages")
    domain = domains[0]
    return SingleDomainModel(build_feature_encoders(config, domain), len(domain.classes), config.language(domain.language).tower)


def build_feature_encoders(config, domain: DomainInfo, n_domains: int = 1) -> FeatureEncoders:
    """The encoders of ``domain``'s features (sizes from ``config``), with resemblyzer's GE2E encoder when it is
    fine-tuned (its output standardised per language: ``n_domains`` languages share the encoders)."""
    features = list(domain.kinds)
    ge2e, ge2e_input = None, domain.inputs.get(GE2E_FEATURE, "")
    if config.train.finetune_ge2e and GE2E_FEATURE in features:
        if not ge2e_input:
            raise OptionError("--finetune-ge2e", "GE2E fine-tuning needs the mel frames the VoiceEncoder consumes (a stored feature with "
                             "input_of=ge2e, i.e. ge2e_mel): extract them with `extract --features ge2e,ge2e_mel`")
        ge2e = Ge2eEncoder.pretrained()
        if domain.dims.get(GE2E_FEATURE) != ge2e.output_dim or domain.dims.get(ge2e_input) != ge2e.lstm.input_size:
            raise OptionError("--finetune-ge2e", f"GE2E fine-tuning needs resemblyzer's 256-d ge2e and 40-band {ge2e_input} features, the stores "
                             f"have {domain.dims.get(GE2E_FEATURE)}-d and {domain.dims.get(ge2e_input)} bands")
    return FeatureEncoders(features, domain.kinds, domain.dims, {f: config.encoder(f) for f in features}, ge2e, ge2e_input,
                           layers=domain.layers, n_domains=n_domains)
