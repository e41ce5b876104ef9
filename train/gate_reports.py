"""What a multi-domain model reports about its mixing, and its files in a run folder.

At the end of training, on the test utterances of each run's selected model (figure 4b), averaged over runs::

    gates_test.csv / gates_test.png   mean gate weight per language and feature
    nas_test.csv / nas_test.png       (nas) per language, P(xi_ij > 0) and the deterministic gate xi_ij of every
                                      connection v_j -> u_i

Over training, from each epoch's validation evaluation (kept in the run's history, ``runs/run<k>.json``, so a
resumed run keeps its trace; see :meth:`train.network_trainer.Trainer.mixing`)::

    gates.csv       run, epoch, language, expert, weight: the mean gate weight of each expert over the language's
                    validation utterances (softmax gates: a language's weights sum to 1 per run and epoch)
    gates.png       one panel per language: mean weight of each expert over runs per epoch, band = min..max over runs
    nas.csv         (nas) run, epoch, language, connection, probability: P(xi_ij > 0) of the connection
                    ``<v_j>-><u_i>`` (expert names), the probability that the hard-concrete gate keeps it open
    nas.png         (nas) the same per language, one line per connection
    gates_differ.csv  language_a, language_b, expert, difference, ci_low, ci_high, runs: per pair of languages
                    and expert, a's minus b's weight at each run's last epoch, paired by run (the same seed and
                    split), mean and 95% t interval over runs (:func:`train.metrics.paired_interval`)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from sercore.tables import write_csv

from .metrics import paired_interval, run_summary
from .plots import plot_gates, plot_nas, plot_traces


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
    """gates_test.csv + gates_test.png, and for the NAS model nas_test.csv + nas_test.png, into run folder ``out``."""
    out = Path(out)
    experts = mixing["experts"]
    if mixing["gates"]:
        write_csv(out / "gates_test.csv", ((lang, f, f"{per[f]['mean']:.4f}", f"{per[f]['std']:.4f}", per[f]["n"])
                                           for lang, per in mixing["gates"].items() for f in experts),
                  ["language", "feature", "gate_mean", "gate_std", "runs"])
        plot_gates([(title, experts, mixing["gates"])], out / "gates_test.png")
    if "nas" in mixing:
        rows = []
        for lang, per in mixing["nas"].items():
            p, g = per["p_open"], per["gate"]
            rows += [(lang, to, frm, f"{p['mean'][i][j]:.4f}", f"{p['std'][i][j]:.4f}", f"{g['mean'][i][j]:.4f}",
                      f"{g['std'][i][j]:.4f}", p["n"]) for i, to in enumerate(experts) for j, frm in enumerate(experts)]
        write_csv(out / "nas_test.csv", rows, ["language", "to_u", "from_v", "p_open_mean", "p_open_std", "gate_mean", "gate_std", "runs"])
        plot_nas(experts, mixing["nas"], out / "nas_test.png", title)


# --------------------------------------------------------------------------------------------------
# Over training: per-epoch traces and whether the languages' gates differ

#: What :func:`write_traces` writes.
TRACE_FILES = ("gates.csv", "gates.png", "gates_differ.csv", "nas.csv", "nas.png")
#: (run, epoch, language, expert, weight): one row of ``gates.csv``.
GateRow = tuple[int, int, str, str, float]
#: (run, epoch, language, connection, probability): one row of ``nas.csv``.
NasRow = tuple[int, int, str, str, float]


def connection_name(experts: Sequence[str], i: int, j: int) -> str:
    """The NAS connection v_j -> u_i by its experts' names, ``"mfcc->ge2e"`` for v_mfcc -> u_ge2e."""
    return f"{experts[j]}->{experts[i]}"


def epochs_of(history: Sequence[dict]) -> list[dict]:
    """The epochs of a run's history that recorded the mixing (not the refit note, nor runs from before it was kept)."""
    return [h for h in history if "epoch" in h and h.get("mixing")]


def gate_rows(histories: Mapping[int, Sequence[dict]], languages: Sequence[str], experts: Sequence[str]) -> list[GateRow]:
    """``histories[run]``: that run's per-epoch history. One row per (run, epoch, language, expert), in that order."""
    rows = []
    for run, history in sorted(histories.items()):
        for h in epochs_of(history):
            gates = h["mixing"].get("gates", {})
            rows += [(run, int(h["epoch"]), lang, f, float(gates[lang][f])) for lang in languages if lang in gates for f in experts]
    return rows


def nas_rows(histories: Mapping[int, Sequence[dict]], languages: Sequence[str], experts: Sequence[str]) -> list[NasRow]:
    """One row per (run, epoch, language, connection): P(xi_ij > 0); [] for a model without NAS."""
    rows = []
    for run, history in sorted(histories.items()):
        for h in epochs_of(history):
            nas = h["mixing"].get("nas", {})
            for lang in (x for x in languages if x in nas):
                p = nas[lang]["p_open"]  # (M, M): p[i][j] for v_j -> u_i
                rows += [(run, int(h["epoch"]), lang, connection_name(experts, i, j), float(p[i][j]))
                         for i in range(len(experts)) for j in range(len(experts))]
    return rows


