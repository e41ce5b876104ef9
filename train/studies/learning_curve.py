"""What multi-domain training buys a low-resource language: a learning curve (issue 16, item 3).

``train --domains de,it,en --model base,sb,nas --learning-curve it --shots 0,5,10,20,40,all --out OUT`` fits,
for every K of ``--shots``, every model (``single`` is always added) with the target language limited to K
labelled utterances per emotion (``--few-shot it=K``; the other languages keep all of theirs; ``single`` and the
linear heads ``logreg``/``linsvm``/``rbfsvm`` are trained on the target alone) into ``OUT/k<K>/<model>``
(``OUT/all/<model>`` for the whole split), the usual run folders, so a rerun resumes.

The protocol is a low-resource one: at K the target's K labelled utterances per emotion are all it contributes,
to training and to model selection together. Its validation split is not used: the multi-domain models choose
the epoch on the other languages' validation splits; single (the target alone) takes a fixed recipe, the
configured epochs (each as long as the whole training split) and the last one; the heads choose C by
cross-validation inside the K shots and are not calibrated. The unlabelled audio of the target's training split
still standardises its features. ``--few-shot-valid`` restores the old protocol (the target keeps its whole
validation split for choosing the epoch), which is not low-resource. K = 0 is zero-shot: only ``base`` runs (its tower is shared by the languages),
trained and validated without any target label, and tested on the target's utterances of the emotions the
other languages have (the table says so). Every model of a K > 0 is tested on the same target test utterances
with the same K training utterances per run (same seeds), so each model is compared with ``single`` as a
paired difference (runs matched by seed and fold). ``python -m train.studies.grid --parts curve`` (``run_all.sh``) builds
the same curve for every language of a grid as the target, one cell per run, from the same functions. Then::

    OUT/curve.json  per K and model: the target's test UA per run, mean, std, 95% interval of the mean, and
                    the paired difference against single (mean and 95% t interval over runs)
    OUT/curve.csv   one row per K and model
    OUT/curve.md    the table: K rows, one column per model, then the differences
    OUT/curve.png   test UA against K, one line per model (bars: 95% interval of the mean), and beside it
                    each model minus single (bars: the paired difference's 95% interval)
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from sercore.errors import OptionError
from sercore.tables import write_csv

from .model_comparison import DISPLAY
from ..config import HEAD_MODELS, SINGLE_MODEL, DomainSpec, ExperimentConfig
from ..repeated_runs import Log, run_experiment
from .grid_layout import shot_name
from ..metrics import paired_interval, run_summary
from ..plots import plot_curve

#: The model that runs at K = 0 (zero-shot): its shared tower labels the target without any of its labels.
ZERO_SHOT = "base"

#: A run's split: (seed, fold); runs of two models on the same split are paired.
RunKey = tuple


def shot_config(config: ExperimentConfig, target: str, k: int | None, model: str, out: Path) -> ExperimentConfig:
    """The run of ``model`` at K: the target limited to K utterances per emotion; single on the target alone."""
    alone = model == SINGLE_MODEL or model in HEAD_MODELS  # single-language models: the target's K shots only
    domains = [d for d in config.domains if DomainSpec.parse(d).language == target] if alone else list(config.domains)
    return replace(config, domains=domains, model=model, out=str(out / shot_name(k) / model),
                   few_shot={} if k is None else {target: k})


def target_uas(metrics: dict, target: str) -> dict[RunKey, float]:
    """The target's test UA of every run of a metrics.json, keyed by the run's split (seed, fold)."""
    return {(r.get("seed"), r.get("fold")): r["test"][target]["ua"] for r in sorted(metrics["runs"], key=lambda r: r["run"])}


def curve_table(uas: dict[str, dict[str, dict[RunKey, float]]], target: str, domains: Sequence[str], protocol: str,
                features: Sequence[str] | None, models: Sequence[str]) -> dict:
    """``uas[shot][model]`` = the target's test UA per run split -> the curve (see the module docstring);
    ``models`` in their table order. A model is compared with single on the splits both ran."""
    table: dict = {"target": target, "domains": list(domains), "protocol": protocol,
                   "features": list(features or []), "shots": list(uas), "models": {m: {} for m in models}}
    for shot, by_model in uas.items():
        reference = by_model.get(SINGLE_MODEL, {})
        for model, runs in by_model.items():
            values = list(runs.values())
            _, low, high = paired_interval(values)  # the t interval of the mean UA
            row = {"ua": values, **run_summary(values), "ci_low": low, "ci_high": high}
            common = [key for key in runs if key in reference]
            if model != SINGLE_MODEL and common:
                d, dl, dh = paired_interval([runs[key] - reference[key] for key in common])
                row["vs_single"] = {"diff": d, "ci_low": dl, "ci_high": dh, "runs": len(common)}
            table["models"][model][shot] = row
    return table


def write_curve(table: dict, out: Path) -> None:
    """``curve.json``, ``curve.csv``, ``curve.md`` and ``curve.png`` of a :func:`curve_table` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.json").write_text(json.dumps(table, indent=2))
    models, shots = list(table["models"]), table["shots"]
    rows = []
    for shot in shots:
        for model in models:
            r = table["models"][model].get(shot)
            if r is not None:
                v = r.get("vs_single", {})
                rows.append([shot, model, f"{r['mean']:.4f}", f"{r['std']:.4f}", r["n"], f"{r['ci_low']:.4f}", f"{r['ci_high']:.4f}",
                             *(f"{v[k]:+.4f}" if k in v else "" for k in ("diff", "ci_low", "ci_high"))])
    write_csv(out / "curve.csv", rows, ["shots", "model", "ua_mean", "ua_std", "runs", "ua_ci_low", "ua_ci_high", "diff_vs_single",
                                        "diff_ci_low", "diff_ci_high"])
    (out / "curve.md").write_text(curve_markdown(table))
    rows = table["models"]
    plot_curve(shots=[s.removeprefix("k") for s in shots],
               lines={DISPLAY.get(m, m): [(rows[m][s]["mean"], rows[m][s]["ci_low"], rows[m][s]["ci_high"])
                                          if s in rows[m] else None for s in shots] for m in models},
               differences={DISPLAY.get(m, m): [tuple(rows[m][s]["vs_single"][k] for k in ("diff", "ci_low", "ci_high"))
                                                if "vs_single" in rows[m].get(s, {}) else None for s in shots]
                            for m in models if m != SINGLE_MODEL},
               difference_label=f"{table['target']} test UA, model − single (95% CI)",
               path=out / "curve.png", xlabel=f"{table['target']} training utterances per emotion"
               + ("\n(0: zero-shot, shared emotions only)" if "k0" in shots else ""),
               ylabel=f"{table['target']} test UA (95% CI)", title=f"{', '.join(table['domains'])}; {table['protocol']} protocol")


