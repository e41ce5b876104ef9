"""Hugging Face speech encoders: tiny random models of every supported architecture, saved with save_pretrained."""

from __future__ import annotations

import json

import numpy as np
import pytest

from extract.extractors.ssl import import_transformers  # noqa: E402

try:
    import_transformers()  # not pytest.importorskip: a broken torchaudio must be hidden before transformers loads
except ImportError:
    pytest.skip("the optional extra [ssl] (transformers) is not installed", allow_module_level=True)

from tests._ssl_builders import ARCHITECTURES, tiny_encoder  # noqa: E402
from extract.extractors import ExtractorSettings, MissingWeightsError, extractor_class  # noqa: E402
from extract.extractors._weights import CheckpointError  # noqa: E402
from extract.extractors.ssl import plan_chunks, weights_sha256  # noqa: E402
from extract.pipeline import extract_dataset  # noqa: E402
from sercore.store import FeatureStore, store_path  # noqa: E402

from test_extract_pipeline import make_corpus  # noqa: E402

SR = 16000


def _wav(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * np.sin(2 * np.pi * 150 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    return {arch: tiny_encoder(root / arch, arch) for arch in ARCHITECTURES}


def _load(folder, name="enc", **options):
    settings = ExtractorSettings(ssl={name: {"checkpoint": str(folder), **options}})
    ex = extractor_class(name, settings)(settings)
    ex.check_available(settings)
    ex.load()
    return ex


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_gives_all_layers_every_20ms(encoders, arch):
    ex = _load(encoders[arch])
    out = ex.extract(_wav(1.5))
    # 2 transformer layers -> 3 hidden states (the input of layer 1, then each layer's output), width 16
    assert ex.n_hidden_states == 3 and ex.layer_dim == 16 and ex.dim == 48
    frames = 75 if arch == "whisper" else (24000 - 400) // 320 + 1  # Whisper: one per 320 samples; CNN: 74
    assert out.shape == (frames, 48) and np.isfinite(out).all()
    p = ex.provenance()
    assert p["extractor"] == "enc" and p["model_type"] == arch and p["layers"] == [0, 1, 2]
    assert p["hop_seconds"] == 0.02 and p["dtype"] == "float16" and p["layer_dim"] == 16
    assert p["checkpoint_sha256"] == weights_sha256(encoders[arch]) and len(p["checkpoint_sha256"]) == 64


def test_layer_selection_picks_those_hidden_states(encoders):
    wav = _wav(1.0)
    full = _load(encoders["wavlm"]).extract(wav).reshape(-1, 3, 16)
    some = _load(encoders["wavlm"], layers=[2, 0]).extract(wav)
    assert some.shape == (full.shape[0], 32)
    np.testing.assert_array_equal(some.reshape(-1, 2, 16), full[:, [2, 0]])
    assert _load(encoders["wavlm"], layers="1").provenance()["layers"] == [1]
    with pytest.raises(CheckpointError, match=r"layers \[5\] do not exist.*0\.\.2"):
        _load(encoders["wavlm"], layers=[0, 5])


def test_weights_hash_tells_checkpoints_apart(encoders, tmp_path):
    other = tiny_encoder(tmp_path / "other", "wavlm", seed=1)
    assert weights_sha256(other) != weights_sha256(encoders["wavlm"])
    same = tiny_encoder(tmp_path / "same", "wavlm", seed=0)
    assert weights_sha256(same) == weights_sha256(encoders["wavlm"])


@pytest.mark.parametrize("n_samples,max_seconds,context", [(48000, 1.0, 0.25), (50000, 0.7, 0.1), (16000, 0.5, 1.0)])
def test_chunk_plan_tiles_the_frames_within_the_limit(n_samples, max_seconds, context):
    n_frames = (n_samples - 400) // 320 + 1
    chunks = plan_chunks(n_frames, 320, 400, n_samples, int(max_seconds * SR), int(context * SR))
    assert len(chunks) > 1
    covered = []
    for c in chunks:
        assert 0 <= c.start < c.stop <= n_samples and c.stop - c.start <= max_seconds * SR
        assert c.start % 320 == 0
        produced = (c.stop - c.start - 400) // 320 + 1
        assert c.keep_to <= produced
        covered += list(range(c.frame_from, c.frame_from + c.keep_to - c.keep_from))
        assert c.frame_from - c.keep_from == c.start // 320  # the chunk's frame j is the utterance's frame start/320 + j
    assert covered == list(range(n_frames))


@pytest.mark.parametrize("arch", ["wav2vec2", "wavlm"])
def test_chunked_output_stitches_to_the_one_pass_frames(tmp_path, arch):
    """Chunked: same frames; hidden state 0 (CNN + positional convolution, reach 8 frames < the 0.25 s context)
    is the one-pass output exactly; deeper layers see 0.25 s of context instead of the whole utterance.
    (Layer-norm CNNs, as in the large models: a group-norm CNN normalises its first layer over the chunk.)"""
    folder = tiny_encoder(tmp_path / arch, arch, layer_norm=True)
    wav = _wav(3.0)
    whole = _load(folder, dtype="float32").extract(wav).reshape(-1, 3, 16)  # float32: compared to float tolerance
    chunked_ex = _load(folder, max_chunk_seconds=1.0, context_seconds=0.25, dtype="float32")
    assert len(chunked_ex.chunks(len(wav))) == 6  # 49 frames per 1 s pass, 12 of context either side: cores of 25
    chunked = chunked_ex.extract(wav).reshape(-1, 3, 16)
    assert chunked.shape == whole.shape
    np.testing.assert_allclose(chunked[:, 0], whole[:, 0], atol=1e-5)
    # audio that fits in one chunk is one pass
    short = _wav(0.9, seed=3)
    np.testing.assert_array_equal(chunked_ex.extract(short), _load(folder, dtype="float32").extract(short))


def test_whisper_is_chunked_by_its_window(encoders):
    ex = _load(encoders["whisper"], context_seconds=0.2, dtype="float32")  # the tiny model's window is 2 s (real models: 30 s)
    wav = _wav(5.0)
    assert len(ex.chunks(len(wav))) == 4  # cores of 80 frames: 100 per window less 10 of context either side
    out = ex.extract(wav)
    assert out.shape == (250, 48) and np.isfinite(out).all()
    # the first frames (far from a chunk boundary) are those of a one-window pass over the first 2 s
    first = ex.extract(wav[:32000])
    np.testing.assert_allclose(out[:80], first[:80], atol=1e-4)


@pytest.mark.parametrize("arch,layer_norm", [(a, False) for a in ARCHITECTURES]
                         + [(a, True) for a in ARCHITECTURES if a != "whisper"])
def test_length_batches_give_the_unbatched_frames(tmp_path, arch, layer_norm):
    """Utterances of different lengths in one padded pass give the frames each gives alone (group-norm CNNs too)."""
    from extract.extractors.ssl import UNBATCHED

    folder = tiny_encoder(tmp_path / arch, arch, layer_norm=layer_norm)
    wavs = [_wav(s, seed=i) for i, s in enumerate((1.3, 0.6, 2.0, 0.9))]
    one = _load(folder, batch_seconds=0, dtype="float32")  # float32: compared to float tolerance
    batched = _load(folder, batch_seconds=10.0, dtype="float32")
    passes = []
    forward = batched._forward
    batched._forward = lambda pieces: passes.append(len(pieces)) or forward(pieces)
    outs = batched.extract_batch(wavs)
    assert passes == ([1, 1, 1, 1] if arch in UNBATCHED else [4])
    for a, b in zip(outs, [one.extract(w) for w in wavs]):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=2e-4)


def test_compute_dtype_other_than_float32_needs_cuda(encoders):
    from sercore.errors import OptionError

    with pytest.raises(OptionError, match="compute_dtype float16 runs on CUDA only"):
        _load(encoders["wavlm"], compute_dtype="float16")
    with pytest.raises(OptionError, match="compute_dtype must be one of"):
        _load(encoders["wavlm"], compute_dtype="int8")
    with pytest.raises(OptionError, match="batch_seconds must be 0"):
        _load(encoders["wavlm"], batch_seconds=-1)


def test_normalisation_follows_the_preprocessor_config(tmp_path):
    plain = _load(tiny_encoder(tmp_path / "a", "wav2vec2"))
    norm = _load(tiny_encoder(tmp_path / "b", "wav2vec2", normalize=True), dtype="float32")
    assert not plain.provenance()["normalize"] and norm.provenance()["normalize"]
    wav = _wav(1.0)
    np.testing.assert_allclose(norm.extract(wav), norm.extract(3.0 * wav), atol=1e-4)  # scale-free input


def test_refuses_a_folder_that_is_not_a_speech_encoder(tmp_path):
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 16}))
    (bert / "model.safetensors").write_bytes(b"x")
    settings = ExtractorSettings(ssl={"enc": {"checkpoint": str(bert)}})
    with pytest.raises(CheckpointError) as err:
        extractor_class("enc", settings).check_available(settings)
    message = str(err.value)
    assert "\n" not in message and str(bert) in message and "'bert' is not a supported speech encoder" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=rf"{empty}: not a Hugging Face model folder \(no config.json\)"):
        extractor_class("enc", settings)(ExtractorSettings(ssl={"enc": {"checkpoint": str(empty)}})).load()


