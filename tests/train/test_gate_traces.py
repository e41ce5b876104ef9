"""Gate weights and NAS connection probabilities over training (train/gate_reports.py): per-epoch traces in each run's
history, gates.csv / nas.csv / gates_differ.csv and their figures, and the paired difference between languages."""

import csv
import json
import math
from collections import defaultdict

import pytest
from click.testing import CliRunner

from train.cli import main
from train.gate_reports import GateDifference, differ_summary, gate_differences
from tests._train_helpers import make_stores

IT = ("neutral", "happy", "angry", "sad", "fear")
EXPERTS = ["ge2e", "mfcc"]  # the model's order (features sorted)
EPOCHS, SEEDS = 3, 2


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """omoe, mmoe and nas on two synthetic languages, 2 seeds x 3 epochs: (out folder, train log)."""
    tmp = tmp_path_factory.mktemp("traces")
    root = tmp / "features"
    make_stores(root, dataset="synth", language="de", per_class=12, speakers=3)
    make_stores(root, dataset="synth_it", language="it", emotions=IT, per_class=12, speakers=3, seed=1)
    out = tmp / "cmp"
    args = ["--domains", "de=synth,it=synth_it", "--features-dir", str(root), "--epochs", str(EPOCHS), "--seeds",
            str(SEEDS), "--model", "omoe,mmoe,nas", "--out", str(out), "--no-checkpoints", "--preset", "paper"]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out, r.output, args


def _rows(path):
    with path.open() as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


@pytest.mark.parametrize("model", ["omoe", "mmoe", "nas"])
def test_gates_csv_has_one_row_per_run_epoch_language_expert_summing_to_one(traced, model):
    out, _, _ = traced
    header, rows = _rows(out / model / "gates.csv")
    assert header == ["run", "epoch", "language", "expert", "weight"]
    keys = [(int(r["run"]), int(r["epoch"]), r["language"], r["expert"]) for r in rows]
    assert keys == [(k, e, lang, f) for k in range(SEEDS) for e in range(1, EPOCHS + 1) for lang in ("de", "it") for f in EXPERTS]
    sums = defaultdict(float)
    for r in rows:
        assert 0.0 <= float(r["weight"]) <= 1.0
        sums[(r["run"], r["epoch"], r["language"])] += float(r["weight"])
    assert len(sums) == SEEDS * EPOCHS * 2 and all(s == pytest.approx(1.0, abs=1e-5) for s in sums.values())
    assert (out / model / "gates.png").stat().st_size > 1000
    # the history of the run records (what a resumed run reloads) holds the same numbers
    record = json.loads((out / model / "runs" / "run1.json").read_text())
    last = record["history"][EPOCHS - 1]["mixing"]["gates"]["it"]["ge2e"]
    assert float(next(r["weight"] for r in rows if (r["run"], r["epoch"], r["language"], r["expert"]) == ("1", str(EPOCHS), "it", "ge2e"))) \
        == pytest.approx(last, abs=1e-6)


def test_nas_csv_has_every_connection_per_language_and_only_nas_has_it(traced):
    out, _, _ = traced
    header, rows = _rows(out / "nas" / "nas.csv")
    assert header == ["run", "epoch", "language", "connection", "probability"]
    connections = ["ge2e->ge2e", "mfcc->ge2e", "ge2e->mfcc", "mfcc->mfcc"]  # v_j -> u_i, by row i then column j
    assert [(int(r["run"]), int(r["epoch"]), r["language"], r["connection"]) for r in rows] == \
        [(k, e, lang, c) for k in range(SEEDS) for e in range(1, EPOCHS + 1) for lang in ("de", "it") for c in connections]
    assert all(0.0 < float(r["probability"]) < 1.0 for r in rows)
    assert (out / "nas" / "nas.png").stat().st_size > 1000
    assert not (out / "mmoe" / "nas.csv").exists() and not (out / "omoe" / "nas.csv").exists()
    # the summary over the test set keeps its own files
    assert (out / "nas" / "nas_test.csv").exists() and (out / "mmoe" / "gates_test.csv").exists()


@pytest.mark.parametrize("model,table,column", [("mmoe", "gates.csv", "weight"), ("nas", "gates.csv", "weight"),
                                                ("nas", "nas.csv", "probability")])
def test_the_traces_move_while_the_model_trains(traced, model, table, column):
    """Each epoch's values are the model's at that epoch: every run's series changes over its epochs (NAS
    probabilities move little at the paper's learning rate, docs/results/gates.md, but they move)."""
    out, _, _ = traced
    _, rows = _rows(out / model / table)
    by_key = defaultdict(dict)
    for r in rows:
        name = r.get("expert") or r.get("connection")
        by_key[(r["run"], r["language"], name)][int(r["epoch"])] = float(r[column])
    for key, series in by_key.items():
        assert sorted(series) == list(range(1, EPOCHS + 1)) and len(set(series.values())) > 1, (key, series)


