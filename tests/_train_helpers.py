"""Tiny synthetic feature stores for the trainer's tests (written with sercore.store.write_store)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sercore.splits import random_split
from sercore.store import UtteranceRecord, store_path, write_store

EMOTIONS = ("neutral", "happy", "angry", "sad")


def make_stores(root: Path, dataset: str = "synth", language: str = "de", emotions: Sequence[str] = EMOTIONS,
                per_class: int = 24, speakers: int = 4, seq_dim: int = 6, emb_dim: int = 5, separation: float = 1.5,
                seed: int = 0, with_mel: bool = False, mel_name: str = "ge2e_mel", mel_role: bool = True,
                splits: Callable[[list[UtteranceRecord]], list[str]] | None = None) -> Path:
    """features/<dataset>/{train,valid,test}.h5 with a ``mfcc`` sequence and a ``ge2e`` embedding whose means
    depend on the emotion (separable, not trivially), variable lengths, several speakers. ``splits``: the split of
    each record (in utt_id order); default the random protocol's split with seed 0. Returns ``root``."""
    rng = np.random.default_rng(seed)
    centres_seq = rng.normal(size=(len(emotions), seq_dim)) * separation
    centres_emb = rng.normal(size=(len(emotions), emb_dim)) * separation
    records = []
    for k, emo in enumerate(emotions):
        for i in range(per_class):
            frames = int(rng.integers(5, 30))
            feats = {
                "mfcc": (centres_seq[k] + rng.normal(size=(frames, seq_dim))).astype(np.float32),
                "ge2e": (centres_emb[k] + rng.normal(size=emb_dim)).astype(np.float32),
            }
            if with_mel:
                feats[mel_name] = np.abs(rng.normal(size=(int(rng.integers(20, 200)), 40))).astype(np.float32)
            records.append(UtteranceRecord(f"{language}_{emo}_{i:03d}", emo, f"spk{i % speakers}", language, feats))
    records.sort(key=lambda r: r.utt_id)
    attrs = {"mfcc": {"kind": "sequence", "dim": seq_dim, "extractor": "synthetic"},
             "ge2e": {"kind": "embedding", "dim": emb_dim, "extractor": "synthetic"}}
    if with_mel:
        # the role the ge2e_mel extractor records (mel_role=False: a store written before roles were recorded)
        attrs[mel_name] = {"kind": "sequence", "dim": 40, "extractor": "synthetic", **({"input_of": "ge2e"} if mel_role else {})}
    splits = splits(records) if splits is not None else random_split([r.emotion for r in records], seed=0)
    for split in ("train", "valid", "test"):
        write_store(store_path(root, dataset, split), dataset, split, [r for r, s in zip(records, splits) if s == split], attrs)
    return root


def selected_run(out: Path, spec: str, stores: Path, features: Sequence[str]):
    """What a test needs to check a run folder's bundle against its run record: ``bundle`` (``out``'s), ``record``
    (the bundle's selected run, as written in runs/run<k>.json), ``data`` (domain ``spec`` of ``stores``), ``rows``
    (the record's test utterances in ``data``), ``batch`` (those utterances, collated) and ``probabilities`` (the
    bundle's class probabilities for that batch)."""
    import json
    from types import SimpleNamespace

    import torch

    from predict.bundle import load_bundle
    from train.model_io import Example, collate
    from train.domains import load_domain, resolve_domain

    bundle = load_bundle(out)
    run = bundle.meta["selected_run"]["run"]
    record = json.loads((out / "runs" / f"run{run}.json").read_text())
    data = load_domain(resolve_domain(spec, stores), stores, list(features))
    rows = [data.utt_ids.index(u) for u in record["test"]["utt_ids"]]
    batch = collate([Example(data.utt_ids[i], {f: torch.from_numpy(data.features[f][i]) for f in features}, 0)
                     for i in rows])
    with torch.no_grad():
        probabilities = torch.softmax(bundle.model(batch).logits, -1).numpy()
    return SimpleNamespace(bundle=bundle, record=record, data=data, rows=rows, batch=batch, probabilities=probabilities)


def scrambled_test(data, test_rows: Sequence[int], features: Sequence[str], *, shuffle_labels: bool, seed: int = 5):
    """A copy of domain ``data`` whose test rows hold noise (9 x a standard normal) for every feature of ``features``
    and, with ``shuffle_labels``, the test rows' emotions permuted among them: what a choice made without test data
    must not notice."""
    import copy

    other = copy.deepcopy(data)
    rng = np.random.default_rng(seed)
    shuffled = [data.emotions[i] for i in rng.permutation(test_rows)]
    for k, i in enumerate(test_rows):
        for f in features:
            other.features[f][i] = rng.normal(size=other.features[f][i].shape).astype(np.float32) * 9
        if shuffle_labels:
            other.emotions[i] = shuffled[k]
    return other
