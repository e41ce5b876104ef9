"""``predict``: use a trained model (a bundle, see :mod:`predict.bundle`) on new audio.

    predict --model runs/de_random/model.bundle --language de clip.wav other.flac recordings/
    predict --model runs/de_random --output results.csv recordings/        # a run folder means its bundle
    predict --model model.bundle --jsonl recordings/ > results.jsonl       # one JSON object per file

Audio goes through the same path as in ``extract`` (``extract.audio.DecodedAudio``: any format soundfile
or librosa decodes, down-mixed to mono, resampled to each extractor's rate), then the bundle's scaler and
model; the probabilities are calibrated on the run's validation data (the bundle's temperature, when it has
one), and ``--min-confidence P`` answers ``uncertain`` for a file whose highest probability is below P. The
extractors' libraries are imported only when they load, so ``train`` never needs librosa. The extractors' weights
options (``--byol-checkpoint`` ...) are generated from the extractor registry, as ``extract``'s are
(``extract.cli.weights_options``); :data:`TRAINED_DEFAULTS` says which default to what the model was trained on.

The mismatch rule: before any audio is read, each extractor that would run here is loaded and its
provenance is compared with the one recorded in the bundle for that feature, by the one definition of a
feature's identity (``sercore.store.identity_differences``): every attribute must agree (checkpoint SHA-256,
extractor version, sample rate, hop, dimension and the extractor's settings such as ``n_mfcc`` or the wav2vec
layer), except ``checkpoint`` (a file path: moving the weights is fine, the hash decides),
``library_versions`` (torch/fairseq versions; a difference is reported as a note) and ``input_of`` (a role).
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import click
import numpy as np
import torch

from extract.audio import AUDIO_SUFFIXES
from extract.cli import WEIGHTS_ENVIRONMENT, weights_options
from extract.extractors.registry import setting_owners
from sercore.bundle import BundleError
from sercore.cli import BATCH_SIZE, command_errors, common_options, epilog, show_progress
from sercore.errors import EXIT_PARTIAL, DataError, SerError
from sercore.tables import CsvError, read_csv_text, write_csv
from sercore.store import identity_differences, normalise_attr
from train.cli import FiniteFloat
from train.model_io import Example, collate
from train.batch_limits import crop_center, max_frames

from .bundle import Bundle, load_bundle



#: The emotion given to a file whose highest probability is below ``--min-confidence``.
UNCERTAIN = "uncertain"

#: The extractor settings that default to the value the model was trained on (what the bundle recorded for the
#: feature that declares the setting, under its configuration field's name), with predict's help for them. Every
#: other setting (``--byol-checkpoint`` ...) is an option of predict as of extract, from the extractor registry.
TRAINED_DEFAULTS = {"wav2vec_layer": "wav2vec 2.0 / HuBERT layer [default: the one the model was trained on]"}


class ExtractorMismatchError(SerError):
    """The extractor available here is not the one the model was trained on."""


@dataclass
class Prediction:
    path: Path
    emotion: str
    probabilities: dict[str, float]

    def as_dict(self, language: str) -> dict:
        return {"path": str(self.path), "language": language, "emotion": self.emotion,
                "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()}}


@dataclass
class PredictionRun:
    predictions: list[Prediction] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # path -> reason


def audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files given, and the audio files (by extension) below each directory given, recursively, sorted; a file
    named twice (also as ``./a.wav``, or inside a folder given too) is listed once, where it first appears."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES))
        else:
            out.append(p)  # missing files are reported per file by the loader
    unique: dict[Path, Path] = {}  # resolved path -> the file as first named
    for f in out:
        unique.setdefault(f.resolve(), f)
    return list(unique.values())


def load_extractors(bundle: Bundle, language: str | None, settings, echo=lambda s: None) -> dict:
    """Load the extractors of the bundle's inputs and check them against the bundle (mismatch rule)."""
    from extract.extractors import MissingWeightsError, extractor_class

    provenance = bundle.provenance(language)
    extractors = {}
    for feature in bundle.inputs:
        trained = provenance.get(feature, {})
        name = trained.get("extractor") or feature
        try:
            cls = extractor_class(name, settings)
        except ValueError as exc:
            raise ExtractorMismatchError(f"feature {feature!r} was made by extractor {name!r}, which this toolkit does not have "
                                         f"({exc}); the model cannot be used on audio here") from None
        try:
            ex = cls(settings)
            ex.check_available(settings)
            ex.load()
        except MissingWeightsError as exc:
            raise ExtractorMismatchError(f"feature {feature!r}: {exc}") from None
        here = ex.provenance()
        diffs = identity_differences(trained, here)
        if diffs:
            detail = "; ".join(f"{k}: trained {a!r}, here {b!r}" for k, a, b in diffs if k != "checkpoint_sha256")
            raise ExtractorMismatchError(
                f"feature {feature!r}: the {name} extractor here is not the one the model was trained on: "
                f"checkpoint sha256 in the bundle {trained.get('checkpoint_sha256') or '(none)'}, "
                f"here {here.get('checkpoint_sha256') or '(none)'}" + (f"; {detail}" if detail else "")
                + ". Point the extractor at the weights the model was trained with (see `predict --help`) "
                  "or retrain on features from these weights.")
        lib_a, lib_b = trained.get("library_versions"), here.get("library_versions")
        if lib_a and lib_b and normalise_attr(lib_a) != normalise_attr(lib_b):
            echo(f"note: {feature}: library versions differ from training ({lib_a} there, {lib_b} here)")
        extractors[feature] = ex
    return extractors


