"""``train --model ensemble``: the network and the heads on pooled statistics, fitted on the same split, their
calibrated probabilities averaged with weights chosen on the validation split only.

Members (:data:`train.config.ENSEMBLE_MEMBERS`): the network of the run's configuration (``--model single`` with
every other option as given) and the heads ``logreg`` and ``rbfsvm`` (:mod:`train.pooled_heads`). On each run
(:func:`train.fit_run.fit_ensemble_run`):

1. every member is fitted as its own model would be on that split (the network chooses its epoch on the
   validation split, the heads their hyperparameters by inner cross-validation on the training split);
2. each member's temperature is fitted on its validation probabilities (:func:`train.calibration.fit_temperature`);
3. the weights are chosen by :func:`select_weights` on the calibrated validation probabilities: greedy ensemble
   selection with replacement (Caruana et al., 2004), :data:`STEPS` steps, each adding the member that lowers the
   validation log-loss of the average most (ties: the earlier member), so a weight is a multiple of 1 / STEPS
   and a member may get none;
4. the test probabilities are ``sum_m w_m softmax(logits_m / T_m)``; with ``--refit`` the members are those
   refitted on train + valid, with the weights and temperatures of step 2 and 3.

The test split plays no part in any choice. ``train --transfer-to``'s ensemble (:mod:`train.transfer`) has other
members and equal weights. The network's validation probabilities come from the epoch chosen
on that same split, so they are a little optimistic; the heads' are those of heads fitted on the training split
only. The fitted ensemble is a :class:`train.models.ensemble.EnsembleModel` holding every member, so the run
folder, the bundle and ``predict`` are those of every other model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .calibration import log_loss

#: Steps of the greedy selection: the weights are multiples of 1 / STEPS.
STEPS = 20


def select_weights(probabilities: Sequence[np.ndarray], labels: Sequence[int], steps: int = STEPS) -> np.ndarray:
    """Greedy ensemble selection with replacement: (members,) weights summing to 1.

    probabilities: per member (n, classes) calibrated validation probabilities, rows in the same order;
    labels: (n,) class indices. Each of ``steps`` steps adds one vote to the member whose addition gives the
    average with the lowest log-loss (ties: the earlier member). No rows: equal weights.
    """
    members = [np.asarray(p, dtype=np.float64) for p in probabilities]
    labels = np.asarray(labels, dtype=np.int64)
    if not members:
        raise ValueError("an ensemble needs at least one member")
    if len(labels) == 0:
        return np.full(len(members), 1.0 / len(members))
    counts = np.zeros(len(members), dtype=np.int64)
    total = np.zeros_like(members[0])
    for step in range(1, steps + 1):
        losses = [log_loss((total + p) / step, labels) for p in members]
        best = int(np.argmin(losses))  # the first of equal losses
        counts[best] += 1
        total += members[best]
    return counts / counts.sum()


def combine(probabilities: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """(n, classes) weighted average of the members' (n, classes) probabilities."""
    return sum(float(w) * np.asarray(p, dtype=np.float64) for w, p in zip(weights, probabilities))
