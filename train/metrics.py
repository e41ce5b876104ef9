"""Metrics as section 5.1 defines them.

WA (weighted accuracy): accuracy over all test utterances, i.e. the mean of per-class recalls weighted
by class support. UA (unweighted accuracy): the plain mean of per-class recalls, over the classes that
occur in the reference labels (a class absent from a test set has no recall).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; row = reference class, column = predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m


def weighted_accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) == 0:
        raise ValueError("no predictions to score")
    return float((y_true == y_pred).mean())


def per_class_recall(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class (NaN for a class without reference samples)."""
    support = confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)


def unweighted_accuracy(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int | None = None) -> float:
    y_true = np.asarray(y_true)
    if len(y_true) == 0:
        raise ValueError("no predictions to score")
    n = n_classes or int(max(y_true.max(), np.max(y_pred)) + 1)
    return float(np.nanmean(per_class_recall(confusion_matrix(y_true, y_pred, n))))


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
    recall = per_class_recall(m)
    return Scores(
        wa=weighted_accuracy(y_true, y_pred),
        ua=float(np.nanmean(recall)),
        confusion=m.tolist(),
        recall={c: (None if np.isnan(r) else float(r)) for c, r in zip(classes, recall)},
        classes=list(classes),
        n=int(m.sum()),
    )


def run_summary(values: Sequence[float]) -> dict:
    """Mean, sample standard deviation (ddof=1; 0 for one value) and count of a score over runs."""
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": int(len(a))}