def trained_setting(bundle: Bundle, language: str, key: str):
    """The value of index setting ``key`` (an int, e.g. the wav2vec layer: the settings of
    :data:`TRAINED_DEFAULTS`) the model was trained with, as the bundle recorded it in the provenance of the feature
    that declares the setting (None: not recorded)."""
    provenance = bundle.provenance(language)
    for feature, name in setting_owners(key):
        value = provenance.get(feature, {}).get(name)
        if value not in (None, "", -1):
            return int(value)
    return None


def extractor_settings(bundle: Bundle, language: str, device: str = "cpu", ssl: Sequence[str] = (), **weights):
    """The extractor settings for the bundle's features of ``language``: the options given (``weights``: the
    extractor registry's settings by key, e.g. ``byol_checkpoint``; ``ssl``: ``NAME=CHECKPOINT`` values); for a
    setting of :data:`TRAINED_DEFAULTS` not given, the value the bundle recorded (it beats the environment and
    ``MGSER_CONFIG``); then the environment and ``MGSER_CONFIG``; a Hugging Face encoder's recorded options fill
    only what those leave unset. An unknown key raises TypeError naming it."""
    from extract.extractors import ExtractorSettings
    from extract.extractors.ssl import options_from_provenance, parse_ssl_option

    for key in TRAINED_DEFAULTS:  # default: the value the model was trained on
        if weights.get(key) is None:
            weights[key] = trained_setting(bundle, language, key)
    settings = ExtractorSettings(device=device, ssl=parse_ssl_option(ssl), **weights).with_env_defaults()
    for feature, prov in bundle.provenance(language).items():  # Hugging Face encoders: as trained, unless told
        if feature in bundle.inputs and prov.get("model_type"):
            settings.ssl[feature] = {**options_from_provenance(prov), **settings.ssl.get(feature, {})}
    return settings


def _batch(bundle: Bundle, domain: int, feats: Sequence[dict[str, np.ndarray]], device: str):
    """The per-file features as a batch of the domain: cropped as in training and through the bundle's scaler."""
    scaler = bundle.scalers[domain]
    info = bundle.meta["domains"][domain]
    # the same bound on sequence length as in training (train --max-seconds; bundles from before it: none)
    limit = max_frames(info["provenance"], info["kinds"], bundle.meta["config"].get("train", {}).get("max_seconds"))
    examples = []
    for i, f in enumerate(feats):
        scaled = {}
        for name, a in f.items():
            if a.ndim == 2:
                a = crop_center(a, limit.get(name))
            if scaler is not None and name in scaler["mean"]:
                a = (a - scaler["mean"][name]) / scaler["std"][name]
            scaled[name] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        examples.append(Example(str(i), scaled, 0, domain))
    return collate(examples).to(device)


