"""The one interface every feature extractor implements.

An extractor is built from :class:`ExtractorSettings` on a worker, loads its model once
(:meth:`FeatureExtractor.load`), then maps decoded mono audio at its own ``sample_rate`` to either a
(frames, dim) sequence or a (dim,) utterance embedding. Its :meth:`provenance` goes into the store,
so features from different weights or settings are never mixed.
"""

from __future__ import annotations

import abc
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from sercore.store import FeatureKind


class MissingWeightsError(Exception):
    """The extractor's pretrained weights are not available here; the message says how to provide them."""


@dataclass
class ExtractorSettings:
    """Where each extractor finds its weights, and where it runs.

    Each path may also come from an environment variable (``MGSER_WAV2VEC_CHECKPOINT``,
    ``MGSER_ALLOSAURUS_MODEL``, ``MGSER_BYOL_CHECKPOINT``); see :meth:`from_env`.
    """

    device: str = "cpu"
    wav2vec_checkpoint: Path | None = None
    wav2vec_layer: int | None = None  # wav2vec 2.0 / HuBERT only: which transformer layer to keep
    allosaurus_model: Path | None = None
    byol_checkpoint: Path | None = None
    extra: dict = field(default_factory=dict)

    ENV: ClassVar[dict[str, str]] = {
        "wav2vec_checkpoint": "MGSER_WAV2VEC_CHECKPOINT",
        "allosaurus_model": "MGSER_ALLOSAURUS_MODEL",
        "byol_checkpoint": "MGSER_BYOL_CHECKPOINT",
    }

    def with_env_defaults(self) -> "ExtractorSettings":
        """Fill unset paths from the environment variables named in ``ENV``."""
        for attr, var in self.ENV.items():
            if getattr(self, attr) is None and os.environ.get(var):
                setattr(self, attr, Path(os.environ[var]))
        return self


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hash of a checkpoint file (or of every file below a model directory, in path order)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with p.open("rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


class FeatureExtractor(abc.ABC):
    """Base class. Subclasses set the class variables and implement ``load`` and ``extract``."""

    name: ClassVar[str]
    kind: ClassVar[FeatureKind]
    sample_rate: ClassVar[int]
    #: Shortest input (seconds) the model accepts; shorter audio is zero-padded up to it by the pipeline.
    min_seconds: ClassVar[float] = 0.0

    def __init__(self, settings: ExtractorSettings):
        self.settings = settings

    @classmethod
    def check_available(cls, settings: ExtractorSettings) -> None:
        """Raise :class:`MissingWeightsError` (saying how to get the weights) if this extractor cannot run."""

    @abc.abstractmethod
    def load(self) -> None:
        """Load the model; called once per worker before the first ``extract``."""

    @abc.abstractmethod
    def extract(self, wav: np.ndarray) -> np.ndarray:
        """(samples,) float32 mono at ``sample_rate`` -> (frames, dim) or (dim,) float32."""

    def extract_batch(self, wavs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Override where the model gains from batching; the default loops."""
        return [self.extract(w) for w in wavs]

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Feature dimension (known after ``load``)."""

    def provenance(self) -> dict:
        """Attributes stored with the feature. Subclasses extend it (checkpoint hash, hop, library versions)."""
        return {
            "kind": self.kind,
            "dim": self.dim,
            "extractor": self.name,
            "sample_rate": self.sample_rate,
            "hop_seconds": 0.0,
            "checkpoint_sha256": "",
        }
