"""Linear heads (and an RBF-kernel SVM) on pooled statistics: ``train --model logreg|linsvm|rbfsvm``.

The input is :func:`train.pooling.pooled_features` of the run's features (mean and std of each sequence
feature's frames and deltas; embeddings as they are), standardised with the fitting rows' statistics
(``StandardScaler``). The heads (scikit-learn):

- ``logreg``: multinomial logistic regression (lbfgs), C by inner CV;
- ``linsvm``: linear SVM, one-vs-rest (liblinear), C by inner CV;
- ``rbfsvm``: RBF-kernel SVM, one-vs-one (libsvm), C and gamma by inner CV; gamma = scale / dim
  (scikit-learn's ``gamma="scale"`` on standardised inputs, times each of :attr:`HeadConfig.gamma_scales`).

The hyperparameters are chosen by :func:`select_head`: an inner cross-validation on the fitting rows only
(speaker-grouped folds when speakers are given, else stratified; score: UA, i.e. balanced accuracy; ties go
to the stronger regularisation), then the head is refitted on all of them. It is quick on corpora of a few
thousand utterances: the folds run in parallel, the logistic regression warm-starts along its C path (from
strong to weak regularisation), and the RBF kernel is computed once per fold and gamma for every C.

As a model of ``train`` (:func:`train.fit_run.fit_head_run`), on each run's split: the inner CV and the fit use the
training split; the validation split gives the head's temperature (its probabilities are the softmax of its
decision values divided by it, :mod:`train.calibration`) and the validation scores; the test split is scored
once. With ``--refit`` the head is refitted on train + valid with the same hyperparameters and temperature.
The fitted head is a :class:`train.models.pooled_head.PooledHead` (a torch module computing the pooling, the standardisation and
the decision values), so the run folder, the bundle and ``predict`` are those of every other model.
Bench scripts call :func:`select_head` on their own rows (``bench/vs_baselines.py``: train + valid).
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import HEAD_MODELS
from .models.pooled_head import PooledHead, pairs

#: ``--model`` names of the heads.
HEADS: tuple[str, ...] = HEAD_MODELS
#: Default grids of C (log-spaced). Logistic regression chose the top of a grid ending at 100 in half of the
#: EmoDB runs, so its grid reaches 1e4. The linear SVM chose C <= 0.1 in 42 of 43 runs of the 2026-11-29
#: benchmark (grid 1e-5 .. 10), and its fits above 0.1 take the longest by far (liblinear's dual coordinate
#: descent hardly converges there), so its grid ends at 0.1.
C_GRIDS: dict[str, tuple[float, ...]] = {
    "logreg": tuple(float(c) for c in np.logspace(-4, 4, 9)),
    "linsvm": tuple(float(c) for c in np.logspace(-5, -1, 5)),
    "rbfsvm": tuple(float(c) for c in np.logspace(-1, 3, 5)),
}


PARALLEL_FROM = 200_000
#: The linear SVM's passes over the data at most (liblinear's ``max_iter``); see :func:`make_head`.
LINSVM_PASSES = 200


@dataclass(frozen=True)
class HeadConfig:
    """How a head is chosen and fitted."""

    kind: str
    #: C values searched; None: :data:`C_GRIDS`.
    c_grid: tuple[float, ...] | None = None
    #: rbfsvm: gamma values searched, as multiples of 1 / dim.
    gamma_scales: tuple[float, ...] = (0.25, 1.0, 4.0)
    #: Inner cross-validation folds (fewer when the data has fewer speakers or utterances of a class).
    inner_folds: int = 5
    #: Folds fitted in parallel; None: as many as folds, at most the CPU count, for data of at least
    #: :data:`PARALLEL_FROM` values (below it starting the workers costs more than it saves).
    n_jobs: int | None = None
    max_iter: int = 2000

    def __post_init__(self) -> None:
        if self.kind not in HEADS:
            raise ValueError(f"unknown head {self.kind!r} (known: {', '.join(HEADS)})")

    @property
    def cs(self) -> tuple[float, ...]:
        return tuple(sorted(self.c_grid or C_GRIDS[self.kind]))

    def grid(self, dim: int) -> list[dict]:
        """Every hyperparameter setting searched, in the order ties are broken (strongest regularisation first)."""
        if self.kind == "rbfsvm":
            return [{"c": c, "gamma": s / dim} for c in self.cs for s in self.gamma_scales]
        return [{"c": c} for c in self.cs]

    def as_dict(self) -> dict:
        return {"kind": self.kind, "c_grid": list(self.cs), "gamma_scales": list(self.gamma_scales),
                "inner_folds": self.inner_folds, "max_iter": self.max_iter}


@dataclass
class HeadFit:
    """A chosen and fitted head: its scikit-learn pipeline, its hyperparameters and the inner CV's UA."""

    config: HeadConfig
    pipeline: object
    params: dict
    inner_ua: float
    seconds: float
    #: Every setting searched with its mean inner UA.
    searched: list[dict] = field(default_factory=list)

    def decision(self, x: np.ndarray) -> np.ndarray:
        """(n, dim) pooled features -> (n, classes) decision values (argmax = the predicted class)."""
        return decision_values(self.pipeline, x)


