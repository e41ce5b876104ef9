"""What every extractor with downloaded weights shares, in one place.

A :class:`PretrainedExtractor` names its :class:`~._weights.WeightsSpec` (which field of its configuration holds
the weights' path); the base class then provides ``check_available`` (the configured path exists, else a :class:`MissingWeightsError` saying how to provide it),
``dim`` (set by ``load``), and the provenance entries every pretrained feature carries: the SHA-256 of the weights
(predict's mismatch rule compares it) and the path they were read from (informational: moving weights is fine).
Subclasses call :meth:`PretrainedExtractor.loaded` at the end of ``load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from ._weights import WeightsSpec, require_weights
from .base import ExtractorSettings, FeatureExtractor, file_sha256
from .registry import config_settings


class PretrainedExtractor(FeatureExtractor):
    """Base of the extractors whose weights the user downloads (wav2vec, allosaurus, byol, the Hugging Face encoders)."""

    #: Which configuration field holds the weights (subclasses that resolve them otherwise override ``weights_path``).
    weights: ClassVar[WeightsSpec]
    #: True when the weights are a folder (allosaurus), False for a single file.
    weights_are_folder: ClassVar[bool] = False

    def __init__(self, settings: ExtractorSettings):
        super().__init__(settings)
        self.output_dim = 0
        self.checkpoint_sha256 = ""
        self.checkpoint_path: Path | None = None

    @classmethod
    def weights_path(cls, settings: ExtractorSettings) -> Path:
        """The configured weights, or :class:`MissingWeightsError` telling the user how to provide them."""
        config = cls.configure(settings)
        how = config_settings(cls.config_class)[cls.weights.field]
        return require_weights(cls.name, getattr(config, cls.weights.field), how, cls.weights,
                               directory=cls.weights_are_folder)

    @classmethod
    def check_available(cls, settings: ExtractorSettings) -> None:
        cls.weights_path(settings)

    def loaded(self, path: Path, dim: int, sha256: str | None = None) -> None:
        """Record what ``load`` read: the weights' path and hash (computed here unless given) and the output size."""
        self.checkpoint_path = Path(path)
        self.checkpoint_sha256 = sha256 if sha256 is not None else file_sha256(path)
        self.output_dim = int(dim)

    @property
    def dim(self) -> int:
        return self.output_dim

    def provenance(self) -> dict:
        return {**super().provenance(), "checkpoint_sha256": self.checkpoint_sha256,
                "checkpoint": str(self.checkpoint_path or "")}
