"""The one interface every feature extractor implements.

An extractor is built from :class:`ExtractorSettings` on a worker, loads its model once
(:meth:`FeatureExtractor.load`), then maps decoded mono audio at its own ``sample_rate`` to either a
(frames, dim) sequence or a (dim,) utterance embedding. Its :meth:`provenance` goes into the store,
so features from different weights or settings are never mixed.
"""

from __future__ import annotations

import abc
import os
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from sercore.fsio import file_sha256  # noqa: F401  (the extractors hash their checkpoints with it)
from sercore.store import FeatureKind

from .registry import config_of, settings_fields


class MissingWeightsError(Exception):
    """The extractor's pretrained weights are not available here; the message says how to provide them."""


class ExtractorSettings:
    """Where each extractor finds its weights, and where it runs.

    Besides ``device``, ``extra`` (options some extractors read, e.g. ``allosaurus_output``) and ``ssl`` (the
    Hugging Face encoders), it holds one value per user-set field of the registered extractors' configurations
    (:func:`.registry.setting`, declared in each extractor's module): ``wav2vec_checkpoint``, ``wav2vec_layer``,
    ``allosaurus_model``, ``byol_checkpoint``. They are keyword arguments and attributes of the same names.

    Each path may also come from its environment variable (``MGSER_WAV2VEC_CHECKPOINT``,
    ``MGSER_ALLOSAURUS_MODEL``, ``MGSER_BYOL_CHECKPOINT``) or from a weights file named by
    ``MGSER_CONFIG`` (TOML or JSON, same keys as this class); see :meth:`with_env_defaults`.
    Precedence: explicit values (CLI options) > environment variables > the file.
    """

    CONFIG_ENV: ClassVar[str] = "MGSER_CONFIG"
    #: The settings that are not an extractor's own.
    COMMON: ClassVar[tuple[str, ...]] = ("device", "extra", "ssl")

    def __init__(self, device: str = "cpu", extra: dict | None = None, ssl: dict | None = None, **values):
        known = settings_fields()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TypeError(f"ExtractorSettings() got unknown setting(s) {unknown}; the extractors register "
                            f"{sorted(known)}")
        object.__setattr__(self, "_values", {key: values.get(key) for key in known})
        #: Hugging Face encoders by the feature name the user chose: name -> {"checkpoint": folder or model id,
        #: "layers": "all" | [indices], "dtype", "max_chunk_seconds", "context_seconds", "batch_seconds"}
        #: (see ``extract/extractors/ssl.py``). A name given here is a feature ``extract --features`` accepts.
        self.device = device
        self.extra = {} if extra is None else extra
        self.ssl = {} if ssl is None else ssl

    def get(self, key: str):
        """The value of the registered setting ``key`` (None: unset)."""
        return self._values[key]

    def __getattr__(self, name: str):
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if name in self.__dict__.get("_values", {}):
            self._values[name] = value
        else:
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        items = [("device", self.device), *self._values.items(), ("extra", self.extra), ("ssl", self.ssl)]
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in items)})"

    def __eq__(self, other) -> bool:
        if not isinstance(other, ExtractorSettings):
            return NotImplemented
        return (self.device, self._values, self.extra, self.ssl) == (other.device, other._values, other.extra, other.ssl)

    __hash__ = None  # mutable, as before

    def with_env_defaults(self) -> "ExtractorSettings":
        """Fill unset values from their environment variables (:func:`.registry.setting`), then from the
        ``MGSER_CONFIG`` file."""
        for key, s in settings_fields().items():
            if s.env and self.get(key) is None and os.environ.get(s.env):
                self._values[key] = Path(os.environ[s.env])
        if os.environ.get(self.CONFIG_ENV):
            self.with_file_defaults(os.environ[self.CONFIG_ENV])
        return self

    def with_file_defaults(self, path: str | Path) -> "ExtractorSettings":
        """Fill unset values from a weights file (see :meth:`from_file`); ``extra`` keys are merged likewise."""
        loaded = self.from_file(path)
        for key in self._values:
            if self.get(key) is None:
                self._values[key] = loaded.get(key)
        self.extra = {**loaded.extra, **self.extra}
        self.ssl = {**loaded.ssl, **self.ssl}
        return self

    @classmethod
    def from_file(cls, path: str | Path) -> "ExtractorSettings":
        """Settings from a TOML (Python 3.11+) or JSON file whose top-level keys are this class's settings::

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
        registered = settings_fields()
        known = {*cls.COMMON, *registered}  # the settings only: not the class constants CONFIG_ENV, COMMON
        if not isinstance(data, dict):
            raise DataError(path, f"expected a table / object of settings at the top level; expected some of {sorted(known)}")
        if set(data) - known:
            raise DataError(path, f"unknown keys {sorted(set(data) - known)}; expected some of {sorted(known)}")
        values = dict(data)
        for attr, s in registered.items():
            value = values.get(attr)
            if value is None:
                continue
            if s.kind == "path":
                if not isinstance(value, str) or not value.strip():
                    raise DataError(path, f"{attr!r} must be a path written as a non-empty string, got {value!r}")
                p = Path(value).expanduser()
                values[attr] = p if p.is_absolute() else path.parent / p
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:  # kind "index"
                raise DataError(path, f"{attr!r} must be a non-negative integer, got {value!r}")
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
    """Base class. Subclasses set the class variables and implement ``load`` and ``extract``; the module registers
    them with :func:`.registry.register`, which sets ``name`` and ``config_class``."""

    name: ClassVar[str]
    #: The extractor's configuration: a frozen dataclass declared in its module (:mod:`.registry`).
    config_class: ClassVar[type]
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
    def configure(cls, settings: ExtractorSettings):
        """The extractor's configuration (an instance of ``config_class``) as ``settings`` set it."""
        return config_of(cls.config_class, settings)

    @cached_property
    def config(self):
        """This extractor's configuration (:meth:`configure` of its settings)."""
        return self.configure(self.settings)

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
