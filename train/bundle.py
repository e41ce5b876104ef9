"""Model bundles: one file that holds everything ``predict`` needs to use a trained model on new audio.

Every run folder gets ``<out>/model.bundle`` (written by :func:`export_experiment`). It is a
``torch.save`` file of plain containers, strings, numbers and tensors only, so
``torch.load(path, weights_only=True)`` reads it without unpickling any Python object::

    format          "mgser-bundle"
    format_version  1
    meta            JSON text (below)
    model           the model's state dict (best run: highest validation UA, mean over languages)
    scalers         one entry per language (in ``meta["domains"]`` order): {"mean": {feature: tensor},
                    "std": {feature: tensor}}, or None when the run did not standardise

``meta`` holds: ``model`` (the ``--model`` name) and ``config`` (the ExperimentConfig as a dict), which
rebuild the network through :func:`train.models.build_model`; ``domains``, one entry per language with its
``classes`` (label vocabulary, logit column i is ``classes[i]``), ``kinds`` and ``dims`` (the
:class:`~train.models.DomainInfo`), ``dataset`` and ``provenance`` (per input feature, the store attributes
its extractor wrote: extractor, version, sample rate, hop, checkpoint SHA-256 and its settings);
``features`` (the model's features) and ``inputs`` (what must be extracted: the features plus ``ge2e_mel``
when GE2E was fine-tuned); ``selected_run`` (which run, its seed/fold and scores, and the rule); ``metrics``
(the run folder's summary and per-run scores, without per-epoch histories); library versions.

Nothing here reads the training stores: a bundle can be copied to another machine on its own.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sercore.errors import SerError

from .config import ExperimentConfig
from .models import DomainInfo, build_model

FORMAT = "mgser-bundle"
FORMAT_VERSION = 1
BUNDLE_NAME = "model.bundle"
SELECTION_RULE = "best validation UA (mean over languages); ties: the earliest run"


class BundleError(SerError):
    """A bundle that is missing, unreadable, of another format, or that does not fit the request."""

    def __init__(self, where: str | Path, problem: str):
        self.where, self.problem = str(where), problem
        super().__init__(f"{where}: {problem}")


@dataclass
class Bundle:
    """A loaded bundle: the rebuilt model (in eval mode) and what is needed to feed it."""

    path: Path
    meta: dict
    model: torch.nn.Module
    scalers: list[dict | None]  # per domain: {"mean": {feature: ndarray}, "std": {...}} or None

    @property
    def languages(self) -> list[str]:
        return [d["language"] for d in self.meta["domains"]]

    @property
    def features(self) -> list[str]:
        return list(self.meta["features"])

    @property
    def inputs(self) -> list[str]:
        """Features to extract from audio (the model's features plus auxiliary inputs such as ge2e_mel)."""
        return list(self.meta["inputs"])

    def domain_index(self, language: str | None) -> int:
        """Index of ``language`` in the bundle; None is allowed only for a one-language bundle."""
        langs = self.languages
        if language is None:
            if len(langs) == 1:
                return 0
            raise BundleError(self.path, f"the model covers several languages ({', '.join(langs)}); choose one with --language")
        if language not in langs:
            raise BundleError(self.path, f"the model has no language {language!r} (it has: {', '.join(langs)})")
        return langs.index(language)

    def domain(self, language: str | None) -> dict:
        return self.meta["domains"][self.domain_index(language)]

    def classes(self, language: str | None) -> list[str]:
        return list(self.domain(language)["classes"])

    def provenance(self, language: str | None) -> dict[str, dict]:
        return self.domain(language)["provenance"]


def _tensors(arrays: dict) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in arrays.items()}