def make_head(kind: str, c: float = 1.0, gamma: float | str = "scale", max_iter: int = 2000, warm_start: bool = False):
    """An unfitted scikit-learn pipeline: ``StandardScaler``, then the head ``kind`` with regularisation C."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    if kind == "logreg":
        model = LogisticRegression(C=c, max_iter=max_iter, warm_start=warm_start)
    elif kind == "linsvm":
        # random_state: liblinear's dual coordinate descent visits the samples in a random order (repeatable runs).
        # It converges in a few dozen passes at the small C usually chosen; at C >= 0.01 on a corpus of a thousand
        # utterances or more it may need hundreds, which change the decisions hardly at all: LINSVM_PASSES at most.
        model = LinearSVC(C=c, max_iter=min(max_iter, LINSVM_PASSES), random_state=0)
    elif kind == "rbfsvm":
        model = SVC(C=c, gamma=gamma, kernel="rbf")
    else:
        raise ValueError(f"unknown head {kind!r} (known: {', '.join(HEADS)})")
    return make_pipeline(StandardScaler(), model)


def decision_values(pipeline, x: np.ndarray) -> np.ndarray:
    """(n, classes) decision values of a fitted head pipeline (two columns [0, s] for two classes)."""
    d = np.asarray(pipeline.decision_function(x), dtype=np.float64)
    if d.ndim == 1:
        d = np.stack([np.zeros_like(d), d], axis=1)
    return d


def inner_folds(y: np.ndarray, groups: np.ndarray | None, seed: int,
                n_folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds of the fitting data for choosing the hyperparameters: speaker-grouped when ``groups`` is given,
    else stratified (shuffled with ``seed``)."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    y = np.asarray(y)
    if groups is not None:
        n = min(n_folds, len(set(groups)))
        if n < 2:
            raise ValueError("the inner cross-validation needs at least two speakers in the fitting data")
        return list(GroupKFold(n_splits=n).split(y, y, groups))
    n = min(n_folds, int(np.bincount(y).min()) if len(y) else 0)
    if n < 2:
        raise ValueError("the inner cross-validation needs at least two utterances of each emotion in the fitting data")
    return list(StratifiedKFold(n_splits=n, shuffle=True, random_state=seed).split(y, y))


def _balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class absent from a fold's held-out part
        return float(balanced_accuracy_score(y, predicted))


def _fold_scores(config: HeadConfig, x: np.ndarray, y: np.ndarray, fit: np.ndarray, held: np.ndarray) -> list[float]:
    """UA on ``held`` of the head fitted on ``fit``, for every setting of ``config.grid`` (in its order)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    scaler = StandardScaler().fit(x[fit])
    a, b = scaler.transform(x[fit]), scaler.transform(x[held])
    grid = config.grid(x.shape[1])
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if config.kind == "rbfsvm":
            # squared distances once; the kernel once per gamma, shared by every C
            aa, bb = (a * a).sum(1), (b * b).sum(1)
            d_fit = np.maximum(aa[:, None] + aa[None, :] - 2 * a @ a.T, 0)
            d_held = np.maximum(bb[:, None] + aa[None, :] - 2 * b @ a.T, 0)
            kernels = {}
            for setting in grid:
                g = setting["gamma"]
                if g not in kernels:
                    kernels[g] = (np.exp(-g * d_fit), np.exp(-g * d_held))
                k_fit, k_held = kernels[g]
                svc = SVC(C=setting["c"], kernel="precomputed").fit(k_fit, y[fit])
                scores.append(_balanced_accuracy(y[held], svc.predict(k_held)))
            return scores
        model = make_head(config.kind, max_iter=config.max_iter, warm_start=True).steps[-1][1]
        for setting in grid:  # ascending C: each fit starts from the previous solution (logistic regression)
            model.set_params(C=setting["c"])
            model.fit(a, y[fit])
            scores.append(_balanced_accuracy(y[held], model.predict(b)))
    return scores


