"""A small demo corpus the toolkit synthesises itself, so the whole pipeline runs without any corpus.

Real synthesised speech, not tones: eSpeak NG (the ``espeakng-loader`` wheel ships the library and its
voice data, so nothing is downloaded) reads a few emotionally neutral sentences in English, German and
French. Emotions are *acted* the way emotional-speech studies describe their prosody: speaking rate,
pitch level, pitch range and loudness per emotion, plus three voice-quality touches applied to the
waveform (a tense, bright voice for anger, a muffled one for sadness, a trembling one for fear).
Speakers are eSpeak voice variants (different pitch and formants). It is a demonstration corpus:
classes are easy by construction, and figures on it say nothing about real emotional speech.

Layout: ``<root>/<language>/<speaker>/<speaker>-<emotion>-s<k>.wav`` (16 kHz mono PCM), one dataset
``demo`` with three languages (``en``, ``de``, ``fr``), four speakers per language (``en-m1`` ...),
five emotions, four sentences: 16 utterances per class per language, 240 in all. ``<root>/demo.json``
records what was generated; a later run with the same settings reuses the files.
"""

from __future__ import annotations

import ctypes
import json
import threading
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import lfilter, resample_poly

from sercore.errors import DataError, EnvironmentProblem

from .base import Recording, Scan, require_recordings

DEFAULT_ROOT = Path("demo_corpus")
MARKER = "demo.json"
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class Prosody:
    """How an emotion is acted. eSpeak scales: rate in words/min (default 175), pitch and range 0-100
    (default 50), volume 0-200 (default 100)."""

    rate: int
    pitch: int
    range: int
    volume: int
    brightness: float = 0.0  # pre-emphasis coefficient: a tense, bright voice (anger)
    muffle: float = 0.0  # one-pole low-pass coefficient: a dull, lax voice (sadness)
    tremolo_hz: float = 0.0  # amplitude trembling (fear)


#: Directions from the vocal-affect literature (e.g. Scherer 2003; Banse & Scherer 1996), exaggerated so
#: that a few dozen utterances suffice.
EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": Prosody(rate=165, pitch=45, range=35, volume=100),
    "happy": Prosody(rate=190, pitch=68, range=95, volume=120),
    "angry": Prosody(rate=205, pitch=52, range=70, volume=175, brightness=0.85),
    "sad": Prosody(rate=120, pitch=25, range=10, volume=75, muffle=0.6),
    "fear": Prosody(rate=225, pitch=85, range=25, volume=95, tremolo_hz=7.0),
}

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": ("The table is made of wood.", "She will arrive tomorrow morning.",
           "I put the papers on the desk.", "We talked about it yesterday."),
    # The first two are EmoDB's own neutral-content sentences.
    "de": ("Der Lappen liegt auf dem Eisschrank.", "Das will sie am Mittwoch abgeben.",
           "Die Tasche steht neben der Tür.", "Wir haben gestern darüber gesprochen."),
    "fr": ("La voiture est garée devant la porte.", "Elle arrivera demain matin.",
           "Un cheval fou dans mon jardin.", "Nous en avons parlé hier."),
}


@dataclass(frozen=True)
class DemoConfig:
    languages: tuple[str, ...] = ("en", "de", "fr")
    emotions: tuple[str, ...] = tuple(EMOTION_PROSODY)
    #: eSpeak voice variants, one "speaker" each (male m1, m3; female f2, f4).
    variants: tuple[str, ...] = ("m1", "m3", "f2", "f4")
    sentences_per_language: int = 4
    sample_rate: int = 16000
    seed: int = 0
    sentences: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(SENTENCES))

    def fingerprint(self) -> dict:
        return {"generator_version": GENERATOR_VERSION, **asdict(self)}


