"""The leakage guards of :func:`train.domains.load_domain`: one recording under two ids, whether its features are
identical (:func:`refuse_identical_recordings`) or a resampled, re-encoded, trimmed, padded or noisy copy
(:func:`refuse_near_duplicates`)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from sercore.errors import StoreError

def recording_key(features: Mapping[str, np.ndarray]) -> str:
    """A digest of one utterance's features (name -> array): equal for one recording extracted the same way."""
    h = hashlib.sha256()
    for name in sorted(features):
        a = np.ascontiguousarray(features[name], dtype=np.float32)
        h.update(np.asarray(a.shape, np.int64).tobytes() + a.tobytes())
    return h.hexdigest()


def shared_recordings(first, second) -> list[tuple[str, str]]:
    """(id in first, id in second) of the recordings two :class:`~train.domains.DomainData` both hold (identical
    features over the features of both)."""
    names = sorted(set(first.features) & set(second.features))
    keys = {recording_key({f: first.features[f][i] for f in names}): u for i, u in enumerate(first.utt_ids)}
    found = ((keys.get(recording_key({f: second.features[f][i] for f in names})), u) for i, u in enumerate(second.utt_ids))
    return [(a, b) for a, b in found if a is not None]


def refuse_identical_recordings(folder: Path, utt_ids: Sequence[str], arrays: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Leakage guard: two ids with identical features are one recording twice (a copied file in a corpus
    folder, a CSV listing a file twice), and a split could put one copy in training and the other in test."""
    seen: dict[str, str] = {}
    for u in utt_ids:
        key = recording_key({name: arrays[name][u] for name in arrays})
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
