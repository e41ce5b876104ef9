"""Python API for notebooks: a trained model (a bundle, as ``predict --model`` takes) applied to audio in memory or on disk.

Example::

    import mgser
    import soundfile

    model = mgser.load_model("runs/de_random")        # a model.bundle, or a run folder holding one
    model.classes                                     # ['angry', 'neutral', 'sad']
    result = model.predict("clip.wav")                # a file in any format predict reads
    result.label, result.probabilities                # ('angry', {'angry': 0.91, 'neutral': 0.06, 'sad': 0.03})
    wav, sr = soundfile.read("clip.wav")              # (frames,) or (frames, channels), at any rate
    model.predict((wav, sr)).label                    # 'angry'
    [r.label for r in model.predict(["a.wav", (wav, sr)])]   # a list in, a list out, in order

Audio goes through the same path as ``predict`` (down-mix, resampling per extractor, the bundle's scaler); the
extractors are loaded and checked against the bundle once, by :func:`load_model` (the mismatch rule of
:mod:`predict.cli`). Bad audio raises :class:`sercore.errors.DataError` naming the file (or ``<array>``) and
the problem; a bundle that does not fit raises :class:`sercore.bundle.BundleError` or
``predict.cli.ExtractorMismatchError``.
"""

from __future__ import annotations

import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence, Union

from extract.audio import DecodedAudio
from predict.bundle import Bundle, load_bundle
from predict.cli import check_supported, extractor_settings, load_extractors, predict_files
from sercore.bundle import BundleError
from sercore.errors import DataError

#: One utterance: a file path, or ``(samples, sample_rate)``.
Audio = Union[str, os.PathLike, tuple]


@dataclass(frozen=True)
class EmotionPrediction:
    """One utterance's predicted emotion and the probability of every class (in the model's class order)."""

    label: str
    probabilities: dict[str, float]
    source: str  # the file, or "<array>" ("<array i>" for the i-th item of a list)


class Model:
    """A loaded bundle with its extractors, for one language; made by :func:`load_model`."""

    def __init__(self, bundle: Bundle, language: str, extractors: dict, device: str = "cpu", batch_size: int = 16):
        self.bundle, self.language, self.extractors = bundle, language, extractors
        self.device, self.batch_size = device, batch_size

    @property
    def path(self) -> Path:
        return self.bundle.path

    @property
    def classes(self) -> list[str]:
        return self.bundle.classes(self.language)

    def __repr__(self) -> str:
        return (f"Model({str(self.path)!r}, model={self.bundle.meta['model']!r}, language={self.language!r}, "
                f"classes={self.classes})")

    def predict(self, audio: Audio | Sequence[Audio]) -> EmotionPrediction | list[EmotionPrediction]:
        """The emotion of one utterance (a path or ``(samples, sample_rate)``), or of each of a list of them.

        ``samples``: ``(frames,)`` or ``(frames, channels)`` floats in [-1, 1] (or integer PCM), as ``soundfile.read``
        and ``librosa.load`` return them. Raises :class:`~sercore.errors.DataError` for audio that cannot be used.
        """
        if _is_single(audio):
            return self._predict([_decode(audio, "<array>")])[0]
        if isinstance(audio, (list, tuple)):
            return self._predict([_decode(a, f"<array {i}>") for i, a in enumerate(audio)])
        raise TypeError(f"audio: expected a path, a (samples, sample_rate) pair or a list of them, "
                        f"not {type(audio).__name__}")

    def _predict(self, decoded: list[DecodedAudio]) -> list[EmotionPrediction]:
        if not decoded:
            return []
        run = predict_files(self.bundle, self.language, decoded, self.extractors, device=self.device,
                            batch_size=self.batch_size)
        for d in decoded:  # failures are keyed by str() of what was passed
            if str(d) in run.failures:
                raise DataError(d.path, run.failures[str(d)])
        return [EmotionPrediction(p.emotion, p.probabilities, str(p.path.path)) for p in run.predictions]


def _is_single(audio) -> bool:
    return isinstance(audio, (str, os.PathLike)) or _is_pair(audio)


def _is_pair(audio) -> bool:
    return (isinstance(audio, tuple) and len(audio) == 2 and not isinstance(audio[0], (str, os.PathLike))
            and isinstance(audio[1], numbers.Real) and not isinstance(audio[1], bool))


def _decode(audio, name: str) -> DecodedAudio:
    if isinstance(audio, (str, os.PathLike)):
        return DecodedAudio(audio)
    if _is_pair(audio):
        samples, sample_rate = audio
        if not float(sample_rate).is_integer():
            raise DataError(name, f"sample rate {sample_rate} is not a whole number of Hz")
        return DecodedAudio.from_samples(samples, int(sample_rate), name)
    raise TypeError(f"{name}: expected a path or a (samples, sample_rate) pair, not {type(audio).__name__}")


def load_model(path: str | os.PathLike, language: str | None = None, device: str = "cpu", *, batch_size: int = 16,
               ssl: Mapping[str, str] | Sequence[str] = (), **weights) -> Model:
    """Load a model bundle (or a run folder's) and its feature extractors, checked against what it was trained on.

    ``language`` picks the classifier of a multi-language bundle (needed there; a one-language bundle has one).
    ``ssl``: ``{name: checkpoint}`` (``predict --ssl``). The other keywords (``weights``) are the extractor
    registry's setting keys, the weights options of ``predict`` by their keyword (``wav2vec_checkpoint``,
    ``wav2vec_layer``, ``allosaurus_model``, ``byol_checkpoint``, and any a new extractor declares with
    ``extract.extractors.registry.setting``); an unknown one raises TypeError naming it. Unset ones come from the
    bundle for ``wav2vec_layer`` (the layer the model was trained on), otherwise from the environment and
    ``MGSER_CONFIG``, as for ``predict``. See the module docstring.
    """
    from extract.extractors.registry import settings_fields
    from train.config import check_device

    unknown = sorted(set(weights) - set(settings_fields()))
    if unknown:
        raise TypeError(f"load_model() got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; besides "
                        f"language, device, batch_size and ssl it takes the extractors' settings "
                        f"{', '.join(settings_fields())}")
    check_device(device)
    bundle = load_bundle(path, device=device)
    check_supported(bundle)
    if bundle.speaker_norm:
        raise BundleError(bundle.path, "the model was trained with --speaker-norm (each speaker's files standardised "
                                       "together): use the predict command with --speaker or --speakers")
    if language is None and len(bundle.languages) > 1:
        raise BundleError(bundle.path, f"the model covers several languages ({', '.join(bundle.languages)}); "
                                       "choose one with language=...")
    language = bundle.languages[bundle.domain_index(language)]
    if isinstance(ssl, Mapping):
        ssl = [f"{name}={checkpoint}" for name, checkpoint in ssl.items()]
    settings = extractor_settings(bundle, language, device, ssl, **weights)
    with warnings.catch_warnings():
        # resemblyzer's webrtcvad imports pkg_resources; its deprecation warning is noise here
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        extractors = load_extractors(bundle, language, settings, echo=lambda s: warnings.warn(s, stacklevel=3))
    return Model(bundle, language, extractors, device, batch_size)
