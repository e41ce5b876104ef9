"""The comparison of multi-domain models
(the paper's table 3: rows = models, columns = WA / UA per language; figure 4b: gate weight per feature
and language).

``train --domains de,it --model base,sb,omoe,mmoe,nas --out OUT`` fits every model in ``OUT/<model>/``
(the usual run folder) on the same domains, features and seeds, then writes::

    OUT/comparison.json  protocol, runs, features, and per model and language WA / UA (mean, std, n) and seconds per run
    OUT/comparison.csv   one row per model and language
    OUT/comparison.md    the table 3 layout, "mean ± std" over runs
    OUT/gates.png        figure 4b for every gated model (omoe, mmoe, nas), one panel each

A gated model's run folder also holds its gates and NAS connections (:mod:`train.gate_reports`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from sercore.tables import write_csv

from ..repeated_runs import Log, load_domains, run_experiment
from ..metrics import run_summary
from ..plots import plot_gates

#: How table 3 names the models.
DISPLAY = {"single": "Single", "base": "Base", "sb": "SB", "omoe": "OMoE", "mmoe": "MMoE", "nas": "Ours (gates + NAS)"}


def comparison_table(results: dict[str, dict]) -> dict:
    """``results[model]`` = that model's metrics.json -> the comparison (see module docstring)."""
    first = next(iter(results.values()))
    table = {}
    for model, metrics in results.items():
        row = {lang: {"wa": s["test_wa"], "ua": s["test_ua"]} for lang, s in metrics["domains_summary"].items()}
        row["seconds_per_run"] = run_summary([r["seconds"] for r in metrics["runs"]])["mean"]
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
    out = Path(out)
    comp = comparison_table(results)
    languages = comp["languages"]
    (out / "comparison.json").write_text(json.dumps(comp, indent=2))
    write_csv(out / "comparison.csv", ((model, lang, f"{row[lang]['wa']['mean']:.4f}", f"{row[lang]['wa']['std']:.4f}",
                                        f"{row[lang]['ua']['mean']:.4f}", f"{row[lang]['ua']['std']:.4f}", row[lang]["ua"]["n"],
                                        f"{row['seconds_per_run']:.1f}", comp["protocol"])
                                       for model, row in comp["models"].items() for lang in languages),
              ["model", "language", "wa_mean", "wa_std", "ua_mean", "ua_std", "runs", "seconds_per_run", "protocol"])
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
    domain_data, features = load_domains(config)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for model in models:
        log(f"== {model} ({DISPLAY.get(model, model)})")
        cfg = replace(config, model=model, out=str(out / model))
        results[model] = run_experiment(cfg, log=log, domain_data=domain_data, features=features)
    comp = write_comparison(results, out)
    log(f"comparison -> {out / 'comparison.md'}")
    for line in (out / "comparison.md").read_text().splitlines()[2:]:
        log(line)
    return comp
