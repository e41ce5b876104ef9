"""bench/ensemble_bound.py: the best fixed weighting of an ensemble's members on test, an upper bound."""

from __future__ import annotations

import json

import numpy as np
import pytest

import bench.ensemble_bound as eb
import bench.vs_baselines as vs
from tests._train_helpers import make_stores


def test_the_weight_grid_holds_every_multiple_of_one_step_summing_to_one():
    grid = eb.weight_grid(3, steps=4)
    assert len(grid) == 15  # compositions of 4 into 3 parts
    assert all(sum(w) == pytest.approx(1.0) for w in grid)
    assert (1.0, 0.0, 0.0) in grid and (0.25, 0.25, 0.5) in grid


def _folder(tmp_path, recorded_ua=0.5):
    """Two members that are each right on half of the test rows and whose average is right on all of them; the
    ensemble chose member a alone; the baseline's UA is 0.75 on both runs."""
    a = [[0.85, 0.15], [0.85, 0.15], [0.6, 0.4], [0.6, 0.4]]
    b = [[0.4, 0.6], [0.4, 0.6], [0.15, 0.85], [0.15, 0.85]]
    (tmp_path / "network" / "runs").mkdir(parents=True)
    (tmp_path / "network" / "config.json").write_text(json.dumps({"domains": ["de=synth"]}))
    per_run = []
    for k in range(2):
        record = {"run": k, "test": {"labels": [0, 0, 1, 1], "scores": {"0": {"ua": recorded_ua}}},
                  "history": [{"ensemble": {"members": {"a": {"weight": 1.0}, "b": {"weight": 0.0}},
                                            "test_probabilities": {"a": a, "b": b}}}]}
        (tmp_path / "network" / "runs" / f"run{k}.json").write_text(json.dumps(record))
        per_run.append({"run": k, "baselines": {"logreg": {"ua": 0.75}}})
    (tmp_path / "result.json").write_text(json.dumps({"lang": "de", "protocol": "random", "baseline": "logreg",
                                                      "per_run": per_run}))
    return tmp_path


def test_the_bound_finds_the_weighting_the_validation_choice_missed(tmp_path, capsys):
    b = eb.bound(_folder(tmp_path))
    assert b["members"] == ["a", "b"] and b["runs"] == 2
    assert b["chosen"]["ua"] == pytest.approx(0.5) and b["chosen"]["diff"] == pytest.approx(-0.25)
    assert b["equal"]["weights"] == [0.5, 0.5] and b["equal"]["ua"] == pytest.approx(1.0)
    assert b["bound"]["ua"] == pytest.approx(1.0) and b["bound"]["diff"] == pytest.approx(0.25)
    assert 0 < b["bound"]["weights"][0] < 1  # neither member alone reaches it
    assert eb.main([str(tmp_path)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("BOUND de random baseline=logreg 0.7500 chosen=-0.2500 equal=+0.2500 bound=+0.2500"), line


def test_a_record_whose_weights_do_not_give_its_ua_and_a_folder_without_records_are_refused(tmp_path, capsys):
    assert eb.main([str(_folder(tmp_path / "wrong", recorded_ua=0.75))]) == 3
    assert "the recorded weights give UA 0.5000, the record says 0.7500" in capsys.readouterr().err
    assert eb.main([str(tmp_path / "none")]) == 2
    assert "result.json: missing" in capsys.readouterr().err


def test_on_a_benchmark_of_the_ensemble_the_bound_is_at_least_every_member_and_the_choice(tmp_path, capsys):
    store = make_stores(tmp_path / "features", per_class=16, speakers=4)
    out = tmp_path / "out"
    vs.main(["--domains", "de", "--protocol", "random", "--seeds", "2", "--features-dir", str(store),
             "--out", str(out), "--train-args", "--model ensemble --epochs 2"])
    capsys.readouterr()
    b = eb.bound(out)
    summary = json.loads((out / "result.json").read_text())
    assert b["chosen"]["ua"] == pytest.approx(summary["network_ua"])
    assert b["chosen"]["diff"] == pytest.approx(summary["diff"])
    members = summary["members"]
    assert set(b["members"]) == set(members)
    assert b["bound"]["ua"] >= max(b["chosen"]["ua"], b["equal"]["ua"], *(m["test_ua"] for m in members.values())) - 1e-12
    assert b["bound"]["ci_low"] <= b["bound"]["diff"] <= b["bound"]["ci_high"] or np.isnan(b["bound"]["ci_low"])
