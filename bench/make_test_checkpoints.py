"""Write random-weight checkpoints in the published formats *and sizes*, to run `extract` end to end offline.

    python bench/make_test_checkpoints.py /tmp/fake_weights
    MGSER_CONFIG=/tmp/fake_weights/weights.toml extract --dataset emodb --root ... --features-dir /tmp/feats

Features computed with these are random projections of the audio, good for timing and plumbing only:
keep them out of the real features/ folder (their checkpoint hashes differ from the real weights', so
the store would refuse to mix them anyway).

Sizes: wav2vec_large.pt (512 channels, 12 aggregator layers); allosaurus with the BiLSTM sizes of its
training defaults (5 layers x 320 units) and a ~230-phone inventory of placeholder names; BYOL-A d=2048.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.checkpoint_builders import TOY_PHONES, allosaurus_model_dir, byol_checkpoint, wav2vec1_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write into (keep it outside the repository)")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    w2v = wav2vec1_checkpoint(out / "wav2vec_large.pt", full_size=True)
    phones = TOY_PHONES + [f"x{i}" for i in range(229 - len(TOY_PHONES))]
    allo = allosaurus_model_dir(out, name="uni2005", hidden_size=320, layer_size=5, phones=phones)
    byol = byol_checkpoint(out / "AudioNTT2020-BYOLA-64x96d2048.pth", d=2048)
    config = out / "weights.toml"
    config.write_text(f'wav2vec_checkpoint = "{w2v}"\nallosaurus_model = "{allo}"\nbyol_checkpoint = "{byol}"\n')
    print(f"wrote {w2v}, {allo}/, {byol} and {config} in {time.perf_counter() - t0:.1f} s")
    print(f"use: MGSER_CONFIG={config} extract ... (or --wav2vec-checkpoint {w2v} --allosaurus-model {allo} "
          f"--byol-checkpoint {byol})")


if __name__ == "__main__":
    main()
