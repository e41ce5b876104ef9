"""The extraction stage end to end on tiny generated audio: stores, resume, kill-safety, bad audio."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from extract.audio import DecodedAudio, load_audio
from extract.pipeline import extract_dataset
from sercore.errors import DataError, StoreError
from sercore.manifest import Utterance, write_manifest
from sercore.store import FeatureStore, consolidate, parts_dir, store_path, write_store, UtteranceRecord
from tests._same_features import assert_same_features

EMOTIONS = ("angry", "sad", "neutral")


def _tone(seconds: float, f0: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def make_corpus(root: Path, n: int = 12, sr: int = 16000) -> tuple[Path, list[Utterance]]:
    """n short clips, three emotions, written as WAV; manifest under root/manifests/corpus.csv."""
    rows = []
    for i in range(n):
        path = root / "wav" / f"u{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _tone(0.5 + 0.05 * i, 120 + 20 * i, sr), sr)
        rows.append(Utterance(f"u{i:03d}", str(path), f"s{i % 3}", "xx", EMOTIONS[i % 3], ("train", "valid", "test")[i % 3]))
    manifest_dir = root / "manifests"
    write_manifest(rows, manifest_dir / "corpus.csv")
    return manifest_dir, rows


def _all_ids(features_dir: Path) -> list[str]:
    ids = []
    for split in ("train", "valid", "test"):
        with FeatureStore(store_path(features_dir, "corpus", split)) as s:
            ids += s.utt_ids
    return ids


def test_stores_hold_every_utterance_once_and_rerun_does_no_work(tmp_path):
    manifest_dir, rows = make_corpus(tmp_path)
    fdir = tmp_path / "features"
    first = extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0,
                            batch_size=4, progress=False, echo=lambda s: None)
    assert first.computed == len(rows)
    assert sorted(_all_ids(fdir)) == sorted(u.utt_id for u in rows)
    with FeatureStore(store_path(fdir, "corpus", "train")) as s:
        info = s.features["mfcc"]
        assert info.kind == "sequence" and info.dim == 40
        assert info.attrs["hop_seconds"] == pytest.approx(0.01) and info.attrs["n_mfcc"] == 40
        first_mfcc = s.read("mfcc")[0]
        # 10 ms hop at 16 kHz: about 100 frames per second of audio
        assert abs(first_mfcc.shape[0] - 0.5 * 100) <= 2
    again = extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0,
                            progress=False, echo=lambda s: None)
    assert again.computed == 0 and again.already_done == len(rows)
    assert not parts_dir(fdir, "corpus", "train").exists()


def test_each_extractor_gets_the_whole_batch_and_a_failure_skips_only_its_utterance(tmp_path, monkeypatch):
    """A worker hands an extractor every utterance of its batch at once; if the batch fails, each utterance is run
    alone, and only the one that fails is skipped."""
    from extract.extractors.mfcc import MfccExtractor

    manifest_dir, rows = make_corpus(tmp_path, n=12)
    bad = rows[3]  # a train utterance: 0.65 s
    bad_samples = int((0.5 + 0.05 * 3) * 16000)
    sizes: list[int] = []
    single = MfccExtractor.extract

    def extract(self, wav):
        if len(wav) == bad_samples:
            raise RuntimeError("the model fails on this one")
        return single(self, wav)

    def extract_batch(self, wavs):
        sizes.append(len(wavs))
        return [extract(self, w) for w in wavs]

    monkeypatch.setattr(MfccExtractor, "extract", extract)
    monkeypatch.setattr(MfccExtractor, "extract_batch", extract_batch)
    summary = extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=tmp_path / "f", workers=0,
                              batch_size=8, progress=False, echo=lambda s: None)
    assert sorted(sizes) == [4, 4, 4]  # one call per split's batch, not one per utterance
    assert set(summary.skipped) == {bad.utt_id} and "the model fails on this one" in summary.skipped[bad.utt_id]
    assert summary.computed == len(rows) - 1
    assert sorted(_all_ids(tmp_path / "f")) == sorted(u.utt_id for u in rows if u is not bad)


@pytest.mark.slow
def test_dask_workers_give_the_same_features_as_the_serial_path(tmp_path):
    manifest_dir, rows = make_corpus(tmp_path, n=6)
    serial, dask = tmp_path / "serial", tmp_path / "dask"
    extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=serial, workers=0, progress=False, echo=lambda s: None)
    extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=dask, workers=1, batch_size=2,
                    progress=False, echo=lambda s: None)
    for split in ("train", "valid", "test"):
        with FeatureStore(store_path(serial, "corpus", split)) as a, FeatureStore(store_path(dask, "corpus", split)) as b:
            assert a.utt_ids == b.utt_ids
            for x, y in zip(a.read("mfcc"), b.read("mfcc")):
                assert_same_features(y, x, same_process=False)  # Dask workers are other processes


@pytest.mark.slow
def test_bad_audio_is_skipped_with_its_reason_and_strict_fails(tmp_path):
    manifest_dir, rows = make_corpus(tmp_path, n=6)
    Path(rows[0].path).write_bytes(b"this is not audio at all")
    Path(rows[1].path).write_bytes(b"")
    fdir = tmp_path / "features"
    summary = extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=fdir, workers=0,
                              progress=False, echo=lambda s: None)
    assert set(summary.skipped) == {rows[0].utt_id, rows[1].utt_id}
    assert "empty file" in summary.skipped[rows[1].utt_id]
    with FeatureStore(store_path(fdir, "corpus", rows[0].split)) as s:
        assert rows[0].utt_id in s.skipped and rows[0].utt_id not in s.utt_ids
    with pytest.raises(DataError, match="--strict"):
        extract_dataset("corpus", ["mfcc"], manifest_dir=manifest_dir, features_dir=tmp_path / "f2", workers=0,
                        strict=True, progress=False, echo=lambda s: None)


def test_audio_loader_downmixes_resamples_and_names_the_file(tmp_path):
    stereo = np.stack([_tone(0.3, 200, 48000), _tone(0.3, 200, 48000)], axis=1)
    sf.write(tmp_path / "a.flac", stereo, 48000)
    audio = DecodedAudio(tmp_path / "a.flac")
    assert audio.sample_rate == 48000 and audio.wav.ndim == 1
    assert len(audio.at(16000)) == pytest.approx(0.3 * 16000, abs=2)
    assert len(audio.at(16000, min_seconds=1.0)) == 16000
    nan = _tone(0.1, 100)
    nan[5] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match="nan.wav.*NaN"):
        load_audio(tmp_path / "nan.wav")


def test_consolidation_refuses_features_from_other_weights(tmp_path):
    def part(name, sha):
        rec = UtteranceRecord(name, "sad", "s", "xx", {"ge2e": np.ones(4, np.float32)})
        attrs = {"ge2e": {"kind": "embedding", "dim": 4, "extractor": "ge2e", "checkpoint_sha256": sha}}
        write_store(parts_dir(tmp_path, "c", "train") / f"{name}.h5", "c", "train", [rec], attrs)

    part("a", "1111")
    part("b", "2222")
    with pytest.raises(StoreError, match="checkpoint_sha256"):
        consolidate(tmp_path, "c", "train")
    assert len(list(parts_dir(tmp_path, "c", "train").glob("*.h5"))) == 2  # nothing lost


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_parts", [1, 3])
def test_killed_extraction_resumes_with_every_utterance_exactly_once(tmp_path, kill_after_parts):
    manifest_dir, rows = make_corpus(tmp_path, n=30)
    fdir = tmp_path / "features"
    cmd = [sys.executable, "-m", "extract.cli", "--dataset", "corpus", "--features", "mfcc", "--workers", "0",
           "--batch-size", "1", "--quiet", "--manifest-dir", str(manifest_dir), "--features-dir", str(fdir)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        pdir = fdir / "corpus"
        try:
            n_parts = len(list(pdir.glob("*.parts/*"))) if pdir.exists() else 0  # includes *.tmp being written
        except FileNotFoundError:  # a parts folder removed while listed (consolidated): look again
            continue
        if n_parts >= kill_after_parts:
            break
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # whatever is on disk opens (parts and any store), no temporary file survives a rerun
    for p in fdir.rglob("*.h5"):
        FeatureStore(p).close()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ids = _all_ids(fdir)
    assert sorted(ids) == sorted(u.utt_id for u in rows)
    assert len(ids) == len(set(ids))
    assert not list(fdir.rglob("*.tmp"))
