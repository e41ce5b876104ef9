"""The extraction stage: a manifest in, HDF5 stores per split out (format: ``sercore.store``).

Workers (Dask, or the calling process with ``workers=0``) decode audio and run the extractors; the
calling process is the single writer. Each finished batch is committed as an atomic part file as soon
as it arrives, so a crash loses at most the batches in flight; at the end the parts of each split are
consolidated into ``features/<dataset>/<split>.h5`` and the set of split stores is committed as one
generation (``stores.json``). A rerun skips what is stored already and still current: an utterance whose
manifest row or audio file changed since (its fingerprint, see ``sercore.store.Fingerprint``) is
recomputed, and one no longer in the manifest is removed. One ``extract`` at a time writes a dataset
folder (a lock naming the holder's PID); a rerun with nothing to do writes nothing.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from sercore.errors import DataError, EnvironmentProblem, OptionError, PartialFailure, SerError
from sercore.fsio import FolderLock
from sercore.manifest import SPLITS, Utterance, manifest_path, read_manifest
from sercore.store import (Fingerprint, FeatureStore, UtteranceRecord, commit_generation, consolidate, parts_dir,
                           read_split, write_store)

from .audio import DecodedAudio
from .extractors import ExtractorSettings, FeatureExtractor, MissingWeightsError, default_names, extractor_class

# Models loaded in this process, keyed by feature name and settings: "once per worker, not once per file".
_LOADED: dict[tuple[str, str], FeatureExtractor] = {}


def _extractor(name: str, settings: ExtractorSettings) -> FeatureExtractor:
    key = (name, repr(settings))
    if key not in _LOADED:
        ex = extractor_class(name, settings)(settings)
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


def featurise(audio: str | Path | DecodedAudio, extractors: Mapping[str, FeatureExtractor]) -> dict[str, np.ndarray]:
    """Decode one audio file once and run every extractor on it: ``{feature: (frames, dim) or (dim,) float32}``.

    ``predict``'s path (``extract`` runs the same extractors and checks on a batch of files at once:
    :func:`extract_batch`). Each model gets the audio at its own rate (and padded to its minimum length); an output
    that is not of the extractor's shape or not finite is refused.
    Raises :class:`DataError` naming the file (undecodable audio, bad output); an extractor's own failure
    propagates as it is.
    """
    decoded = audio if isinstance(audio, DecodedAudio) else DecodedAudio(audio)
    out = {}
    for name, ex in extractors.items():
        a = np.asarray(ex.extract(decoded.at(ex.sample_rate, ex.min_seconds)), dtype=np.float32)
        check_output(decoded.path, name, ex, a)
        out[name] = a
    return out


def extract_batch(rows: Sequence[Utterance], features: Sequence[str], settings: ExtractorSettings) -> BatchResult:
    """Worker task: every feature of ``features`` for every utterance of ``rows`` (one split).

    The worker decodes the batch's audio, then hands each extractor every utterance at once
    (:meth:`FeatureExtractor.extract_batch`: the self-supervised encoders run them in padded, length-sorted passes).
    An utterance whose audio or any extractor fails is skipped as a whole, with the reason; when an extractor fails
    on the batch, it is run on each utterance alone, so only the failing ones are skipped. Each record carries
    the fingerprint of its row and audio file, taken before the file is read (a file replaced while it is read
    then looks changed to the next run, never the other way round).
    """
    extractors = {n: _extractor(n, settings) for n in features}
    skipped: dict[str, str] = {}
    decoded: dict[str, tuple[Fingerprint | None, DecodedAudio]] = {}
    for u in rows:
        try:
            try:
                fingerprint = Fingerprint.of(u)
            except OSError:
                fingerprint = None  # DecodedAudio names the problem
            decoded[u.utt_id] = fingerprint, DecodedAudio(u.path)
        except DataError as exc:
            skipped[u.utt_id] = exc.problem
        except Exception as exc:  # noqa: BLE001 - a decoder failing on one file must not stop the batch
            skipped[u.utt_id] = f"{u.path}: {type(exc).__name__}: {exc}"
    feats: dict[str, dict[str, np.ndarray]] = {utt: {} for utt in decoded}
    for name, ex in extractors.items():
        todo = [utt for utt in decoded if utt not in skipped]
        for utt, result in zip(todo, _run_extractor(ex, [decoded[utt][1] for utt in todo])):
            if isinstance(result, str):
                skipped[utt] = result
                continue
            feats[utt][name] = result
    records = [UtteranceRecord(u.utt_id, u.emotion, u.speaker, u.language, feats[u.utt_id], decoded[u.utt_id][0],
                               decoded[u.utt_id][1].seconds)
               for u in rows if u.utt_id in decoded and u.utt_id not in skipped]
    provenance = {n: ex.provenance() for n, ex in extractors.items()}
    return BatchResult(records, skipped, provenance, rows[0].split if rows else "", tuple(features))


def _run_extractor(ex: FeatureExtractor, audio: Sequence[DecodedAudio]) -> list[np.ndarray | str]:
    """``ex`` on every decoded utterance: its checked output, or the reason it failed (a string).

    One :meth:`FeatureExtractor.extract_batch` call for them all; if it raises, each utterance alone.
    """
    if not audio:
        return []
    wavs = [a.at(ex.sample_rate, ex.min_seconds) for a in audio]
    try:
        outputs = ex.extract_batch(wavs)
    except Exception:  # noqa: BLE001 - find the utterance(s) that fail, one by one
        outputs = None
    if outputs is None or len(outputs) != len(wavs):
        outputs = []
        for wav, a in zip(wavs, audio):
            try:
                outputs.append(ex.extract(wav))
            except DataError as exc:
                outputs.append(exc.problem)
            except Exception as exc:  # noqa: BLE001 - an extractor failing on one file must not stop the batch
                outputs.append(f"{a.path}: {type(exc).__name__}: {exc}")
    results: list[np.ndarray | str] = []
    for out, a in zip(outputs, audio):
        if isinstance(out, str):
            results.append(out)
            continue
        arr = np.asarray(out)
        if arr.dtype not in (np.float16, np.float32):  # float16: an encoder's output in its stored dtype, kept as it is
            arr = arr.astype(np.float32)
        try:
            check_output(a.path, ex.name, ex, arr)
        except DataError as exc:
            results.append(exc.problem)
            continue
        results.append(arr)
    return results


def check_output(path: str | Path, name: str, ex: FeatureExtractor, a: np.ndarray) -> None:
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
    changed: dict[str, str] = field(default_factory=dict)  # utterance -> why its stored features were stale
    removed: int = 0  # stored utterances no longer in the manifest (or moved to another split)
    long: dict[str, float] = field(default_factory=dict)  # utterance -> seconds, far longer than the rest
    unavailable: dict[str, str] = field(default_factory=dict)
    missing_audio: dict[str, str] = field(default_factory=dict)  # utterance -> its audio path, gone since it was stored
    seconds: float = 0.0
    stores: list[Path] = field(default_factory=list)


def available_features(names: Sequence[str] | None, settings: ExtractorSettings) -> tuple[list[str], dict[str, str]]:
    """The requested features (default: all) that can run here, and why each other one cannot."""
    names = list(names or (*default_names(), *settings.ssl))
    ok, missing = [], {}
    for n in names:
        try:
            extractor = extractor_class(n, settings)
        except ValueError as exc:  # a name no extractor has
            raise OptionError("--features", str(exc)) from None
        try:
            extractor.check_available(settings)
            ok.append(n)
        except MissingWeightsError as exc:
            missing[n] = str(exc)
        except ImportError as exc:
            missing[n] = f"{n}: cannot import its library ({exc})"
    return ok, missing


@dataclass
class Plan:
    """What a run has to do: batches of (utterances of one split, features to compute for all of them)."""

    batches: list[tuple[list[Utterance], tuple[str, ...]]]
    complete: int  # utterances stored with every requested feature, and still current
    changed: dict[str, str]  # utterance -> why its stored features are stale (recomputed with every stored feature)
    removed: int  # stored utterances that consolidation will drop (no longer in this split of the manifest)
    #: utterance -> audio path, for stored, complete utterances whose audio file is gone (their features are kept)
    missing_audio: dict[str, str] = field(default_factory=dict)

    @property
    def todo(self) -> int:
        return sum(len(b) for b, _ in self.batches)


def plan(rows: Sequence[Utterance], features: Sequence[str], features_dir: Path, dataset: str,
         batch_size: int, *, overwrite: bool = False) -> Plan:
    """What to compute so that every utterance of ``rows`` is stored, current, with every feature of ``features``.

    An utterance recorded as skipped is not complete: it is planned again with every feature. One whose
    fingerprint no longer matches its manifest row or audio file is stale: it is planned again with the
    requested features and every feature its split already stores (so no feature keeps stale values).
    ``overwrite`` plans everything.
    """
    by_split: dict[str, list[Utterance]] = defaultdict(list)
    for u in rows:
        by_split[u.split].append(u)
    out = Plan([], 0, {}, 0)
    for split in sorted(by_split):
        split_rows = by_split.get(split, [])
        contents = read_split(features_dir, dataset, split, include_store=not overwrite)
        try:
            stored, stored_features = contents.utterances, list(contents.attrs)
            wanted = {u.utt_id for u in split_rows}
            out.removed += sum(u not in wanted for u in stored)
            groups: dict[tuple[str, ...], list[Utterance]] = defaultdict(list)
            for u in split_rows:
                # Skipped utterances are tried again (their file may have been fixed); a bad file fails fast,
                # and each run's summary (and --strict) then covers every utterance that is still skipped.
                entry = stored.get(u.utt_id)
                why = None
                if entry is not None:
                    why = ("stored without a fingerprint (an older store)" if entry.fingerprint is None
                           else entry.fingerprint.stale_reason(u, entry.emotion, entry.speaker, entry.language))
                if why:
                    out.changed[u.utt_id] = why
                    missing = tuple(dict.fromkeys([*features, *stored_features]))
                else:
                    have = entry.where if entry is not None else {}
                    missing = tuple(f for f in features if f not in have)
                if missing:
                    groups[missing].append(u)
                else:
                    out.complete += 1
                    if not os.path.exists(u.path):  # deleted since: the stored features stay, and the user is told
                        out.missing_audio[u.utt_id] = u.path
        finally:
            contents.close()
        for missing, group in groups.items():
            out.batches += [(group[i:i + batch_size], missing) for i in range(0, len(group), batch_size)]
    return out


def _run_local(batches, settings) -> Iterator[BatchResult]:
    for rows, feats in batches:
        yield extract_batch(rows, feats, settings)


def _run_dask(batches, settings, workers: int, scheduler: str | None, echo) -> Iterator[BatchResult]:
    from dask.distributed import as_completed

    from sercore.cluster import dask_client

    # --device cuda on this machine: one worker per visible GPU (at most ``workers``), each seeing only its own
    gpu = scheduler is None and str(settings.device).startswith("cuda")
    with dask_client(workers, scheduler, gpu=gpu, echo=echo) as client:
        futures = [client.submit(extract_batch, rows, feats, settings, pure=False) for rows, feats in batches]
        for fut in as_completed(futures):
            yield fut.result()
            fut.release()


#: An utterance longer than this many times the dataset's median duration is named in the summary: the
#: trainer pads a batch to its longest utterance, so one 10-minute file among 2-second clips costs memory.
LONG_FACTOR = 4.0


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

    ``workers=0`` runs in this process without Dask; otherwise a LocalCluster of ``workers`` processes (with
    ``settings.device`` cuda: one per visible GPU, at most ``workers``), or the Dask scheduler at ``scheduler``
    (an address or a scheduler file: ``sercore.cluster``).
    ``echo`` gets the progress lines, ``warn`` (default: ``echo``) the features skipped, the utterances
    that could not be extracted and those far longer than the rest.
    Raises :class:`EnvironmentProblem` when another ``extract`` holds the dataset folder, the folder is not
    writable and there is work to do, or the disk is full (nothing committed is damaged: run it again).
    """
    if workers < 0:
        raise ValueError(f"workers must be 0 (this process) or more, not {workers}")
    if batch_size < 1:
        raise ValueError(f"batch size must be 1 or more, not {batch_size}")
    warn = warn or echo
    settings = (settings or ExtractorSettings()).with_env_defaults()
    mpath = manifest_path(manifest_dir, dataset)
    rows = read_manifest(mpath)
    names, unavailable = available_features(features, settings)
    if features and unavailable:
        raise MissingWeightsError("; ".join(unavailable.values()))
    if not names:
        raise SerError("no extractor can run: " + "; ".join(unavailable.values()))
    summary = ExtractionSummary(dataset, names, unavailable=unavailable)
    for n, why in unavailable.items():
        warn(f"note: skipping feature {n}: {why}")
    folder = Path(features_dir) / dataset
    with FolderLock(folder, ".extract.lock", "`extract`") as lock:
        if overwrite and lock.writable:  # parts of an earlier run; the stores stay readable until replaced
            for split in SPLITS:
                shutil.rmtree(parts_dir(features_dir, dataset, split), ignore_errors=True)
        todo_plan = plan(rows, names, features_dir, dataset, batch_size, overwrite=overwrite)
        summary.already_done, summary.changed, summary.removed = todo_plan.complete, todo_plan.changed, todo_plan.removed
        summary.missing_audio = todo_plan.missing_audio
        if (todo_plan.todo or todo_plan.removed or overwrite) and not lock.writable:
            raise EnvironmentProblem(folder, f"not writable (a read-only folder or no permission), and "
                                             f"{todo_plan.todo} utterance(s) need extracting")
        if todo_plan.changed:
            echo(f"{dataset}: {len(todo_plan.changed)} stored utterance(s) are stale and will be recomputed: "
                 + ", ".join(f"{u} ({why})" for u, why in list(todo_plan.changed.items())[:5])
                 + (" ..." if len(todo_plan.changed) > 5 else ""))
        if todo_plan.removed:
            echo(f"{dataset}: {todo_plan.removed} stored utterance(s) are no longer in this split of {mpath} and will be removed")
        todo = todo_plan.todo
        start = time.perf_counter()
        if todo:
            where = 'this process' if workers == 0 and not scheduler else scheduler or f'{workers} Dask worker(s)'
            echo(f"{dataset}: extracting {', '.join(names)} for {todo} utterance(s) ({summary.already_done} already stored) on {where}")
            batches = todo_plan.batches
            results = _run_local(batches, settings) if workers == 0 and not scheduler else _run_dask(batches, settings, workers, scheduler, echo)
            counter = 0
            # closing(): on an error (a full disk) the Dask client and cluster are shut down here, not by the
            # garbage collector during interpreter exit (which crashed with a segfault)
            with closing(results), tqdm(total=todo, unit="utt", disable=not progress, desc=dataset) as bar:
                for res in results:
                    counter += 1
                    part = parts_dir(features_dir, dataset, res.split) / f"part-{time.time_ns():020d}-{counter:05d}.h5"
                    write_store(part, dataset, res.split, res.records, res.provenance, res.skipped)
                    summary.computed += len(res.records)
                    summary.skipped.update(res.skipped)
                    bar.update(len(res.records) + len(res.skipped))
        summary.seconds = time.perf_counter() - start

        splits = sorted({u.split for u in rows})
        for split in splits:
            expected = [u.utt_id for u in rows if u.split == split]
            path = consolidate(features_dir, dataset, split, expected=expected, include_store=not overwrite)
            if path is not None:
                summary.stores.append(path)
        if lock.writable:
            commit_generation(features_dir, dataset, [p.stem for p in summary.stores], mpath)
    summary.long = long_utterances(summary.stores)
    if summary.skipped:
        warn(f"{len(summary.skipped)} utterance(s) skipped (recorded in the stores' 'skipped' table):")
        for utt, why in list(summary.skipped.items())[:20]:
            warn(f"  {utt}: {why}")
    if summary.missing_audio:
        warn(f"note: {len(summary.missing_audio)} stored utterance(s) whose audio file is gone; their stored features "
             "are kept and used: " + ", ".join(list(summary.missing_audio.values())[:5])
             + (" ..." if len(summary.missing_audio) > 5 else ""))
    if summary.long:
        warn(f"note: {len(summary.long)} utterance(s) more than {LONG_FACTOR:g}x longer than the median: "
             + ", ".join(f"{u} ({sec:.1f} s)" for u, sec in list(summary.long.items())[:5])
             + ("..." if len(summary.long) > 5 else "") + "; training pads a batch to its longest utterance")
    echo(f"{dataset}: {summary.computed} computed, {summary.already_done} already stored, "
         f"{len(summary.changed)} stale recomputed, {summary.removed} removed, "
         f"{len(summary.skipped)} skipped, {summary.seconds:.1f} s; stores: {', '.join(str(p) for p in summary.stores)}")
    if summary.skipped and strict:
        raise PartialFailure(mpath, f"--strict: {len(summary.skipped)} utterance(s) could not be extracted")
    return summary


def long_utterances(stores: Sequence[Path], factor: float = LONG_FACTOR) -> dict[str, float]:
    """Utterances of the stores whose audio is more than ``factor`` times the median duration, longest first."""
    seconds: dict[str, float] = {}
    for path in stores:
        with FeatureStore(path) as st:
            seconds.update((u, float(x)) for u, x in zip(st.utt_ids, st.seconds) if math.isfinite(x))
    if len(seconds) < 2:
        return {}
    median = float(np.median(list(seconds.values())))
    long = {u: x for u, x in seconds.items() if x > factor * median}
    return dict(sorted(long.items(), key=lambda kv: -kv[1]))
