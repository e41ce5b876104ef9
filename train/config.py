"""Training configuration as dataclasses; the defaults are the paper's values (section 5.1).

Every deviation the toolkit offers (feature standardisation, GE2E fine-tuning, longer training...) is
an explicit field whose default keeps the paper's setting; :data:`PRESETS` name sets of them
(``tuned``, the :data:`DEFAULT_PRESET` of ``train`` and the grid: the values selected on EmoDB's validation
splits, see docs/training.md; ``paper``: section 5.1 exactly), and :func:`build_config` makes an :class:`ExperimentConfig` from domains, a preset and overrides (what the
``train`` CLI and the grid do). :data:`OPTIONS` declares ``train``'s options once, each with the field it sets:
``train/cli.py`` makes its click options from it, :func:`config_from_settings` a configuration from fields given
by their path, and :func:`command_args` a command line from a configuration.

An :class:`ExperimentConfig` converts to a dict (:meth:`ExperimentConfig.to_dict`) and back
(:meth:`ExperimentConfig.from_dict`, by ``dacite``: every value type-checked, unknown keys refused), and
to a JSON file and back; the ``config.json`` a run writes is such a file (its extra ``resolved`` section,
what the run found in the stores, is informative and ignored on reading).
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, Sequence

import dacite

from sercore.device import check_cuda
from sercore.errors import DataError
from sercore.fsio import write_atomic


def check_range(name: str, value, low: float | None = None, high: float | None = None, *, low_open: bool = False,
                high_open: bool = False, optional: bool = False, integer: bool = False) -> None:
    """Refuse ``value`` (:class:`ConfigError` naming the field ``name``, e.g. ``train.ema``, and the interval) unless
    it is a finite number in the interval, or None when ``optional``. Every dataclass below checks its fields so
    when it is built, so the command line, a ``--config`` file, a grid cell and a bundle are checked alike."""
    if value is None and optional:
        return
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            integer and not (isinstance(value, int) or value.is_integer())):
        raise ConfigError(name, f"must be {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(name, f"must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        shown = repr(value) if isinstance(value, float) or abs(value) < 10 ** 30 else f"about 10^{value.bit_length() * 0.30103:.0f}"
        raise ConfigError(name, f"must be in {Range(low, high, low_open, high_open, integer)}, got {shown}")


@dataclass(frozen=True)
class Range:
    """The interval of a numeric configuration field (or of each item of a tuple or dict field), declared once in
    the field's metadata (:func:`ranged`): checked when a dataclass is built (:func:`check_fields`), used as the
    click type of its option (``train/cli.py``) and so shown by ``--help``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False  # None is allowed (the field's "not set")

    def check(self, name: str, value) -> None:
        check_range(name, value, self.low, self.high, low_open=self.low_open, high_open=self.high_open,
                    optional=self.optional, integer=self.integer)

    def __str__(self) -> str:
        number = lambda x: str(int(x)) if self.integer else f"{x:g}"  # noqa: E731
        lo = "-inf" if self.low is None else number(self.low)
        hi = "inf" if self.high is None else number(self.high)
        return f"{'(' if self.low_open or self.low is None else '['}{lo}, {hi}{')' if self.high_open or self.high is None else ']'}"


def ranged(default: Any = MISSING, low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False, integer: bool = False, optional: bool = False, default_factory=None):
    """A dataclass field whose value (each item of a tuple or dict) must lie in a :class:`Range`."""
    metadata = {"range": Range(low, high, low_open, high_open, integer, optional)}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)  # MISSING: a field without a default


def field_range(cls: type, name: str) -> Range:
    """The :class:`Range` declared for field ``name`` of dataclass ``cls`` (what ``train``'s options are checked by)."""
    return next(f.metadata["range"] for f in fields(cls) if f.name == name)


def check_fields(obj, prefix: str) -> None:
    """Check every ranged field of a dataclass instance (:class:`ConfigError` naming ``prefix.field``)."""
    for f in fields(obj):
        if "range" not in f.metadata:
            continue
        r, value, name = f.metadata["range"], getattr(obj, f.name), f"{prefix}{f.name}"
        if isinstance(value, (tuple, list)):
            for item in value:
                r.check(name, item)
        elif isinstance(value, dict):
            for key, item in value.items():
                r.check(f"{name}.{key}", item)
        else:
            r.check(name, value)


#: Upper bounds of sizes and counts: far beyond any use, low enough that no library overflows on them.
MAX_SIZE = 65_536
MAX_COUNT = 100_000
#: Seeds: numpy, torch and Python's random all take any seed below 2**31 (first seed + seeds stays below 2**32).
MAX_SEED = 2 ** 31 - 1


