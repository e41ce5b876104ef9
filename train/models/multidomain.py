"""Multi-domain models (section 4.3, figure 2) and the four baselines of section 5.2.2 (table 3).

All five share the same bottom, computed ONCE per batch over the rows of every language: one
:class:`~train.models.single.FeatureEncoders` (a sequence encoder per 2-D feature, 1-D features as they
are), then one linear projection per feature ("expert") to a common width D, giving v (batch, M, D).
Width D (``MultiDomainConfig.dim``, default 256): the paper sums the experts' outputs f_i(x), which
needs one width, but its encoders have different ones (MFCC 128, GE2E 256, wav2vec/Allosaurus 256); the
projections are learned, shared by all languages, and also give the fixed 1-D embeddings a trainable
map. 256 is the widest expert here, so no expert is squeezed.

Then, per model, with x the gate selector (GE2E embedding by default, ``MultiDomainConfig.selector``):

- ``base``: r = mean_i v_i; ONE tower over the union of the languages' labels, shared by all. Each
  utterance's softmax runs over its own language's labels (the language is known, as for every model
  here), so a German utterance is never labelled with an emotion EmoDB does not have; the paper does not
  say whether its Base could, so this restriction, if anything, favours Base. The tower's sizes are the
  first domain's.
- ``sb`` (shared bottom): r = mean_i v_i, one tower per language: the paper's y_k = h_k(sum_i f_i(x)),
  scaled by 1/M so that its scale matches the gated models' convex combinations.
- ``omoe``: r = sum_i g_i(x) v_i with ONE softmax gate g shared by all languages.
- ``mmoe``: r = sum_i g_{k,i}(x) v_i with one gate per language k (eq. 7).
- ``nas`` (the paper's model): v -> u by the architecture-search module of eq. (8) with one architecture
  per language (:mod:`train.models.nas`), then r = sum_i g_{k,i}(x) u_i with one gate per language.

r is the representation (the contrastive auxiliary loss's input) and language k's tower h_k gives the
logits. Towers and gates only see their own language's rows, so a language's loss never reaches another
language's tower or gate. Logits are (batch, max classes); columns past a language's own classes are
-inf. ``ModelOutput.extras``: ``gates`` (batch, M), the weights each row gave the experts (uniform for
base and sb); ``xi`` (batch, M, M) for nas. ``ModelOutput.penalty``: ``l0_weight`` times the expected
number of open NAS connections (Louizos et al.'s L0 penalty; 0 by default, the paper has none).
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sercore.errors import DataError, OptionError
from sercore.labels import sorted_labels

from ..config import MULTIDOMAIN_MODELS, MultiDomainConfig, TowerConfig
from ..model_io import Batch, DomainInfo, ModelOutput
from .gates import DomainGates
from .nas import NasModule
from .single import FeatureEncoders, build_feature_encoders
from .tower import ClassificationTower

Gating = Literal["none", "shared", "domain"]


def _tower(input_dim: int, n_classes: int, tower: TowerConfig) -> ClassificationTower:
    return ClassificationTower(input_dim, n_classes, tower.units, tower.activations, tower.dropout, tower.input_dropout)


class MultiDomainModel(nn.Module):
    """Batch -> ModelOutput(logits (batch, max n_classes), representation (batch, dim)); see the module docstring.

    ``classes[k]`` are domain k's labels; ``towers[k]`` its tower config (``shared_tower``: one tower over
    the union of labels, with ``towers[0]``'s sizes). ``experts`` are the features mixed (in that order),
    ``selector`` the feature whose encoding is the gates' input (None without gates); ``gate_bias`` gives
    every gate a bias (:mod:`train.models.gates`). ``unseen[k]`` (shared tower only): domain k's classes that are
    never predicted (their logit is -inf): a zero-shot language's emotions that no trained language has.
    ``expert_norm``: every expert's output (after NAS) is layer-normalised, without a learned scale, before the
    weighted sum, so only the gates decide how much of the sum each expert is.
    """

    def __init__(self, encoders: FeatureEncoders, languages: Sequence[str], classes: Sequence[Sequence[str]],
                 towers: Sequence[TowerConfig], experts: Sequence[str], dim: int = 256, gating: Gating = "domain",
                 selector: str | None = "ge2e", nas: NasModule | None = None, shared_tower: bool = False,
                 l0_weight: float = 0.0, split_by_domain: bool = True, gate_bias: bool = False,
                 unseen: Sequence[Sequence[str]] | None = None, expert_norm: bool = False,
                 gate_init: dict[str, float] | None = None):
        super().__init__()
        if gating != "none" and selector not in encoders.output_dims:
            raise ValueError(f"the gate selector {selector!r} is not among the features ({', '.join(encoders.features)})")
        if not experts:
            raise OptionError("--features", "a multi-domain model needs at least one feature expert besides the selector")
        self.encoders = encoders
        self.languages = list(languages)
        self.classes = [list(c) for c in classes]
        self.experts = list(experts)
        self.dim = dim
        self.gating = gating
        self.selector = selector if gating != "none" else None
        self.projections = nn.ModuleDict({f: nn.Linear(encoders.output_dims[f], dim) for f in self.experts})
        self.gates = (DomainGates(encoders.output_dims[selector], len(self.experts), len(self.languages), shared=gating == "shared",
                                  bias=gate_bias, init=initial_weights(self.experts, gate_init))
                      if gating != "none" else None)
        self.nas = nas
        self.l0_weight = l0_weight
        self.split_by_domain = split_by_domain
        self.expert_norm = expert_norm
        self.width = max(len(c) for c in self.classes)
        self.shared_tower = shared_tower
        if shared_tower:
            self.union = sorted_labels(c for cs in self.classes for c in cs)
            self.towers = nn.ModuleList([_tower(dim, len(self.union), towers[0])])
            for k, cs in enumerate(self.classes):  # union column of each of domain k's classes
                self.register_buffer(f"columns{k}", torch.tensor([self.union.index(c) for c in cs]), persistent=False)
        else:
            self.union = None
            self.towers = nn.ModuleList(_tower(dim, len(cs), t) for cs, t in zip(self.classes, towers))
        unseen = [list(u) for u in (unseen or [[] for _ in self.classes])]
        if any(unseen) and not shared_tower:
            raise ValueError("only the shared tower (base) can mask a language's classes")
        for k, (cs, u) in enumerate(zip(self.classes, unseen)):  # columns never predicted for domain k
            self.register_buffer(f"unseen{k}", torch.tensor([c in u for c in cs]), persistent=False)

    def tower(self, domain: int) -> ClassificationTower:
        """The tower domain ``domain``'s rows go through."""
        return self.towers[0 if self.shared_tower else domain]

    def encode(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Every feature's (batch, dim) encoding by the shared encoders, each row once.

        With ``split_by_domain``, each language's rows go through the encoders as their own sub-batch, its
        padding trimmed to that language's longest utterance: EmoDB's utterances are 1.2-9 s, EMOVO's up to 14 s, and
        padding every German row of a mixed batch to the longest Italian one cost more than the extra
        encoder call per language (docs/results/multidomain_speed.md).
        """
        domains = batch.domains.unique().tolist()
        if not self.split_by_domain or len(domains) == 1:
            return self.encoders.encode(batch)
        parts: dict[str, torch.Tensor] = {}
        for d in domains:
            rows = (batch.domains == d).nonzero(as_tuple=True)[0]
            for f, enc in self.encoders.encode(batch.select(rows)).items():
                if f not in parts:
                    parts[f] = enc.new_zeros(len(batch), enc.shape[-1])
                parts[f] = parts[f].index_copy(0, rows, enc)
        return parts

    def experts_of(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The shared bottom: v (batch, M, dim), and every feature's encoding."""
        parts = self.encode(batch)
        v = torch.stack([self.projections[f](parts[f]) for f in self.experts], dim=1)
        return v, parts

    def forward(self, batch: Batch) -> ModelOutput:
        domains = batch.domains
        v, parts = self.experts_of(batch)
        extras = {}
        if self.nas is not None:
            v, xi = self.nas(v, domains)
            extras["xi"] = xi
        if self.gates is None:
            weights = v.new_full(v.shape[:2], 1.0 / v.shape[1])
        else:
            weights = self.gates(parts[self.selector], domains)
        extras["gates"] = weights
        if self.expert_norm:
            v = F.layer_norm(v, v.shape[-1:])
        representation = (weights[..., None] * v).sum(dim=1)  # (batch, dim)
        logits = representation.new_zeros(len(batch), self.width)
        for d in domains.unique().tolist():
            rows = (domains == d).nonzero(as_tuple=True)[0]
            out = self.tower(d)(representation[rows])
            if self.shared_tower:
                out = out[:, getattr(self, f"columns{d}")].masked_fill(getattr(self, f"unseen{d}"), float("-inf"))
            logits = logits.index_copy(0, rows, F.pad(out, (0, self.width - out.shape[1]), value=float("-inf")))
        penalty = 0.0
        if self.nas is not None and self.l0_weight > 0 and self.training:
            penalty = self.l0_weight * self.nas.expected_l0()
        return ModelOutput(logits, representation, penalty, extras)

    @torch.no_grad()
    def describe(self, extras: dict[str, np.ndarray], domains: np.ndarray) -> dict:
        """What a run reports about the mixing (mean gate weight per language and expert over the rows given,
        e.g. the test set; NAS connection probabilities per language), as plain numbers; {} for base and sb,
        whose fixed uniform weights say nothing."""
        if self.gates is None and self.nas is None:
            return {}
        out: dict = {"experts": self.experts, "selector": self.selector, "gates": {}}
        gates = extras.get("gates")
        for k, lang in enumerate(self.languages):
            rows = domains == k
            if gates is not None and rows.any():
                out["gates"][lang] = {f: float(w) for f, w in zip(self.experts, gates[rows].mean(0))}
        if self.nas is not None:
            probs = self.nas.probabilities()
            out["nas"] = {lang: {name: p[k].tolist() for name, p in probs.items()} for k, lang in enumerate(self.languages)}
        return out


def _check_domains(domains: Sequence[DomainInfo]) -> None:
    first = domains[0]
    for d in domains[1:]:
        if d.kinds != first.kinds:
            raise DataError(f"the stores of {first.language} and {d.language}", "different features "
                             f"({', '.join(first.kinds)} vs {', '.join(d.kinds)}); a shared bottom needs the same ones")
        for f in first.kinds:
            if d.dims.get(f) != first.dims.get(f):
                raise DataError(f"the stores of {first.language} and {d.language}", f"feature {f!r} is {first.dims.get(f)}-d for {first.language} but {d.dims.get(f)}-d for "
                                 f"{d.language}: extract both with the same settings")


def initial_weights(experts: Sequence[str], given: dict[str, float] | None) -> list[float] | None:
    """Initial gate weights per expert: ``given[feature]`` for the features named, the rest shared equally by
    the others; None when nothing is given (uniform)."""
    if not given:
        return None
    unknown = [f for f in given if f not in experts]
    if unknown:
        raise OptionError("--gate-init", f"{', '.join(unknown)}: not among the gated experts ({', '.join(experts)})")
    others = [f for f in experts if f not in given]
    if not others:
        if abs(sum(given.values()) - 1) > 1e-6:
            raise OptionError("--gate-init", f"gives every expert a weight; they must sum to 1, not {sum(given.values())}")
        return [given[f] for f in experts]
    rest = (1.0 - sum(given.values())) / len(others)
    return [given.get(f, rest) for f in experts]


def _unseen(config, domains: Sequence[DomainInfo]) -> list[list[str]]:
    """Per domain, the classes no trained domain has, for the zero-shot domains (``few_shot`` 0); [] otherwise."""
    zero = {d.language for d in domains if config.few_shot.get(d.language) == 0}
    trained = {c for d in domains if d.language not in zero for c in d.classes}
    return [[c for c in d.classes if c not in trained] if d.language in zero else [] for d in domains]


def build_multidomain_model(config, domains: list[DomainInfo], kind: str) -> MultiDomainModel:
    """``kind`` in :data:`MULTIDOMAIN_MODELS`; ``config`` an :class:`~train.config.ExperimentConfig`."""
    if kind not in MULTIDOMAIN_MODELS:
        raise ValueError(f"unknown multi-domain model {kind!r} (known: {', '.join(MULTIDOMAIN_MODELS)})")
    _check_domains(domains)
    md: MultiDomainConfig = config.multidomain
    if config.train.label_smoothing > 0 and len({len(d.classes) for d in domains}) > 1:
        raise OptionError("--label-smoothing", "label smoothing would put weight on the -inf columns of languages with fewer classes; "
                         "use --label-smoothing 0 with multi-domain models")
    first = domains[0]
    features = list(first.kinds)
    encoders = build_feature_encoders(config, first, len(domains))
    gating: Gating = {"base": "none", "sb": "none", "omoe": "shared", "mmoe": "domain", "nas": "domain"}[kind]
    if gating != "none" and md.selector not in features:
        raise OptionError("--selector", f"the {kind} gates read feature {md.selector!r} (the selector x of eq. 7), which is not among "
                         f"--features {','.join(features)}: add it, or choose another with --selector")
    experts = [f for f in features if md.selector_expert or gating == "none" or f != md.selector]
    nas = None
    if kind == "nas":
        nas = NasModule(len(experts), md.dim, len(domains), md.beta, md.gamma, md.zeta, md.init_log_alpha)
        if md.nas_lr_scale != 1.0:
            nas.gates.lr_scale = md.nas_lr_scale  # the trainer gives modules with an lr_scale their own learning rate
    model = MultiDomainModel(
        encoders, [d.language for d in domains], [d.classes for d in domains],
        [config.language(d.language).tower for d in domains], experts, dim=md.dim, gating=gating,
        selector=md.selector if gating != "none" else None, nas=nas, shared_tower=kind == "base", l0_weight=md.l0_weight,
        split_by_domain=md.split_by_domain, gate_bias=md.gate_bias, unseen=_unseen(config, domains),
        expert_norm=md.expert_norm, gate_init=md.gate_init,
    )
    if model.gates is not None and md.gate_lr_scale != 1.0:
        model.gates.lr_scale = md.gate_lr_scale
    return model
