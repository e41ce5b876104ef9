"""What a multi-domain model reports about its mixing, averaged over runs, and its files in a run folder::

    gates.csv / gates.png   mean gate weight per language and feature over the test utterances, averaged over runs
    nas.csv / nas.png       (nas) per language, P(xi_ij > 0) and the deterministic gate xi_ij of every connection
                            v_j -> u_i, averaged over runs
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from .metrics import run_summary
from .plots import plot_gates, plot_nas


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
        out["gates"][lang] = {f: run_summary([d["gates"][lang][f] for d in details if lang in d["gates"]]) for f in experts}
    if "nas" in first:
        out["nas"] = {lang: {name: _matrix_summary([d["nas"][lang][name] for d in details]) for name in first["nas"][lang]}
                      for lang in first["nas"]}
    return out


def write_mixing(mixing: dict, out: Path, title: str = "") -> None:
    """gates.csv + gates.png, and for the NAS model nas.csv + nas.png, into run folder ``out``."""
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
