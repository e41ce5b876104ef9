"""End to end through the `train` CLI on tiny synthetic stores (seconds)."""

import csv
import json

import pytest
import torch
from click.testing import CliRunner

from train.cli import main
from tests._train_helpers import make_stores


def _train(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


@pytest.fixture()
def stores(tmp_path):
    return make_stores(tmp_path / "features", dataset="synth", language="de", per_class=20, speakers=4, with_mel=False)


def test_train_writes_metrics_config_checkpoints_and_plots(stores, tmp_path):
    out = tmp_path / "run"
    r = _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "2", "--seeds", "2", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "random protocol" in r.output and "test UA" in r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "random" and metrics["features"] == ["ge2e", "mfcc"]
    summary = metrics["domains_summary"]["de"]
    assert summary["test_ua"]["n"] == 2 and 0.0 <= summary["test_ua"]["mean"] <= 1.0
    run = metrics["runs"][0]
    assert set(run["test"]["de"]["recall"]) == {"neutral", "happy", "angry", "sad"}
    assert len(run["history"]) == 2 and 1 <= run["best_epoch"] <= 2
    assert sum(map(sum, summary["confusion_sum"])) == 2 * 16  # two runs of 16 test utterances
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["row"] for r in rows] == ["run0", "run1", "mean", "std"] and rows[0]["protocol"] == "random"
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["optimizer"]["lr"] == 1e-3 and config["resolved"]["domains"] == ["de=synth"]
    assert (out / "confusion_de.png").stat().st_size > 1000
    ckpt = torch.load(out / "checkpoints" / "run0.pt", weights_only=False)
    assert ckpt["classes"] == [["neutral", "happy", "angry", "sad"]] and "model" in ckpt and "aux" in ckpt


def test_same_seed_gives_identical_results_on_cpu(stores, tmp_path):
    uas = []
    for name in ("a", "b"):
        out = tmp_path / name
        r = _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "2", "--seeds", "1",
                   "--out", str(out), "--no-checkpoints")
        assert r.exit_code == 0, r.output
        m = json.loads((out / "metrics.json").read_text())
        uas.append((m["runs"][0]["history"], m["runs"][0]["test"]))
    assert uas[0] == uas[1]


def test_speaker_protocol_runs_all_folds_and_says_so(stores, tmp_path):
    out = tmp_path / "spk"
    r = _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1", "--protocol", "speaker",
               "--features", "ge2e", "--out", str(out), "--no-aux")
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "speaker" and m["runs_are"] == "speaker folds" and len(m["runs"]) == 4
    assert sorted(s for run in m["runs"] for s in run["test_speakers"]["de"]) == ["spk0", "spk1", "spk2", "spk3"]
    assert m["aux"] is False and "speaker protocol" in r.output


def test_ablations_and_tsne(stores, tmp_path):
    out = tmp_path / "abl"
    r = _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1", "--seeds", "1",
               "--out", str(out), "--ablations", "--tsne", "--no-checkpoints")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((out / "ablations" / "ablations.csv").open()))
    assert [r["variant"] for r in rows] == ["all_features", "no_aux", "only_ge2e", "only_mfcc"]
    only = json.loads((out / "ablations" / "only_mfcc" / "metrics.json").read_text())
    assert only["features"] == ["mfcc"]
    assert (out / "tsne.png").stat().st_size > 1000


def test_tuned_preset_is_the_default_and_paper_preset_recorded(stores, tmp_path):
    out = tmp_path / "tuned"
    r = _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1", "--seeds", "1",
               "--out", str(out), "--sampler", "shuffle", "--no-checkpoints")
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["standardize"] is True and config["train"]["sampler"] == "shuffle"  # an option beats the preset
    assert config["train"]["length_batches"] is True and config["frame_stride"] == 3 and config["input_stats"] is True
    paper = tmp_path / "paper"
    r = _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1", "--seeds", "1", "--out", str(paper),
               "--no-checkpoints", "--preset", "paper")
    config = json.loads((paper / "config.json").read_text())
    assert config["frame_stride"] == 1 and config["input_stats"] is False and config["train"]["length_batches"] is False
    assert config["train"]["standardize"] is False and config["train"]["crop"] == 0.0 and config["train"]["ema"] is None
    assert config["languages"]["de"]["tower"] == {"units": 512, "activations": ["tanh", "relu"], "dropout": 0.1, "input_dropout": 0.0}
    assert config["stats_pooling"] is False and config["train"]["aux_reduction"] == "sum"


