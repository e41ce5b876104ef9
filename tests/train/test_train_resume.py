"""Interrupted and repeated training: a killed `train` resumes from its finished runs with the metrics of an
uninterrupted run; a run folder of another configuration is refused; the same seed gives the same metrics;
the run folder records versions, config, git commit and checkpoint hashes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from train.cli import main
from train.run_records import git_commit
from tests._train_helpers import make_stores

ARGS = ["--domains", "de=synth", "--epochs", "2", "--seeds", "3"]


def _train(stores: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, [*ARGS, "--features-dir", str(stores), "--out", str(out), *extra])


def _metrics(out: Path) -> dict:
    m = json.loads((out / "metrics.json").read_text())
    for r in m["runs"]:
        r.pop("seconds")  # wall time: the only figure two fits of the same run do not share
    return m


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return make_stores(tmp_path_factory.mktemp("stores"), dataset="synth", language="de", per_class=16, speakers=4)


@pytest.fixture(scope="module")
def uninterrupted(stores, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "plain"
    r = _train(stores, out)
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.slow
def test_killed_train_resumes_from_its_finished_runs(stores, uninterrupted, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "train.cli", *ARGS, "--features-dir", str(stores), "--out", str(out)]
    # The same thread count as the in-process runs it is compared with: it decides the floats' summation order.
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not (out / "runs" / "run0.json").exists():
        time.sleep(0.005)
    assert proc.poll() is None, f"train ended before the kill: {proc.stderr.read().decode()[-800:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists() and not (out / "runs" / "run2.json").exists()
    first = json.loads((out / "runs" / "run0.json").read_text())

    r = _train(stores, out)
    assert r.exit_code == 0, r.output
    assert re.search(r"seed 0:.*finished earlier: loaded from .*run0\.json", r.output)
    assert "seed 2:" in r.output and "run2.json" not in r.output  # refitted
    assert _metrics(out) == _metrics(uninterrupted)  # nothing of the killed process is mixed in, nothing lost
    kept = json.loads((out / "metrics.json").read_text())["runs"][0]["seconds"]
    assert kept == round(first["seconds"], 2)  # run 0 was loaded, not fitted again
    for k in range(3):
        assert _same_weights(_weights(out / "checkpoints" / f"run{k}.pt"), _weights(uninterrupted / "checkpoints" / f"run{k}.pt"))
    assert not list(out.rglob("*.tmp"))


def test_a_finished_folder_is_reloaded_not_refitted(stores, uninterrupted, tmp_path):
    out = tmp_path / "again"
    assert _train(stores, out).exit_code == 0
    before = (out / "runs" / "run1.json").read_bytes()
    r = _train(stores, out, "--seeds", "4")  # one more seed: the three finished ones are reused
    assert r.exit_code == 0, r.output
    assert r.output.count("finished earlier") == 3 and (out / "runs" / "run3.json").exists()
    assert (out / "runs" / "run1.json").read_bytes() == before
    m = _metrics(out)
    assert m["runs"][:3] == _metrics(uninterrupted)["runs"] and len(m["runs"]) == 4


@pytest.mark.slow
def test_another_configuration_or_data_in_the_folder_is_refused_and_overwrite_starts_over(stores, tmp_path):
    out = tmp_path / "run"
    assert _train(stores, out).exit_code == 0
    r = _train(stores, out, "--epochs", "3")
    assert r.exit_code == 3  # data error
    assert f"{out / 'runs' / 'run0.json'}: this run folder holds a finished run of another configuration" in r.output
    assert "config.train.epochs" in r.output and "--overwrite" in r.output
    other = make_stores(tmp_path / "other", dataset="synth", language="de", per_class=16, speakers=4, seed=1)
    r = _train(other, out)
    assert r.exit_code == 3 and "data.de=synth" in r.output
    from train.run_records import clear

    assert clear(out) == [out] and not (out / "runs").exists() and not (out / "metrics.json").exists()
    assert not (out / "checkpoints").exists() and not (out / "model.bundle").exists()
    assert _train(stores, out).exit_code == 0
    r = _train(stores, out, "--epochs", "3", "--overwrite")
    assert r.exit_code == 0, r.output
    assert "--overwrite: removed the finished runs and their metrics" in r.output and "finished earlier" not in r.output
    assert all(len(run["history"]) == 3 for run in json.loads((out / "metrics.json").read_text())["runs"])


def test_a_run_whose_checkpoint_does_not_match_its_record_is_fitted_again(stores, uninterrupted, tmp_path):
    out = tmp_path / "tampered"
    assert _train(stores, out).exit_code == 0
    (out / "runs" / "run1.pt").write_bytes(b"half a checkpoint")
    r = _train(stores, out)
    assert r.exit_code == 0, r.output
    assert "run1.pt is missing or does not match its record; run 1 is fitted again" in r.output
    assert r.output.count("finished earlier") == 2
    assert _metrics(out) == _metrics(uninterrupted)


def test_same_seed_and_inputs_give_identical_metrics_and_weights(stores, uninterrupted, tmp_path):
    out = tmp_path / "twin"
    assert _train(stores, out).exit_code == 0
    assert _metrics(out) == _metrics(uninterrupted)
    for k in range(3):
        assert _same_weights(_weights(out / "runs" / f"run{k}.pt"), _weights(uninterrupted / "runs" / f"run{k}.pt"))


def test_run_folder_records_versions_config_git_commit_and_checkpoint_hashes(uninterrupted):
    prov = json.loads((uninterrupted / "provenance.json").read_text())
    assert prov["versions"]["torch"] == torch.__version__ and "numpy" in prov["versions"] and "h5py" in prov["versions"]
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|unknown", prov["git_commit"])
    for k in range(3):
        sha = hashlib.sha256((uninterrupted / "runs" / f"run{k}.pt").read_bytes()).hexdigest()
        assert prov["checkpoints_sha256"][f"run{k}"] == sha
        assert json.loads((uninterrupted / "runs" / f"run{k}.json").read_text())["checkpoint_sha256"] == sha
    assert prov["fingerprint"]["config"]["train"]["epochs"] == 2 and "de=synth" in prov["fingerprint"]["data"]
    assert set(prov["extractors"]["de=synth"]) == {"mfcc", "ge2e"}
    config = json.loads((uninterrupted / "config.json").read_text())
    assert config["train"]["epochs"] == 2  # (the commit may have moved on between config.json and the end)
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?|unknown", config["resolved"]["git_commit"])
    assert config["resolved"]["versions"]["torch"] == torch.__version__


def test_git_commit_names_the_checkout_and_its_changes_or_is_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "-C", str(tmp_path), "add", "a.py"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-q", "-m", "a"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == head + "+dirty"


def test_a_field_added_later_is_left_out_of_the_fingerprint_at_its_old_value(stores, tmp_path):
    # folders written before --frame-stride existed hold fingerprints without it: at 1 (what the toolkit did
    # then) they still match, at another value the folder is refused naming the field
    out = tmp_path / "paper"
    assert _train(stores, out, "--preset", "paper").exit_code == 0
    recorded = json.loads((out / "runs" / "run0.json").read_text())["fingerprint"]["config"]
    assert "frame_stride" not in recorded and recorded["input_stats"] is False
    assert "gate_bias" not in recorded["multidomain"] and "gate_lr_scale" not in recorded["multidomain"]
    first = _metrics(out)
    r = _train(stores, out, "--preset", "paper", "--frame-stride", "1")
    assert r.exit_code == 0 and r.output.count("finished earlier: loaded from") == 3, r.output
    assert _metrics(out) == first
    r = _train(stores, out, "--preset", "paper", "--frame-stride", "2")
    assert r.exit_code == 3 and "config.frame_stride" in r.output, r.output
