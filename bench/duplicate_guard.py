"""The near-duplicate guard of `train` on a real corpus: pairs flagged, time, margin, and altered copies.

    python bench/duplicate_guard.py --features-dir FEATURES --dataset emovo [--margin all|speaker|sample]
        [--copies ROOT/f1/dis-f1-b1.wav ...]

Reads the dataset's stores (mfcc, ge2e, byol) as `train` does, runs ``train.duplicates.near_duplicates`` (timed),
then, for the margin, aligns every pair (``all``), every pair of one speaker (``speaker``: RAVDESS, the speaker
being the id's last field) or every pair of 400 random utterances (``sample``) with the prefilters open, and
prints the highest content scores. ``--copies``: each file gets five altered copies (150 ms of silence added, 5 %
cut from its end or start, noise at 30 and 20 dB SNR), extracted here with mfcc and ge2e, added to the corpus one
at a time and checked with mfcc+ge2e and with mfcc alone. Prints a log; nothing is written.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import train.duplicates as guard
from extract.audio import load_audio
from extract.extractors import ExtractorSettings, extractor_class
from sercore.store import open_dataset


def _load(features_dir: str, dataset: str, names: list[str]) -> tuple[dict, dict]:
    arrays: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
    kinds: dict[str, str] = {}
    for store in open_dataset(features_dir, dataset).values():
        with store:
            for n in names:
                kinds[n] = store.feature(n).kind
                for u, a in zip(store.utt_ids, store.read(n)):
                    arrays[n][u] = np.asarray(a, np.float32)
    return arrays, kinds


def _copies(x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    power = float(np.mean(x ** 2))
    noisy = {f"{snr} dB SNR": x + rng.normal(0, np.sqrt(power / 10 ** (snr / 10)), len(x)).astype(np.float32)
             for snr in (30, 20)}
    return {"150 ms of silence added": np.concatenate([np.zeros(2400, np.float32), x]),
            "end cut by 5 %": x[:int(len(x) * 0.95)], "start cut by 5 %": x[int(len(x) * 0.05):], **noisy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features-dir", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--features", default="mfcc,ge2e,byol")
    ap.add_argument("--margin", choices=["none", "all", "speaker", "sample"], default="none")
    ap.add_argument("--copies", nargs="*", default=[], help="audio files of the corpus to alter")
    args = ap.parse_args()
    names = args.features.split(",")
    arrays, kinds = _load(args.features_dir, args.dataset, names)
    ids = sorted(arrays[names[0]])
    start = time.perf_counter()
    pairs = guard.near_duplicates(ids, arrays, kinds)
    print(f"{args.dataset}: {len(ids)} utterances, features {args.features}: {len(pairs)} pair(s) flagged in "
          f"{time.perf_counter() - start:.2f} s (load average {os.getloadavg()[0]:.1f})")
    for p in pairs:
        print("   ", p)
    if args.copies:
        settings = ExtractorSettings()
        extractors = {n: extractor_class(n, settings)(settings) for n in ("mfcc", "ge2e")}
        for ex in extractors.values():
            ex.load()
        rng = np.random.default_rng(0)
        both = {n: dict(arrays[n]) for n in ("mfcc", "ge2e")}
        for path in args.copies:
            u = Path(path).stem
            x, rate = load_audio(path)
            if rate != 16000:
                import librosa

                x = librosa.resample(x, orig_sr=rate, target_sr=16000)
            for name, y in _copies(x, rng).items():
                for n, ex in extractors.items():
                    both[n]["zz_copy"] = ex.extract(y)
                g = both["ge2e"]
                cos = float(g[u] @ g["zz_copy"] / np.linalg.norm(g[u]) / np.linalg.norm(g["zz_copy"]))
                ids2 = sorted(both["mfcc"])
                found = [str(p) for p in guard.near_duplicates(ids2, both, kinds) if "zz_copy" in (p.first, p.second)]
                alone = [str(p) for p in guard.near_duplicates(ids2, {"mfcc": both["mfcc"]}, kinds)
                         if "zz_copy" in (p.first, p.second)]
                print(f"  copy of {u}, {name}: GE2E cosine {cos:.4f}; mfcc+ge2e: {found or 'not flagged'}; "
                      f"mfcc alone: {alone or 'not flagged'}")
    if args.margin != "none":
        flagged = {(p.first, p.second) for p in pairs}
        guard.CONTENT_PREFILTER_POOLED = guard.CONTENT_PREFILTER_GE2E = -2.0  # every pair is a candidate
        guard.CONTENT_THRESHOLD = 0.02
        if args.margin == "speaker":
            groups = [[u for u in ids if u.split("-")[-1] == s] for s in sorted({u.split("-")[-1] for u in ids})]
        elif args.margin == "sample":
            groups = [sorted(np.random.default_rng(0).choice(ids, 400, replace=False).tolist())]
        else:
            groups = [ids]
        start = time.perf_counter()
        scored = [p for g in groups for p in guard.content_duplicates(g, arrays["mfcc"])]
        distinct = sorted((p for p in scored if (p.first, p.second) not in flagged), key=lambda p: -p.cosine)
        n = sum(len(g) * (len(g) - 1) // 2 for g in groups)
        print(f"  margin ({args.margin}): {n} pairs aligned in {time.perf_counter() - start:.0f} s; highest scores of "
              "distinct pairs:")
        for p in distinct[:5]:
            print("   ", p)


if __name__ == "__main__":
    main()
