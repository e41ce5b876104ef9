"""Models of the trainer, and the registry ``train --model NAME`` picks from.

Contract between a model and the trainer (``train/trainer.py``):

- built by a builder ``build(config: ExperimentConfig, domains: list[DomainInfo]) -> nn.Module``
  registered in :data:`MODELS` as ``"module:function"`` (imported lazily);
- ``model(batch: Batch) -> ModelOutput``: ``logits`` (batch, n_classes) where the columns are the row's
  domain's classes (a multi-domain model pads narrower domains with ``-inf``), ``representation``
  (batch, dim) used by the contrastive auxiliary loss, ``penalty`` a scalar added to the loss as is
  (e.g. an architecture-search regulariser; 0 for the single-domain model);
- modules of type :class:`train.models.ge2e.Ge2eEncoder` inside the model are trained at
  ``lr * ge2e_lr_scale``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import torch


@dataclass
class DomainInfo:
    """What a builder needs to know about one language domain."""

    language: str
    classes: list[str]
    kinds: dict[str, str]  # model input feature -> "sequence" | "embedding"
    dims: dict[str, int]  # feature -> last dimension (includes auxiliary inputs such as ge2e_mel)


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (batch, n_classes)
    representation: torch.Tensor  # (batch, dim)
    penalty: torch.Tensor | float = 0.0
    extras: dict = field(default_factory=dict)


#: ``--model`` name -> "module:builder".
MODELS: dict[str, str] = {
    "single": "train.models.single:build_single_domain_model",
    # section 5.2.2 / table 3 (train/models/multidomain.py)
    "base": "train.models.multidomain:build_base",
    "sb": "train.models.multidomain:build_sb",
    "omoe": "train.models.multidomain:build_omoe",
    "mmoe": "train.models.multidomain:build_mmoe",
    "nas": "train.models.multidomain:build_nas",
}


def build_model(name: str, config, domains: list[DomainInfo]) -> torch.nn.Module:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(MODELS)})")
    module, function = MODELS[name].split(":")
    return getattr(importlib.import_module(module), function)(config, domains)
