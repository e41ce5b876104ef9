"""Paired difference of two run folders fitted on the same runs: B - A per language, with its 95% interval.

    train --domains de --seeds 10 --out runs/t4/aux
    train --domains de --seeds 10 --no-aux --out runs/t4/no_aux
    python bench/paired.py runs/t4/aux runs/t4/no_aux            # table 4: what dropping the auxiliary loss does

Runs are matched by their index (seed or fold); a run of one folder without its partner in the other is left
out (and said). The two runs of a pair must have tested exactly the same utterances (same seed or fold, same
data), or the comparison stops with exit code 3: a difference between two splits is not a paired one. Per
language it prints each pair's UA (test, or ``--split valid``), then the mean of B - A and its two-sided 95% t
interval over runs (n - 1 degrees of freedom, :func:`train.metrics.paired_interval`), and ends with one line
per language::

    PAIRED <lang> <split> a_ua=<x> b_ua=<y> diff=<d> ci_low=<l> ci_high=<h> runs=<n>

``--json FILE`` also writes every figure. Exit codes: 0, 2 (bad option or folder), 3 (unpaired runs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


from sercore.errors import EXIT_DATA, EXIT_USAGE
from train.metrics import paired_interval
from train.run_records import RUNS_DIR, record_paths


class Unpaired(Exception):
    """Two runs with the same index that tested different utterances."""


def finished_runs(folder: Path) -> tuple[list[str], dict[int, dict]]:
    """A run folder's languages (from its ``config.json``) and its finished run records by index."""
    records = record_paths(folder)
    if not records:
        raise FileNotFoundError(f"{folder}: no finished run (expected {folder / RUNS_DIR}/run<k>.json)")
    config = json.loads((folder / "config.json").read_text())
    runs = {}
    for path in records:
        record = json.loads(path.read_text())
        runs[int(record["run"])] = record
    return list(config["domains"]), runs


def compare(a: Path, b: Path, split: str = "test") -> dict:
    """Per language of ``a``: the paired runs' UA in ``a`` and ``b`` and the interval of b - a."""
    langs_a, runs_a = finished_runs(a)
    langs_b, runs_b = finished_runs(b)
    if langs_a != langs_b:
        raise Unpaired(f"{b}: other languages ({', '.join(langs_b)}) than {a} ({', '.join(langs_a)})")
    common = sorted(set(runs_a) & set(runs_b))
    result = {"a": str(a), "b": str(b), "split": split, "runs": common,
              "unpaired": sorted(set(runs_a) ^ set(runs_b)), "languages": {}}
    for k in common:
        ra, rb = runs_a[k][split], runs_b[k][split]
        if ra["utt_ids"] != rb["utt_ids"]:
            raise Unpaired(f"run {k}: {a} and {b} tested different utterances (other seeds, folds or data)")
    for i, lang in enumerate(langs_a):
        ua_a = [runs_a[k][split]["scores"][str(i)]["ua"] for k in common]
        ua_b = [runs_b[k][split]["scores"][str(i)]["ua"] for k in common]
        diff, low, high = paired_interval(list(np.subtract(ua_b, ua_a))) if common else (float("nan"),) * 3
        result["languages"][lang] = {"a_ua": ua_a, "b_ua": ua_b, "diff": diff, "ci_low": low, "ci_high": high}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="run folder A (the reference)")
    parser.add_argument("b", type=Path, help="run folder B (the difference is B - A)")
    parser.add_argument("--split", choices=("test", "valid"), default="test")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:
        result = compare(args.a, args.b, args.split)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unpaired as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA
    if result["unpaired"]:
        print(f"left out, finished in one folder only: run(s) {', '.join(map(str, result['unpaired']))}")
    for lang, s in result["languages"].items():
        for k, x, y in zip(result["runs"], s["a_ua"], s["b_ua"]):
            print(f"{lang} run {k}: A UA {x:.3f}  B UA {y:.3f}  B - A {y - x:+.3f}")
    for lang, s in result["languages"].items():
        print(f"PAIRED {lang} {args.split} a_ua={np.mean(s['a_ua']):.4f} b_ua={np.mean(s['b_ua']):.4f} diff={s['diff']:+.4f} "
              f"ci_low={s['ci_low']:+.4f} ci_high={s['ci_high']:+.4f} runs={len(result['runs'])}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
