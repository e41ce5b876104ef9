"""train --init-from (train/warm_start.py): a network starts from another run's checkpoint."""

from __future__ import annotations

import json
import re

import pytest
import torch

from tests._train_helpers import make_stores, one_error_line, run_train
from train.warm_start import checkpoint_weights, warm_start

IT = ("neutral", "happy", "angry", "sad", "fear")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Synthetic de and it stores, and a base model trained on it alone (de zero-shot): its checkpoint."""
    root = tmp_path_factory.mktemp("warm")
    stores = root / "features"
    make_stores(stores, dataset="synth", language="de", per_class=8, speakers=3)
    make_stores(stores, dataset="synth_it", language="it", emotions=IT, per_class=8, speakers=3, seed=1)
    out = root / "source"
    r = run_train("--domains", "de=synth,it=synth_it", "--model", "base", "--few-shot", "de=0", "--features-dir",
                  str(stores), "--epochs", "4", "--seeds", "1", "--out", str(out), "--quiet")
    assert r.exit_code == 0, r.output
    return stores, out / "checkpoints" / "run0.pt"


def adapt(stores, out, *extra):
    """base adapted on de's 3 shots per emotion alone (it: none), one epoch at a learning rate too small to move."""
    return run_train("--domains", "de=synth,it=synth_it", "--model", "base", "--few-shot", "de=3", "--few-shot", "it=0",
                     "--features-dir", str(stores), "--epochs", "1", "--lr", "1e-9", "--seeds", "1", "--out", str(out),
                     "--quiet", *extra)


def test_the_adapted_network_starts_from_the_checkpoints_weights(source, tmp_path, caplog):
    stores, checkpoint = source
    with caplog.at_level("INFO", logger="mgser.train"):
        assert adapt(stores, tmp_path / "warm", "--init-from", str(checkpoint)).exit_code == 0
    said = [r.getMessage() for r in caplog.records if str(checkpoint) in r.getMessage()]
    assert said and re.search(r"(\d+) of the model's \1 tensors from", said[0]), said  # all copied: the same model
    assert adapt(stores, tmp_path / "cold").exit_code == 0
    before = checkpoint_weights(checkpoint)
    warm = torch.load(tmp_path / "warm" / "checkpoints" / "run0.pt", weights_only=False)["model"]
    cold = torch.load(tmp_path / "cold" / "checkpoints" / "run0.pt", weights_only=False)["model"]
    shared = [k for k, v in before.items() if v.is_floating_point() and v.numel() > 1]
    assert shared and set(shared) <= set(warm)
    for name in shared:  # at lr 1e-9 the adapted weights are still the checkpoint's; without it they are not
        assert torch.allclose(warm[name], before[name], atol=1e-6), name
    assert not all(torch.allclose(cold[name], before[name], atol=1e-5) for name in shared)
    record = json.loads((tmp_path / "warm" / "runs" / "run0.json").read_text())
    assert record["fingerprint"]["config"]["init_from"] == str(checkpoint)
    assert len(record["fingerprint"]["init_from_sha256"]) == 64


def test_warm_start_copies_the_matching_tensors_and_keeps_the_rest(tmp_path):
    source = torch.nn.Sequential(torch.nn.Linear(3, 4))
    target = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    torch.save({"model": source.state_dict()}, tmp_path / "run0.pt")
    kept = {k: v.clone() for k, v in target[1].state_dict().items()}
    assert warm_start(target, tmp_path / "run0.pt") == (2, 4)
    assert torch.equal(target[0].weight, source[0].weight) and torch.equal(target[0].bias, source[0].bias)
    assert all(torch.equal(v, kept[k]) for k, v in target[1].state_dict().items())


def test_a_changed_checkpoint_is_another_experiment(source, tmp_path):
    stores, checkpoint = source
    copy = tmp_path / "source.pt"
    copy.write_bytes(checkpoint.read_bytes())
    out = tmp_path / "adapted"
    assert adapt(stores, out, "--init-from", str(copy)).exit_code == 0
    state = torch.load(copy, weights_only=False)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = state["model"][name] + 1.0
    torch.save(state, copy)
    r = adapt(stores, out, "--init-from", str(copy))  # the finished run is not reused for the changed weights
    assert r.exit_code == 3 and "init_from_sha256" in one_error_line(r.output), r.output


def test_init_from_refusals(source, tmp_path):
    stores, _ = source
    text = tmp_path / "notes.txt"
    text.write_text("not weights")
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {"other.weight": torch.zeros(2, 2)}}, foreign)
    for path, words in ((tmp_path / "missing.pt", "cannot read the checkpoint"), (text, "not a checkpoint torch can read"),
                        (foreign, "none of its weights fits this model")):
        r = adapt(stores, tmp_path / "x", "--init-from", str(path))
        line = one_error_line(r.output)
        assert r.exit_code == 2 and "--init-from" in line and str(path) in line and words in line, r.output
    r = run_train("--domains", "de=synth", "--model", "logreg", "--features-dir", str(stores), "--init-from",
                  str(foreign), "--out", str(tmp_path / "y"), "--quiet")
    assert r.exit_code == 2 and "warm start" in one_error_line(r.output), r.output
