"""The HDF5 feature store: the one contract between the extraction stage and the trainer.

On disk, for each dataset and split::

    features/<dataset>/<split>.h5            consolidated store, complete for every feature it holds
    features/<dataset>/<split>.parts/*.h5    batches committed by a running extraction, not yet merged

Every file, store or part, has the same layout::

    attrs: format="mgser-store", format_version, dataset, split
    utterances/{utt_id, emotion, speaker, language}   (n,) UTF-8 strings, one order for all features
    features/<name>/data      (n, dim) float32 for an utterance embedding,
                              (sum of frames, dim) float32 for a sequence, utterances one after another
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
worst a stray ``*.tmp`` that the next run removes. Only one process (the extraction's writer) ever writes.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Mapping, Sequence

import h5py
import numpy as np

from .errors import StoreError

FORMAT = "mgser-store"
FORMAT_VERSION = 1
FeatureKind = Literal["sequence", "embedding"]
_META = ("utt_id", "emotion", "speaker", "language")
#: Provenance attributes that must agree between files before their features may be merged.
IDENTITY_ATTRS = ("kind", "dim", "extractor", "sample_rate", "hop_seconds", "checkpoint_sha256")


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


@dataclass(frozen=True)
class FeatureInfo:
    name: str
    kind: FeatureKind
    dim: int
    attrs: Mapping[str, object]


def _encode_attr(value):
    # HDF5 attributes hold scalars and strings; nested provenance (library versions) goes in as JSON.
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


def _decode_attr(value):
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


def stored_value(value):
    """``value`` as it reads back after being written as a store attribute (tuples become lists, numpy scalars
    Python numbers): the form in which two provenance values can be compared."""
    return _decode_attr(_encode_attr(value))


def same_identity(a: Mapping[str, object], b: Mapping[str, object]) -> list[str]:
    """The identity attributes on which two feature provenances disagree (empty list: same feature)."""
    return [k for k in IDENTITY_ATTRS if str(a.get(k, "")) != str(b.get(k, ""))]


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
        fmt = _decode_attr(f.attrs.get("format"))
        if fmt != FORMAT:
            raise StoreError(self.path, f"not a {FORMAT} file (format attribute is {fmt!r})")
        version = int(f.attrs.get("format_version", -1))
        if version != FORMAT_VERSION:
            raise StoreError(self.path, f"store format version {version}, this toolkit reads version {FORMAT_VERSION}")
        self.dataset: str = _decode_attr(f.attrs["dataset"])
        self.split: str = _decode_attr(f.attrs["split"])
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
        self.features: dict[str, FeatureInfo] = {}
        for name, group in f.get("features", {}).items():
            attrs = {k: _decode_attr(v) for k, v in group.attrs.items()}
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


def _write_atomic(path: Path, fill) -> Path:
    """Create ``path`` through ``fill(h5file)`` on a temporary name, flush to disk, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_header(f: h5py.File, dataset: str, split: str, meta: Mapping[str, Sequence[str]], skipped: Mapping[str, str]) -> None:
    f.attrs["format"] = _encode_attr(FORMAT)
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["dataset"] = _encode_attr(dataset)
    f.attrs["split"] = _encode_attr(split)
    g = f.create_group("utterances")
    for k in _META:
        column = _text(meta[k])
        g.create_dataset(k, data=column, **_checked(len(column)))
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
        g.attrs[k] = _encode_attr(v)
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
        _write_header(f, dataset, split, meta, skipped or {})
        for name, attrs in feature_attrs.items():
            g = _feature_group(f, name, attrs)
            arrays = [np.asarray(r.features[name], dtype=np.float32) for r in records]
            dim = int(attrs["dim"])
            if attrs["kind"] == "embedding":
                data = np.stack(arrays) if arrays else np.zeros((0, dim), np.float32)
            else:
                lengths = [a.shape[0] for a in arrays]
                g.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), **_checked(1))
                data = np.concatenate(arrays) if arrays else np.zeros((0, dim), np.float32)
            if data.ndim != 2 or data.shape[1] != dim:
                raise ValueError(f"feature {name!r}: arrays of shape {data.shape[1:]} do not match dim {dim}")
            g.create_dataset("data", data=data, **_checked(len(data)))

    return _write_atomic(path, fill)


def stored_utterances(features_root: str | Path, dataset: str, split: str) -> dict[str, set[str]]:
    """Per feature, the utterance ids already stored in the store or its parts (what a resumed run can skip).

    The special key ``"<skipped>"`` holds ids that were skipped for a recorded reason.
    """
    done: dict[str, set[str]] = {"<skipped>": set()}
    for f in _sources(features_root, dataset, split):
        with f:
            for name in f.features:
                done.setdefault(name, set()).update(f.utt_ids)
            done["<skipped>"].update(f.skipped)
    return done


