"""bench/vote.py: the majority vote of run folders fitted on the same splits from other initialisations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import bench.vote as vote
from tests._train_helpers import make_stores
from train.cli import main as train
from train.metrics import unweighted_accuracy


def test_majority_takes_the_most_frequent_class_and_breaks_ties_by_the_earlier_member():
    predictions = np.array([[0, 1, 2, 3], [1, 1, 0, 2], [2, 0, 0, 1]])
    assert vote.majority(predictions).tolist() == [0, 1, 0, 3]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("vote")
    stores = make_stores(root / "stores", dataset="synth", language="de", per_class=12, speakers=4)
    out = {}
    for name, extra in (("a", ["--protocol", "speaker"]), ("b", ["--protocol", "speaker", "--first-seed", "10"]),
                        ("c", ["--protocol", "speaker", "--first-seed", "20"]), ("random", ["--seeds", "4"])):
        out[name] = root / name
        r = CliRunner().invoke(train, ["--domains", "de=synth", "--epochs", "2", "--preset", "paper", "--no-checkpoints",
                                       "--features-dir", str(stores), "--out", str(out[name]), "--quiet", *extra])
        assert r.exit_code == 0, r.output
    return out


def _records(folder, k):
    return json.loads((folder / "runs" / f"run{k}.json").read_text())


def test_the_vote_of_three_initialisations_on_the_same_folds(folders, capsys):
    members = [folders[n] for n in ("a", "b", "c")]
    result = vote.vote(members, "valid")
    s = result["languages"]["de=synth"]
    assert result["runs"] == [0, 1, 2, 3]
    for k in result["runs"]:
        records = [_records(f, k)["valid"] for f in members]
        uas = [r["scores"]["0"]["ua"] for r in records]
        predictions = np.array([r["predictions"] for r in records])
        # the vote by hand: the most frequent label per utterance, ties to the first folder's
        by_hand = [max(col, key=lambda c: (list(col).count(c), -list(col).index(c))) for col in predictions.T]
        assert s["member_ua"][k] == pytest.approx(np.mean(uas))
        assert s["vote_ua"][k] == pytest.approx(unweighted_accuracy(records[0]["labels"], by_hand))
    assert s["diff"] == pytest.approx(np.mean(np.subtract(s["vote_ua"], s["member_ua"])))
    assert vote.main([str(f) for f in members]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("VOTE de=synth valid ") and last.endswith("runs=4 members=3")


def test_folders_of_other_splits_and_inconsistent_records_are_refused(folders, tmp_path, capsys):
    assert vote.main([str(folders["a"]), str(folders["random"])]) == 3  # the random protocol: seed 0 is another split
    assert "evaluated different utterances" in capsys.readouterr().err
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folders["b"], copy)
    record = _records(copy, 1)
    record["valid"]["predictions"] = [(p + 1) % 4 for p in record["valid"]["predictions"]]
    (copy / "runs" / "run1.json").write_text(json.dumps(record))
    assert vote.main([str(folders["a"]), str(copy)]) == 3
    assert "run 1: UA" in capsys.readouterr().err
    assert vote.main([str(folders["a"]), str(tmp_path / "nothing")]) == 2