class Espeak:
    """eSpeak NG through ctypes, synthesising synchronously into memory.

    The C library keeps one global synthesiser per process, so there is exactly one instance (and a lock)
    per process: that is the library's constraint, not a design choice.
    """

    _instance: "Espeak | None" = None
    _lock = threading.Lock()
    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
    _SYNCHRONOUS, _POS_CHARACTER, _CHARS_UTF8 = 2, 1, 1
    _RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise EnvironmentProblem("espeakng-loader", "the demo corpus is synthesised with eSpeak NG (GPL-3.0), an "
                                                        "optional extra: pip install 'mgser[demo]'") from None
        lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = lib.espeak_Initialize(self._SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if self.sample_rate <= 0:
            raise DataError(espeakng_loader.get_data_path(), "eSpeak NG failed to initialise")
        self._chunks: list[np.ndarray] = []
        self._callback = self._CALLBACK(self._collect)  # kept referenced: the C side holds only a pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    @classmethod
    def get(cls) -> "Espeak":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _collect(self, wav, n: int, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def say(self, text: str, voice: str, rate: int, pitch: int, range_: int, volume: int) -> np.ndarray:
        """``text`` spoken by ``voice`` (e.g. ``de+f2``), as float32 in [-1, 1] at :attr:`sample_rate`."""
        with self._lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise DataError(voice, "eSpeak NG has no such voice")
            for parameter, value in ((self._RATE, rate), (self._PITCH, pitch), (self._RANGE, range_), (self._VOLUME, volume)):
                self._lib.espeak_SetParameter(parameter, int(value), 0)
            self._chunks = []
            data = text.encode("utf-8")
            if self._lib.espeak_Synth(data, len(data) + 1, 0, self._POS_CHARACTER, 0, self._CHARS_UTF8, None, None) != 0:
                raise DataError(voice, f"eSpeak NG failed to synthesise {text!r}")
            self._lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if not chunks:
            raise DataError(voice, f"eSpeak NG produced no audio for {text!r}")
        return np.concatenate(chunks).astype(np.float32) / 32768.0


def act(speech: np.ndarray, sample_rate: int, prosody: Prosody) -> np.ndarray:
    """The voice-quality part of an emotion, applied to the waveform eSpeak produced."""
    out = speech
    if prosody.brightness:
        out = lfilter([1.0, -prosody.brightness], [1.0], out) * 2.0
    if prosody.muffle:
        out = lfilter([1.0 - prosody.muffle], [1.0, -prosody.muffle], out)
    if prosody.tremolo_hz:
        t = np.arange(len(out)) / sample_rate
        out = out * (1.0 + 0.4 * np.sin(2 * np.pi * prosody.tremolo_hz * t))
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _jitter(key: str, seed: int) -> np.random.Generator:
    # A per-utterance generator that does not depend on generation order.
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def generate(root: str | Path = DEFAULT_ROOT, config: DemoConfig = DemoConfig(), *, progress: bool = True) -> Path:
    """Write the demo corpus under ``root`` unless the same one is already there; return ``root``."""
    from tqdm import tqdm

    root = Path(root).expanduser()
    marker = root / MARKER
    wanted = json.loads(json.dumps(config.fingerprint()))
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == wanted:
                return root
        except (OSError, ValueError):
            pass  # an unreadable marker: regenerate
    elif root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DataError(root, f"exists and is not a demo corpus (no {MARKER}); give an empty or new folder as --root")
    engine = Espeak.get()
    jobs = [(lang, variant, emotion, k)
            for lang in config.languages for variant in config.variants
            for emotion in config.emotions for k in range(config.sentences_per_language)]
    for lang, variant, emotion, k in tqdm(jobs, desc="synthesising demo corpus", unit="utt", disable=not progress, leave=False):
        if emotion not in EMOTION_PROSODY:
            raise DataError(emotion, f"the demo corpus has no prosody for this emotion (known: {', '.join(EMOTION_PROSODY)})")
        sentences = config.sentences.get(lang, ())
        if len(sentences) < config.sentences_per_language:
            raise DataError(lang, f"the demo corpus has {len(sentences)} sentences in this language, {config.sentences_per_language} asked")
        speaker = f"{lang}-{variant}"
        path = root / lang / speaker / f"{speaker}-{emotion}-s{k + 1}.wav"
        prosody = EMOTION_PROSODY[emotion]
        rng = _jitter(path.name, config.seed)  # small take-to-take variation, as an actor never says it twice alike
        speech = engine.say(sentences[k], f"{lang}+{variant}",
                            rate=prosody.rate * rng.uniform(0.92, 1.08), pitch=prosody.pitch + rng.integers(-5, 6),
                            range_=prosody.range + rng.integers(-5, 6), volume=prosody.volume * rng.uniform(0.9, 1.1))
        speech = act(speech, engine.sample_rate, prosody)
        if engine.sample_rate != config.sample_rate:
            g = np.gcd(engine.sample_rate, config.sample_rate)
            speech = resample_poly(speech, config.sample_rate // g, engine.sample_rate // g).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.clip(speech, -1.0, 1.0), config.sample_rate, subtype="PCM_16")
    marker.write_text(json.dumps(wanted, indent=1, ensure_ascii=False), encoding="utf-8")
    return root


def scan(root: str | Path = DEFAULT_ROOT, *, config: DemoConfig = DemoConfig(), progress: bool = True, **_) -> Scan:
    """Generate the corpus if needed, then list exactly the files its configuration describes."""
    root = generate(root, config, progress=progress).resolve()
    result = Scan()
    for lang in config.languages:
        for variant in config.variants:
            speaker = f"{lang}-{variant}"
            for emotion in config.emotions:
                for k in range(config.sentences_per_language):
                    path = root / lang / speaker / f"{speaker}-{emotion}-s{k + 1}.wav"
                    if not path.is_file():
                        raise DataError(path, f"demo file missing; delete {root / MARKER} to regenerate")
                    result.recordings.append(Recording(utt_id=path.stem, path=path, speaker=speaker, language=lang, emotion=emotion))
    return require_recordings(result, root, "a generated demo corpus")
