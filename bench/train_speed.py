"""Wall time and peak memory of a `train` command: time per run, per epoch, and the whole command.

    python bench/train_speed.py --out runs/speed/paper -- --domains de --features mfcc,ge2e,byol
    python bench/train_speed.py --out runs/speed/len   -- --domains de --features mfcc,ge2e,byol --length-batches

Everything after ``--`` is passed to ``train`` unchanged (``--out`` is this script's; ``--overwrite`` is added
so that the command trains every run again instead of resuming finished ones). It runs ``train`` as a child
process and reports the child's wall time and peak resident memory (``getrusage(RUSAGE_CHILDREN)``), then from
``metrics.json`` each run's seconds, epochs trained (``--refit`` runs count their refit epochs too) and seconds
per epoch (validation included). A measurement, not a test: name the machine and its load when quoting it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, train_args = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="train's run folder (started over)")
    args = parser.parse_args(own)
    train = shutil.which("train") or str(Path(sys.executable).with_name("train"))
    cmd = [train, *train_args, "--out", str(args.out), "--overwrite", "--quiet"]
    print("$", " ".join(cmd), f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load {os.getloadavg()[0]:.1f})")
    start = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if rc != 0:
        print(f"train exited with status {rc}", file=sys.stderr)
        return rc
    metrics = json.loads((args.out / "metrics.json").read_text())
    print(f"{'run':>4} {'seconds':>8} {'epochs':>6} {'s/epoch':>8}")
    per_epoch = []
    for r in metrics["runs"]:
        epochs = sum(1 for h in r["history"] if "epoch" in h) + sum(h.get("refit_epochs", 0) for h in r["history"])
        per_epoch.append(r["seconds"] / max(1, epochs))
        print(f"{r['run']:>4} {r['seconds']:>8.1f} {epochs:>6} {per_epoch[-1]:>8.2f}")
    print(f"whole command: {wall:.0f} s wall for {len(metrics['runs'])} run(s), "
          f"{sum(per_epoch) / len(per_epoch):.2f} s per epoch on average, peak memory {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