def test_missing_checkpoints_say_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match=r"wavlm: no checkpoint configured; pass --ssl wavlm="):
        extractor_class("wavlm").check_available(ExtractorSettings())
    s = ExtractorSettings(ssl={"enc": {"checkpoint": "nobody/no-such-model"}})
    with pytest.raises(MissingWeightsError, match=r"not in the local Hugging Face cache and nothing is downloaded"):
        extractor_class("enc", s).check_available(s)
    with pytest.raises(ValueError, match=r"unknown feature 'nope'"):
        extractor_class("nope", s)


def test_a_model_id_is_found_in_the_local_cache(encoders, tmp_path, monkeypatch):
    """The hub cache layout: models--owner--name/refs/main names a snapshot folder holding the files."""
    import shutil

    cache = tmp_path / "hub"
    repo = cache / "models--tiny--wavlm"
    shutil.copytree(encoders["wavlm"], repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    ex = _load("tiny/wavlm")
    assert ex.provenance()["checkpoint"] == "tiny/wavlm"
    assert ex.provenance()["checkpoint_sha256"] == weights_sha256(encoders["wavlm"])


def test_two_encoders_side_by_side_in_one_store(encoders, tmp_path):
    manifest_dir, rows = make_corpus(tmp_path, n=6)
    settings = ExtractorSettings(ssl={"wavlm": {"checkpoint": str(encoders["wavlm"]), "layers": [0, 2]},
                                      "xlsr": {"checkpoint": str(encoders["wav2vec2"])}})
    fdir = tmp_path / "features"
    summary = extract_dataset("corpus", ["wavlm", "xlsr", "mfcc"], settings=settings, manifest_dir=manifest_dir,
                              features_dir=fdir, workers=0, progress=False, echo=lambda s: None)
    assert summary.computed == len(rows) and not summary.skipped
    with FeatureStore(store_path(fdir, "corpus", "train")) as store:
        wavlm, xlsr = store.features["wavlm"], store.features["xlsr"]
        assert (wavlm.dim, xlsr.dim) == (32, 48)
        assert wavlm.attrs["layers"] == [0, 2] and wavlm.attrs["model_type"] == "wavlm"
        assert xlsr.attrs["model_type"] == "wav2vec2" and xlsr.attrs["dtype"] == "float16"
        arrays = store.read("xlsr")
        assert arrays[0].dtype == np.float16 and arrays[0].shape[1] == 48
        assert store.read("mfcc")[0].dtype == np.float32


def test_weights_file_names_encoders(tmp_path, encoders):
    cfg = tmp_path / "weights.toml"
    (tmp_path / "models").mkdir()
    import shutil

    shutil.copytree(encoders["hubert"], tmp_path / "models" / "hubert")
    cfg.write_text('[ssl.mhubert]\ncheckpoint = "models/hubert"\nlayers = [1, 2]\n'
                   '[ssl.wavlm]\ncheckpoint = "microsoft/wavlm-large"\n')
    s = ExtractorSettings.from_file(cfg)
    assert s.ssl["mhubert"] == {"checkpoint": str(tmp_path / "models" / "hubert"), "layers": [1, 2]}
    assert s.ssl["wavlm"]["checkpoint"] == "microsoft/wavlm-large"  # not a folder here: a model id
    ex = extractor_class("mhubert", s)(s)
    ex.load()
    assert ex.dim == 32


def test_predict_uses_the_recorded_checkpoint_and_refuses_another(encoders, tmp_path):
    from click.testing import CliRunner

    from train.cli import main as train_main
    from predict.cli import main as predict_main

    manifest_dir, rows = make_corpus(tmp_path, n=18)
    settings = ExtractorSettings(ssl={"wavlm": {"checkpoint": str(encoders["wavlm"]), "layers": [1, 2]}})
    fdir = tmp_path / "features"
    extract_dataset("corpus", ["wavlm"], settings=settings, manifest_dir=manifest_dir, features_dir=fdir, workers=0,
                    progress=False, echo=lambda s: None)
    r = CliRunner().invoke(train_main, ["--domains", "xx=corpus", "--features", "wavlm", "--features-dir", str(fdir),
                                        "--epochs", "1", "--seeds", "1", "--standardize", "--per-class", "2",
                                        "--out", str(tmp_path / "run"), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "run" / "layer_weights.csv").is_file()
    bundle, wav = str(tmp_path / "run" / "model.bundle"), rows[0].path
    ok = CliRunner().invoke(predict_main, ["--model", bundle, "--jsonl", wav])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout.splitlines()[0])["emotion"] in {"angry", "sad", "neutral"}
    other = tiny_encoder(tmp_path / "other", "wavlm", seed=7)
    bad = CliRunner().invoke(predict_main, ["--model", bundle, "--ssl", f"wavlm={other}", wav])
    assert bad.exit_code == 3 and not bad.stdout  # a data problem: the bundle does not fit these weights
    assert "feature 'wavlm'" in bad.stderr and weights_sha256(other) in bad.stderr
    assert weights_sha256(encoders["wavlm"]) in bad.stderr


def test_other_layers_of_the_same_size_are_never_merged(tmp_path):
    """Layers [0, 1] and [1, 2] have the same dim; a store holding one refuses parts holding the other."""
    from sercore.errors import StoreError
    from sercore.store import UtteranceRecord, consolidate, parts_dir, write_store

    def part(name, utt, layers):
        attrs = {"enc": {"kind": "sequence", "dim": 8, "extractor": "enc", "layers": layers, "dtype": "float16"}}
        rec = UtteranceRecord(utt, "angry", "s1", "xx", {"enc": np.ones((3, 8), np.float32)})
        write_store(parts_dir(tmp_path, "c", "train") / name, "c", "train", [rec], attrs)

    part("part-1.h5", "u1", [0, 1])
    part("part-2.h5", "u2", [1, 2])
    with pytest.raises(StoreError, match=r"feature 'enc' differs from the stored one in layers"):
        consolidate(tmp_path, "c", "train")


def test_hidden_states_beyond_float16_are_refused_unless_stored_as_float32(encoders):
    """A checkpoint whose hidden states exceed float16's range is refused (not stored as inf), naming the remedy."""
    import torch

    wav = _wav(0.5)
    for dtype in ("float16", "float32"):
        ex = _load(encoders["wav2vec2"], dtype=dtype)
        with torch.no_grad():
            ex._model.encoder.layer_norm.bias.fill_(1e6)  # hidden state 0 and what follows: about 1e6
        if dtype == "float16":
            with pytest.raises(ValueError, match='beyond float16.s range; set dtype = "float32"'):
                ex.extract(wav)
        else:
            assert np.abs(ex.extract(wav)).max() > 1e5
