"""train/pooled_heads.py: the heads on pooled statistics as models of train (logreg, linsvm, rbfsvm)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests._train_helpers import make_stores, scrambled_test, selected_run
from train.cli import main as train
from train.config import build_config
from train.domains import load_domain, resolve_domain
from train.fit_run import fit_head_run
from train.pooled_heads import HEADS, HeadConfig, head_module, inner_folds, select_head
from train.models.pooled_head import PooledHead
from train.pooling import pooled_features
from train.protocol import draw_split, split_indices, split_key
from train.scaling import speaker_standardised


def _blobs(n_classes: int, n: int = 90, dim: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    x = rng.normal(size=(n, dim)) + rng.normal(size=(n_classes, dim))[y] * 1.2
    return x, y


@pytest.mark.parametrize("kind", HEADS)
@pytest.mark.parametrize("n_classes", [2, 4])
def test_the_torch_head_computes_the_scikit_learn_decision(kind, n_classes):
    x, y = _blobs(n_classes)
    fit = select_head(HeadConfig(kind, c_grid=(0.1, 1.0)), x, y, seed=0)
    kinds, dims = {"emb": "embedding"}, {"emb": x.shape[1]}
    head = head_module(fit, kinds, dims, n_classes, temperature=2.0)
    logits, _ = head.logits_from_pooled(torch.as_tensor(x))
    assert np.allclose(logits.numpy() * 2.0, fit.decision(x), atol=1e-8)
    assert (logits.numpy().argmax(1) == fit.pipeline.predict(x)).all()
    # the state dict alone rebuilds it (the support vectors' count is the fit's)
    again = PooledHead(kind, kinds, dims, n_classes)
    again.load_state_dict(head.state_dict())
    assert torch.equal(again.logits_from_pooled(torch.as_tensor(x))[0], logits)


def test_inner_folds_keep_each_speaker_on_one_side_and_stratify_otherwise():
    y = np.arange(60) % 3
    speakers = np.array([f"s{i % 6}" for i in range(60)])
    folds = inner_folds(y, speakers, seed=0)
    assert len(folds) == 5
    for fit, held in folds:
        assert not set(speakers[fit]) & set(speakers[held])
    for fit, held in inner_folds(y, None, seed=0):
        assert sorted(np.bincount(y[held]).tolist()) == [4, 4, 4]
    with pytest.raises(ValueError, match="two speakers"):
        inner_folds(y, np.array(["one"] * 60), seed=0)


def test_ties_go_to_the_strongest_regularisation():
    x, y = _blobs(3, dim=4)
    x[:, :] += 20 * np.eye(3)[y].repeat(2, axis=1)[:, :4]  # trivially separable: every C scores 1
    fit = select_head(HeadConfig("logreg", c_grid=(10.0, 0.1, 1.0)), x, y)
    assert fit.params["c"] == 0.1 and fit.inner_ua == 1.0
    assert [s["c"] for s in fit.searched] == [0.1, 1.0, 10.0]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_stores(tmp_path_factory.mktemp("heads") / "stores", per_class=16, speakers=4)


def _config(stores, model, **kw):
    return build_config(["de=synth"], features_dir=str(stores), out="unused", model=model, **kw)


@pytest.mark.parametrize("protocol, speaker_norm", [("random", False), ("speaker", False), ("speaker", True)])
def test_model_selection_never_reads_the_test_data(stores, protocol, speaker_norm):
    """The chosen hyperparameters, the temperature, the weights and the validation scores are the same when
    the test utterances' features are replaced by noise and (speaker protocol, whose folds do not depend on the
    labels) their labels shuffled among them; with --speaker-norm too (under the speaker protocol a test
    speaker's statistics come from that speaker's test audio alone)."""
    config = _config(stores, "rbfsvm", protocol=protocol)
    config = replace(config, train=replace(config.train, speaker_norm=speaker_norm))
    spec = resolve_domain("de=synth", stores)
    data = load_domain(spec, stores, ["mfcc", "ge2e"])
    first = fit_head_run(config, [data], ["mfcc", "ge2e"], 0)
    key = split_key(protocol, config.first_seed, 0)
    test_rows = split_indices(draw_split(data, protocol, key, config.folds))["test"]
    other = scrambled_test(data, test_rows, ["mfcc", "ge2e"], shuffle_labels=protocol == "speaker")
    if protocol == "speaker":
        assert other.emotions != data.emotions
        assert split_indices(draw_split(other, protocol, 0, config.folds))["test"] == test_rows
    second = fit_head_run(config, [other], ["mfcc", "ge2e"], 0)
    a, b = first.fit.history[0], second.fit.history[0]
    assert a["chosen"] == b["chosen"] and a["searched"] == b["searched"] and a["temperature"] == b["temperature"]
    for k, v in first.fit.state["model"].items():
        assert torch.equal(v, second.fit.state["model"][k]), k
    assert np.array_equal(first.fit.valid.probabilities, second.fit.valid.probabilities)
    assert first.fit.test.utt_ids == [data.utt_ids[i] for i in test_rows]
    assert not np.array_equal(first.fit.test.probabilities, second.fit.test.probabilities)


@pytest.mark.parametrize("model", HEADS)
def test_train_model_head_writes_the_run_folder_and_a_bundle_predict_reproduces(stores, tmp_path, model):
    out = tmp_path / model
    r = CliRunner().invoke(train, ["--domains", "de=synth", "--model", model, "--features-dir", str(stores),
                                   "--out", str(out), "--seeds", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == model and len(metrics["runs"]) == 2
    assert metrics["domains_summary"]["de"]["test_ua"]["mean"] > 0.5  # separable synthetic emotions
    assert (out / "confusion_de.png").is_file() and (out / "model.bundle").is_file()
    got = selected_run(out, "de=synth", stores, ["mfcc", "ge2e"])
    assert np.allclose(got.probabilities, got.record["test"]["probabilities"], atol=1e-5)
    # the pooled input is the one shared with bench/ (train/pooling.py)
    x = pooled_features(got.data, got.bundle.features)[got.rows]
    assert np.allclose(got.bundle.model.pool(got.batch).numpy(), x, atol=1e-5)
    # a rerun resumes from the finished runs
    again = CliRunner().invoke(train, ["--domains", "de=synth", "--model", model, "--features-dir", str(stores),
                                       "--out", str(out), "--seeds", "2"])
    assert again.exit_code == 0 and "finished earlier" in again.output


def test_speaker_norm_fits_the_head_on_each_speakers_standardised_pooled_statistics(stores):
    """--model logreg --speaker-norm: the head is chosen and fitted on the pooled vectors standardised per speaker
    (train.scaling.speaker_standardised over all of a speaker's utterances, no label), and that changes the fit."""
    spec = resolve_domain("de=synth", stores)
    data = load_domain(spec, stores, ["mfcc", "ge2e"])
    config = _config(stores, "logreg", protocol="speaker")
    normed = fit_head_run(replace(config, train=replace(config.train, speaker_norm=True)), [data], ["mfcc", "ge2e"], 0)
    plain = fit_head_run(config, [data], ["mfcc", "ge2e"], 0)
    x = speaker_standardised(pooled_features(data, ["mfcc", "ge2e"]), data.speakers)
    idx = split_indices(draw_split(data, "speaker", split_key("speaker", config.first_seed, 0), config.folds))
    y = np.array([data.classes.index(e) for e in data.emotions])
    rows = np.array(idx["train"])
    by_hand = select_head(HeadConfig("logreg"), x[rows], y[rows], np.array(data.speakers)[rows], seed=config.first_seed)
    assert normed.fit.history[0]["searched"] == by_hand.searched
    test = np.array(idx["test"])
    assert np.array_equal(normed.fit.test.predictions, by_hand.decision(x[test]).argmax(1))
    assert normed.fit.history[0]["searched"] != plain.fit.history[0]["searched"]


def test_a_head_takes_one_language(stores):
    r = CliRunner().invoke(train, ["--domains", "de=synth,it=synth", "--model", "logreg", "--features-dir", str(stores),
                                   "--quiet"])
    assert r.exit_code == 2 and "single-language model" in r.output


def test_refit_uses_train_and_valid_with_the_chosen_hyperparameters(stores):
    spec = resolve_domain("de=synth", stores)
    data = load_domain(spec, stores, ["mfcc", "ge2e"])
    plain = fit_head_run(_config(stores, "logreg"), [data], ["mfcc", "ge2e"], 0)
    config = _config(stores, "logreg")
    refit = fit_head_run(replace(config, train=replace(config.train, refit=True)), [data], ["mfcc", "ge2e"], 0)
    assert refit.fit.history[0]["chosen"] == plain.fit.history[0]["chosen"]
    assert np.array_equal(refit.fit.valid.probabilities, plain.fit.valid.probabilities)  # scored by the selection fit
    assert not torch.equal(refit.fit.state["model"]["coef"], plain.fit.state["model"]["coef"])


@pytest.mark.parametrize("kind", HEADS)
def test_a_head_is_fitted_the_same_way_twice(kind):
    x, y = _blobs(4, n=80, dim=30, seed=3)
    a, b = (select_head(HeadConfig(kind, c_grid=(0.01, 1.0)), x, y, seed=1) for _ in range(2))
    assert a.params == b.params and np.array_equal(a.decision(x), b.decision(x))


@pytest.mark.parametrize("protocol", ["random", "speaker"])
def test_the_inner_folds_are_speaker_grouped_under_the_speaker_protocol(stores, monkeypatch, protocol):
    import train.pooled_heads as heads

    seen = []
    original = heads.inner_folds
    monkeypatch.setattr(heads, "inner_folds",
                        lambda y, groups, seed, n_folds=5: seen.append(groups) or original(y, groups, seed, n_folds))
    data = load_domain(resolve_domain("de=synth", stores), stores, ["mfcc", "ge2e"])
    result = fit_head_run(_config(stores, "logreg", protocol=protocol), [data], ["mfcc", "ge2e"], 1)
    idx = split_indices(draw_split(data, protocol, 1, None))
    if protocol == "random":
        assert seen == [None]
    else:
        assert list(seen[0]) == [data.speakers[i] for i in idx["train"]]
        assert not set(seen[0]) & set(result.test_speakers["de"])
