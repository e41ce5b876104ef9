"""Metrics as section 5.1 defines them.

WA (weighted accuracy): accuracy over all test utterances, i.e. the mean of per-class recalls weighted
by class support. UA (unweighted accuracy): the plain mean of per-class recalls, over the classes that
occur in the reference labels (a class absent from a test set has no recall). Computed by scikit-learn.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from sklearn import metrics as skm


def _check(y_true: Sequence[int]) -> None:
    if len(y_true) == 0:
        raise ValueError("no predictions to score")


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; row = reference class, column = predicted class."""
    return skm.confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).astype(np.int64)


def weighted_accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    _check(y_true)
    return float(skm.accuracy_score(y_true, y_pred))


def per_class_recall(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n_classes,) recall of each class; NaN for a class without reference samples."""
    _check(y_true)
    return skm.recall_score(y_true, y_pred, labels=np.arange(n_classes), average=None, zero_division=np.nan)


def unweighted_accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """The mean of the recalls of the classes in ``y_true`` (scikit-learn's balanced accuracy)."""
    _check(y_true)
    with warnings.catch_warnings():  # a predicted class absent from y_true is fine (it has no recall), so is one class
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        return float(skm.balanced_accuracy_score(y_true, y_pred))


@dataclass
class Scores:
    """WA, UA, confusion matrix and per-class recall of one evaluation, over named classes."""

    wa: float
    ua: float
    confusion: list[list[int]]
    recall: dict[str, float | None]
    classes: list[str]
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


def score(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> Scores:
    m = confusion_matrix(y_true, y_pred, len(classes))
    recall = per_class_recall(y_true, y_pred, len(classes))
    return Scores(
        wa=weighted_accuracy(y_true, y_pred),
        ua=unweighted_accuracy(y_true, y_pred),
        confusion=m.tolist(),
        recall={c: (None if np.isnan(r) else float(r)) for c, r in zip(classes, recall)},
        classes=list(classes),
        n=int(m.sum()),
    )


def run_summary(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (ddof=1; 0 for one value) and count of a score over runs."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}


def paired_interval(differences: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean of paired differences (one per run) and its two-sided t confidence interval with n - 1 degrees of
    freedom: (mean, low, high); nan bounds for a single run."""
    from scipy import stats

    d = np.asarray(differences, dtype=float)
    mean = float(d.mean())
    if len(d) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return mean, mean - half, mean + half
