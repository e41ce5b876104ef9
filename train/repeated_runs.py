"""Run one configuration over seeds (random protocol) or speaker folds (speaker protocol) and report.

Outputs under ``config.out``::

    config.json        the configuration, the resolved domains (language=dataset) and features, versions
    metrics.json       protocol, every run (seed or fold, test speakers, valid/test WA, UA, per-class recall,
                       confusion, best epoch, per-epoch history, seconds, calibration: the temperature fitted on
                       valid and the expected calibration error before/after on valid and test) and the
                       summary (mean, std)
    metrics.csv        one row per run and domain, then mean and std rows
    confusion_<lang>.png   test confusion matrix summed over runs (row-normalised)
    gates*.csv/png, nas*.csv/png, gates_differ.csv   multi-domain models with gates: their weights (and NAS
                       connections) on the test set and over training, per-language differences (train/gate_reports.py)
    checkpoints/run<k>.pt  best weights of run k (with the aux loss's w, b, the scaler and the classes)
    runs/run<k>.{json,pt}  each finished run's record and checkpoint: a rerun resumes from them (train/run_records.py)
    provenance.json    versions, git commit, fingerprint of config and data, checkpoint SHA-256s
    tsne.png           (--tsne) test representations of run 0 without and with the auxiliary loss
    model.bundle       the best run (by validation UA) for `predict`: weights, classes, scalers, provenance
                       (format: sercore/bundle.py, written by train/bundle_export.py)

Standard deviations are sample standard deviations (ddof=1) over runs.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from sercore.errors import OptionError, StoreError

from .config import ENSEMBLE_MODEL, HEAD_MODELS, ExperimentConfig, ensemble_members
from .domains import DomainData, load_domain, resolve_domain, stored_features
from .bundle_export import export_experiment
from .fit_run import fit_run, input_features
from .gate_reports import GateDifference, differ_summary
from .run_folder import save_config, write_outputs
from .protocol import n_runs, split_key
from .run_records import RunState, fingerprint

Log = Callable[[str], None]


def load_domains(config: ExperimentConfig) -> tuple[list[DomainData], list[str]]:
    """Every domain of ``config`` read from its stores, and the model's features (default: all in the stores)."""
    specs = [resolve_domain(d, config.features_dir) for d in config.domains]  # each resolved once, here
    if len({s.language for s in specs}) != len(specs):
        raise StoreError(config.features_dir, f"a language is given twice in --domains {','.join(config.domains)}")
    own, inputs = stored_features(specs[0], config.features_dir)
    features = list(config.features) if config.features else own
    bad = [f"{i} is the input of {f}'s fine-tuning" for f, i in inputs.items() if i in features]
    if bad:
        raise StoreError(config.features_dir, f"{'; '.join(bad)}, not a feature of its own (use --features ge2e --finetune-ge2e)")
    domain_data = [load_domain(s, config.features_dir, input_features(config, features, inputs)) for s in specs]
    for data in domain_data if config.protocol == "speaker" and config.folds is not None else []:
        speakers = len(set(data.speakers))
        if config.folds > speakers:  # the option does not fit the data: a usage error, as --folds 2 is
            raise OptionError("--folds", f"{config.folds} speaker folds, but {data.spec} has {speakers} speakers "
                                         f"(give 3 to {speakers}, or leave --folds out: one fold per speaker)")
    return domain_data, features


def resolved(config: ExperimentConfig, domain_data: list[DomainData], features: list[str]) -> ExperimentConfig:
    """``config`` as it runs on ``domain_data``: every domain as ``LANG=DATASET``, the features listed. This is what the
    run fingerprints, records in ``config.json`` and bundles, so the file reruns the run without resolving anything."""
    return replace(config, domains=[str(d.spec) for d in domain_data], features=list(features))


