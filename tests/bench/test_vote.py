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
        # the vote by hand: the class of highest mean probability per utterance
        by_hand = np.mean([r["probabilities"] for r in records], axis=0).argmax(1)
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


def test_run_records_keep_class_probabilities_and_the_vote_averages_them(folders):
    members = [folders[n] for n in ("a", "b", "c")]
    for split in ("valid", "test"):
        r = _records(folders["a"], 0)[split]
        p = np.asarray(r["probabilities"])
        assert p.shape == (len(r["utt_ids"]), 4)
        assert np.allclose(p.sum(1), 1.0, atol=1e-5)
        assert (p.argmax(1) == np.asarray(r["predictions"])).all()
    assert vote.vote(members, "valid")["method"] == "probabilities"


def test_records_without_probabilities_are_voted_over_labels(folders, tmp_path):
    import shutil

    members = []
    for n in ("a", "b", "c"):
        shutil.copytree(folders[n], tmp_path / n)
        for path in (tmp_path / n / "runs").glob("run*.json"):
            record = json.loads(path.read_text())
            for split in ("valid", "test"):
                record[split].pop("probabilities")
            path.write_text(json.dumps(record))
        members.append(tmp_path / n)
    result = vote.vote(members, "valid")
    assert result["method"] == "labels"
    for k in result["runs"]:
        records = [_records(f, k)["valid"] for f in members]
        by_hand = vote.majority(np.array([r["predictions"] for r in records]))
        assert result["languages"]["de=synth"]["vote_ua"][k] == pytest.approx(unweighted_accuracy(records[0]["labels"], by_hand))


def test_average_takes_the_class_of_highest_mean_probability():
    p = np.array([[[0.6, 0.4], [0.2, 0.8]], [[0.1, 0.9], [0.45, 0.55]], [[0.1, 0.9], [0.3, 0.7]]])
    # labels would vote class 1 for the first utterance (two of three); so do the probabilities (mean 0.27 vs 0.73)
    assert vote.average(p).tolist() == [1, 1]
    p2 = np.array([[[0.9, 0.1]], [[0.45, 0.55]], [[0.45, 0.55]]])  # labels: class 1 twice; mean probability: class 0
    assert vote.average(p2).tolist() == [0]
    assert vote.majority(p2.argmax(-1)).tolist() == [1]
