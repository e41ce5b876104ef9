"""Models of the trainer, and the registry ``train --model NAME`` picks from.

Contract between a model and the trainer (``train/network_trainer.py``):

- built by a builder ``build(config: ExperimentConfig, domains: list[DomainInfo]) -> nn.Module``
  registered in :data:`MODELS`;
- ``model(batch: Batch) -> ModelOutput`` (:mod:`train.model_io` defines the three types and their shapes);
- modules of type :class:`train.models.ge2e.Ge2eEncoder` inside the model are trained at
  ``lr * ge2e_lr_scale``.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch

from ..config import ENSEMBLE_MODEL, HEAD_MODELS, MULTIDOMAIN_MODELS, ConfigError
from ..model_io import DomainInfo
from .ensemble import build_ensemble
from .pooled_head import build_head
from .multidomain import build_multidomain_model
from .single import build_single_domain_model

#: ``--model`` name -> builder: the single-domain model, those of section 5.2.2 / table 3, and the heads on
#: pooled statistics (``train/pooled_heads.py``: fitted by scikit-learn, not by the trainer), and their ensemble with the
#: network (``train/ensemble_weights.py``).
MODELS: dict[str, Callable[..., torch.nn.Module]] = {
    "single": build_single_domain_model,
    **{name: partial(build_multidomain_model, kind=name) for name in MULTIDOMAIN_MODELS},
    **{name: build_head for name in HEAD_MODELS},
    ENSEMBLE_MODEL: build_ensemble,
}


def build_model(name: str, config, domains: list[DomainInfo]) -> torch.nn.Module:
    if name not in MODELS:
        raise ConfigError("model", f"unknown model {name!r} (known: {', '.join(MODELS)})")
    return MODELS[name](config, domains)