def select_head(config: HeadConfig, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
                seed: int = 0) -> HeadFit:
    """Choose the hyperparameters by inner CV on (x, y) only and refit the head on all of it.

    x: (n, dim) pooled features, y: (n,) class indices, groups: (n,) speakers (speaker-grouped folds) or None.
    """
    from joblib import Parallel, delayed
    from sklearn.exceptions import ConvergenceWarning

    start = time.perf_counter()
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.int64)
    folds = inner_folds(y, None if groups is None else np.asarray(groups), seed, config.inner_folds)
    n_jobs = config.n_jobs or (max(1, min(len(folds), os.cpu_count() or 1)) if x.size >= PARALLEL_FROM else 1)
    per_fold = Parallel(n_jobs=n_jobs)(delayed(_fold_scores)(config, x, y, fit, held) for fit, held in folds)
    mean = np.mean(np.asarray(per_fold), axis=0)
    grid = config.grid(x.shape[1])
    best = int(np.argmax(mean))  # the first of equal scores: the strongest regularisation
    params = grid[best]
    pipeline = make_head(config.kind, c=params["c"], gamma=params.get("gamma", "scale"), max_iter=config.max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(x, y)
    searched = [{**s, "inner_ua": float(m)} for s, m in zip(grid, mean)]
    return HeadFit(config, pipeline, dict(params), float(mean[best]), time.perf_counter() - start, searched)


# --------------------------------------------------------------------------------------------------
# The fitted head as a torch module (run folders, bundles and predict)


def head_module(fit: HeadFit, kinds: dict[str, str], dims: dict[str, int], n_classes: int,
                temperature: float = 1.0) -> PooledHead:
    """The fitted head ``fit`` as a :class:`~train.models.pooled_head.PooledHead` whose logits are its decision values
    divided by ``temperature``."""
    head = PooledHead(fit.config.kind, kinds, dims, n_classes)
    scaler, model = fit.pipeline.steps[0][1], fit.pipeline.steps[-1][1]
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    state = {"mean": t(scaler.mean_), "scale": t(scaler.scale_), "temperature": t([temperature])}
    if list(model.classes_) != list(range(n_classes)):
        raise ValueError(f"the head was fitted on classes {list(model.classes_)}, expected all {n_classes}")
    if fit.config.kind == "rbfsvm":
        state.update(rbf_state(model, n_classes))
    else:
        coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
        if coef.shape[0] == 1:  # two classes: decision s for class 1 -> [0, s]
            coef, intercept = np.concatenate([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        state.update(coef=t(coef), intercept=t(intercept))
    head.load_state_dict(state)
    return head


def rbf_state(svc, n_classes: int) -> dict[str, torch.Tensor]:
    """A fitted ``SVC``'s one-vs-one decision as dense tensors: ``pair_coef[p, s]`` is the weight of support
    vector s in pair p = (i, j) (libsvm's ``dual_coef_`` rows, by the classes of i and j)."""
    starts = np.concatenate([[0], np.cumsum(svc.n_support_)])
    dual = np.asarray(svc.dual_coef_)
    pair_coef = np.zeros((len(pairs(n_classes)), dual.shape[1]))
    for p, (i, j) in enumerate(pairs(n_classes)):
        pair_coef[p, starts[i]:starts[i + 1]] = dual[j - 1, starts[i]:starts[i + 1]]
        pair_coef[p, starts[j]:starts[j + 1]] = dual[i, starts[j]:starts[j + 1]]
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    gamma = svc._gamma if hasattr(svc, "_gamma") else svc.gamma
    return {"support": t(svc.support_vectors_), "pair_coef": t(pair_coef), "intercept": t(svc.intercept_),
            "gamma": t([gamma])}