def check_device(device: str, option: str = "--device") -> None:
    """Refuse a device torch does not know (``gpu``: :class:`ConfigError`), and ``cuda`` on a machine without a
    usable CUDA device (:class:`~sercore.errors.EnvironmentProblem`, exit 4), before anything is loaded or written."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(option, f"unknown device {device!r}; expected cpu, cuda or cuda:N") from None
    if parsed.type not in ("cpu", "cuda"):
        raise ConfigError(option, f"unsupported device {device!r}; expected cpu, cuda or cuda:N")
    check_cuda(device, option)


@dataclass(frozen=True)
class DomainSpec:
    """A language domain as it is named: ``LANG``, ``LANG=DATASET`` or ``LANG=DATASET:ROOT``.

    ``dataset`` is the folder of its stores under the features folder (None: found by
    :func:`train.domains.resolve_domain`); ``root`` the corpus folder, used only to prepare and extract it (the
    grid). ``str()`` gives ``LANG=DATASET`` (``LANG`` while unresolved), the form configurations record.
    """

    language: str
    dataset: str | None = None
    root: str | None = None

    @classmethod
    def parse(cls, text: str) -> "DomainSpec":
        """The one parser of a domain; ValueError naming the text if it is not of the form above."""
        language, sep, rest = text.strip().partition("=")
        dataset, _, root = rest.partition(":")
        language, dataset, root = language.strip(), dataset.strip(), root.strip()
        if not language or (sep and not dataset) or (root and not dataset):
            raise ValueError(f"domain {text!r} is not LANG, LANG=DATASET or LANG=DATASET:ROOT (e.g. de=emodb:/data/emodb)")
        for what, name in (("language", language), ("dataset", dataset)):
            if name in (".", "..") or any(c in name for c in "/\\"):
                raise ValueError(f"domain {text!r}: the {what} {name!r} is not a plain name (a folder name under the "
                                 "features folder, not a path)")
        return cls(language, dataset or None, root or None)

    def __str__(self) -> str:
        return f"{self.language}={self.dataset}" if self.dataset else self.language


@dataclass
class EncoderConfig:
    """Sizes of one :class:`train.models.encoder.SequenceEncoder`."""

    conv_channels: int = ranged(64, 1, MAX_SIZE, integer=True)
    kernel_sizes: tuple[int, ...] = ranged((3, 5), 1, 1_001, integer=True)
    lstm_hidden: int = ranged(128, 1, MAX_SIZE, integer=True)
    lstm_layers: int = ranged(1, 1, 64, integer=True)
    attention_dim: int = ranged(256, 1, MAX_SIZE, integer=True)
    dropout: float = ranged(0.0, 0, 1, high_open=True)
    stats_pooling: bool = False  # not in the paper: also mean + std over time of the LSTM outputs
    input_stats: bool = False  # not in the paper: also mean + std over time of the input frames and their deltas
    #: Not in the paper: average every k frames before the convolution (k times fewer steps).
    frame_stride: int = ranged(1, 1, 10_000, integer=True)

    def __post_init__(self) -> None:
        check_fields(self, "encoder.")
        for k in self.kernel_sizes:
            if k % 2 == 0:
                raise ConfigError("encoder.kernel_sizes", f"must be odd so that every frame keeps its place, got {k!r}")


#: Section 5.1: wav2vec and Allosaurus 64 kernels (widths 3 and 5), LSTM 128, attention 256; MFCC 32
#: kernels and a 2-layer LSTM of 64. The paper gives no attention size for MFCC: we use 128 (= 2 x 64,
#: the BiLSTM's output width).
ENCODERS: dict[str, EncoderConfig] = {
    "wav2vec": EncoderConfig(),
    "allosaurus": EncoderConfig(),
    "mfcc": EncoderConfig(conv_channels=32, lstm_hidden=64, lstm_layers=2, attention_dim=128),
}
#: Any other 2-D feature (a user's own extractor) gets the wav2vec/Allosaurus sizes.
DEFAULT_ENCODER = EncoderConfig()


@dataclass
class TowerConfig:
    """One language's :class:`train.models.tower.ClassificationTower`: hidden layers of ``units``, one per activation."""

    units: int = ranged(512, 1, MAX_SIZE, integer=True)
    activations: tuple[str, ...] = ("tanh", "relu")
    dropout: float = ranged(0.1, 0, 1, high_open=True)
    #: Not in the paper: dropout on the representation before the first layer.
    input_dropout: float = ranged(0.0, 0, 1, high_open=True)

    def __post_init__(self) -> None:
        check_fields(self, "tower.")


@dataclass
class LanguageConfig:
    tower: TowerConfig
    alpha: float = ranged(MISSING, 0, 1_000)  # weight of the contrastive auxiliary loss

    def __post_init__(self) -> None:
        check_fields(self, "language.")


#: Section 5.1: English 256 units Mish + GELU, alpha 0.1; German and French 512 units Tanh + ReLU,
#: alpha 0.01 and 0.015; dropout 0.1 everywhere.
LANGUAGES: dict[str, LanguageConfig] = {
    "en": LanguageConfig(TowerConfig(256, ("mish", "gelu"), 0.1), 0.1),
    "de": LanguageConfig(TowerConfig(512, ("tanh", "relu"), 0.1), 0.01),
    "fr": LanguageConfig(TowerConfig(512, ("tanh", "relu"), 0.1), 0.015),
}
#: A language the paper did not use gets the German setting: user corpora are usually small acted
#: corpora like EmoDB and CaFE rather than a large one like IEMOCAP.
DEFAULT_LANGUAGE = LanguageConfig(TowerConfig(512, ("tanh", "relu"), 0.1), 0.01)


def language_config(language: str) -> LanguageConfig:
    base = LANGUAGES.get(language, DEFAULT_LANGUAGE)
    return LanguageConfig(replace(base.tower), base.alpha)


def encoder_config(feature: str) -> EncoderConfig:
    return replace(ENCODERS.get(feature, DEFAULT_ENCODER))


@dataclass
class OptimizerConfig:
    """AdamW as in section 5.1; the fine-tuned GE2E encoder learns at ``lr * ge2e_lr_scale``."""

    lr: float = ranged(1e-3, 0, 10, low_open=True)
    betas: tuple[float, float] = ranged((0.9, 0.999), 0, 1, high_open=True)
    eps: float = ranged(1e-8, 0, 1, low_open=True)
    weight_decay: float = ranged(1e-5, 0, 100)
    ge2e_lr_scale: float = ranged(0.01, 0, 1_000)

    def __post_init__(self) -> None:
        check_fields(self, "optimizer.")


