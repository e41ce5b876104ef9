"""Check the ``byol`` extractor against an independent computation of the published BYOL-A recipe.

    python bench/byol_check.py --checkpoint ../shared/weights/byol-a/AudioNTT2020-BYOLA-64x96d512.pth \\
        ../shared/corpora/emodb/wav/03a01Fa.wav

The independent side shares no code with ``extract/extractors/byol.py`` / ``_byol_net.py``; it follows the BYOL-A
repository (nttcslab/byol-a: ``config.yaml``, ``byol_a/models.py``, the README's feature-extraction example):

* front end, in NumPy only: reflect-padded frames of 1024 samples every 160 (torchaudio's ``center=True``), a
  periodic Hann window, power spectrum, a 64-band HTK mel filter bank of 60-7800 Hz built from its formula
  (``2595 log10(1 + f / 700)``, unnormalised triangles, as torchaudio's ``melscale_fbanks``), ``log(mel + eps)``
  with eps = float32 epsilon, standardised with the README's statistics (-5.4919195, 5.0389895);
* network, with ``torch.nn.functional`` straight from the checkpoint's tensors: three times conv 3x3 (padding 1)
  -> batch norm with the running statistics -> ReLU -> 2x2 max pooling; then each time step's (mel, channel)
  values flattened mel-major (``permute(0, 3, 2, 1)`` then reshape, as in ``AudioNTT2020Task6.forward``), the
  two-layer MLP with ReLUs (dropout is inactive at inference), and max + mean over time.

It prints both embeddings' sizes, the largest absolute difference, the relative difference and the cosine.
Exit status 1 if the relative difference exceeds ``--tolerance``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


EPS = float(np.finfo(np.float32).eps)
NORM = (-5.4919195, 5.0389895)


def htk_mel_filterbank(sr: int = 16000, n_fft: int = 1024, n_mels: int = 64, f_min: float = 60.0,
                       f_max: float = 7800.0) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangles on the HTK mel scale, without area normalisation."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    points = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, centre, hi = points[i], points[i + 1], points[i + 2]
        fb[i] = np.maximum(0.0, np.minimum((freqs - lo) / (centre - lo), (hi - freqs) / (hi - centre)))
    return fb


def log_mel(wav: np.ndarray, n_fft: int = 1024, hop: int = 160) -> np.ndarray:
    """(samples,) 16 kHz -> (64, frames) standardised log-mel."""
    x = np.pad(wav.astype(np.float64), n_fft // 2, mode="reflect")
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = np.stack([x[i * hop:i * hop + n_fft] for i in range(n_frames)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (frames, n_fft/2 + 1)
    mel = htk_mel_filterbank() @ power.T
    return ((np.log(mel + EPS) - NORM[0]) / NORM[1]).astype(np.float32)


def byol_a_embedding(state: dict, lms: np.ndarray) -> np.ndarray:
    """The AudioNTT2020 forward pass written with torch.nn.functional on the checkpoint's tensors."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(lms)[None, None]  # (1, 1, mels, frames)
    for conv, bn in ((0, 1), (4, 5), (8, 9)):
        x = F.conv2d(x, state[f"features.{conv}.weight"], state[f"features.{conv}.bias"], padding=1)
        x = F.batch_norm(x, state[f"features.{bn}.running_mean"], state[f"features.{bn}.running_var"],
                         state[f"features.{bn}.weight"], state[f"features.{bn}.bias"], training=False, eps=1e-5)
        x = F.max_pool2d(F.relu(x), 2, stride=2)
    x = x.permute(0, 3, 2, 1)  # (batch, time, mel, channel)
    b, t, d, c = x.shape
    x = x.reshape(b, t, c * d)
    x = F.relu(F.linear(x, state["fc.0.weight"], state["fc.0.bias"]))
    x = F.relu(F.linear(x, state["fc.3.weight"], state["fc.3.bias"]))
    return (x.max(dim=1).values + x.mean(dim=1))[0].numpy()


def main(argv=None) -> int:
    import soundfile as sf
    import torch

    from extract.audio import DecodedAudio
    from extract.extractors import ExtractorSettings, extractor_class

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wav", type=Path, nargs="+", help="16 kHz audio files")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted relative difference")
    args = p.parse_args(argv)
    settings = ExtractorSettings(byol_checkpoint=args.checkpoint)
    ex = extractor_class("byol")(settings)
    ex.load()
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    worst = 0.0
    for path in args.wav:
        raw, sr = sf.read(path, dtype="float32")
        if sr != 16000 or raw.ndim != 1:
            raise SystemExit(f"error: {path}: the check needs mono 16 kHz audio (got {sr} Hz, {raw.ndim} channel axes)")
        ours = ex.extract(DecodedAudio(path).at(ex.sample_rate, ex.min_seconds))
        ref = byol_a_embedding(state, log_mel(raw))
        diff = float(np.abs(ours - ref).max())
        rel = diff / float(np.abs(ref).max())
        cos = float(ours @ ref / (np.linalg.norm(ours) * np.linalg.norm(ref)))
        worst = max(worst, rel)
        print(f"{path.name}: {len(raw) / sr:.2f} s, embedding {ours.shape} vs {ref.shape}; max |diff| {diff:.3g} "
              f"(relative {rel:.3g}), cosine {cos:.8f}, |ref| max {np.abs(ref).max():.3f}, sha256 {ex.provenance()['checkpoint_sha256'][:16]}")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