@dataclass(frozen=True)
class GateDifference:
    """Language ``first``'s minus ``second``'s mean gate weight on ``expert`` at each run's last epoch, paired by
    run: mean and 95% t interval over ``runs`` runs (nan bounds for one run)."""

    first: str
    second: str
    expert: str
    difference: float
    low: float
    high: float
    runs: int

    @property
    def differs(self) -> bool:
        """The interval excludes 0: the languages' gates differ beyond the seed-to-seed spread."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        """JSON-ready (nan bounds as None)."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "GateDifference":
        return cls(**{k: float("nan") if v is None else v for k, v in d.items()})

    def figures(self) -> str:
        """``by +0.21 [+0.15, +0.27] over 3 runs``."""
        bounds = "(one run, no interval)" if math.isnan(self.low) else f"[{self.low:+.2f}, {self.high:+.2f}]"
        return f"by {self.difference:+.2f} {bounds} over {self.runs} runs"


def final_gates(rows: Sequence[GateRow]) -> dict[tuple[int, str, str], float]:
    """Rows of ``gates.csv`` -> {(run, language, expert): weight} at each run's last epoch."""
    last: dict[int, int] = {}
    for run, epoch, *_ in rows:
        last[run] = max(last.get(run, epoch), epoch)
    return {(run, lang, f): w for run, epoch, lang, f, w in rows if epoch == last[run]}


def gate_differences(rows: Sequence[GateRow], languages: Sequence[str], experts: Sequence[str]) -> list[GateDifference]:
    """For each pair of ``languages`` (in that order) and each expert, a :class:`GateDifference` over the runs
    that have both languages at their last epoch."""
    final = final_gates(rows)
    runs = sorted({run for run, _, _ in final})
    out = []
    for a, b in combinations(languages, 2):
        for f in experts:
            diffs = [final[(r, a, f)] - final[(r, b, f)] for r in runs if (r, a, f) in final and (r, b, f) in final]
            if diffs:
                out.append(GateDifference(a, b, f, *paired_interval(diffs), len(diffs)))
    return out


def differ_summary(differences: Sequence[GateDifference], model: str = "") -> str:
    """One line for the train log: the largest difference whose interval excludes 0, else the largest one."""
    head = f"gates ({model})" if model else "gates"
    if not differences:
        return f"{head}: fewer than two languages with a gate trace, nothing to compare"
    differing = [d for d in differences if d.differs]
    d = max(differing or differences, key=lambda d: abs(d.difference))
    if differing:
        return (f"{head}: {d.first} vs {d.second} differ on {d.expert} {d.figures()}; {len(differing)} of "
                f"{len(differences)} (pair, expert) intervals exclude 0 (gates_differ.csv)")
    return (f"{head}: no pair of languages differs beyond the seed spread; largest: {d.first} vs {d.second} on "
            f"{d.expert} {d.figures()} (gates_differ.csv)")


def series(rows: Sequence[tuple], languages: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, tuple]]:
    """Rows (run, epoch, language, name, value) -> per language, per name: (epochs (E,), mean (E,), low (E,),
    high (E,)) over the runs that reached each epoch (low/high: min/max over runs)."""
    values: dict[tuple[str, str, int], list[float]] = {}
    for _, epoch, lang, name, value in rows:
        values.setdefault((lang, name, epoch), []).append(value)
    out: dict[str, dict[str, tuple]] = {}
    for lang in languages:
        for name in names:
            epochs = sorted(e for (lg, n, e) in values if lg == lang and n == name)
            if not epochs:
                continue
            v = [np.asarray(values[(lang, name, e)]) for e in epochs]
            out.setdefault(lang, {})[name] = (np.asarray(epochs), np.array([x.mean() for x in v]),
                                              np.array([x.min() for x in v]), np.array([x.max() for x in v]))
    return out


def write_traces(histories: Mapping[int, Sequence[dict]], languages: Sequence[str], experts: Sequence[str], out: Path,
                 title: str = "") -> list[GateDifference]:
    """gates.csv, gates.png, gates_differ.csv and (nas) nas.csv, nas.png into run folder ``out`` (module docstring).
    Returns the differences of gates_differ.csv; nothing is written when no run recorded a trace."""
    out = Path(out)
    for name in TRACE_FILES:  # never leave an earlier command's trace beside this one's runs
        (out / name).unlink(missing_ok=True)
    gates = gate_rows(histories, languages, experts)
    if not gates:
        return []
    write_rows(out / "gates.csv", ["run", "epoch", "language", "expert", "weight"], gates)
    runs = len({r[0] for r in gates})
    plot_traces(series(gates, languages, experts), out / "gates.png", "mean gate weight (validation)",
                f"{title}: {runs} runs, band = min..max over runs" if title else "")
    differences = gate_differences(gates, languages, experts)
    write_rows(out / "gates_differ.csv", ["language_a", "language_b", "expert", "difference", "ci_low", "ci_high", "runs"],
               [tuple(asdict(d).values()) for d in differences])
    nas = nas_rows(histories, languages, experts)
    if nas:
        write_rows(out / "nas.csv", ["run", "epoch", "language", "connection", "probability"], nas)
        names = [connection_name(experts, i, j) for i in range(len(experts)) for j in range(len(experts))]
        plot_traces(series(nas, languages, names), out / "nas.png", "P(xi > 0)",
                    f"{title}: {runs} runs, band = min..max over runs" if title else "")
    return differences


def write_rows(path: Path, header: Sequence[str], rows: Sequence[tuple]) -> None:
    """A CSV file; floats with 6 decimals (nan as ``nan``)."""
    write_csv(path, ([f"{v:.6f}" if isinstance(v, float) else v for v in row] for row in rows), header)
