"""The learned softmax-weighted sum over stored hidden layers (SUPERB), its report, and the model that uses it."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sercore.splits import random_split
from sercore.store import UtteranceRecord, store_path, write_store
from train.cli import main as train_main
from train.models.layer_weights import LayerWeightedSum, learned_layer_weights, write_layer_weights
from train.models.single import FeatureEncoders
from train.config import EncoderConfig


def test_weighted_sum_shapes_and_extremes():
    m = LayerWeightedSum(3, 4)
    x = torch.randn(2, 5, 12)
    layers = x.reshape(2, 5, 3, 4)
    torch.testing.assert_close(m(x), layers.mean(2))  # equal weights at the start
    with torch.no_grad():
        m.logits.copy_(torch.tensor([-30.0, 30.0, -30.0]))
    torch.testing.assert_close(m(x), layers[:, :, 1])
    assert m.weights().sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="3 layers x 4 = 12"):
        m(torch.randn(2, 5, 10))


def test_gradient_reaches_the_layer_logits():
    m = LayerWeightedSum(3, 2)
    x = torch.randn(4, 6, 6)
    target = x.reshape(4, 6, 3, 2)[:, :, 2]
    opt = torch.optim.SGD(m.parameters(), lr=1.0)
    for _ in range(50):
        opt.zero_grad()
        ((m(x) - target) ** 2).mean().backward()
        opt.step()
    assert int(m.weights().argmax()) == 2


def test_feature_encoders_weight_layered_features_only():
    enc = EncoderConfig(conv_channels=4, kernel_sizes=(3,), lstm_hidden=4, attention_dim=4)
    fe = FeatureEncoders(["wavlm", "mfcc"], {"wavlm": "sequence", "mfcc": "sequence"}, {"wavlm": 3 * 8, "mfcc": 5},
                         {"wavlm": enc, "mfcc": enc}, layers={"wavlm": 3, "mfcc": 1})
    assert set(fe.layer_weighting) == {"wavlm"}
    assert fe.sequence_encoders["wavlm"].input_dim == 8 and fe.sequence_encoders["mfcc"].input_dim == 5
    state = {f"encoders.{k}": v for k, v in fe.state_dict().items()}
    weights = learned_layer_weights(state)
    assert list(weights) == ["wavlm"] and np.allclose(weights["wavlm"], 1 / 3)


def test_report_table_and_plot(tmp_path):
    states = [{"encoders.layer_weighting.wavlm.logits": torch.tensor([0.0, 1.0, 2.0])},
              {"encoders.layer_weighting.wavlm.logits": torch.tensor([0.0, 2.0, 1.0])}]
    path = write_layer_weights(states, {"wavlm": [0, 6, 12]}, tmp_path, "test")
    rows = list(csv.DictReader(path.open()))
    assert [r["hidden_state"] for r in rows if r["row"] == "run0"] == ["0", "6", "12"]
    mean = {r["hidden_state"]: float(r["weight"]) for r in rows if r["row"] == "mean"}
    expected = (torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0) + torch.softmax(torch.tensor([0.0, 2.0, 1.0]), 0)) / 2
    assert mean == pytest.approx(dict(zip(["0", "6", "12"], expected.tolist())), abs=1e-4)
    assert (tmp_path / "layer_weights.png").stat().st_size > 1000
    assert write_layer_weights([{}], {}, tmp_path / "none") is None


def _layered_stores(root, informative: int = 2, n_layers: int = 3, width: int = 4, seed: int = 0):
    """A float16 'ssl' feature of 3 stacked layers in which only layer ``informative`` depends on the emotion."""
    rng = np.random.default_rng(seed)
    emotions = ("neutral", "angry", "sad")
    centres = rng.normal(size=(len(emotions), width)) * 2.0
    records = []
    for k, emo in enumerate(emotions):
        for i in range(20):
            frames = int(rng.integers(6, 20))
            x = rng.normal(size=(frames, n_layers, width))
            x[:, informative] += centres[k]
            records.append(UtteranceRecord(f"{emo}_{i:02d}", emo, f"s{i % 4}", "de",
                                           {"enc": x.reshape(frames, -1).astype(np.float32)}))
    attrs = {"enc": {"kind": "sequence", "dim": n_layers * width, "extractor": "enc", "layers": [0, 1, 2],
                     "layer_dim": width, "dtype": "float16"}}
    splits = random_split([r.emotion for r in records], seed=0)
    for split in ("train", "valid", "test"):
        write_store(store_path(root, "layered", split), "layered", split, [r for r, s in zip(records, splits) if s == split], attrs)
    return root


def test_training_learns_and_reports_layer_weights(tmp_path):
    features = _layered_stores(tmp_path / "features")
    out = tmp_path / "run"
    r = CliRunner().invoke(train_main, ["--domains", "de=layered", "--features", "enc", "--features-dir", str(features),
                                        "--epochs", "8", "--seeds", "2", "--standardize", "--per-class", "6",
                                        "--out", str(out), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((out / "layer_weights.csv").open()))
    mean = {int(r["hidden_state"]): float(r["weight"]) for r in rows if r["row"] == "mean"}
    assert set(mean) == {0, 1, 2} and sum(mean.values()) == pytest.approx(1.0, abs=1e-3)
    assert max(mean, key=mean.get) == 2  # the only layer that carries the emotion
    assert (out / "layer_weights.png").is_file()
    # the bundle rebuilds the weighting
    from predict.bundle import load_bundle

    bundle = load_bundle(out / "model.bundle")
    assert "enc" in bundle.model.encoders.layer_weighting