@dataclass
class TrainConfig:
    """How one model is fitted (one seed or fold)."""

    epochs: int = ranged(20, 1, MAX_COUNT, integer=True)
    #: "balanced": every batch holds ``per_class`` utterances of every class (so the contrastive loss,
    #: which needs more than five per emotion, always has all classes); "shuffle": plain shuffled
    #: batches of ``batch_size``.
    sampler: Literal["balanced", "shuffle"] = "balanced"
    #: Not in the paper: balanced batches grouped by length (``ClassBalancedBatchSampler``'s ``lengths``), so a
    #: batch pads to the longest utterance of its own length quantile, not of the whole corpus.
    length_batches: bool = False
    per_class: int = ranged(8, 1, MAX_COUNT, integer=True)
    #: Balanced batches: an epoch has as many batches as a pass over this many utterances (None: the training
    #: set's size). A few-shot run sets it to the size the training set has without the limit, so that every K
    #: of a learning curve gets the same number of steps (``train.fit_run``).
    epoch_size: int | None = ranged(None, 1, 10 ** 9, integer=True, optional=True)
    batch_size: int = ranged(32, 1, MAX_COUNT, integer=True)
    aux: bool = True
    alpha: float | None = ranged(None, 0, 1_000, optional=True)  # None: the language's value (LANGUAGES)
    aux_reduction: Literal["sum", "mean"] = "sum"  # eq. (6) sums over samples
    #: Standardise every feature with its training-split mean and std (not in the paper).
    standardize: bool = False
    #: Standardise every utterance with its own speaker's statistics (all of that speaker's utterances,
    #: no labels; not in the paper; replaces ``standardize``). ``train.scaling.SpeakerScaler`` says more.
    speaker_norm: bool = False
    #: Fine-tune resemblyzer's GE2E encoder on the stored ``ge2e_mel`` frames (the paper does, at lr * 0.01).
    finetune_ge2e: bool = False
    label_smoothing: float = ranged(0.0, 0, 1)  # not in the paper
    #: Not in the paper: weight of the reversed gradient of a speaker classifier (0: off; ``train.losses.SpeakerAdversary``)
    #: on the tower's last hidden layer (multi-domain models: on the shared representation), trained to hide which
    #: training speaker spoke.
    speaker_adversarial: float = ranged(0.0, 0, 1_000)
    #: Not in the paper (``train/augment.py``): training utterances' sequence features are randomly cropped to >=
    #: this fraction (0: off), then one span of up to ``time_mask`` of their frames and one band of up to
    #: ``feature_mask`` of their dimensions are set to 0 (SpecAugment-style).
    crop: float = ranged(0.0, 0, 1)
    time_mask: float = ranged(0.0, 0, 1)
    feature_mask: float = ranged(0.0, 0, 1)
    #: Not in the paper: mixup of each training batch within each language, lam ~ Beta(mixup, mixup) (0: off).
    mixup: float = ranged(0.0, 0, 1_000)
    #: Not in the paper: evaluate (and keep) an exponential moving average of the weights with this decay.
    ema: float | None = ranged(None, 0, 1, high_open=True, optional=True)
    selection: Literal["ua", "wa", "loss", "last"] = "ua"  # validation criterion for picking the epoch ("last": none)
    #: Not in the paper: after the epoch is chosen on the validation split, train again from the same
    #: initialisation on train + valid for that many epochs and test that model (more data, same selection).
    refit: bool = False
    patience: int | None = ranged(None, 1, MAX_COUNT, integer=True, optional=True)  # stop after this many epochs without a better validation score
    device: str = "cpu"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    progress: bool = True
    #: Not in the paper: sequence features longer than this many seconds are cropped to their central part
    #: (``train/batch_limits.py``), so one very long recording cannot blow up a padded batch. None: no limit.
    max_seconds: float | None = ranged(60.0, 0, 86_400, low_open=True, optional=True)
    #: Refuse to start when the largest training batch would need more than about this many GB
    #: (``train.batch_limits.estimate_batch_bytes``: padded inputs and the encoders' activations, forward + backward).
    max_batch_gb: float = ranged(8.0, 0, 1e6, low_open=True)

    def __post_init__(self) -> None:
        check_fields(self, "train.")
        for name, allowed in (("sampler", ("balanced", "shuffle")), ("aux_reduction", ("sum", "mean")),
                              ("selection", ("ua", "wa", "loss", "last"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"train.{name}", f"must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")


#: The multi-domain models of section 4.3 / table 3, in the table's order (``train --model``; the builders are in
#: ``train/models/multidomain.py``).
MULTIDOMAIN_MODELS: tuple[str, ...] = ("base", "sb", "omoe", "mmoe", "nas")
#: ``--model`` of one model per language (the reference every multi-domain model is compared with).
SINGLE_MODEL = "single"
#: Single-language heads on pooled statistics, fitted by scikit-learn (``train/pooled_heads.py``).
HEAD_MODELS: tuple[str, ...] = ("logreg", "linsvm", "rbfsvm")
#: ``--model`` of the ensemble (``train/ensemble_weights.py``): the network and heads fitted on the same split, their
#: calibrated probabilities averaged with weights chosen on the validation split.
ENSEMBLE_MODEL = "ensemble"
#: The ensemble's members, in the order their weights are listed (the network first).
ENSEMBLE_MEMBERS: tuple[str, ...] = (SINGLE_MODEL, "logreg", "rbfsvm")
#: The members of ``train --transfer-to``'s ensemble (:mod:`train.transfer`): the network on the target's labelled
#: utterances and the self-trained pooled transfer head, equal weights.
TRANSFER_MEMBERS: tuple[str, ...] = (SINGLE_MODEL, "logreg")


def ensemble_members(config) -> tuple[str, ...]:
    """The members of an ensemble configuration: :data:`TRANSFER_MEMBERS` with ``--transfer-to``, else
    :data:`ENSEMBLE_MEMBERS`."""
    return TRANSFER_MEMBERS if config.transfer_sources else ENSEMBLE_MEMBERS


@dataclass
class MultiDomainConfig:
    """The multi-domain models of section 4.3 (``train/models/multidomain.py``); paper values as defaults."""

    #: Common width the M feature experts are projected to before they are summed (not in the paper, which
    #: sums f_i(x) of different widths); 256 = the widest expert here (GE2E, wav2vec/Allosaurus attention).
    dim: int = ranged(256, 1, MAX_SIZE, integer=True)
    #: Gate input x of eq. (7): GE2E in section 4.3.1, BYOL in section 5.3.2.
    selector: str = "ge2e"
    #: The selector feature is also one of the experts (section 4.3.1 gates GE2E too; 5.3.2 does not gate BYOL).
    selector_expert: bool = True
    #: Hard concrete distribution of the NAS module (section 5.1: beta 0.9, gamma -0.1, delta 2 = zeta).
    beta: float = ranged(0.9, 0, 100, low_open=True)
    gamma: float = ranged(-0.1, -100, 0, high_open=True)
    zeta: float = ranged(2.0, 1, 100, low_open=True)
    init_log_alpha: float = ranged(0.0, -100, 100)
    #: Weight of the expected-L0 penalty on the NAS connections (not in the paper: 0 = off).
    l0_weight: float = ranged(0.0, 0, 1_000)
    #: The NAS gates' log_alpha learn at lr * this (not in the paper: 1). With AdamW a parameter moves about lr
    #: per step, so at lr 1e-3 and a few hundred steps log_alpha can hardly leave its initial value.
    nas_lr_scale: float = ranged(1.0, 0, 1_000)
    #: The softmax gates have a bias b_k: g_k(x) = softmax(W_k x + b_k) (not in the paper: no bias). With the
    #: selector standardised per language, a bias-free gate's logits average 0 over its language's rows, so its
    #: mean weights leave 1/M only through the logits' spread (train/models/gates.py).
    gate_bias: bool = False
    #: The softmax gates learn at lr * this (not in the paper: 1).
    gate_lr_scale: float = ranged(1.0, 0, 1_000)
    #: Initial gate weights with ``gate_bias`` (not in the paper): feature -> weight in (0, 1); the other experts
    #: share the rest equally. {} = uniform.
    gate_init: dict[str, float] = ranged(default_factory=dict, low=0, high=1, low_open=True, high_open=True)
    #: Layer-normalise every expert's output (no learned scale) right before the weighted sum (not in the paper:
    #: off). Without it an expert's projection can grow or shrink its share of the sum, which is the gate's job.
    expert_norm: bool = False
    #: Encode each language's rows of a batch as their own sub-batch (less padding; same values).
    split_by_domain: bool = True

    def __post_init__(self) -> None:
        check_fields(self, "multidomain.")
        if self.gate_init and not self.gate_bias:
            raise ConfigError("multidomain.gate_init", "initial gate weights are set through the gate bias: add gate_bias (--gate-bias)")
        if sum(self.gate_init.values()) >= 1:
            raise ConfigError("multidomain.gate_init", f"the weights {self.gate_init} leave nothing for the other experts")


def spec_language(where: str, domain: str) -> str:
    """The language of a LANG or LANG=DATASET string of the configuration field ``where`` (or ConfigError)."""
    try:
        return DomainSpec.parse(domain).language
    except ValueError as exc:
        raise ConfigError(where, str(exc)) from None


@dataclass
class ExperimentConfig:
    """One configuration run over seeds (random protocol) or speaker folds (speaker protocol)."""

    domains: list[str]
    features: list[str] | None = None  # None: every feature in the stores (but auxiliary inputs like ge2e_mel)
    protocol: Literal["random", "speaker"] = "random"
    seeds: int = ranged(5, 1, 10_000, integer=True)
    folds: int | None = ranged(None, 3, 10_000, integer=True, optional=True)  # speaker protocol: None = one fold per speaker
    first_seed: int = ranged(0, 0, MAX_SEED, integer=True)
    features_dir: str = "features"
    out: str = "runs/default"
    model: str = SINGLE_MODEL
    train: TrainConfig = field(default_factory=TrainConfig)
    #: Per-feature encoder overrides and per-language overrides of the tables above.
    encoders: dict[str, EncoderConfig] = field(default_factory=dict)
    languages: dict[str, LanguageConfig] = field(default_factory=dict)
    save_checkpoints: bool = True
    #: Not in the paper: every sequence encoder also pools mean + std over time (EncoderConfig.stats_pooling).
    stats_pooling: bool = False
    #: Not in the paper: every sequence encoder also pools its inputs' statistics (EncoderConfig.input_stats).
    input_stats: bool = False
    #: Not in the paper: every sequence encoder averages this many consecutive frames before its convolution
    #: (EncoderConfig.frame_stride; 1 = off).
    frame_stride: int = ranged(1, 1, 10_000, integer=True)
    #: Multi-domain models (--model base|sb|omoe|mmoe|nas).
    multidomain: MultiDomainConfig = field(default_factory=MultiDomainConfig)
    #: Low-resource simulation (not in the paper): language -> k; that language trains on at most k utterances
    #: per emotion of its training split (drawn with the run's seed) and uses none of its validation split (see
    #: ``few_shot_valid``); its test split unchanged.
    #: k = 0 (zero-shot, ``base`` only): none of its labels is used, neither for training nor for choosing the
    #: epoch; it is tested on the emotions the other languages have, with the shared tower.
    few_shot: dict[str, int] = ranged(default_factory=dict, low=0, high=10 ** 6, integer=True)
    #: The old, not low-resource few-shot protocol: a few-shot language also keeps its whole validation split for
    #: choosing the epoch. False (the default): at K its K labelled utterances per emotion are all it contributes,
    #: to training and selection together; the epoch is chosen on the other languages' validation splits, and a
    #: few-shot language trained alone (single) takes the fixed recipe: the configured epochs (each as long as its
    #: whole training split), the last one tested; linear heads choose C by cross-validation inside the K shots.
    few_shot_valid: bool = False
    #: ``train --transfer-to``: the source languages (LANG or LANG=DATASET) of the transfer model of the one
    #: language of ``domains`` (model ensemble: the network and the pooled head; logreg: the head alone;
    #: :mod:`train.transfer`).
    transfer_sources: list[str] = field(default_factory=list)
    #: ``train --transfer-to LANG --speaker-norm --unlabelled``: more recordings of LANG (LANG=DATASET, prepared and
    #: extracted like any corpus; their emotion labels are never read) for the head's self-training.
    transfer_unlabelled: list[str] = field(default_factory=list)
    #: Warm start (not in the paper): the network starts from this checkpoint's weights, those whose name and shape
    #: match (:mod:`train.warm_start`); None: the usual initialisation.
    init_from: str | None = None

    def __post_init__(self) -> None:
        if not self.domains or not all(isinstance(d, str) for d in self.domains):
            raise ConfigError("domains", f"expected one or more language codes (de, it, or LANG=DATASET), got {self.domains!r}")
        for d in self.domains:
            spec_language("domains", d)
        if self.features is not None and (not self.features or any(not str(f).strip() for f in self.features)):
            raise ConfigError("features", f"expected one or more feature names, got {self.features!r}")
        check_fields(self, "")
        languages = [DomainSpec.parse(d).language for d in self.domains]
        twice = sorted({x for x in languages if languages.count(x) > 1})
        if twice:
            raise ConfigError("domains", f"language {', '.join(twice)} given twice in {','.join(self.domains)}: one "
                                         "dataset per language (train tells domains apart by their language code)")
        if (self.model in HEAD_MODELS or self.model == ENSEMBLE_MODEL) and len(languages) != 1:
            raise ConfigError("model", f"{self.model} is a single-language model; give one language in --domains")
        if self.model in HEAD_MODELS and self.train.speaker_adversarial > 0:
            raise ConfigError("train.speaker_adversarial", f"--model {self.model} is fitted by scikit-learn on pooled "
                                                           "statistics; the speaker adversary trains a network's representation")
        for lang, k in self.few_shot.items():
            if lang not in languages:
                raise ConfigError("few_shot", f"language {lang!r} is not among the domains ({', '.join(languages)})")
            if k == 0 and (self.model != "base" or len(languages) < 2):
                raise ConfigError("few_shot", f"{lang}=0 (zero-shot) needs --model base with other languages: only its "
                                              "shared tower can label a language it was never trained on")
        if self.transfer_sources:
            if self.model not in ("logreg", ENSEMBLE_MODEL) or len(languages) != 1:
                raise ConfigError("transfer_sources", "the transfer model of one target language is an ensemble (the "
                                                      "network and the pooled head) or the logreg head alone")
            if self.train.refit:
                raise ConfigError("train.refit", "the transfer model is fitted once, on the sources and the target's "
                                                 "training utterances; a refit would fit the target alone")
            for d in self.transfer_unlabelled:
                if spec_language("transfer_unlabelled", d) not in languages:
                    raise ConfigError("transfer_unlabelled", f"{d}: recordings of the target ({languages[0]}) expected")
            if self.transfer_unlabelled and not self.train.speaker_norm:
                raise ConfigError("transfer_unlabelled", "recordings of another corpus join the head's self-training only "
                                                         "with --speaker-norm (each speaker standardised with its own audio)")
            for d in self.transfer_sources:
                source = spec_language("transfer_sources", d)
                if source in languages:
                    raise ConfigError("transfer_sources", f"{source} is the target; give the other languages")
        elif self.transfer_unlabelled:
            raise ConfigError("transfer_unlabelled", "unlabelled recordings serve the transfer head: give --transfer-to")
        if self.init_from is not None and (self.model in HEAD_MODELS or self.model == ENSEMBLE_MODEL):
            raise ConfigError("init_from", f"--model {self.model} is not a network trained by train; a warm start "
                                           "needs a network model (single or a multi-domain one)")
        if self.few_shot and self.train.refit:
            raise ConfigError("few_shot", "a refit would train on the whole validation split too; use one without the other")

    def encoder(self, feature: str) -> EncoderConfig:
        config = self.encoders.get(feature) or encoder_config(feature)
        if self.stats_pooling:
            config = replace(config, stats_pooling=True)
        if self.input_stats:
            config = replace(config, input_stats=True)
        if self.frame_stride != 1:
            config = replace(config, frame_stride=self.frame_stride)
        return config

    def language(self, language: str) -> LanguageConfig:
        return self.languages.get(language) or language_config(language)

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        write_atomic(path, lambda tmp: tmp.write_text(text))

    @classmethod
    def from_dict(cls, d: dict, where: str | Path = "configuration") -> "ExperimentConfig":
        """The inverse of :meth:`to_dict`; :class:`ConfigError` naming the key on an unknown key or a wrong type."""
        try:
            return dacite.from_dict(cls, d, config=dacite.Config(strict=True, cast=[tuple], type_hooks={float: _number}))
        except ConfigError as exc:  # a value out of its range (check_range): the file, then the field
            raise ConfigError(where, str(exc)) from None
        except dacite.UnexpectedDataError as exc:
            raise ConfigError(where, f"unknown key(s) {', '.join(sorted(exc.keys))} (not a field of the configuration)") from None
        except dacite.WrongTypeError as exc:  # dacite's own message may show a generator instead of the value
            found, value = _value_at(d, (exc.field_path or "").split("."))
            got = f", got {value!r} (a {type(value).__name__})" if found else ""
            raise ConfigError(where, f"{exc.field_path}: expected {_type_name(exc.field_type)}{got}") from None
        except dacite.DaciteError as exc:
            raise ConfigError(where, str(exc).replace("\n", " ")) from None

    @classmethod
    def from_file(cls, path: str | Path) -> "ExperimentConfig":
        """A configuration file: a JSON object of :meth:`to_dict`'s form, e.g. a run's ``config.json``."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(path, f"cannot read the configuration ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise ConfigError(path, f"not JSON ({exc})") from None
        if not isinstance(d, dict):
            raise ConfigError(path, "not a configuration (a JSON object is expected)")
        d.pop("resolved", None)  # what a run found in the stores: recorded for the reader, not a setting
        return cls.from_dict(d, where=path)


class ConfigError(DataError):
    """A configuration file or dict that does not describe an :class:`ExperimentConfig`."""


def _value_at(d, keys: Sequence[str]) -> tuple[bool, object]:
    """(found, value) at a key path (``train.epochs``) of a configuration dict, as the file gave it; dacite leaves out
    the keys of dict fields (``encoders.kernel_sizes`` for ``encoders.mfcc.kernel_sizes``), so those are searched."""
    if not keys:
        return True, d
    if isinstance(d, dict):
        if keys[0] in d:
            return _value_at(d[keys[0]], keys[1:])
        for value in d.values():
            found = _value_at(value, keys)
            if found[0]:
                return found
    return False, None


def _type_name(t) -> str:
    """``int``, ``list[str] | None``, ``Literal['random', 'speaker']``: a field's type as a reader writes it."""
    return t.__name__ if isinstance(t, type) and not getattr(t, "__args__", None) else str(t).replace("typing.", "")


def _number(value):
    """JSON writes 0.0 as 0 in hand-written files: an int is a fine float (a bool is not)."""
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


@dataclass(frozen=True)
class Preset:
    """Deviations from the paper's values (the dataclass defaults): fields of TrainConfig, of every language's
    TowerConfig, and of ExperimentConfig."""

    train: dict = field(default_factory=dict)
    tower: dict = field(default_factory=dict)
    experiment: dict = field(default_factory=dict)


#: ``paper``: section 5.1. ``tuned``: standardised features, input statistics pooled by each sequence encoder,
#: dropout 0.3 on the representation, 40 epochs with an exponential moving average of the weights, balanced
#: batches grouped by length, random crops of at least half of each sequence, and sequence encoders that average
#: every 3 frames. The last three were chosen on EmoDB's *validation* UA (3 seeds, features mfcc,ge2e,byol;
#: docs/results/default_config.md): each kept the validation UA of the configuration without it (0.904 with length batches
#: and crops against 0.909 and 0.902 without one of them; 0.899 with frame stride 3 against 0.904 without)
#: and cut the time per run (280 s -> 110-155 s for the stride, at load 2-4).
PRESETS: dict[str, Preset] = {
    "paper": Preset(),
    "tuned": Preset(train={"standardize": True, "epochs": 40, "ema": 0.99, "length_batches": True, "crop": 0.5},
                    tower={"input_dropout": 0.3}, experiment={"input_stats": True, "frame_stride": 3}),
}
#: What ``train`` (and every grid cell) uses without ``--preset``: the configuration chosen on validation data.
DEFAULT_PRESET = "tuned"


def build_config(domains: Sequence[str], *, preset: str = DEFAULT_PRESET, train: dict | None = None,
                 optimizer: dict | None = None, tower: dict | None = None, multidomain: dict | None = None,
                 **experiment) -> ExperimentConfig:
    """The configuration of ``domains`` under ``preset``, then the given overrides (None values are ignored).

    ``train``, ``optimizer``, ``tower`` (applied to every language's tower) and ``multidomain`` override fields
    of those dataclasses; the keyword arguments fields of :class:`ExperimentConfig`. ``out`` defaults to
    ``runs/<languages>_<protocol>``.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    p = PRESETS[preset]
    given = lambda d: {k: v for k, v in (d or {}).items() if v is not None}  # noqa: E731
    train_config = replace(TrainConfig(), **{**p.train, **given(train)})
    train_config = replace(train_config, optimizer=replace(train_config.optimizer, **given(optimizer)))
    towers = {**p.tower, **given(tower)}
    languages = {}
    codes = [DomainSpec.parse(d).language for d in domains]
    for code in codes:
        base = language_config(code)
        languages[code] = LanguageConfig(replace(base.tower, **towers), base.alpha)
    fields_ = {**p.experiment, **given(experiment)}
    if fields_.get("out") is None:
        fields_["out"] = f"runs/{'-'.join(codes)}_{fields_.get('protocol', 'random')}"
    return ExperimentConfig(domains=list(domains), train=train_config, languages=languages,
                            multidomain=replace(MultiDomainConfig(), **given(multidomain)), **fields_)


# ---------------------------------------------------------------------------------------------- train's options


#: :attr:`Option.default` of an option that declares none.
NO_DEFAULT = object()


@dataclass(frozen=True)
class Option:
    """One option of ``train``, declared once: ``train/cli.py`` makes its click option from it, and
    :func:`option_settings` / :func:`config_from_settings` the configuration from its value.

    ``sets`` is the configuration field it sets, as a path of :class:`ExperimentConfig` (``train.epochs``,
    ``multidomain.l0_weight``; ``languages.*.tower.dropout``: every language's tower), or None for an option the
    command reads itself (``--preset`` chooses :func:`build_config`'s preset). A value option of a ranged field
    takes the field's :class:`Range` as its type, one of a ``Literal`` field its choices.
    """

    decl: str  # "--nas-l0", or "--gate-bias/--no-gate-bias" for a switch
    sets: str | None = None
    help: str | None = None
    dest: str | None = None  # the parameter's name when it is not the option's ("model_name")
    default: Any = NO_DEFAULT  # a flag without one is off; a value or a switch None ("not given")
    show_default: bool = False
    metavar: str | None = None
    choices: tuple[str, ...] | None = None  # None: those of a Literal field
    flag: bool = False  # an on/off flag (is_flag)
    negate: bool = False  # a flag that sets its field to False when given (--no-aux: train.aux), else leaves it
    folder: bool = False  # a folder path (click.Path(file_okay=False))
    listed: bool = False  # a comma-separated list of names -> list[str]
    pair: tuple[type, str] | None = None  # one KEY=VALUE (metavar the form) -> {KEY: type(VALUE)}; an example

    @property
    def name(self) -> str:
        return self.dest or self.decl.split("/")[0].lstrip("-").replace("-", "_")

    @property
    def target(self):
        """The dataclass field ``sets`` names (None for an option that sets none)."""
        if self.sets is None:
            return None
        cls, parts = ExperimentConfig, self.sets.replace("languages.*.", "").split(".")
        owners = {"train": TrainConfig, "optimizer": OptimizerConfig, "tower": TowerConfig, "multidomain": MultiDomainConfig}
        for part in parts[:-1]:
            cls = owners[part]
        return next(f for f in fields(cls) if f.name == parts[-1]), cls

    @property
    def range(self) -> Range | None:
        """The field's range when the option's value is a plain number of it (what ``--help`` shows)."""
        if self.sets is None or self.flag or self.listed or self.pair or "/" in self.decl:
            return None
        f, _ = self.target
        return f.metadata.get("range")

    @property
    def literal(self) -> tuple[str, ...] | None:
        """The choices: given, or those of a ``Literal`` field."""
        if self.choices is not None or self.sets is None:
            return self.choices
        import typing

        f, cls = self.target
        hint = typing.get_type_hints(cls)[f.name]
        return tuple(typing.get_args(hint)) if typing.get_origin(hint) is Literal else None


def _gate_init_help() -> str:
    return ("With --gate-bias: the gates start at weight W on FEATURE, the rest shared by the other experts, W in "
            f"{field_range(MultiDomainConfig, 'gate_init')} [default: uniform].")


#: ``train``'s options in ``--help`` order (but ``--config`` and the common ones), each declared once.
OPTIONS: tuple[Option, ...] = (
    Option("--domains", "domains", "Comma-separated language codes (de, fr, en, it, or LANG=DATASET for any store folder).", listed=True),
    Option("--features", "features", "Comma-separated features, e.g. mfcc,ge2e [default: every feature in the stores].", listed=True),
    Option("--protocol", "protocol", "random: the paper's stratified split re-drawn per seed; speaker: leave-speakers-out folds, all of them.",
           default="random", show_default=True),
    Option("--seeds", "seeds", "Runs of the random protocol (seeds first-seed..).", default=5, show_default=True),
    Option("--first-seed", "first_seed", "Seed 0 is the manifest's split.", default=0, show_default=True),
    Option("--folds", "folds", "Speaker protocol: number of speaker folds [default: one per speaker]."),
    Option("--epochs", "train.epochs", "Training epochs [paper: 20]."),
    Option("--device", "train.device", "cpu, cuda or cuda:N.", default="cpu", show_default=True),
    Option("--out", "out", "Run folder [default: runs/<domains>_<protocol>].", folder=True),
    Option("--features-dir", "features_dir", default="features", show_default=True, folder=True),
    Option("--model", "model", "single (one language), or a multi-domain model; a comma list fits each into OUT/<model> and writes "
           "OUT/comparison.{md,csv,json} and OUT/gates.png (table 3, figure 4b). "
           "[default: single for one language, nas (the paper's model) for several; with --transfer-to: ensemble]",
           dest="model_name", listed=True,
           metavar="[" + "|".join((SINGLE_MODEL, *MULTIDOMAIN_MODELS, *HEAD_MODELS, ENSEMBLE_MODEL)) + "][,...]"),
    Option("--selector", "multidomain.selector", "Multi-domain gates: feature used as the gate input x [paper: ge2e]."),
    Option("--nas-l0", "multidomain.l0_weight", "nas: weight of the expected-L0 penalty on the connections [default: 0, off]."),
    Option("--nas-lr-scale", "multidomain.nas_lr_scale", "nas: the connection gates learn at lr * this [paper: 1]."),
    Option("--gate-bias/--no-gate-bias", "multidomain.gate_bias",
           "omoe, mmoe, nas: give every softmax gate a bias, softmax(W x + b) [paper: no bias]."),
    Option("--gate-lr-scale", "multidomain.gate_lr_scale", "omoe, mmoe, nas: the softmax gates learn at lr * this [paper: 1]."),
    Option("--gate-init", "multidomain.gate_init", _gate_init_help(), metavar="FEATURE=W", pair=(float, "mfcc=0.6")),
    Option("--expert-norm/--no-expert-norm", "multidomain.expert_norm",
           "Multi-domain models: layer-normalise every expert's output before the (gated) sum [paper: no]."),
    Option("--preset", None, "tuned: the configuration chosen on validation data (docs/training.md); paper: section 5.1 exactly, "
           "for reproduction.", default=DEFAULT_PRESET, show_default=True, choices=tuple(PRESETS)),
    Option("--no-aux", "train.aux", "Train without the contrastive auxiliary loss (alpha = 0).", flag=True, negate=True),
    Option("--alpha", "train.alpha", "Weight of the auxiliary loss [default: per language, de 0.01]."),
    Option("--aux-reduction", "train.aux_reduction", "Over samples [paper eq. 6: sum]."),
    Option("--standardize/--no-standardize", "train.standardize", "Standardise features with training statistics."),
    Option("--speaker-norm/--no-speaker-norm", "train.speaker_norm",
           "Standardise each utterance with its own speaker's statistics (unlabelled; replaces --standardize) [paper: no]."),
    Option("--finetune-ge2e/--no-finetune-ge2e", "train.finetune_ge2e",
           "Fine-tune resemblyzer's GE2E encoder on the stored ge2e_mel frames at lr * 0.01."),
    Option("--sampler", "train.sampler", "Training batches [default: balanced]."),
    Option("--length-batches/--no-length-batches", "train.length_batches",
           "Balanced batches grouped by utterance length: less padding, faster [paper: no]."),
    Option("--per-class", "train.per_class", "Balanced batches: utterances per class [default: 8]."),
    Option("--batch-size", "train.batch_size", "Shuffled batches: size [default: 32]."),
    Option("--lr", "train.optimizer.lr", "AdamW learning rate [paper: 1e-3]."),
    Option("--weight-decay", "train.optimizer.weight_decay", "AdamW weight decay [paper: 1e-5]."),
    Option("--dropout", "languages.*.tower.dropout", "Tower dropout [paper: 0.1]."),
    Option("--input-dropout", "languages.*.tower.input_dropout", "Dropout on the representation before the tower [paper: none]."),
    Option("--stats-pooling/--no-stats-pooling", "stats_pooling",
           "Encoders also pool mean + std over time of the LSTM outputs [paper: attention only]."),
    Option("--input-stats/--no-input-stats", "input_stats",
           "Encoders also pool mean + std over time of their input frames and deltas [paper: no]."),
    Option("--frame-stride", "frame_stride",
           "Sequence encoders average every N frames before their convolution: N times fewer LSTM steps [paper: 1]."),
    Option("--ema", "train.ema", "Evaluate an exponential moving average of the weights with this decay."),
    Option("--label-smoothing", "train.label_smoothing", "Label smoothing of the cross-entropy [paper: 0]."),
    Option("--speaker-adversarial", "train.speaker_adversarial",
           "Networks: a speaker classifier on the tower's last hidden layer, its gradient reversed and scaled by "
           "this, so that the network learns to hide who speaks; 0: off [paper: none]."),
    Option("--crop", "train.crop", "Training augmentation: random contiguous crops of at least this fraction of each sequence [paper: none]."),
    Option("--time-mask", "train.time_mask",
           "Training augmentation: zero one span of up to this fraction of each sequence's frames [paper: none]."),
    Option("--feature-mask", "train.feature_mask",
           "Training augmentation: zero one band of up to this fraction of each sequence's dimensions [paper: none]."),
    Option("--mixup", "train.mixup", "Training augmentation: mixup within each language, lam ~ Beta(MIXUP, MIXUP); 0: off [paper: none]."),
    Option("--refit/--no-refit", "train.refit",
           "After choosing the epoch on valid, retrain on train + valid for that many epochs and test it [paper: no]."),
    Option("--max-seconds", "train.max_seconds",
           "Crop sequence features longer than this to their central part, in training, evaluation and predict "
           "[default: 60; the paper's corpora have no longer utterance]."),
    Option("--max-batch-gb", "train.max_batch_gb",
           "Refuse to start when a training batch would need more memory than this (an estimate) [default: 8]."),
    Option("--few-shot", "few_shot",
           "Low-resource simulation: language LANG trains on at most K utterances per emotion of its training split "
           "(drawn per run) and uses none of its validation split: the epoch is chosen on the other languages' "
           "validation splits (LANG alone: the last epoch); its test split unchanged. K in "
           f"{field_range(ExperimentConfig, 'few_shot')} [default: all].", metavar="LANG=K", pair=(int, "it=10")),
    Option("--few-shot-valid", "few_shot_valid",
           "The old, not low-resource protocol of --few-shot and --learning-curve: LANG also keeps its whole "
           "validation split for choosing the epoch [default: no].", default=None, flag=True),
    Option("--transfer-to", None,
           "Train a transfer model for LANG, a language with few labels, written as LANG's model (run folder, bundle, "
           "predict): the mean of the probabilities of the network trained on LANG's labelled utterances and of a "
           "pooled head, one logistic regression on the pooled statistics of every language of --domains (each "
           "corpus standardised with its own training audio, LANG's labelled utterances weighted up) self-trained on "
           "LANG's unlabelled training audio. With --speaker-norm the head's inputs are standardised per speaker "
           "(predict then needs --speakers). --model logreg: the head alone (self-trained only with --speaker-norm).",
           metavar="LANG"),
    Option("--unlabelled", "transfer_unlabelled",
           "With --transfer-to LANG --speaker-norm: more recordings of LANG without labels "
           "(LANG=DATASET, comma-separated; prepared and extracted like any corpus, their labels are not read) for the "
           "head's self-training, beside LANG's training utterances that --few-shot leaves unlabelled [default: none].",
           metavar="LANG=DATASET", listed=True, dest="transfer_unlabelled"),
    Option("--init-from", "init_from",
           "Warm start: the network starts from the weights of this checkpoint of another run (OUT/checkpoints/"
           "run<k>.pt), those whose name and shape match; e.g. a model trained on other languages, adapted to a "
           "few-shot language; the file is unpickled, so give only checkpoints you trust [default: none].", metavar="CHECKPOINT"),
    Option("--learning-curve", None,
           "Instead: fit every --model at every --shots K of LANG (single: LANG alone) into OUT/k<K>/<model> and "
           "write OUT/curve.{md,csv,json,png}: LANG's test UA against K, each model against single.", metavar="LANG"),
    Option("--shots", None, "--learning-curve: utterances per emotion of the target language; all = its whole training split; "
           "0 = zero-shot (base only).", default="5,10,20,40,all", show_default=True, metavar="K,..."),
    Option("--patience", "train.patience", "Early stop after this many epochs without a better validation score."),
    Option("--tsne", None, "Also fit run 0 with and without the aux loss and plot t-SNE of test representations (figure 3).", flag=True),
    Option("--ablations", None, "Instead: all features, without aux loss, each feature alone (table 4, figure 4a).", flag=True),
    Option("--no-checkpoints", "save_checkpoints", "Do not copy the best weights of each run to OUT/checkpoints/.", flag=True, negate=True),
    Option("--overwrite", None, "Start over: forget the finished runs in OUT/runs/ (by default a rerun resumes from them).", flag=True),
    Option("--report", None, "Also write OUT/report.html: tables and figures in one self-contained file.", flag=True),
)


def option_settings(values: dict[str, Any], options: Sequence[Option] = OPTIONS) -> dict[str, Any]:
    """{configuration path: value} of the options' values (by option name, already converted: lists and dicts)
    that set a field; None (not given) and flags that are off are left out."""
    settings = {}
    for option in options:
        value = values.get(option.name)
        if option.sets is None or value is None:
            continue
        if option.negate:
            if value:
                settings[option.sets] = False
        else:
            settings[option.sets] = value
    return settings


#: Where :func:`build_config` takes a configuration path's value: its keyword group, by the path's prefix.
_GROUPS = (("train.optimizer.", "optimizer"), ("train.", "train"), ("languages.*.tower.", "tower"), ("multidomain.", "multidomain"))


def config_from_settings(domains: Sequence[str], settings: dict[str, Any], *, preset: str = DEFAULT_PRESET) -> ExperimentConfig:
    """:func:`build_config` of ``domains`` under ``preset`` with fields given by their configuration path
    (:attr:`Option.sets`, e.g. ``{"train.epochs": 3, "languages.*.tower.dropout": 0.2, "seeds": 1}``); None values
    are ignored (the preset's or the default value)."""
    groups: dict[str, dict] = {group: {} for _, group in _GROUPS}
    experiment = {}
    for path, value in settings.items():
        group = next(((g, path[len(prefix):]) for prefix, g in _GROUPS if path.startswith(prefix)), None)
        if group is not None and "." not in group[1]:
            groups[group[0]][group[1]] = value
        elif "." not in path and path != "domains":
            experiment[path] = value
        else:
            raise ValueError(f"{path}: not a configuration field that build_config sets")
    return build_config(domains, preset=preset, **groups, **experiment)


def setting_at(config: ExperimentConfig, path: str):
    """The value of a configuration path (:attr:`Option.sets`) in ``config``; ``languages.*.tower.X``: that of the
    first language's tower (the options set every language's alike)."""
    obj: Any = config
    parts = path.split(".")
    if parts[0] == "languages":
        obj, parts = config.language(DomainSpec.parse(config.domains[0]).language), parts[2:]
    for part in parts:
        obj = getattr(obj, part)
    return obj


def command_args(config: ExperimentConfig) -> list[str]:
    """A ``train`` command line (its arguments) that builds ``config``: ``--domains``, then every option of
    :data:`OPTIONS` whose field differs from what the preset gives, under the preset that needs the fewest (what
    the grid's ``--dry-run`` shows for a cell). Settings no option gives (``transfer_sources``, ``train.progress``,
    a ``few_shot`` of several languages) are left out."""

    def under(preset: str) -> list[str]:
        base = config_from_settings(config.domains, {}, preset=preset)
        args: list[str] = []
        for option in OPTIONS:
            if option.name == "preset" and preset != DEFAULT_PRESET:
                args += [option.decl, preset]
            if option.sets is None:
                continue
            value = setting_at(config, option.sets)
            if value is None or (option.sets != "domains" and value == setting_at(base, option.sets)):
                continue
            if "/" in option.decl:
                args.append(option.decl.split("/")[0 if value else 1])
            elif option.flag:
                if value is (not option.negate):
                    args.append(option.decl)
            elif option.listed:
                args += [option.decl, value if isinstance(value, str) else ",".join(value)]
            elif option.pair:
                args += [arg for key, item in value.items() for arg in (option.decl, f"{key}={item}")]
            else:
                args += [option.decl, str(value)]
        return args

    return min((under(p) for p in sorted(PRESETS, key=lambda p: p != DEFAULT_PRESET)), key=len)
