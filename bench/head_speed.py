"""Fit time of the heads (train/pooled_heads.py) on a synthetic corpus of realistic size: the inner cross-validation
that chooses C (and gamma) plus the final fit, per head, under both inner-fold schemes.

    python bench/head_speed.py --sizes 535,1735 --dim 1440
    python bench/head_speed.py --sizes 1735 --old          # also the earlier GridSearchCV logistic regression

The corpus: 7 emotions, 10 speakers; each utterance's pooled vector (``--dim`` values, as mfcc + ge2e + byol
statistics give 4 * 40 + 256 + ... ) is its emotion's mean, its speaker's offset and correlated noise (a
rank-64 factor model plus independent noise), so that it is neither separable nor hopeless. ``--old`` also
times what ``bench/vs_baselines.py`` did before: ``GridSearchCV`` of ``LogisticRegression(max_iter=5000)``
over C = 1e-4 .. 1e4, folds one after the other, no warm starts. A measurement, not a test: name the
machine and its load when quoting it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np


from train.pooled_heads import HEADS, HeadConfig, select_head


def corpus(n: int, dim: int, classes: int = 7, speakers: int = 10, seed: int = 0):
    """(x, y, speakers) of the synthetic corpus described in the module docstring."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    spk = rng.integers(0, speakers, size=n)
    means = rng.normal(size=(classes, dim)) * 0.08
    offsets = rng.normal(size=(speakers, dim)) * 0.5
    factors = rng.normal(size=(64, dim))
    x = means[y] + offsets[spk] + rng.normal(size=(n, 64)) @ factors * 0.25 + rng.normal(size=(n, dim))
    return x.astype(np.float32), y, np.array([f"s{s}" for s in spk])


def old_logreg(x, y, seed: int = 0) -> float:
    """Seconds of the earlier implementation: GridSearchCV, 9 C values, 5 stratified folds, one after the other."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    search = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
                          {"logisticregression__C": list(np.logspace(-4, 4, 9))}, scoring="balanced_accuracy",
                          cv=StratifiedKFold(5, shuffle=True, random_state=seed), refit=True, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(x, y)
    return time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="535,1735", help="utterances, comma-separated")
    p.add_argument("--dim", type=int, default=1440)
    p.add_argument("--heads", default=",".join(HEADS))
    p.add_argument("--n-jobs", type=int, default=None, help="parallel folds [default: the heads' own]")
    p.add_argument("--old", action="store_true", help="also time the earlier GridSearchCV logistic regression")
    args = p.parse_args(argv)
    print(f"# machine: {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}")
    from joblib import Parallel, delayed

    start = time.perf_counter()  # the parallel workers start once per process: timed apart from the heads
    Parallel(n_jobs=max(2, os.cpu_count() or 1))(delayed(select_head)(HeadConfig("logreg", c_grid=(1.0,), n_jobs=1), *corpus(70, 8)[:2])
                                                  for _ in range(2))
    print(f"# starting the parallel workers (once per process, not counted below): {time.perf_counter() - start:.1f} s")
    print("| utterances | dim | head | inner folds | chosen | inner UA | seconds |")
    print("|---|---|---|---|---|---|---|")
    for n in (int(s) for s in args.sizes.split(",")):
        x, y, spk = corpus(n, args.dim)
        for head in args.heads.split(","):
            for scheme, groups in (("stratified", None), ("speaker-grouped", spk)):
                fit = select_head(HeadConfig(head, n_jobs=args.n_jobs), x, y, groups, seed=0)
                chosen = ", ".join(f"{k} {v:.2g}" for k, v in fit.params.items())
                print(f"| {n} | {args.dim} | {head} | {scheme} | {chosen} | {fit.inner_ua:.3f} | {fit.seconds:.1f} |", flush=True)
        if args.old:
            print(f"| {n} | {args.dim} | logreg, earlier GridSearchCV | stratified | | | {old_logreg(x, y):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
