"""The extraction stage: a manifest in, HDF5 stores per split out (format: ``sercore.store``).

Workers (Dask, or the calling process with ``workers=0``) decode audio and run the extractors; the
calling process is the single writer. Each finished batch is committed as an atomic part file as soon
as it arrives, so a crash loses at most the batches in flight; at the end the parts of each split are
consolidated into ``features/<dataset>/<split>.h5``. A rerun skips what is stored already.
"""

from __future__ import annotations

import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from tqdm import tqdm

from sercore.errors import DataError, PartialFailure, SerError
from sercore.manifest import SPLITS, Utterance, manifest_path, read_manifest
from sercore.store import UtteranceRecord, consolidate, parts_dir, store_path, stored_utterances, write_store

from .audio import DecodedAudio
from .extractors import NAMES, ExtractorSettings, FeatureExtractor, MissingWeightsError, extractor_class

# Models loaded in this process, keyed by feature name and settings: "once per worker, not once per file".
_LOADED: dict[tuple[str, str], FeatureExtractor] = {}


def _extractor(name: str, settings: ExtractorSettings) -> FeatureExtractor:
    key = (name, repr(settings))
    if key not in _LOADED:
        ex = extractor_class(name)(settings)
        ex.load()
        _LOADED[key] = ex
    return _LOADED[key]


@dataclass
class BatchResult:
    records: list[UtteranceRecord]
    skipped: dict[str, str]
    provenance: dict[str, dict]
    split: str
    features: tuple[str, ...]


def extract_batch(rows: Sequence[Utterance], features: Sequence[str], settings: ExtractorSettings) -> BatchResult:
    """Worker task: every feature of ``features`` for every utterance of ``rows`` (one split).

    An utterance whose audio or any extractor fails is skipped as a whole, with the reason.
    """
    extractors = {n: _extractor(n, settings) for n in features}
    records, skipped = [], {}
    for u in rows:
        try:
            audio = DecodedAudio(u.path)
            feats = {}
            for n, ex in extractors.items():
                feats[n] = np.asarray(ex.extract(audio.at(ex.sample_rate, ex.min_seconds)), dtype=np.float32)
                _check_output(u.path, n, ex, feats[n])
        except DataError as exc:
            skipped[u.utt_id] = exc.problem
            continue
        except Exception as exc:  # an extractor failing on one file must not stop the batch
            skipped[u.utt_id] = f"{u.path}: {type(exc).__name__}: {exc}"
            continue
        records.append(UtteranceRecord(u.utt_id, u.emotion, u.speaker, u.language, feats))
    provenance = {n: ex.provenance() for n, ex in extractors.items()}
    return BatchResult(records, skipped, provenance, rows[0].split if rows else "", tuple(features))


def _check_output(path: str, name: str, ex: FeatureExtractor, a: np.ndarray) -> None:
    """Never store garbage: an extractor's output must have its shape and be finite (e.g. not NaN from silence)."""
    expected = 1 if ex.kind == "embedding" else 2
    if a.ndim != expected or a.shape[-1] != ex.dim or (expected == 2 and a.shape[0] == 0):
        raise DataError(path, f"{name} gave an array of shape {a.shape}, expected {'(dim,)' if expected == 1 else '(frames, dim)'} "
                              f"with dim {ex.dim}")
    if not np.isfinite(a).all():
        raise DataError(path, f"{name} gave non-finite values (NaN or inf) for this audio")


@dataclass
class ExtractionSummary:
    dataset: str
    features: list[str]
    computed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    already_done: int = 0
    unavailable: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    stores: list[Path] = field(default_factory=list)


def available_features(names: Sequence[str] | None, settings: ExtractorSettings) -> tuple[list[str], dict[str, str]]:
    """The requested features (default: all) that can run here, and why each other one cannot."""
    names = list(names or NAMES)
    ok, missing = [], {}
    for n in names:
        try:
            extractor_class(n).check_available(settings)
            ok.append(n)
        except MissingWeightsError as exc:
            missing[n] = str(exc)
        except ImportError as exc:
            missing[n] = f"{n}: cannot import its library ({exc})"
    return ok, missing


def plan(rows: Sequence[Utterance], features: Sequence[str], features_dir: Path, dataset: str,
         batch_size: int) -> tuple[list[tuple[list[Utterance], tuple[str, ...]]], int]:
    """Batches of (utterances of one split, features still missing for all of them), and how many were complete.

    An utterance recorded as skipped is not complete: it is planned again with every feature.
    """
    by_split: dict[str, list[Utterance]] = defaultdict(list)
    for u in rows:
        by_split[u.split].append(u)
    batches, complete = [], 0
    for split, split_rows in by_split.items():
        done = stored_utterances(features_dir, dataset, split)
        groups: dict[tuple[str, ...], list[Utterance]] = defaultdict(list)
        for u in split_rows:
            # Skipped utterances are tried again (their file may have been fixed); a bad file fails fast,
            # and each run's summary (and --strict) then covers every utterance that is still skipped.
            missing = tuple(f for f in features if u.utt_id not in done.get(f, ()))
            if missing:
                groups[missing].append(u)
            else:
                complete += 1
        for missing, group in groups.items():
            batches += [(group[i:i + batch_size], missing) for i in range(0, len(group), batch_size)]
    return batches, complete


