"""bench/probe.py: a linear probe per stored feature under both protocols, on tiny synthetic stores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from tests._train_helpers import make_stores

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.probe import main, pooled  # noqa: E402
from train.pooled_heads import C_GRIDS  # noqa: E402


def test_pooled_vectors_sequences_and_layer_stacks():
    v = np.arange(5, dtype=np.float32)
    assert np.array_equal(pooled(v), v)
    seq = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    p = pooled(seq)
    assert p.shape == (16,) and np.allclose(p[:4], seq.mean(0), atol=1e-6) and np.allclose(p[4:8], seq.std(0), atol=1e-6)
    stack = np.concatenate([seq, 3 * seq], axis=1)  # two layers of width 4
    assert np.allclose(pooled(stack, n_layers=2), pooled(2 * seq), atol=1e-5)


def test_probe_scores_every_feature_under_both_protocols(tmp_path, capsys):
    make_stores(tmp_path / "features", separation=2.0)
    out = tmp_path / "probe.json"
    results = main(["--dataset", "synth", "--features-dir", str(tmp_path / "features"), "--seeds", "2", "--folds", "3",
                    "--time-utterances", "0", "--out", str(out)])
    assert [r.feature for r in results] == ["ge2e", "mfcc"]
    for r in results:
        assert set(r.protocols) == {"random", "speaker"}
        assert len(r.protocols["random"]["runs"]) == 2 and len(r.protocols["speaker"]["runs"]) == 3
        assert r.protocols["random"]["ua_mean"] > 0.5  # 4 separable classes: far above chance (0.25)
        assert all(run["C"] in C_GRIDS["logreg"] for run in r.protocols["random"]["runs"])
    saved = json.loads(out.read_text())
    assert saved["dataset"] == "synth" and len(saved["results"]) == 2
    assert saved["C_grid"] == list(C_GRIDS["logreg"])  # train --model logreg's grid, as vs_baselines' logreg
    table = out.with_suffix(".md").read_text()
    assert "| mfcc | sequence, 6 | n/a |" in table and "speaker UA" in table
