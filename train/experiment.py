"""Run one configuration over seeds (random protocol) or speaker folds (speaker protocol) and report.

Outputs under ``config.out``::

    config.json        the configuration, the resolved domains (language=dataset) and features, versions
    metrics.json       protocol, every run (seed or fold, test speakers, valid/test WA, UA, per-class recall,
                       confusion, best epoch, per-epoch history, seconds) and the summary (mean, std)
    metrics.csv        one row per run and domain, then mean and std rows
    confusion_<lang>.png   test confusion matrix summed over runs (row-normalised)
    checkpoints/run<k>.pt  best weights of run k (with the aux loss's w, b, the scaler and the classes)
    runs/run<k>.{json,pt}  each finished run's record and checkpoint: a rerun resumes from them (train/runstate.py)
    provenance.json    versions, git commit, fingerprint of config and data, checkpoint SHA-256s
    tsne.png           (--tsne) test representations of run 0 without and with the auxiliary loss
    model.bundle       the best run (by validation UA) for `predict`: weights, classes, scalers, provenance
                       (format: train/bundle.py)

Standard deviations are sample standard deviations (ddof=1) over runs.
"""

from __future__ import annotations

import csv
import json
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from sercore.errors import StoreError

from .compare import mixing_summary, write_mixing
from .config import ExperimentConfig, TrainConfig
from .data import (AUXILIARY_FEATURES, DomainData, FeatureDataset, FeatureScaler, SpeakerScaler, default_features, draw_split,
                   load_domain, n_runs, resolve_domain, split_indices)
from .models import DomainInfo, build_model
from .models.single import GE2E_FEATURE, GE2E_INPUT
from .runstate import RunState, environment, fingerprint
from .trainer import FitResult, Trainer

Log = Callable[[str], None]


@dataclass
class RunResult:
    run: int
    seed: int
    fold: int | None
    fit: FitResult
    test_speakers: dict[str, list[str]] = field(default_factory=dict)
    #: What a multi-domain model reports about its mixing (gate weights, NAS connections); see compare.py.
    details: dict = field(default_factory=dict)


def _input_features(config: ExperimentConfig, features: list[str]) -> list[str]:
    """What must be read from the stores: the model's features, plus ge2e_mel when GE2E is fine-tuned."""
    extra = [GE2E_INPUT] if config.train.finetune_ge2e and GE2E_FEATURE in features else []
    return features + [f for f in extra if f not in features]


def load_domains(config: ExperimentConfig) -> tuple[list[DomainData], list[str]]:
    specs = [resolve_domain(d, config.features_dir) for d in config.domains]
    if len({s.language for s in specs}) != len(specs):
        raise StoreError(config.features_dir, f"a language is given twice in --domains {','.join(config.domains)}")
    features = list(config.features) if config.features else default_features(specs[0], config.features_dir)
    bad = [f for f in features if f in AUXILIARY_FEATURES]
    if bad:
        raise StoreError(config.features_dir, f"{', '.join(bad)} is an input of GE2E fine-tuning, not a feature of its own "
                                              "(use --features ge2e --finetune-ge2e)")
    datas = [load_domain(s, config.features_dir, _input_features(config, features)) for s in specs]
    return datas, features


def domain_info(data: DomainData, features: list[str]) -> DomainInfo:
    return DomainInfo(data.spec.language, data.classes, {f: data.kinds[f] for f in features}, data.dims())


