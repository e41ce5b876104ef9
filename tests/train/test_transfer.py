"""train --transfer-to (train/transfer.py): the pooled linear head of a language with few labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

from predict.bundle import load_bundle
from sercore.errors import StoreError
from tests._train_helpers import collated, make_stores, selected_run
from train.domains import load_domain, resolve_domain
from train.pooling import pooled_features
from train.scaling import speaker_standardised
from train.cli import main as train
from train.transfer import SELF_ROUNDS, SPEAKER_TRANSFER_C, fit_pooled_transfer

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


def test_transfer_to_model_logreg_writes_the_targets_head_whose_bundle_reproduces_its_test_probabilities(stores, tmp_path):
    out = tmp_path / "it"
    r = CliRunner().invoke(train, ["--domains", "de=synth,it=synth_it", "--transfer-to", "it", "--few-shot", "it=3",
                                   "--model", "logreg", "--features-dir", str(stores), "--out", str(out), "--seeds", "2", "--quiet"],
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


def test_transfer_to_fits_the_ensemble_of_the_network_on_the_targets_shots_and_the_self_trained_head(stores, tmp_path):
    """train --transfer-to it (no --model): the mean of the probabilities of the network trained on it's K shots
    alone (the very run of train --domains it --few-shot it=3) and of the pooled head self-trained on it's
    unlabelled training rows; no other label of it is used (no validation utterance); the bundle predicts what
    the run recorded."""
    common = ["--few-shot", "it=3", "--features-dir", str(stores), "--seeds", "2", "--epochs", "3", "--quiet"]
    out, alone = tmp_path / "ensemble", tmp_path / "alone"
    for domains, extra, folder in (("de=synth,it=synth_it", ["--transfer-to", "it"], out), ("it=synth_it", [], alone)):
        r = CliRunner().invoke(train, ["--domains", domains, *extra, *common, "--out", str(folder)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "ensemble" and config["transfer_sources"] == ["de=synth"]
    for run in (0, 1):
        record = json.loads((out / "runs" / f"run{run}.json").read_text())
        single = json.loads((alone / "runs" / f"run{run}.json").read_text())
        assert record["valid"]["utt_ids"] == [] and record["test"]["utt_ids"] == single["test"]["utt_ids"]
        ensemble = record["history"][0]["ensemble"]
        assert {m: v["weight"] for m, v in ensemble["members"].items()} == {"single": 0.5, "logreg": 0.5}
        head = next(h for h in record["history"][1:] if h["member"] == "logreg")["history"][0]["chosen"]
        assert head["self_training"]["target_rows"][0] == 3 * len(IT) and head["self_training"]["pool"] > 0
        assert head["source_rows"] > 0
        p = {m: np.array(ensemble["test_probabilities"][m]) for m in ("single", "logreg")}
        assert np.allclose(p["single"], single["test"]["probabilities"], atol=1e-6)  # the network on the shots alone
        assert np.allclose((p["single"] + p["logreg"]) / 2, record["test"]["probabilities"], atol=1e-6)
    got = selected_run(out, "it=synth_it", stores, ["mfcc", "ge2e"])
    assert got.bundle.meta["model"] == "ensemble" and not got.bundle.speaker_norm
    assert np.allclose(got.probabilities, got.record["test"]["probabilities"], atol=1e-5)
    r = CliRunner().invoke(train, ["--domains", "de=synth,it=synth_it", "--transfer-to", "it", *common[:-1], "--out",
                                   str(out)], catch_exceptions=False)  # the same command again: the runs are loaded
    assert r.exit_code == 0 and r.output.count("finished earlier") == 2, r.output


def test_the_speaker_adversary_is_the_networks_alone(stores, tmp_path):
    """--speaker-adversarial trains the network member's representation; the heads (here the transfer head) are
    fitted without it instead of refusing it after the network has trained."""
    out = tmp_path / "adversary"
    r = CliRunner().invoke(train, ["--domains", "de=synth,it=synth_it", "--transfer-to", "it", "--few-shot", "it=3",
                                   "--speaker-adversarial", "0.5", "--features-dir", str(stores), "--out", str(out),
                                   "--seeds", "1", "--epochs", "2", "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    record = json.loads((out / "runs" / "run0.json").read_text())
    assert [h.get("member") for h in record["history"][1:]] == ["single", "logreg"]
    assert json.loads((out / "config.json").read_text())["train"]["speaker_adversarial"] == 0.5


def test_the_transfer_ensemble_with_speaker_norm_reproduces_its_run_from_each_speakers_pooled_statistics(stores, tmp_path):
    """With --speaker-norm the head reads pooled statistics standardised per speaker (predict --speakers computes
    them from each speaker's files), the network its frames standardised per corpus as trained alone."""
    out = tmp_path / "ensemble_spk"
    r = CliRunner().invoke(train, ["--domains", "de=synth,it=synth_it", "--transfer-to", "it", "--few-shot", "it=3",
                                   "--speaker-norm", "--features-dir", str(stores), "--out", str(out), "--seeds", "1",
                                   "--epochs", "3", "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    bundle = load_bundle(out)
    assert bundle.speaker_norm and bundle.meta["model"] == "ensemble" and bundle.model.speaker_norm
    assert float(bundle.model.scaler.std_0.sub(1).abs().max()) > 0  # the network's own standardisation, per corpus
    record = json.loads((out / "runs" / "run0.json").read_text())
    head = next(h for h in record["history"][1:] if h["member"] == "logreg")["history"][0]["chosen"]
    assert head["c"] == SPEAKER_TRANSFER_C and head["self_training"]["target_rows"][0] == 3 * len(IT)
    features = json.loads((out / "config.json").read_text())["features"]
    data = load_domain(resolve_domain("it=synth_it", stores), stores, features)
    pooled = pooled_features(data, features)
    rows = [data.utt_ids.index(u) for u in record["test"]["utt_ids"]]
    batch = collated(data, rows, features)
    x = speaker_standardised(pooled, data.speakers)
    with torch.no_grad():
        assert np.allclose(bundle.model.pool(batch).numpy(), pooled[rows], atol=1e-5)  # what predict pools
        logits, _ = bundle.model.logits_from_pooled(torch.as_tensor(x[rows]), bundle.model.network_logits(batch))
        assert np.allclose(torch.softmax(logits, -1).numpy(), record["test"]["probabilities"], atol=1e-5)
        with pytest.raises(ValueError, match="per speaker"):
            bundle.model(batch)


def test_self_training_fits_again_with_the_pools_most_confident_rows_and_reads_no_pool_label():
    rng = np.random.default_rng(1)
    classes = ["neutral", "angry", "sad"]
    centres = rng.normal(size=(3, 4)) * 4.0
    x_shots, y_shots = np.repeat(centres, 2, axis=0) + rng.normal(size=(6, 4)) * 0.3, np.repeat(classes, 2)
    x_pool = np.repeat(centres, 10, axis=0) + rng.normal(size=(30, 4)) * 0.5  # no label: 10 of each emotion
    x_unlabelled = np.vstack([x_shots, x_pool])
    source = (rng.normal(size=(40, 4)), np.array(classes * 13 + ["calm"]))
    plain = fit_pooled_transfer(x_shots, y_shots, x_unlabelled, classes, [source], c=0.5)
    fit = fit_pooled_transfer(x_shots, y_shots, x_unlabelled, classes, [source], c=0.5, x_pool=x_pool)
    rounds = fit.params["self_training"]
    assert rounds["pool"] == 30 and rounds["target_rows"] == [6 + 3 * round(f * 10) for f in (0, *SELF_ROUNDS)]
    assert fit.params["target_weight"] == pytest.approx(40 / rounds["target_rows"][-1])
    assert fit.params["pseudo_labelled"] == rounds["target_rows"][-1] - 6
    assert "self_training" not in plain.params
    assert not np.allclose(fit.decision(x_pool), plain.decision(x_pool))  # the pool's rows changed the model


def test_the_head_alone_with_speaker_norm_self_trains_and_its_bundle_predicts_with_the_speakers(stores, tmp_path):
    out = tmp_path / "it_spk"
    r = CliRunner().invoke(train, ["--domains", "de=synth,it=synth_it", "--transfer-to", "it", "--few-shot", "it=3",
                                   "--model", "logreg", "--speaker-norm", "--features-dir", str(stores), "--out", str(out), "--seeds", "1"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    record = json.loads((out / "runs" / "run0.json").read_text())
    chosen = record["history"][0]["chosen"]
    assert chosen["c"] == SPEAKER_TRANSFER_C and chosen["self_training"]["pool"] > 0
    assert chosen["self_training"]["target_rows"][0] == 3 * len(IT)  # the shots, then the rounds' rows with them
    assert f"pseudo_labelled {chosen['pseudo_labelled']:.3g}" in r.output  # the run's log line says it
    bundle = load_bundle(out)
    assert bundle.speaker_norm  # predict standardises each file with its speaker's files (--speakers)
    features = json.loads((out / "config.json").read_text())["features"]  # in the order the head pools them
    data = load_domain(resolve_domain("it=synth_it", stores), stores, features)
    x = speaker_standardised(pooled_features(data, features), data.speakers)
    rows = [data.utt_ids.index(u) for u in record["test"]["utt_ids"]]
    with torch.no_grad():
        logits, _ = bundle.model.logits_from_pooled(torch.as_tensor(x[rows]))
    assert np.allclose(torch.softmax(logits, -1).numpy(), record["test"]["probabilities"], atol=1e-5)


def test_unlabelled_recordings_of_the_target_join_the_self_training_pool(stores, tmp_path):
    """--unlabelled it=DATASET (one label, "unlabelled", for all): every recording of DATASET joins the pool (beside
    the training utterances that --few-shot leaves without a label), and the head changes; the option needs
    --transfer-to and --speaker-norm."""
    root = tmp_path / "features"
    root.mkdir()
    for name in ("synth", "synth_it"):
        (root / name).symlink_to(stores / name, target_is_directory=True)
    make_stores(root, dataset="synth_it_more", language="it", emotions=("unlabelled",), per_class=20, speakers=2, seed=3)
    more = len(load_domain(resolve_domain("it=synth_it_more", root), root, ["mfcc", "ge2e"], labelled=False).utt_ids)
    with pytest.raises(StoreError, match="nothing to classify"):  # as a corpus to train on, it is refused
        load_domain(resolve_domain("it=synth_it_more", root), root, ["mfcc", "ge2e"])
    common = ["--domains", "de=synth,it=synth_it", "--transfer-to", "it", "--few-shot", "it=3", "--speaker-norm",
              "--model", "logreg", "--features-dir", str(root), "--seeds", "1", "--quiet"]
    chosen = []
    for extra, name in (([], "without"), (["--unlabelled", "it=synth_it_more"], "with")):
        r = CliRunner().invoke(train, [*common, *extra, "--out", str(tmp_path / name)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        chosen.append(json.loads((tmp_path / name / "runs" / "run0.json").read_text())["history"][0]["chosen"])
    assert chosen[1]["self_training"]["pool"] == chosen[0]["self_training"]["pool"] + more
    assert chosen[1]["self_training"]["target_rows"][-1] > chosen[0]["self_training"]["target_rows"][-1]
    config = json.loads((tmp_path / "with" / "config.json").read_text())
    assert config["transfer_unlabelled"] == ["it=synth_it_more"]
    for extra, words in ((["--unlabelled", "it=synth_it_more"], "--speaker-norm"),
                         (["--unlabelled", "de=synth", "--speaker-norm"], "recordings of the target")):
        r = CliRunner().invoke(train, ["--domains", "de=synth,it=synth_it", "--transfer-to", "it", "--features-dir",
                                       str(root), "--quiet", *extra, "--out", str(tmp_path / "x")])
        assert r.exit_code == 2 and words in r.output and "--unlabelled" in r.output, (extra, r.output)
    # the target's own corpus as its "unlabelled" recordings: its test utterances would be labelled before testing
    r = CliRunner().invoke(train, [*common, "--unlabelled", "it=synth_it", "--out", str(tmp_path / "z")])
    assert r.exit_code == 3 and "is a recording of synth_it" in r.output and "synth_it" in r.output, r.output
    r = CliRunner().invoke(train, ["--domains", "it=synth_it", "--unlabelled", "it=synth_it_more", "--features-dir",
                                   str(root), "--quiet", "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "--transfer-to" in r.output


def test_the_configuration_refuses_a_source_that_is_the_target(stores):
    from train.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="it is the target"):
        build_config(["it=synth_it"], model="logreg", transfer_sources=["de=synth", "it=synth_it"],
                     features_dir=str(stores))
    with pytest.raises(ConfigError, match="give --transfer-to"):
        build_config(["it=synth_it"], model="logreg", transfer_unlabelled=["it=synth_it"], features_dir=str(stores))


def test_transfer_to_refusals(stores, tmp_path):
    common = ["--domains", "de=synth,it=synth_it", "--features-dir", str(stores), "--quiet", "--out", str(tmp_path / "x")]
    for extra, words in ((["--transfer-to", "fr"], "--transfer-to"), (["--transfer-to", "it", "--model", "nas"], "logreg"),
                         (["--domains", "it=synth_it", "--transfer-to", "it"], "--transfer-to"),
                         (["--transfer-to", "it", "--refit"], "a refit would fit the target alone")):
        r = CliRunner().invoke(train, [*common, *extra])
        assert r.exit_code == 2 and words in r.output, (extra, r.output)


def test_a_source_corpus_extracted_again_makes_finished_transfer_runs_another_experiment(stores, tmp_path):
    """The fingerprint covers --transfer-to's source corpora and --unlabelled recordings by content, not by name: a
    rerun after one of them was extracted again refuses the finished runs (exit 3, naming what differs) instead of
    loading results fitted on the old features; unchanged stores resume."""
    root = tmp_path / "features"
    root.mkdir()
    (root / "synth_it").symlink_to(stores / "synth_it", target_is_directory=True)
    make_stores(root, dataset="synth", language="de", per_class=12, speakers=3)
    make_stores(root, dataset="synth_it_more", language="it", emotions=("unlabelled",), per_class=6, speakers=2, seed=3)
    out = tmp_path / "out"
    command = ["--domains", "de=synth,it=synth_it", "--transfer-to", "it", "--few-shot", "it=3", "--speaker-norm",
               "--model", "logreg", "--unlabelled", "it=synth_it_more", "--features-dir", str(root), "--seeds", "1", "--out", str(out)]
    r = CliRunner().invoke(train, command, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    record = json.loads((out / "runs" / "run0.json").read_text())
    assert set(record["fingerprint"]["transfer_data"]) == {"sources", "unlabelled"}
    r = CliRunner().invoke(train, command, catch_exceptions=False)  # nothing changed: the finished run is loaded
    assert r.exit_code == 0 and "finished earlier" in r.output, r.output
    for dataset, language, emotions, what in (("synth", "de", None, "transfer_data.sources.de=synth"),
                                              ("synth_it_more", "it", ("unlabelled",),
                                               "transfer_data.unlabelled.it=synth_it_more")):
        extra = {"emotions": emotions, "per_class": 6, "speakers": 2} if emotions else {"per_class": 12, "speakers": 3}
        if dataset == "synth_it_more":  # the source as it was, so that only the unlabelled corpus differs
            make_stores(root, dataset="synth", language="de", per_class=12, speakers=3)
        make_stores(root, dataset=dataset, language=language, seed=7, **extra)  # extracted again: other features
        r = CliRunner().invoke(train, command)
        assert r.exit_code == 3 and what in r.output and "finished earlier" not in r.output, (dataset, r.output)
        assert json.loads((out / "runs" / "run0.json").read_text()) == record  # the finished run is kept as it was
        # in another folder the same process fits on the new features (nothing cached from the old ones is reused)
        again = tmp_path / f"again_{dataset}"
        r = CliRunner().invoke(train, [*command[:-1], str(again)], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        fresh = json.loads((again / "runs" / "run0.json").read_text())
        assert not np.allclose(fresh["test"]["probabilities"], record["test"]["probabilities"], atol=1e-4)
