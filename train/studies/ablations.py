"""Table 4 (with and without the auxiliary loss) and figure 4a (each feature alone) as run folders under
``<out>/ablations/``, with ``ablations.{json,csv}`` summing them up."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from sercore.tables import write_csv

from ..config import ExperimentConfig
from ..domains import load_domain
from ..repeated_runs import Log, load_domains, run_experiment
from ..fit_run import input_features


def ablation_configs(config: ExperimentConfig, features: list[str]) -> dict[str, ExperimentConfig]:
    """Table 4 (with and without the auxiliary loss) and figure 4a (each feature alone)."""
    out = Path(config.out) / "ablations"
    variants = {
        "all_features": replace(config, out=str(out / "all_features")),
        "no_aux": replace(config, train=replace(config.train, aux=False), out=str(out / "no_aux")),
    }
    for f in features:
        variants[f"only_{f}"] = replace(config, features=[f], out=str(out / f"only_{f}"))
    return variants


def run_ablations(config: ExperimentConfig, log: Log = print) -> dict:
    domain_data, features = load_domains(config)
    table = {}
    for name, cfg in ablation_configs(config, features).items():
        log(f"ablation {name}")
        feats = cfg.features or features
        sub = [load_domain(d.spec, cfg.features_dir, input_features(cfg, feats, d.inputs)) for d in domain_data] if cfg.features else domain_data
        metrics = run_experiment(cfg, log=log, domain_data=sub, features=feats)
        table[name] = {lang: {"ua": s["test_ua"], "wa": s["test_wa"]} for lang, s in metrics["domains_summary"].items()}
    out = Path(config.out) / "ablations"
    (out / "ablations.json").write_text(json.dumps({"protocol": config.protocol, "variants": table}, indent=2))
    write_csv(out / "ablations.csv", ((name, lang, config.protocol, f"{s['ua']['mean']:.4f}", f"{s['ua']['std']:.4f}",
                                       f"{s['wa']['mean']:.4f}", f"{s['wa']['std']:.4f}", s["ua"]["n"])
                                      for name, per in table.items() for lang, s in per.items()),
              ["variant", "domain", "protocol", "ua_mean", "ua_std", "wa_mean", "wa_std", "runs"])
    log(f"ablation table -> {out / 'ablations.csv'}")
    return table
