"""MFCC sequences with librosa: the paper's 2-D MFCC feature."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import FeatureExtractor


class MfccExtractor(FeatureExtractor):
    """(frames, 40) MFCCs at 16 kHz, 25 ms Hann window (n_fft 512), 10 ms hop. No deltas: the CNN sees context."""

    name: ClassVar[str] = "mfcc"
    kind: ClassVar[str] = "sequence"
    sample_rate: ClassVar[int] = 16000
    min_seconds: ClassVar[float] = 0.05
    n_mfcc: ClassVar[int] = 40
    win_length: ClassVar[int] = 400
    hop_length: ClassVar[int] = 160
    n_fft: ClassVar[int] = 512

    def load(self) -> None:
        import librosa  # noqa: F401  (import once per worker, not per file)

    @property
    def dim(self) -> int:
        return self.n_mfcc

    def extract(self, wav: np.ndarray) -> np.ndarray:
        import librosa

        m = librosa.feature.mfcc(y=wav, sr=self.sample_rate, n_mfcc=self.n_mfcc, n_fft=self.n_fft,
                                 win_length=self.win_length, hop_length=self.hop_length)
        return m.T.astype(np.float32)

    def provenance(self) -> dict:
        import librosa

        return {**super().provenance(), "hop_seconds": self.hop_length / self.sample_rate,
                "window_seconds": self.win_length / self.sample_rate, "n_mfcc": self.n_mfcc,
                "n_fft": self.n_fft, "version": f"librosa {librosa.__version__}"}
