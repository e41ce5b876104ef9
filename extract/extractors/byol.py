"""BYOL-A utterance embeddings (Niizumi et al. 2021): the AudioNTT2020 encoder on a 64-band log-mel.

The checkpoint is a published BYOL-A weight file, ``AudioNTT2020-BYOLA-64x96d{512,1024,2048}.pth``: a plain
state dict with keys ``features.<i>.*`` and ``fc.<i>.*``. Checkpoints saved by other trainers (BYOL-S,
Lightning) wrap it in ``{"state_dict": ...}`` and/or prefix the keys (``module.``, ``model.``,
``model.encoder.``); those are accepted as long as exactly one encoder is inside. The embedding size ``d``
and the number of mel bands are read from the weights; the weights load with ``strict=True``.

Front end per BYOL-A: 16 kHz, 1024-sample window and FFT, 160-sample hop, 64 bands 60-7800 Hz,
``log(mel + eps)``, standardised with fixed statistics (:class:`~._byol_net.LogMelConfig`; override them with
``settings.extra["byol_norm_stats"] = (mean, std)``, :attr:`ByolConfig.norm_stats`). The whole utterance goes through the encoder at once;
the embedding is max + mean over time of the per-frame embeddings, as in BYOL-A.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ._weights import CheckpointError, WeightsSpec, library_version, load_torch_checkpoint
from .base import ExtractorSettings
from .pretrained import PretrainedExtractor
from .registry import extra, register, setting

WEIGHTS = WeightsSpec(
    field="checkpoint",
    expected="a BYOL-A encoder checkpoint such as AudioNTT2020-BYOLA-64x96d2048.pth",
    source="https://github.com/nttcslab/byol-a/tree/master/pretrained_weights",
)
_EXPECTED = "an AudioNTT2020 (BYOL-A) state dict with keys features.0.weight ... fc.3.bias"
# Where an encoder's own keys start inside a longer, prefixed key.
_ENCODER_KEY = re.compile(r"(?:^|\.)((?:features|fc)\.\d+\.\w+)$")


def encoder_state_dict(path, state) -> dict:
    """The AudioNTT2020 keys of a checkpoint, with any wrapper and prefix removed."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(path, f"holds a {type(state).__name__}, not a state dict; expected {_EXPECTED}")
    by_prefix: dict[str, dict] = defaultdict(dict)
    for key, value in state.items():
        match = _ENCODER_KEY.search(str(key))
        if match and hasattr(value, "shape"):
            by_prefix[key[: match.start(1)]][match.group(1)] = value
    if not by_prefix:
        raise CheckpointError(path, f"no features.* / fc.* keys (it is not a BYOL-A encoder); expected {_EXPECTED}")
    if len(by_prefix) > 1:
        prefixes = ", ".join(repr(p) for p in sorted(by_prefix))
        raise CheckpointError(path, f"holds several encoders (key prefixes {prefixes}); save the one to use as a plain state dict")
    return next(iter(by_prefix.values()))


@dataclass(frozen=True)
class ByolConfig:
    """The BYOL-A checkpoint and, optionally, the log-mel standardisation statistics ``(mean, std)`` (None: BYOL-A's)."""

    checkpoint: Path | None = setting("byol_checkpoint", option="--byol-checkpoint", help="BYOL-A checkpoint",
                                      env="MGSER_BYOL_CHECKPOINT")
    norm_stats: tuple[float, float] | None = extra("byol_norm_stats")


@register("byol", needs="a BYOL-A checkpoint (--byol-checkpoint)", config=ByolConfig, default=True, rank=50)
class ByolExtractor(PretrainedExtractor):
    """(d,) BYOL-A embedding per utterance; d = 512, 1024 or 2048 for the published weights."""

    kind: ClassVar = "embedding"
    weights: ClassVar[WeightsSpec] = WEIGHTS
    sample_rate: ClassVar[int] = 16000
    # Three 2x poolings need 8 frames (70 ms); the reflect padding of the STFT needs more than 512 samples.
    min_seconds: ClassVar[float] = 0.1

    def __init__(self, settings: ExtractorSettings):
        super().__init__(settings)
        self._net = None
        self._front = None

    def load(self) -> None:
        from ._byol_net import AudioNTT2020, LogMel, LogMelConfig

        path = self.weights_path(self.settings)
        weights = encoder_state_dict(path, load_torch_checkpoint(path, _EXPECTED))
        fc0 = weights.get("fc.0.weight")
        if fc0 is None or fc0.ndim != 2 or fc0.shape[1] % AudioNTT2020.channels:
            raise CheckpointError(path, f"no usable fc.0.weight (the first projection); expected {_EXPECTED}")
        d, n_mels = int(fc0.shape[0]), int(fc0.shape[1]) // AudioNTT2020.channels * 8
        net = AudioNTT2020(n_mels=n_mels, d=d)
        try:
            net.load_state_dict(weights, strict=True)
        except RuntimeError as exc:
            detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[:3])[:600]
            raise CheckpointError(path, f"weights do not match AudioNTT2020(n_mels={n_mels}, d={d}): {detail}") from None
        stats = self.config.norm_stats
        config = LogMelConfig(n_mels=n_mels)
        if stats is not None:
            mean, std = (float(v) for v in stats)
            config = LogMelConfig(n_mels=n_mels, norm_mean=mean, norm_std=std)
        self._net = net.eval().to(self.settings.device)
        self._front = LogMel(config).to(self.settings.device)
        self.loaded(path, net.d)

    def extract(self, wav: np.ndarray) -> np.ndarray:
        import torch

        if self._net is None:
            raise RuntimeError("ByolExtractor.extract called before load()")
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))[None].to(self.settings.device)
        with torch.inference_mode():
            embedding = self._net(self._front(x))[0]
        return embedding.float().cpu().numpy()

    def provenance(self) -> dict:
        c = self._front.config if self._front is not None else None
        return {
            **super().provenance(),
            "hop_seconds": 0.0,
            "output": "AudioNTT2020 embedding, max + mean over time",
            "n_mels": c.n_mels if c else 0,
            "frontend": "log-mel 16 kHz, n_fft 1024, hop 160, 60-7800 Hz, HTK mel, log(mel + eps)",
            "norm_mean": c.norm_mean if c else 0.0,
            "norm_std": c.norm_std if c else 0.0,
            "library_versions": {"torch": library_version("torch"), "librosa": library_version("librosa")},
        }
