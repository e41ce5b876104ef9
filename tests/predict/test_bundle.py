"""Model bundles: written by every run, loadable with weights_only=True, same logits after the round trip."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests._train_helpers import make_stores
from predict.bundle import load_bundle
from sercore.bundle import BundleError, read_bundle
from train.cli import main as train_main
from train.config import ExperimentConfig
from train.model_io import collate
from train.dataset import FeatureDataset
from train.repeated_runs import load_domains
from train.fit_run import domain_info
from train.models import MODELS, build_model
from train.scaling import FeatureScaler


def _train(*args):
    r = CliRunner().invoke(train_main, [*args, "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def _test_batch(config: ExperimentConfig, checkpoint: dict, domain: int):
    """The domain's utterances, standardised with the run's scaler, as one batch (from the stores)."""
    domain_data, _ = load_domains(config)
    data = domain_data[domain]
    s = checkpoint["scalers"][domain]
    scaler = None if s is None else FeatureScaler(s["mean"], s["std"])
    ds = FeatureDataset(data, range(len(data)), data.classes, domain=domain, scaler=scaler)
    return collate([ds[i] for i in range(len(ds))]), domain_data


def test_every_run_exports_a_bundle_with_the_best_runs_weights_and_same_logits(tmp_path):
    stores = make_stores(tmp_path / "features", dataset="synth", language="de", per_class=12)
    out = tmp_path / "run"
    # features not in alphabetical order: the model concatenates encodings in this order, the bundle must keep it
    _train("--domains", "de=synth", "--features-dir", str(stores), "--features", "mfcc,ge2e", "--epochs", "1", "--seeds",
           "2", "--standardize", "--out", str(out))
    # plain containers and tensors only: no pickled objects
    raw = torch.load(out / "model.bundle", map_location="cpu", weights_only=True)
    assert raw["format"] == "mgser-bundle" and isinstance(raw["meta"], str)
    meta = read_bundle(out)["meta"]
    metrics = json.loads((out / "metrics.json").read_text())
    valid = [r["valid"]["de"]["ua"] for r in metrics["runs"]]
    best = int(np.argmax(valid))  # argmax takes the first of ties, as the exporter does
    assert meta["selected_run"]["run"] == best and meta["selected_run"]["valid_ua"] == pytest.approx(valid[best])
    assert meta["domains"][0]["classes"] == ["neutral", "happy", "angry", "sad"]
    assert list(meta["domains"][0]["kinds"].items()) == [("mfcc", "sequence"), ("ge2e", "embedding")]
    assert meta["domains"][0]["provenance"]["mfcc"]["extractor"] == "synthetic"
    assert meta["metrics"]["domains_summary"]["de"]["test_ua"]["n"] == 2 and "history" not in meta["metrics"]["runs"][0]

    bundle = load_bundle(out / "model.bundle")
    ckpt = torch.load(out / "checkpoints" / f"run{best}.pt", weights_only=False)
    config = ExperimentConfig.from_dict(ckpt["config"])
    batch, domain_data = _test_batch(config, ckpt, 0)
    reference = build_model(config.model, config, [domain_info(d, ckpt["features"]) for d in domain_data])
    reference.load_state_dict(ckpt["model"])
    reference.eval()
    for f in ("mfcc", "ge2e"):
        np.testing.assert_array_equal(bundle.scalers[0]["mean"][f], ckpt["scalers"][0]["mean"][f])
    with torch.no_grad():
        assert torch.equal(bundle.model(batch).logits, reference(batch).logits)


def _two_domain_model(config, domains):
    """A minimal multi-domain model (the trainer's contract): shared encoders, one linear tower per language."""
    from torch import nn

    from train.model_io import ModelOutput
    from train.models.single import FeatureEncoders

    class TwoTowers(nn.Module):
        def __init__(self):
            super().__init__()
            d0 = domains[0]
            self.encoders = FeatureEncoders(list(d0.kinds), d0.kinds, d0.dims, {f: config.encoder(f) for f in d0.kinds})
            self.width = max(len(d.classes) for d in domains)
            self.towers = nn.ModuleList(nn.Linear(self.encoders.output_dim, len(d.classes)) for d in domains)

        def forward(self, batch):
            rep = self.encoders(batch)
            logits = rep.new_full((len(batch), self.width), float("-inf"))
            for k, tower in enumerate(self.towers):
                rows = batch.domains == k
                if rows.any():
                    logits[rows, : tower.out_features] = tower(rep[rows])
            return ModelOutput(logits, rep)

    return TwoTowers()


@pytest.mark.parametrize("model", ["two_towers", pytest.param("nas", marks=pytest.mark.slow)])
def test_a_multi_domain_bundle_holds_every_language(tmp_path, monkeypatch, model):
    monkeypatch.setitem(MODELS, "two_towers", _two_domain_model)
    stores = make_stores(tmp_path / "features", dataset="a", language="de", per_class=12, seed=1)
    make_stores(stores, dataset="b", language="fr", emotions=("neutral", "happy", "sad"), per_class=12, seed=2)
    out = tmp_path / "run"
    _train("--domains", "de=a,fr=b", "--features-dir", str(stores), "--epochs", "1", "--seeds", "1", "--model", model,
           "--out", str(out))
    bundle = load_bundle(out)
    assert bundle.languages == ["de", "fr"] and bundle.classes("fr") == ["neutral", "happy", "sad"]
    assert bundle.domain_index("fr") == 1
    with pytest.raises(BundleError, match="several languages"):
        bundle.domain_index(None)
    with pytest.raises(BundleError, match="no language 'it'.*de, fr"):
        bundle.domain_index("it")
    ckpt = torch.load(out / "checkpoints" / "run0.pt", weights_only=False)
    config = ExperimentConfig.from_dict(ckpt["config"])
    batch, domain_data = _test_batch(config, ckpt, 1)
    reference = build_model(config.model, config, [domain_info(d, ckpt["features"]) for d in domain_data])
    reference.load_state_dict(ckpt["model"])
    reference.eval()
    with torch.no_grad():
        got = bundle.model(batch).logits[:, :3]
        assert torch.isfinite(got).all() and torch.equal(got, reference(batch).logits[:, :3])


def test_a_file_that_is_not_a_bundle_is_refused_by_name(tmp_path):
    bad = tmp_path / "x.bundle"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(BundleError, match="x.bundle: not a readable model bundle"):
        load_bundle(bad)
    torch.save({"format": "something-else"}, bad)
    with pytest.raises(BundleError, match="not an mgser-bundle"):
        load_bundle(bad)
    with pytest.raises(BundleError, match="model bundle not found"):
        load_bundle(tmp_path / "missing")


def test_the_checksum_reads_scalar_tensors():
    """A 0-dimensional float tensor (a temperature, a gamma) is hashed by its bytes like every other tensor."""
    import torch

    from sercore.bundle import payload_digest

    def digest(value):
        return payload_digest({"model": {"head.temperature": value}})

    assert digest(torch.tensor(1.5)) != digest(torch.tensor(2.5)) and digest(torch.tensor(1.5)) == digest(torch.tensor(1.5))
    assert digest(torch.tensor([1.5, 2.5])) != digest(torch.tensor([2.5, 1.5]))
