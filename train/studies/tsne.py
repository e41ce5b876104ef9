"""Figure 3: t-SNE of the test representations of run 0, fitted without and with the auxiliary loss."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import ExperimentConfig
from ..repeated_runs import Log, load_domains
from ..fit_run import fit_run
from ..plots import plot_tsne


def run_tsne(config: ExperimentConfig, log: Log = print) -> Path:
    """Figure 3: fit run 0 without and with the auxiliary loss, t-SNE of the test representations."""
    domain_data, features = load_domains(config)
    panels = []
    for aux in (False, True):
        cfg = replace(config, train=replace(config.train, aux=aux))
        r = fit_run(cfg, domain_data, features, 0, description=f"t-SNE, aux {'on' if aux else 'off'}")
        alpha = 0.0 if not aux else (cfg.language(domain_data[0].spec.language).alpha if cfg.train.alpha is None else cfg.train.alpha)
        names = np.array(domain_data[0].classes)[r.fit.test.labels]
        panels.append((f"alpha = {alpha:g} (test UA {r.fit.test.ua:.3f})", r.fit.test.representations, names))
        log(f"  t-SNE run, aux {'on' if aux else 'off'}: test UA {r.fit.test.ua:.3f}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    path = plot_tsne(panels, out / "tsne.png", seed=config.first_seed,
                     title=f"{domain_data[0].spec}, test representations ({config.protocol} protocol, run 0)")
    log(f"t-SNE plot -> {path}")
    return path
