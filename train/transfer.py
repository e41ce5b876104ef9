"""Transfer to a language with few labels: the model of ``train --transfer-to LANG``.

``train --domains de,it,en,xx=mycorpus --transfer-to xx`` fits, on each run's split, an ensemble of two members
(:func:`train.fit_run.fit_ensemble_run`, members :data:`train.config.TRANSFER_MEMBERS`) whose class probabilities
are the mean of theirs, equal weights fixed in advance (the recipe ``net_self_pooled`` / ``net_self_pooled_spk``
chosen on the pseudo-targets of ``bench/fewshot.py``; nothing is chosen on the target's labels):

- the network on the target's labelled utterances alone (``--model single`` with the same options);
- the **pooled head**: one multinomial logistic regression on the pooled statistics (:mod:`train.pooling`) of every
  language, the labelled training and validation utterances of the source languages (de, it, en) and the
  labelled training utterances of the target (xx), each corpus standardised with the mean and std of its own
  training split (its audio only, no label), the target's utterances weighted up so that they weigh as much as
  all source utterances together, with the fixed regularisation :data:`TRANSFER_C`, self-trained on the target's
  unlabelled training audio and ``--unlabelled`` recordings (:func:`self_train`). The target's emotions are read
  off the rows of its classes (an emotion only a source has is dropped), so it is an ordinary ``logreg`` head of
  the target alone (:class:`train.models.pooled_head.PooledHead`).

The target's validation split, where it has one, chooses the network's epoch and calibrates each member (a
temperature, from 30 utterances on). With ``--speaker-norm`` the head's inputs, every corpus's utterances, are first
standardised with their own speaker's statistics (no label) and its regularisation is :data:`SPEAKER_TRANSFER_C`;
``predict`` then needs each file's speaker (``--speakers``). ``--model logreg``: the head alone (run folder, bundle and
``predict`` of ``train --model logreg``), self-trained only with ``--speaker-norm``.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from .calibration import apply_temperature
from .pooled_heads import HeadConfig, HeadFit
from .scaling import standardise

#: The pooled head's C (logistic regression, sklearn's inverse regularisation strength): the better of 0.01 and
#: 0.1 on the pseudo-targets of ``bench/fewshot.py`` (docs/results/fewshot.md).
TRANSFER_C = 0.01
#: The same with ``--speaker-norm`` (``pooled_spk`` and ``self_pooled_spk`` of ``bench/fewshot.py``).
SPEAKER_TRANSFER_C = 0.1
#: Self-training's rounds (a recipe fixed in advance, not tuned): in round r the fraction SELF_ROUNDS[r] of the
#: target's unlabelled training rows, the most confident of each predicted emotion in equal numbers, join the
#: labelled rows with the labels the model of the round before gives them.
SELF_ROUNDS = (0.2, 0.4, 0.6)

#: load_source's corpora: (the store files' sizes and times, the DomainData read from them) by corpus and features.
_SOURCES: dict[tuple, tuple] = {}


def load_source(domain: str, features_dir: str | Path, features: Sequence[str], labelled: bool = True):
    """A source language's :class:`train.domains.DomainData` (read once per process); ``labelled=False``: recordings
    whose labels are not read (``--unlabelled``; one label for all is fine)."""
    from sercore.manifest import SPLITS
    from sercore.store import store_path

    from .domains import load_domain, resolve_domain

    spec = resolve_domain(domain, features_dir)
    # the store files as they are now: a corpus extracted again while the process runs is read again
    paths = [store_path(features_dir, spec.dataset, split) for split in SPLITS]
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None for p in paths)
    key = (str(spec), str(features_dir), tuple(features), labelled)
    if key not in _SOURCES or _SOURCES[key][0] != stamp:
        _SOURCES[key] = (stamp, load_domain(spec, features_dir, list(features), labelled))
    return _SOURCES[key][1]


def transfer_data(config, features: Sequence[str]) -> dict[str, dict[str, object]]:
    """What ``train --transfer-to`` reads besides the target: every source corpus and every ``--unlabelled`` one,
    as the :class:`train.domains.DomainData` of each (by ``LANG=DATASET``), labelled and unlabelled apart."""
    return {"sources": {str(d.spec): d for d in (load_source(s, config.features_dir, features)
                                                  for s in config.transfer_sources)},
            "unlabelled": {str(d.spec): d for d in (load_source(s, config.features_dir, features, labelled=False)
                                                     for s in config.transfer_unlabelled)}}


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


def self_train(fit, x_labelled: np.ndarray, y_labelled: np.ndarray, x_pool: np.ndarray, classes: Sequence[str],
               rounds: Sequence[float] = SELF_ROUNDS):
    """Self-training on unlabelled rows: ``fit(x, y)`` on the labelled rows, then for each fraction f of ``rounds``
    the pool (x_pool: (m, dim), no labels) labelled by the current model, and the f x m / len(classes) most
    confident rows of each predicted emotion (fewer where fewer are predicted) join the labelled rows for the next
    fit. ``fit`` returns a model with ``decision_function`` and ``classes_`` (containing ``classes``); confidence is
    the softmax of its decision values over ``classes``. Returns the last model."""
    model = fit(x_labelled, y_labelled)
    if not len(x_pool):
        return model
    per_class = len(x_pool) / len(classes)
    for fraction in rounds:
        d = np.asarray(model.decision_function(x_pool))
        if d.ndim == 1:  # two classes: the decision is class 1's
            d = np.column_stack([-d / 2, d / 2])
        p = apply_temperature(d[:, [list(model.classes_).index(c) for c in classes]], 1.0)  # softmax
        predicted, confidence = p.argmax(1), p.max(1)
        keep = np.concatenate([rows[np.argsort(-confidence[rows], kind="stable")][:int(round(fraction * per_class))]
                               for rows in (np.flatnonzero(predicted == j) for j in range(len(classes)))])
        model = fit(np.vstack([x_labelled, x_pool[keep]]),
                    np.concatenate([y_labelled, np.asarray(classes)[predicted[keep]]]))
    return model


def fit_pooled_transfer(x_labelled: np.ndarray, y_labelled: Sequence[str], x_unlabelled: np.ndarray,
                        classes: Sequence[str], sources: Sequence[tuple[np.ndarray, Sequence[str]]],
                        c: float = TRANSFER_C, x_pool: np.ndarray | None = None) -> HeadFit:
    """The pooled head of the target (see the module docstring).

    x_labelled: (n, dim) the target's labelled pooled rows, y_labelled their emotions; x_unlabelled: (m, dim) the
    rows of its training split (standardisation only); classes: the target's emotions in class order; sources:
    per source language its rows, already standardised with its own training split, and their emotions; x_pool:
    (p, dim) the target's rows without a label (training rows that have none, other recordings), for
    self-training (:func:`self_train`; None: none).
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
    target_rows = []  # of each fit: the labelled rows, then with the self-training rounds' rows

    def fit(x: np.ndarray, y: np.ndarray):
        target_rows.append(len(x))
        return fit_union(x, y, zs, ys, c)

    if x_pool is None:
        union = fit(z, y_labelled)
    else:
        union = self_train(fit, z, y_labelled, (np.asarray(x_pool, np.float64) - mean) / scale, classes)
    weight = union_weight(len(ys), target_rows[-1])
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
    if x_pool is not None:
        params["pseudo_labelled"] = target_rows[-1] - len(z)  # in the last fit (shown in train's log line)
        params["self_training"] = {"pool": int(len(x_pool)), "rounds": list(SELF_ROUNDS), "target_rows": target_rows}
    return HeadFit(HeadConfig("logreg"), make_pipeline(scaler, head), params, float("nan"), time.perf_counter() - start)
