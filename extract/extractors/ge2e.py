"""GE2E speaker-encoder features (Wan et al. 2018) from resemblyzer's pretrained VoiceEncoder.

The weights ship inside the resemblyzer wheel (``resemblyzer/pretrained.pt``), so they load offline.
Two features come from it: ``ge2e``, the 256-d utterance embedding, and ``ge2e_mel``, the 40-channel
mel frames the encoder consumes, which the trainer needs to fine-tune the encoder (paper: lr x 0.01).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .base import FeatureExtractor, file_sha256
from .registry import register


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


@dataclass(frozen=True)
class Ge2eConfig:
    """resemblyzer's VoiceEncoder: its embedding size, mel channels and frame hop (fixed by its shipped weights)."""

    embedding_dim: int = 256
    mel_channels: int = 40
    hop_seconds: float = 0.01


class _ResemblyzerBase(FeatureExtractor):
    sample_rate: ClassVar[int] = 16000
    min_seconds: ClassVar[float] = 0.2
    config: Ge2eConfig

    def _prepare(self, wav: np.ndarray) -> np.ndarray:
        # resemblyzer's own preprocessing: loudness normalisation and VAD-trimmed silences.
        out = _resemblyzer().preprocess_wav(wav, source_sr=self.sample_rate)
        if len(out) < int(self.min_seconds * self.sample_rate):
            out = wav  # VAD removed (nearly) everything: keep the raw clip rather than nothing
        return out

    def provenance(self) -> dict:
        resemblyzer = _resemblyzer()
        return {**super().provenance(), "hop_seconds": self.config.hop_seconds, "checkpoint_sha256": file_sha256(_pretrained_path()),
                "version": f"resemblyzer {getattr(resemblyzer, '__version__', '0.1.4')}"}


@register("ge2e", needs="nothing more (resemblyzer ships its weights)", config=Ge2eConfig, default=True, rank=40)
class Ge2eExtractor(_ResemblyzerBase):
    """(256,) L2-normalised GE2E utterance embedding (mean of partial-utterance embeddings)."""

    kind: ClassVar[str] = "embedding"

    def load(self) -> None:
        self.encoder = _resemblyzer().VoiceEncoder(device=self.settings.device, verbose=False)

    @property
    def dim(self) -> int:
        return self.config.embedding_dim

    def extract(self, wav: np.ndarray) -> np.ndarray:
        return self.encoder.embed_utterance(self._prepare(wav)).astype(np.float32)


@register("ge2e_mel", needs="nothing more (GE2E's mel frames, for --finetune-ge2e)", config=Ge2eConfig, default=True,
          rank=60)
class Ge2eMelExtractor(_ResemblyzerBase):
    """(frames, 40) mel frames (25 ms window, 10 ms hop) exactly as the VoiceEncoder consumes them."""

    kind: ClassVar[str] = "sequence"
    input_of: ClassVar[str] = "ge2e"  # what the fine-tuned VoiceEncoder computes the ge2e embedding from

    def load(self) -> None:
        _resemblyzer()

    @property
    def dim(self) -> int:
        return self.config.mel_channels

    def extract(self, wav: np.ndarray) -> np.ndarray:
        return _resemblyzer().audio.wav_to_mel_spectrogram(self._prepare(wav)).astype(np.float32)
