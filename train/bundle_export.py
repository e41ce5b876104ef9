"""``<run>/model.bundle``: the best run of a run folder, in the bundle format of :mod:`sercore.bundle`."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Sequence

import torch

from sercore.bundle import BUNDLE_NAME, jsonable, write_bundle

from .config import ExperimentConfig
from .model_io import DomainInfo
from .domains import DomainData
from .fit_run import RunResult, domain_info, input_features
from .run_folder import run_calibration

SELECTION_RULE = "best validation UA (mean over languages); ties: the earliest run"


def save_bundle(path: str | Path, *, config: ExperimentConfig, domains: Sequence[DomainInfo], datasets: Sequence[str],
                provenance: Sequence[dict[str, dict]], features: Sequence[str], inputs: Sequence[str], state: dict,
                scalers: Sequence[dict | None], selected_run: dict, metrics: dict | None = None,
                calibration: Sequence[dict | None] | None = None) -> Path:
    """Write the bundle of a trained model (format: :mod:`sercore.bundle`). ``state`` is the model's state dict."""
    meta = {
        "model": config.model,
        "config": config.to_dict(),
        "domains": [
            {"language": d.language, "dataset": ds, "classes": list(d.classes), "kinds": dict(d.kinds),
             "dims": {k: int(v) for k, v in d.dims.items()}, "inputs": dict(d.inputs),
             "layers": {k: int(v) for k, v in d.layers.items()},
             "provenance": {f: jsonable(dict(prov[f])) for f in inputs if f in prov}}
            for d, ds, prov in zip(domains, datasets, provenance)
        ],
        "features": list(features),
        "inputs": list(inputs),
        "selected_run": selected_run,
        "metrics": metrics or {},
        **({"calibration": list(calibration)} if calibration is not None else {}),
        "versions": {"torch": torch.__version__, "python": platform.python_version(), "mgser": _mgser_version()},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return write_bundle(path, meta, state, scalers)


def _mgser_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("mgser")
    except metadata.PackageNotFoundError:
        return ""


def _metrics_digest(metrics: dict) -> dict:
    """The run folder's metrics without the bulky parts (per-epoch histories)."""
    out = {k: v for k, v in metrics.items() if k != "runs"}
    out["runs"] = [{k: v for k, v in r.items() if k != "history"} for r in metrics.get("runs", [])]
    return out


def export_experiment(config: ExperimentConfig, domain_data: Sequence[DomainData], features: list[str], runs: Sequence[RunResult],
                      metrics: dict, out: str | Path) -> Path | None:
    """Write ``<out>/model.bundle`` from the runs of :func:`train.repeated_runs.run_experiment` (weights in memory).

    The run with the best validation UA is exported (the test set plays no part in the choice).
    Returns None when no run kept its weights.
    """
    kept = [r for r in runs if r.fit.state.get("model")]
    if not kept:
        return None
    best = max(kept, key=lambda r: (r.fit.valid.ua, -r.run))
    selected = {
        "run": best.run, "seed": best.seed, "fold": best.fold, "rule": SELECTION_RULE,
        "valid_ua": float(best.fit.valid.ua), "test_ua": float(best.fit.test.ua), "best_epoch": best.fit.best_epoch,
    }
    inputs = input_features(config, features, domain_data[0].inputs)
    found = run_calibration(list(domain_data), best)
    calibration = [found.get(d.spec.language) for d in domain_data] if found else None
    scalers = best.fit.state.get("scalers") or [None] * len(domain_data)
    return save_bundle(
        Path(out) / BUNDLE_NAME, config=config, domains=[domain_info(d, features) for d in domain_data],
        datasets=[d.spec.dataset for d in domain_data], provenance=[d.provenance for d in domain_data], features=features,
        inputs=inputs, state=best.fit.state["model"], scalers=scalers, selected_run=selected,
        metrics=_metrics_digest(metrics), calibration=calibration,
    )