def fit_run(config: ExperimentConfig, datas: list[DomainData], features: list[str], run: int,
            description: str = "") -> RunResult:
    """Split, standardise, build and fit for run ``run`` (seed ``first_seed + run``, or fold ``run``)."""
    seed = config.first_seed + run
    fold = run if config.protocol == "speaker" else None
    parts: dict[str, list[FeatureDataset]] = {"train": [], "valid": [], "test": []}
    scalers, test_speakers = [], {}
    for d, data in enumerate(datas):
        splits = draw_split(data, config.protocol, fold if fold is not None else seed, config.folds)
        idx = split_indices(splits)
        if config.train.speaker_norm:
            scaler = SpeakerScaler.fit(data, skip=[GE2E_INPUT])
        elif config.train.standardize:
            scaler = FeatureScaler.fit(data, idx["train"], skip=[GE2E_INPUT])
        else:
            scaler = None
        scalers.append(scaler)
        for name in parts:
            crop = config.train.crop if name == "train" else 0.0
            parts[name].append(FeatureDataset(data, idx[name], data.classes, domain=d, scaler=scaler, crop=crop, seed=seed))
        test_speakers[data.spec.language] = sorted({data.speakers[i] for i in idx["test"]})
    datasets = {k: v[0] if len(v) == 1 else ConcatDataset(v) for k, v in parts.items()}
    alphas = [config.language(data.spec.language).alpha if config.train.alpha is None else config.train.alpha for data in datas]

    def make_trainer(train_config: TrainConfig, what: str) -> Trainer:
        torch.manual_seed(seed)  # the refit starts from the same initialisation as the selection fit
        np.random.seed(seed % 2**32)
        model = build_model(config.model, config, [domain_info(data, features) for data in datas])
        encoders = getattr(model, "encoders", None)
        if isinstance(scalers[0], FeatureScaler) and getattr(encoders, "ge2e", None) is not None and GE2E_FEATURE in scalers[0].mean:
            # the fine-tuned embedding is standardised with the stored embedding's training statistics
            encoders.ge2e_mean.copy_(torch.from_numpy(scalers[0].mean[GE2E_FEATURE]))
            encoders.ge2e_std.copy_(torch.from_numpy(scalers[0].std[GE2E_FEATURE]))
        return Trainer(model, train_config, [data.classes for data in datas], alphas, seed=seed, description=what)

    trainer = make_trainer(config.train, description)
    result = trainer.fit(datasets["train"], datasets["valid"], datasets["test"])
    if config.train.refit:
        # The number of epochs was chosen on the validation split; now train again on train + valid for exactly
        # that many epochs and test the last one (the validation scores reported stay those of the selection fit).
        refit_config = replace(config.train, epochs=result.best_epoch, selection="last", patience=None)
        trainer = make_trainer(refit_config, f"{description} refit")
        refit = trainer.fit(ConcatDataset(parts["train"] + parts["valid"]), datasets["valid"], datasets["test"])
        result = replace(result, test=refit.test, state=refit.state, seconds=result.seconds + refit.seconds,
                         history=result.history + [{"refit_epochs": result.best_epoch, "refit_seconds": refit.seconds}])
    # a per-speaker scaler is not part of the model: a new speaker brings its own statistics
    result.state["scalers"] = [{"mean": s.mean, "std": s.std} if isinstance(s, FeatureScaler) else None for s in scalers]
    describe = getattr(trainer.eval_model, "describe", None)  # multi-domain models: gates on the test set
    details = describe(result.test.extras, result.test.domains) if describe else {}
    return RunResult(run, seed, fold, result, test_speakers, details)


