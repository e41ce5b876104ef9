"""Calibrated confidence: temperature scaling fitted on validation data, and the expected calibration error.

A model's class probabilities are ``softmax(logits / T)``; T > 0 is the one number that minimises the
negative log-likelihood of the validation labels (Guo et al., 2017). It moves no prediction (the argmax is
unchanged), only how sure the probabilities say the model is. Since ``softmax((z - c) / T) = softmax(z / T)``
for any per-row constant c, log-probabilities serve as logits: the run records' probabilities are enough.

A validation split without a single error gives no temperature (T = 1): nothing there says how often the
model is wrong; nor does one of fewer than :data:`MIN_ROWS` utterances (a demo's 15 validation utterances
gave T = 1000, probabilities flattened to uniform, or T = 0.13, every probability near 1).

The expected calibration error (ECE) is the mean over equal-width bins of the top probability of
``|accuracy - mean confidence|``, weighted by the bin's share of utterances (15 bins).

    from train.calibration import fit_temperature, expected_calibration_error, apply_temperature
    t = fit_temperature(valid_log_probs, valid_labels)
    p = apply_temperature(test_log_probs, t)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

ECE_BINS = 15
#: Temperatures searched (log-scale bounds): beyond these the probabilities are one-hot or uniform anyway.
T_BOUNDS = (1e-3, 1e3)
#: Fewer validation utterances than this give no temperature (T = 1): too few to say how often the model errs.
MIN_ROWS = 30
#: Probabilities are floored at this before their log is taken (a 0 in a record would be -inf).
FLOOR = 1e-12


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities -> their logs (floored), usable as logits."""
    return np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), FLOOR))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """(n, classes) logits (or log-probabilities) -> softmax(logits / T), rows summing to 1."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_loss(probabilities: np.ndarray, labels: Sequence[int]) -> float:
    """Mean negative log-likelihood of ``labels`` (n,) under ``probabilities`` (n, classes), floored at FLOOR."""
    labels = np.asarray(labels, dtype=np.int64)
    return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], FLOOR))))


def nll(logits: np.ndarray, labels: Sequence[int], temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``labels`` under softmax(logits / T)."""
    return log_loss(apply_temperature(logits, temperature), labels)


def fit_temperature(logits: np.ndarray, labels: Sequence[int]) -> float:
    """The T in :data:`T_BOUNDS` minimising the NLL of ``labels``; 1.0 for fewer than :data:`MIN_ROWS` rows, and for
    rows that are all
    predicted right (the NLL then only falls as T shrinks: it would make every probability 1, however few the
    rows)."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    if len(logits) < MIN_ROWS or (logits.argmax(axis=1) == np.asarray(labels)).all():
        return 1.0
    found = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                            bounds=tuple(np.log(T_BOUNDS)), method="bounded", options={"xatol": 1e-4})
    t = float(np.exp(found.x))
    return t if nll(logits, labels, t) <= nll(logits, labels, 1.0) else 1.0


def expected_calibration_error(probabilities: np.ndarray, labels: Sequence[int], bins: int = ECE_BINS) -> float:
    """ECE of the top-class probability over ``bins`` equal-width bins (0 for no rows)."""
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(p) == 0:
        return 0.0
    confidence, predicted = p.max(axis=1), p.argmax(axis=1)
    correct = (predicted == labels).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    ece = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            ece += rows.mean() * abs(correct[rows].mean() - confidence[rows].mean())
    return float(ece)


def calibrate(valid_probabilities: np.ndarray, valid_labels: Sequence[int], n_classes: int,
              test_probabilities: np.ndarray | None = None, test_labels: Sequence[int] | None = None) -> dict:
    """One language of one run: the temperature fitted on its validation rows (first ``n_classes`` columns)
    and the ECE before and after it, on validation and (reported only, never used to fit) on test."""
    valid = log_probabilities(np.asarray(valid_probabilities)[:, :n_classes])
    t = fit_temperature(valid, valid_labels)
    out = {"method": "temperature", "temperature": t, "n_valid": int(len(valid)),
           "valid_ece_before": expected_calibration_error(apply_temperature(valid, 1.0), valid_labels),
           "valid_ece_after": expected_calibration_error(apply_temperature(valid, t), valid_labels)}
    if test_probabilities is not None and test_labels is not None and len(test_labels):
        test = log_probabilities(np.asarray(test_probabilities)[:, :n_classes])
        out["test_ece_before"] = expected_calibration_error(apply_temperature(test, 1.0), test_labels)
        out["test_ece_after"] = expected_calibration_error(apply_temperature(test, t), test_labels)
    return out


def calibrate_run(valid, test, classes: Sequence[Sequence[str]]) -> dict[int, dict] | None:
    """Per domain index, :func:`calibrate` of a run's validation and test :class:`~train.network_trainer.Evaluation`;
    None when the evaluations keep no probabilities (records of an older train). A domain with no validation
    rows (zero-shot) is left out."""
    if valid.probabilities is None or test.probabilities is None:
        return None
    out = {}
    for d, names in enumerate(classes):
        v, t = np.asarray(valid.domains) == d, np.asarray(test.domains) == d
        if not v.any():
            continue
        out[d] = calibrate(valid.probabilities[v], valid.labels[v], len(names), test.probabilities[t], test.labels[t])
    return out
