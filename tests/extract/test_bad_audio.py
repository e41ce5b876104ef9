"""Bad audio through the real extraction pipeline (MFCC and GE2E with resemblyzer's real weights).

Every kind of file a corpus can hold is either stored with finite features of the right shape, or skipped
with its reason in the store's ``skipped`` table and in the end summary; ``--strict`` turns skips into a
failure. The whole matrix is extracted once (module fixture); each case is then checked on its own.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from extract.audio import AudioError, load_audio
from extract.pipeline import extract_dataset
from sercore.errors import DataError
from sercore.manifest import Utterance, write_manifest
from sercore.store import FeatureStore, store_path

SR = 16000


def tone(seconds: float = 0.5, sr: int = SR, f0: float = 220.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amplitude * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _write(path: Path, data: np.ndarray, sr: int = SR, subtype: str | None = None) -> None:
    sf.write(path, data, sr, subtype=subtype)


def _wav_bytes(tmp: Path, data: np.ndarray, sr: int = SR) -> bytes:
    _write(tmp, data, sr, "PCM_16")
    return tmp.read_bytes()


def _container_bytes(tmp: Path, container: str) -> bytes:
    sf.write(tmp, tone(), SR, format=container, subtype="PCM_16")
    return tmp.read_bytes()


def _patch(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


# name -> (writer(path), expected): "stored", or a regular expression the skip reason must match.
def _cases() -> dict:
    stereo = np.stack([tone(), tone(f0=330)], axis=1)
    six = np.stack([tone(f0=200 + 50 * c) for c in range(6)], axis=1)
    cancel = np.stack([tone(), -tone()], axis=1)
    nan, inf, huge = tone(), tone(), tone() * 1e30
    nan[100] = np.nan
    inf[200] = np.inf
    rng = np.random.default_rng(0)
    dither = (rng.integers(-1, 2, SR) / 32768.0).astype(np.float32)  # +-1 LSB: quiet, not digitally silent
    good = lambda p: _wav_bytes(p, tone())  # noqa: E731

    def bytes_of(make):
        def write(path):
            path.write_bytes(make(path))
        return write

    return {
        # handled: decoded, down-mixed, resampled, stored
        "pcm_u8": (lambda p: _write(p, tone(), subtype="PCM_U8"), "stored"),
        "pcm_16": (lambda p: _write(p, tone(), subtype="PCM_16"), "stored"),
        "pcm_24": (lambda p: _write(p, tone(), subtype="PCM_24"), "stored"),
        "pcm_32": (lambda p: _write(p, tone(), subtype="PCM_32"), "stored"),
        "float32": (lambda p: _write(p, tone(), subtype="FLOAT"), "stored"),
        "float64": (lambda p: _write(p, tone(), subtype="DOUBLE"), "stored"),
        "float_above_full_scale": (lambda p: _write(p, tone() * 5, subtype="FLOAT"), "stored"),
        **{f"rate_{r}": (lambda p, r=r: _write(p, tone(sr=r), r), "stored") for r in (8000, 11025, 22050, 44100, 48000, 96000)},
        "stereo": (lambda p: _write(p, stereo), "stored"),
        "six_channels": (lambda p: _write(p, six), "stored"),
        "stereo_flac_named_wav": (lambda p: sf.write(p, stereo, SR, format="FLAC"), "stored"),
        "shorter_than_ge2e_minimum": (lambda p: _write(p, tone(0.04)), "stored"),  # 40 ms < 0.2 s: zero-padded
        "dithered_near_silence": (lambda p: _write(p, dither), "stored"),
        "streaming_header_size_unknown": (bytes_of(lambda p: _patch(good(p), 40, struct.pack("<I", 0xFFFFFFFF))), "stored"),
        # skipped, with the reason
        "missing_file": (lambda p: None, "audio file not found"),
        "empty_file": (lambda p: p.write_bytes(b""), "empty file"),
        "zero_frames": (lambda p: _write(p, np.zeros(0, np.float32)), "zero-length audio"),
        "all_silent": (lambda p: _write(p, np.zeros(SR, np.float32)), "all-silent audio"),
        "all_silent_float": (lambda p: _write(p, np.zeros(SR, np.float32), subtype="FLOAT"), "all-silent audio"),
        "stereo_cancelling_to_silence": (lambda p: _write(p, cancel, subtype="FLOAT"), "all-silent .*down-mix of 2 channels"),
        "too_short_5ms": (lambda p: _write(p, tone(0.005)), r"too short: 5\.0 ms"),
        "header_only": (bytes_of(lambda p: good(p)[:44]), "truncated WAV: the header announces 8000 frames, the file holds 0"),
        "truncated_data": (bytes_of(lambda p: good(p)[:44 + 3000]), "truncated WAV: the header announces 8000 frames, the file holds 1500"),
        "truncated_header": (bytes_of(lambda p: good(p)[:10]), "not decodable audio"),
        "rf64_complete": (lambda p: sf.write(p, tone(), SR, format="RF64", subtype="PCM_16"), "stored"),
        "rf64_truncated": (bytes_of(lambda p: _container_bytes(p, "RF64")[:-3000]),
                           "truncated RF64 WAV: the header announces 8000 frames, the file holds 6500"),
        "w64_truncated": (bytes_of(lambda p: _container_bytes(p, "W64")[:-3000]),
                          "truncated Wave64: the header announces 8000 frames, the file holds 6500"),
        "zero_channels_in_header": (bytes_of(lambda p: _patch(good(p), 22, b"\0\0")), "not decodable audio"),
        "zero_sample_rate_in_header": (bytes_of(lambda p: _patch(good(p), 24, b"\0\0\0\0")), "sample rate 0 Hz"),
        "sample_rate_1hz": (bytes_of(lambda p: _patch(good(p), 24, struct.pack("<I", 1))), "sample rate 1 Hz"),
        "text_named_wav": (lambda p: p.write_text("utt_id,path\nnot,audio\n" * 50), "not decodable audio"),
        "random_bytes_named_wav": (lambda p: p.write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()), "not decodable audio"),
        "png_named_wav": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000)), "not decodable audio"),
        "nan_samples": (lambda p: _write(p, nan, subtype="FLOAT"), "NaN or infinite samples"),
        "inf_samples": (lambda p: _write(p, inf, subtype="FLOAT"), "NaN or infinite samples"),
        "huge_float_samples": (lambda p: _write(p, huge, subtype="FLOAT"), "non-finite values"),
    }


CASES = _cases()
FEATURES = ("mfcc", "ge2e")
DIMS = {"mfcc": 40, "ge2e": 256}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_audio")
    rows = []
    for i, (name, (write, _)) in enumerate(CASES.items()):
        path = root / "wav" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        rows.append(Utterance(name, str(path), f"s{i % 3}", "xx", ("angry", "sad", "neutral")[i % 3], "train"))
    write_manifest(rows, root / "manifests" / "bad.csv")
    lines: list[str] = []
    summary = extract_dataset("bad", list(FEATURES), manifest_dir=root / "manifests", features_dir=root / "features",
                              workers=0, batch_size=8, progress=False, echo=lines.append)
    store = FeatureStore(store_path(root / "features", "bad", "train"))
    stored = {f: dict(zip(store.utt_ids, store.read(f))) for f in FEATURES}
    skipped = dict(store.skipped)
    store.close()
    return {"root": root, "summary": summary, "log": "\n".join(lines), "stored": stored, "skipped": skipped}


@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_input_is_stored_finite_or_skipped_with_its_reason(matrix, case):
    expected = CASES[case][1]
    stored, skipped, summary = matrix["stored"], matrix["skipped"], matrix["summary"]
    if expected == "stored":
        assert case not in skipped and case not in summary.skipped, skipped.get(case)
        for f in FEATURES:
            a = stored[f][case]
            assert np.isfinite(a).all(), f"{case}: {f} is not finite"
            assert a.shape[-1] == DIMS[f] and (a.ndim == 1 if f == "ge2e" else a.shape[0] >= 5)
        np.testing.assert_allclose(np.linalg.norm(stored["ge2e"][case]), 1.0, atol=1e-3)  # a real GE2E embedding
    else:
        assert case not in stored["mfcc"] and case not in stored["ge2e"]
        assert case in skipped, f"{case} was neither stored nor skipped"
        import re

        assert re.search(expected, skipped[case]), skipped[case]
        assert summary.skipped[case] == skipped[case]


def test_summary_lists_every_skip_and_counts_add_up(matrix):
    summary, log = matrix["summary"], matrix["log"]
    n_skip = sum(1 for _, e in CASES.values() if e != "stored")
    assert len(summary.skipped) == n_skip and summary.computed == len(CASES) - n_skip
    assert f"{n_skip} utterance(s) skipped" in log and f"{n_skip} skipped" in log
    shown = [line for line in log.splitlines() if line.startswith("  ")]
    assert len(shown) == min(n_skip, 20)


def test_resampling_gives_the_same_frame_rate_for_every_native_rate(matrix):
    # 0.5 s at any native rate -> about 50 MFCC frames at 16 kHz / 10 ms hop
    frames = {r: matrix["stored"]["mfcc"][f"rate_{r}"].shape[0] for r in (8000, 11025, 22050, 44100, 48000, 96000)}
    assert max(frames.values()) - min(frames.values()) <= 1 and abs(frames[8000] - 51) <= 2


def test_rerun_retries_skipped_files_and_strict_fails_on_what_is_still_skipped(tmp_path):
    rows = []
    for i in range(4):
        path = tmp_path / "wav" / f"u{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write(path, tone(f0=150 + 40 * i))
        rows.append(Utterance(f"u{i}", str(path), f"s{i}", "xx", ("angry", "sad")[i % 2], "train"))
    Path(rows[0].path).write_bytes(b"")
    Path(rows[1].path).write_bytes(Path(rows[2].path).read_bytes()[:100])
    write_manifest(rows, tmp_path / "m" / "c.csv")
    kw = dict(manifest_dir=tmp_path / "m", features_dir=tmp_path / "f", workers=0, progress=False, echo=lambda s: None)
    first = extract_dataset("c", ["mfcc"], **kw)
    assert set(first.skipped) == {"u0", "u1"}
    with pytest.raises(DataError, match="--strict: 2 utterance"):  # a rerun still knows about the skips
        extract_dataset("c", ["mfcc"], strict=True, **kw)
    _write(Path(rows[0].path), tone())  # the file is fixed: the next run stores it
    again = extract_dataset("c", ["mfcc"], **kw)
    assert again.computed == 1 and set(again.skipped) == {"u1"} and again.already_done == 2
    with FeatureStore(store_path(tmp_path / "f", "c", "train")) as s:
        assert sorted(s.utt_ids) == ["u0", "u2", "u3"] and set(s.skipped) == {"u1"}


def test_cli_strict_exits_with_an_error_naming_the_manifest(tmp_path):
    from extract.cli import main

    path = tmp_path / "wav" / "a.wav"
    path.parent.mkdir(parents=True)
    _write(path, np.zeros(SR, np.float32))
    good = tmp_path / "wav" / "b.wav"
    _write(good, tone())
    rows = [Utterance("a", str(path), "s", "xx", "sad", "train"), Utterance("b", str(good), "s", "xx", "angry", "train")]
    write_manifest(rows, tmp_path / "m" / "c.csv")
    args = ["--dataset", "c", "--features", "mfcc", "--workers", "0", "--quiet", "--manifest-dir", str(tmp_path / "m"),
            "--features-dir", str(tmp_path / "f")]
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0 and "a: " in ok.output and "all-silent" in ok.output
    strict = CliRunner().invoke(main, args + ["--strict"])
    assert strict.exit_code == 5 and "c.csv: --strict: 1 utterance(s) could not be extracted" in strict.output


def test_an_extractor_giving_nan_is_skipped_not_stored(tmp_path, monkeypatch):
    from extract.extractors.mfcc import MfccExtractor

    path = tmp_path / "a.wav"
    _write(path, tone())
    write_manifest([Utterance("a", str(path), "s", "xx", "sad", "train")], tmp_path / "m" / "c.csv")
    monkeypatch.setattr(MfccExtractor, "extract", lambda self, wav: np.full((10, 40), np.nan, np.float32))
    summary = extract_dataset("c", ["mfcc"], manifest_dir=tmp_path / "m", features_dir=tmp_path / "f", workers=0,
                              progress=False, echo=lambda s: None)
    assert summary.skipped == {"a": "mfcc gave non-finite values (NaN or inf) for this audio"}
    monkeypatch.setattr(MfccExtractor, "extract", lambda self, wav: np.zeros((0, 40), np.float32))
    summary = extract_dataset("c", ["mfcc"], manifest_dir=tmp_path / "m", features_dir=tmp_path / "f", workers=0,
                              progress=False, echo=lambda s: None)
    assert "shape (0, 40)" in summary.skipped["a"]


@pytest.mark.parametrize("peak", [0.0, 2.0 ** -16])
def test_loader_refuses_digital_silence_but_keeps_one_lsb(tmp_path, peak):
    x = np.zeros(SR, np.float32)
    x[::7] = peak
    sf.write(tmp_path / "s.wav", x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="all-silent"):
        load_audio(tmp_path / "s.wav")
    x[::7] = 2.0 ** -15
    sf.write(tmp_path / "s.wav", x, SR, subtype="FLOAT")
    assert load_audio(tmp_path / "s.wav")[0].shape == (SR,)


def test_extractors_on_silence_and_near_silence_are_finite():
    """What GE2E and MFCC do on digital zeros (why silence is skipped) and on the quietest kept audio."""
    from extract.extractors import ExtractorSettings
    from extract.pipeline import _extractor

    settings = ExtractorSettings()
    mfcc, ge2e = _extractor("mfcc", settings), _extractor("ge2e", settings)
    zeros = np.zeros(SR, np.float32)
    # MFCC of zeros is a constant (log of librosa's floor): finite but the same for every label
    m = mfcc.extract(zeros)
    assert np.isfinite(m).all() and np.ptp(m, axis=0).max() == 0
    quiet = np.random.default_rng(1).integers(-1, 2, SR).astype(np.float32) / 32768
    with np.errstate(all="raise"):  # resemblyzer's volume normalisation divides by the RMS: not zero here
        e = ge2e.extract(quiet)
    assert np.isfinite(e).all() and e.shape == (256,)
