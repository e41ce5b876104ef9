"""BYOL-A extractor: AudioNTT2020 state dicts with the published key layout, random weights."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests._checkpoint_builders import byol_checkpoint, byol_state_shapes, store_roundtrip
from extract.extractors import ExtractorSettings, MissingWeightsError, extractor_class
from extract.extractors._weights import CheckpointError

SR = 16000


def _utterance(seconds: float = 2.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * np.sin(2 * np.pi * (200 + 100 * t) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _extractor(path, **extra):
    return extractor_class("byol")(ExtractorSettings(byol_checkpoint=path, extra=extra))


def _reference_embedding(state: dict, wav: np.ndarray, mean: float = -5.4919195, std: float = 5.0389895) -> np.ndarray:
    """BYOL-A written out from its description: torchaudio-style log-mel, 3 conv blocks, MLP, max + mean."""
    mel = librosa.feature.melspectrogram(y=wav, sr=SR, n_fft=1024, win_length=1024, hop_length=160, window="hann",
                                         center=True, pad_mode="reflect", power=2.0, n_mels=64, fmin=60, fmax=7800,
                                         htk=True, norm=None)
    x = torch.from_numpy((np.log(mel + np.finfo(np.float32).eps) - mean) / std).float()[None, None]
    for conv, bn in ((0, 1), (4, 5), (8, 9)):
        x = F.conv2d(x, state[f"features.{conv}.weight"], state[f"features.{conv}.bias"], padding=1)
        x = F.batch_norm(x, state[f"features.{bn}.running_mean"], state[f"features.{bn}.running_var"],
                         state[f"features.{bn}.weight"], state[f"features.{bn}.bias"], training=False, eps=1e-5)
        x = F.max_pool2d(F.relu(x), 2)
    b, c, m, t = x.shape
    x = x.permute(0, 3, 2, 1).reshape(b, t, m * c)  # per time step: mel-major, channel-minor
    x = F.relu(F.linear(x, state["fc.0.weight"], state["fc.0.bias"]))
    x = F.relu(F.linear(x, state["fc.3.weight"], state["fc.3.bias"]))
    return (x.max(dim=1).values + x.mean(dim=1))[0].numpy()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return byol_checkpoint(tmp_path_factory.mktemp("byol") / "AudioNTT2020-BYOLA-64x96d64.pth", d=64)


def test_published_layout_loads_and_embeds(checkpoint):
    state = torch.load(checkpoint)
    assert set(state) == set(byol_state_shapes(64))  # the builder writes exactly the published keys
    ex = _extractor(checkpoint)
    ex.load()
    wav = _utterance(2.5)
    emb = ex.extract(wav)
    assert emb.shape == (64,) and emb.dtype == np.float32 and ex.dim == 64
    np.testing.assert_allclose(emb, _reference_embedding(state, wav), rtol=1e-3, atol=1e-4)

    prov = ex.provenance()
    assert prov["kind"] == "embedding" and prov["dim"] == 64 and prov["sample_rate"] == SR
    assert prov["n_mels"] == 64 and prov["norm_mean"] == pytest.approx(-5.4919195)
    assert len(prov["checkpoint_sha256"]) == 64


def test_embedding_size_is_read_from_the_weights(tmp_path):
    path = byol_checkpoint(tmp_path / "d2048.pth", d=2048)
    ex = _extractor(path)
    ex.load()
    assert ex.extract(_utterance(3.0)).shape == (2048,)


@pytest.mark.parametrize("prefix,wrap", [("module.", None), ("model.encoder.", "state_dict"), ("", "state_dict")])
def test_wrapped_and_prefixed_checkpoints(tmp_path, checkpoint, prefix, wrap):
    path = byol_checkpoint(tmp_path / "wrapped.ckpt", d=64, prefix=prefix, wrap=wrap)
    plain, wrapped = _extractor(checkpoint), _extractor(path)
    plain.load()
    wrapped.load()
    wav = _utterance(1.5)
    np.testing.assert_array_equal(plain.extract(wav), wrapped.extract(wav))


def test_normalisation_statistics_can_be_set(checkpoint):
    state = torch.load(checkpoint)
    ex = _extractor(checkpoint, byol_norm_stats=(-4.0, 4.5))
    ex.load()
    wav = _utterance(1.0)
    np.testing.assert_allclose(ex.extract(wav), _reference_embedding(state, wav, -4.0, 4.5), rtol=1e-3, atol=1e-4)
    assert ex.provenance()["norm_std"] == pytest.approx(4.5)


def test_shortest_accepted_input(checkpoint):
    ex = _extractor(checkpoint)
    ex.load()
    assert ex.extract(_utterance(ex.min_seconds)).shape == (64,)


def test_missing_checkpoint_says_how_to_get_it(tmp_path):
    cls = extractor_class("byol")
    with pytest.raises(MissingWeightsError, match="--byol-checkpoint.*MGSER_BYOL_CHECKPOINT.*nttcslab/byol-a"):
        cls.check_available(ExtractorSettings())
    with pytest.raises(MissingWeightsError, match=r"x\.pth: no such file"):
        cls.check_available(ExtractorSettings(byol_checkpoint=tmp_path / "x.pth"))


def test_missing_keys_are_rejected(tmp_path, checkpoint):
    state = torch.load(checkpoint)
    del state["fc.3.bias"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"partial\.pth: weights do not match AudioNTT2020.*fc\.3\.bias"):
        _extractor(tmp_path / "partial.pth").load()


def test_other_architecture_is_rejected(tmp_path, checkpoint):
    state = torch.load(checkpoint)
    state["features.4.weight"] = torch.zeros(64, 64, 5, 5)  # 5x5 kernels: not AudioNTT2020
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other\.pth: weights do not match.*size mismatch"):
        _extractor(tmp_path / "other.pth").load()

    torch.save({"encoder.layers.0.weight": torch.zeros(3)}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match=r"foreign\.pth: no features\.\* / fc\.\* keys"):
        _extractor(tmp_path / "foreign.pth").load()


def test_two_encoders_in_one_file_are_ambiguous(tmp_path, checkpoint):
    state = torch.load(checkpoint)
    both = {**{f"online.{k}": v for k, v in state.items()}, **{f"target.{k}": v for k, v in state.items()}}
    torch.save(both, tmp_path / "byol_training.pth")
    with pytest.raises(CheckpointError, match="several encoders"):
        _extractor(tmp_path / "byol_training.pth").load()


def test_stored_feature_shape_and_provenance(tmp_path, checkpoint):
    ex = _extractor(checkpoint)
    ex.load()
    arrays, attrs = store_roundtrip(tmp_path, ex, {"a": _utterance(2.0), "b": _utterance(3.0, seed=1)})
    assert [a.shape for a in arrays] == [(64,), (64,)]
    assert attrs["kind"] == "embedding" and attrs["dim"] == 64
    assert attrs["checkpoint_sha256"] == ex.provenance()["checkpoint_sha256"]


def test_store_roundtrip_annotations_resolve():
    """The shared test builder's annotations name only imported types (``np`` was undefined, ruff F821)."""
    import typing

    hints = typing.get_type_hints(store_roundtrip)
    assert hints["wavs"] == dict[str, np.ndarray]
