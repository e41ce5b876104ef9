"""A language domain's utterances, read from its feature stores and validated.

:func:`resolve_domain` maps a language code to the dataset whose stores hold it, :func:`load_domain`
pools that dataset's ``train/valid/test`` stores in memory as a :class:`DomainData` (refusing mixed
extractions, overlapping stores, unknown emotions, empty or non-finite arrays and, as a leakage guard,
one recording under two ids).
"""

from __future__ import annotations

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
from .duplicates import refuse_identical_recordings, refuse_near_duplicates

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


def load_domain(spec: DomainSpec, features_dir: str | Path, features: Sequence[str], labelled: bool = True) -> DomainData:
    """Read ``features`` of one language from all split stores of its dataset, validating as it goes
    (``labelled=False``: recordings whose labels will not be read, which may all carry one).

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
    refuse_identical_recordings(folder, utt_ids, arrays)
    refuse_near_duplicates(folder, utt_ids, arrays, kinds)
    classes = sorted_labels(r[1] for r in rows.values())
    if len(classes) < 2 and labelled:
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