def _probabilities(bundle: Bundle, domain: int, logits: torch.Tensor) -> np.ndarray:
    """(n, n_classes) class probabilities of the domain: softmax of the logits over the bundle's temperature."""
    logits = logits[:, : len(bundle.meta["domains"][domain]["classes"])]
    temperature = bundle.temperature(bundle.languages[domain])  # calibrated on the run's validation data
    return torch.softmax(logits.double() / temperature, dim=-1).float().cpu().numpy()


@torch.no_grad()
def _classify(bundle: Bundle, domain: int, feats: Sequence[dict[str, np.ndarray]], device: str) -> np.ndarray:
    """(n, n_classes) class probabilities of the domain for the given per-file features."""
    return _probabilities(bundle, domain, bundle.model(_batch(bundle, domain, feats, device)).logits)


@torch.no_grad()
def _pooled(bundle: Bundle, domain: int, feats: Sequence[dict[str, np.ndarray]], device: str) -> list[tuple]:
    """Per file, what a ``--speaker-norm`` model keeps until every file is featurised: its pooled statistics (dim,)
    (a head's input, before any standardisation) and, of an ensemble, its network's logits (classes,); else None."""
    batch = _batch(bundle, domain, feats, device)
    pooled = bundle.model.pool(batch).double().cpu().numpy()
    network = getattr(bundle.model, "network_logits", None)
    logits = network(batch).double().cpu().numpy() if network else [None] * len(pooled)
    return list(zip(pooled, logits))


@torch.no_grad()
def _classify_by_speaker(bundle: Bundle, domain: int, inputs: Sequence[tuple], speakers: Sequence[str],
                         device: str) -> np.ndarray:
    """(n, n_classes) class probabilities of a ``--speaker-norm`` head (or ensemble): each file's pooled statistics
    (:func:`_pooled`) standardised with those of its speaker's files (:func:`train.scaling.speaker_standardised`, as
    in training)."""
    from train.scaling import speaker_standardised

    x = torch.as_tensor(speaker_standardised(np.stack([p for p, _ in inputs]), speakers), device=device)
    if inputs[0][1] is None:
        return _probabilities(bundle, domain, bundle.model.logits_from_pooled(x)[0])
    network = torch.as_tensor(np.stack([n for _, n in inputs]), device=device)
    return _probabilities(bundle, domain, bundle.model.logits_from_pooled(x, network)[0])


#: Files each speaker needs for a model trained with ``--speaker-norm`` (the statistics of fewer are too rough).
MIN_SPEAKER_FILES = 5


def check_supported(bundle: Bundle) -> None:
    """Refuse a model whose inputs predict cannot reproduce: a network trained with ``--speaker-norm`` (its frames
    standardised per speaker); the heads (``--model logreg|linsvm|rbfsvm``) with it are supported, and so are the
    ensembles (``--model ensemble``, ``--transfer-to``: their network is trained without it)."""
    from train.config import HEAD_MODELS

    speaker_heads = bundle.meta.get("model") in HEAD_MODELS or getattr(bundle.model, "speaker_norm", False)
    if bundle.speaker_norm and not speaker_heads:
        raise BundleError(bundle.path, "the network was trained with --speaker-norm (per-speaker standardisation of "
                                       "its frames), which predict does not compute; the heads (train --model logreg, "
                                       "linsvm or rbfsvm) and the ensembles (train --model ensemble, --transfer-to) with "
                                       "--speaker-norm are supported")


