"""Which stored features carry emotion for this corpus? A linear probe per feature, under both protocols.

    python bench/probe.py --dataset emodb
    python bench/probe.py --dataset emovo --features mfcc,byol,egemaps --out bench/results/probe_emovo.json

Every feature stored for the dataset (``features/<dataset>/*.h5``; default: all but auxiliary inputs such as
``ge2e_mel``) is scored alone with logistic regression on a pooled vector per utterance:

* sequences (frames, dim): mean and standard deviation over frames of the frames and of their deltas
  (``train/pooling.py``, 4 * dim values); features holding several hidden layers (the
  Hugging Face encoders) are first averaged over their layers (the trainer's layer weighting starts there);
* utterance vectors (GE2E, BYOL-A, eGeMAPS, ComParE): as they are.

The probe is ``train --model logreg``'s head (train/pooled_heads.py), as ``bench/vs_baselines.py``'s ``logreg`` baseline:
inputs standardised (statistics of the fitting part), the inverse regularisation C chosen from the head's grid
(:data:`train.pooled_heads.C_GRIDS`: 1e-4 to 1e4, a factor 10 apart) by 5-fold inner cross-validation on the fitting
part only (stratified under the random protocol, grouped by speaker under the speaker one), scoring UA. The probe is fitted on all non-test data of the
trainer's split of each run (``train.protocol.draw_split``: 5 random stratified 64/16/20 splits, seeds 0-4; or the
speaker folds, one test speaker each) and scored on its test part: UA (unweighted average recall) and WA
(accuracy), mean ± standard deviation over runs.

Extraction time: each feature's extractor (weights from the environment / ``MGSER_CONFIG``, as for ``extract``)
is timed on ``--time-utterances`` utterances of the manifest after one warm-up call, and reported as seconds of
computing per minute of audio on this machine (one process, the threads torch is allowed). Features whose
extractor cannot run here get "n/a".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


from train.pooling import pool  # the pooled statistics, one place
from sercore.manifest import manifest_path, read_manifest
from sercore.store import FeatureStore, store_path
from train.domains import DomainSpec, default_features, load_domain
from train.protocol import draw_split, n_runs, split_indices
from train.pooled_heads import HeadConfig, select_head
from train.metrics import score

#: The probe: ``train --model logreg``'s head with its default grid of C.
PROBE_HEAD = HeadConfig("logreg")
C_GRID = PROBE_HEAD.cs
PROTOCOLS = ("random", "speaker")


def pooled(array: np.ndarray, n_layers: int = 1) -> np.ndarray:
    """One utterance's probe input: a vector as it is; a (frames, dim) sequence as mean and std of the frames and
    of their deltas; a (frames, n_layers * width) stack of hidden layers averaged over the layers first."""
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 1:
        return pool(a, "embedding")
    if n_layers > 1:
        a = a.reshape(a.shape[0], n_layers, -1).mean(1)
    return pool(a, "sequence")


@dataclass
class ProbeResult:
    feature: str
    kind: str
    dim: int
    seconds_per_audio_minute: float | None = None
    protocols: dict[str, dict] = field(default_factory=dict)  # protocol -> {ua_mean, ua_std, wa_mean, wa_std, runs, C}


def probe_feature(spec: DomainSpec, features_dir: Path, feature: str, protocols, seeds: int, folds: int | None,
                  log=print) -> ProbeResult:
    data = load_domain(spec, features_dir, [feature])
    prov = data.provenance[feature]
    n_layers = len(prov.get("layers") or ()) or 1
    x = np.stack([pooled(a, n_layers) for a in data.features[feature]])
    del data.features[feature]
    y = np.array([data.classes.index(e) for e in data.emotions])
    speakers = np.array(data.speakers)
    result = ProbeResult(feature, data.kinds[feature], int(prov.get("dim", x.shape[1])))
    for protocol in protocols:
        runs = []
        for run in range(n_runs(data, protocol, seeds, folds)):
            idx = split_indices(draw_split(data, protocol, run, folds))
            fit = np.array(idx["train"] + idx["valid"])
            test = np.array(idx["test"])
            head = select_head(PROBE_HEAD, x[fit], y[fit], speakers[fit] if protocol == "speaker" else None, seed=run)
            s = score(y[test], head.pipeline.predict(x[test]), data.classes)
            runs.append({"run": run, "ua": s.ua, "wa": s.wa, "C": head.params["c"]})
        ua, wa = np.array([r["ua"] for r in runs]), np.array([r["wa"] for r in runs])
        result.protocols[protocol] = {"ua_mean": float(ua.mean()), "ua_std": float(ua.std(ddof=1)) if len(ua) > 1 else 0.0,
                                      "wa_mean": float(wa.mean()), "wa_std": float(wa.std(ddof=1)) if len(wa) > 1 else 0.0,
                                      "runs": runs}
        log(f"  {feature:12s} {protocol:8s} UA {ua.mean():.3f} +- {result.protocols[protocol]['ua_std']:.3f}  "
            f"WA {wa.mean():.3f}  ({len(runs)} runs)")
    return result


def time_extraction(dataset: str, feature: str, provenance: dict, manifest_dir: Path, n: int) -> float | None:
    """Seconds of computing per minute of audio for ``feature``'s extractor on ``n`` utterances (None: cannot run)."""
    if n <= 0:
        return None
    from extract.audio import DecodedAudio
    from extract.extractors import ExtractorSettings, MissingWeightsError, extractor_class

    path = manifest_path(manifest_dir, dataset)
    if not path.is_file():
        return None
    settings = ExtractorSettings().with_env_defaults()
    if provenance.get("model_type"):
        from extract.extractors.ssl import options_from_provenance

        settings.ssl[feature] = {**options_from_provenance(provenance), **settings.ssl.get(feature, {})}
    try:
        ex = extractor_class(provenance.get("extractor") or feature, settings)(settings)
        ex.check_available(settings)
        ex.load()
    except (MissingWeightsError, ImportError, ValueError, OSError):
        return None
    rows = read_manifest(path)
    step = max(1, len(rows) // n)
    clips = [DecodedAudio(u.path).at(ex.sample_rate, ex.min_seconds) for u in rows[::step][:n]]
    ex.extract(clips[0])  # warm-up (lazy initialisation, caches)
    start = time.perf_counter()
    for clip in clips:
        ex.extract(clip)
    seconds = time.perf_counter() - start
    audio_minutes = sum(len(c) for c in clips) / ex.sample_rate / 60
    return seconds / audio_minutes


def dataset_languages(features_dir: Path, dataset: str) -> list[str]:
    for split in ("train", "valid", "test"):
        p = store_path(features_dir, dataset, split)
        if p.is_file():
            with FeatureStore(p) as s:
                return sorted(set(s.languages))
    raise SystemExit(f"error: {Path(features_dir) / dataset}: no feature stores; run `extract --dataset {dataset}` first")


def markdown(results: list[ProbeResult], protocols) -> str:
    head = "| feature | kind, dim | extraction, s per audio minute |" + "".join(
        f" {p} UA | {p} WA |" for p in protocols)
    lines = [head, "|" + " --- |" * (3 + 2 * len(protocols))]
    for r in results:
        t = "n/a" if r.seconds_per_audio_minute is None else f"{r.seconds_per_audio_minute:.2f}"
        cells = "".join(f" {r.protocols[p]['ua_mean']:.3f} ± {r.protocols[p]['ua_std']:.3f} |"
                        f" {r.protocols[p]['wa_mean']:.3f} ± {r.protocols[p]['wa_std']:.3f} |" for p in protocols)
        lines.append(f"| {r.feature} | {r.kind}, {r.dim} | {t} |{cells}")
    return "\n".join(lines)


def main(argv=None) -> list[ProbeResult]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, help="a dataset with feature stores under --features-dir")
    p.add_argument("--language", default=None, help="the language to probe when the dataset holds several")
    p.add_argument("--features", default=None, help="comma-separated features [default: every stored one]")
    p.add_argument("--features-dir", type=Path, default=Path("features"))
    p.add_argument("--manifest-dir", type=Path, default=Path("data_manifests"))
    p.add_argument("--protocols", default="random,speaker")
    p.add_argument("--seeds", type=int, default=5, help="random protocol: runs (seeds 0..n-1)")
    p.add_argument("--folds", type=int, default=None, help="speaker protocol: speaker folds [default: one per speaker]")
    p.add_argument("--time-utterances", type=int, default=20, help="utterances to time each extractor on (0: no timing)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON (and the table as .md beside it)")
    args = p.parse_args(argv)
    protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
    bad = [x for x in protocols if x not in PROTOCOLS]
    if bad:
        p.error(f"--protocols: unknown {bad}; known: {', '.join(PROTOCOLS)}")
    languages = [args.language] if args.language else dataset_languages(args.features_dir, args.dataset)
    if len(languages) > 1:
        p.error(f"--language: dataset {args.dataset} holds {', '.join(languages)}; name one")
    spec = DomainSpec(languages[0], args.dataset)
    features = ([f.strip() for f in args.features.split(",") if f.strip()] if args.features
                else default_features(spec, args.features_dir))
    print(f"{spec}: linear probe of {', '.join(features)}; protocols {', '.join(protocols)} "
          f"({args.seeds} seeds; speaker folds: {args.folds or 'one per speaker'}); OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} CPUs", flush=True)
    results = []
    start = time.perf_counter()
    for feature in features:
        r = probe_feature(spec, args.features_dir, feature, protocols, args.seeds, args.folds)
        with FeatureStore(next(store_path(args.features_dir, args.dataset, s) for s in ("train", "valid", "test")
                               if store_path(args.features_dir, args.dataset, s).is_file())) as store:
            prov = dict(store.feature(feature).attrs)
        r.seconds_per_audio_minute = time_extraction(args.dataset, feature, prov, args.manifest_dir, args.time_utterances)
        results.append(r)
        sys.stdout.flush()
    table = markdown(results, protocols)
    print(table)
    print(f"({time.perf_counter() - start:.0f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"dataset": args.dataset, "language": spec.language, "protocols": protocols,
                                        "seeds": args.seeds, "folds": args.folds, "C_grid": list(C_GRID),
                                        "results": [r.__dict__ for r in results]}, indent=2))
        args.out.with_suffix(".md").write_text(table + "\n")
    return results


if __name__ == "__main__":
    main()