def _run_local(batches, settings) -> Iterator[BatchResult]:
    for rows, feats in batches:
        yield extract_batch(rows, feats, settings)


def _run_dask(batches, settings, workers: int, scheduler: str | None, echo) -> Iterator[BatchResult]:
    from dask.distributed import as_completed

    from sercore.cluster import dask_client

    with dask_client(workers, scheduler, echo=echo) as client:
        futures = [client.submit(extract_batch, rows, feats, settings, pure=False) for rows, feats in batches]
        for fut in as_completed(futures):
            yield fut.result()
            fut.release()


def extract_dataset(
    dataset: str,
    features: Sequence[str] | None = None,
    *,
    settings: ExtractorSettings | None = None,
    manifest_dir: Path = Path("data_manifests"),
    features_dir: Path = Path("features"),
    workers: int = 1,
    scheduler: str | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
    strict: bool = False,
    progress: bool = True,
    echo=print,
    warn=None,
) -> ExtractionSummary:
    """Extract ``features`` for every utterance of ``data_manifests/<dataset>.csv`` into per-split stores.

    ``workers=0`` runs in this process without Dask; otherwise a LocalCluster of ``workers`` processes,
    or the Dask scheduler at ``scheduler`` (an address or a scheduler file: ``sercore.cluster``).
    ``echo`` gets the progress lines, ``warn`` (default: ``echo``) the features skipped and the utterances
    that could not be extracted.
    """
    warn = warn or echo
    settings = (settings or ExtractorSettings()).with_env_defaults()
    rows = read_manifest(manifest_path(manifest_dir, dataset))
    names, unavailable = available_features(features, settings)
    if features and unavailable:
        raise MissingWeightsError("; ".join(unavailable.values()))
    if not names:
        raise SerError("no extractor can run: " + "; ".join(unavailable.values()))
    summary = ExtractionSummary(dataset, names, unavailable=unavailable)
    for n, why in unavailable.items():
        warn(f"note: skipping feature {n}: {why}")
    if overwrite:
        for split in SPLITS:
            store_path(features_dir, dataset, split).unlink(missing_ok=True)
            shutil.rmtree(parts_dir(features_dir, dataset, split), ignore_errors=True)

    batches, summary.already_done = plan(rows, names, features_dir, dataset, batch_size)
    todo = sum(len(b) for b, _ in batches)
    start = time.perf_counter()
    if todo:
        echo(f"{dataset}: extracting {', '.join(names)} for {todo} utterance(s) "
             f"({summary.already_done} already stored) on {'this process' if workers == 0 and not scheduler else scheduler or f'{workers} Dask worker(s)'}")
        results = _run_local(batches, settings) if workers == 0 and not scheduler else _run_dask(batches, settings, workers, scheduler, echo)
        counter = 0
        with tqdm(total=todo, unit="utt", disable=not progress, desc=dataset) as bar:
            for res in results:
                counter += 1
                part = parts_dir(features_dir, dataset, res.split) / f"part-{time.time_ns():020d}-{counter:05d}.h5"
                write_store(part, dataset, res.split, res.records, res.provenance, res.skipped)
                summary.computed += len(res.records)
                summary.skipped.update(res.skipped)
                bar.update(len(res.records) + len(res.skipped))
    summary.seconds = time.perf_counter() - start

    for split in sorted({u.split for u in rows}):
        expected = [u.utt_id for u in rows if u.split == split]
        path = consolidate(features_dir, dataset, split, expected=expected)
        if path is not None:
            summary.stores.append(path)
    if summary.skipped:
        warn(f"{len(summary.skipped)} utterance(s) skipped (recorded in the stores' 'skipped' table):")
        for utt, why in list(summary.skipped.items())[:20]:
            warn(f"  {utt}: {why}")
        if strict:
            raise PartialFailure(manifest_path(manifest_dir, dataset), f"--strict: {len(summary.skipped)} utterance(s) could not be extracted")
    echo(f"{dataset}: {summary.computed} computed, {summary.already_done} already stored, "
         f"{len(summary.skipped)} skipped, {summary.seconds:.1f} s; stores: {', '.join(str(p) for p in summary.stores)}")
    return summary
