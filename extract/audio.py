"""Audio loading: decode once, down-mix to mono, resample per model rate.

Every extractor of a run sees the same decoded waveform; only the resampling differs per model rate.

:func:`load_audio` refuses, with an :class:`AudioError` naming the file and the problem, everything that
would otherwise give features without meaning: a missing, empty or undecodable file (also a non-audio file
named ``.wav``), a WAV (also RF64, Wave64) or AIFF file whose sample data is cut short (an interrupted copy:
libsndfile would silently decode the part that is there, see :func:`truncation`), a sample rate outside :data:`SAMPLE_RATE_RANGE`, no samples, NaN or infinite
samples, a clip shorter than :data:`MIN_SECONDS`, and digital silence (after the down-mix, every sample
below one 16-bit step: its features would be the same for every label). Any PCM width (8/16/24/32-bit
integer, 32/64-bit float), any channel count and any rate in the range is decoded.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from sercore.errors import DataError

#: Native sample rates accepted (Hz). Below 4 kHz there is no speech band left; a rate of 0 or 1 comes from
#: a corrupt header, and resampling 1 Hz "audio" to 16 kHz would blow one file up 16000-fold.
SAMPLE_RATE_RANGE: tuple[int, int] = (4000, 384000)
#: Shortest clip kept (seconds): one 25 ms analysis window. Shorter clips (a cut file) hold no speech.
#: Clips above this but below an extractor's own minimum are zero-padded (:meth:`DecodedAudio.at`).
MIN_SECONDS: float = 0.025
#: Peak amplitude under which a clip is digitally silent: below one step of 16-bit PCM.
SILENCE_PEAK: float = 2.0 ** -15


class AudioError(DataError):
    """An audio file that cannot be used; the pipeline records it as skipped with this message."""


#: Audio file suffixes (lower case) that preparers pick up in corpus folders and ``predict`` in folders it is given:
#: what libsndfile decodes (WAV and its 64-bit forms, FLAC, Ogg Vorbis/Opus, MP3, AIFF, AU, CAF) plus the
#: compressed formats librosa/audioread decode through FFmpeg where it is installed.
AUDIO_SUFFIXES: frozenset[str] = frozenset({
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff", ".aifc", ".au", ".snd", ".wma",
    ".webm", ".caf", ".w64", ".rf64",
})

#: Sony Wave64 chunk identifiers: 16-byte GUIDs whose first four bytes spell the RIFF names.
_W64_TAIL = bytes.fromhex("f3acd3118cd100c04f8edb8a")
_W64_RIFF = b"riff" + bytes.fromhex("2e91cf11a5d628db04c10000")
_W64_WAVE, _W64_FMT, _W64_DATA = b"wave" + _W64_TAIL, b"fmt " + _W64_TAIL, b"data" + _W64_TAIL


@dataclass(frozen=True)
class _DataChunk:
    """Where a container's sample data is: what its header announces and what the file holds (bytes)."""

    container: str
    announced: int
    available: int
    block_align: int  # bytes per frame, 0 when unknown


def _riff_chunks(f: BinaryIO, size: int, head: bytes) -> _DataChunk | None:
    """RIFF/RIFX WAVE and their 64-bit forms RF64/BW64 (EBU Tech 3306, ITU-R BS.2088): the data size of an
    RF64 file is in its ``ds64`` chunk, the 32-bit field holds 0xFFFFFFFF."""
    container = {b"RIFF": "WAV", b"RIFX": "WAV (RIFX)", b"RF64": "RF64 WAV", b"BW64": "BW64 WAV"}[head[:4]]
    endian = ">" if head[:4] == b"RIFX" else "<"
    pos, block_align, ds64_data = 12, 0, None
    while pos + 8 <= size:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack(endian + "4sI", f.read(8))
        if chunk_id == b"ds64" and chunk_size >= 16:
            ds64_data = struct.unpack("<QQ", f.read(16))[1]
        elif chunk_id == b"fmt " and chunk_size >= 16:
            block_align = struct.unpack(endian + "H", f.read(16)[12:14])[0]
        elif chunk_id == b"data":
            if chunk_size == 0xFFFFFFFF and ds64_data is not None:
                chunk_size = ds64_data
            elif chunk_size in (0, 0xFFFFFFFF):  # streaming writers that never patched the header: unknown
                return None
            return _DataChunk(container, chunk_size, size - pos - 8, block_align)
        pos += 8 + chunk_size + (chunk_size & 1)
    return None


