"""Transfer to a language with few labels: the pooled linear head of ``train --transfer-to LANG``.

``train --domains de,it,en,xx=mycorpus --transfer-to xx`` fits one multinomial logistic regression on the pooled
statistics (:mod:`train.pooling`) of every language: the labelled training and validation utterances of the
source languages (de, it, en) and the labelled training utterances of the target (xx), each corpus standardised
with the mean and std of its own training split (its audio only, no label), the target's utterances weighted up
so that they weigh as much as all source utterances together, with the fixed regularisation :data:`TRANSFER_C`
(a recipe chosen on other languages, ``bench/fewshot.py``; nothing is chosen on the target's labels). The
target's emotions are read off the rows of its classes (an emotion only a source has is dropped), so the fitted
model is an ordinary ``logreg`` head of the target alone (:class:`train.models.pooled_head.PooledHead`): the run folder,
the bundle and ``predict`` are those of ``train --model logreg``. The target's validation split only calibrates the
probabilities (a temperature, from 30 utterances on) and reports a validation UA.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .pooled_heads import HeadConfig, HeadFit
from .scaling import standardise

#: The pooled head's C (logistic regression, sklearn's inverse regularisation strength): the better of 0.01 and
#: 0.1 on the pseudo-targets of ``bench/fewshot.py`` (docs/results/fewshot.md).
TRANSFER_C = 0.01

_SOURCES: dict[tuple, object] = {}


def load_source(domain: str, features_dir: str | Path, features: Sequence[str]):
    """A source language's :class:`train.domains.DomainData` (read once per process)."""
    from .domains import load_domain, resolve_domain

    key = (domain, str(features_dir), tuple(features))
    if key not in _SOURCES:
        _SOURCES[key] = load_domain(resolve_domain(domain, features_dir), features_dir, list(features))
    return _SOURCES[key]


def union_weight(n_sources: int, n_target: int) -> float:
    """The weight of each target row: all target rows together weigh as much as all source rows (at least 1 each)."""
    return max(1.0, n_sources / n_target)


def fit_union(z_target: np.ndarray, y_target: np.ndarray, z_sources: np.ndarray, y_sources: np.ndarray, c: float):
    """One multinomial logistic regression (lbfgs, at most 1000 iterations) on the sources' rows and the target's,
    the target's weighted by :func:`union_weight`; its classes are every emotion of either. Rows already
    standardised (each corpus with its own statistics). z_target: (n, dim), z_sources: (m, dim)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    weight = union_weight(len(y_sources), len(z_target))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=c, max_iter=1000).fit(
            np.vstack([z_sources, z_target]), np.concatenate([y_sources, y_target]),
            sample_weight=np.concatenate([np.ones(len(y_sources)), np.full(len(z_target), weight)]))


def fit_pooled_transfer(x_labelled: np.ndarray, y_labelled: Sequence[str], x_unlabelled: np.ndarray,
                        classes: Sequence[str], sources: Sequence[tuple[np.ndarray, Sequence[str]]],
                        c: float = TRANSFER_C) -> HeadFit:
    """The pooled head of the target (see the module docstring).

    x_labelled: (n, dim) the target's labelled pooled rows, y_labelled their emotions; x_unlabelled: (m, dim) the
    rows of its training split (standardisation only); classes: the target's emotions in class order; sources:
    per source language its rows, already standardised with its own training split, and their emotions.
    Returns a ``logreg`` :class:`~train.pooled_heads.HeadFit` over ``classes`` (the pipeline's scaler holds the target's
    statistics).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    y_labelled = np.asarray(y_labelled)
    missing = sorted(set(classes) - set(y_labelled.tolist()))
    if missing:
        raise ValueError(f"the target has no labelled utterance of {', '.join(missing)}")
    z, mean, scale = standardise(np.asarray(x_labelled, np.float64), np.asarray(x_unlabelled, np.float64))
    zs = np.concatenate([np.asarray(s, np.float64) for s, _ in sources]) if sources else np.zeros((0, z.shape[1]))
    ys = np.concatenate([np.asarray(e) for _, e in sources]) if sources else np.zeros(0, dtype=y_labelled.dtype)
    union = fit_union(z, y_labelled, zs, ys, c)
    weight = union_weight(len(ys), len(z))
    rows = [list(union.classes_).index(e) for e in classes]
    coef, intercept = np.asarray(union.coef_), np.asarray(union.intercept_)
    if coef.shape[0] == 1:  # two emotions in all: class 1's decision s -> [-s/2, s/2]
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    head = LogisticRegression(C=c)
    head.coef_, head.intercept_, head.classes_ = coef[rows], intercept[rows], np.arange(len(classes))
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_, scaler.var_ = mean, scale, scale ** 2
    scaler.n_features_in_ = head.n_features_in_ = len(mean)
    scaler.n_samples_seen_ = len(x_unlabelled)
    params = {"c": c, "source_rows": int(len(ys)), "target_weight": float(weight)}
    return HeadFit(HeadConfig("logreg"), make_pipeline(scaler, head), params, float("nan"), time.perf_counter() - start)
