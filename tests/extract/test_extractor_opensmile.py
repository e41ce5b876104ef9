"""openSMILE sets (eGeMAPSv02 functionals and LLDs, ComParE_2016 functionals) on generated audio, through the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("opensmile", reason="the optional extra [opensmile] is not installed")

from extract.extractors import ExtractorSettings, extractor_class  # noqa: E402
from extract.pipeline import extract_dataset  # noqa: E402
from sercore.store import FeatureStore, store_path  # noqa: E402

from test_extract_pipeline import _tone, make_corpus  # noqa: E402


@pytest.mark.parametrize("name,kind,dim", [("egemaps", "embedding", 88), ("egemaps_lld", "sequence", 25),
                                           ("compare", "embedding", 6373)])
def test_shapes_and_provenance(name, kind, dim):
    ex = extractor_class(name)(ExtractorSettings())
    ex.load()
    wav = _tone(1.5, 180.0)
    out = ex.extract(wav)
    assert ex.kind == kind and ex.dim == dim
    if kind == "embedding":
        assert out.shape == (dim,)
    else:
        # one frame every 10 ms (eGeMAPS LLDs: 20 ms / 60 ms windows, so a few frames fewer than 150)
        assert out.shape[1] == dim and 140 <= out.shape[0] <= 150
    assert out.dtype == np.float32 and np.isfinite(out).all()
    p = ex.provenance()
    assert p["kind"] == kind and p["dim"] == dim and p["version"].startswith("opensmile ")
    # deterministic, and it depends on the audio
    assert np.array_equal(ex.extract(wav), out)
    assert not np.allclose(ex.extract(_tone(1.5, 300.0)), out)


def test_egemaps_pitch_follows_the_tone():
    """F0 semitone mean (from 27.5 Hz) of a 220 Hz tone is 12 * log2(220 / 27.5) = 36 semitones."""
    ex = extractor_class("egemaps")(ExtractorSettings())
    ex.load()
    import opensmile

    smile = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    i = smile.feature_names.index("F0semitoneFrom27.5Hz_sma3nz_amean")
    t = np.arange(32000) / 16000
    out = ex.extract((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    assert out[i] == pytest.approx(36.0, abs=0.5)


def test_pipeline_stores_all_three(tmp_path):
    manifest_dir, rows = make_corpus(tmp_path, n=6)
    fdir = tmp_path / "features"
    summary = extract_dataset("corpus", ["egemaps", "egemaps_lld", "compare"], manifest_dir=manifest_dir,
                              features_dir=fdir, workers=0, progress=False, echo=lambda s: None)
    assert summary.computed == len(rows) and not summary.skipped
    with FeatureStore(store_path(fdir, "corpus", "train")) as s:
        assert {n: (i.kind, i.dim) for n, i in s.features.items()} == {
            "egemaps": ("embedding", 88), "egemaps_lld": ("sequence", 25), "compare": ("embedding", 6373)}
        assert s.read("compare")[0].shape == (6373,)
