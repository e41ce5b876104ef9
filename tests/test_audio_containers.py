"""The truncation check of :func:`extract.audio.load_audio` in every container whose header announces its data
size: WAV (RIFF and big-endian RIFX), RF64, Sony Wave64 and AIFF. libsndfile decodes the part of a cut file
that is there without complaint, so each must be refused by the check, and a complete file must pass."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf

from extract.audio import AUDIO_SUFFIXES, AudioError, load_audio, truncation

SR = 16000
FRAMES = 8001  # odd: 8-bit and 24-bit mono data chunks need a pad byte
#: container -> (soundfile format, extra keywords, the name in the message)
CONTAINERS = {
    "wav": ("WAV", {}, "WAV"),
    "rifx": ("WAV", {"endian": "BIG"}, "WAV (RIFX)"),
    "rf64": ("RF64", {}, "RF64 WAV"),
    "w64": ("W64", {}, "Wave64"),
    "aiff": ("AIFF", {}, "AIFF"),
}


def _write(path, container: str, subtype: str, channels: int) -> bytes:
    fmt, extra, _ = CONTAINERS[container]
    t = np.arange(FRAMES) / SR
    wav = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(path, np.stack([wav] * channels, axis=1), SR, format=fmt, subtype=subtype, **extra)
    return path.read_bytes()


@pytest.mark.parametrize("subtype, channels", [("PCM_16", 1), ("PCM_24", 2), ("FLOAT", 1), ("PCM_U8", 1)])
@pytest.mark.parametrize("container", list(CONTAINERS))
def test_complete_files_load_and_cut_ones_are_refused_with_their_frame_counts(tmp_path, container, subtype, channels):
    if container == "aiff" and subtype in ("FLOAT", "PCM_U8"):
        pytest.skip("AIFF has no float or unsigned 8-bit PCM (AIFC would)")
    path = tmp_path / f"clip.{container}"
    data = _write(path, container, subtype, channels)
    assert truncation(path) is None
    wav, sr = load_audio(path)
    assert (wav.shape, sr) == ((FRAMES,), SR)
    block = channels * {"PCM_16": 2, "PCM_24": 3, "FLOAT": 4, "PCM_U8": 1}[subtype]
    size = FRAMES * block
    pad = 0 if container == "w64" else size % 2  # RIFF/AIFF pad odd chunks; libsndfile ends Wave64 unpadded
    header = len(data) - size - pad
    path.write_bytes(data[:header + (FRAMES - 1000) * block])
    assert len(sf.read(path)[0]) < FRAMES  # what the check exists for: libsndfile decodes the rest silently
    name = CONTAINERS[container][2]
    with pytest.raises(AudioError, match=rf"truncated {re.escape(name)}: the header announces {FRAMES} frames, "
                                         rf"the file holds {FRAMES - 1000}$") as err:
        load_audio(path)
    assert err.value.where == str(path)


@pytest.mark.parametrize("container", ["wav", "rf64"])
def test_a_streaming_header_with_unknown_size_is_not_called_truncated(tmp_path, container):
    """WAV writers that never patch the header leave the data size 0 or 0xFFFFFFFF: no size is announced.
    (Wave64 has no such convention.)"""
    path = tmp_path / f"clip.{container}"
    data = bytearray(_write(path, container, "PCM_16", 1))
    pos = data.index(b"data")
    data[pos + 4:pos + 8] = b"\xff\xff\xff\xff"
    if container == "rf64":  # RF64 keeps the real size in ds64; an unpatched one says 0 there too
        ds64 = data.index(b"ds64")
        data[ds64 + 16:ds64 + 24] = bytes(8)
        data[pos + 4:pos + 8] = b"\0\0\0\0"
    path.write_bytes(bytes(data))
    assert truncation(path) is None


def test_one_list_of_audio_suffixes_for_preparers_and_predict():
    from extract.prepare import base
    from predict import cli

    assert {".wav", ".flac", ".ogg", ".mp3", ".rf64", ".w64", ".aiff"} <= AUDIO_SUFFIXES
    assert base.AUDIO_SUFFIXES is AUDIO_SUFFIXES and cli.AUDIO_SUFFIXES is AUDIO_SUFFIXES
