"""train --transfer-to (train/transfer.py): the pooled linear head of a language with few labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

from tests._train_helpers import make_stores, selected_run
from train.cli import main as train
from train.transfer import fit_pooled_transfer

IT = ("neutral", "happy", "angry", "sad", "fear")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer") / "features"
    make_stores(root, dataset="synth", language="de", per_class=12, speakers=3)
    make_stores(root, dataset="synth_it", language="it", emotions=IT, per_class=12, speakers=3, seed=1)
    return root


def test_the_pooled_head_is_the_union_models_rows_of_the_targets_emotions():
    rng = np.random.default_rng(0)
    classes = ["neutral", "angry", "sad"]
    x_shots, y_shots = rng.normal(size=(6, 4)) + 5.0, np.array(classes * 2)
    x_unlabelled = rng.normal(size=(30, 4)) * 2.0 + 5.0
    source = (rng.normal(size=(40, 4)), np.array(["neutral", "angry", "sad", "calm"] * 10))  # calm: the source only
    fit = fit_pooled_transfer(x_shots, y_shots, x_unlabelled, classes, [source], c=0.5)
    assert fit.params["target_weight"] == pytest.approx(40 / 6)
    # the same union model by hand: the target standardised with its unlabelled rows, weighted up
    mean, std = x_unlabelled.mean(0), x_unlabelled.std(0)
    z = (x_shots - mean) / std
    union = LogisticRegression(C=0.5, max_iter=1000).fit(
        np.vstack([source[0], z]), np.concatenate([source[1], y_shots]),
        sample_weight=np.concatenate([np.ones(40), np.full(6, 40 / 6)]))
    rows = [list(union.classes_).index(e) for e in classes]
    x_test = rng.normal(size=(9, 4)) + 5.0
    expected = union.decision_function((x_test - mean) / std)[:, rows]
    assert fit.decision(x_test).shape == (9, 3)  # calm is dropped: the target's emotions only
    assert np.allclose(fit.decision(x_test), expected, atol=1e-6)
    with pytest.raises(ValueError, match="sad"):
        fit_pooled_transfer(x_shots[:2], y_shots[:2], x_unlabelled, classes, [source])


def test_transfer_to_writes_the_targets_bundle_that_reproduces_its_test_probabilities(stores, tmp_path):
    out = tmp_path / "it"
    r = CliRunner().invoke(train, ["--domains", "de=synth,it=synth_it", "--transfer-to", "it", "--few-shot", "it=3",
                                   "--features-dir", str(stores), "--out", str(out), "--seeds", "2", "--quiet"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "logreg" and config["domains"] == ["it=synth_it"] and config["transfer_sources"] == ["de=synth"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["domains_summary"]["it"]["test_ua"]["mean"] > 0.5  # separable synthetic emotions
    for path in sorted((out / "runs").glob("run*.json")):  # de's training and validation rows are the source
        assert json.loads(path.read_text())["history"][0]["chosen"]["source_rows"] > 0
    got = selected_run(out, "it=synth_it", stores, ["mfcc", "ge2e"])
    assert got.bundle.meta["model"] == "logreg" and [d["classes"] for d in got.bundle.meta["domains"]] == [list(IT)]
    assert np.allclose(got.probabilities, got.record["test"]["probabilities"], atol=1e-5)


def test_transfer_to_refusals(stores, tmp_path):
    common = ["--domains", "de=synth,it=synth_it", "--features-dir", str(stores), "--quiet", "--out", str(tmp_path / "x")]
    for extra, words in ((["--transfer-to", "fr"], "--transfer-to"), (["--transfer-to", "it", "--model", "nas"], "logreg"),
                         (["--domains", "it=synth_it", "--transfer-to", "it"], "--transfer-to"),
                         (["--transfer-to", "it", "--speaker-norm"], "per-speaker standardisation")):
        r = CliRunner().invoke(train, [*common, *extra])
        assert r.exit_code == 2 and words in r.output, (extra, r.output)