def _w64_chunks(f: BinaryIO, size: int, head: bytes) -> _DataChunk | None:
    """Sony Wave64: 16-byte GUID + 64-bit size (header included) per chunk, chunks aligned to 8 bytes."""
    pos, block_align = 40, 0
    while pos + 24 <= size:
        f.seek(pos)
        guid, chunk_size = struct.unpack("<16sQ", f.read(24))
        if chunk_size < 24:
            return None  # a corrupt header: the decoder reports it
        if guid == _W64_FMT and chunk_size >= 40:
            block_align = struct.unpack("<H", f.read(16)[12:14])[0]
        elif guid == _W64_DATA:
            return _DataChunk("Wave64", chunk_size - 24, size - pos - 24, block_align)
        pos += chunk_size + (-chunk_size % 8)
    return None


def _aiff_chunks(f: BinaryIO, size: int, head: bytes) -> _DataChunk | None:
    """AIFF/AIFC: big-endian chunks; ``COMM`` gives channels and sample size, ``SSND`` holds the samples."""
    pos, block_align = 12, 0
    while pos + 8 <= size:
        f.seek(pos)
        chunk_id, chunk_size = struct.unpack(">4sI", f.read(8))
        if chunk_id == b"COMM" and chunk_size >= 18:
            channels, _, bits = struct.unpack(">hIh", f.read(8))
            block_align = channels * ((bits + 7) // 8) if head[8:12] == b"AIFF" else 0
        elif chunk_id == b"SSND" and chunk_size >= 8:  # offset and block size, then the samples
            return _DataChunk(head[8:12].decode("ascii"), chunk_size - 8, size - pos - 16, block_align)
        pos += 8 + chunk_size + (chunk_size & 1)
    return None


def _data_chunk(path: Path) -> _DataChunk | None:
    """The data chunk of a WAV-family or AIFF file (see :func:`truncation`), else None."""
    with path.open("rb") as f:
        head = f.read(40)
        size = path.stat().st_size
        if len(head) >= 12 and head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE":
            return _riff_chunks(f, size, head)
        if len(head) >= 40 and head[:16] == _W64_RIFF and head[24:40] == _W64_WAVE:
            return _w64_chunks(f, size, head)
        if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            return _aiff_chunks(f, size, head)
    return None


def truncation(path: str | Path) -> str | None:
    """How the sample data of an uncompressed audio file is cut short, else None.

    Covers the containers whose header announces the data size: WAV (RIFF, RIFX), its 64-bit forms RF64/BW64
    and Sony Wave64, and AIFF/AIFC. libsndfile decodes the frames that are present without complaint, so a
    file cut by an interrupted copy would otherwise give features of a partial utterance. A data size of 0 or
    0xFFFFFFFF (streaming writers that never patched the header) means "unknown" and is not checked.
    Compressed formats (FLAC, Ogg, MP3) are not covered: their decoders report damage themselves.
    """
    try:
        chunk = _data_chunk(Path(path))
    except (OSError, struct.error):
        return None  # unreadable headers are reported by the decoder
    if chunk is None or chunk.available >= chunk.announced - 1:  # 1: a missing pad byte
        return None
    if chunk.block_align:
        return (f"truncated {chunk.container}: the header announces {chunk.announced // chunk.block_align} "
                f"frames, the file holds {chunk.available // chunk.block_align}")
    return f"truncated {chunk.container}: the header announces {chunk.announced} data bytes, the file holds {chunk.available}"


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(samples,) float32 mono (integer PCM in [-1, 1]) and its native sample rate.

    soundfile decodes WAV/FLAC/OGG/MP3 (any PCM width, float); other formats go through librosa/audioread.
    Raises :class:`AudioError` for the cases listed in the module docstring.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "audio file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file")
    truncated = truncation(path)
    if truncated:
        raise AudioError(path, truncated)
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
        channels = wav.shape[1]
        wav = wav.mean(axis=1, dtype=np.float64)
    except (sf.LibsndfileError, RuntimeError) as sf_exc:
        try:
            import librosa

            wav, sr = librosa.load(str(path), sr=None, mono=True)
            channels = 1
        except Exception:
            raise AudioError(path, f"not decodable audio ({sf_exc})") from None
    return check_samples(path, wav, sr, channels)


