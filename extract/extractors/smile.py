"""openSMILE's standard feature sets (Eyben et al.) through audEERING's ``opensmile`` Python package.

Three features:

* ``egemaps``: eGeMAPSv02 functionals, one 88-d vector per utterance (the Geneva minimalistic acoustic
  parameter set, extended; Eyben et al. 2016);
* ``egemaps_lld``: eGeMAPSv02 low-level descriptors, a (frames, 25) sequence every 10 ms (20 ms / 60 ms
  windows), for the sequence encoder;
* ``compare``: ComParE_2016 functionals, one 6,373-d vector (the INTERSPEECH Computational Paralinguistics
  Challenge set).

No weights: the configurations ship inside the package. The ``opensmile`` package is an optional extra
(``pip install -e '.[opensmile]'``) because its licence, audEERING's research licence, allows research and
education only (docs/features.md). It is imported only when one of these extractors loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._weights import library_version
from .base import ExtractorSettings, FeatureExtractor
from .registry import register


@dataclass(frozen=True)
class SmileConfig:
    """One openSMILE set at one level (names of ``opensmile.FeatureSet`` / ``FeatureLevel``) and its size."""

    feature_set: str
    feature_level: str
    size: int


@dataclass(frozen=True)
class EgemapsConfig(SmileConfig):
    feature_set: str = "eGeMAPSv02"
    feature_level: str = "Functionals"
    size: int = 88


@dataclass(frozen=True)
class EgemapsLldConfig(SmileConfig):
    feature_set: str = "eGeMAPSv02"
    feature_level: str = "LowLevelDescriptors"
    size: int = 25


@dataclass(frozen=True)
class CompareConfig(SmileConfig):
    feature_set: str = "ComParE_2016"
    feature_level: str = "Functionals"
    size: int = 6373


NEEDS = "the opensmile extra"


class SmileExtractor(FeatureExtractor):
    """One openSMILE set at one level; subclasses register with their configuration (set, level and size)."""

    sample_rate: ClassVar[int] = 16000
    #: eGeMAPS's 60 ms pitch window needs a few frames.
    min_seconds: ClassVar[float] = 0.1
    config: SmileConfig

    def __init__(self, settings: ExtractorSettings):
        super().__init__(settings)
        self._smile = None

    @classmethod
    def check_available(cls, settings: ExtractorSettings) -> None:
        import opensmile  # noqa: F401 - ImportError: the feature is reported unavailable, with the reason

    def load(self) -> None:
        import opensmile

        c = self.config
        self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet[c.feature_set],
                                      feature_level=opensmile.FeatureLevel[c.feature_level])
        names = self._smile.feature_names
        if len(names) != c.size:
            raise RuntimeError(f"opensmile {library_version('opensmile')}: {c.feature_set} {c.feature_level} has "
                               f"{len(names)} features, expected {c.size}")

    @property
    def dim(self) -> int:
        return self.config.size

    def extract(self, wav: np.ndarray) -> np.ndarray:
        if self._smile is None:
            raise RuntimeError(f"{type(self).__name__}.extract called before load()")
        frame = self._smile.process_signal(np.asarray(wav, dtype=np.float32), self.sample_rate)
        out = frame.to_numpy(dtype=np.float32)  # (1, dim) functionals or (frames, dim) descriptors
        return out[0] if self.kind == "embedding" else out

    def provenance(self) -> dict:
        return {**super().provenance(), "hop_seconds": 0.01 if self.kind == "sequence" else 0.0,
                "feature_set": self.config.feature_set, "feature_level": self.config.feature_level,
                "version": f"opensmile {library_version('opensmile')}"}


@register("egemaps", needs=NEEDS, config=EgemapsConfig, rank=70)
class EgemapsExtractor(SmileExtractor):
    """(88,) eGeMAPSv02 functionals."""

    kind: ClassVar = "embedding"


@register("egemaps_lld", needs=NEEDS, config=EgemapsLldConfig, rank=71)
class EgemapsLldExtractor(SmileExtractor):
    """(frames, 25) eGeMAPSv02 low-level descriptors, 10 ms hop."""

    kind: ClassVar = "sequence"


@register("compare", needs=NEEDS, config=CompareConfig, rank=72)
class CompareExtractor(SmileExtractor):
    """(6373,) ComParE_2016 functionals."""

    kind: ClassVar = "embedding"