def curve_markdown(table: dict) -> str:
    """The table of a :func:`curve_table`: K rows, one column per model, then each model's difference from single."""
    models, shots = list(table["models"]), table["shots"]
    others = [m for m in models if m != SINGLE_MODEL]
    head = ("| utterances per emotion | " + " | ".join(DISPLAY.get(m, m) for m in models) + " | "
            + " | ".join(f"{DISPLAY.get(m, m)} − single" for m in others) + " |")
    lines = [f"Learning curve of {table['target']} ({', '.join(table['domains'])}; {table['protocol']} protocol, features "
             f"{', '.join(table['features'] or [])}): {table['target']} test UA, mean ± std over runs; differences against "
             "single with their 95% t interval over runs (paired: same seeds, same K utterances, same test set)", "",
             head, "| ---: | " + " | ".join("---:" for _ in models + others) + " |"]
    if "k0" in shots:
        lines[1:1] = ["", f"0 = zero-shot: {DISPLAY.get(ZERO_SHOT, ZERO_SHOT)} without any {table['target']} label, tested on its "
                          "utterances of the emotions the other languages have (the others are tested on every emotion)"]
    for shot in shots:
        cells = []
        for m in models:
            r = table["models"][m].get(shot)
            cells.append("" if r is None else f"{r['mean']:.3f} ± {r['std']:.3f} ({r['n']})")
        for m in others:
            v = table["models"][m].get(shot, {}).get("vs_single")
            cells.append("" if v is None else f"{v['diff']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]")
        lines.append(f"| {shot.removeprefix('k')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def curve_models(models: Sequence[str]) -> list[str]:
    """The curve's models in its order: single first (every model is compared with it), then ``models``."""
    return [SINGLE_MODEL] + [m for m in models if m != SINGLE_MODEL]


def curve_pieces(config: ExperimentConfig, target: str, shots: Sequence[int | None],
                 models: Sequence[str]) -> list[tuple[int | None, str, ExperimentConfig]]:
    """(K, model, its run's configuration) of every run of the curve, in the order they are fitted: per K (each
    once), single first, then ``models`` (at K = 0 only :data:`ZERO_SHOT`). Raises :class:`OptionError` for a
    curve that cannot be run (target not among the domains, ``--refit``, K = 0 without the zero-shot model)."""
    languages = [DomainSpec.parse(d).language for d in config.domains]
    if target not in languages:
        raise OptionError("--learning-curve", f"{target}: not among the domains ({', '.join(languages)})")
    if config.train.refit:
        raise OptionError("--learning-curve", "a refit would train on the target's whole validation split; drop --refit")
    models = curve_models(models)
    if 0 in shots and ZERO_SHOT not in models:
        raise OptionError("--shots", f"0 (zero-shot) is run by --model {ZERO_SHOT} only; add it to --model")
    out = Path(config.out)
    return [(k, model, shot_config(config, target, k, model, out)) for k in dict.fromkeys(shots) for model in models
            if k != 0 or model == ZERO_SHOT]


def run_learning_curve(config: ExperimentConfig, target: str, shots: Sequence[int | None], models: Sequence[str],
                       log: Log = print) -> dict:
    """Fit every model at every K (see the module docstring; :func:`curve_pieces`) and write the curve; returns its
    table."""
    pieces = curve_pieces(config, target, shots, models)
    models = curve_models(models)  # the table's columns
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    uas: dict[str, dict[str, dict[RunKey, float]]] = {}
    for k, model, cfg in pieces:
        log(f"== {target} at {'all its' if k is None else k} training utterances per emotion: {model} -> {cfg.out}")
        metrics = run_experiment(cfg, log=log)
        uas.setdefault(shot_name(k), {})[model] = target_uas(metrics, target)
    table = curve_table(uas, target, config.domains, config.protocol, config.features, models)
    write_curve(table, out)
    log(f"learning curve -> {out / 'curve.md'}")
    for line in (out / "curve.md").read_text().splitlines()[2:]:
        log(line)
    return table
