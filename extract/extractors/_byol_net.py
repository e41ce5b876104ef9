"""The BYOL-A encoder network, AudioNTT2020 (Niizumi et al. 2021), and its log-mel front end.

Module and parameter names follow the published checkpoints (``features.<i>.*``, ``fc.<i>.*``) so that
``AudioNTT2020-BYOLA-64x96d{512,1024,2048}.pth`` load with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=1, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2, stride=2)]


class AudioNTT2020(nn.Module):
    """Log-mel ``(batch, 1, n_mels, frames)`` -> utterance embedding ``(batch, d)``.

    Three conv blocks halve both axes three times; each remaining time step's ``64 * n_mels/8`` values go
    through a two-layer MLP to ``d``; the embedding is max + mean of that sequence over time.
    """

    channels = 64

    def __init__(self, n_mels: int = 64, d: int = 512):
        super().__init__()
        if n_mels % 8:
            raise ValueError(f"n_mels must be a multiple of 8 (three 2x poolings), got {n_mels}")
        self.n_mels = n_mels
        self.d = d
        self.features = nn.Sequential(*_conv_block(1, self.channels), *_conv_block(self.channels, self.channels),
                                      *_conv_block(self.channels, self.channels))
        self.fc = nn.Sequential(
            nn.Linear(self.channels * (n_mels // 8), d), nn.ReLU(), nn.Dropout(p=0.3), nn.Linear(d, d), nn.ReLU()
        )

    def frame_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, n_mels, frames)`` -> ``(batch, frames // 8, d)``."""
        x = self.features(x)  # (batch, channels, n_mels/8, frames/8)
        batch, channels, mels, frames = x.shape
        x = x.permute(0, 3, 2, 1).reshape(batch, frames, mels * channels)  # mel-major, channel-minor, as trained
        return self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.frame_embeddings(x)
        return x.max(dim=1).values + x.mean(dim=1)


@dataclass(frozen=True)
class LogMelConfig:
    """BYOL-A's front end (its config.yaml): 16 kHz, 1024-point FFT and window, 10 ms hop, 64 bands 60-7800 Hz.

    ``norm_mean`` / ``norm_std`` standardise the log-mel before the encoder. BYOL-A computes them on the
    downstream data; the defaults are the values its README ships for its example (``[-5.4919195, 5.0389895]``).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 60.0
    f_max: float = 7800.0
    norm_mean: float = -5.4919195
    norm_std: float = 5.0389895


class LogMel(nn.Module):
    """Waveform ``(batch, samples)`` -> normalised log-mel ``(batch, 1, n_mels, frames)``.

    The same transform as torchaudio's ``MelSpectrogram`` defaults used by BYOL-A (periodic Hann window,
    centred frames with reflect padding, power 2, HTK mel scale, unnormalised triangles), then
    ``log(mel + eps)`` and standardisation. Written with torch.stft + librosa's filter bank because
    torchaudio's extension does not load with the pinned torch.
    """

    def __init__(self, config: LogMelConfig = LogMelConfig()):
        super().__init__()
        import librosa

        self.config = config
        fb = librosa.filters.mel(sr=config.sample_rate, n_fft=config.n_fft, n_mels=config.n_mels,
                                 fmin=config.f_min, fmax=config.f_max, htk=True, norm=None)
        self.register_buffer("mel_fb", torch.from_numpy(np.asarray(fb, dtype=np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(config.win_length, periodic=True), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.config
        spec = torch.stft(wav, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length, window=self.window,
                          center=True, pad_mode="reflect", return_complex=True)
        power = spec.abs().pow(2)  # (batch, n_fft/2 + 1, frames)
        mel = torch.matmul(self.mel_fb, power)
        log_mel = torch.log(mel + torch.finfo(torch.float32).eps)
        return ((log_mel - c.norm_mean) / c.norm_std).unsqueeze(1)