def read_speakers(path: Path) -> dict[Path, str]:
    """A ``--speakers`` CSV (columns ``path`` and ``speaker``; a relative path is taken from the CSV's folder) as
    {resolved file path: speaker}. A bad file (also one that gives a file two speakers) raises DataError naming it."""
    try:
        table = read_csv_text(path)
    except (OSError, UnicodeDecodeError, CsvError) as exc:
        raise DataError(path, f"cannot be read as a CSV ({exc})") from None
    if table.empty or not {"path", "speaker"} <= set(table.columns):
        raise DataError(path, "expected a header with the columns path and speaker and one row per file")
    out: dict[Path, str] = {}
    for k, (file, speaker) in enumerate(zip(table["path"], table["speaker"]), start=1):
        file, speaker = (file or "").strip(), (speaker or "").strip()
        if not file or not speaker:
            raise DataError(path, f"row {k} of the table: empty path or speaker")
        where = ((path.parent / file) if not Path(file).is_absolute() else Path(file)).resolve()
        if out.setdefault(where, speaker) != speaker:
            raise DataError(path, f"row {k} of the table: {file} is given the speakers {out[where]!r} and {speaker!r}")
    return out


def predict_files(bundle: Bundle, language: str | None, files: Sequence[Path], extractors: dict, device: str = "cpu",
                  batch_size: int = 16, progress: bool = False, on_result=None, min_confidence: float = 0.0,
                  speakers: Mapping[Path, str] | None = None) -> PredictionRun:
    """Predict every file; a file that cannot be decoded or featurised is recorded in ``failures`` and skipped.
    A file whose highest (calibrated) probability is below ``min_confidence`` gets the emotion :data:`UNCERTAIN`.

    A model trained with ``--speaker-norm`` needs ``speakers`` ({file: speaker}; files are looked up as given and
    resolved): every file is featurised first, then each speaker's files are standardised together and
    classified; a file without a speaker, or whose speaker has fewer than :data:`MIN_SPEAKER_FILES` files here,
    is a failure."""
    from tqdm import tqdm

    from extract.pipeline import featurise  # the same per-file path as `extract`

    check_supported(bundle)
    domain = bundle.domain_index(language)
    classes = bundle.classes(language)
    run = PredictionRun()
    pending: list[tuple[Path, dict | None, str]] = []  # (file, features or None, failure reason), in input order

    by_speaker = bundle.speaker_norm
    if by_speaker and speakers is None:
        raise ValueError("the model was trained with --speaker-norm: give every file's speaker")
    pooled: list[tuple[Path, tuple | None, str]] = []  # --speaker-norm: (file, _pooled's inputs, failure)

    def emit(path: Path, p: np.ndarray | None, reason: str) -> None:
        if p is None:
            run.failures[str(path)] = reason
            if on_result:
                on_result(None, (path, reason))
            return
        emotion = classes[int(np.argmax(p))] if float(np.max(p)) >= min_confidence else UNCERTAIN
        pred = Prediction(path, emotion, {c: float(v) for c, v in zip(classes, p)})
        run.predictions.append(pred)
        if on_result:
            on_result(pred, None)

    def flush():
        ok = [f for _, f, _ in pending if f is not None]
        if by_speaker:
            vectors = iter(_pooled(bundle, domain, ok, device) if ok else [])
            pooled.extend((path, None if feats is None else next(vectors), reason) for path, feats, reason in pending)
        else:
            probs = iter(_classify(bundle, domain, ok, device) if ok else [])
            for path, feats, reason in pending:
                emit(path, None if feats is None else next(probs), reason)
        pending.clear()

    def speaker_of(path: Path) -> str | None:
        return speakers.get(path) or speakers.get(Path(path).resolve())

    def classify_by_speaker():
        spk = {str(path): speaker_of(path) for path, x, _ in pooled if x is not None}
        counts = Counter(spk.values())
        usable = [(path, x) for path, x, _ in pooled
                  if x is not None and spk[str(path)] is not None and counts[spk[str(path)]] >= MIN_SPEAKER_FILES]
        probs = dict(zip((str(p) for p, _ in usable), _classify_by_speaker(
            bundle, domain, [x for _, x in usable], [spk[str(p)] for p, _ in usable], device))) if usable else {}
        for path, x, reason in pooled:
            if x is not None and str(path) not in probs:
                who = spk[str(path)]
                reason = ("no speaker given for this file" if who is None else
                          f"speaker {who!r} has {counts[who]} file(s) here; a model trained with --speaker-norm needs "
                          f"at least {MIN_SPEAKER_FILES} of each speaker")
            emit(path, probs.get(str(path)), reason)

    for path in tqdm(files, unit="file", disable=not progress, desc="predict"):
        try:
            pending.append((path, featurise(path, extractors), ""))
        except SerError as exc:  # AudioError: its problem, without the path (reported next to it)
            pending.append((path, None, getattr(exc, "problem", str(exc))))
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            pending.append((path, None, f"{type(exc).__name__}: {exc}"))
        if len(pending) >= batch_size:
            flush()
    flush()
    if by_speaker:
        classify_by_speaker()
    return run


