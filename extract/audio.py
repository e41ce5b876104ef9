"""Audio loading: decode once, down-mix to mono, resample per model rate.

Every extractor of a run sees the same decoded waveform; only the resampling differs per model rate.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from sercore.errors import DataError


class AudioError(DataError):
    """An audio file that cannot be used; the pipeline records it as skipped with this message."""


def load_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """(samples,) float32 mono in [-1, 1] and its native sample rate.

    soundfile decodes WAV/FLAC/OGG (any PCM width, float); other formats go through librosa/audioread.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(path, "audio file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
        wav = wav.mean(axis=1)
    except (sf.LibsndfileError, RuntimeError) as sf_exc:
        try:
            import librosa

            wav, sr = librosa.load(str(path), sr=None, mono=True)
        except Exception:
            raise AudioError(path, f"not decodable audio ({sf_exc})") from None
    if wav.size == 0:
        raise AudioError(path, "zero-length audio")
    if not np.all(np.isfinite(wav)):
        raise AudioError(path, "audio contains NaN or infinite samples")
    return wav.astype(np.float32, copy=False), int(sr)


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
