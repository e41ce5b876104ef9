"""Multi-domain reports: gate weights and NAS connections of a run folder, and the comparison of models
(the paper's table 3: rows = models, columns = WA / UA per language; figure 4b: gate weight per feature
and language).

``train --domains de,it --model base,sb,omoe,mmoe,nas --out OUT`` fits every model in ``OUT/<model>/``
(the usual run folder) on the same domains, features and seeds, then writes::

    OUT/comparison.json  protocol, runs, features, and per model and language WA / UA (mean, std, n) and seconds per run
    OUT/comparison.csv   one row per model and language
    OUT/comparison.md    the table 3 layout, "mean ± std" over runs
    OUT/gates.png        figure 4b for every gated model (omoe, mmoe, nas), one panel each

A gated model's run folder also holds (written by :func:`write_mixing`)::

    gates.csv / gates.png   mean gate weight per language and feature over the test utterances, averaged over runs
    nas.csv / nas.png       (nas) per language, P(xi_ij > 0) and the deterministic gate xi_ij of every connection
                            v_j -> u_i, averaged over runs
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

Log = Callable[[str], None]

#: How table 3 names the models.
DISPLAY = {"single": "Single", "base": "Base", "sb": "SB", "omoe": "OMoE", "mmoe": "MMoE", "nas": "Ours (gates + NAS)"}


def _summary(values: Sequence[float]) -> dict:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def _matrix_summary(matrices: Sequence) -> dict:
    a = np.asarray(matrices, dtype=float)  # (runs, M, M)
    return {"mean": a.mean(0).tolist(), "std": (a.std(0, ddof=1) if len(a) > 1 else np.zeros(a.shape[1:])).tolist(), "n": len(a)}


def mixing_summary(details: Sequence[dict]) -> dict:
    """Average the per-run ``MultiDomainModel.describe`` outputs: gates[lang][feature] and nas[lang][p_open|gate]."""
    details = [d for d in details if d]
    first = details[0]
    experts = first["experts"]
    out: dict = {"experts": experts, "selector": first.get("selector"), "runs": len(details), "gates": {}}
    for lang in first["gates"]:
        out["gates"][lang] = {f: _summary([d["gates"][lang][f] for d in details if lang in d["gates"]]) for f in experts}
    if "nas" in first:
        out["nas"] = {lang: {name: _matrix_summary([d["nas"][lang][name] for d in details]) for name in first["nas"][lang]}
                      for lang in first["nas"]}
    return out


def write_mixing(mixing: dict, out: Path, title: str = "") -> None:
    """gates.csv + gates.png, and for the NAS model nas.csv + nas.png, into run folder ``out``."""
    from .plots import plot_gates, plot_nas

    out = Path(out)
    experts = mixing["experts"]
    if mixing["gates"]:
        with (out / "gates.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["language", "feature", "gate_mean", "gate_std", "runs"])
            for lang, per in mixing["gates"].items():
                for feat in experts:
                    s = per[feat]
                    w.writerow([lang, feat, f"{s['mean']:.4f}", f"{s['std']:.4f}", s["n"]])
        plot_gates([(title, experts, mixing["gates"])], out / "gates.png")
    if "nas" in mixing:
        with (out / "nas.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["language", "to_u", "from_v", "p_open_mean", "p_open_std", "gate_mean", "gate_std", "runs"])
            for lang, per in mixing["nas"].items():
                for i, to in enumerate(experts):
                    for j, frm in enumerate(experts):
                        p, g = per["p_open"], per["gate"]
                        w.writerow([lang, to, frm, f"{p['mean'][i][j]:.4f}", f"{p['std'][i][j]:.4f}",
                                    f"{g['mean'][i][j]:.4f}", f"{g['std'][i][j]:.4f}", p["n"]])
        plot_nas(experts, mixing["nas"], out / "nas.png", title)


def comparison_table(results: dict[str, dict]) -> dict:
    """``results[model]`` = that model's metrics.json -> the comparison (see module docstring)."""
    first = next(iter(results.values()))
    table = {}
    for model, metrics in results.items():
        row = {lang: {"wa": s["test_wa"], "ua": s["test_ua"]} for lang, s in metrics["domains_summary"].items()}
        row["seconds_per_run"] = _summary([r["seconds"] for r in metrics["runs"]])["mean"]
        table[model] = row
    return {
        "protocol": first["protocol"],
        "runs_are": first["runs_are"],
        "runs": len(first["runs"]),
        "domains": first["domains"],
        "features": first["features"],
        "aux": first["aux"],
        "languages": list(first["domains_summary"]),
        "models": table,
    }


def write_comparison(results: dict[str, dict], out: Path) -> dict:
    from .plots import plot_gates

    out = Path(out)
    comp = comparison_table(results)
    languages = comp["languages"]
    (out / "comparison.json").write_text(json.dumps(comp, indent=2))
    with (out / "comparison.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "language", "wa_mean", "wa_std", "ua_mean", "ua_std", "runs", "seconds_per_run", "protocol"])
        for model, row in comp["models"].items():
            for lang in languages:
                s = row[lang]
                w.writerow([model, lang, f"{s['wa']['mean']:.4f}", f"{s['wa']['std']:.4f}", f"{s['ua']['mean']:.4f}",
                            f"{s['ua']['std']:.4f}", s["ua"]["n"], f"{row['seconds_per_run']:.1f}", comp["protocol"]])
    head = "| model | " + " | ".join(f"{lang} WA | {lang} UA" for lang in languages) + " | s / run |"
    lines = [f"{comp['protocol']} protocol, {comp['runs']} {comp['runs_are']}, features {', '.join(comp['features'])}, "
             f"domains {', '.join(comp['domains'])}; test WA / UA, mean ± std over runs", "", head,
             "| --- | " + " | ".join("---: | ---:" for _ in languages) + " | ---: |"]
    for model, row in comp["models"].items():
        cells = [f"{row[lang][k]['mean']:.3f} ± {row[lang][k]['std']:.3f}" for lang in languages for k in ("wa", "ua")]
        lines.append(f"| {DISPLAY.get(model, model)} | " + " | ".join(cells) + f" | {row['seconds_per_run']:.0f} |")
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    panels = [(DISPLAY.get(m, m), r["mixing"]["experts"], r["mixing"]["gates"])
              for m, r in results.items() if r.get("mixing", {}).get("gates")]
    if panels:
        plot_gates(panels, out / "gates.png")
    return comp


def run_comparison(config, models: Sequence[str], log: Log = print) -> dict:
    """Fit every model of ``models`` on ``config``'s domains into ``<config.out>/<model>``, then compare them."""
    from .experiment import load_domains, run_experiment

    datas, features = load_domains(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for model in models:
        log(f"== {model} ({DISPLAY.get(model, model)})")
        cfg = replace(config, model=model, out=str(out / model))
        results[model] = run_experiment(cfg, log=log, datas=datas, features=features)
    comp = write_comparison(results, out)
    log(f"comparison -> {out / 'comparison.md'}")
    for line in (out / "comparison.md").read_text().splitlines()[2:]:
        log(line)
    return comp
