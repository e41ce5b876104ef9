"""A bundle loaded for prediction: the model rebuilt from :mod:`sercore.bundle`'s format, in eval mode.

    python -m predict.bundle runs/de_random        # what a bundle (or a run folder's bundle) holds
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from sercore.bundle import BundleError, read_bundle
from sercore.errors import SerError
from train.config import ExperimentConfig
from train.model_io import DomainInfo
from train.domains import feature_inputs
from train.models import build_model


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

    def calibration(self, language: str | None) -> dict | None:
        """The language's calibration (temperature fitted on validation data, ECE before and after), or None
        (bundles written before calibration, or a language without validation data)."""
        found = self.meta.get("calibration") or [None] * len(self.languages)
        return found[self.domain_index(language)]

    @property
    def speaker_norm(self) -> bool:
        """Whether the model was trained with ``--speaker-norm`` (each utterance standardised with its speaker's
        statistics): predicting needs every file's speaker."""
        return bool(self.meta["config"].get("train", {}).get("speaker_norm"))

    def temperature(self, language: str | None) -> float:
        """The probabilities are softmax(logits / T); 1.0 without a calibration."""
        c = self.calibration(language)
        return float(c["temperature"]) if c else 1.0


def load_bundle(path: str | Path, device: str = "cpu") -> Bundle:
    """Rebuild the model of a bundle with :func:`train.models.build_model` and load its weights (eval mode)."""
    payload = read_bundle(path)
    meta = payload["meta"]
    try:
        config = ExperimentConfig.from_dict(meta["config"], where=payload["path"])
    except SerError as exc:
        raise BundleError(payload["path"], f"damaged model bundle: its configuration does not load ({exc})") from None
    # kinds in the model's feature order (the order its encodings are concatenated in), whatever the JSON did
    # inputs of fine-tuned modules: recorded since format 1 bundles gained them, else from the provenance
    infos = [DomainInfo(d["language"], list(d["classes"]), {f: d["kinds"][f] for f in meta["features"]}, dict(d["dims"]),
                        dict(d["inputs"]) if "inputs" in d else feature_inputs(d["provenance"]),
                        layers=dict(d.get("layers", {})))
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


def describe(bundle_or_path) -> str:
    """A few lines about a bundle (``python -m predict.bundle BUNDLE``)."""
    meta = bundle_or_path.meta if isinstance(bundle_or_path, Bundle) else read_bundle(bundle_or_path)["meta"]
    lines = [f"model {meta['model']}, features {', '.join(meta['features'])} (extracted: {', '.join(meta['inputs'])})"]
    sel = meta["selected_run"]
    what = f"fold {sel['fold']}" if sel.get("fold") is not None else f"seed {sel['seed']}"
    lines.append(f"weights of run {sel['run']} ({what}): valid UA {sel['valid_ua']:.3f}, test UA {sel['test_ua']:.3f} "
                 f"[{sel['rule']}]")
    for i, d in enumerate(meta["domains"]):
        lines.append(f"  {d['language']} ({d['dataset']}): classes {', '.join(d['classes'])}")
        c = (meta.get("calibration") or [None] * len(meta["domains"]))[i]
        if c:
            lines.append(f"    calibration: temperature {c['temperature']:.3g} fitted on {c['n_valid']} validation utterances; "
                         f"expected calibration error on valid {c['valid_ece_before']:.3f} -> {c['valid_ece_after']:.3f}"
                         + (f", on test {c['test_ece_before']:.3f} -> {c['test_ece_after']:.3f}" if "test_ece_before" in c else ""))
        else:
            lines.append("    calibration: none (probabilities are the model's softmax)")
        for f, p in d["provenance"].items():
            sha = p.get("checkpoint_sha256") or "-"
            lines.append(f"    {f}: {p.get('extractor', '?')} {p.get('version', '')} @ {p.get('sample_rate', '?')} Hz, "
                         f"checkpoint sha256 {sha}")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:] or ["-h"]:
        if arg in ("-h", "--help"):
            print("usage: python -m predict.bundle BUNDLE_OR_RUN_DIR ...   (prints what a bundle holds)")
            break
        try:
            print(describe(arg))
        except SerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
