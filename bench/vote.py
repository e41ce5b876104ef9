"""Seed averaging, measured on finished runs: the averaged class probabilities of several run folders fitted on the same splits
from other initialisations, against their members alone.

    train --domains de --protocol speaker --out runs/a                      # folds 0-9 (seed = first seed + fold)
    train --domains de --protocol speaker --first-seed 10 --out runs/b     # the same folds, other initialisations
    train --domains de --protocol speaker --first-seed 20 --out runs/c
    python bench/vote.py runs/a runs/b runs/c --split valid

Under the speaker protocol a run's split is its fold whatever the seed, so ``--first-seed`` changes only the
initialisation and the batches; under the random protocol the seed draws the split too, so random-protocol
folders pair only with themselves (the run records must show the same utterances in the same order, or the
comparison stops with exit code 3). Runs are matched by index; one missing from a folder is left out.

The vote is the class of highest mean probability over the members (each record keeps every utterance's class
probabilities). Records written before they kept probabilities are voted over labels instead: the class most
members predict, a tie going to the class the earlier folder predicted (``method`` says which). Per language it prints, per run,
the mean UA of the members and the vote's UA, then the paired difference vote - mean member with its 95% t
interval over runs (:func:`train.metrics.paired_interval`), and one line::

    VOTE <lang> <split> member_ua=<x> vote_ua=<y> diff=<d> ci_low=<l> ci_high=<h> runs=<n> members=<m>

Exit codes: 0, 2 (bad option or folder), 3 (runs that are not of the same split, or a record whose predictions
do not give its UA).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np


from bench.paired import Unpaired, finished_runs
from sercore.errors import EXIT_DATA, EXIT_USAGE
from train.metrics import paired_interval, unweighted_accuracy


class Inconsistent(Exception):
    """A run record whose predictions do not give the UA it reports."""


def majority(predictions: np.ndarray) -> np.ndarray:
    """(members, n) predicted classes -> (n,) the most frequent per column, ties to the earliest member's class."""
    votes = []
    for column in predictions.T:
        counts = {}
        for c in column:
            counts[int(c)] = counts.get(int(c), 0) + 1
        best = max(counts.values())
        votes.append(next(int(c) for c in column if counts[int(c)] == best))
    return np.asarray(votes, dtype=np.int64)


def average(probabilities: np.ndarray) -> np.ndarray:
    """(members, n, classes) class probabilities -> (n,) the class of highest mean probability (ties: the lower index)."""
    return np.asarray(np.argmax(np.mean(probabilities, axis=0), axis=-1), dtype=np.int64)


def vote(folders: Sequence[Path], split: str = "valid") -> dict:
    """Per language of the first folder: per run the members' UA and the vote's UA, and the interval of the
    difference vote - mean member."""
    members = [finished_runs(Path(f)) for f in folders]
    languages = members[0][0]
    for f, (langs, _) in zip(folders[1:], members[1:]):
        if langs != languages:
            raise Unpaired(f"{f}: other languages ({', '.join(langs)}) than {folders[0]} ({', '.join(languages)})")
    common = sorted(set.intersection(*(set(runs) for _, runs in members)))
    result = {"folders": [str(f) for f in folders], "split": split, "runs": common, "languages": {},
              "method": "probabilities"}
    for lang in languages:
        result["languages"][lang] = {"member_ua": [], "vote_ua": []}
    for k in common:
        records = [runs[k][split] for _, runs in members]
        for f, r in zip(folders[1:], records[1:]):
            if r["utt_ids"] != records[0]["utt_ids"]:
                raise Unpaired(f"run {k}: {folders[0]} and {f} evaluated different utterances (another split or data)")
        labels, domains = np.asarray(records[0]["labels"]), np.asarray(records[0]["domains"])
        predictions = np.asarray([r["predictions"] for r in records])
        if all("probabilities" in r for r in records):
            voted = average(np.asarray([r["probabilities"] for r in records], dtype=np.float64))
        else:
            result["method"] = "labels"
            voted = majority(predictions)
        for i, lang in enumerate(languages):
            rows = domains == i
            uas = [unweighted_accuracy(labels[rows], p[rows]) for p in predictions]
            for r, ua in zip(records, uas):  # the UA recomputed from the record is the one the run reported
                if not np.isclose(ua, r["scores"][str(i)]["ua"]):
                    raise Inconsistent(f"run {k}: UA {ua} from the predictions, {r['scores'][str(i)]['ua']} in the record")
            result["languages"][lang]["member_ua"].append(float(np.mean(uas)))
            result["languages"][lang]["vote_ua"].append(unweighted_accuracy(labels[rows], voted[rows]))
    for s in result["languages"].values():
        diffs = list(np.subtract(s["vote_ua"], s["member_ua"]))
        s["diff"], s["ci_low"], s["ci_high"] = paired_interval(diffs) if diffs else (float("nan"),) * 3
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="run folders fitted on the same splits (two or more)")
    parser.add_argument("--split", choices=("test", "valid"), default="valid")
    args = parser.parse_args(argv)
    if len(args.folders) < 2:
        parser.error("give two or more run folders")
    try:
        result = vote(args.folders, args.split)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (Unpaired, Inconsistent) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA
    if result["method"] == "labels":
        print("note: some records keep no class probabilities (written by an older train): voted over labels")
    for lang, s in result["languages"].items():
        for k, m, v in zip(result["runs"], s["member_ua"], s["vote_ua"]):
            print(f"{lang} run {k}: members' mean UA {m:.3f}  vote UA {v:.3f}  vote - members {v - m:+.3f}")
    for lang, s in result["languages"].items():
        print(f"VOTE {lang} {args.split} member_ua={np.mean(s['member_ua']):.4f} vote_ua={np.mean(s['vote_ua']):.4f} "
              f"diff={s['diff']:+.4f} ci_low={s['ci_low']:+.4f} ci_high={s['ci_high']:+.4f} runs={len(result['runs'])} "
              f"members={len(args.folders)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
