"""How far any fixed weighting of an ensemble's members could go: an upper bound read off the test split, never a
result.

    python bench/vs_baselines.py --domains de --protocol speaker \\
           --train-args "--model ensemble --speaker-norm --refit" --out runs/vsb/de_speaker
    python bench/ensemble_bound.py runs/vsb/de_speaker

Each run record of ``train --model ensemble`` keeps every member's calibrated test probabilities. Over every
weight vector whose weights are multiples of 1 / :data:`train.ensemble_weights.STEPS` (the weights the ensemble's
own selection can give), this script scores the weighted average on each run's test split and reports, each minus
the best baseline of ``bench/vs_baselines.py`` on the same runs (paired, 95% t interval over runs):

- ``chosen``: the weights the ensemble chose on validation data (its UA is the one it recorded: checked);
- ``equal``: equal weights (the nearest multiples of 1 / STEPS);
- ``bound``: the one weight vector with the highest mean test UA over the runs. It is **chosen on test data**: no
  honest selection of fixed weights from these members can do better on these runs, so a target this bound misses
  cannot be met by reweighting them, only by better members.

One line per folder::

    BOUND <lang> <protocol> baseline=<name> <ua> chosen=<d> equal=<d> bound=<d> [<lo>, <hi>] weights=<m>:<w>,... runs=<n>

Exit codes: 0, 2 (a folder that is not a finished ``bench/vs_baselines.py`` run of ``--model ensemble``), 3 (a
record whose recorded weights do not give its recorded UA).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from bench.paired import finished_runs
from sercore.errors import EXIT_DATA, EXIT_USAGE
from train.ensemble_weights import STEPS, combine
from train.metrics import paired_interval, unweighted_accuracy


class NotAnEnsemble(Exception):
    """A folder without the records this script reads."""


class Inconsistent(Exception):
    """A record whose recorded weights do not give its recorded UA."""


def weight_grid(members: int, steps: int = STEPS) -> list[tuple[float, ...]]:
    """Every (members,) weight vector of multiples of 1 / steps summing to 1."""
    return [tuple(c / steps for c in counts) for counts in itertools.product(range(steps + 1), repeat=members)
            if sum(counts) == steps]


def read_folder(folder: Path) -> tuple[dict, list[dict]]:
    """``bench/vs_baselines.py``'s result and the ensemble's run records, in the result's run order."""
    result_path = folder / "result.json"
    if not result_path.exists():
        raise NotAnEnsemble(f"{result_path}: missing (not a finished bench/vs_baselines.py run)")
    result = json.loads(result_path.read_text())
    try:
        runs = finished_runs(folder / "network")[1]
    except OSError as exc:  # no run record, or no config.json: not a train run folder
        raise NotAnEnsemble(str(exc)) from None
    records = []
    for row in result["per_run"]:
        record = runs.get(row["run"])
        if record is None:
            raise NotAnEnsemble(f"{folder / 'network'}: run {row['run']} of {result_path} has no run record")
        if not record["history"] or "ensemble" not in record["history"][0]:
            raise NotAnEnsemble(f"{folder / 'network'}: run {row['run']} is not a run of train --model ensemble")
        records.append(record)
    return result, records


def bound(folder: Path, steps: int = STEPS) -> dict:
    """The three comparisons of the module's docstring for one ``bench/vs_baselines.py`` folder."""
    result, records = read_folder(folder)
    members = list(records[0]["history"][0]["ensemble"]["members"])
    grid = weight_grid(len(members), steps)
    equal = min(grid, key=lambda w: max(abs(x - 1 / len(members)) for x in w))
    ua = np.zeros((len(records), len(grid)))
    chosen = []
    for i, record in enumerate(records):
        ensemble = record["history"][0]["ensemble"]
        labels = np.asarray(record["test"]["labels"])
        p = [np.asarray(ensemble["test_probabilities"][m], dtype=np.float64) for m in members]
        weights = [ensemble["members"][m]["weight"] for m in members]
        own = unweighted_accuracy(labels, combine(p, weights).argmax(1))
        if not np.isclose(own, record["test"]["scores"]["0"]["ua"]):
            raise Inconsistent(f"{folder}: run {record['run']}: the recorded weights give UA {own:.4f}, the record "
                               f"says {record['test']['scores']['0']['ua']:.4f}")
        chosen.append(own)
        ua[i] = [unweighted_accuracy(labels, combine(p, w).argmax(1)) for w in grid]
    best = int(np.argmax(ua.mean(axis=0)))  # the first of equal means
    baseline = np.asarray([row["baselines"][result["baseline"]]["ua"] for row in result["per_run"]])

    def against(values: Sequence[float]) -> dict:
        d, lo, hi = paired_interval(np.asarray(values) - baseline)
        return {"ua": float(np.mean(values)), "diff": d, "ci_low": lo, "ci_high": hi}

    return {"folder": str(folder), "lang": result["lang"], "protocol": result["protocol"], "runs": len(records),
            "members": members, "baseline": result["baseline"], "baseline_ua": float(baseline.mean()),
            "chosen": against(chosen), "equal": {**against(ua[:, grid.index(equal)]), "weights": list(equal)},
            "bound": {**against(ua[:, best]), "weights": list(grid[best])}}


def bound_line(b: dict) -> str:
    weights = ",".join(f"{m}:{w:.2f}" for m, w in zip(b["members"], b["bound"]["weights"]))
    return (f"BOUND {b['lang']} {b['protocol']} baseline={b['baseline']} {b['baseline_ua']:.4f} "
            f"chosen={b['chosen']['diff']:+.4f} equal={b['equal']['diff']:+.4f} bound={b['bound']['diff']:+.4f} "
            f"[{b['bound']['ci_low']:+.4f}, {b['bound']['ci_high']:+.4f}] weights={weights} runs={b['runs']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="bench/vs_baselines.py --out folders of --model ensemble")
    args = parser.parse_args(argv)
    for folder in args.folders:
        try:
            print(bound_line(bound(folder)))
        except (NotAnEnsemble, OSError, ValueError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except Inconsistent as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_DATA
    return 0


if __name__ == "__main__":
    sys.exit(main())