def _sources(features_root: str | Path, dataset: str, split: str) -> list[FeatureStore]:
    """The store and its parts, oldest first; stray temporary files of a killed run are removed."""
    files: list[Path] = []
    main = store_path(features_root, dataset, split)
    if main.exists():
        files.append(main)
    pdir = parts_dir(features_root, dataset, split)
    if pdir.is_dir():
        for tmp in pdir.glob("*.tmp"):
            tmp.unlink()
        files.extend(sorted(pdir.glob("*.h5")))
    tmp = main.with_name(main.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    return [FeatureStore(p) for p in files]


def consolidate(features_root: str | Path, dataset: str, split: str, expected: Iterable[str] | None = None) -> Path | None:
    """Merge the store and its parts into a new ``<split>.h5`` (atomically), then delete the parts.

    A feature is kept only if every merged utterance has it; one that is incomplete raises
    :class:`StoreError` (the parts stay, nothing is lost). Features of the same name from different
    weights or settings are refused rather than mixed. ``expected`` (utterance ids of the split),
    when given, must all be stored or skipped. Returns the store path, or None if there was nothing.
    """
    main = store_path(features_root, dataset, split)
    sources = _sources(features_root, dataset, split)
    if not sources:
        return None
    try:
        meta: dict[str, tuple[str, str, str]] = {}
        where: dict[str, dict[str, tuple[FeatureStore, int]]] = {}
        attrs: dict[str, Mapping[str, object]] = {}
        skipped: dict[str, str] = {}
        for src in sources:
            if src.dataset != dataset:
                raise StoreError(src.path, f"belongs to dataset {src.dataset!r}, not {dataset!r}")
            skipped.update(src.skipped)
            for i, u in enumerate(src.utt_ids):
                meta[u] = (src.emotions[i], src.speakers[i], src.languages[i])
            for name, info in src.features.items():
                if name in attrs and same_identity(attrs[name], info.attrs):
                    diff = same_identity(attrs[name], info.attrs)
                    raise StoreError(src.path, f"feature {name!r} differs from the stored one in {', '.join(diff)}; "
                                               "use `extract --overwrite` to recompute rather than mix")
                attrs[name] = info.attrs
                slot = where.setdefault(name, {})
                for i, u in enumerate(src.utt_ids):
                    slot[u] = (src, i)  # later files win: a recomputed utterance replaces the old one
        for u in meta:
            skipped.pop(u, None)  # an utterance that succeeded later is no longer skipped
        utt_ids = sorted(meta)
        incomplete = {n: len(meta) - len(s) for n, s in where.items() if len(s) != len(meta)}
        if incomplete:
            detail = ", ".join(f"{n} lacks {k}" for n, k in sorted(incomplete.items()))
            raise StoreError(main, f"cannot consolidate: {detail} utterance(s); re-run `extract` to finish")
        if expected is not None:
            missing = sorted(set(expected) - set(meta) - set(skipped))
            if missing:
                raise StoreError(main, f"cannot consolidate: {len(missing)} utterance(s) neither stored nor skipped, e.g. {missing[:3]}")
        columns = {"utt_id": utt_ids, "emotion": [meta[u][0] for u in utt_ids],
                   "speaker": [meta[u][1] for u in utt_ids], "language": [meta[u][2] for u in utt_ids]}

        def fill(f: h5py.File) -> None:
            _write_header(f, dataset, split, columns, skipped)
            for name in sorted(where):
                info_attrs = attrs[name]
                g = _feature_group(f, name, info_attrs)
                dim = int(info_attrs["dim"])
                arrays = (where[name][u][0].read_one(name, where[name][u][1]) for u in utt_ids)
                if info_attrs["kind"] == "embedding":
                    rows = [np.asarray(a, np.float32).reshape(dim) for a in arrays]  # none if every utterance was skipped
                    g.create_dataset("data", data=np.stack(rows) if rows else np.zeros((0, dim), np.float32), **_checked(len(rows)))
                    continue
                lengths = []
                for u in utt_ids:
                    src, i = where[name][u]
                    start, stop = src._file["features"][name]["offsets"][i:i + 2]
                    lengths.append(int(stop - start))
                offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
                g.create_dataset("offsets", data=offsets, **_checked(1))
                frames = int(offsets[-1])
                data = g.create_dataset("data", shape=(frames, dim), dtype=np.float32,
                                        chunks=(min(frames, 4096), dim) if frames else None, fletcher32=bool(frames))
                for k, a in enumerate(arrays):
                    data[offsets[k]:offsets[k + 1]] = a

        _write_atomic(main, fill)
    finally:
        for src in sources:
            src.close()
    pdir = parts_dir(features_root, dataset, split)
    for src in sources:
        if src.path != main:
            src.path.unlink(missing_ok=True)
    if pdir.is_dir() and not any(pdir.iterdir()):
        pdir.rmdir()
    return main