def test_optional_regularisers_run(stores, tmp_path):
    out = tmp_path / "reg"
    r = _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "2", "--seeds", "1", "--out", str(out),
               "--ema", "0.9", "--crop", "0.5", "--input-dropout", "0.3", "--stats-pooling", "--label-smoothing", "0.1",
               "--time-mask", "0.2", "--feature-mask", "0.1", "--mixup", "0.4", "--no-checkpoints")
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["ema"] == 0.9 and config["train"]["crop"] == 0.5 and config["stats_pooling"] is True
    assert (config["train"]["time_mask"], config["train"]["feature_mask"], config["train"]["mixup"]) == (0.2, 0.1, 0.4)


def test_clear_errors(stores, tmp_path):
    r = CliRunner().invoke(main, ["--domains", "fr", "--features-dir", str(stores), "--quiet"])
    assert r.exit_code == 3 and "no feature store holds language 'fr'" in r.output
    r = CliRunner().invoke(main, ["--domains", "de=synth", "--features-dir", str(stores), "--features", "byol", "--quiet"])
    assert r.exit_code == 3 and "no feature 'byol'" in r.output
    make_stores(stores, dataset="other", language="fr")
    two = ["--domains", "de=synth,fr", "--features-dir", str(stores), "--quiet", "--epochs", "1", "--seeds", "1"]
    r = CliRunner().invoke(main, [*two, "--model", "single", "--out", str(tmp_path / "single")])
    assert r.exit_code == 2 and "single-domain model takes one domain" in r.output


def test_several_languages_default_to_the_papers_multi_domain_model(stores, tmp_path):
    make_stores(stores, dataset="other", language="fr")
    out = tmp_path / "two"
    r = _train("--domains", "de=synth,fr", "--features-dir", str(stores), "--epochs", "1", "--seeds", "1", "--out", str(out))
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "nas" and set(json.loads((out / "metrics.json").read_text())["domains_summary"]) == {"de", "fr"}


def test_ge2e_finetuning_moves_the_pretrained_encoder_slowly(tmp_path):
    from train.models.ge2e import Ge2eEncoder

    # the input is found by its role in the provenance (input_of: ge2e), not by its name
    stores = make_stores(tmp_path / "features", per_class=8, emb_dim=256, with_mel=True, mel_name="vox_frames")
    out = tmp_path / "ft"
    r = _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1", "--seeds", "1",
               "--out", str(out), "--finetune-ge2e", "--per-class", "6")
    assert r.exit_code == 0, r.output
    state = torch.load(out / "checkpoints" / "run0.pt", weights_only=False)["model"]
    pretrained = Ge2eEncoder.pretrained().state_dict()
    moved = state["encoders.ge2e.linear.weight"] - pretrained["linear.weight"]
    assert 0 < moved.abs().max() < 1e-3  # lr * 0.01 = 1e-5 per AdamW step


def test_refit_trains_on_train_plus_valid_for_the_selected_epochs(stores, tmp_path, monkeypatch):
    from dataclasses import replace

    from train.config import ExperimentConfig, TrainConfig
    from train.repeated_runs import load_domains
    from train.fit_run import fit_run
    from train.network_trainer import Trainer

    fits = []  # (training examples, epochs) of every Trainer.fit call
    original = Trainer.fit

    def recording_fit(self, train, valid, test):
        fits.append((len(train), len(valid), self.config.epochs))
        return original(self, train, valid, test)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    config = ExperimentConfig(domains=["de=synth"], features_dir=str(stores), out=str(tmp_path / "r"),
                              train=TrainConfig(epochs=3, progress=False))
    domain_data, features = load_domains(config)
    plain = fit_run(config, domain_data, features, 0)
    refit = fit_run(replace(config, train=replace(config.train, refit=True)), domain_data, features, 0)
    # the selection fit is the plain fit (same seed, epoch chosen on valid) ...
    assert refit.fit.best_epoch == plain.fit.best_epoch and refit.fit.valid.ua == plain.fit.valid.ua
    assert refit.fit.history[:-1] == plain.fit.history
    # ... then a second model is trained on train + valid for exactly that many epochs, and it is the one tested
    (n_train, n_valid, _), _, (n_refit, _, refit_epochs) = fits
    assert n_refit == n_train + n_valid and refit_epochs == plain.fit.best_epoch
    assert refit.fit.history[-1]["refit_epochs"] == plain.fit.best_epoch
    assert len(refit.fit.test.labels) == len(plain.fit.test.labels)
    assert any(not torch.equal(refit.fit.state["model"][k], v) for k, v in plain.fit.state["model"].items())


