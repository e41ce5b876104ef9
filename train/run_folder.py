"""The files of a run folder computed from its runs: ``config.json``, ``metrics.json``, ``metrics.csv``,
``confusion_<lang>.png`` and, for multi-domain models, the mixing reports at the end and over training
(gates.csv, nas.csv, gates_differ.csv, ...: see :mod:`train.gate_reports`)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sercore.fsio import write_atomic
from sercore.tables import write_csv

from .calibration import calibrate_run
from .config import ExperimentConfig
from .domains import DomainData
from .fit_run import RunResult
from .metrics import run_summary
from .gate_reports import mixing_summary, write_mixing, write_traces
from .models.layer_weights import write_layer_weights
from .plots import plot_confusion
from .protocol import split_key, split_source
from .run_records import environment


def run_calibration(domain_data: list[DomainData], run: RunResult) -> dict[str, dict]:
    """A run's calibration per language (:func:`train.calibration.calibrate_run`: the temperature fitted on its
    validation split, the ECE before and after on valid and test); {} for records without probabilities."""
    found = calibrate_run(run.fit.valid, run.fit.test, [d.classes for d in domain_data]) or {}
    return {domain_data[d].spec.language: c for d, c in found.items()}


def summarise(config: ExperimentConfig, domain_data: list[DomainData], features: list[str], runs: list[RunResult]) -> dict:
    domains = {}
    calibrations = [run_calibration(domain_data, r) for r in runs]
    for d, data in enumerate(domain_data):
        tests = [r.fit.test.scores[d] for r in runs]
        valid = [r.fit.valid.scores[d].ua for r in runs if d in r.fit.valid.scores]  # none for a zero-shot language
        confusion = np.sum([np.asarray(s.confusion) for s in tests], axis=0)
        recalls = {c: [s.recall[c] for s in tests if s.recall[c] is not None] for c in data.classes}
        recall = {c: run_summary(v) if v else None for c, v in recalls.items()}  # None: never tested (zero-shot)
        domains[data.spec.language] = {
            "dataset": data.spec.dataset,
            "classes": data.classes,
            "test_wa": run_summary([s.wa for s in tests]),
            "test_ua": run_summary([s.ua for s in tests]),
            **({"valid_ua": run_summary(valid)} if valid else {}),
            "recall": recall,
            "confusion_sum": confusion.tolist(),
        }
        found = [c[data.spec.language] for c in calibrations if data.spec.language in c]
        if found:  # the ECE before and after temperature scaling, over runs
            domains[data.spec.language]["calibration"] = {
                k: run_summary([c[k] for c in found]) for k in found[0] if k not in ("method", "n_valid")}
    return {
        "protocol": config.protocol,
        "runs_are": "seeds" if config.protocol == "random" else "speaker folds",
        "model": config.model,
        "domains": [str(d.spec) for d in domain_data],
        "features": features,
        "aux": config.train.aux,
        "domains_summary": domains,
        "runs": [
            {
                "run": r.run,
                "seed": r.seed,
                "fold": r.fold,
                "test_speakers": r.test_speakers,
                "split": split_source(config.protocol, r.seed if r.fold is None else r.fold),
                "best_epoch": r.fit.best_epoch,
                "seconds": round(r.fit.seconds, 2),
                "test": {domain_data[d].spec.language: s.as_dict() for d, s in r.fit.test.scores.items()},
                "valid": {domain_data[d].spec.language: s.as_dict() for d, s in r.fit.valid.scores.items()},
                "history": r.fit.history,
                **({"mixing": r.details} if r.details else {}),
                **({"calibration": c} if c else {}),
            }
            for r, c in zip(runs, calibrations)
        ],
        **({"mixing": mixing_summary([r.details for r in runs])} if any(r.details for r in runs) else {}),
    }


#: The columns of ``metrics.csv``: one row per run and language, then the mean and std rows of each language.
METRICS_COLUMNS = ("row", "protocol", "domain", "seed", "fold", "test_wa", "test_ua", "valid_ua", "best_epoch", "seconds",
                   "features", "aux")


def metrics_rows(config: ExperimentConfig, domain_data: list[DomainData], features: list[str], runs: list[RunResult],
                 metrics: dict) -> list[dict]:
    """The rows of ``metrics.csv`` (:data:`METRICS_COLUMNS`), scores to 4 decimals; the mean and std rows are those
    of ``metrics.json`` (``metrics``)."""
    common = {"protocol": config.protocol, "features": "+".join(features), "aux": config.train.aux}
    rows = [{"row": f"run{r.run}", **common, "domain": domain_data[d].spec.language, "seed": r.seed,
             "fold": "" if r.fold is None else r.fold, "test_wa": f"{s.wa:.4f}", "test_ua": f"{s.ua:.4f}",
             "valid_ua": f"{r.fit.valid.scores[d].ua:.4f}" if d in r.fit.valid.scores else "",
             "best_epoch": r.fit.best_epoch, "seconds": f"{r.fit.seconds:.1f}"}
            for r in runs for d, s in r.fit.test.scores.items()]
    rows += [{"row": stat, **common, "domain": lang, "test_wa": f"{s['test_wa'][stat]:.4f}", "test_ua": f"{s['test_ua'][stat]:.4f}",
              "valid_ua": f"{s['valid_ua'][stat]:.4f}" if "valid_ua" in s else ""}
             for stat in ("mean", "std") for lang, s in metrics["domains_summary"].items()]
    return rows


def write_outputs(config: ExperimentConfig, domain_data: list[DomainData], features: list[str], runs: list[RunResult],
                  out: Path) -> dict:
    metrics = summarise(config, domain_data, features, runs)
    caption = f"{config.model}, {config.protocol} protocol, {len(runs)} runs"
    if "mixing" in metrics:  # the traces over training, and whether the languages' gates differ (train/gate_reports.py)
        differences = write_traces({r.run: r.fit.history for r in runs}, [d.spec.language for d in domain_data],
                                   metrics["mixing"]["experts"], out, config.model)
        metrics["mixing"]["gates_differ"] = [d.as_dict() for d in differences]
    write_atomic(out / "metrics.json", lambda tmp: tmp.write_text(json.dumps(metrics, indent=2)))
    write_csv(out / "metrics.csv", metrics_rows(config, domain_data, features, runs, metrics), METRICS_COLUMNS)
    for lang, s in metrics["domains_summary"].items():
        title = (f"{lang} ({s['dataset']}), {config.protocol} protocol, {len(runs)} runs: "
                 f"UA {s['test_ua']['mean']:.3f}, WA {s['test_wa']['mean']:.3f}")
        plot_confusion(np.asarray(s["confusion_sum"]), s["classes"], out / f"confusion_{lang}.png", title)
    write_layer_weights([r.fit.state.get("model", {}) for r in runs], {f: domain_data[0].provenance[f].get("layers") for f in features},
                        out, caption)
    if "mixing" in metrics:
        write_mixing(metrics["mixing"], out, caption)
    return metrics


def save_config(config: ExperimentConfig, domain_data: list[DomainData], features: list[str], out: Path,
                runs: int | None = None) -> None:
    """``config.json``; with ``runs``, which split each of the runs trains and tests on (``resolved.splits``)."""
    d = config.to_dict()
    d["resolved"] = {
        "domains": [str(x.spec) for x in domain_data],
        "features": features,
        "stores": [str(p) for x in domain_data for p in x.paths],
        "utterances": {x.spec.language: len(x) for x in domain_data},
        "provenance": {f: {k: v for k, v in domain_data[0].provenance[f].items() if k != "kind"} for f in features},
        "torch": torch.__version__,
        **{k: v for k, v in environment().items() if k in ("versions", "git_commit")},
        "python": platform.python_version(),
        "machine": platform.machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if runs is not None:
        d["resolved"]["splits"] = {f"run{k}": split_source(config.protocol, split_key(config.protocol, config.first_seed, k))
                                   for k in range(runs)}
    write_atomic(out / "config.json", lambda tmp: tmp.write_text(json.dumps(d, indent=2, sort_keys=True, default=str)))