#: The first columns of a results CSV (then one ``p_<class>`` column per class).
CSV_COLUMNS = ("path", "language", "emotion")


def is_results_file(path: Path) -> bool:
    """Whether ``path`` looks like a CSV that ``predict --output`` wrote (its header), so it may be replaced."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader([f.readline(65536)]), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return (tuple(header[:3]) == CSV_COLUMNS and len(header) > 3
            and all(c.startswith("p_") for c in header[3:]))


def check_output(output: Path, files: Sequence[Path], inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse (usage error naming ``--output``) an output that is one of the inputs (never replaced, even with
    ``overwrite``), or an existing file that is not an earlier results CSV, unless ``overwrite``."""
    def same(a: Path, b: Path) -> bool:
        try:
            return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
        except OSError:
            return False

    for f in (*inputs, *files):
        if same(output, f):
            raise click.BadParameter(f"{output} is one of the input files; it would be replaced by the results",
                                     param_hint="--output")
    if output.exists() and not overwrite and not is_results_file(output):
        raise click.BadParameter(f"{output} exists and is not a results file of predict; choose another name "
                                 "or pass --overwrite to replace it", param_hint="--output")


def _write_csv(path: Path, language: str, classes: list[str], predictions: list[Prediction]) -> None:
    # atomic: a full disk leaves the old file (or none), never half of one
    write_csv(path, ([str(p.path), language, p.emotion, *[f"{p.probabilities[c]:.6f}" for c in classes]] for p in predictions),
              [*CSV_COLUMNS, *[f"p_{c}" for c in classes]])


@click.command("predict", context_settings={"help_option_names": ["-h", "--help"]},
               epilog=epilog(__doc__.split("\n\n")[1], ["MGSER_CONFIG", *WEIGHTS_ENVIRONMENT]))
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="A model bundle (<run>/model.bundle) or a run folder holding one.")
@click.option("--language", default=None, help="Which language's classifier to use [default: the bundle's only language].")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results as CSV (never over an input; over another existing file only with --overwrite).")
@click.option("--overwrite", is_flag=True, help="Let --output replace an existing file that is not an earlier results CSV.")
@click.option("--jsonl", is_flag=True, help="Print one JSON object per file instead of text (errors as {\"path\", \"error\"}).")
@click.option("--strict", is_flag=True, help="Exit with status 5 if any file could not be predicted.")
@click.option("--min-confidence", type=FiniteFloat(0, 1), default=0.0, show_default=True, metavar="P",
              help="Answer 'uncertain' for a file whose highest class probability (calibrated on validation data) "
                   "is below P.")
@click.option("--speaker", default=None, metavar="NAME",
              help="Every file is of speaker NAME (a model trained with --speaker-norm needs each file's speaker).")
@click.option("--speakers", "speakers_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="CSV",
              help="Each file's speaker: a CSV with the columns path (relative to the CSV's folder) and speaker.")
