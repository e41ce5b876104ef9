"""GE2E speaker-encoder features (Wan et al. 2018) from resemblyzer's pretrained VoiceEncoder.

The weights ship inside the resemblyzer wheel (``resemblyzer/pretrained.pt``), so they load offline.
Two features come from it: ``ge2e``, the 256-d utterance embedding, and ``ge2e_mel``, the 40-channel
mel frames the encoder consumes, which the trainer needs to fine-tune the encoder (paper: lr x 0.01).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np

from .base import FeatureExtractor, file_sha256


@functools.cache
def _resemblyzer():
    """The resemblyzer package, imported without the deprecation warning of ``pkg_resources`` that its
    webrtcvad import prints (setuptools<81 is pinned so that it still works; nothing for the user to do)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        import resemblyzer
        import resemblyzer.audio  # imports webrtcvad
    return resemblyzer


def _pretrained_path() -> Path:
    resemblyzer = _resemblyzer()
    return Path(resemblyzer.__file__).parent / "pretrained.pt"


class _ResemblyzerBase(FeatureExtractor):
    sample_rate: ClassVar[int] = 16000
    min_seconds: ClassVar[float] = 0.2

    def _prepare(self, wav: np.ndarray) -> np.ndarray:
        # resemblyzer's own preprocessing: loudness normalisation and VAD-trimmed silences.
        out = _resemblyzer().preprocess_wav(wav, source_sr=self.sample_rate)
        if len(out) < int(self.min_seconds * self.sample_rate):
            out = wav  # VAD removed (nearly) everything: keep the raw clip rather than nothing
        return out

    def provenance(self) -> dict:
        resemblyzer = _resemblyzer()
        return {**super().provenance(), "hop_seconds": 0.01, "checkpoint_sha256": file_sha256(_pretrained_path()),
                "version": f"resemblyzer {getattr(resemblyzer, '__version__', '0.1.4')}"}


class Ge2eExtractor(_ResemblyzerBase):
    """(256,) L2-normalised GE2E utterance embedding (mean of partial-utterance embeddings)."""

    name: ClassVar[str] = "ge2e"
    kind: ClassVar[str] = "embedding"

    def load(self) -> None:
        self.encoder = _resemblyzer().VoiceEncoder(device=self.settings.device, verbose=False)

    @property
    def dim(self) -> int:
        return 256

    def extract(self, wav: np.ndarray) -> np.ndarray:
        return self.encoder.embed_utterance(self._prepare(wav)).astype(np.float32)


class Ge2eMelExtractor(_ResemblyzerBase):
    """(frames, 40) mel frames (25 ms window, 10 ms hop) exactly as the VoiceEncoder consumes them."""

    name: ClassVar[str] = "ge2e_mel"
    kind: ClassVar[str] = "sequence"
    input_of: ClassVar[str] = "ge2e"  # what the fine-tuned VoiceEncoder computes the ge2e embedding from

    def load(self) -> None:
        _resemblyzer()

    @property
    def dim(self) -> int:
        return 40

    def extract(self, wav: np.ndarray) -> np.ndarray:
        return _resemblyzer().audio.wav_to_mel_spectrogram(self._prepare(wav)).astype(np.float32)