def _scores(out):
    """What a run computed (everything in metrics.json but the timings)."""
    m = json.loads((out / "metrics.json").read_text())
    for r in m["runs"]:
        r.pop("seconds")
        for h in r["history"]:
            h.pop("seconds", None)
            h.pop("refit_seconds", None)
    return m


def test_config_json_of_a_run_reproduces_its_metrics_exactly(stores, tmp_path):
    first = tmp_path / "first"
    r = _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "2", "--seeds", "2", "--preset", "tuned",
               "--features", "mfcc,ge2e", "--crop", "0.7", "--label-smoothing", "0.1", "--time-mask", "0.2", "--mixup", "0.4",
               "--out", str(first), "--no-checkpoints")
    assert r.exit_code == 0, r.output
    again = tmp_path / "again"
    r = _train("--config", str(first / "config.json"), "--out", str(again))
    assert r.exit_code == 0, r.output
    assert _scores(again) == _scores(first) and not (again / "checkpoints").exists()
    saved = {k: v for k, v in json.loads((again / "config.json").read_text()).items() if k not in ("resolved", "out")}
    assert saved == {k: v for k, v in json.loads((first / "config.json").read_text()).items() if k not in ("resolved", "out")}


def test_config_file_errors_are_one_line_naming_the_file_and_key(stores, tmp_path):
    first = tmp_path / "first"
    assert _train("--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1", "--seeds", "1",
                  "--out", str(first), "--no-checkpoints").exit_code == 0
    config = json.loads((first / "config.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**config, "trian": {}}))
    r = _train("--config", str(bad))
    assert r.exit_code == 3 and f"{bad}: unknown key(s) trian" in r.output and len(r.output.strip().splitlines()) == 1
    config["train"]["epochs"] = "many"
    bad.write_text(json.dumps(config))
    r = _train("--config", str(bad))
    assert r.exit_code == 3 and 'train.epochs' in r.output and str(bad) in r.output
    r = _train("--config", str(first / "config.json"), "--epochs", "3")
    assert r.exit_code == 2 and "--epochs cannot be added" in r.output


def test_configuration_round_trips_through_dict_and_file(tmp_path):
    from train.config import ExperimentConfig, build_config

    config = build_config(["de=synth", "fr"], preset="tuned", train={"crop": 0.5}, tower={"dropout": 0.2},
                          multidomain={"selector": "mfcc"}, features=["mfcc", "ge2e"], model="nas")
    assert config.out == "runs/de-fr_random" and config.language("fr").tower.input_dropout == 0.3
    assert ExperimentConfig.from_dict(config.to_dict()) == config
    path = tmp_path / "c.json"
    config.save(path)
    assert ExperimentConfig.from_file(path) == config


def test_the_saved_configuration_records_the_resolved_domains_and_features(tmp_path):
    features = make_stores(tmp_path / "features", dataset="emodb", language="de", per_class=12)
    out = tmp_path / "run"
    r = _train("--domains", "de", "--features-dir", str(features), "--epochs", "1", "--seeds", "1", "--out", str(out),
               "--no-checkpoints")
    assert r.exit_code == 0, r.output
    config = json.loads((out / "config.json").read_text())
    assert config["domains"] == ["de=emodb"] and config["features"] == ["ge2e", "mfcc"]
    r = _train("--domains", "de=", "--features-dir", str(features))
    assert r.exit_code == 2 and "LANG=DATASET" in r.output


def test_classes_outside_the_built_in_vocabulary_train_like_any_other(tmp_path):
    """The vocabulary is open (sercore.labels): RAVDESS's calm or IEMOCAP's frustrated are classes of their own."""
    stores = make_stores(tmp_path / "features", dataset="open", language="en",
                         emotions=("frustrated", "calm", "neutral", "happy"), per_class=12, speakers=3)
    out = tmp_path / "run"
    r = _train("--domains", "en=open", "--features-dir", str(stores), "--epochs", "1", "--seeds", "1", "--out", str(out))
    assert r.exit_code == 0, r.output
    recall = json.loads((out / "metrics.json").read_text())["runs"][0]["test"]["en"]["recall"]
    assert list(recall) == ["neutral", "happy", "calm", "frustrated"]  # built-in order, then the others sorted
    ckpt = torch.load(out / "checkpoints" / "run0.pt", weights_only=False)
    assert ckpt["classes"] == [["neutral", "happy", "calm", "frustrated"]]
