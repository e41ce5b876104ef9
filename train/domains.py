"""A language domain's utterances, read from its feature stores and validated.

:func:`resolve_domain` maps a language code to the dataset whose stores hold it, :func:`load_domain`
pools that dataset's ``train/valid/test`` stores in memory as a :class:`DomainData` (refusing mixed
extractions, overlapping stores, unknown emotions, empty or non-finite arrays and, as a leakage guard,
one recording under two ids).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from extract.prepare import PREPARERS
from sercore.errors import StoreError
from sercore.labels import is_canonical, sorted_labels
from sercore.manifest import SPLITS
from sercore.store import FeatureStore, open_dataset, same_identity, store_path

from .config import DomainSpec

#: The provenance attribute that makes a stored feature the input of another feature's fine-tunable module
#: rather than a feature of its own (written by the extractor: ``extract.extractors.base.FeatureExtractor.input_of``).
INPUT_OF = "input_of"
#: Stores written before the attribute existed: the roles the extractors had then.
LEGACY_INPUT_OF: dict[str, str] = {"ge2e_mel": "ge2e"}


def feature_inputs(provenance: Mapping[str, Mapping[str, object]]) -> dict[str, str]:
    """``{feature: its input}`` from per-feature provenance (store attributes): ``{"ge2e": "ge2e_mel"}``."""
    out = {}
    for name, attrs in provenance.items():
        fed = attrs.get(INPUT_OF) if INPUT_OF in attrs else LEGACY_INPUT_OF.get(name)
        if fed:
            out[str(fed)] = name
    return out


def corpus_registry() -> dict[str, list[str]]:
    """Language -> the built-in corpora in that language: every preparer of ``extract.prepare.PREPARERS`` whose
    corpus has one fixed language (emodb de, emovo it, cafe fr, iemocap and ravdess en), in registry order."""
    registry: dict[str, list[str]] = {}
    for preparer in PREPARERS.values():
        if len(preparer.languages) == 1:
            registry.setdefault(preparer.languages[0], []).append(preparer.name)
    return registry


@dataclass
class DomainData:
    """All utterances of one language in one dataset (its split stores pooled), sorted by ``utt_id``.

    ``features[name][i]`` is utterance i's (frames, dim) or (dim,) float32 array; ``store_splits[i]`` the
    split its store file was named for (the manifest's split).
    """

    spec: DomainSpec
    utt_ids: list[str]
    speakers: list[str]
    emotions: list[str]
    store_splits: list[str]
    features: dict[str, list[np.ndarray]]
    kinds: dict[str, str]
    provenance: dict[str, dict]
    paths: list[Path]

    @property
    def inputs(self) -> dict[str, str]:
        """``{feature: the loaded feature its fine-tunable module consumes}``, from the provenance."""
        return feature_inputs(self.provenance)

    @property
    def classes(self) -> list[str]:
        """The emotions present, in vocabulary order: class index i is ``classes[i]``."""
        return sorted_labels(self.emotions)

    def dims(self) -> dict[str, int]:
        return {name: int(arrays[0].shape[-1]) for name, arrays in self.features.items()}

    def __len__(self) -> int:
        return len(self.utt_ids)


def _store_languages(path: Path) -> set[str]:
    with FeatureStore(path) as store:
        return set(store.languages)


def resolve_domain(spec: str | DomainSpec, features_dir: str | Path) -> DomainSpec:
    """The dataset of a domain: ``de`` -> the built-in corpus in German that has stores (EmoDB);
    ``xx=name`` names the dataset explicitly. Returns ``DomainSpec(language, dataset)``.

    A code without a built-in corpus with stores is looked up in the ``language`` column of every
    ``features/*/train.h5``; exactly one dataset must hold it.
    """
    features_dir = Path(features_dir)
    if isinstance(spec, str):
        try:
            spec = DomainSpec.parse(spec)
        except ValueError as exc:
            raise StoreError(features_dir, str(exc)) from None
    if spec.dataset:
        return DomainSpec(spec.language, spec.dataset)
    language = spec.language
    builtin = corpus_registry().get(language, [])
    with_stores = [d for d in builtin if any(store_path(features_dir, d, s).is_file() for s in SPLITS)]
    if len(with_stores) == 1:
        return DomainSpec(language, with_stores[0])
    candidates = []
    for folder in sorted(p for p in features_dir.glob("*") if p.is_dir()):
        stores = [store_path(features_dir, folder.name, s) for s in SPLITS]
        stores = [p for p in stores if p.is_file()]
        if stores and language in _store_languages(stores[0]):
            candidates.append(folder.name)
    if len(candidates) == 1:
        return DomainSpec(language, candidates[0])
    if not candidates:
        hint = f"features/{builtin[0]}/ " if builtin else ""
        raise StoreError(features_dir, f"no feature store holds language {language!r}: expected {hint}stores, or give "
                                       f"{language}=DATASET for the dataset folder that holds it (run `extract` first)")
    raise StoreError(features_dir, f"language {language!r} is in several datasets ({', '.join(candidates)}); "
                                   f"say which one with {language}=DATASET")


def stored_features(spec: DomainSpec, features_dir: str | Path) -> tuple[list[str], dict[str, str]]:
    """The features of the domain's first store: its own features (in store order) and ``{feature: input}``
    for the inputs of fine-tunable modules (such as ``ge2e_mel``), which are not features of their own."""
    for split in SPLITS:
        path = store_path(features_dir, spec.dataset, split)
        if path.is_file():
            with FeatureStore(path) as store:
                inputs = feature_inputs({n: info.attrs for n, info in store.features.items()})
                return [n for n in store.features if n not in inputs.values()], inputs
    raise StoreError(Path(features_dir) / spec.dataset, "no feature stores (train/valid/test.h5) here; run `extract` first")


def default_features(spec: DomainSpec, features_dir: str | Path) -> list[str]:
    """Every feature the domain's first store holds, except the inputs of fine-tunable modules."""
    return stored_features(spec, features_dir)[0]


def load_domain(spec: DomainSpec, features_dir: str | Path, features: Sequence[str]) -> DomainData:
    """Read ``features`` of one language from all split stores of its dataset, validating as it goes.

    Refused with :class:`StoreError`: no store; a store of another dataset or split than its file name;
    a missing feature; the same feature from different extractions (weights/settings) in two files; an
    utterance in two stores; an emotion outside the vocabulary; an empty sequence; non-finite values.
    """
    folder = Path(features_dir) / spec.dataset
    if not features:
        raise StoreError(folder, "no features selected")
    # one complete generation of split stores, current with the manifest they came from (or StoreError)
    opened = open_dataset(features_dir, spec.dataset)
    paths = [store.path for store in opened.values()]
    rows: dict[str, tuple[str, str, str, Path]] = {}
    arrays: dict[str, dict[str, np.ndarray]] = {n: {} for n in features}
    kinds: dict[str, str] = {}
    provenance: dict[str, dict] = {}
    first_path: dict[str, Path] = {}
    for path, store in zip(paths, opened.values()):
        with store:
            if store.dataset != spec.dataset:
                raise StoreError(path, f"belongs to dataset {store.dataset!r}, not {spec.dataset!r} (a store from elsewhere?)")
            if store.split != path.stem:
                raise StoreError(path, f"holds split {store.split!r} but is named {path.name}")
            keep = [i for i, lang in enumerate(store.languages) if lang == spec.language]
            for name in features:
                info = store.feature(name)  # StoreError naming the file if missing
                if name in provenance:
                    diff = same_identity(provenance[name], info.attrs)
                    if diff:
                        raise StoreError(path, f"feature {name!r} differs from the one in {first_path[name]} in "
                                               f"{', '.join(diff)}: stores from different extractions cannot be mixed")
                else:
                    provenance[name], kinds[name], first_path[name] = dict(info.attrs), info.kind, path
                if not keep:
                    continue
                values = store.read(name)
                for i in keep:
                    a = np.asarray(values[i], dtype=np.float32)
                    u = store.utt_ids[i]
                    if info.kind == "sequence" and a.shape[0] == 0:
                        raise StoreError(path, f"utterance {u!r} has an empty {name!r} sequence")
                    if not np.isfinite(a).all():
                        raise StoreError(path, f"utterance {u!r} has non-finite values in feature {name!r}")
                    arrays[name][u] = a
            for i in keep:
                u = store.utt_ids[i]
                if u in rows:
                    raise StoreError(path, f"utterance {u!r} is also in {rows[u][3]}: stores overlap")
                if not is_canonical(store.emotions[i]):
                    raise StoreError(path, f"utterance {u!r} has emotion {store.emotions[i]!r}, not a label in its "
                                           "canonical spelling (see sercore.labels)")
                rows[u] = (store.speakers[i], store.emotions[i], store.split, path)
    if not rows:
        raise StoreError(folder, f"no utterance of language {spec.language!r} in the stores of {spec.dataset!r}")
    utt_ids = sorted(rows)
    _refuse_duplicate_recordings(folder, utt_ids, arrays)
    refuse_near_duplicates(folder, utt_ids, arrays, kinds)
    classes = sorted_labels(r[1] for r in rows.values())
    if len(classes) < 2:
        raise StoreError(folder, f"language {spec.language!r} has a single emotion ({classes[0]}); nothing to classify")
    return DomainData(
        spec=spec,
        utt_ids=utt_ids,
        speakers=[rows[u][0] for u in utt_ids],
        emotions=[rows[u][1] for u in utt_ids],
        store_splits=[rows[u][2] for u in utt_ids],
        features={n: [arrays[n][u] for u in utt_ids] for n in features},
        kinds=kinds,
        provenance=provenance,
        paths=paths,
    )


def _refuse_duplicate_recordings(folder: Path, utt_ids: Sequence[str], arrays: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Leakage guard: two ids with identical features are one recording twice (a copied file in a corpus
    folder, a CSV listing a file twice), and a split could put one copy in training and the other in test."""
    seen: dict[str, str] = {}
    for u in utt_ids:
        h = hashlib.sha256()
        for name in sorted(arrays):
            a = np.ascontiguousarray(arrays[name][u], dtype=np.float32)
            h.update(np.asarray(a.shape, np.int64).tobytes() + a.tobytes())
        key = h.hexdigest()
        if key in seen:
            raise StoreError(folder, f"utterances {seen[key]!r} and {u!r} have identical features (the same recording "
                                     "twice?): a split could put one in training and the other in test; remove one "
                                     "from the manifest and extract again")
        seen[key] = u


#: Near-duplicate guard (:func:`near_duplicates`). Two utterances are taken for one recording (a resampled or
#: re-encoded copy) when their durations differ by at most NEAR_DUPLICATE_DURATION and their GE2E speaker
#: embeddings have a cosine of at least NEAR_DUPLICATE_GE2E_ALONE, or of at least NEAR_DUPLICATE_GE2E with
#: standardised pooled features (mean and std over time of every sequence feature, the other embeddings) of cosine
#: at least NEAR_DUPLICATE_POOLED_WITH_GE2E.
#: Measured (docs/results/reliability_checks.md): a 48 kHz copy 1.0000 / 1.0000; distinct utterances of
#: EmoDB, EMOVO and RAVDESS at most 0.987 GE2E; synthetic tones 2 % apart in pitch up to 0.999 GE2E but at most
#: 0.966 pooled; a synthetic noisy clip resampled to 48 kHz and back 0.99988 GE2E but 0.938 pooled (its top MFCC
#: coefficients lose the band resampling cut), caught by the GE2E evidence alone. Without GE2E (or with an
#: embedding named ge2e of fewer than GE2E_MIN_DIM dimensions: not a speaker embedding), pooled features alone at
#: NEAR_DUPLICATE_POOLED, and only a warning.
NEAR_DUPLICATE_GE2E = 0.995
NEAR_DUPLICATE_POOLED_WITH_GE2E = 0.99
NEAR_DUPLICATE_GE2E_ALONE = 0.9995
NEAR_DUPLICATE_POOLED = 0.999
NEAR_DUPLICATE_DURATION = 0.02
GE2E_MIN_DIM = 64

#: Content comparison (:func:`content_score`), which needs no duration agreement: a copy with silence added, a
#: trimmed copy or a noisy copy. Frames of ``mfcc`` (its coefficient 0 is the frame's log energy) more than
#: CONTENT_SILENCE below the utterance's loudest frame are cut from both ends; each coefficient has the utterance's
#: mean removed and is divided by its standard deviation over the dataset, each frame is scaled to unit length; the
#: two sequences are aligned at the lag of their largest cross-correlation, and the score is the fraction of the
#: shorter one's loud frames (within CONTENT_LOUD of its loudest: speech, not pauses) whose aligned frame has a cosine
#: of at least CONTENT_FRAME_COSINE (1 for a copy, or a part of it). Only candidate pairs are aligned: a GE2E cosine of
#: at least CONTENT_PREFILTER_GE2E, or a cosine of at least CONTENT_PREFILTER_POOLED of the standardised mean and std
#: of the loud frames (added noise hardly moves them), and both with CONTENT_MIN_FRAMES loud frames or more (half a
#: second of speech: fewer frames could match by chance). A pair scoring CONTENT_THRESHOLD or more is refused.
#: Measured (bench/results/duplicate_guard_2026-12-04.md): distinct utterances of EmoDB and EMOVO below 0.2, of
#: RAVDESS at most 0.40 (two takes of one sentence by one actor in one emotion); copies of real utterances with 150 ms
#: of silence added or 5 % cut from either end 0.85-1.00, with noise at 30 dB SNR 0.82-1.00.
CONTENT_FEATURE = "mfcc"
CONTENT_SILENCE = 400.0
CONTENT_LOUD = 200.0
CONTENT_PREFILTER_GE2E = 0.9
CONTENT_PREFILTER_POOLED = 0.85
CONTENT_FRAME_COSINE = 0.8
CONTENT_MIN_FRAMES = 50
CONTENT_THRESHOLD = 0.6


@dataclass(frozen=True)
class NearDuplicate:
    """Two utterances that look like one recording: their cosine, their durations in frames, the evidence used."""

    first: str
    second: str
    cosine: float
    frames: tuple[int, int]
    evidence: str  # "ge2e" or "content" (refused) or "pooled" (a warning)

    @property
    def refused(self) -> bool:
        return self.evidence != "pooled"

    def __str__(self) -> str:
        score = "aligned-frame score" if self.evidence == "content" else "cosine"
        return (f"{self.first!r} ~ {self.second!r} ({self.evidence} {score} {self.cosine:.4f}, "
                f"{self.frames[0]} vs {self.frames[1]} frames)")


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _pooled(utt_ids: Sequence[str], arrays: Mapping[str, Mapping[str, np.ndarray]], kinds: Mapping[str, str],
            names: Sequence[str]) -> np.ndarray | None:
    """(n, d) standardised pooled features of ``names`` (mean and std over time of sequences), unit length."""
    columns = []
    for name in names:
        per = [arrays[name][u] for u in utt_ids]
        if kinds.get(name) == "sequence":
            columns.append(np.stack([np.concatenate([a.mean(0), a.std(0)]) for a in per]))
        else:
            columns.append(np.stack([a.ravel() for a in per]))
    if not columns:
        return None
    v = np.concatenate(columns, axis=1).astype(np.float64)
    std = v.std(0)
    return _unit((v - v.mean(0)) / np.where(std > 0, std, 1.0))


def near_duplicates(utt_ids: Sequence[str], arrays: Mapping[str, Mapping[str, np.ndarray]], kinds: Mapping[str, str],
                    block: int = 2048) -> list[NearDuplicate]:
    """Pairs of utterances whose features say "the same recording" (thresholds above), in ``utt_ids`` order."""
    if len(utt_ids) < 2:
        return []
    sequences = [n for n in arrays if kinds.get(n) == "sequence"]
    frames = np.array([max((arrays[n][u].shape[0] for n in sequences), default=0) for u in utt_ids])
    ge2e = None
    if kinds.get("ge2e") == "embedding" and "ge2e" in arrays and arrays["ge2e"][utt_ids[0]].size >= GE2E_MIN_DIM:
        ge2e = _unit(np.stack([arrays["ge2e"][u].ravel() for u in utt_ids]).astype(np.float64))
    others = [n for n in sorted(arrays) if not (ge2e is not None and n == "ge2e")]
    pooled = _pooled(utt_ids, arrays, kinds, others)
    if ge2e is not None:
        primary, threshold, evidence = ge2e, (NEAR_DUPLICATE_GE2E if pooled is not None else NEAR_DUPLICATE_GE2E_ALONE), "ge2e"
        second, second_threshold = pooled, NEAR_DUPLICATE_POOLED_WITH_GE2E  # needed below NEAR_DUPLICATE_GE2E_ALONE
    elif pooled is not None:
        primary, threshold, evidence, second, second_threshold = pooled, NEAR_DUPLICATE_POOLED, "pooled", None, 0.0
    else:
        return []
    pairs = []
    for start in range(0, len(utt_ids), block):
        cos = primary[start:start + block] @ primary.T  # (block, n)
        for r, c in zip(*np.nonzero(cos >= threshold)):
            i, j = start + int(r), int(c)
            if j <= i:
                continue
            a, b = int(frames[i]), int(frames[j])
            if sequences and abs(a - b) > NEAR_DUPLICATE_DURATION * max(a, b):
                continue
            if second is not None and cos[r, c] < NEAR_DUPLICATE_GE2E_ALONE and float(second[i] @ second[j]) < second_threshold:
                continue
            pairs.append(NearDuplicate(utt_ids[i], utt_ids[j], float(cos[r, c]), (a, b), evidence))
    if kinds.get(CONTENT_FEATURE) == "sequence" and CONTENT_FEATURE in arrays:
        found = {(p.first, p.second) for p in pairs if p.refused}
        extra = [p for p in content_duplicates(utt_ids, arrays[CONTENT_FEATURE], ge2e, block)
                 if (p.first, p.second) not in found]
        if extra:
            order = {u: k for k, u in enumerate(utt_ids)}
            pairs = [p for p in pairs if (p.first, p.second) not in {(q.first, q.second) for q in extra}] + extra
            pairs.sort(key=lambda p: (order[p.first], order[p.second]))
    return pairs


def trim_silence(frames: np.ndarray, silence: float = CONTENT_SILENCE) -> np.ndarray:
    """``frames`` of an MFCC sequence without its leading and trailing frames more than ``silence`` (units of
    coefficient 0, the log energy) below its loudest frame."""
    energy = frames[:, 0]
    keep = np.flatnonzero(energy >= energy.max() - silence)
    return frames[keep[0]:keep[-1] + 1]


def content_score(first: np.ndarray, second: np.ndarray, first_loud: np.ndarray | None = None,
                  second_loud: np.ndarray | None = None) -> float:
    """Alignment score of two (frames, dim) sequences of unit-length frames: at the lag of their largest
    cross-correlation (FFT), the fraction of the shorter sequence's counted frames (``*_loud`` masks; default all)
    whose aligned frame has a cosine of at least CONTENT_FRAME_COSINE."""
    n = len(first) + len(second) - 1
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(first, size, axis=0) * np.fft.rfft(second[::-1], size, axis=0)
    lag = int(np.argmax(np.fft.irfft(spectrum.sum(1), size)[:n])) - (len(second) - 1)  # first[t] ~ second[t - lag]
    t = np.arange(max(0, lag), min(len(first), len(second) + lag))
    matched = (first[t] * second[t - lag]).sum(1) >= CONTENT_FRAME_COSINE
    if len(first) <= len(second):
        counted, at = (np.ones(len(first), bool) if first_loud is None else first_loud), t
    else:
        counted, at = (np.ones(len(second), bool) if second_loud is None else second_loud), t - lag
    return float(np.count_nonzero(matched & counted[at]) / max(np.count_nonzero(counted), 1))


def content_duplicates(utt_ids: Sequence[str], sequences: Mapping[str, np.ndarray], ge2e: np.ndarray | None = None,
                       block: int = 2048) -> list[NearDuplicate]:
    """Pairs of utterances whose MFCC frames, silence trimmed, align at CONTENT_THRESHOLD or above (see there);
    ``ge2e``: unit GE2E embeddings in ``utt_ids`` order, or None."""
    trimmed = [trim_silence(np.asarray(sequences[u], np.float64)) for u in utt_ids]
    stacked = np.concatenate(trimmed)
    mean, std = stacked.mean(0), stacked.std(0)
    std = np.where(std > 0, std, 1.0)
    unit = []
    for t in trimmed:
        z = (t - t.mean(0)) / std  # each utterance's mean removed: a steady sound does not align with everything
        unit.append(z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12))
    loud = [t[:, 0] >= t[:, 0].max() - CONTENT_LOUD for t in trimmed]
    pooled = np.stack([np.concatenate([z.mean(0), z.std(0)]) for z in ((t[m] - mean) / std for t, m in zip(trimmed, loud))])
    counted = [int(np.count_nonzero(m)) for m in loud]
    p_std = pooled.std(0)
    pooled = _unit((pooled - pooled.mean(0)) / np.where(p_std > 0, p_std, 1.0))
    pairs = []
    for start in range(0, len(utt_ids), block):
        candidate = pooled[start:start + block] @ pooled.T >= CONTENT_PREFILTER_POOLED
        if ge2e is not None:
            candidate |= ge2e[start:start + block] @ ge2e.T >= CONTENT_PREFILTER_GE2E
        for r, c in zip(*np.nonzero(candidate)):
            i, j = start + int(r), int(c)
            if j <= i:
                continue
            if min(counted[i], counted[j]) < CONTENT_MIN_FRAMES:
                continue
            score = content_score(unit[i], unit[j], loud[i], loud[j])
            if score >= CONTENT_THRESHOLD:
                frames = (len(sequences[utt_ids[i]]), len(sequences[utt_ids[j]]))
                pairs.append(NearDuplicate(utt_ids[i], utt_ids[j], score, frames, "content"))
    return pairs


def refuse_near_duplicates(folder: Path, utt_ids: Sequence[str], arrays: Mapping[str, Mapping[str, np.ndarray]],
                           kinds: Mapping[str, str], provenance: Mapping[str, Mapping] | None = None) -> None:
    """Leakage guard for copies that are not bit-identical (a resampled, re-encoded, padded, trimmed or noisy copy of
    a recording): refused on GE2E or content evidence, a warning on pooled features alone (:func:`near_duplicates`);
    the pairs are named either way."""
    found = near_duplicates(utt_ids, arrays, kinds)
    pairs = [p for p in found if p.refused] or found
    if not pairs:
        return
    shown = "; ".join(map(str, pairs[:5])) + (f"; and {len(pairs) - 5} more" if len(pairs) > 5 else "")
    advice = ("the same recording twice (a resampled, re-encoded, padded, trimmed or noisy copy?): a split could put "
              "one in training and the other in test; remove one of each pair from the manifest and extract again")
    if pairs[0].refused:
        raise StoreError(folder, f"{len(pairs)} pair(s) of near-duplicate utterances: {shown}; {advice}")
    logging.getLogger("mgser.train").warning("%s: %d pair(s) of possibly near-duplicate utterances: %s; if these are %s",
                                             folder, len(pairs), shown, advice)