def run_experiment(config: ExperimentConfig, log: Log = print, domain_data: list[DomainData] | None = None,
                   features: list[str] | None = None) -> dict:
    """Fit every run of ``config``, write the outputs, return the metrics (see module docstring)."""
    if domain_data is None:
        domain_data, features = load_domains(config)
    config = resolved(config, domain_data, features)
    out = Path(config.out)
    state = RunState(out, fingerprint(config, domain_data, features), log=log)  # refuses another experiment's finished runs
    out.mkdir(parents=True, exist_ok=True)
    total = n_runs(domain_data[0], config.protocol, config.seeds, config.folds)
    if config.protocol == "speaker":
        total = max(n_runs(d, "speaker", config.seeds, config.folds) for d in domain_data)
    save_config(config, domain_data, features, out, total)
    what = "seed" if config.protocol == "random" else "fold"
    fitting = (f"{config.model} on pooled statistics" if config.model in HEAD_MODELS else
               f"{config.train.epochs} epochs, aux loss {'on' if config.train.aux else 'off'}")
    if config.model == ENSEMBLE_MODEL:
        fitting = f"ensemble of {', '.join(ensemble_members(config))} (the network: {fitting})"
    log(f"{','.join(str(d.spec) for d in domain_data)}: {', '.join(features)}; {config.protocol} protocol, {total} {what}s, "
        f"{fitting} -> {out}")
    runs = []
    for run in range(total):
        label = f"{what} {split_key(config.protocol, config.first_seed, run)}"
        r = state.load(run)  # a run finished before this process was started (same fingerprint)
        loaded = r is not None
        if not loaded:
            r = fit_run(config, domain_data, features, run, description=f"{what} {run + 1}/{total}")
            state.save(r, {**r.fit.state, "classes": [d.classes for d in domain_data], "features": features,
                           "domains": [str(d.spec) for d in domain_data], "run": run, "seed": r.seed, "fold": r.fold,
                           "config": config.to_dict()})
        runs.append(r)
        scores = "; ".join(f"{domain_data[d].spec.language} WA {s.wa:.3f} UA {s.ua:.3f}" for d, s in r.fit.test.scores.items())
        speakers = "" if what == "seed" else " test speakers " + ",".join(sp for v in r.test_speakers.values() for sp in v)
        done = f", finished earlier: loaded from {state.record_path(run)}" if loaded else ""
        chosen = r.fit.history[0].get("chosen") if r.fit.history else None  # a head: its hyperparameters
        how = (", ".join(f"{k} {v:.3g}" for k, v in chosen.items() if isinstance(v, (int, float))) if chosen
               else f"best epoch {r.fit.best_epoch}")
        log(f"  {label}:{speakers} test {scores} ({how}, {r.fit.seconds:.0f} s{done})")
        if config.save_checkpoints:
            state.copy_checkpoint(run, out / "checkpoints" / f"run{run}.pt")
    metrics = write_outputs(config, domain_data, features, runs, out)
    state.write_provenance(list(range(total)), domain_data)
    export_experiment(config, domain_data, features, runs, metrics, out)
    if "gates_differ" in metrics.get("mixing", {}):
        log(differ_summary([GateDifference.from_dict(d) for d in metrics["mixing"]["gates_differ"]], config.model))
    for lang, s in metrics["domains_summary"].items():
        log(f"{lang}: test UA {s['test_ua']['mean']:.3f} +- {s['test_ua']['std']:.3f}, "
            f"WA {s['test_wa']['mean']:.3f} +- {s['test_wa']['std']:.3f} over {total} {what}s ({config.protocol} protocol)")
        if "test_ece_before" in s.get("calibration", {}):
            c = s["calibration"]
            log(f"{lang}: test expected calibration error {c['test_ece_before']['mean']:.3f} -> {c['test_ece_after']['mean']:.3f} "
                f"with the temperature fitted on valid (valid {c['valid_ece_before']['mean']:.3f} -> {c['valid_ece_after']['mean']:.3f})")
    return metrics
