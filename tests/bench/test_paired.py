"""bench/paired.py: the paired difference of two run folders, refused for runs on different splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import bench.paired as paired
from tests._train_helpers import make_stores
from train.cli import main as train


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("paired")
    stores = make_stores(root / "stores", dataset="synth", language="de", per_class=12, speakers=4)
    out = {}
    for name, extra in (("aux", []), ("no_aux", ["--no-aux"]), ("later", ["--first-seed", "5"])):
        out[name] = root / name
        r = CliRunner().invoke(train, ["--domains", "de=synth", "--epochs", "1", "--seeds", "2", "--preset", "paper",
                                       "--features-dir", str(stores), "--out", str(out[name]), "--quiet", *extra])
        assert r.exit_code == 0, r.output
    return out


def test_paired_difference_of_the_same_runs(folders, tmp_path, capsys):
    assert paired.main([str(folders["aux"]), str(folders["no_aux"]), "--json", str(tmp_path / "p.json")]) == 0
    result = json.loads((tmp_path / "p.json").read_text())
    runs = lambda f: json.loads((f / "metrics.json").read_text())["runs"]  # noqa: E731
    a = [r["test"]["de"]["ua"] for r in runs(folders["aux"])]
    b = [r["test"]["de"]["ua"] for r in runs(folders["no_aux"])]
    s = result["languages"]["de=synth"]
    assert result["runs"] == [0, 1] and s["a_ua"] == a and s["b_ua"] == b
    assert s["diff"] == pytest.approx(np.mean(np.subtract(b, a)))
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("PAIRED de=synth test ") and last.endswith("runs=2")


def test_runs_on_other_splits_are_refused(folders, capsys):
    assert paired.main([str(folders["aux"]), str(folders["later"])]) == 3
    err = capsys.readouterr().err
    assert "error: run 0:" in err and "tested different utterances" in err


def test_a_folder_without_runs_is_a_usage_error(folders, tmp_path, capsys):
    assert paired.main([str(folders["aux"]), str(tmp_path)]) == 2
    assert f"{tmp_path}: no finished run" in capsys.readouterr().err
