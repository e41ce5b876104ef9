"""Data for the trainer: a language domain's utterances read from its feature stores, split per run, batched.

Everything the models see goes through one small type, :class:`Batch`::

    Batch.sequences   {feature: (batch, frames, dim) float32}  2-D features, zero-padded after each utterance
    Batch.lengths     {feature: (batch,) int64}                real frames of each utterance (>= 1)
    Batch.embeddings  {feature: (batch, dim) float32}          1-D features (utterance embeddings)
    Batch.labels      (batch,) int64                           class index in the utterance's domain's class list
    Batch.domains     (batch,) int64                           index of the utterance's domain in the experiment
    Batch.utt_ids     list[str]

A feature is a sequence or an embedding according to its store ``kind``; both dicts are keyed by the
store's feature names. Models must use ``lengths`` (packed LSTMs, masked attention) so that padding
never changes an output; ``tests/test_encoder.py`` checks this.

Flow: :func:`resolve_domain` maps a language code to a dataset, :func:`load_domain` pools that dataset's
``train/valid/test`` stores in memory (validating them), :func:`draw_split` re-splits the pool for one
run under a protocol (with the leakage guard), :class:`FeatureScaler` standardises with training
statistics, :class:`FeatureDataset` + :func:`collate` make batches, and
:class:`ClassBalancedBatchSampler` builds training batches in which every class has enough samples for
the contrastive loss.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from sercore.errors import StoreError
from sercore.labels import EMOTIONS, sorted_labels
from sercore.manifest import SPLITS
from sercore.splits import PROTOCOLS, check_disjoint, random_split, speaker_split
from sercore.store import FeatureStore, same_identity, store_path

#: Language code -> dataset of the paper's corpora (and EMOVO); any other code is looked up in the stores.
DEFAULT_DATASETS: dict[str, str] = {"de": "emodb", "fr": "cafe", "en": "iemocap", "it": "emovo"}

#: Store features that are inputs of a fine-tuned module rather than features of their own
#: (``ge2e_mel``: the mel frames resemblyzer's VoiceEncoder consumes, see ``train/models/ge2e.py``).
AUXILIARY_FEATURES: frozenset[str] = frozenset({"ge2e_mel"})


# --------------------------------------------------------------------------------------------------
# Batches


@dataclass
class Batch:
    """A padded mini-batch; see the module docstring for shapes."""

    sequences: dict[str, torch.Tensor]
    lengths: dict[str, torch.Tensor]
    embeddings: dict[str, torch.Tensor]
    labels: torch.Tensor
    domains: torch.Tensor
    utt_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: str | torch.device) -> "Batch":
        return Batch(
            {k: v.to(device) for k, v in self.sequences.items()},
            dict(self.lengths),  # lengths stay on the CPU: pack_padded_sequence wants them there
            {k: v.to(device) for k, v in self.embeddings.items()},
            self.labels.to(device),
            self.domains.to(device),
            list(self.utt_ids),
        )

    def select(self, rows: torch.Tensor | Sequence[int]) -> "Batch":
        """The sub-batch of the given rows (e.g. one domain's rows); padding is trimmed to the longest kept."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        sequences, lengths = {}, {}
        for k, v in self.sequences.items():
            kept = self.lengths[k][rows.cpu()]
            top = int(kept.max()) if len(kept) else 0
            sequences[k] = v[rows.to(v.device), :top]
            lengths[k] = kept
        return Batch(sequences, lengths, {k: v[rows.to(v.device)] for k, v in self.embeddings.items()},
                     self.labels[rows.to(self.labels.device)], self.domains[rows.to(self.domains.device)],
                     [self.utt_ids[i] for i in rows.tolist()])


@dataclass
class Example:
    """One utterance as a dataset yields it: (frames, dim) or (dim,) tensors per feature."""

    utt_id: str
    features: dict[str, torch.Tensor]
    label: int
    domain: int = 0


def collate(examples: Sequence[Example]) -> Batch:
    """Stack examples into a :class:`Batch`: 2-D features are zero-padded to the longest in the batch."""
    if not examples:
        raise ValueError("cannot collate an empty batch")
    sequences, lengths, embeddings = {}, {}, {}
    for name, first in examples[0].features.items():
        arrays = [e.features[name] for e in examples]
        if first.ndim == 1:
            embeddings[name] = torch.stack(arrays)
            continue
        lens = torch.tensor([a.shape[0] for a in arrays], dtype=torch.long)
        padded = torch.zeros(len(arrays), int(lens.max()), first.shape[1], dtype=torch.float32)
        for i, a in enumerate(arrays):
            padded[i, : a.shape[0]] = a
        sequences[name], lengths[name] = padded, lens
    return Batch(
        sequences,
        lengths,
        embeddings,
        torch.tensor([e.label for e in examples], dtype=torch.long),
        torch.tensor([e.domain for e in examples], dtype=torch.long),
        [e.utt_id for e in examples],
    )


# --------------------------------------------------------------------------------------------------
# A domain's utterances, from its stores


@dataclass(frozen=True)
class DomainSpec:
    """A language domain and the dataset whose stores hold it."""

    language: str
    dataset: str

    def __str__(self) -> str:
        return f"{self.language}={self.dataset}"


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


def resolve_domain(spec: str, features_dir: str | Path) -> DomainSpec:
    """``de`` -> the dataset holding German (EmoDB by default); ``xx=name`` names the dataset explicitly.

    A code without a built-in dataset (or whose built-in dataset has no stores) is looked up in the
    ``language`` column of every ``features/*/train.h5``; exactly one dataset must hold it.
    """
    features_dir = Path(features_dir)
    spec = spec.strip()
    if "=" in spec:
        language, dataset = (s.strip() for s in spec.split("=", 1))
        if not language or not dataset:
            raise StoreError(features_dir, f"domain {spec!r} is not of the form LANG or LANG=DATASET")
        return DomainSpec(language, dataset)
    default = DEFAULT_DATASETS.get(spec)
    if default and any(store_path(features_dir, default, s).is_file() for s in SPLITS):
        return DomainSpec(spec, default)
    candidates = []
    for folder in sorted(p for p in features_dir.glob("*") if p.is_dir()):
        stores = [store_path(features_dir, folder.name, s) for s in SPLITS]
        stores = [p for p in stores if p.is_file()]
        if stores and spec in _store_languages(stores[0]):
            candidates.append(folder.name)
    if len(candidates) == 1:
        return DomainSpec(spec, candidates[0])
    if not candidates:
        hint = f"features/{default}/ " if default else ""
        raise StoreError(features_dir, f"no feature store holds language {spec!r}: expected {hint}stores, or give "
                                       f"{spec}=DATASET for the dataset folder that holds it (run `extract` first)")
    raise StoreError(features_dir, f"language {spec!r} is in several datasets ({', '.join(candidates)}); "
                                   f"say which one with {spec}=DATASET")


def default_features(spec: DomainSpec, features_dir: str | Path) -> list[str]:
    """Every feature the domain's first store holds, except auxiliary inputs such as ``ge2e_mel``."""
    for split in SPLITS:
        path = store_path(features_dir, spec.dataset, split)
        if path.is_file():
            with FeatureStore(path) as store:
                return [n for n in store.features if n not in AUXILIARY_FEATURES]
    raise StoreError(Path(features_dir) / spec.dataset, "no feature stores (train/valid/test.h5) here; run `extract` first")


def load_domain(spec: DomainSpec, features_dir: str | Path, features: Sequence[str]) -> DomainData:
    """Read ``features`` of one language from all split stores of its dataset, validating as it goes.

    Refused with :class:`StoreError`: no store; a store of another dataset or split than its file name;
    a missing feature; the same feature from different extractions (weights/settings) in two files; an
    utterance in two stores; an emotion outside the vocabulary; an empty sequence; non-finite values.
    """
    folder = Path(features_dir) / spec.dataset
    paths = [store_path(features_dir, spec.dataset, s) for s in SPLITS]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise StoreError(folder, f"no feature stores (train/valid/test.h5) for dataset {spec.dataset!r}; "
                                 f"run `extract --dataset {spec.dataset}` first")
    if not features:
        raise StoreError(folder, "no features selected")
    rows: dict[str, tuple[str, str, str, Path]] = {}
    arrays: dict[str, dict[str, np.ndarray]] = {n: {} for n in features}
    kinds: dict[str, str] = {}
    provenance: dict[str, dict] = {}
    first_path: dict[str, Path] = {}
    for path in paths:
        with FeatureStore(path) as store:
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
                if store.emotions[i] not in EMOTIONS:
                    raise StoreError(path, f"utterance {u!r} has emotion {store.emotions[i]!r}, not one of {', '.join(EMOTIONS)}")
                rows[u] = (store.speakers[i], store.emotions[i], store.split, path)
    if not rows:
        raise StoreError(folder, f"no utterance of language {spec.language!r} in the stores of {spec.dataset!r}")
    utt_ids = sorted(rows)
    _refuse_duplicate_recordings(folder, utt_ids, arrays)
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


# --------------------------------------------------------------------------------------------------
# Splits per run


def n_runs(data: DomainData, protocol: str, seeds: int, n_folds: int | None = None) -> int:
    """Runs of an experiment: ``seeds`` under the random protocol, every speaker fold under the speaker one."""
    if protocol == "random":
        return seeds
    speakers = len(set(data.speakers))
    return n_folds or speakers


def draw_split(data: DomainData, protocol: str, run: int, n_folds: int | None = None) -> list[str]:
    """The split of each utterance for run ``run`` (a seed, or a fold), checked for leakage.

    ``random``: :func:`sercore.splits.random_split` with seed ``run`` over the utterances in ``utt_id``
    order, which is also the preparer's scan order for the built-in corpora, so seed 0 reproduces the
    manifest's split. ``speaker``: fold ``run`` of :func:`sercore.splits.speaker_split` is the test set,
    fold ``run + 1`` the validation set (speakers dealt with seed 0, one speaker per fold by default).
    """
    where = Path(data.paths[0]).parent
    if protocol == "random":
        splits = random_split(data.emotions, seed=run)
    elif protocol == "speaker":
        try:
            splits = speaker_split(data.speakers, fold=run, n_folds=n_folds, seed=0)
        except ValueError as exc:
            raise StoreError(where, f"speaker protocol impossible for language {data.spec.language!r}: {exc}") from None
    else:
        raise StoreError(where, f"unknown protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    try:
        check_disjoint(data.utt_ids, data.speakers, splits, protocol)
    except ValueError as exc:
        raise StoreError(where, str(exc)) from None
    for name in SPLITS:
        if name not in splits:
            raise StoreError(where, f"run {run} of the {protocol} protocol leaves the {name} split empty")
    return splits


# --------------------------------------------------------------------------------------------------
# Standardisation, datasets, sampling


@dataclass
class FeatureScaler:
    """Per-dimension standardisation with statistics of the training split only (frames pooled for sequences)."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @classmethod
    def fit(cls, data: DomainData, indices: Sequence[int], skip: Sequence[str] = ()) -> "FeatureScaler":
        mean, std = {}, {}
        for name, arrays in data.features.items():
            if name in skip:
                continue
            rows = np.concatenate([np.atleast_2d(arrays[i]) for i in indices]).astype(np.float64)
            mean[name] = rows.mean(0).astype(np.float32)
            std[name] = np.maximum(rows.std(0), 1e-5).astype(np.float32)
        return cls(mean, std)

    def __call__(self, name: str, array: np.ndarray, index: int | None = None) -> np.ndarray:
        """``array`` of feature ``name`` (utterance ``index`` of the domain, unused here) standardised."""
        if name not in self.mean:
            return array
        return (array - self.mean[name]) / self.std[name]


@dataclass
class SpeakerScaler:
    """Per-speaker standardisation (not in the paper): each utterance with its own speaker's statistics.

    The statistics of a speaker come from all of that speaker's utterances, whatever their split, and use
    no label: the usual speaker normalisation of emotion recognition, which needs some unlabelled audio of
    every speaker, the test speakers included. It removes what is constant within a speaker (vocal tract,
    recording set-up, and most of a speaker embedding such as GE2E), so the model learns how a speaker's
    emotional speech departs from that speaker's average.
    """

    by_speaker: dict[str, FeatureScaler]
    speakers: list[str]  # speaker of every utterance of the domain, by index

    @classmethod
    def fit(cls, data: "DomainData", skip: Sequence[str] = ()) -> "SpeakerScaler":
        groups: dict[str, list[int]] = {}
        for i, speaker in enumerate(data.speakers):
            groups.setdefault(speaker, []).append(i)
        return cls({sp: FeatureScaler.fit(data, idx, skip) for sp, idx in groups.items()}, list(data.speakers))

    def __call__(self, name: str, array: np.ndarray, index: int | None = None) -> np.ndarray:
        if index is None:
            raise ValueError("per-speaker standardisation needs the utterance's index")
        return self.by_speaker[self.speakers[index]](name, array)


class FeatureDataset(Dataset):
    """The utterances ``indices`` of a domain as :class:`Example` s (tensors built once, in memory).

    ``crop`` > 0 (training augmentation, not in the paper): each time an utterance is drawn, each of its
    sequence features (not auxiliary inputs such as ``ge2e_mel``) is cut to a random contiguous part of
    at least ``crop`` of its frames, from a generator seeded with ``seed``.
    """

    def __init__(self, data: DomainData, indices: Sequence[int], classes: Sequence[str], domain: int = 0,
                 scaler: "FeatureScaler | SpeakerScaler | None" = None, crop: float = 0.0, seed: int = 0):
        index = {c: i for i, c in enumerate(classes)}
        missing = sorted({data.emotions[i] for i in indices} - set(index))
        if missing:
            raise StoreError(data.paths[0].parent, f"emotion(s) {missing} are not among the classes {list(classes)}")
        self.indices = list(indices)
        self.labels = [index[data.emotions[i]] for i in self.indices]
        self.domain = domain
        self.utt_ids = [data.utt_ids[i] for i in self.indices]
        self._features = []
        for i in self.indices:
            feats = {}
            for name, arrays in data.features.items():
                a = arrays[i] if scaler is None else scaler(name, arrays[i], i)
                feats[name] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
            self._features.append(feats)
        if not 0.0 <= crop <= 1.0:
            raise ValueError(f"crop must be a fraction in [0, 1], got {crop}")
        self.crop = crop
        self._rng = np.random.default_rng([seed, domain])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> Example:
        features = self._features[k]
        if self.crop > 0:
            features = dict(features)
            for name, a in features.items():
                if a.ndim == 2 and name not in AUXILIARY_FEATURES and a.shape[0] > 1:
                    n = a.shape[0]
                    keep = int(self._rng.integers(max(1, int(np.ceil(self.crop * n))), n + 1))
                    start = int(self._rng.integers(0, n - keep + 1))
                    features[name] = a[start:start + keep]
        return Example(self.utt_ids[k], features, self.labels[k], self.domain)


class ClassBalancedBatchSampler(Sampler[list[int]]):
    """Batches holding ``per_class`` examples of every group (class, or (domain, class) pair).

    The contrastive loss only uses emotions with more than five samples in a batch, and with ordinary
    shuffled batches the small classes rarely reach that. So each batch takes ``per_class`` examples
    from each group, drawn without replacement from a shuffled pool per group that is refilled when it
    runs out; an epoch has ``ceil(n / batch size)`` batches, i.e. about one pass over the data. Small
    classes are thereby seen more often than large ones (the class prior the classifier learns is
    uniform, which is what UA rewards). Deterministic for a given seed and epoch (:meth:`set_epoch`).
    """

    def __init__(self, groups: Sequence[Hashable], per_class: int = 8, seed: int = 0, n_batches: int | None = None):
        if per_class < 1:
            raise ValueError("per_class must be at least 1")
        self.per_class = per_class
        self.seed = seed
        self.epoch = 0
        pools: dict[Hashable, list[int]] = {}
        for i, g in enumerate(groups):
            pools.setdefault(g, []).append(i)
        self.pools = [np.array(v) for _, v in sorted(pools.items(), key=lambda kv: str(kv[0]))]
        self.batch_size = per_class * len(self.pools)
        self.n_batches = n_batches or max(1, math.ceil(len(groups) / self.batch_size))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        queues = [list(rng.permutation(p)) for p in self.pools]
        for _ in range(self.n_batches):
            batch: list[int] = []
            for q, pool in zip(queues, self.pools):
                while len(q) < self.per_class:
                    q.extend(rng.permutation(pool))
                batch.extend(int(i) for i in q[: self.per_class])
                del q[: self.per_class]
            yield [batch[i] for i in rng.permutation(len(batch))]


def split_indices(splits: Sequence[str]) -> Mapping[str, list[int]]:
    return {name: [i for i, s in enumerate(splits) if s == name] for name in SPLITS}
