"""Peak RSS of one training step (forward + backward) of the single model on one padded MFCC batch, next to
train.batch_limits's estimate (docs/reliability.md, memory bound).

    python bench/batch_memory.py ROWS FRAMES
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from train.config import ExperimentConfig
from train.model_io import DomainInfo, Example, collate
from train.batch_limits import estimate_batch_bytes
from train.models import build_model


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", type=int, help="utterances in the batch")
    p.add_argument("frames", type=int, help="frames of each (padded) utterance")
    args = p.parse_args(argv)
    rows, frames, dim = args.rows, args.frames, 40
    config = ExperimentConfig(domains=["de"])
    info = DomainInfo("de", ["a", "b", "c", "d", "e", "f", "g"], {"mfcc": "sequence"}, {"mfcc": dim})
    model = build_model("single", config, [info])
    ex = [Example(str(i), {"mfcc": torch.randn(frames, dim)}, i % 7, 0) for i in range(rows)]
    batch = collate(ex)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.time()
    out = model(batch)
    loss = torch.nn.functional.cross_entropy(out.logits, batch.labels)
    loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    est = estimate_batch_bytes(rows, {"mfcc": frames}, {"mfcc": dim}, {"mfcc": config.encoder("mfcc")})
    print(f"rows {rows} frames {frames}: peak RSS growth {(peak-before)/1e9:.2f} GB, estimate {est/1e9:.2f} GB, "
          f"{time.time()-t:.1f} s")


if __name__ == "__main__":
    main()
