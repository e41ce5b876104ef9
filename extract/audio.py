"""Audio loading: decode once, down-mix to mono, resample per model rate.

Every extractor of a run sees the same decoded waveform; only the resampling differs per model rate.

:func:`load_audio` refuses, with an :class:`AudioError` naming the file and the problem, everything that
would otherwise give features without meaning: a missing, empty or undecodable file (also a non-audio file
named ``.wav``), a WAV whose data chunk is cut short (an interrupted copy: libsndfile would silently decode
the part that is there), a sample rate outside :data:`SAMPLE_RATE_RANGE`, no samples, NaN or infinite
samples, a clip shorter than :data:`MIN_SECONDS`, and digital silence (after the down-mix, every sample
below one 16-bit step: its features would be the same for every label). Any PCM width (8/16/24/32-bit
integer, 32/64-bit float), any channel count and any rate in the range is decoded.
"""

from __future__ import annotations

import struct
from pathlib import Path

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


def _wav_truncation(path: Path) -> str | None:
    """For a RIFF/WAVE file, a description of how its data chunk is cut short, else None.

    libsndfile decodes the frames that are present without complaint, so a file cut by an interrupted
    copy would otherwise give features of a partial utterance. Sizes 0 and 0xFFFFFFFF (streaming
    writers that never patched the header) mean "unknown" and are not checked.
    """
    try:
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = path.stat().st_size
            pos = 12
            block_align = 0
            while pos + 8 <= size:
                f.seek(pos)
                chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
                if chunk_id == b"fmt " and chunk_size >= 16:
                    block_align = struct.unpack("<H", f.read(16)[12:14])[0]
                if chunk_id == b"data":
                    available = size - pos - 8
                    if chunk_size in (0, 0xFFFFFFFF) or available >= chunk_size - 1:  # 1: a missing pad byte
                        return None
                    if block_align:
                        return (f"truncated WAV: the header announces {chunk_size // block_align} frames, "
                                f"the file holds {available // block_align}")
                    return f"truncated WAV: the header announces {chunk_size} data bytes, the file holds {available}"
                pos += 8 + chunk_size + (chunk_size & 1)
    except (OSError, struct.error):
        return None  # unreadable headers are reported by the decoder below
    return None


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
    truncated = _wav_truncation(path)
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
    sr = int(sr)
    if not SAMPLE_RATE_RANGE[0] <= sr <= SAMPLE_RATE_RANGE[1]:
        raise AudioError(path, f"sample rate {sr} Hz outside {SAMPLE_RATE_RANGE[0]}-{SAMPLE_RATE_RANGE[1]} Hz (corrupt header?)")
    if wav.size == 0:
        raise AudioError(path, "zero-length audio")
    if not np.all(np.isfinite(wav)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    if wav.size < MIN_SECONDS * sr:
        raise AudioError(path, f"too short: {1000 * wav.size / sr:.1f} ms, less than {1000 * MIN_SECONDS:.0f} ms")
    peak = float(np.abs(wav).max())
    if peak < SILENCE_PEAK:
        mix = f" after the down-mix of {channels} channels" if channels > 1 else ""
        raise AudioError(path, f"all-silent audio (peak {peak:.2g}{mix}, below one 16-bit step)")
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
