"""WA and UA as section 5.1 defines them."""

import numpy as np
import pytest

from train.metrics import confusion_matrix, per_class_recall, score, unweighted_accuracy, weighted_accuracy


def test_wa_is_accuracy_and_ua_the_mean_recall():
    y_true = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert weighted_accuracy(y_true, y_pred) == pytest.approx(7 / 10)
    assert unweighted_accuracy(y_true, y_pred) == pytest.approx((1 + 0.5 + 0) / 3)
    # WA is the support-weighted mean of recalls
    recall = per_class_recall(y_true, y_pred, 3)
    assert np.average(recall, weights=[6, 2, 2]) == pytest.approx(0.7)


def test_confusion_rows_are_reference_classes():
    m = confusion_matrix([0, 1, 1], [1, 1, 0], 2)
    assert m.tolist() == [[0, 1], [1, 1]]


def test_class_absent_from_reference_has_no_recall():
    s = score([0, 0, 1], [0, 2, 1], ["a", "b", "c"])
    assert s.recall == {"a": 0.5, "b": 1.0, "c": None}
    assert s.ua == pytest.approx(0.75) and s.wa == pytest.approx(2 / 3) and s.n == 3
    assert s.confusion == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_empty_predictions_refused():
    for measure in (weighted_accuracy, unweighted_accuracy):
        with pytest.raises(ValueError):
            measure([], [])
