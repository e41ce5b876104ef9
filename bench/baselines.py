"""scikit-learn reference models on exactly the trainer's splits and stores (apples to apples).

    python bench/baselines.py --domains de --protocol random --seeds 5
    python bench/baselines.py --domains de --protocol speaker

Pooled features (train/pooling.py): MFCC statistics (mean and standard deviation over frames of the MFCCs
and of their deltas) and the GE2E embedding. Models: the RBF-kernel SVM on MFCC statistics, logistic regression on
GE2E, logistic regression on MFCC statistics + GE2E: the heads of ``train --model rbfsvm|logreg`` (train/pooled_heads.py),
each fitted as ``bench/vs_baselines.py`` fits its baselines (:func:`bench.vs_baselines.fit_baseline`: inputs
standardised, C (and the RBF's gamma) chosen on the head's default grid by an inner cross-validation on the fitting
rows only, speaker-grouped under the speaker protocol, then refitted on all of them). See bench/vs_baselines.py for
the network against the strongest of the heads on every stored feature. Each run uses the trainer's split
(train.protocol.draw_split); the baselines have no epochs to select, so by default they are fitted on train + valid
(80% of the data under the random protocol, as in the brief's reference figures; ``--fit-on train`` uses exactly
the network's training data) and scored on the same test set as the network.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


from bench.vs_baselines import fit_baseline
from train.domains import load_domain, resolve_domain
from train.pooling import pooled_feature
from train.protocol import draw_split, n_runs, split_indices
from train.scaling import speaker_standardised

#: name -> (pooled features, head of train/pooled_heads.py), chosen and fitted by :func:`bench.vs_baselines.fit_baseline`.
MODELS = {
    "svm_mfcc_stats": (["mfcc"], "rbfsvm"),
    "lr_ge2e": (["ge2e"], "logreg"),
    "lr_mfcc_stats_ge2e": (["mfcc", "ge2e"], "logreg"),
}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domains", default="de")
    p.add_argument("--features-dir", default="features")
    p.add_argument("--protocol", choices=["random", "speaker"], default="random")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--fit-on", choices=["train", "train+valid"], default="train+valid",
                   help="train: exactly the network's training data; train+valid: 80%% as in the reference figures")
    p.add_argument("--speaker-norm", action="store_true",
                   help="standardise the pooled features per speaker (all of a speaker's utterances, no labels), "
                        "as train --speaker-norm does with the frames")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    spec = resolve_domain(args.domains, args.features_dir)
    data = load_domain(spec, args.features_dir, ["mfcc", "ge2e"])
    pooled = {f: pooled_feature(data.features[f], data.kinds[f]) for f in ("mfcc", "ge2e")}
    if args.speaker_norm:  # train --model logreg --speaker-norm's normalisation, per feature
        pooled = {name: speaker_standardised(x, data.speakers) for name, x in pooled.items()}
    y = np.array([data.classes.index(e) for e in data.emotions])
    speakers = np.array(data.speakers)
    results: dict[str, list[dict]] = {m: [] for m in MODELS}
    start = time.perf_counter()
    for run in range(n_runs(data, args.protocol, args.seeds)):
        idx = split_indices(draw_split(data, args.protocol, run))
        fit_rows = np.array(idx["train"] + (idx["valid"] if args.fit_on == "train+valid" else []))
        test_rows = np.array(idx["test"])
        groups = speakers[fit_rows] if args.protocol == "speaker" else None
        for name, (features, head) in MODELS.items():
            x = np.concatenate([pooled[f] for f in features], axis=1)
            b = fit_baseline(head, x[fit_rows], y[fit_rows], x[test_rows], y[test_rows], data.classes, groups, seed=run)
            results[name].append({"run": run, "wa": b.wa, "ua": b.ua, "C": b.c, "gamma": b.gamma})
    summary = {
        name: {"ua_mean": float(np.mean([r["ua"] for r in rs])), "ua_std": float(np.std([r["ua"] for r in rs], ddof=1)),
               "wa_mean": float(np.mean([r["wa"] for r in rs])), "wa_std": float(np.std([r["wa"] for r in rs], ddof=1)),
               "runs": rs}
        for name, rs in results.items()
    }
    print(f"{spec}, {args.protocol} protocol, fitted on {args.fit_on}{', speaker-normalised' if args.speaker_norm else ''}, {len(results['lr_ge2e'])} runs ({time.perf_counter() - start:.0f} s):")
    for name, s in summary.items():
        print(f"  {name:22s} UA {s['ua_mean']:.3f} +- {s['ua_std']:.3f}   WA {s['wa_mean']:.3f} +- {s['wa_std']:.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"domain": str(spec), "protocol": args.protocol, "fit_on": args.fit_on, "models": summary}, indent=2))
    return summary


if __name__ == "__main__":
    main()