@click.option("--batch-size", type=BATCH_SIZE, default=16, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@weights_options(help=TRAINED_DEFAULTS)
@click.option("--ssl", "ssl", multiple=True, metavar="NAME=CHECKPOINT",
              help="Hugging Face encoder feature NAME's checkpoint [default: the one recorded in the bundle].")
@common_options
def main(model_path, language, inputs, output, overwrite, jsonl, strict, min_confidence, speaker, speakers_csv,
         batch_size, device, ssl, verbose, quiet, **weights) -> None:
    """Predict the emotion of each audio FILE (or every audio file below each DIR) with a trained model.

    Exit status: 0 when every file was predicted (or some were, without --strict), 5 when none could be
    (or any failed, with --strict), 3 on a bad bundle, language, extractor mismatch or --speakers file, 2 on a
    bad option.
    """
    with command_errors(verbose, quiet):
        _predict(model_path, language, inputs, output, overwrite, jsonl, strict, batch_size, device, ssl, quiet,
                 min_confidence, weights, speaker, speakers_csv)


def _predict(model_path, language, inputs, output, overwrite, jsonl, strict, batch_size, device, ssl, quiet,
             min_confidence: float = 0.0, weights: Mapping | None = None, speaker: str | None = None,
             speakers_csv: Path | None = None) -> None:
    from extract.extractors.ssl import parse_ssl_option
    from train.config import check_device

    err = lambda s: click.echo(s, err=True)  # noqa: E731
    files = audio_files(inputs)
    if output is not None:  # before any work: a refused --output must not cost a model load
        check_output(output, files, inputs, overwrite)
    try:
        parse_ssl_option(ssl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ssl") from None
    if speaker is not None and speakers_csv is not None:
        raise click.BadParameter("give --speaker or --speakers, not both", param_hint="--speakers")
    if speaker is not None and not speaker.strip():
        raise click.BadParameter("an empty speaker name", param_hint="--speaker")
    check_device(device)
    bundle = load_bundle(model_path, device=device)
    check_supported(bundle)
    speakers = ({f: speaker for f in files} if speaker is not None else
                read_speakers(speakers_csv) if speakers_csv is not None else None)
    if bundle.speaker_norm and speakers is None:
        raise click.BadParameter("the model was trained with --speaker-norm (each speaker's files standardised "
                                 "together): give every file's speaker with --speaker NAME or --speakers CSV",
                                 param_hint="--speakers")
    if speakers is not None and not bundle.speaker_norm:
        err("note: the model does not use speakers (trained without --speaker-norm); --speaker/--speakers ignored")
    try:
        lang = bundle.languages[bundle.domain_index(language)]
    except BundleError as exc:
        raise click.BadParameter(exc.problem, param_hint="--language") from None
    settings = extractor_settings(bundle, lang, device, ssl, **(weights or {}))
    extractors = load_extractors(bundle, lang, settings, echo=err)
    if not files:
        raise DataError(", ".join(map(str, inputs)), "no audio files found")
    classes = bundle.classes(lang)
    from tqdm import tqdm

    def show(pred: Prediction | None, failure):
        if failure is not None:
            path, reason = failure
            if jsonl:
                click.echo(json.dumps({"path": str(path), "error": reason}))
            tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)
        elif jsonl:
            click.echo(json.dumps(pred.as_dict(lang)))
        else:
            ranked = sorted(pred.probabilities.items(), key=lambda kv: -kv[1])
            tqdm.write(f"{pred.path}\t{pred.emotion}\t" + " ".join(f"{c} {p:.3f}" for c, p in ranked))

    result = predict_files(bundle, lang, files, extractors, device=device, batch_size=batch_size,
                           progress=show_progress(quiet) and len(files) > 1, on_result=show,
                           min_confidence=min_confidence, speakers=speakers if bundle.speaker_norm else None)
    if output is not None:
        _write_csv(output, lang, classes, result.predictions)
    n_ok, n_bad = len(result.predictions), len(result.failures)
    if n_bad or output is not None or len(files) > 1:
        err(f"{n_ok} of {len(files)} file(s) predicted" + (f", {n_bad} skipped" if n_bad else "")
            + (f"; results -> {output}" if output is not None else ""))
    if n_ok == 0 or (strict and n_bad):
        sys.exit(EXIT_PARTIAL)


if __name__ == "__main__":
    main()