def test_gates_differ_csv_and_log_line(traced):
    out, log, _ = traced
    header, rows = _rows(out / "mmoe" / "gates_differ.csv")
    assert header == ["language_a", "language_b", "expert", "difference", "ci_low", "ci_high", "runs"]
    assert [(r["language_a"], r["language_b"], r["expert"], r["runs"]) for r in rows] == [("de", "it", f, str(SEEDS)) for f in EXPERTS]
    _, gates = _rows(out / "mmoe" / "gates.csv")
    final = {(r["run"], r["language"], r["expert"]): float(r["weight"]) for r in gates if int(r["epoch"]) == EPOCHS}
    for r in rows:
        diffs = [final[(str(k), "de", r["expert"])] - final[(str(k), "it", r["expert"])] for k in range(SEEDS)]
        assert float(r["difference"]) == pytest.approx(sum(diffs) / SEEDS, abs=1e-5)
        assert float(r["ci_low"]) <= float(r["difference"]) <= float(r["ci_high"])
    metrics = json.loads((out / "mmoe" / "metrics.json").read_text())
    assert [d["expert"] for d in metrics["mixing"]["gates_differ"]] == EXPERTS
    for model in ("omoe", "mmoe", "nas"):
        assert sum(line.startswith(f"gates ({model}): ") for line in log.splitlines()) == 1


@pytest.mark.slow
def test_a_resumed_run_keeps_its_trace(traced):
    out, _, args = traced
    before = {m: (out / m / "gates.csv").read_text() for m in ("mmoe", "nas")}
    nas_before = (out / "nas" / "nas.csv").read_text()
    for m in ("mmoe", "nas"):
        (out / m / "gates.csv").unlink()
    r = CliRunner().invoke(main, args, catch_exceptions=False)  # every run is loaded from runs/run<k>.json
    assert r.exit_code == 0 and "finished earlier: loaded" in r.output, r.output
    assert {m: (out / m / "gates.csv").read_text() for m in ("mmoe", "nas")} == before
    assert (out / "nas" / "nas.csv").read_text() == nas_before


def test_gate_differences_by_hand():
    # (run, epoch, language, expert, weight); run 2 stopped early at epoch 2; epoch-1 rows must not count
    rows = []
    final = {0: (0.7, 0.5), 1: (0.8, 0.5), 2: (0.6, 0.5)}  # run: (de's mfcc, it's mfcc) at the run's last epoch
    for run, (de, it) in final.items():
        last = 2 if run == 2 else 3
        for epoch in range(1, last + 1):
            d, i = (de, it) if epoch == last else (0.5, 0.5)
            rows += [(run, epoch, "de", "mfcc", d), (run, epoch, "de", "ge2e", 1 - d),
                     (run, epoch, "it", "mfcc", i), (run, epoch, "it", "ge2e", 1 - i)]
    mfcc, ge2e = gate_differences(rows, ["de", "it"], ["mfcc", "ge2e"])
    # differences 0.2, 0.3, 0.1: mean 0.2, sample std 0.1, t(0.975, 2 df) = 4.302653 -> half width 0.248414
    assert (mfcc.first, mfcc.second, mfcc.expert, mfcc.runs) == ("de", "it", "mfcc", 3)
    assert mfcc.difference == pytest.approx(0.2) and mfcc.low == pytest.approx(0.2 - 0.248414, abs=1e-6)
    assert mfcc.high == pytest.approx(0.2 + 0.248414, abs=1e-6) and not mfcc.differs
    assert ge2e.difference == pytest.approx(-0.2) and ge2e.high == pytest.approx(-0.2 + 0.248414, abs=1e-6)
    assert "no pair of languages differs" in differ_summary([mfcc, ge2e], "mmoe")


def test_differ_summary_names_a_difference_beyond_the_spread():
    small = GateDifference("de", "it", "mfcc", 0.01, -0.02, 0.04, 3)
    big = GateDifference("de", "it", "ge2e", 0.21, 0.15, 0.27, 3)
    assert big.differs and not small.differs
    assert differ_summary([small, big], "mmoe") == ("gates (mmoe): de vs it differ on ge2e by +0.21 [+0.15, +0.27] over 3 runs; "
                                                    "1 of 2 (pair, expert) intervals exclude 0 (gates_differ.csv)")
    one = GateDifference("de", "it", "ge2e", 0.1, math.nan, math.nan, 1)
    assert not one.differs and "one run, no interval" in differ_summary([one])
    assert GateDifference.from_dict(one.as_dict()).runs == 1 and one.as_dict()["low"] is None
