"""bench/vs_baselines.py: the network and the baselines on the same splits, the RESULT line, the paired interval."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import bench.vs_baselines as vs
from tests._train_helpers import make_stores
from train.domains import load_domain, resolve_domain
from train.protocol import draw_split, split_indices

RESULT = re.compile(r"^RESULT de (random|speaker) network_ua=(\d\.\d{4}) baseline_ua=(\d\.\d{4}) baseline=(logreg|linsvm|rbfsvm) "
                    r"diff=([+-]\d\.\d{4}) ci_low=([+-]\d\.\d{4}|[+-]?nan) ci_high=([+-]\d\.\d{4}|[+-]?nan) runs=(\d+)$")


@pytest.fixture()
def store(tmp_path):
    return make_stores(tmp_path / "features", per_class=16, speakers=4)


def _run(store, tmp_path, capsys, protocol, extra=()):
    out = tmp_path / "out"
    summary = vs.main(["--domains", "de", "--protocol", protocol, "--seeds", "2", "--features-dir", str(store),
                       "--out", str(out), "--train-args", "--epochs 2", *extra])
    lines = capsys.readouterr().out.strip().splitlines()
    return out, summary, lines


@pytest.mark.parametrize("protocol", ["random", pytest.param("speaker", marks=pytest.mark.slow)])
def test_result_line_and_the_same_splits_on_both_sides(store, tmp_path, capsys, protocol):
    out, summary, lines = _run(store, tmp_path, capsys, protocol)
    m = RESULT.match(lines[-1])
    assert m, lines[-1]
    runs = 2 if protocol == "random" else 4  # 4 speakers: one fold each
    assert int(m.group(8)) == runs == summary["runs"]
    assert float(m.group(2)) == pytest.approx(np.mean([r["network_ua"] for r in summary["per_run"]]), abs=1e-4)
    best = m.group(4)
    diffs = [r["network_ua"] - r["baselines"][best]["ua"] for r in summary["per_run"]]
    assert float(m.group(5)) == pytest.approx(np.mean(diffs), abs=1e-4)
    assert summary["baseline_ua"][best] == max(summary["baseline_ua"].values())
    assert set(summary["baseline_ua"]) == {"logreg", "linsvm", "rbfsvm"}  # best of the three
    for r in summary["per_run"]:
        assert r["baselines"]["rbfsvm"]["gamma"] > 0 and r["baselines"]["logreg"]["gamma"] is None
    # Both sides' test sets, read independently: the network's run records and the trainer's split function.
    data = load_domain(resolve_domain("de", store), store, ["mfcc", "ge2e"])
    for run in range(runs):
        record = json.loads((out / "network" / "runs" / f"run{run}.json").read_text())
        idx = split_indices(draw_split(data, protocol, run))
        assert sorted(record["test"]["utt_ids"]) == sorted(data.utt_ids[i] for i in idx["test"])
        assert summary["per_run"][run]["n_test"] == len(idx["test"])
        assert summary["per_run"][run]["n_fit"] == len(idx["train"]) + len(idx["valid"])
        if protocol == "speaker":
            assert summary["per_run"][run]["test_speakers"] == sorted({data.speakers[i] for i in idx["test"]})
    assert json.loads((out / "result.json").read_text())["diff"] == pytest.approx(summary["diff"])


def test_a_network_tested_on_other_utterances_is_refused(store, tmp_path, capsys, monkeypatch):
    import train.protocol  # vs_baselines reads its splits from here when it runs; the trainer keeps its own import

    original = train.protocol.draw_split
    _run(store, tmp_path, capsys, "random")  # the network's runs, on the real splits
    monkeypatch.setattr(train.protocol, "draw_split", lambda data, protocol, run, n_folds=None: original(data, protocol, run + 7, n_folds))
    with pytest.raises(SystemExit) as exc:
        _run(store, tmp_path, capsys, "random")  # resumes the network runs; the baselines now see other splits
    assert exc.value.code == 3
    assert "other utterances" in capsys.readouterr().err


def test_train_args_may_not_repeat_own_options(store, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        vs.main(["--domains", "de", "--features-dir", str(store), "--out", str(tmp_path / "o"), "--train-args", "--out elsewhere"])
    assert exc.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_paired_t_interval():
    mean, low, high = vs.paired_interval([0.1, 0.2, 0.3])
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2 df) * sd / sqrt(n)
    assert (mean, low, high) == pytest.approx((0.2, 0.2 - half, 0.2 + half))
    assert np.isnan(vs.paired_interval([0.1])[1])


def test_the_baselines_are_the_heads_of_train():
    from train.pooled_heads import HeadConfig, select_head

    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 6))
    y = np.argmax(x[:, :3], axis=1)
    for name in ("logreg", "linsvm", "rbfsvm"):
        r = vs.fit_baseline(name, x[:60], y[:60], x[60:], y[60:], ["a", "b", "c"], seed=3)
        head = select_head(HeadConfig(name), x[:60], y[:60], seed=3)
        assert (r.c, r.gamma, r.inner_ua) == (head.params["c"], head.params.get("gamma"), head.inner_ua)


def test_inner_cv_chooses_c_on_the_fitting_data_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    y = (x[:, 0] > 0).astype(int)
    x_test = rng.normal(size=(20, 4))
    r = vs.fit_baseline("logreg", x, y, x_test, (x_test[:, 0] > 0).astype(int), ["a", "b"])
    assert r.c in vs.C_GRID["logreg"] and r.inner_ua > 0.8 and r.ua > 0.8
    groups = np.repeat(np.arange(3), 20)
    folds = vs.inner_folds(y, groups, 0)
    assert all(not set(groups[a]) & set(groups[b]) for a, b in folds)  # speaker-grouped inner folds


def test_finished_only_compares_on_the_runs_already_there(store, tmp_path, capsys):
    _, full, _ = _run(store, tmp_path, capsys, "random")
    _, partial, lines = _run(store, tmp_path, capsys, "random", ["--finished-only", "--seeds", "3"])
    assert "nothing is trained" in "\n".join(lines)
    assert partial["runs"] == 2 and partial["runs_planned"] == 3  # seed 2 never trained: left out, not fitted
    assert partial["diff"] == pytest.approx(full["diff"]) and lines[-1].endswith("runs=2")
    with pytest.raises(SystemExit) as exc:  # a run folder of another experiment is refused
        _run(store, tmp_path, capsys, "speaker", ["--finished-only"])
    assert exc.value.code == 3
    assert "differs in protocol" in capsys.readouterr().err


def test_each_runs_baselines_are_kept_reused_and_refitted_when_their_data_changed(store, tmp_path, capsys, monkeypatch):
    _, first, _ = _run(store, tmp_path, capsys, "random")
    kept = tmp_path / "out" / "baselines"
    assert sorted(p.name for p in kept.iterdir()) == ["run0.json", "run1.json"]
    fitted = []
    original = vs.fit_baseline
    monkeypatch.setattr(vs, "fit_baseline", lambda *a, **k: fitted.append(a[0]) or original(*a, **k))
    _, again, _ = _run(store, tmp_path, capsys, "random", ["--finished-only"])
    assert fitted == [] and again["baseline_ua"] == first["baseline_ua"]  # an interrupted benchmark resumes
    record = json.loads((kept / "run1.json").read_text())
    record["digest"] = "0" * 64  # as if the store had been re-extracted since: stale, fitted again
    (kept / "run1.json").write_text(json.dumps(record))
    _run(store, tmp_path, capsys, "random", ["--finished-only"])
    assert sorted(fitted) == sorted(vs.C_GRID) and json.loads((kept / "run1.json").read_text())["digest"] != "0" * 64
    x = np.ones((4, 2))
    y = np.array([0, 1, 0, 1])
    assert vs.baseline_digest(x, y, x, y, None) != vs.baseline_digest(x, y, x + 1e-6, y, None)


def test_train_args_taking_one_option_as_the_readme_writes_it(store, tmp_path, capsys):
    # the documented form (docs/results/vs_baselines.md): --train-args "--refit" (one value that starts with "-"), not only --train-args=--refit
    args = vs.parser().parse_args(vs.attach_option_values(["--domains", "de", "--train-args", "--refit"]))
    assert args.train_args == "--refit"
    with pytest.raises(SystemExit) as exc:
        vs.main(["--domains", "de", "--features-dir", str(store), "--out", str(tmp_path / "o"), "--train-args", "--config"])
    assert exc.value.code == 2
    assert "--config is set by vs_baselines itself" in capsys.readouterr().err


def test_the_ensemble_on_the_network_side_reports_its_members_on_the_same_runs(store, tmp_path, capsys):
    out = tmp_path / "out"
    summary = vs.main(["--domains", "de", "--protocol", "random", "--seeds", "2", "--features-dir", str(store),
                       "--out", str(out), "--train-args", "--model ensemble --epochs 2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert RESULT.match(lines[-1]), lines[-1]
    assert lines[-2].startswith("ensemble members (mean over runs): single weight")
    for r in summary["per_run"]:
        record = json.loads((out / "network" / "runs" / f"run{r['run']}.json").read_text())
        assert r["members"] == record["history"][0]["ensemble"]["members"]
        assert sum(m["weight"] for m in r["members"].values()) == pytest.approx(1.0)
    means = summary["members"]
    assert set(means) == {"single", "logreg", "rbfsvm"}
    assert means["single"]["test_ua"] == pytest.approx(np.mean([r["members"]["single"]["test_ua"] for r in summary["per_run"]]))
    assert json.loads((out / "result.json").read_text())["members"] == means


def test_bench_baselines_fits_the_same_heads_with_their_grids(store, capsys):
    """bench/baselines.py: its models are vs_baselines' (train's heads, C by inner CV on the head's default grid)."""
    import bench.baselines as baselines
    from train.pooled_heads import C_GRIDS

    summary = baselines.main(["--domains", "de", "--features-dir", str(store), "--seeds", "2"])
    assert set(summary) == {"svm_mfcc_stats", "lr_ge2e", "lr_mfcc_stats_ge2e"}
    for name, s in summary.items():
        grid = C_GRIDS["rbfsvm" if name.startswith("svm") else "logreg"]
        assert len(s["runs"]) == 2 and all(r["C"] in grid for r in s["runs"]), (name, s["runs"])
        assert s["ua_mean"] > 0.5  # 4 separable classes
    assert "lr_mfcc_stats_ge2e" in capsys.readouterr().out
    normalised = baselines.main(["--domains", "de", "--features-dir", str(store), "--seeds", "2", "--speaker-norm"])
    assert set(normalised) == set(summary) and all(s["ua_mean"] > 0.5 for s in normalised.values())
