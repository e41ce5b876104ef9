"""The near-duplicate guard compares content, not duration: a recording with leading silence added, trimmed by 5 %
or with noise at 30 dB SNR, placed in another split, is refused; distinct utterances are not. Synthetic speech-like
audio through the real MFCC and GE2E extractors (no corpus needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.signal import lfilter

from extract.extractors import ExtractorSettings, extractor_class
from sercore.errors import EXIT_DATA, StoreError
from sercore.store import UtteranceRecord, store_path, write_store
from train.cli import main
from train.duplicates import near_duplicates, refuse_near_duplicates

SR = 16000
KINDS = {"mfcc": "sequence", "ge2e": "embedding"}


def _utterance(seed: int, seconds: float = 1.75) -> np.ndarray:
    """Voiced syllables (a harmonic source with a moving pitch through three random resonances) and a few noise
    bursts, each under its own envelope, over a faint noise floor: enough structure for MFCC frames and GE2E."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * rng.uniform(0.3, 1.2) * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    source = sum(np.sin(k * phase) / k for k in range(1, 30))
    out = np.zeros(n)
    pos = 0
    while pos < n:
        seg = source[pos:pos + int(rng.uniform(0.12, 0.3) * SR)]
        if rng.random() < 0.25:
            seg = rng.normal(0, 0.5, len(seg))
        for f in rng.uniform([300, 900, 2200], [900, 2200, 3500]):
            seg = lfilter([1], [1, -2 * 0.97 * np.cos(2 * np.pi * f / SR), 0.97 ** 2], seg)
        out[pos:pos + len(seg)] = seg / (np.abs(seg).max() + 1e-9) * np.hanning(len(seg)) ** 0.5 * rng.uniform(0.3, 1)
        pos += len(seg)
    out += rng.normal(0, 1e-3, n)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def _altered(x: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    noise = rng.normal(0, np.sqrt(np.mean(x ** 2) / 10 ** (30 / 10)), len(x))
    return {"silence": np.concatenate([np.zeros(int(0.15 * SR), np.float32), x]),  # 150 ms of leading silence
            "trimmed": x[:int(len(x) * 0.95)],  # its last 5 % cut
            "noisy": (x + noise).astype(np.float32)}  # 30 dB SNR


@pytest.fixture(scope="module")
def features():
    settings = ExtractorSettings()
    extractors = {}
    for name in KINDS:
        extractors[name] = extractor_class(name, settings)(settings)
        extractors[name].load()
    clips = {f"d{k:02d}": _utterance(k) for k in range(12)}
    clips.update({f"zz_{name}": y for name, y in _altered(clips["d00"]).items()})
    return {name: {u: ex.extract(y) for u, y in clips.items()} for name, ex in extractors.items()}


def _subset(features, ids):
    return {n: {u: features[n][u] for u in ids} for n in features}


def test_distinct_synthetic_utterances_are_not_near_duplicates(features):
    ids = [f"d{k:02d}" for k in range(12)]
    assert near_duplicates(ids, _subset(features, ids), KINDS) == []


@pytest.mark.parametrize("copy", ["silence", "trimmed", "noisy"])
def test_a_padded_trimmed_or_noisy_copy_is_refused(features, copy, tmp_path):
    ids = [f"d{k:02d}" for k in range(12)] + [f"zz_{copy}"]
    arrays = _subset(features, ids)
    pairs = near_duplicates(ids, arrays, KINDS)
    assert [(p.first, p.second) for p in pairs] == [("d00", f"zz_{copy}")]
    assert pairs[0].refused
    with pytest.raises(StoreError, match=f"1 pair\\(s\\) of near-duplicate utterances: 'd00' ~ 'zz_{copy}'"):
        refuse_near_duplicates(tmp_path, ids, arrays, KINDS)


def test_train_refuses_a_noisy_copy_in_another_split(features, tmp_path):
    ids = [f"d{k:02d}" for k in range(12)] + ["zz_noisy"]
    emotions = ["happy" if k % 2 else "sad" for k in range(12)] + ["sad"]
    splits = ["train"] * 8 + ["valid", "valid", "test", "test"] + ["test"]  # d00 in train, its copy in test
    records = [UtteranceRecord(u, e, f"spk{k % 3}", "de", {n: features[n][u] for n in KINDS})
               for k, (u, e) in enumerate(zip(ids, emotions))]
    attrs = {"mfcc": {"kind": "sequence", "dim": 40, "extractor": "mfcc", "hop_seconds": 0.01},
             "ge2e": {"kind": "embedding", "dim": 256, "extractor": "ge2e"}}
    root = Path(tmp_path / "features")
    for split in ("train", "valid", "test"):
        write_store(store_path(root, "synth", split), "synth", split, [r for r, s in zip(records, splits) if s == split], attrs)
    r = CliRunner().invoke(main, ["--domains", "de=synth", "--features-dir", str(root), "--epochs", "1", "--seeds", "1",
                                  "--out", str(tmp_path / "out")])
    assert r.exit_code == EXIT_DATA, r.output
    assert "near-duplicate utterances: 'd00' ~ 'zz_noisy' (content aligned-frame score" in r.output


def test_pooled_evidence_alone_is_still_only_a_warning(tmp_path, caplog):
    """Without GE2E and without MFCC frames to align (another sequence feature), pooled features at cosine 0.999
    name the pair in a warning, as before."""
    rng = np.random.default_rng(0)
    lld = {f"u{k}": rng.normal(size=(40, 6)).astype(np.float32) * (1 + k % 3) + k for k in range(8)}
    lld["u_copy"] = lld["u3"] + np.float32(0.001) * rng.normal(size=(40, 6)).astype(np.float32)
    ids = sorted(lld)
    with caplog.at_level("WARNING", logger="mgser"):
        refuse_near_duplicates(tmp_path, ids, {"lld": lld}, {"lld": "sequence"})
    assert "possibly near-duplicate utterances: 'u3' ~ 'u_copy' (pooled cosine" in caplog.text