def check_samples(where: str | Path, wav: np.ndarray, sr: int, channels: int = 1) -> tuple[np.ndarray, int]:
    """The checks of :func:`load_audio` after decoding, on a mono waveform (down-mixed from ``channels``).

    Returns ``(samples as float32, sample rate as int)``; raises :class:`AudioError` naming ``where``.
    """
    sr = int(sr)
    if not SAMPLE_RATE_RANGE[0] <= sr <= SAMPLE_RATE_RANGE[1]:
        raise AudioError(where, f"sample rate {sr} Hz outside {SAMPLE_RATE_RANGE[0]}-{SAMPLE_RATE_RANGE[1]} Hz (corrupt header?)")
    if wav.size == 0:
        raise AudioError(where, "zero-length audio")
    if not np.all(np.isfinite(wav)):
        raise AudioError(where, "audio contains NaN or infinite samples")
    if wav.size < MIN_SECONDS * sr:
        raise AudioError(where, f"too short: {1000 * wav.size / sr:.1f} ms, less than {1000 * MIN_SECONDS:.0f} ms")
    peak = float(np.abs(wav).max())
    if peak < SILENCE_PEAK:
        mix = f" after the down-mix of {channels} channels" if channels > 1 else ""
        raise AudioError(where, f"all-silent audio (peak {peak:.2g}{mix}, below one 16-bit step)")
    return wav.astype(np.float32, copy=False), sr


def resample(wav: np.ndarray, source_sr: int, target_sr: int) -> np.ndarray:
    if source_sr == target_sr:
        return wav
    import soxr

    return soxr.resample(wav, source_sr, target_sr).astype(np.float32, copy=False)


class DecodedAudio:
    """One decoded file, with its resamplings cached so several extractors at one rate share them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.wav, self.sample_rate = load_audio(self.path)
        self._cache: dict[int, np.ndarray] = {self.sample_rate: self.wav}

    @classmethod
    def from_samples(cls, samples, sample_rate: int, name: str = "<samples>") -> "DecodedAudio":
        """Audio already in memory, checked as a decoded file is (:func:`check_samples`); ``name`` stands for its path.

        ``samples``: ``(frames,)`` or ``(frames, channels)`` (what ``soundfile.read`` returns; channels are averaged),
        floats in [-1, 1] or integer PCM (scaled to [-1, 1]).
        """
        wav = np.asarray(samples)
        if wav.dtype.kind in "iu":  # integer PCM, as scipy.io.wavfile.read returns it
            info = np.iinfo(wav.dtype)
            wav = (wav.astype(np.float64) - (info.max + 1 + info.min) / 2) / ((info.max - info.min + 1) / 2)
        elif wav.dtype.kind != "f":
            raise AudioError(name, f"samples of type {wav.dtype} (expected floats or integer PCM)")
        channels = 1
        if wav.ndim == 2:
            if wav.shape[0] < wav.shape[1]:
                raise AudioError(name, f"samples of shape {wav.shape}: expected (frames, channels), as soundfile.read "
                                       "returns them (transpose a (channels, frames) array)")
            channels = wav.shape[1]
            wav = wav.mean(axis=1, dtype=np.float64)
        elif wav.ndim != 1:
            raise AudioError(name, f"samples of shape {wav.shape}: expected (frames,) or (frames, channels)")
        self = cls.__new__(cls)
        self.path = Path(name)
        self.wav, self.sample_rate = check_samples(name, wav, sample_rate, channels)
        self._cache = {self.sample_rate: self.wav}
        return self

    @property
    def seconds(self) -> float:
        return len(self.wav) / self.sample_rate

    def at(self, sample_rate: int, min_seconds: float = 0.0) -> np.ndarray:
        """The waveform at ``sample_rate``, zero-padded at the end to ``min_seconds`` if shorter."""
        if sample_rate not in self._cache:
            self._cache[sample_rate] = resample(self.wav, self.sample_rate, sample_rate)
        wav = self._cache[sample_rate]
        need = int(np.ceil(min_seconds * sample_rate))
        if len(wav) < need:
            wav = np.pad(wav, (0, need - len(wav)))
        return wav
