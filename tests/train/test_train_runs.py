"""What a run trains and tests on, and what it writes: the stores' split, non-finite training, the batch-memory
estimate, atomic run files, the refit's augmentation, per-language GE2E statistics."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import pytest

from sercore.errors import EXIT_ENVIRONMENT, EnvironmentProblem
from sercore.splits import random_split
from sercore.store import FeatureStore, store_path
from tests._train_helpers import base_args, make_stores, one_error_line, run_train
from train.config import ExperimentConfig
from train.domains import load_domain, resolve_domain
from train.protocol import draw_split
from train.run_records import config_fingerprint


@pytest.fixture()
def stores(tmp_path):
    return make_stores(tmp_path / "features", dataset="synth", language="de", per_class=12, speakers=3)


def _disk_fills_on(monkeypatch, name: str) -> None:
    """Writing a file whose name starts with ``name`` writes half of it, then fails as a full disk does."""
    real = Path.write_text

    def write_text(self, data, *args, **kwargs):
        if self.name.startswith(name):
            with open(self, "w") as f:
                f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


# --------------------------------------------------------------------------------------------------
# Seed 0 is the stores' split


def _seed3(records):
    return random_split([r.emotion for r in records], seed=3)


def _sad_out_of_test(records):
    return ["train" if s == "test" and r.emotion == "sad" else s for r, s in zip(records, _seed3(records))]


def _store_ids(stores, split):
    with FeatureStore(store_path(stores, "synth", split)) as store:
        return set(store.utt_ids)


@pytest.mark.parametrize("splits", [_seed3, _sad_out_of_test])
def test_seed_0_trains_and_tests_on_the_split_the_stores_were_written_with(tmp_path, splits):
    stores = make_stores(tmp_path / "features", per_class=12, speakers=3, splits=splits)
    data = load_domain(resolve_domain("de=synth", stores), stores, ["mfcc"])
    assert draw_split(data, "random", 0) == data.store_splits != random_split(data.emotions, seed=0)
    assert draw_split(data, "random", 3) == random_split(data.emotions, seed=3)
    out = tmp_path / "run"
    r = run_train(*base_args(stores, out)[:-4], "--seeds", "2", "--out", str(out))
    assert r.exit_code == 0, r.output
    run0 = json.loads((out / "runs" / "run0.json").read_text())
    assert set(run0["test"]["utt_ids"]) == _store_ids(stores, "test")
    assert set(run0["valid"]["utt_ids"]) == _store_ids(stores, "valid")
    if splits is _sad_out_of_test:
        assert not [u for u in run0["test"]["utt_ids"] if "_sad_" in u]
    run1 = json.loads((out / "runs" / "run1.json").read_text())
    assert set(run1["test"]["utt_ids"]) == {u for u, s in zip(data.utt_ids, random_split(data.emotions, seed=1)) if s == "test"}
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["splits"] == {"run0": "the stores' split (train.h5, valid.h5, test.h5)",
                                            "run1": "random split drawn with seed 1"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert [run["split"] for run in metrics["runs"]] == list(config["resolved"]["splits"].values())


def test_runs_fitted_when_seed_0_redrew_the_split_are_not_reused(stores, tmp_path):
    out = tmp_path / "run"
    assert run_train(*base_args(stores, out)).exit_code == 0
    record = out / "runs" / "run0.json"
    old = json.loads(record.read_text())
    old["fingerprint"]["config"].pop("seed_0_split")  # as a run fitted before seed 0 meant the stores' split
    record.write_text(json.dumps(old))
    r = run_train(*base_args(stores, out))
    line = one_error_line(r.output)
    assert r.exit_code == 3 and str(record) in line and "differs in: config.seed_0_split" in line, r.output
    # other first seeds and the speaker protocol never used the stores' split: their folders still resume
    cfg = ExperimentConfig(domains=["de"])
    others = {k: v for k, v in config_fingerprint(cfg).items() if k != "seed_0_split"}
    assert config_fingerprint(replace(cfg, first_seed=1)) == others | {"first_seed": 1}
    assert "seed_0_split" not in config_fingerprint(replace(cfg, protocol="speaker"))


# --------------------------------------------------------------------------------------------------
# Run files are written atomically


@pytest.mark.parametrize("name", ["metrics.json", "config.json"])
def test_a_full_disk_leaves_the_run_folders_json_files_whole(stores, tmp_path, monkeypatch, name):
    out = tmp_path / "run"
    assert run_train(*base_args(stores, out)).exit_code == 0
    before = (out / name).read_text()
    _disk_fills_on(monkeypatch, name)
    r = run_train(*base_args(stores, out))  # the finished run is loaded, the files written again
    line = one_error_line(r.output)
    assert r.exit_code == EXIT_ENVIRONMENT and name in line and line.endswith("no space left on device"), r.output
    assert (out / name).read_text() == before and json.loads(before)


def test_a_saved_configuration_is_never_half_written(tmp_path, monkeypatch):
    path = tmp_path / "cell.json"
    ExperimentConfig(domains=["de"]).save(path)
    before = path.read_text()
    _disk_fills_on(monkeypatch, "cell.json")
    with pytest.raises(EnvironmentProblem, match="no space left on device"):
        ExperimentConfig(domains=["it"]).save(path)
    assert path.read_text() == before


# --------------------------------------------------------------------------------------------------
# The batch-memory estimate


def test_a_shuffled_batch_is_estimated_at_most_as_large_as_the_training_set(stores, tmp_path):
    huge = ["--sampler", "shuffle", "--batch-size", "100000"]
    r = run_train(*base_args(stores, tmp_path / "huge"), *huge)
    assert r.exit_code == 0, r.output
    n_train = 32  # 12 per class: 2 test, 2 valid, 8 train, 4 classes
    r = run_train(*base_args(stores, tmp_path / "tiny"), *huge, "--max-batch-gb", "1e-7")
    line = one_error_line(r.output)
    assert r.exit_code == 3 and f"{n_train} rows (all {n_train} training utterances, fewer than --batch-size 100000)" in line
    r = run_train(*base_args(stores, tmp_path / "refit"), *huge, "--max-batch-gb", "1e-7", "--refit")  # the refit adds valid
    assert r.exit_code == 3 and "40 rows (all 40 training utterances" in one_error_line(r.output), r.output


# --------------------------------------------------------------------------------------------------
# Non-finite training


@pytest.mark.parametrize("epochs", ["1", "3"])
def test_a_diverged_run_fails_whatever_the_number_of_epochs(stores, tmp_path, epochs, monkeypatch):
    """Weights that blow up at the first optimiser step (what `--lr 1e30` did before learning rates were bounded):
    with one epoch only the outputs after the last step are non-finite, with three the loss of the second epoch."""
    import torch

    step = torch.optim.AdamW.step

    def blow_up(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.mul_(1e30).mul_(1e30)
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", blow_up)
    out = tmp_path / "nan"
    r = run_train(*base_args(stores, out)[:-6], "--epochs", epochs, "--seeds", "1", "--out", str(out))
    line = one_error_line(r.output)
    assert r.exit_code == 3 and "seed 1/1: the " in line and ("became nan" in line or "became inf" in line), r.output
    assert not (out / "metrics.json").exists() and not list((out / "runs").glob("*.json"))


# --------------------------------------------------------------------------------------------------
# Fine-tuned GE2E: each language's own statistics


def test_finetuned_ge2e_is_standardised_with_each_languages_own_statistics(tmp_path):
    import torch

    stores = make_stores(tmp_path / "features", per_class=6, emb_dim=256, with_mel=True)
    make_stores(stores, dataset="other", language="fr", per_class=6, emb_dim=256, with_mel=True, seed=1, separation=4.0)
    out = tmp_path / "ft"
    r = run_train("--domains", "de=synth,fr=other", "--model", "base", "--features", "ge2e,mfcc", "--features-dir", str(stores),
               "--epochs", "1", "--seeds", "1", "--out", str(out), "--finetune-ge2e", "--standardize", "--per-class", "3")
    assert r.exit_code == 0, r.output
    ckpt = torch.load(out / "checkpoints" / "run0.pt", weights_only=False)
    means, stds = ckpt["model"]["encoders.ge2e_mean"], ckpt["model"]["encoders.ge2e_std"]
    assert means.shape == stds.shape == (2, 256)
    for d, scaler in enumerate(ckpt["scalers"]):
        assert torch.equal(means[d], torch.from_numpy(scaler["mean"]["ge2e"]))
        assert torch.equal(stds[d], torch.from_numpy(scaler["std"]["ge2e"]))
    assert not torch.equal(means[0], means[1])


def test_weights_with_one_pair_of_ge2e_statistics_still_load():
    import torch

    from train.config import EncoderConfig
    from train.models.ge2e import Ge2eEncoder
    from train.models.single import FeatureEncoders

    def encoders():
        return FeatureEncoders(["ge2e"], {"ge2e": "embedding", "mel": "sequence"}, {"ge2e": 256, "mel": 40},
                               {"ge2e": EncoderConfig()}, Ge2eEncoder(), "mel", n_domains=2)

    state = encoders().state_dict()
    state["ge2e_mean"], state["ge2e_std"] = torch.arange(256.0), torch.full((256,), 2.0)  # as saved before
    loaded = encoders()
    loaded.load_state_dict(state)
    assert torch.equal(loaded.ge2e_mean, torch.arange(256.0).expand(2, 256))
    assert torch.equal(loaded.ge2e_std[1], torch.full((256,), 2.0))


# --------------------------------------------------------------------------------------------------
# The refit


def test_the_refit_augments_the_validation_utterances_like_the_training_ones(stores, tmp_path, monkeypatch):
    from train.augment import SequenceAugment
    from train.config import TrainConfig
    from train.repeated_runs import load_domains
    from train.fit_run import fit_run
    from train.network_trainer import Trainer

    seen = []  # per Trainer.fit call: (augmentation of each training utterance, validation utterances)
    original = Trainer.fit

    def recording_fit(self, train, valid, test):
        parts = getattr(train, "datasets", [train])
        seen.append(({u: p.augment for p in parts for u in p.utt_ids},
                     {u for p in getattr(valid, "datasets", [valid]) for u in p.utt_ids}))
        return original(self, train, valid, test)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    config = ExperimentConfig(domains=["de=synth"], features_dir=str(stores), out=str(tmp_path / "r"),
                              train=TrainConfig(epochs=2, progress=False, crop=0.5, time_mask=0.2, refit=True))
    domain_data, features = load_domains(config)
    fit_run(config, domain_data, features, 0)
    (selection, valid), (refit, _) = seen
    augment = SequenceAugment(0.5, 0.2, 0.0)
    assert set(selection.values()) == {augment} and not valid & set(selection)
    assert set(refit) == set(selection) | valid and set(refit.values()) == {augment}
    # a two-language refit too
    make_stores(stores, dataset="other", language="fr", per_class=12, speakers=3)
    config = replace(config, domains=["de=synth", "fr=other"], model="base")
    domain_data, features = load_domains(config)
    seen.clear()
    fit_run(config, domain_data, features, 0)
    (selection, valid), (refit, _) = seen
    assert set(refit) == set(selection) | valid and set(refit.values()) == {augment}


def test_training_on_cuda_gives_cublas_the_fixed_workspace_of_deterministic_kernels_unless_one_is_set(monkeypatch):
    import os

    import torch

    from train.network_trainer import CUBLAS_WORKSPACE, cuda_determinism

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cuda_determinism("cpu")
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    cuda_determinism("cuda:1")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's choice stays
    cuda_determinism(torch.device("cuda"))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
