"""The benchmark suite (not tests: it measures): extraction, training, memory and accuracy on one corpus.

    python bench/run.py --dataset emodb                          # ../shared/corpora/emodb when present
    python bench/run.py --dataset emodb --root /data/emodb --seeds 5 --epochs 20 --out runs/bench/emodb.md
    python bench/run.py --dataset emovo --features mfcc,ge2e --workers 1,2 --device cuda

Everything is measured in this one run, from the audio, into temporary folders (no resume, nothing of the
repository's features/ or runs/ is read or written unless --out points there):

1. **Extraction throughput per extractor**: for each feature alone, a plain serial loop (models loaded once,
   file by file, no store) against the pipeline (``extract.pipeline``, stores
   written) with each number of Dask workers in ``--workers``; utterances per second, ratio to the serial
   loop, peak RSS of this process and its children (the Dask workers).
2. **Training time** of the single-domain model on the stores just written (``--features``, the paper's
   settings, ``--epochs``): seconds per epoch (mean over every epoch of every run, validation included) and
   per run (one seed: fit + final test), peak RSS, and on CUDA ``torch.cuda.max_memory_allocated``.
3. **Accuracy**: the trained model's test UA and WA over ``--seeds`` seeds of the paper's random protocol,
   next to the scikit-learn baselines of ``bench/baselines.py`` on the same splits and stores.

It prints the tables as one Markdown block (also written to ``--out`` with a JSON twin) with the date, the
machine and the command, ready to paste into docs/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.baselines import main as run_baselines
from extract.audio import DecodedAudio
from extract.extractors import ExtractorSettings, extractor_class
from extract.pipeline import available_features, extract_dataset
from sercore.manifest import manifest_path, read_manifest

REPO = Path(__file__).resolve().parents[1]


class PeakMemory:
    """Samples RSS of this process and all its descendants every 50 ms."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def serial_loop(rows, features, settings) -> None:
    """The baseline: load the models, then decode and extract file by file, no Dask, no store."""
    extractors = [extractor_class(n)(settings) for n in features]
    for ex in extractors:
        ex.load()
    for u in rows:
        audio = DecodedAudio(u.path)
        for ex in extractors:
            ex.extract(audio.at(ex.sample_rate, ex.min_seconds))


def prepare_manifest(dataset: str, root: Path | None, manifest_dir: Path) -> Path:
    """The dataset's manifest: prepared from ``root`` into the temporary ``manifest_dir``, or the repository's."""
    if root is not None:
        from extract.prepare import prepare_dataset

        return prepare_dataset(dataset, root, manifest_dir=manifest_dir, echo=None)
    existing = manifest_path(REPO / "data_manifests", dataset)
    if existing.is_file():
        (manifest_dir / existing.name).write_bytes(existing.read_bytes())
        return manifest_dir / existing.name
    raise SystemExit(f"error: no corpus folder for {dataset} (give --root) and no {existing}")


def bench_extraction(dataset: str, features: list[str], workers: list[int], manifest_dir: Path, store_dir: Path,
                     settings: ExtractorSettings) -> list[dict]:
    """Per feature: the serial loop, then the pipeline with each worker count (the last one's stores are kept)."""
    rows = read_manifest(manifest_path(manifest_dir, dataset))
    results = []
    for feature in features:
        with PeakMemory() as mem:
            t = time.perf_counter()
            serial_loop(rows, [feature], settings)
            serial = time.perf_counter() - t
        results.append({"feature": feature, "mode": "serial loop", "workers": 0, "seconds": serial, "peak_rss": mem.peak,
                        "utterances": len(rows)})
        for i, n in enumerate(workers):
            keep = i == len(workers) - 1
            with tempfile.TemporaryDirectory() as scratch, PeakMemory() as mem:
                target = store_dir if keep else Path(scratch)
                t = time.perf_counter()
                s = extract_dataset(dataset, [feature], settings=settings, manifest_dir=manifest_dir, features_dir=target,
                                    workers=n, progress=False, echo=lambda m: None)
                secs = time.perf_counter() - t
            if s.computed + len(s.skipped) + s.already_done != len(rows):
                raise SystemExit(f"error: extraction of {feature} covered {s.computed + len(s.skipped)} of {len(rows)} utterances")
            results.append({"feature": feature, "mode": f"pipeline, {n} Dask worker{'s' if n > 1 else ''}", "workers": n,
                            "seconds": secs, "peak_rss": mem.peak, "utterances": len(rows), "skipped": len(s.skipped)})
    return results


