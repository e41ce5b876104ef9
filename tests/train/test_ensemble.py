"""train --model ensemble (train/ensemble_weights.py, train/models/ensemble.py, train.fit_run.fit_ensemble_run)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests._train_helpers import collated, make_stores, scrambled_test, selected_run
from train.calibration import apply_temperature
from train.cli import main as train
from train.config import ENSEMBLE_MEMBERS, build_config
from train.domains import load_domain, resolve_domain
from train.calibration import log_loss
from train.ensemble_weights import combine, select_weights
from train.fit_run import fit_ensemble_run
from train.protocol import draw_split, split_indices, split_key

FEATURES = ["mfcc", "ge2e"]


def test_select_weights_by_hand():
    labels = np.array([0, 1, 0, 1])
    right = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    wrong = right[:, ::-1]
    assert select_weights([wrong, right], labels, steps=10).tolist() == [0.0, 1.0]
    # two members each right on half of the rows: their average beats either alone
    a = np.array([[0.9, 0.1], [0.1, 0.9], [0.4, 0.6], [0.6, 0.4]])
    b = np.array([[0.4, 0.6], [0.6, 0.4], [0.9, 0.1], [0.1, 0.9]])
    w = select_weights([a, b], labels, steps=10)
    assert w.tolist() == [0.5, 0.5]
    assert log_loss(combine([a, b], w), labels) < min(log_loss(a, labels), log_loss(b, labels))
    # ties go to the earlier member; no rows: equal weights
    assert select_weights([right, right.copy()], labels, steps=4).tolist() == [1.0, 0.0]
    assert select_weights([a, b, right], np.zeros(0, np.int64)).tolist() == pytest.approx([1 / 3] * 3)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    # separation 0.4: no member is perfect, so the validation data have something to choose on
    return make_stores(tmp_path_factory.mktemp("ensemble") / "stores", per_class=16, speakers=4, separation=0.4)


def _batch(data, rows):
    return collated(data, rows, FEATURES)


def test_train_model_ensemble_bundle_predicts_what_the_run_recorded(stores, tmp_path):
    out = tmp_path / "ensemble"
    r = CliRunner().invoke(train, ["--domains", "de=synth", "--model", "ensemble", "--features-dir", str(stores),
                                   "--out", str(out), "--seeds", "2", "--epochs", "4", "--refit", "--quiet"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "ensemble" and len(metrics["runs"]) == 2
    assert (out / "confusion_de.png").is_file() and (out / "model.bundle").is_file()
    got = selected_run(out, "de=synth", stores, FEATURES)
    bundle, record, data, rows, batch, probabilities = (got.bundle, got.record, got.data, got.rows, got.batch,
                                                        got.probabilities)
    assert bundle.meta["model"] == "ensemble" and bundle.scalers == [None]
    with torch.no_grad():
        members, _ = bundle.model.member_logits(batch)
    assert np.allclose(probabilities, record["test"]["probabilities"], atol=1e-5)
    # every member of the bundle (the network with its standardisation inside) gives what it gave in the run
    ensemble = record["history"][0]["ensemble"]
    model = bundle.model
    for k, name in enumerate(ENSEMBLE_MEMBERS):
        p = apply_temperature(members[k].double().numpy(), float(model.temperatures[k]))
        assert np.allclose(p, ensemble["test_probabilities"][name], atol=1e-5), name
        assert float(model.weights[k]) == ensemble["members"][name]["weight"]
    weights = [ensemble["members"][m]["weight"] for m in ENSEMBLE_MEMBERS]
    assert sum(weights) == pytest.approx(1.0)
    for split in ("valid", "test"):  # the record's probabilities are the weighted average of its members'
        recorded = combine([np.array(ensemble[f"{split}_probabilities"][m]) for m in ENSEMBLE_MEMBERS], weights)
        assert np.allclose(recorded, record[split]["probabilities"], atol=1e-5)
    # padding never changes the network's part: one utterance alone gives what it gave in the batch
    with torch.no_grad():
        alone = torch.softmax(bundle.model(_batch(data, rows[:1])).logits, -1).numpy()
    assert np.allclose(alone[0], probabilities[0], atol=1e-5)


@pytest.mark.parametrize("protocol", ["random", "speaker"])
def test_the_member_choice_never_reads_the_test_data(stores, protocol):
    """Weights, temperatures and validation probabilities are the same when the test utterances' features are
    replaced by noise and (speaker protocol, whose folds do not depend on the labels) their labels shuffled."""
    config = build_config(["de=synth"], features_dir=str(stores), out="unused", model="ensemble", protocol=protocol,
                          train={"epochs": 3})
    data = load_domain(resolve_domain("de=synth", stores), stores, FEATURES)
    first = fit_ensemble_run(config, [data], FEATURES, 0)
    key = split_key(protocol, config.first_seed, 0)
    test_rows = split_indices(draw_split(data, protocol, key, config.folds))["test"]
    other = scrambled_test(data, test_rows, FEATURES, shuffle_labels=protocol == "speaker")
    if protocol == "speaker":
        assert other.emotions != data.emotions
        assert split_indices(draw_split(other, protocol, 0, config.folds))["test"] == test_rows
    second = fit_ensemble_run(config, [other], FEATURES, 0)
    a, b = first.fit.history[0]["ensemble"]["members"], second.fit.history[0]["ensemble"]["members"]
    for m in ENSEMBLE_MEMBERS:
        assert a[m]["weight"] == b[m]["weight"] and a[m]["temperature"] == b[m]["temperature"], m
        assert a[m]["valid_ua"] == b[m]["valid_ua"], m
    assert np.array_equal(first.fit.valid.probabilities, second.fit.valid.probabilities)
    assert sorted(first.fit.test.utt_ids) == sorted(data.utt_ids[i] for i in test_rows)
    assert not np.array_equal(first.fit.test.probabilities, second.fit.test.probabilities)


def test_with_speaker_norm_the_heads_read_per_speaker_statistics_and_the_bundle_reproduces_the_run(stores, tmp_path):
    """--model ensemble --speaker-norm: the heads' pooled statistics are standardised per speaker (predict
    --speakers computes them from each speaker's files), the network standardises per corpus as trained alone."""
    from predict.bundle import load_bundle
    from train.pooling import pooled_features
    from train.scaling import speaker_standardised

    out = tmp_path / "ensemble_spk"
    r = CliRunner().invoke(train, ["--domains", "de=synth", "--model", "ensemble", "--speaker-norm", "--refit",
                                   "--features-dir", str(stores), "--out", str(out), "--seeds", "1", "--epochs", "3",
                                   "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    bundle = load_bundle(out)
    assert bundle.speaker_norm and bundle.model.speaker_norm and bundle.model.members == list(ENSEMBLE_MEMBERS)
    assert float(bundle.model.scaler.std_0.sub(1).abs().max()) > 0  # the network's own standardisation, per corpus
    record = json.loads((out / "runs" / "run0.json").read_text())
    features = json.loads((out / "config.json").read_text())["features"]  # in the order the heads pool them
    data = load_domain(resolve_domain("de=synth", stores), stores, features)
    rows = [data.utt_ids.index(u) for u in record["test"]["utt_ids"]]
    x = speaker_standardised(pooled_features(data, features), data.speakers)
    batch = _batch(data, rows)
    with torch.no_grad():
        logits, _ = bundle.model.logits_from_pooled(torch.as_tensor(x[rows]), bundle.model.network_logits(batch))
        # the heads on plain pooled statistics would say otherwise
        plain, _ = bundle.model.logits_from_pooled(torch.as_tensor(pooled_features(data, features)[rows]),
                                                   bundle.model.network_logits(batch))
    assert np.allclose(torch.softmax(logits, -1).numpy(), record["test"]["probabilities"], atol=1e-5)
    assert not np.allclose(torch.softmax(plain, -1).numpy(), record["test"]["probabilities"], atol=1e-3)


@pytest.mark.parametrize("args, problem", [
    (["--domains", "de=synth,it=synth"], "single-language model"),
])
def test_bad_option_combinations_give_one_line_and_exit_code_2(stores, args, problem):
    r = CliRunner().invoke(train, [*args, "--model", "ensemble", "--features-dir", str(stores), "--quiet"])
    assert r.exit_code == 2, r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and problem in errors[0]
