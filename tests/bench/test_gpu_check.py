"""bench/gpu_check.sh and its Python helper: the summary lines, and a machine without CUDA skipping every check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import gpu_check  # noqa: E402


def _run(folder: Path, device: str, uas: dict[str, float], history: list) -> Path:
    folder.mkdir(parents=True)
    summary = {lang: {"test_ua": {"mean": ua}} for lang, ua in uas.items()}
    (folder / "metrics.json").write_text(json.dumps({"domains_summary": summary, "runs": [{"history": history}]}))
    (folder / "config.json").write_text(json.dumps({"train": {"device": device}}))
    return folder


def test_the_training_line_gives_seconds_uas_their_largest_difference_and_whether_two_gpu_runs_agree(tmp_path):
    cpu = _run(tmp_path / "cpu", "cpu", {"de": 0.5, "it": 0.4}, [{"valid_ua": 0.3}])
    dev = _run(tmp_path / "dev", "cuda", {"de": 0.52, "it": 0.3}, [{"valid_ua": 0.31}])
    same = _run(tmp_path / "same", "cuda", {"de": 0.52, "it": 0.3}, [{"valid_ua": 0.31}])
    other = _run(tmp_path / "other", "cuda", {"de": 0.52, "it": 0.3}, [{"valid_ua": 0.32}])
    line = gpu_check.train_line("train_multi", cpu, 30.0, dev, 10.0, same, 0.05)
    assert line.startswith("CHECK train_multi: cpu 30.0 s, cuda 10.0 s (3.0x); test UA cpu/cuda de 0.500/0.520, it 0.400/0.300")
    assert "max |diff| 0.100 (OUTSIDE the tolerance 0.05)" in line and line.endswith("second cuda run identical")
    assert gpu_check.train_line("t", cpu, 1, dev, 1, other, 0.2).endswith("(within the tolerance 0.2); second cuda run DIFFERENT")


def test_the_small_stores_hold_three_languages_with_every_split(tmp_path):
    from sercore.store import FeatureStore, store_path

    assert gpu_check.write_stores(tmp_path, small=True) == ["de=sde", "it=sit", "en=sen"]
    for dataset, (_, emotions, _, _) in gpu_check.DOMAINS.items():
        sizes = []
        for split in ("train", "valid", "test"):
            with FeatureStore(store_path(tmp_path, dataset, split)) as store:
                sizes.append(len(store))
        assert sum(sizes) == 8 * len(emotions) and min(sizes) > 0


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_every_check_is_skipped_with_the_reason(tmp_path):
    r = subprocess.run(["bash", str(REPO / "bench/gpu_check.sh"), str(tmp_path / "out")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    checks = [line for line in r.stdout.splitlines() if line.startswith("CHECK ")]
    assert [c.split(":")[0] for c in checks] == ["CHECK extract_ssl", "CHECK train_single", "CHECK train_multi", "CHECK grid"]
    assert all(": skipped (no CUDA device (torch " in c for c in checks), checks
    assert (tmp_path / "out/summary.txt").read_text().count("CHECK ") == 4
    bad = subprocess.run(["bash", str(REPO / "bench/gpu_check.sh"), "--device", "gpu", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "expected cuda or cpu" in bad.stderr