def _summary(values: list[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def summarise(config: ExperimentConfig, datas: list[DomainData], features: list[str], runs: list[RunResult]) -> dict:
    domains = {}
    for d, data in enumerate(datas):
        tests = [r.fit.test.scores[d] for r in runs]
        confusion = np.sum([np.asarray(s.confusion) for s in tests], axis=0)
        recall = {c: _summary([s.recall[c] for s in tests if s.recall[c] is not None]) for c in data.classes}
        domains[data.spec.language] = {
            "dataset": data.spec.dataset,
            "classes": data.classes,
            "test_wa": _summary([s.wa for s in tests]),
            "test_ua": _summary([s.ua for s in tests]),
            "valid_ua": _summary([r.fit.valid.scores[d].ua for r in runs]),
            "recall": recall,
            "confusion_sum": confusion.tolist(),
        }
    return {
        "protocol": config.protocol,
        "runs_are": "seeds" if config.protocol == "random" else "speaker folds",
        "model": config.model,
        "domains": [str(d.spec) for d in datas],
        "features": features,
        "aux": config.train.aux,
        "domains_summary": domains,
        "runs": [
            {
                "run": r.run,
                "seed": r.seed,
                "fold": r.fold,
                "test_speakers": r.test_speakers,
                "best_epoch": r.fit.best_epoch,
                "seconds": round(r.fit.seconds, 2),
                "test": {datas[d].spec.language: s.as_dict() for d, s in r.fit.test.scores.items()},
                "valid": {datas[d].spec.language: s.as_dict() for d, s in r.fit.valid.scores.items()},
                "history": r.fit.history,
                **({"mixing": r.details} if r.details else {}),
            }
            for r in runs
        ],
        **({"mixing": mixing_summary([r.details for r in runs])} if any(r.details for r in runs) else {}),
    }


def write_outputs(config: ExperimentConfig, datas: list[DomainData], features: list[str], runs: list[RunResult],
                  out: Path) -> dict:
    from .plots import plot_confusion

    metrics = summarise(config, datas, features, runs)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    with (out / "metrics.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "protocol", "domain", "seed", "fold", "test_wa", "test_ua", "valid_ua", "best_epoch", "seconds", "features", "aux"])
        feats = "+".join(features)
        for r in runs:
            for d, s in r.fit.test.scores.items():
                w.writerow([f"run{r.run}", config.protocol, datas[d].spec.language, r.seed, "" if r.fold is None else r.fold,
                            f"{s.wa:.4f}", f"{s.ua:.4f}", f"{r.fit.valid.scores[d].ua:.4f}", r.fit.best_epoch,
                            f"{r.fit.seconds:.1f}", feats, config.train.aux])
        for stat in ("mean", "std"):
            for lang, s in metrics["domains_summary"].items():
                w.writerow([stat, config.protocol, lang, "", "", f"{s['test_wa'][stat]:.4f}", f"{s['test_ua'][stat]:.4f}",
                            f"{s['valid_ua'][stat]:.4f}", "", "", feats, config.train.aux])
    for lang, s in metrics["domains_summary"].items():
        title = (f"{lang} ({s['dataset']}), {config.protocol} protocol, {len(runs)} runs: "
                 f"UA {s['test_ua']['mean']:.3f}, WA {s['test_wa']['mean']:.3f}")
        plot_confusion(np.asarray(s["confusion_sum"]), s["classes"], out / f"confusion_{lang}.png", title)
    if "mixing" in metrics:
        write_mixing(metrics["mixing"], out, f"{config.model}, {config.protocol} protocol, {len(runs)} runs")
    return metrics


def _save_config(config: ExperimentConfig, datas: list[DomainData], features: list[str], out: Path) -> None:
    d = config.to_dict()
    d["resolved"] = {
        "domains": [str(x.spec) for x in datas],
        "features": features,
        "stores": [str(p) for x in datas for p in x.paths],
        "utterances": {x.spec.language: len(x) for x in datas},
        "provenance": {f: {k: v for k, v in datas[0].provenance[f].items() if k != "kind"} for f in features},
        "torch": torch.__version__,
        **{k: v for k, v in environment().items() if k in ("versions", "git_commit")},
        "python": platform.python_version(),
        "machine": platform.machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    (out / "config.json").write_text(json.dumps(d, indent=2, sort_keys=True, default=str))


def run_experiment(config: ExperimentConfig, log: Log = print, datas: list[DomainData] | None = None,
                   features: list[str] | None = None) -> dict:
    """Fit every run of ``config``, write the outputs, return the metrics (see module docstring)."""
    if datas is None:
        datas, features = load_domains(config)
    out = Path(config.out)
    state = RunState(out, fingerprint(config, datas, features), log=log)  # refuses another experiment's finished runs
    out.mkdir(parents=True, exist_ok=True)
    _save_config(config, datas, features, out)
    total = n_runs(datas[0], config.protocol, config.seeds, config.folds)
    if config.protocol == "speaker":
        total = max(n_runs(d, "speaker", config.seeds, config.folds) for d in datas)
    what = "seed" if config.protocol == "random" else "fold"
    log(f"{','.join(str(d.spec) for d in datas)}: {', '.join(features)}; {config.protocol} protocol, {total} {what}s, "
        f"{config.train.epochs} epochs, aux loss {'on' if config.train.aux else 'off'} -> {out}")
    runs = []
    for run in range(total):
        label = f"{what} {config.first_seed + run if what == 'seed' else run}"
        r = state.load(run)  # a run finished before this process was started (same fingerprint)
        loaded = r is not None
        if not loaded:
            r = fit_run(config, datas, features, run, description=f"{what} {run + 1}/{total}")
            state.save(r, {**r.fit.state, "classes": [d.classes for d in datas], "features": features,
                           "domains": [str(d.spec) for d in datas], "run": run, "seed": r.seed, "fold": r.fold,
                           "config": config.to_dict()})
        runs.append(r)
        scores = "; ".join(f"{datas[d].spec.language} WA {s.wa:.3f} UA {s.ua:.3f}" for d, s in r.fit.test.scores.items())
        speakers = "" if what == "seed" else " test speakers " + ",".join(sp for v in r.test_speakers.values() for sp in v)
        done = f", finished earlier: loaded from {state.record_path(run)}" if loaded else ""
        log(f"  {label}:{speakers} test {scores} (best epoch {r.fit.best_epoch}, {r.fit.seconds:.0f} s{done})")
        if config.save_checkpoints:
            state.copy_checkpoint(run, out / "checkpoints" / f"run{run}.pt")
    metrics = write_outputs(config, datas, features, runs, out)
    state.write_provenance(list(range(total)), datas)
    from .bundle import export_experiment  # model.bundle: the best run's weights for `predict`

    export_experiment(config, datas, features, runs, metrics, out)
    for lang, s in metrics["domains_summary"].items():
        log(f"{lang}: test UA {s['test_ua']['mean']:.3f} +- {s['test_ua']['std']:.3f}, "
            f"WA {s['test_wa']['mean']:.3f} +- {s['test_wa']['std']:.3f} over {total} {what}s ({config.protocol} protocol)")
    return metrics


def run_tsne(config: ExperimentConfig, log: Log = print) -> Path:
    """Figure 3: fit run 0 without and with the auxiliary loss, t-SNE of the test representations."""
    from .plots import plot_tsne

    datas, features = load_domains(config)
    panels = []
    for aux in (False, True):
        cfg = replace(config, train=replace(config.train, aux=aux))
        r = fit_run(cfg, datas, features, 0, description=f"t-SNE, aux {'on' if aux else 'off'}")
        alpha = 0.0 if not aux else (cfg.language(datas[0].spec.language).alpha if cfg.train.alpha is None else cfg.train.alpha)
        names = np.array(datas[0].classes)[r.fit.test.labels]
        panels.append((f"alpha = {alpha:g} (test UA {r.fit.test.ua:.3f})", r.fit.test.representations, names))
        log(f"  t-SNE run, aux {'on' if aux else 'off'}: test UA {r.fit.test.ua:.3f}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    path = plot_tsne(panels, out / "tsne.png", seed=config.first_seed,
                     title=f"{datas[0].spec}, test representations ({config.protocol} protocol, run 0)")
    log(f"t-SNE plot -> {path}")
    return path


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
    datas, features = load_domains(config)
    table = {}
    for name, cfg in ablation_configs(config, features).items():
        log(f"ablation {name}")
        feats = cfg.features or features
        sub = [load_domain(d.spec, cfg.features_dir, _input_features(cfg, feats)) for d in datas] if cfg.features else datas
        metrics = run_experiment(cfg, log=log, datas=sub, features=feats)
        table[name] = {lang: {"ua": s["test_ua"], "wa": s["test_wa"]} for lang, s in metrics["domains_summary"].items()}
    out = Path(config.out) / "ablations"
    (out / "ablations.json").write_text(json.dumps({"protocol": config.protocol, "variants": table}, indent=2))
    with (out / "ablations.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "domain", "protocol", "ua_mean", "ua_std", "wa_mean", "wa_std", "runs"])
        for name, per in table.items():
            for lang, s in per.items():
                w.writerow([name, lang, config.protocol, f"{s['ua']['mean']:.4f}", f"{s['ua']['std']:.4f}",
                            f"{s['wa']['mean']:.4f}", f"{s['wa']['std']:.4f}", s["ua"]["n"]])
    log(f"ablation table -> {out / 'ablations.csv'}")
    return table