def _jsonable(value):
    """Provenance attributes as JSON values (numpy scalars and tuples from HDF5 / extractors)."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))


def save_bundle(path: str | Path, *, config: ExperimentConfig, domains: Sequence[DomainInfo], datasets: Sequence[str],
                provenance: Sequence[dict[str, dict]], features: Sequence[str], inputs: Sequence[str], state: dict,
                scalers: Sequence[dict | None], selected_run: dict, metrics: dict | None = None) -> Path:
    """Write a bundle atomically (temporary name, then rename). ``state`` is the model's state dict."""
    meta = {
        "model": config.model,
        "config": config.to_dict(),
        "domains": [
            {"language": d.language, "dataset": ds, "classes": list(d.classes), "kinds": dict(d.kinds),
             "dims": {k: int(v) for k, v in d.dims.items()},
             "provenance": {f: _jsonable(dict(prov[f])) for f in inputs if f in prov}}
            for d, ds, prov in zip(domains, datasets, provenance)
        ],
        "features": list(features),
        "inputs": list(inputs),
        "selected_run": selected_run,
        "metrics": metrics or {},
        "versions": {"torch": torch.__version__, "python": platform.python_version(), "mgser": _mgser_version()},
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        # key order matters: a model concatenates its features in the order of DomainInfo.kinds
        "meta": json.dumps(_jsonable(meta)),
        "model": {k: v.detach().cpu() for k, v in state.items()},
        "scalers": [None if s is None else {"mean": _tensors(s["mean"]), "std": _tensors(s["std"])} for s in scalers],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_bundle(path: str | Path) -> dict:
    """The raw payload (meta parsed), read with ``weights_only=True``; :class:`BundleError` if it is not a bundle."""
    path = Path(path)
    if path.is_dir():  # a run folder: its bundle
        path = path / BUNDLE_NAME
    if not path.is_file():
        raise BundleError(path, "model bundle not found (every `train` run writes <out>/model.bundle)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on foreign or truncated bytes
        raise BundleError(path, f"not a readable model bundle ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BundleError(path, f"not an {FORMAT} file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise BundleError(path, f"bundle format version {payload.get('format_version')}, this toolkit reads version {FORMAT_VERSION}")
    payload = dict(payload)
    payload["meta"] = json.loads(payload["meta"])
    payload["path"] = path
    return payload


def load_bundle(path: str | Path, device: str = "cpu") -> Bundle:
    """Rebuild the model of a bundle with :func:`train.models.build_model` and load its weights (eval mode)."""
    payload = read_bundle(path)
    meta = payload["meta"]
    config = ExperimentConfig.from_dict(meta["config"])
    # kinds in the model's feature order (the order its encodings are concatenated in), whatever the JSON did
    infos = [DomainInfo(d["language"], list(d["classes"]), {f: d["kinds"][f] for f in meta["features"]}, dict(d["dims"]))
             for d in meta["domains"]]
    try:
        model = build_model(meta["model"], config, infos)
        model.load_state_dict(payload["model"])
    except (ValueError, RuntimeError, KeyError) as exc:
        raise BundleError(payload["path"], f"cannot rebuild model {meta['model']!r} from the bundle "
                                           f"({type(exc).__name__}: {str(exc).splitlines()[0][:300]})") from None
    model.to(device).eval()
    scalers = [None if s is None else {"mean": {k: v.numpy() for k, v in s["mean"].items()},
                                       "std": {k: v.numpy() for k, v in s["std"].items()}}
               for s in payload["scalers"]]
    return Bundle(payload["path"], meta, model, scalers)


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


def export_experiment(config: ExperimentConfig, datas, features: list[str], runs, metrics: dict, out: str | Path) -> Path | None:
    """Write ``<out>/model.bundle`` from the runs of :func:`train.experiment.run_experiment` (weights in memory).

    The run with the best validation UA is exported (the test set plays no part in the choice).
    Returns None when no run kept its weights.
    """
    from .experiment import _input_features, domain_info

    kept = [r for r in runs if r.fit.state.get("model")]
    if not kept:
        return None
    best = max(kept, key=lambda r: (r.fit.valid.ua, -r.run))
    selected = {
        "run": best.run, "seed": best.seed, "fold": best.fold, "rule": SELECTION_RULE,
        "valid_ua": float(best.fit.valid.ua), "test_ua": float(best.fit.test.ua), "best_epoch": best.fit.best_epoch,
    }
    inputs = _input_features(config, features)
    scalers = best.fit.state.get("scalers") or [None] * len(datas)
    return save_bundle(
        Path(out) / BUNDLE_NAME, config=config, domains=[domain_info(d, features) for d in datas],
        datasets=[d.spec.dataset for d in datas], provenance=[d.provenance for d in datas], features=features,
        inputs=inputs, state=best.fit.state["model"], scalers=scalers, selected_run=selected,
        metrics=_metrics_digest(metrics),
    )


def describe(bundle_or_path) -> str:
    """A few lines about a bundle (``python -m train.bundle BUNDLE``)."""
    meta = bundle_or_path.meta if isinstance(bundle_or_path, Bundle) else read_bundle(bundle_or_path)["meta"]
    lines = [f"model {meta['model']}, features {', '.join(meta['features'])} (extracted: {', '.join(meta['inputs'])})"]
    sel = meta["selected_run"]
    what = f"fold {sel['fold']}" if sel.get("fold") is not None else f"seed {sel['seed']}"
    lines.append(f"weights of run {sel['run']} ({what}): valid UA {sel['valid_ua']:.3f}, test UA {sel['test_ua']:.3f} "
                 f"[{sel['rule']}]")
    for d in meta["domains"]:
        lines.append(f"  {d['language']} ({d['dataset']}): classes {', '.join(d['classes'])}")
        for f, p in d["provenance"].items():
            sha = p.get("checkpoint_sha256") or "-"
            lines.append(f"    {f}: {p.get('extractor', '?')} {p.get('version', '')} @ {p.get('sample_rate', '?')} Hz, "
                         f"checkpoint sha256 {sha}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:] or ["-h"]:
        if arg in ("-h", "--help"):
            print("usage: python -m train.bundle BUNDLE_OR_RUN_DIR ...   (prints what a bundle holds)")
            break
        try:
            print(describe(arg))
        except SerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
