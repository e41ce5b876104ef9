"""``predict``: use a trained model (a bundle, see :mod:`predict.bundle`) on new audio.

    predict --model runs/de_random/model.bundle --language de clip.wav other.flac recordings/
    predict --model runs/de_random --output results.csv recordings/        # a run folder means its bundle
    predict --model model.bundle --jsonl recordings/ > results.jsonl       # one JSON object per file

Audio goes through the same path as in ``extract`` (``extract.audio.DecodedAudio``: any format soundfile
or librosa decodes, down-mixed to mono, resampled to each extractor's rate), then the bundle's scaler and
model; the probabilities are calibrated on the run's validation data (the bundle's temperature, when it has
one), and ``--min-confidence P`` answers ``uncertain`` for a file whose highest probability is below P. The
extractors are imported only here, inside functions, so ``train`` never needs librosa.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import click
import numpy as np
import torch

from extract.audio import AUDIO_SUFFIXES
from sercore.bundle import BundleError
from sercore.cli import BATCH_SIZE, WAV2VEC_LAYER, WEIGHTS_ENV, command_errors, common_options, epilog, show_progress
from sercore.errors import EXIT_PARTIAL, DataError, SerError
from sercore.tables import write_csv
from sercore.store import identity_differences, normalise_attr
from train.cli import FiniteFloat
from train.model_io import Example, collate
from train.batch_limits import crop_center, max_frames

from .bundle import Bundle, load_bundle



#: The emotion given to a file whose highest probability is below ``--min-confidence``.
UNCERTAIN = "uncertain"


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
    """Files given, and the audio files (by extension) below each directory given, recursively, sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES))
        else:
            out.append(p)  # missing files are reported per file by the loader
    return out


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


def extractor_settings(bundle: Bundle, language: str, device: str = "cpu", wav2vec_checkpoint=None, wav2vec_layer=None,
                       allosaurus_model=None, byol_checkpoint=None, ssl: Sequence[str] = ()):
    """The extractor settings for the bundle's features of ``language``: the options given (``ssl``: ``NAME=CHECKPOINT``
    values), then the environment and ``MGSER_CONFIG``, then what the bundle recorded (wav2vec layer, encoders)."""
    from extract.extractors import ExtractorSettings
    from extract.extractors.ssl import options_from_provenance, parse_ssl_option

    if wav2vec_layer is None:  # default: the layer the model was trained on
        layer = bundle.provenance(language).get("wav2vec", {}).get("layer")
        wav2vec_layer = int(layer) if layer not in (None, "", -1) else None
    settings = ExtractorSettings(device=device, wav2vec_checkpoint=wav2vec_checkpoint, wav2vec_layer=wav2vec_layer,
                                 allosaurus_model=allosaurus_model, byol_checkpoint=byol_checkpoint,
                                 ssl=parse_ssl_option(ssl)).with_env_defaults()
    for feature, prov in bundle.provenance(language).items():  # Hugging Face encoders: as trained, unless told
        if feature in bundle.inputs and prov.get("model_type"):
            settings.ssl[feature] = {**options_from_provenance(prov), **settings.ssl.get(feature, {})}
    return settings


@torch.no_grad()
def _classify(bundle: Bundle, domain: int, feats: Sequence[dict[str, np.ndarray]], device: str) -> np.ndarray:
    """(n, n_classes) class probabilities of the domain for the given per-file features."""
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
    batch = collate(examples).to(device)
    logits = bundle.model(batch).logits[:, : len(bundle.meta["domains"][domain]["classes"])]
    temperature = bundle.temperature(bundle.languages[domain])  # calibrated on the run's validation data
    return torch.softmax(logits.double() / temperature, dim=-1).float().cpu().numpy()


def check_supported(bundle: Bundle) -> None:
    """Refuse a model whose inputs predict cannot reproduce."""
    if bundle.meta["config"].get("train", {}).get("speaker_norm"):
        raise BundleError(bundle.path, "the model was trained with --speaker-norm (per-speaker standardisation): "
                                       "predict would need each new speaker's statistics, which it does not compute")


