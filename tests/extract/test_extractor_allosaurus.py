"""allosaurus extractor: a model folder in the layout allosaurus's downloader creates, random BiLSTM weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("allosaurus", reason="the allosaurus feature needs the optional extra mgser[allosaurus] (GPL-3.0)")

from tests._checkpoint_builders import TOY_PHONES, allosaurus_model_dir, store_roundtrip
from extract.extractors import ExtractorSettings, MissingWeightsError, extractor_class
from extract.extractors._weights import CheckpointError

SR = 16000


def _utterance(seconds: float = 2.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voiced = 0.3 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 2.5 * t) > 0)
    return (voiced + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _extractor(model_dir, **extra):
    return extractor_class("allosaurus")(ExtractorSettings(allosaurus_model=model_dir, extra=extra))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return allosaurus_model_dir(tmp_path_factory.mktemp("allosaurus"), hidden_size=8, layer_size=2)


def test_phone_posteriors_shape_and_agreement_with_allosaurus(model_dir, tmp_path):
    ex = _extractor(model_dir)
    ex.load()
    # As the pipeline delivers it: 16-bit PCM read back as float.
    wav_path = tmp_path / "utt.wav"
    sf.write(wav_path, _utterance(2.5), SR, subtype="PCM_16")
    wav, _ = sf.read(wav_path, dtype="float32")
    feat = ex.extract(wav)
    # uni2005 front end: resampled to 8 kHz, 25 ms / 10 ms frames (248 for 2.5 s), every third kept -> 83;
    # one log posterior per phone of phone.txt plus the CTC blank.
    assert feat.shape == (83, len(TOY_PHONES) + 1) and ex.dim == len(TOY_PHONES) + 1
    np.testing.assert_allclose(np.exp(feat).sum(axis=1), 1.0, rtol=1e-5)

    # allosaurus's own recogniser on the same file: same log posteriors (its read_audio + pm + am path).
    from allosaurus.am.factory import read_am
    from allosaurus.app import Recognizer
    from allosaurus.audio import read_audio
    from allosaurus.lm.factory import read_lm
    from allosaurus.pm.factory import read_pm
    from argparse import Namespace

    config = Namespace(model=model_dir.name, device_id=-1, lang="ipa", approximate=False, prior=None)
    recognizer = Recognizer(read_pm(model_dir, config), read_am(model_dir, config), read_lm(model_dir, config), config)
    ref_feat = recognizer.pm.compute(read_audio(wav_path))
    with torch.no_grad():
        logits = recognizer.am(torch.from_numpy(ref_feat[None]), torch.tensor([ref_feat.shape[0]], dtype=torch.int32))
    np.testing.assert_allclose(feat, torch.log_softmax(logits[0], -1).numpy(), rtol=1e-4, atol=1e-4)
    phones = recognizer.recognize(str(wav_path)).split()
    assert set(phones) <= set(TOY_PHONES)  # it decodes over the same inventory

    prov = ex.provenance()
    assert prov["hop_seconds"] == pytest.approx(0.03) and prov["model_sample_rate"] == 8000
    assert prov["sample_rate"] == SR and prov["dim"] == len(TOY_PHONES) + 1
    assert "posteriors" in prov["output"] and len(prov["checkpoint_sha256"]) == 64
    assert prov["library_versions"]["allosaurus"] == "1.0.2"


def test_hidden_states_output(model_dir):
    ex = _extractor(model_dir, allosaurus_output="hidden")
    ex.load()
    feat = ex.extract(_utterance(2.0))
    # 2.0 s -> 198 frames at 8 kHz -> 66 stacked frames; both directions of an 8-unit BiLSTM.
    assert feat.shape == (66, 16) and ex.dim == 16
    assert "BiLSTM" in ex.provenance()["output"]


def test_parent_folder_with_one_model_is_accepted(model_dir):
    ex = _extractor(model_dir.parent)
    ex.load()
    assert ex.provenance()["model_name"] == "uni2005"


def test_missing_model_says_how_to_get_it(tmp_path):
    cls = extractor_class("allosaurus")
    with pytest.raises(MissingWeightsError, match="--allosaurus-model.*MGSER_ALLOSAURUS_MODEL.*uni2005.tar.gz"):
        cls.check_available(ExtractorSettings())
    with pytest.raises(MissingWeightsError, match="no such folder"):
        cls.check_available(ExtractorSettings(allosaurus_model=tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"empty: not an allosaurus model folder, missing am_config.json"):
        cls.check_available(ExtractorSettings(allosaurus_model=tmp_path / "empty"))


def test_weights_of_another_size_are_rejected(tmp_path, model_dir):
    other = allosaurus_model_dir(tmp_path / "a", hidden_size=8)
    bigger = allosaurus_model_dir(tmp_path / "b", hidden_size=12)
    (other / "model.pt").write_bytes((bigger / "model.pt").read_bytes())
    with pytest.raises(CheckpointError, match=r"uni2005: allosaurus cannot load this model.*size mismatch"):
        _extractor(other).load()


def test_other_architecture_is_rejected(tmp_path):
    model = allosaurus_model_dir(tmp_path)
    config = json.loads((model / "am_config.json").read_text())
    config["model"] = "transformer"
    (model / "am_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="allosaurus cannot load this model"):
        _extractor(model).load()


def test_missing_keys_are_rejected(tmp_path):
    model = allosaurus_model_dir(tmp_path)
    state = torch.load(model / "model.pt")
    del state["phone_layer.weight"]
    torch.save(state, model / "model.pt")
    with pytest.raises(CheckpointError, match=r"Missing key.*phone_layer.weight"):
        _extractor(model).load()


def test_changing_the_model_changes_the_hash(tmp_path, model_dir):
    other = allosaurus_model_dir(tmp_path, seed=1)
    a, b = _extractor(model_dir), _extractor(other)
    a.load()
    b.load()
    assert a.provenance()["checkpoint_sha256"] != b.provenance()["checkpoint_sha256"]


def test_stored_feature_shape_and_provenance(tmp_path, model_dir):
    ex = _extractor(model_dir)
    ex.load()
    arrays, attrs = store_roundtrip(tmp_path, ex, {"a": _utterance(2.0), "b": _utterance(3.0, seed=1)})
    assert [a.shape for a in arrays] == [(66, 21), (100, 21)]  # 30 ms frames, blank + 20 phones
    assert attrs["kind"] == "sequence" and attrs["dim"] == 21 and attrs["hop_seconds"] == pytest.approx(0.03)
    assert attrs["checkpoint_sha256"] == ex.provenance()["checkpoint_sha256"]
