"""train/calibration.py: temperature scaling on validation data and the expected calibration error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests._train_helpers import make_stores
from train.calibration import (MIN_ROWS, apply_temperature, calibrate, expected_calibration_error, fit_temperature,
                               log_probabilities, nll)
from train.cli import main as train


def test_fit_temperature_recovers_the_temperature_that_made_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5)) * 3
    p = apply_temperature(logits, 2.5)
    labels = np.array([rng.choice(5, p=row) for row in p])
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(2.5, rel=0.1)
    assert nll(logits, labels, t) < nll(logits, labels, 1.0)
    assert (apply_temperature(logits, t).argmax(1) == logits.argmax(1)).all()  # no prediction moves
    assert fit_temperature(np.zeros((0, 3)), []) == 1.0


def test_log_probabilities_serve_as_logits():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    p = apply_temperature(logits, 1.0)
    assert np.allclose(apply_temperature(log_probabilities(p), 0.7), apply_temperature(logits, 0.7))


def test_expected_calibration_error_by_hand():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 0])
    # bins of the top probability (15 bins): 0.9 -> bin 13, 0.8 -> 12, 0.7 -> 10, 0.55 -> 8; one utterance each
    expected = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(0 - 0.55)) / 4
    assert expected_calibration_error(p, labels) == pytest.approx(expected)
    assert expected_calibration_error(np.array([[1.0, 0.0]] * 3), [0, 0, 0]) == 0.0


def test_calibrate_reports_the_error_before_and_after_and_fits_on_valid_only():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(600, 4)) * 4  # overconfident: the labels follow softmax(logits / 3)
    labels = np.array([rng.choice(4, p=row) for row in apply_temperature(logits, 3.0)])
    valid, test = slice(0, 300), slice(300, 600)
    probs = apply_temperature(logits, 1.0)
    c = calibrate(probs[valid], labels[valid], 4, probs[test], labels[test])
    assert c["temperature"] > 1.5 and c["n_valid"] == 300
    assert c["valid_ece_after"] < c["valid_ece_before"] and c["test_ece_after"] < c["test_ece_before"]
    shuffled = calibrate(probs[valid], labels[valid], 4, probs[test], rng.permutation(labels[test]))
    assert shuffled["temperature"] == c["temperature"]  # the test labels play no part in the fit


def test_metrics_report_the_calibration_of_every_run(tmp_path):
    stores = make_stores(tmp_path / "stores", per_class=16)
    out = tmp_path / "run"
    r = CliRunner().invoke(train, ["--domains", "de=synth", "--epochs", "2", "--preset", "paper", "--seeds", "2",
                                   "--features-dir", str(stores), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "test expected calibration error" in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    for run in metrics["runs"]:
        c = run["calibration"]["de"]
        assert c["method"] == "temperature" and c["temperature"] > 0
        record = json.loads((out / "runs" / f"run{run['run']}.json").read_text())
        again = calibrate(np.asarray(record["valid"]["probabilities"]), record["valid"]["labels"], 4,
                          np.asarray(record["test"]["probabilities"]), record["test"]["labels"])
        assert again == pytest.approx(c)  # recomputable from the records
    summary = metrics["domains_summary"]["de"]["calibration"]
    assert {"temperature", "valid_ece_before", "valid_ece_after", "test_ece_before", "test_ece_after"} == set(summary)
    assert summary["temperature"]["n"] == 2


def test_a_validation_split_without_errors_gives_no_temperature():
    logits = np.tile(np.array([[3.0, 0.0, -1.0], [0.0, 2.0, 1.0], [0.5, 0.0, 4.0]]), (10, 1))
    assert fit_temperature(logits, [0, 1, 2] * 10) == 1.0  # else T would shrink until every probability is 1
    assert fit_temperature(logits, [0, 1, 1] * 10) != 1.0


def test_too_few_validation_utterances_give_no_temperature():
    """15 utterances (the demo's validation split) say too little: T would flatten or sharpen every probability."""
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(MIN_ROWS, 5)) * 3
    wrong = (logits.argmax(1) + 1) % 5  # a model that is always wrong: the NLL falls as T grows
    assert fit_temperature(logits[:15], wrong[:15]) == 1.0
    assert fit_temperature(logits, wrong) > 10  # with enough rows the same evidence is used
