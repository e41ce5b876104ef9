"""The one interface every feature extractor implements.

An extractor is built from :class:`ExtractorSettings` on a worker, loads its model once
(:meth:`FeatureExtractor.load`), then maps decoded mono audio at its own ``sample_rate`` to either a
(frames, dim) sequence or a (dim,) utterance embedding. Its :meth:`provenance` goes into the store,
so features from different weights or settings are never mixed.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from sercore.fsio import file_sha256  # noqa: F401  (the extractors hash their checkpoints with it)
from sercore.store import FeatureKind


class MissingWeightsError(Exception):
    """The extractor's pretrained weights are not available here; the message says how to provide them."""


@dataclass
class ExtractorSettings:
    """Where each extractor finds its weights, and where it runs.

    Each path may also come from an environment variable (``MGSER_WAV2VEC_CHECKPOINT``,
    ``MGSER_ALLOSAURUS_MODEL``, ``MGSER_BYOL_CHECKPOINT``) or from a weights file named by
    ``MGSER_CONFIG`` (TOML or JSON, same keys as this class); see :meth:`with_env_defaults`.
    Precedence: explicit values (CLI options) > environment variables > the file.
    """

    device: str = "cpu"
    wav2vec_checkpoint: Path | None = None
    wav2vec_layer: int | None = None  # wav2vec 2.0 / HuBERT only: which transformer layer to keep
    allosaurus_model: Path | None = None
    byol_checkpoint: Path | None = None
    extra: dict = field(default_factory=dict)
    #: Hugging Face encoders by the feature name the user chose: name -> {"checkpoint": folder or model id,
    #: "layers": "all" | [indices], "dtype", "max_chunk_seconds", "context_seconds", "batch_seconds"}
    #: (see ``extract/extractors/ssl.py``). A name given here is a feature ``extract --features`` accepts.
    ssl: dict = field(default_factory=dict)

    ENV: ClassVar[dict[str, str]] = {
        "wav2vec_checkpoint": "MGSER_WAV2VEC_CHECKPOINT",
        "allosaurus_model": "MGSER_ALLOSAURUS_MODEL",
        "byol_checkpoint": "MGSER_BYOL_CHECKPOINT",
    }

    CONFIG_ENV: ClassVar[str] = "MGSER_CONFIG"
    _PATHS: ClassVar[tuple[str, ...]] = ("wav2vec_checkpoint", "allosaurus_model", "byol_checkpoint")

    def with_env_defaults(self) -> "ExtractorSettings":
        """Fill unset paths from the environment variables named in ``ENV``, then from the ``MGSER_CONFIG`` file."""
        for attr, var in self.ENV.items():
            if getattr(self, attr) is None and os.environ.get(var):
                setattr(self, attr, Path(os.environ[var]))
        if os.environ.get(self.CONFIG_ENV):
            self.with_file_defaults(os.environ[self.CONFIG_ENV])
        return self

    def with_file_defaults(self, path: str | Path) -> "ExtractorSettings":
        """Fill unset values from a weights file (see :meth:`from_file`); ``extra`` keys are merged likewise."""
        loaded = self.from_file(path)
        for attr in ("wav2vec_checkpoint", "wav2vec_layer", "allosaurus_model", "byol_checkpoint"):
            if getattr(self, attr) is None:
                setattr(self, attr, getattr(loaded, attr))
        self.extra = {**loaded.extra, **self.extra}
        self.ssl = {**loaded.ssl, **self.ssl}
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> "ExtractorSettings":
        """Settings from a TOML (Python 3.11+) or JSON file whose top-level keys are this class's fields::

            wav2vec_checkpoint = "/models/wav2vec_large.pt"
            allosaurus_model = "/models/uni2005"
            byol_checkpoint = "/models/AudioNTT2020-BYOLA-64x96d2048.pth"
            [extra]
            allosaurus_output = "posteriors"
            [ssl.wavlm]                               # a feature named "wavlm"
            checkpoint = "microsoft/wavlm-large"      # a model id in the local Hugging Face cache
            layers = "all"                            # or a list of hidden-state indices, e.g. [0, 6, 12]
            [ssl.xlsr]
            checkpoint = "/models/wav2vec2-xls-r-300m"  # a save_pretrained folder

        Relative paths are taken relative to the file's folder (an ssl checkpoint only if that folder exists;
        otherwise it is a model id).
        """
        import json

        from sercore.errors import DataError

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DataError(path, f"cannot read the weights file ({exc.strerror or exc})") from None
        except UnicodeDecodeError as exc:
            raise DataError(path, f"the weights file is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                                  "write it as UTF-8 TOML or JSON") from None
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import tomllib

                data = tomllib.loads(text)
        except ImportError:
            raise DataError(path, "TOML weights files need Python 3.11+; write it as JSON (.json)") from None
        except ValueError as exc:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
            raise DataError(path, f"not a valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'} file ({exc})") from None
        known = {f.name for f in fields(cls)}  # instance fields only: not the class constants ENV, CONFIG_ENV, _PATHS
        if not isinstance(data, dict):
            raise DataError(path, f"expected a table / object of settings at the top level; expected some of {sorted(known)}")
        if set(data) - known:
            raise DataError(path, f"unknown keys {sorted(set(data) - known)}; expected some of {sorted(known)}")
        values = dict(data)
        for attr in cls._PATHS:
            value = values.get(attr)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip():
                raise DataError(path, f"{attr!r} must be a path written as a non-empty string, got {value!r}")
            p = Path(value).expanduser()
            values[attr] = p if p.is_absolute() else path.parent / p
        layer = values.get("wav2vec_layer")
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int) or layer < 0):
            raise DataError(path, f"'wav2vec_layer' must be a non-negative integer, got {layer!r}")
        if values.get("extra") is not None and not isinstance(values["extra"], dict):
            raise DataError(path, "'extra' must be a table / object")
        ssl = values.get("ssl")
        if ssl is not None:
            if not isinstance(ssl, dict) or not all(isinstance(v, dict) for v in ssl.values()):
                raise DataError(path, "'ssl' must hold one table per feature name, e.g. [ssl.wavlm] checkpoint = ...")
            values["ssl"] = {name: dict(entry) for name, entry in ssl.items()}
            for entry in values["ssl"].values():
                ckpt = entry.get("checkpoint")
                if isinstance(ckpt, str) and ckpt and not Path(ckpt).expanduser().is_absolute():
                    local = path.parent / ckpt
                    if local.is_dir():
                        entry["checkpoint"] = str(local)
                elif isinstance(ckpt, str) and ckpt:
                    entry["checkpoint"] = str(Path(ckpt).expanduser())
        return cls(**values)




class FeatureExtractor(abc.ABC):
    """Base class. Subclasses set the class variables and implement ``load`` and ``extract``."""

    name: ClassVar[str]
    kind: ClassVar[FeatureKind]
    sample_rate: ClassVar[int]
    #: Shortest input (seconds) the model accepts; shorter audio is zero-padded up to it by the pipeline.
    min_seconds: ClassVar[float] = 0.0
    #: The feature's role, recorded in its provenance as ``input_of``: the name of the feature whose module
    #: consumes this one when that module is fine-tuned (``ge2e_mel`` -> ``ge2e``), so the trainer never uses it
    #: as a feature of its own. Empty for an ordinary feature (no attribute is written).
    input_of: ClassVar[str] = ""

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
            **({"input_of": self.input_of} if self.input_of else {}),
        }
