"""The truncation check of :func:`extract.audio.load_audio` in every container whose header announces its data
size: WAV (RIFF and big-endian RIFX), RF64, Sony Wave64 and AIFF. libsndfile decodes the part of a cut file
that is there without complaint, so each must be refused by the check, and a complete file must pass. Compressed
files (Ogg Vorbis/Opus, FLAC, MP3 with a Xing header) cut anywhere must be refused too."""

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


#: compressed formats: soundfile format and subtype
COMPRESSED = {"vorbis.ogg": ("OGG", "VORBIS"), "opus.ogg": ("OGG", "OPUS"), "clip.flac": ("FLAC", "PCM_16"),
              "clip.mp3": ("MP3", "MPEG_LAYER_III")}


def _speechlike(seconds: float = 1.9, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(0)
    return (0.2 * np.sin(2 * np.pi * 180 * t * (1 + 0.1 * np.sin(2 * np.pi * 3 * t)))
            + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("name", list(COMPRESSED))
def test_compressed_files_cut_anywhere_are_refused_never_decoded_in_part(tmp_path, name):
    from extract.audio import compressed_container

    fmt, subtype = COMPRESSED[name]
    path = tmp_path / name
    sf.write(path, _speechlike(), SR, format=fmt, subtype=subtype)
    wav, sr = load_audio(path)
    stated = compressed_container(path)[1]
    assert compressed_container(path)[0] is None and stated is not None
    assert abs(stated.seconds - len(wav) / sr) <= stated.tolerance
    data = path.read_bytes()
    decoded = {}
    for k in range(1, 41):
        cut = tmp_path / f"cut{k}_{name}"
        cut.write_bytes(data[:len(data) * k // 41])
        try:
            w, r = load_audio(cut)
            decoded[k] = len(w) / r
        except AudioError as exc:
            assert exc.where == str(cut)
    assert not decoded, f"{len(decoded)} of 40 cut copies decoded: {decoded}"


def test_ogg_cut_at_a_page_boundary_lacks_the_end_of_stream_flag(tmp_path):
    path = tmp_path / "clip.ogg"
    sf.write(path, _speechlike(), SR, format="OGG", subtype="VORBIS")
    data = path.read_bytes()
    path.write_bytes(data[:data.rindex(b"OggS")])
    with pytest.raises(AudioError, match="truncated Ogg: the last page lacks the end-of-stream flag"):
        load_audio(path)


def test_mp3_frames_missing_from_its_xing_count_are_named(tmp_path):
    path = tmp_path / "clip.mp3"
    sf.write(path, _speechlike(), SR, format="MP3", subtype="MPEG_LAYER_III")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) * 6 // 10])
    with pytest.raises(AudioError, match=r"truncated MP3: the Xing/Info header announces \d+ frames, the file holds \d+$"):
        load_audio(path)


def test_a_decoded_length_short_of_the_stated_one_is_refused(tmp_path, monkeypatch):
    from extract import audio

    path = tmp_path / "clip.ogg"
    sf.write(path, _speechlike(), SR, format="OGG", subtype="VORBIS")
    read = sf.read

    def first_half(*args, **kwargs):  # a decoder that stops half way without an error
        wav, sr = read(*args, **kwargs)
        return wav[: len(wav) // 2], sr

    monkeypatch.setattr(audio.sf, "read", first_half)
    with pytest.raises(AudioError, match=r"truncated Ogg Vorbis: decoded 0\.950 s of the 1\.900 s its header states"):
        load_audio(path)


def test_mp3_without_a_xing_header_cannot_be_checked(tmp_path):
    from extract.audio import compressed_container

    path = tmp_path / "clip.mp3"
    sf.write(path, _speechlike(), SR, format="MP3", subtype="MPEG_LAYER_III")
    data = bytearray(path.read_bytes())
    pos = data.find(b"Xing") if b"Xing" in data[:64] else data.find(b"Info")
    data[pos:pos + 4] = b"\0\0\0\0"  # a plain CBR stream: nothing states its length
    path.write_bytes(bytes(data))
    assert compressed_container(path) == (None, None)
