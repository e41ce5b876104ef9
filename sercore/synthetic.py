"""Synthetic feature stores: an ``mfcc`` sequence and a ``ge2e`` embedding per utterance whose means depend on the
emotion (separable, not trivially), for the tests, the benchmarks and the GPU check (``bench/gpu_check.py``).
Timing, plumbing and agreement only: the numbers are random, nothing about speech.

:func:`write_synthetic_stores` writes ``<root>/<dataset>/{train,valid,test}.h5`` from a list of utterances
(id, emotion, speaker); :func:`make_stores` is the small corpus the tests use (``per_class`` utterances of each
emotion, several speakers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .splits import random_split
from .store import UtteranceRecord, store_path, write_store

EMOTIONS = ("neutral", "happy", "angry", "sad")


def write_synthetic_stores(root: Path, dataset: str, language: str, emotions: Sequence[str],
                           utterances: Sequence[tuple[str, int, str]], *, seq_dim: int, emb_dim: int,
                           separation: tuple[float, float], frames: tuple[int, int], seed: int = 0,
                           mel: tuple[str, bool] | None = None,
                           splits: Callable[[list[UtteranceRecord]], list[str]] | None = None) -> Path:
    """``root/<dataset>/{train,valid,test}.h5``; returns ``root``.

    utterances: (utt_id, emotion index into ``emotions``, speaker) of each utterance, drawn in this order from one
    generator seeded with ``seed`` (after the emotions' centres): frames uniform in ``[frames[0], frames[1])``, then
    the ``mfcc`` frames (seq_dim values each) and the ``ge2e`` vector (emb_dim), each its emotion's centre plus a
    standard normal; the centres are standard normals times ``separation`` (sequence, embedding).
    mel: (name, role) adds a third feature, a (20 to 199, 40) sequence of absolute normals; role True records it as
    the input of ``ge2e`` (as the ge2e_mel extractor does), False as a store written before roles were recorded.
    splits: the split of each record (in utt_id order); default the random protocol's split with seed 0.
    """
    rng = np.random.default_rng(seed)
    centres_seq = rng.normal(size=(len(emotions), seq_dim)) * separation[0]
    centres_emb = rng.normal(size=(len(emotions), emb_dim)) * separation[1]
    records = []
    for utt_id, k, speaker in utterances:
        n = int(rng.integers(*frames))
        feats = {
            "mfcc": (centres_seq[k] + rng.normal(size=(n, seq_dim))).astype(np.float32),
            "ge2e": (centres_emb[k] + rng.normal(size=emb_dim)).astype(np.float32),
        }
        if mel is not None:
            feats[mel[0]] = np.abs(rng.normal(size=(int(rng.integers(20, 200)), 40))).astype(np.float32)
        records.append(UtteranceRecord(utt_id, emotions[k], speaker, language, feats))
    records.sort(key=lambda r: r.utt_id)
    attrs = {"mfcc": {"kind": "sequence", "dim": seq_dim, "extractor": "synthetic"},
             "ge2e": {"kind": "embedding", "dim": emb_dim, "extractor": "synthetic"}}
    if mel is not None:
        attrs[mel[0]] = {"kind": "sequence", "dim": 40, "extractor": "synthetic", **({"input_of": "ge2e"} if mel[1] else {})}
    split_of = splits(records) if splits is not None else random_split([r.emotion for r in records], seed=0)
    for split in ("train", "valid", "test"):
        write_store(store_path(root, dataset, split), dataset, split, [r for r, s in zip(records, split_of) if s == split],
                    attrs)
    return root


def make_stores(root: Path, dataset: str = "synth", language: str = "de", emotions: Sequence[str] = EMOTIONS,
                per_class: int = 24, speakers: int = 4, seq_dim: int = 6, emb_dim: int = 5, separation: float = 1.5,
                seed: int = 0, with_mel: bool = False, mel_name: str = "ge2e_mel", mel_role: bool = True,
                splits: Callable[[list[UtteranceRecord]], list[str]] | None = None) -> Path:
    """features/<dataset>/{train,valid,test}.h5 with ``per_class`` utterances of each emotion (``<lang>_<emotion>_<i>``,
    speaker ``spk<i mod speakers>``), 5 to 29 frames each (:func:`write_synthetic_stores`). ``with_mel`` adds the
    ``mel_name`` sequence (recorded as ge2e's input when ``mel_role``). Returns ``root``."""
    utterances = [(f"{language}_{emo}_{i:03d}", k, f"spk{i % speakers}")
                  for k, emo in enumerate(emotions) for i in range(per_class)]
    return write_synthetic_stores(root, dataset, language, emotions, utterances, seq_dim=seq_dim, emb_dim=emb_dim,
                                  separation=(separation, separation), frames=(5, 30), seed=seed,
                                  mel=(mel_name, mel_role) if with_mel else None, splits=splits)
