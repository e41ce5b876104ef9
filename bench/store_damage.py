"""Damage a small feature store block by block and see what the trainer's reader makes of each damage.

    python bench/store_damage.py [--block 512] [--timeout 8]

Writes tiny synthetic stores (``sercore.synthetic.make_stores``, the tests' own) under a temporary folder, then,
for each block of ``test.h5`` in turn, overwrites it with 0xff bytes and loads the domain in a fresh process (HDF5
can hang on some damage, hence the process and its timeout). Each block ends up as: refused (StoreError naming the
file), unchanged (the block was not used: what was read equals the undamaged data), GARBAGE (read, but other
numbers or ids), OTHER (another exception) or HANG. Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import pickle, sys
import numpy as np
from train.domains import load_domain, resolve_domain
from sercore.errors import StoreError
root, ref = sys.argv[1], pickle.load(open(sys.argv[2], "rb"))
try:
    d = load_domain(resolve_domain("de=synth", root), root, ["mfcc", "ge2e"])
except StoreError:
    print("refused")
except Exception as exc:
    print("OTHER", type(exc).__name__)
else:
    same = d.utt_ids == ref["ids"] and d.emotions == ref["emotions"] and d.speakers == ref["speakers"] and all(
        np.array_equal(x, y) for n in ("mfcc", "ge2e") for x, y in zip(d.features[n], ref[n]))
    print("unchanged" if same else "GARBAGE")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=8.0)
    args = parser.parse_args()
    from sercore.store import store_path
    from sercore.synthetic import make_stores
    from train.domains import load_domain, resolve_domain

    with tempfile.TemporaryDirectory() as tmp:
        root = make_stores(Path(tmp) / "features", per_class=24)
        d = load_domain(resolve_domain("de=synth", root), root, ["mfcc", "ge2e"])
        ref = Path(tmp) / "ref.pkl"
        ref.write_bytes(pickle.dumps({"ids": d.utt_ids, "emotions": d.emotions, "speakers": d.speakers,
                                      "mfcc": d.features["mfcc"], "ge2e": d.features["ge2e"]}))
        path = store_path(root, "synth", "test")
        original = path.read_bytes()
        outcomes = Counter()
        for start in range(0, len(original), args.block):
            damaged = bytearray(original)
            damaged[start:start + args.block] = b"\xff" * len(damaged[start:start + args.block])
            path.write_bytes(bytes(damaged))
            try:
                out = subprocess.run([sys.executable, "-c", CHILD, str(root), str(ref)], capture_output=True, text=True,
                                     timeout=args.timeout, cwd=ROOT).stdout.strip() or "OTHER (no output)"
            except subprocess.TimeoutExpired:
                out = "HANG"
            outcomes[out] += 1
            print(f"block at {start:6d}: {out}", flush=True)
        print(f"{path.name}: {len(original)} bytes, {sum(outcomes.values())} blocks of {args.block}: "
              + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


if __name__ == "__main__":
    main()
