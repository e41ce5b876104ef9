"""Extraction throughput on a prepared dataset: a plain serial loop vs the pipeline with 1 and 2 Dask workers.

    python bench/extraction.py --dataset emodb --features mfcc,ge2e

Measures, in one run, utterances per second for each mode over the same files and features, and the
peak resident memory (this process plus its children: the Dask workers). Not a test: it measures.
Each mode writes into its own temporary features folder, so nothing is resumed between modes.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import psutil

from extract.audio import DecodedAudio
from extract.extractors import ExtractorSettings, extractor_class
from extract.pipeline import extract_dataset
from sercore.manifest import manifest_path, read_manifest


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="emodb")
    ap.add_argument("--features", default="mfcc,ge2e")
    ap.add_argument("--manifest-dir", type=Path, default=Path("data_manifests"))
    args = ap.parse_args()
    features = args.features.split(",")
    rows = read_manifest(manifest_path(args.manifest_dir, args.dataset))
    settings = ExtractorSettings()
    results = []
    with PeakMemory() as mem:
        t = time.perf_counter()
        serial_loop(rows, features, settings)
        results.append(("serial loop (no store)", time.perf_counter() - t, mem.peak))
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp, PeakMemory() as mem:
            t = time.perf_counter()
            s = extract_dataset(args.dataset, features, settings=settings, manifest_dir=args.manifest_dir,
                                features_dir=Path(tmp), workers=workers, progress=False, echo=lambda m: None)
            assert s.computed + len(s.skipped) == len(rows)
            results.append((f"pipeline, {workers} Dask worker(s)", time.perf_counter() - t, mem.peak))
    base = results[0][1]
    print(f"{args.dataset}: {len(rows)} utterances, features {args.features}, {psutil.cpu_count()} CPUs")
    print(f"{'mode':32s} {'seconds':>8s} {'utt/s':>7s} {'vs serial':>9s} {'peak RSS':>9s}")
    for name, secs, peak in results:
        print(f"{name:32s} {secs:8.1f} {len(rows) / secs:7.1f} {base / secs:8.2f}x {peak / 2**30:7.2f}G")


if __name__ == "__main__":
    main()