def bench_training(dataset: str, language: str, features: list[str], seeds: int, epochs: int, device: str,
                   store_dir: Path, out_dir: Path) -> dict:
    """The single-domain model over ``seeds`` seeds of the random protocol (library call, this process)."""
    import torch

    from train.config import ExperimentConfig, TrainConfig
    from train.repeated_runs import run_experiment

    config = ExperimentConfig(domains=[f"{language}={dataset}"], features=features, seeds=seeds, features_dir=str(store_dir),
                              out=str(out_dir), train=TrainConfig(epochs=epochs, device=device, progress=False),
                              save_checkpoints=False)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss_before = psutil.Process().memory_info().rss
    with PeakMemory() as mem:
        t = time.perf_counter()
        metrics = run_experiment(config, log=lambda m: None)
        wall = time.perf_counter() - t
    runs = metrics["runs"]
    epoch_count = sum(len(r["history"]) for r in runs)
    summary = metrics["domains_summary"][language]
    return {
        "features": features, "seeds": seeds, "epochs": epochs, "device": device,
        "seconds_per_run": [r["seconds"] for r in runs],
        "seconds_per_epoch": sum(r["seconds"] for r in runs) / epoch_count,
        "wall_seconds": wall,
        "peak_rss": mem.peak, "rss_before": rss_before,
        "cuda_max_allocated": torch.cuda.max_memory_allocated() if device.startswith("cuda") else None,
        "test_ua": summary["test_ua"], "test_wa": summary["test_wa"],
    }


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def markdown(args, command: str, extraction: list[dict], training: dict, baselines: dict, started: str) -> str:
    machine = (f"{platform.machine()}, {psutil.cpu_count()} CPUs ({os.environ.get('OMP_NUM_THREADS', 'unset')} OpenMP "
               f"threads per process), {psutil.virtual_memory().total / 2**30:.0f} GiB, load average at start "
               f"{args.load_at_start:.2f}")
    lines = [f"`{command}` — {started}, {machine}, device {args.device}.", "",
             "| extractor | mode | seconds | utt/s | vs serial | peak RSS |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    serial = {r["feature"]: r["seconds"] for r in extraction if r["workers"] == 0}
    for r in extraction:
        lines.append(f"| {r['feature']} | {r['mode']} | {r['seconds']:.1f} | {r['utterances'] / r['seconds']:.1f} | "
                     f"{serial[r['feature']] / r['seconds']:.2f}x | {_gib(r['peak_rss'])} |")
    per_run = training["seconds_per_run"]
    cuda = f", CUDA max allocated {_gib(training['cuda_max_allocated'])}" if training["cuda_max_allocated"] is not None else ""
    lines += ["", f"Training, single-domain model, features {','.join(training['features'])}, {training['epochs']} epochs, "
                  f"{training['seeds']} seed(s): {training['seconds_per_epoch']:.2f} s per epoch (validation included), "
                  f"{sum(per_run) / len(per_run):.1f} s per run (min {min(per_run):.1f}, max {max(per_run):.1f}), "
                  f"peak RSS {_gib(training['peak_rss'])}{cuda}.", "",
              f"| model ({args.seeds} seeds, random protocol, same splits) | test UA | test WA | UA vs best baseline |",
              "| --- | ---: | ---: | ---: |"]
    best = max((b["ua_mean"] for b in baselines.values()), default=float("nan"))
    ua, wa = training["test_ua"], training["test_wa"]
    lines.append(f"| network, {','.join(training['features'])} (trained on train, epoch chosen on valid) | "
                 f"{ua['mean']:.3f} ± {ua['std']:.3f} | {wa['mean']:.3f} ± {wa['std']:.3f} | {ua['mean'] / best:.2f}x |")
    for name, b in baselines.items():
        lines.append(f"| {name} (bench/baselines.py, fitted on train+valid) | {b['ua_mean']:.3f} ± {b['ua_std']:.3f} | "
                     f"{b['wa_mean']:.3f} ± {b['wa_std']:.3f} | {b['ua_mean'] / best:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="emodb")
    p.add_argument("--root", type=Path, default=None, help="corpus folder [default: ../shared/corpora/<dataset> when present]")
    p.add_argument("--language", default=None, help="language code of the dataset [default: the manifest's only one]")
    p.add_argument("--features", default="mfcc,ge2e", help="extractors to measure and the model's features")
    p.add_argument("--workers", default="1,2", help="Dask worker counts to measure the pipeline with")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="write the Markdown block here (and a .json next to it)")
    args = p.parse_args(argv)
    args.load_at_start = os.getloadavg()[0]
    command = "python bench/run.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    if args.root is None and (REPO.parent / "shared" / "corpora" / args.dataset).is_dir():
        args.root = REPO.parent / "shared" / "corpora" / args.dataset
    settings = ExtractorSettings(device=args.device).with_env_defaults()
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    ok, missing = available_features(features, settings)
    if missing:
        raise SystemExit("error: " + "; ".join(missing.values()))
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="mgser-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "manifests").mkdir()
        manifest = prepare_manifest(args.dataset, args.root, tmp / "manifests")
        languages = sorted({u.language for u in read_manifest(manifest)})
        language = args.language or (languages[0] if len(languages) == 1 else None)
        if language is None:
            raise SystemExit(f"error: {manifest} holds languages {', '.join(languages)}; say which with --language")
        print(f"{args.dataset} ({language}): {len(read_manifest(manifest))} utterances from {args.root or manifest}", flush=True)
        extraction = bench_extraction(args.dataset, features, workers, tmp / "manifests", tmp / "features", settings)
        print("extraction measured", flush=True)
        training = bench_training(args.dataset, language, features, args.seeds, args.epochs, args.device,
                                  tmp / "features", tmp / "run")
        print("training measured", flush=True)
        baselines = {}
        if {"mfcc", "ge2e"} <= set(features):  # the baselines pool exactly these two
            found = run_baselines(["--domains", f"{language}={args.dataset}", "--features-dir", str(tmp / "features"),
                                   "--seeds", str(args.seeds)])
            baselines = {k: {m: v[m] for m in ("ua_mean", "ua_std", "wa_mean", "wa_std")} for k, v in found.items()}
    block = markdown(args, command, extraction, training, baselines, started)
    print()
    print(block)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(block + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(
            {"command": command, "started": started, "extraction": extraction, "training": training,
             "baselines": baselines}, indent=2, default=str))
        print(f"\n-> {args.out}, {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
