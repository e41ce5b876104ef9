"""wav2vec extractor: fairseq checkpoints in their published formats, built here with random weights."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest
import torch

pytest.importorskip("fairseq", reason="the wav2vec feature needs the optional extra mgser[wav2vec] (fairseq-fixed)")

from tests._checkpoint_builders import hubert_checkpoint, store_roundtrip, wav2vec1_checkpoint, wav2vec2_checkpoint
from extract.extractors import ExtractorSettings, MissingWeightsError, extractor_class
from extract.extractors._weights import CheckpointError
from sercore.errors import SerError

SR = 16000


def _utterance(seconds: float = 2.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _extractor(path, **kw):
    return extractor_class("wav2vec")(ExtractorSettings(wav2vec_checkpoint=path, **kw))


@pytest.fixture(scope="module")
def w2v1(tmp_path_factory):
    return wav2vec1_checkpoint(tmp_path_factory.mktemp("w2v") / "wav2vec_large.pt", dim=32, aggregator_layers=3)


def test_wav2vec1_checkpoint_loads_and_gives_context_frames(w2v1):
    # The 2019 format: args is an argparse.Namespace with the legacy task name, which torch >= 2.6 refuses by
    # default and fairseq must upgrade; the real loader has to get through both.
    raw = torch.load(w2v1, map_location="cpu", weights_only=False)
    assert isinstance(raw["args"], argparse.Namespace) and raw["args"].task == "speech_pretraining"

    ex = _extractor(w2v1)
    ex.load()
    wav = _utterance(2.5)
    feat = ex.extract(wav)
    # 160-sample hop (strides 5*4*2*2*2), valid convolutions: (40000 - 465) // 160 + 1 frames of dim 32.
    assert feat.shape == ((wav.size - 465) // 160 + 1, 32) == (248, 32)
    assert feat.dtype == np.float32 and np.isfinite(feat).all()
    assert ex.dim == 32

    # The same numbers as fairseq's own module called the documented way (feature_extractor -> aggregator).
    from fairseq.models.wav2vec import Wav2VecConfig, Wav2VecModel

    fields = {k: v for k, v in vars(raw["args"]).items() if k in Wav2VecConfig.__dataclass_fields__}
    ref = Wav2VecModel(Wav2VecConfig(**fields)).eval()
    ref.load_state_dict(raw["model"])
    with torch.no_grad():
        c = ref.feature_aggregator(ref.feature_extractor(torch.from_numpy(wav)[None]))
    np.testing.assert_allclose(feat, c[0].T.numpy(), rtol=1e-4, atol=1e-5)

    prov = ex.provenance()
    assert prov["hop_seconds"] == pytest.approx(0.01)
    assert prov["dim"] == 32 and prov["sample_rate"] == SR and prov["kind"] == "sequence"
    assert len(prov["checkpoint_sha256"]) == 64
    assert prov["library_versions"]["fairseq"] and prov["architecture"] == "wav2vec"


def test_loading_fairseq_leaves_logging_alone(w2v1):
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    _extractor(w2v1).load()
    assert (root.level, list(root.handlers)) == before


def test_other_weights_give_another_hash(tmp_path, w2v1):
    other = wav2vec1_checkpoint(tmp_path / "other.pt", dim=32, aggregator_layers=3, seed=1)
    a, b = _extractor(w2v1), _extractor(other)
    a.load()
    b.load()
    assert a.provenance()["checkpoint_sha256"] != b.provenance()["checkpoint_sha256"]


def test_wav2vec2_layer_choice(tmp_path):
    path = wav2vec2_checkpoint(tmp_path / "w2v2.pt")
    wav = _utterance(2.0)
    final = _extractor(path)
    final.load()
    first = _extractor(path, wav2vec_layer=1)
    first.load()
    a, b = final.extract(wav), first.extract(wav)
    # 320-sample hop: 99 frames of the 48-wide encoder for 2 s.
    assert a.shape == b.shape == (99, 48)
    assert not np.allclose(a, b)
    assert first.provenance()["layer"] == 1 and first.provenance()["hop_seconds"] == pytest.approx(0.02)
    with pytest.raises(CheckpointError, match="layers 1..2"):
        _extractor(path, wav2vec_layer=3).load()


def test_hubert_checkpoint(tmp_path):
    path = hubert_checkpoint(tmp_path / "hubert.pt")
    ex = _extractor(path, wav2vec_layer=2)
    ex.load()
    assert ex.extract(_utterance(2.0)).shape == (99, 48)
    assert ex.provenance()["architecture"] == "hubert"


def test_missing_weights_say_how_to_get_them(tmp_path):
    cls = extractor_class("wav2vec")
    with pytest.raises(MissingWeightsError, match="--wav2vec-checkpoint.*MGSER_WAV2VEC_CHECKPOINT.*wav2vec_large.pt"):
        cls.check_available(ExtractorSettings())
    with pytest.raises(MissingWeightsError, match=r"nope\.pt: no such file.*dl\.fbaipublicfiles\.com"):
        cls.check_available(ExtractorSettings(wav2vec_checkpoint=tmp_path / "nope.pt"))


def test_env_var_is_a_source_of_the_path(monkeypatch, w2v1):
    monkeypatch.setenv("MGSER_WAV2VEC_CHECKPOINT", str(w2v1))
    settings = ExtractorSettings().with_env_defaults()
    extractor_class("wav2vec").check_available(settings)


def test_missing_keys_are_rejected_naming_the_file(tmp_path, w2v1):
    state = torch.load(w2v1, map_location="cpu", weights_only=False)
    del state["model"]["feature_aggregator.conv_layers.0.1.weight"]
    broken = tmp_path / "broken.pt"
    torch.save(state, broken)
    with pytest.raises(CheckpointError, match=r"broken\.pt: weights do not match the wav2vec model.*Missing key"):
        _extractor(broken).load()


def test_other_architectures_are_rejected(tmp_path, w2v1):
    # A wav2vec config whose sizes disagree with the stored weights (another architecture's tensors).
    state = torch.load(w2v1, map_location="cpu", weights_only=False)
    state["args"].conv_aggregator_layers = "[(64, 2, 1)]"
    other = tmp_path / "other_arch.pt"
    torch.save(state, other)
    with pytest.raises(CheckpointError, match=r"other_arch\.pt: weights do not match"):
        _extractor(other).load()

    # A plain state dict (e.g. a BYOL or allosaurus model.pt) has no fairseq configuration.
    plain = tmp_path / "plain.pt"
    torch.save({"fc.0.weight": torch.zeros(2, 2)}, plain)
    with pytest.raises(CheckpointError, match=r"plain\.pt: no 'model' state dict"):
        _extractor(plain).load()

    # A fine-tuned (CTC) model is not a pre-trained encoder.
    ctc = torch.load(w2v1, map_location="cpu", weights_only=False)
    ctc["args"].arch = "wav2vec_ctc"
    ctc_path = tmp_path / "ctc.pt"
    torch.save(ctc, ctc_path)
    with pytest.raises(SerError, match=r"ctc\.pt: "):
        _extractor(ctc_path).load()


def test_random_bytes_are_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a readable torch checkpoint"):
        _extractor(junk).load()


def test_checkpoint_with_other_pickled_objects_loads_after_a_warning(tmp_path, w2v1, caplog):
    # Training bookkeeping of some fairseq versions pickles more than an argparse.Namespace (meters, dates):
    # torch's safe loader refuses those; the file is still the user's chosen checkpoint, so it loads, loudly.
    import datetime

    state = torch.load(w2v1, map_location="cpu", weights_only=False)
    state["extra_state"]["saved_at"] = datetime.datetime(2019, 9, 1)
    path = tmp_path / "with_objects.pt"
    torch.save(state, path)
    ex = _extractor(path)
    with caplog.at_level(logging.WARNING):
        ex.load()
    assert "full unpickling" in caplog.text and "datetime" in caplog.text
    assert ex.extract(_utterance(1.0)).shape[1] == 32


def test_stored_feature_shape_and_provenance(tmp_path, w2v1):
    ex = _extractor(w2v1)
    ex.load()
    arrays, attrs = store_roundtrip(tmp_path, ex, {"a": _utterance(2.0), "b": _utterance(3.0, seed=1)})
    assert [a.shape for a in arrays] == [(198, 32), (298, 32)]  # 10 ms frames of dim 32
    assert attrs["kind"] == "sequence" and attrs["dim"] == 32 and attrs["hop_seconds"] == pytest.approx(0.01)
    assert attrs["checkpoint_sha256"] == ex.provenance()["checkpoint_sha256"]
    assert attrs["library_versions"]["fairseq"] == "0.12.3.1"


def test_vq_wav2vec_is_refused(tmp_path, w2v1):
    from fairseq.models.wav2vec import Wav2VecConfig, Wav2VecModel

    state = torch.load(w2v1, map_location="cpu", weights_only=False)
    state["args"].vq_type, state["args"].vq_vars, state["args"].vq_groups = "gumbel", 8, 2
    fields = {k: v for k, v in vars(state["args"]).items() if k in Wav2VecConfig.__dataclass_fields__}
    state["model"] = Wav2VecModel(Wav2VecConfig(**fields)).state_dict()
    torch.save(state, tmp_path / "vq-wav2vec.pt")
    with pytest.raises(CheckpointError, match=r"vq-wav2vec\.pt: a vq-wav2vec checkpoint .* is not supported"):
        _extractor(tmp_path / "vq-wav2vec.pt").load()
