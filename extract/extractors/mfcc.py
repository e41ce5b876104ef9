"""MFCC sequences with librosa: the paper's 2-D MFCC feature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .base import FeatureExtractor
from .registry import register


@dataclass(frozen=True)
class MfccConfig:
    """40 MFCCs, 25 ms Hann window (n_fft 512), 10 ms hop at 16 kHz."""

    n_mfcc: int = 40
    win_length: int = 400
    hop_length: int = 160
    n_fft: int = 512


@register("mfcc", needs="nothing more (librosa)", config=MfccConfig, default=True, rank=10)
class MfccExtractor(FeatureExtractor):
    """(frames, 40) MFCCs at 16 kHz, 25 ms Hann window (n_fft 512), 10 ms hop. No deltas: the CNN sees context."""

    kind: ClassVar[str] = "sequence"
    sample_rate: ClassVar[int] = 16000
    min_seconds: ClassVar[float] = 0.05
    config: MfccConfig

    def load(self) -> None:
        import librosa  # noqa: F401  (import once per worker, not per file)

    @property
    def dim(self) -> int:
        return self.config.n_mfcc

    def extract(self, wav: np.ndarray) -> np.ndarray:
        import librosa

        c = self.config
        m = librosa.feature.mfcc(y=wav, sr=self.sample_rate, n_mfcc=c.n_mfcc, n_fft=c.n_fft,
                                 win_length=c.win_length, hop_length=c.hop_length)
        return m.T.astype(np.float32)

    def provenance(self) -> dict:
        import librosa

        c = self.config
        return {**super().provenance(), "hop_seconds": c.hop_length / self.sample_rate,
                "window_seconds": c.win_length / self.sample_rate, "n_mfcc": c.n_mfcc,
                "n_fft": c.n_fft, "version": f"librosa {librosa.__version__}"}