def predict_files(bundle: Bundle, language: str | None, files: Sequence[Path], extractors: dict, device: str = "cpu",
                  batch_size: int = 16, progress: bool = False, on_result=None, min_confidence: float = 0.0) -> PredictionRun:
    """Predict every file; a file that cannot be decoded or featurised is recorded in ``failures`` and skipped.
    A file whose highest (calibrated) probability is below ``min_confidence`` gets the emotion :data:`UNCERTAIN`."""
    from tqdm import tqdm

    from extract.pipeline import featurise  # the same per-file path as `extract`

    check_supported(bundle)
    domain = bundle.domain_index(language)
    classes = bundle.classes(language)
    run = PredictionRun()
    pending: list[tuple[Path, dict | None, str]] = []  # (file, features or None, failure reason), in input order

    def flush():
        ok = [f for _, f, _ in pending if f is not None]
        probs = iter(_classify(bundle, domain, ok, device) if ok else [])
        for path, feats, reason in pending:
            if feats is None:
                run.failures[str(path)] = reason
                if on_result:
                    on_result(None, (path, reason))
                continue
            p = next(probs)
            emotion = classes[int(np.argmax(p))] if float(np.max(p)) >= min_confidence else UNCERTAIN
            pred = Prediction(path, emotion, {c: float(v) for c, v in zip(classes, p)})
            run.predictions.append(pred)
            if on_result:
                on_result(pred, None)
        pending.clear()

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
               epilog=epilog(__doc__.split("\n\n")[1], WEIGHTS_ENV))
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
@click.option("--batch-size", type=BATCH_SIZE, default=16, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--wav2vec-checkpoint", type=click.Path(path_type=Path), default=None, help="wav2vec checkpoint (or $MGSER_WAV2VEC_CHECKPOINT).")
@click.option("--wav2vec-layer", type=WAV2VEC_LAYER, default=None, help="wav2vec 2.0 / HuBERT layer [default: the one the model was trained on].")
@click.option("--allosaurus-model", type=click.Path(path_type=Path), default=None, help="Allosaurus model folder (or $MGSER_ALLOSAURUS_MODEL).")
@click.option("--byol-checkpoint", type=click.Path(path_type=Path), default=None, help="BYOL-A checkpoint (or $MGSER_BYOL_CHECKPOINT).")
@click.option("--ssl", "ssl", multiple=True, metavar="NAME=CHECKPOINT",
              help="Hugging Face encoder feature NAME's checkpoint [default: the one recorded in the bundle].")
@common_options
def main(model_path, language, inputs, output, overwrite, jsonl, strict, min_confidence, batch_size, device,
         wav2vec_checkpoint, wav2vec_layer, allosaurus_model, byol_checkpoint, ssl, verbose, quiet) -> None:
    """Predict the emotion of each audio FILE (or every audio file below each DIR) with a trained model.

    Exit status: 0 when every file was predicted (or some were, without --strict), 5 when none could be
    (or any failed, with --strict), 3 on a bad bundle, language or extractor mismatch, 2 on a bad option.
    """
    with command_errors(verbose, quiet):
        _predict(model_path, language, inputs, output, overwrite, jsonl, strict, batch_size, device, wav2vec_checkpoint,
                 wav2vec_layer, allosaurus_model, byol_checkpoint, ssl, quiet, min_confidence)


def _predict(model_path, language, inputs, output, overwrite, jsonl, strict, batch_size, device, wav2vec_checkpoint,
             wav2vec_layer, allosaurus_model, byol_checkpoint, ssl, quiet, min_confidence: float = 0.0) -> None:
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
    check_device(device)
    bundle = load_bundle(model_path, device=device)
    check_supported(bundle)
    try:
        lang = bundle.languages[bundle.domain_index(language)]
    except BundleError as exc:
        raise click.BadParameter(exc.problem, param_hint="--language") from None
    settings = extractor_settings(bundle, lang, device, wav2vec_checkpoint, wav2vec_layer, allosaurus_model,
                                  byol_checkpoint, ssl)
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
                           min_confidence=min_confidence)
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
