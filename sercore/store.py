"""The HDF5 feature store: the one contract between the extraction stage and the trainer.

On disk, for each dataset and split::

    features/<dataset>/<split>.h5            consolidated store, complete for every feature it holds
    features/<dataset>/<split>.parts/*.h5    batches committed by a running extraction, not yet merged

Every file, store or part, has the same layout::

    features/<dataset>/stores.json           which store of each split belongs to the current generation (below)

    attrs: format="mgser-store", format_version, dataset, split, store_id (unique per written file),
           consolidated (a split store written by ``consolidate``: one of a generation that stores.json records)
    utterances/{utt_id, emotion, speaker, language}   (n,) UTF-8 strings, one order for all features
    utterances/{row_sha256, audio_sha256}             (n,) fingerprints of the manifest row and of the audio bytes
    utterances/{audio_size, audio_mtime_ns}           (n,) int64, the audio file's size and modification time
    utterances/seconds                                (n,) float64, the decoded audio's duration (NaN: unknown)
    features/<name>/data      (n, dim) float32 for an utterance embedding,
                              (sum of frames, dim) float32 for a sequence, utterances one after another
                              (float16 where the feature's ``dtype`` attribute says so, see stored_dtype)
    features/<name>/offsets   (n + 1,) int64, sequences only: utterance i is data[offsets[i]:offsets[i+1]]
    features/<name> attrs     kind ("sequence" | "embedding"), dim, and the extractor's provenance
                              (extractor, version, sample_rate, hop_seconds, checkpoint_sha256, ...)
    skipped/{utt_id, reason}  utterances that could not be processed, and why

Every dataset is chunked with HDF5's Fletcher-32 checksum filter and strings are fixed-length UTF-8 (no
unchecked global heap): a damaged block raises :class:`~sercore.errors.StoreError` on read rather than
coming back as other numbers or text (files written before this carry no checksum and still read). Anything else wrong (truncated, not HDF5, missing groups or
datasets, inconsistent offsets) is refused when the file is opened.

Why parts: HDF5 has no journal, so a process killed in the middle of a write can leave a file that no
longer opens. Every file here is therefore written under a temporary name and renamed into place
(``os.replace`` is atomic on POSIX): a killed run leaves complete parts, a complete old store, and at
worst a stray ``*.tmp`` that the next run removes. Only one process (the extraction's writer) ever writes;
``extract`` holds a lock on the dataset folder (:class:`sercore.fsio.FolderLock`) while it runs.

Fingerprints: each stored utterance carries the fingerprint of its manifest row (path, emotion, speaker,
language) and of its audio file (size, modification time and SHA-256 of the bytes), so that a rerun
recomputes an utterance whose row or audio changed (:meth:`Fingerprint.stale_reason`) and the trainer
refuses stores that disagree with the current manifest (:func:`open_dataset`).

Generations: the split stores of a dataset are replaced one file at a time, so a reader could see a new
``train.h5`` beside an old ``valid.h5``. After consolidating, ``extract`` records the ``store_id`` of every
split's store in ``stores.json`` (atomically); :func:`open_dataset` opens the stores listed there and checks
their ids, so a reader gets one complete generation or a refusal (a missing split store, or an extraction
still committing: it waits for it, then refuses naming the command that completes the set).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

import h5py
import numpy as np

from .errors import StoreError
from .fsio import ensure_free_space, file_sha256, write_atomic
from .manifest import SPLITS, Utterance, read_manifest

FORMAT = "mgser-store"
#: Version 2 added the fingerprint columns and ``store_id``; version 1 files still read (without fingerprints,
#: so ``extract`` recomputes their utterances once).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
FeatureKind = Literal["sequence", "embedding"]
_META = ("utt_id", "emotion", "speaker", "language")
_FINGERPRINT_TEXT = ("row_sha256", "audio_sha256")
_FINGERPRINT_INT = ("audio_size", "audio_mtime_ns")
#: Provenance attributes that do not identify a feature: every other attribute (extractor, version, kind, dim,
#: sample rate, hop, checkpoint SHA-256, the extractor's settings) must agree before two files' features may be
#: merged, a store may be trained on beside another, or a model may be used on features computed here.
#: ``checkpoint`` is a file path (moving the weights is fine, the hash decides); ``library_versions`` differ
#: between machines without changing the features beyond float noise; ``input_of`` is a feature's role
#: (``ge2e_mel`` is the input of ``ge2e`` fine-tuning), not its values; ``compute_dtype`` (a Hugging Face encoder
#: run in float16 on a GPU) changes values within the float16 store's own rounding.
NOT_IDENTITY = frozenset({"checkpoint", "library_versions", "input_of", "compute_dtype"})
#: The name of the file listing the current generation of a dataset's split stores.
GENERATION_FILE = "stores.json"


def row_sha256(u: Utterance) -> str:
    """Fingerprint of what a manifest row says about an utterance's features: its path, emotion, speaker, language."""
    return hashlib.sha256("\0".join((u.path, u.emotion, u.speaker, u.language)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """What a stored utterance was computed from: its manifest row and its audio file.

    ``audio_sha256`` is the SHA-256 of the file's bytes (computed by the worker that read it anyway); size and
    modification time decide cheaply, and the hash decides when only the time changed (a copy, a ``touch``).
    """

    row_sha256: str
    audio_size: int
    audio_mtime_ns: int
    audio_sha256: str

    @classmethod
    def of(cls, u: Utterance, content: bool = True) -> "Fingerprint":
        """The fingerprint of ``u`` as it is now (``OSError`` if its audio file cannot be read)."""
        st = os.stat(u.path)
        sha = file_sha256(u.path) if content else ""
        return cls(row_sha256(u), int(st.st_size), int(st.st_mtime_ns), sha)

    def stale_reason(self, u: Utterance, emotion: str = "", speaker: str = "", language: str = "") -> str | None:
        """Why features stored with this fingerprint are not those of manifest row ``u`` now (None: they are).

        ``emotion``, ``speaker``, ``language`` (what the store holds) only make the reason precise. An audio file
        that is missing now is not a reason (stores may travel without their audio); ``extract`` fails on it anyway.
        """
        if self.row_sha256 != row_sha256(u):
            stored = {"emotion": emotion, "speaker": speaker, "language": language}
            changed = [f"{k} {v!r} -> {getattr(u, k)!r}" for k, v in stored.items() if v and v != getattr(u, k)]
            return ", ".join(changed) if changed else "path changed in the manifest"
        try:
            st = os.stat(u.path)
        except OSError:
            return None
        if st.st_size != self.audio_size:
            return "audio file changed (size)"
        if st.st_mtime_ns != self.audio_mtime_ns and file_sha256(u.path) != self.audio_sha256:
            return "audio file changed (content)"
        return None


def store_path(features_root: str | Path, dataset: str, split: str) -> Path:
    return Path(features_root) / dataset / f"{split}.h5"


def parts_dir(features_root: str | Path, dataset: str, split: str) -> Path:
    return Path(features_root) / dataset / f"{split}.parts"


@dataclass
class UtteranceRecord:
    """What one worker computed for one utterance. Arrays: (frames, dim) sequences or (dim,) embeddings."""

    utt_id: str
    emotion: str
    speaker: str
    language: str
    features: dict[str, np.ndarray] = field(default_factory=dict)
    fingerprint: Fingerprint | None = None  # None: unknown (a store written outside `extract`)
    seconds: float = float("nan")  # duration of the decoded audio


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    kind: FeatureKind
    dim: int
    attrs: Mapping[str, object]


def encode_attr(value):
    """A provenance value as an HDF5 attribute: scalars and strings as they are, nested values as JSON."""
    if isinstance(value, (dict, list, tuple)):
        value = json.dumps(value, sort_keys=True)
    if value is None:
        value = ""
    if isinstance(value, str):
        return np.bytes_(value.encode("utf-8"))  # fixed-length: see _text
    return value


def _text(values: Iterable[str]) -> np.ndarray:
    """Strings as fixed-length UTF-8 bytes. Variable-length strings live in HDF5's global heap, which has no
    checksum, and a damaged heap can make HDF5 hang or return other text; these are chunked with a checksum."""
    encoded = [str(v).encode("utf-8") for v in values]
    return np.array(encoded, dtype=f"S{max([1] + [len(e) for e in encoded])}")


def decode_attr(value):
    """An HDF5 attribute as the Python value it was written from (the inverse of :func:`encode_attr`)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def normalise_attr(value):
    """A provenance value as it reads back from a store or a bundle's JSON, so that values compare equal
    whichever way they travelled (tuples as lists, numpy scalars as numbers, None as "")."""
    return json.loads(json.dumps(decode_attr(encode_attr(value)), default=str))


def identity_differences(a: Mapping[str, object], b: Mapping[str, object]) -> list[tuple[str, object, object]]:
    """(attribute, value in ``a``, value in ``b``) for every identifying attribute on which two feature
    provenances disagree (every attribute but :data:`NOT_IDENTITY`; empty list: the same feature)."""
    diffs = []
    for k in sorted((set(a) | set(b)) - NOT_IDENTITY):
        if str(normalise_attr(a.get(k, ""))) != str(normalise_attr(b.get(k, ""))):
            diffs.append((k, a.get(k, "(absent)"), b.get(k, "(absent)")))
    return diffs


def stored_dtype(attrs: Mapping[str, object]) -> np.dtype:
    """How a feature's values are stored: float32, or float16 when its provenance says ``dtype = "float16"``
    (the Hugging Face encoders' stacked hidden layers, half the disk and memory). Readers get that dtype back."""
    dtype = str(attrs.get("dtype") or "float32")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"unsupported feature dtype {dtype!r} (float32 or float16)")
    return np.dtype(dtype)


def same_identity(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
    """The identifying attributes on which two feature provenances disagree (empty list: same feature)."""
    return [k for k, _, _ in identity_differences(a, b)]


class FeatureStore:
    """Read-only view of one store or part file. Validates the layout on open.

    >>> store = FeatureStore("features/emodb/train.h5")
    >>> store.features["mfcc"].kind, len(store)
    ('sequence', 342)
    >>> mfcc = store.read("mfcc")          # list of (frames, 40) arrays, in store.utt_ids order
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(self.path, "feature store not found (run `extract` for this dataset first)")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(self.path, f"not a readable HDF5 file, truncated or corrupt ({exc})") from None
        try:
            self._load_index()
        except StoreError:
            self.close()
            raise
        except (KeyError, OSError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
            self.close()
            raise StoreError(self.path, f"corrupt feature store ({type(exc).__name__}: {exc})") from None

    def _load_index(self) -> None:
        f = self._file
        fmt = decode_attr(f.attrs.get("format"))
        if fmt != FORMAT:
            raise StoreError(self.path, f"not a {FORMAT} file (format attribute is {fmt!r})")
        version = int(f.attrs.get("format_version", -1))
        if version not in READABLE_VERSIONS:
            raise StoreError(self.path, f"store format version {version}, this toolkit reads version "
                                        f"{' or '.join(map(str, READABLE_VERSIONS))}")
        self.store_id: str = decode_attr(f.attrs.get("store_id", "")) or ""
        #: Written by ``consolidate`` (``extract``): its dataset's split stores are listed in stores.json.
        self.consolidated: bool = bool(f.attrs.get("consolidated", False))
        self.dataset: str = decode_attr(f.attrs["dataset"])
        self.split: str = decode_attr(f.attrs["split"])
        if "utterances" not in f:
            raise StoreError(self.path, "missing group 'utterances'")
        meta = {k: [s.decode() if isinstance(s, bytes) else s for s in f["utterances"][k][()]] for k in _META}
        n = len(meta["utt_id"])
        if any(len(v) != n for v in meta.values()):
            raise StoreError(self.path, "utterance columns have different lengths")
        self.utt_ids: list[str] = meta["utt_id"]
        self.emotions: list[str] = meta["emotion"]
        self.speakers: list[str] = meta["speaker"]
        self.languages: list[str] = meta["language"]
        #: Per utterance (in ``utt_ids`` order), what it was computed from; None in files without fingerprints.
        self.fingerprints: list[Fingerprint | None] = [None] * n
        if all(k in f["utterances"] for k in _FINGERPRINT_TEXT + _FINGERPRINT_INT):
            cols = {k: f["utterances"][k][()] for k in _FINGERPRINT_TEXT + _FINGERPRINT_INT}
            if any(len(v) != n for v in cols.values()):
                raise StoreError(self.path, "fingerprint columns have different lengths")
            text = {k: [s.decode() if isinstance(s, bytes) else s for s in cols[k]] for k in _FINGERPRINT_TEXT}
            self.fingerprints = [
                Fingerprint(text["row_sha256"][i], int(cols["audio_size"][i]), int(cols["audio_mtime_ns"][i]),
                            text["audio_sha256"][i]) if text["row_sha256"][i] else None
                for i in range(n)]
        self.seconds: np.ndarray = (f["utterances"]["seconds"][()].astype(np.float64) if "seconds" in f["utterances"]
                                    else np.full(n, np.nan))
        self.features: dict[str, FeatureInfo] = {}
        for name, group in f.get("features", {}).items():
            attrs = {k: decode_attr(v) for k, v in group.attrs.items()}
            kind = attrs.get("kind")
            data = group["data"]
            if kind == "embedding":
                if data.shape[0] != n:
                    raise StoreError(self.path, f"feature {name!r} has {data.shape[0]} rows for {n} utterances")
            elif kind == "sequence":
                offsets = group["offsets"][()]
                if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != data.shape[0] or np.any(np.diff(offsets) < 0):
                    raise StoreError(self.path, f"feature {name!r} has inconsistent offsets")
            else:
                raise StoreError(self.path, f"feature {name!r} has unknown kind {kind!r}")
            if data.ndim != 2 or data.shape[1] != int(attrs.get("dim", -1)):
                raise StoreError(self.path, f"feature {name!r} data has shape {data.shape}, expected (*, {attrs.get('dim')})")
            self.features[name] = FeatureInfo(name, kind, int(attrs["dim"]), attrs)
        self.skipped: dict[str, str] = {}
        if "skipped" in f:
            ids = [s.decode() if isinstance(s, bytes) else s for s in f["skipped"]["utt_id"][()]]
            reasons = [s.decode() if isinstance(s, bytes) else s for s in f["skipped"]["reason"][()]]
            self.skipped = dict(zip(ids, reasons))

    def __len__(self) -> int:
        return len(self.utt_ids)

    def feature(self, name: str) -> FeatureInfo:
        if name not in self.features:
            have = ", ".join(sorted(self.features)) or "none"
            raise StoreError(self.path, f"no feature {name!r} in this store (it has: {have}); run `extract --features {name}`")
        return self.features[name]

    def read(self, name: str) -> list[np.ndarray]:
        """All utterances' arrays for one feature, in ``utt_ids`` order: (frames, dim) or (dim,)."""
        info = self.feature(name)
        with self._reading(name):
            group = self._file["features"][name]
            data = group["data"][()]
            if info.kind == "embedding":
                return list(data)
            offsets = group["offsets"][()]
        return [data[offsets[i]:offsets[i + 1]] for i in range(len(self))]

    def frame_counts(self, name: str) -> np.ndarray:
        """(n,) int64: frames per utterance of a sequence feature (1 per utterance for an embedding)."""
        info = self.feature(name)
        if info.kind == "embedding":
            return np.ones(len(self), np.int64)
        with self._reading(name):
            return np.diff(self._file["features"][name]["offsets"][()]).astype(np.int64)

    def read_one(self, name: str, index: int) -> np.ndarray:
        info = self.feature(name)
        with self._reading(name):
            group = self._file["features"][name]
            if info.kind == "embedding":
                return group["data"][index]
            start, stop = group["offsets"][index:index + 2]
            return group["data"][start:stop]

    @contextmanager
    def _reading(self, name: str):
        # A damaged block fails here in HDF5: a failed Fletcher-32 checksum, or broken structures.
        try:
            yield
        except (KeyError, OSError, ValueError, RuntimeError, AttributeError) as exc:
            raise StoreError(self.path, f"corrupt data in feature {name!r}, a damaged block or a failed checksum "
                                        f"({type(exc).__name__}: {exc}); re-extract this store") from None

    def close(self) -> None:
        try:
            self._file.close()
        except Exception:  # already closed, or never opened properly
            pass

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _write_h5(path: Path, fill, expected_bytes: int | None = None) -> Path:
    """Create the HDF5 file ``path`` through ``fill(h5file)``, atomically (:func:`sercore.fsio.write_atomic`).

    HDF5 does not recover from a failed write (a full disk): its error spam is followed by a crash when the
    library closes its files at exit. So a file is built in memory and written with ordinary file I/O (a
    full disk is then a clean ``ENOSPC``) when ``expected_bytes`` is None (part files: one batch); a large
    store (``expected_bytes`` given, an estimate of its size) is written directly after checking that
    the disk has room for it.
    """
    if expected_bytes is None:
        def write(tmp: Path) -> None:
            buffer = io.BytesIO()
            with h5py.File(buffer, "w") as f:
                fill(f)
            tmp.write_bytes(buffer.getbuffer())
    else:
        ensure_free_space(path, expected_bytes)

        def write(tmp: Path) -> None:
            with h5py.File(tmp, "w") as f:
                fill(f)

    return write_atomic(path, write)


def _write_header(f: h5py.File, dataset: str, split: str, meta: Mapping[str, Sequence[str]], skipped: Mapping[str, str],
                  fingerprints: Sequence[Fingerprint | None], seconds: Sequence[float]) -> None:
    f.attrs["format"] = encode_attr(FORMAT)
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["dataset"] = encode_attr(dataset)
    f.attrs["split"] = encode_attr(split)
    f.attrs["store_id"] = encode_attr(uuid.uuid4().hex)
    g = f.create_group("utterances")
    for k in _META:
        column = _text(meta[k])
        g.create_dataset(k, data=column, **_checked(len(column)))
    unknown = Fingerprint("", 0, 0, "")
    for k in _FINGERPRINT_TEXT:
        column = _text([getattr(fp or unknown, k) for fp in fingerprints])
        g.create_dataset(k, data=column, **_checked(len(column)))
    for k in _FINGERPRINT_INT:
        column = np.array([getattr(fp or unknown, k) for fp in fingerprints], dtype=np.int64)
        g.create_dataset(k, data=column, **_checked(len(column)))
    g.create_dataset("seconds", data=np.asarray(seconds, dtype=np.float64), **_checked(len(seconds)))
    s = f.create_group("skipped")
    for k, values in (("utt_id", list(skipped)), ("reason", list(skipped.values()))):
        column = _text(values)
        s.create_dataset(k, data=column, **_checked(len(column)))


def _checked(n: int) -> dict:
    """Dataset options: chunked with a Fletcher-32 checksum per chunk, so a damaged block fails on read
    instead of coming back as other numbers (HDF5 cannot chunk an empty dataset, which has no data to damage)."""
    return {"chunks": True, "fletcher32": True} if n else {}


def _feature_group(f: h5py.File, name: str, attrs: Mapping[str, object]) -> h5py.Group:
    g = f.require_group("features").create_group(name)
    for k, v in attrs.items():
        g.attrs[k] = encode_attr(v)
    return g


def write_store(
    path: str | Path,
    dataset: str,
    split: str,
    records: Sequence[UtteranceRecord],
    feature_attrs: Mapping[str, Mapping[str, object]],
    skipped: Mapping[str, str] | None = None,
) -> Path:
    """Write a complete file (a part, usually) atomically. Every record must carry every feature in ``feature_attrs``.

    ``feature_attrs[name]`` must hold at least ``kind`` and ``dim``; the rest is provenance.
    """
    path = Path(path)
    for r in records:
        missing = set(feature_attrs) - set(r.features)
        if missing:
            raise ValueError(f"record {r.utt_id!r} lacks feature(s) {sorted(missing)}")
    meta = {k: [getattr(r, k) for r in records] for k in _META}

    def fill(f: h5py.File) -> None:
        _write_header(f, dataset, split, meta, skipped or {}, [r.fingerprint for r in records], [r.seconds for r in records])
        for name, attrs in feature_attrs.items():
            g = _feature_group(f, name, attrs)
            dtype = stored_dtype(attrs)
            arrays = [np.asarray(r.features[name], dtype=dtype) for r in records]
            dim = int(attrs["dim"])
            if attrs["kind"] == "embedding":
                data = np.stack(arrays) if arrays else np.zeros((0, dim), dtype)
            else:
                lengths = [a.shape[0] for a in arrays]
                g.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), **_checked(1))
                data = np.concatenate(arrays) if arrays else np.zeros((0, dim), dtype)
            if data.ndim != 2 or data.shape[1] != dim:
                raise ValueError(f"feature {name!r}: arrays of shape {data.shape[1:]} do not match dim {dim}")
            g.create_dataset("data", data=data, **_checked(len(data)))

    return _write_h5(path, fill)


@dataclass
class StoredUtterance:
    """What a split's store and parts hold for one utterance: its labels, what it was computed from, and
    where each feature is (the file and row). The latest file wins, and a feature stored with another
    fingerprint than the latest one is not kept (it was computed from other audio or another row)."""

    emotion: str
    speaker: str
    language: str
    fingerprint: Fingerprint | None
    seconds: float
    where: dict[str, tuple[FeatureStore, int]] = field(default_factory=dict)


@dataclass
class SplitContents:
    """The merged view of a split's store and its parts (see :func:`read_split`). Close with :meth:`close`."""

    sources: list[FeatureStore]
    utterances: dict[str, StoredUtterance]
    skipped: dict[str, str]
    attrs: dict[str, Mapping[str, object]]

    def close(self) -> None:
        for src in self.sources:
            src.close()


def read_split(features_root: str | Path, dataset: str, split: str, *, include_store: bool = True) -> SplitContents:
    """Merge the split's store (unless ``include_store`` is False) and its parts, oldest first, into one view.

    Per utterance the latest file decides: stored (its fingerprint, its features) or skipped. Features of one
    name from different extractions are refused (:class:`StoreError`) rather than mixed.
    """
    sources = _sources(features_root, dataset, split, include_store)
    out = SplitContents(sources, {}, {}, {})
    try:
        for src in sources:
            if src.dataset != dataset:
                raise StoreError(src.path, f"belongs to dataset {src.dataset!r}, not {dataset!r}")
            for u, why in src.skipped.items():
                out.utterances.pop(u, None)
                out.skipped[u] = why
            for name, info in src.features.items():
                if name in out.attrs:
                    diff = same_identity(out.attrs[name], info.attrs)
                    if diff:
                        raise StoreError(src.path, f"feature {name!r} differs from the stored one in {', '.join(diff)}; "
                                                   "use `extract --overwrite` to recompute rather than mix")
                out.attrs[name] = info.attrs
            for i, u in enumerate(src.utt_ids):
                out.skipped.pop(u, None)  # an utterance that succeeded later is no longer skipped
                fp = src.fingerprints[i]
                old = out.utterances.get(u)
                if old is None or old.fingerprint != fp:  # new, or recomputed from other audio / another row
                    old = out.utterances[u] = StoredUtterance(src.emotions[i], src.speakers[i], src.languages[i], fp,
                                                                  float(src.seconds[i]))
                for name in src.features:
                    old.where[name] = (src, i)
    except BaseException:
        out.close()
        raise
    return out


def _sources(features_root: str | Path, dataset: str, split: str, include_store: bool = True) -> list[FeatureStore]:
    """The store and its parts, oldest first; stray temporary files of a killed run are removed."""
    files: list[Path] = []
    main = store_path(features_root, dataset, split)
    if main.exists() and include_store:
        files.append(main)
    pdir = parts_dir(features_root, dataset, split)
    if pdir.is_dir():
        for tmp in pdir.glob("*.tmp"):
            tmp.unlink()
        files.extend(sorted(pdir.glob("*.h5")))
    tmp = main.with_name(main.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    stores: list[FeatureStore] = []
    try:
        for p in files:
            stores.append(FeatureStore(p))
    except BaseException:
        for st in stores:
            st.close()
        raise
    return stores


def consolidate(features_root: str | Path, dataset: str, split: str, expected: Iterable[str] | None = None, *,
                include_store: bool = True) -> Path | None:
    """Merge the store and its parts into a new ``<split>.h5`` (atomically), then delete the parts.

    A feature is kept only if every merged utterance has it; one that is incomplete raises
    :class:`StoreError` (the parts stay, nothing is lost). Features of the same name from different
    weights or settings are refused rather than mixed. ``expected`` (utterance ids of the split), when
    given, must all be stored or skipped, and utterances outside it (removed from the manifest, moved to
    another split) are dropped. ``include_store=False`` replaces the store by its parts (``--overwrite``).
    When there is nothing to merge or drop the store is left as it is (not rewritten). Returns the store
    path, or None if there was nothing.
    """
    main = store_path(features_root, dataset, split)
    contents = read_split(features_root, dataset, split, include_store=include_store)
    sources = contents.sources
    if not sources:
        return None
    try:
        keep = set(expected) if expected is not None else None
        dropped = [u for u in list(contents.utterances) + list(contents.skipped) if keep is not None and u not in keep]
        for u in dropped:
            contents.utterances.pop(u, None)
            contents.skipped.pop(u, None)
        if keep is not None:
            missing = sorted(keep - set(contents.utterances) - set(contents.skipped))
            if missing:
                raise StoreError(main, f"cannot consolidate: {len(missing)} utterance(s) neither stored nor skipped, e.g. {missing[:3]}")
        if len(sources) == 1 and sources[0].path == main and not dropped:
            _remove_if_empty(parts_dir(features_root, dataset, split))  # left by a kill just before its removal
            return main  # nothing new, nothing to drop: a rerun with nothing to do writes nothing
        utterances, skipped, attrs = contents.utterances, contents.skipped, contents.attrs
        utt_ids = sorted(utterances)
        features = sorted({n for e in utterances.values() for n in e.where} or attrs)
        incomplete = {n: sum(n not in utterances[u].where for u in utt_ids) for n in features}
        incomplete = {n: k for n, k in incomplete.items() if k}
        if incomplete:
            detail = ", ".join(f"{n} lacks {k}" for n, k in sorted(incomplete.items()))
            raise StoreError(main, f"cannot consolidate: {detail} utterance(s); re-run `extract` to finish")
        columns = {"utt_id": utt_ids, "emotion": [utterances[u].emotion for u in utt_ids],
                   "speaker": [utterances[u].speaker for u in utt_ids], "language": [utterances[u].language for u in utt_ids]}

        def fill(f: h5py.File) -> None:
            _write_header(f, dataset, split, columns, skipped, [utterances[u].fingerprint for u in utt_ids],
                          [utterances[u].seconds for u in utt_ids])
            f.attrs["consolidated"] = True
            for name in features:
                info_attrs = attrs[name]
                g = _feature_group(f, name, info_attrs)
                dim = int(info_attrs["dim"])
                arrays = (src.read_one(name, i) for src, i in (utterances[u].where[name] for u in utt_ids))
                dtype = stored_dtype(info_attrs)
                if info_attrs["kind"] == "embedding":
                    rows = [np.asarray(a, dtype).reshape(dim) for a in arrays]  # none if every utterance was skipped
                    g.create_dataset("data", data=np.stack(rows) if rows else np.zeros((0, dim), dtype), **_checked(len(rows)))
                    continue
                counts = {id(src): src.frame_counts(name) for src in sources if name in src.features}
                lengths = [int(counts[id(src)][i]) for src, i in (utterances[u].where[name] for u in utt_ids)]
                offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
                g.create_dataset("offsets", data=offsets, **_checked(1))
                frames = int(offsets[-1])
                data = g.create_dataset("data", shape=(frames, dim), dtype=dtype,
                                        chunks=(min(frames, 4096), dim) if frames else None, fletcher32=bool(frames))
                for k, a in enumerate(arrays):
                    data[offsets[k]:offsets[k + 1]] = a

        _write_h5(main, fill, expected_bytes=sum(src.path.stat().st_size for src in sources))
    finally:
        contents.close()
    for src in sources:
        if src.path != main:
            src.path.unlink(missing_ok=True)
    _remove_if_empty(parts_dir(features_root, dataset, split))
    return main


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if it is an empty folder; a read-only or shared features folder keeps it (nothing is lost:
    an empty parts folder only takes a name)."""
    try:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    except OSError:
        pass


# --------------------------------------------------------------------------------------------------
# Generations: one consistent set of split stores per dataset


def generation_path(features_root: str | Path, dataset: str) -> Path:
    return Path(features_root) / dataset / GENERATION_FILE


def commit_generation(features_root: str | Path, dataset: str, splits: Sequence[str], manifest: str | Path | None) -> bool:
    """Record the current store of every split in ``splits`` as one generation (``stores.json``, atomically).

    Called by ``extract`` after consolidating every split; the file is rewritten only when it changes.
    Returns whether it was written.
    """
    ids = {}
    for split in splits:
        with FeatureStore(store_path(features_root, dataset, split)) as st:
            ids[split] = st.store_id
    record = {"format": "mgser-stores", "dataset": dataset, "splits": ids,
              "manifest": str(Path(manifest).resolve()) if manifest else ""}
    path = generation_path(features_root, dataset)
    try:
        if json.loads(path.read_text(encoding="utf-8")) == record:
            return False
    except (OSError, ValueError):
        pass
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8"))
    return True


def _extract_command(features_root: str | Path, dataset: str, manifest: str | Path | None) -> str:
    cmd = f"extract --dataset {dataset} --features-dir {features_root}"
    if manifest:
        cmd += f" --manifest-dir {Path(manifest).parent}"
    return f"`{cmd}`"


def open_dataset(features_root: str | Path, dataset: str, *, wait_seconds: float = 30.0,
                 check_manifest: bool = True) -> dict[str, FeatureStore]:
    """Open the split stores of one dataset as one consistent generation: ``{split: FeatureStore}``.

    With a ``stores.json`` (every ``extract`` writes one): every split listed must be there with the listed
    ``store_id``; while an ``extract`` is committing a new generation this waits up to ``wait_seconds`` for it,
    then refuses with :class:`StoreError` naming the store and the command that completes the set. A missing
    split store is refused. Then, if ``check_manifest`` and the manifest the stores were extracted from is
    still there, they must agree with it (:func:`check_against_manifest`). Without ``stores.json``, stores
    written by hand with :func:`write_store` (or by an ``extract`` older than generations) are opened as they
    are; stores that ``extract`` consolidated are refused, since which splits belong together is then unknown
    (a split store deleted with the record would go unnoticed). The caller closes the stores.
    """
    folder = Path(features_root) / dataset
    gen_path = generation_path(features_root, dataset)
    deadline = time.monotonic() + wait_seconds
    while True:
        if not gen_path.is_file():
            stores = {s: FeatureStore(p) for s in SPLITS if (p := store_path(features_root, dataset, s)).is_file()}
            if not stores:
                raise StoreError(folder, f"no feature stores (train/valid/test.h5) for dataset {dataset!r}; "
                                         f"run `extract --dataset {dataset}` first")
            if any(st.consolidated for st in stores.values()):
                present = ", ".join(f"{s}.h5" for s in stores)
                absent = "".join(f", no {s}.h5" for s in SPLITS if s not in stores)
                for st in stores.values():
                    st.close()
                raise StoreError(gen_path, f"missing: the record of which split stores belong together is gone "
                                           f"(found {present}{absent}, written by extract); run "
                                           f"{_extract_command(features_root, dataset, None)} to recreate what is missing and rewrite it")
            return stores
        try:
            record = json.loads(gen_path.read_text(encoding="utf-8"))
            listed: dict[str, str] = dict(record["splits"])
            manifest = record.get("manifest") or None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(gen_path, f"unreadable store generation record ({exc}); run "
                                       f"`extract --dataset {dataset}` to rewrite it") from None
        stores: dict[str, FeatureStore] = {}
        problem, may_pass = None, True  # may_pass: a commit in progress ends by itself; a missing store does not
        try:
            for split, store_id in listed.items():
                path = store_path(features_root, dataset, split)
                if not path.is_file():
                    may_pass = False
                    problem = StoreError(path, f"missing: the {split} store of {dataset!r} is gone, so its other "
                                               f"stores are incomplete; run {_extract_command(features_root, dataset, manifest)} to recreate it")
                    break
                stores[split] = FeatureStore(path)
                if stores[split].store_id != store_id:
                    problem = StoreError(path, f"not the store of the current generation listed in {gen_path.name} "
                                               f"(an `extract` is committing, or was interrupted while committing); run "
                                               f"{_extract_command(features_root, dataset, manifest)} to complete the set")
                    break
        except BaseException:
            for st in stores.values():
                st.close()
            raise
        if problem is None:
            break
        for st in stores.values():
            st.close()
        if not may_pass or time.monotonic() > deadline:
            raise problem
        time.sleep(0.2)
    if check_manifest and manifest and Path(manifest).is_file():
        try:
            check_against_manifest(stores, manifest, features_root)
        except BaseException:
            for st in stores.values():
                st.close()
            raise
    return stores


def check_against_manifest(stores: Mapping[str, FeatureStore], manifest: str | Path, features_root: str | Path = "features") -> None:
    """Refuse (:class:`StoreError`) stores that disagree with the manifest they were extracted from: an utterance
    of the manifest neither stored nor skipped in its split's store, a stored utterance that is not in the
    manifest (or in another split), or one whose manifest row (path, emotion, speaker, language) or audio file
    changed since it was extracted. The message names the utterances and the `extract` command that updates the stores.
    """
    rows = read_manifest(manifest)
    dataset = next(iter(stores.values())).dataset if stores else ""
    by_id = {u.utt_id: u for u in rows}
    problems: list[str] = []
    for split, st in stores.items():
        for i, u in enumerate(st.utt_ids):
            row = by_id.get(u)
            if row is None:
                problems.append(f"{u} (not in the manifest)")
            elif row.split != split:
                problems.append(f"{u} (in split {row.split} of the manifest, stored in {split})")
            else:
                fp = st.fingerprints[i]
                why = "stored without a fingerprint" if fp is None else fp.stale_reason(row, st.emotions[i], st.speakers[i], st.languages[i])
                if why:
                    problems.append(f"{u} ({why})")
    present = {u for st in stores.values() for u in list(st.utt_ids) + list(st.skipped)}
    for u in rows:
        if u.split in stores and u.utt_id not in present:
            problems.append(f"{u.utt_id} (in the manifest, not extracted)")
        elif u.split not in stores:
            problems.append(f"{u.utt_id} (split {u.split} has no store)")
    if problems:
        shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise StoreError(Path(features_root) / dataset, f"the stores disagree with {manifest}: {len(problems)} utterance(s): "
                                                        f"{shown}; run {_extract_command(features_root, dataset, manifest)} to update them")
