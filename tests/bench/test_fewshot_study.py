"""bench/fewshot.py: the few-shot transfer study (same K-shot draw for every method, resumable, method choice)."""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import bench.fewshot as fs
from sercore.errors import EXIT_PARTIAL
from tests._train_helpers import make_stores
from train.protocol import few_shot
from train.transfer import SELF_ROUNDS, self_train


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("fewshot") / "features"
    for i, lang in enumerate(fs.LANGUAGES):
        make_stores(root, dataset=f"synth_{lang}", language=lang, per_class=12, speakers=3, seed=i)
    return root


def study_args(stores: Path, **options) -> list[str]:
    """bench/fewshot.py's arguments on the test stores (features mfcc, ge2e) and ``options``, each as ``--name value``
    (underscores as dashes)."""
    args = ["--features-dir", str(stores), "--features", "mfcc,ge2e"]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    return args


def test_every_method_of_a_run_sees_the_same_k_shots_and_the_study_resumes(stores, tmp_path, monkeypatch):
    drawn = []

    def spy(indices, emotions, k, seed):
        out = few_shot(indices, emotions, k, seed)
        drawn.append((k, seed, tuple(out)))
        return out

    monkeypatch.setattr("train.protocol.few_shot", spy)
    out = tmp_path / "study"
    args = study_args(stores, out=out, targets="de", seeds=2, pseudo_seeds=1, shots="2,3", folds=3, speaker_shots=2)
    assert fs.main(args) == 0
    recs = fs.records(out / "results.jsonl")
    # de with both sources (2 seeds, K = 2 and 3), its pseudo-targets it <- en and en <- it (1 seed), speaker folds
    keys = Counter((r["protocol"], r["target"], tuple(r["sources"])) for r in recs)
    assert keys == {("random", "de", ("it", "en")): 4, ("random", "it", ("en",)): 2, ("random", "en", ("it",)): 2,
                    ("speaker", "de", ("it", "en")): 3}
    assert len(drawn) == len(recs)  # one draw per run and K, shared by all its methods
    for k, _, rows in drawn:
        assert len(rows) == k * 4  # K per emotion, 4 emotions
    main = [r for r in recs if r["protocol"] == "random" and r["target"] == "de"]
    computed = set(fs.SINGLE) - {"single_net", *fs.ENSEMBLES} | {"zeroshot", "stack", "pooled_spk", "self_pooled", "self_pooled_spk",
                                                  "cv_spk",
                                                  *fs.POOLED}  # the network and the ensembles: --network
    assert all(computed == set(r["ua"]) for r in main)
    speaker = [r for r in recs if r["protocol"] == "speaker"]
    assert all(computed == set(r["ua"]) for r in speaker)
    assert all(0 <= v <= 1 for r in recs for v in r["ua"].values())
    # a rerun draws nothing: every run is in the results file
    drawn.clear()
    assert fs.main(args) == 0 and not drawn and len(fs.records(out / "results.jsonl")) == len(recs)
    report = tmp_path / "table.md"
    assert fs.main([*args, "--report", str(report)]) == 0
    text = report.read_text()
    assert "#### de, random protocol, K = 2" in text and "#### de, speaker protocol, K = 2" in text and "(chosen)" in text
    assert re.search(r"cv_spk picked self(_pooled)?_spk in \d of 2 runs", text)  # each run's pick, per target and K
    assert report.with_suffix(".png").stat().st_size > 1000
    assert not report.with_name("table_beside.png").exists()  # no method beside the choice was run
    with pytest.raises(SystemExit) as exc:  # with --report, a folder of runs to read that is not there: one line
        fs.main([*args, "--report", str(report), "--multidomain", str(tmp_path / "nowhere")])
    assert exc.value.code == 2
    summary = json.loads((out / "summary.json").read_text())
    # the records archived beside a report rebuild it without the study's folder (--also FILE.jsonl)
    archive = tmp_path / "archive.jsonl"
    archive.write_text((out / "results.jsonl").read_text())
    rebuilt = tmp_path / "rebuilt.md"
    assert fs.main(["--out", str(tmp_path / "new"), "--also", str(archive), "--report", str(rebuilt)]) == 0
    assert rebuilt.read_text() == text
    with pytest.raises(SystemExit) as exc:  # records to add that are not there: one line naming the option
        fs.main(["--out", str(tmp_path / "new"), "--also", str(tmp_path / "lost.jsonl"), "--report", str(rebuilt)])
    assert exc.value.code == 2
    assert summary["random de 2"]["chosen"] in [*fs.POOLED, "pooled_spk", "stack", "zeroshot", "self_pooled", "self_pooled_spk",
                                             "cv_spk"]


def test_the_studys_runs_on_dask_workers_record_what_the_serial_study_records(stores, tmp_path, monkeypatch):
    """--workers 2: each run of the linear study is a Dask task; the records are those of the serial study (in the
    order the tasks finished), a rerun submits nothing, and a run it cannot read stops it with one line."""
    from sercore import cluster

    args = study_args(stores, targets="de", seeds=2, pseudo_seeds=1, shots=2, folds=3, speaker_shots=2)
    assert fs.main([*args, "--out", str(tmp_path / "serial")]) == 0
    assert fs.main([*args, "--out", str(tmp_path / "dask"), "--workers", "2"]) == 0
    key = lambda r: (r["protocol"], r["target"], r["run"], r["k"])  # noqa: E731
    serial, parallel = (sorted(fs.records(tmp_path / d / "results.jsonl"), key=key) for d in ("serial", "dask"))
    assert len(serial) == 7 and parallel == serial  # de: 2 seeds and 3 folds; it <- en, en <- it: 1 seed

    def no_cluster(*a, **k):
        raise AssertionError("a cluster was started with nothing to run")

    monkeypatch.setattr(cluster, "dask_client", no_cluster)
    assert fs.main([*args, "--out", str(tmp_path / "dask"), "--workers", "2"]) == 0
    monkeypatch.undo()
    study = argparse.Namespace(features_dir=str(stores), features=["mfcc", "ge2e"], out=str(tmp_path / "dask2"),
                               targets=["de"], seeds=1, first_seed=0, pseudo_seeds=0, shots=[2], folds=3, speaker_shots=2,
                               protocols=["random"], network=str(tmp_path / "net"), workers=1, scheduler=None)
    with pytest.raises(SystemExit, match=r"random_de_k2/runs/run0.json: single_net's run is missing"):
        fs.study(study, log=lambda s: None)  # raised on the worker, one line here


def test_the_method_choice_uses_the_pseudo_targets_only():
    def rec(target, sources, ua, k=5, run=0):
        return {"protocol": "random", "target": target, "sources": list(sources), "k": k, "run": run, "ua": ua}

    single = {m: 0.5 for m in fs.SINGLE}
    recs = [rec("it", ["en"], {**single, "a": 0.7, "b": 0.6}), rec("en", ["it"], {**single, "a": 0.6, "b": 0.6}),
            rec("de", ["it", "en"], {**single, "a": 0.1, "b": 0.9})]  # de's own results cannot change its choice
    best, gains = fs.select_method(recs, "de", ["a", "b"])
    assert best == "a" and gains == pytest.approx({"a": 0.15, "b": 0.1})
    # one method for all targets: the mean of each target's pseudo-target gains (it's pseudo-targets: de <- en, en <- de)
    recs += [rec("de", ["en"], {**single, "a": 0.5, "b": 0.9}), rec("en", ["de"], {**single, "a": 0.5, "b": 0.8})]
    assert fs.select_method(recs, "it", ["a", "b"]) == ("b", pytest.approx({"a": 0.0, "b": 0.35}))
    best, gains = fs.shared_method(recs, ["de", "it"], ["a", "b"])
    assert best == "b" and gains == pytest.approx({"a": 0.075, "b": 0.225})


def test_the_pseudo_targets_compare_with_the_network_of_the_same_language_run_and_k():
    def rec(target, sources, ua, k=5, run=0):
        return {"protocol": "random", "target": target, "sources": list(sources), "k": k, "run": run, "ua": ua}

    recs = [rec("it", ["en"], {"single_logreg": 0.4, "a": 0.5}), rec("it", ["en"], {"single_logreg": 0.4, "a": 0.5}, run=1),
            rec("it", ["de", "en"], {"single_net": 0.7}), rec("it", ["de", "en"], {"single_net": 0.2}, k=10),
            rec("en", ["it"], {"single_logreg": 0.4, "a": 0.5})]
    joined = fs.with_pseudo_single_net(recs)
    assert joined[0]["ua"] == {"single_logreg": 0.4, "a": 0.5, "single_net": 0.7}  # same run and K only
    assert joined[1]["ua"] == recs[1]["ua"] and joined[4]["ua"] == recs[4]["ua"] and "single_net" not in recs[0]["ua"]
    # de's pseudo-target it: its best single method is now the network, and "a" loses to it
    assert fs.select_method(joined[:1], "de", ["a"])[1] == pytest.approx({"a": -0.2})
    assert fs.select_method(recs[:1], "de", ["a"])[1] == pytest.approx({"a": 0.1})


def test_the_pooled_methods_are_the_fit_of_train_transfer_to(stores, tmp_path, monkeypatch):
    """pooled_c<C> and pooled_spk: train.transfer.fit_union (train --transfer-to's fit), with the study's C;
    self_pooled and self_pooled_spk: the same fit, once on the shots and once per self-training round."""
    import train.transfer

    calls = []

    def spy(z_target, y_target, z_sources, y_sources, c):
        calls.append((len(z_target), len(z_sources), c))
        return fit_union(z_target, y_target, z_sources, y_sources, c)

    fit_union = train.transfer.fit_union
    monkeypatch.setattr(train.transfer, "fit_union", spy)
    langs = fs.load(str(stores), ["mfcc", "ge2e"], tmp_path / "cache")
    out = fs.run_methods("de", ["it", "en"], langs, "random", 0, [2], 3, spk=True)
    sources = sum(len(fs.split(langs[s], "random", 0, 3)[p]) for s in ("it", "en") for p in ("train", "valid"))
    pool = len(fs.split(langs["de"], "random", 0, 3)["train"]) - 8  # K 2 x 4 emotions
    rounds = [(8 + 4 * round(f * pool / 4), sources) for f in SELF_ROUNDS]  # when each emotion is predicted enough
    assert [c for c in calls if c[0] == 8] == [(8, sources, c) for c in (0.01, 0.1, 0.01, 0.1, 0.1)]
    assert [c for c in calls if c[0] == 4] == [(4, sources, 0.1)] * 2  # cv_spk: fitted in each of 2 folds of 8 shots
    assert len(calls) == 3 + 2 * (1 + len(SELF_ROUNDS)) + 2
    assert all(n <= n_max for (n, _, _), (n_max, _) in zip([c for c in calls if c[0] > 8], rounds * 2))
    assert {"pooled_c0.01", "pooled_c0.1", "pooled_spk", "self_pooled", "self_pooled_spk"} <= set(out[2]["ua"])
    pick = out[2]["picked"]["cv_spk"]
    assert pick in ("self_pooled_spk", "self_spk") and out[2]["ua"]["cv_spk"] == out[2]["ua"][pick]


def test_the_choice_inside_the_shots_takes_the_fit_with_the_better_out_of_fold_ua():
    """shots_choice: stratified folds inside the shots, each fit predicting the held-out shots; the better UA wins,
    a tie goes to the first name."""
    import numpy as np

    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    x = np.vstack([rng.normal(m, 0.2, (5, 2)) for m in ([3, 0], [0, 3], [-3, -3])])
    y = np.repeat(classes, 5)
    linear = lambda x, y: fs.logreg(x, y, 1.0)  # noqa: E731
    mislabelled = lambda x, y: fs.logreg(x, np.roll(y, 5), 1.0)  # noqa: E731  (a's shots called b, and so on)
    assert fs.shots_choice({"mislabelled": mislabelled, "linear": linear}, x, y, classes, 0) == "linear"
    assert fs.shots_choice({"first": linear, "second": linear}, x, y, classes, 0) == "first"


def test_self_training_adds_the_most_confident_rows_of_each_predicted_emotion_per_round():
    """self_train: each round the fraction f of the pool, f x m / n_classes per predicted emotion, the most confident
    first, labelled by the model of the round before; the pool's own labels are never given to it."""
    import numpy as np

    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    centres = {"a": [4.0, 0.0], "b": [0.0, 4.0], "c": [-4.0, -4.0]}
    x_shots = np.array([centres[c] for c in classes for _ in range(2)]) + rng.normal(0, 0.3, (6, 2))
    y_shots = np.repeat(classes, 2)
    x_pool = np.vstack([np.array(centres[c]) + rng.normal(0, 0.5, (20, 2)) for c in classes])  # 60 rows, 20 each
    fits = []

    def fit(x, y):
        fits.append((x.copy(), y.copy()))
        return fs.logreg(x, y, 1.0)

    model = self_train(fit, x_shots, y_shots, x_pool, classes)
    assert len(fits) == 1 + len(SELF_ROUNDS)
    for (x, y), f in zip(fits[1:], SELF_ROUNDS):
        added_x, added_y = x[6:], y[6:]
        assert np.array_equal(x[:6], x_shots) and list(y[:6]) == list(y_shots)
        per_class = round(f * 60 / 3)
        assert sorted(Counter(added_y.tolist()).values()) == [per_class] * 3  # well separated: every emotion predicted
        assert all(any(np.array_equal(row, p) for p in x_pool) for row in added_x)
        truth = np.repeat(classes, 20)[[next(i for i, p in enumerate(x_pool) if np.array_equal(row, p)) for row in added_x]]
        assert list(added_y) == list(truth)  # the clusters are clean, so the pseudo-labels are right
    assert list(model.predict(x_pool)) == list(np.repeat(classes, 20))


def test_self_training_reads_no_label_of_the_targets_unlabelled_training_rows(stores, tmp_path, monkeypatch):
    """Scrambling the emotions of the target's training rows that are not shots changes no self-training method
    (nor any other method of the target's few shots): those rows are unlabelled for every method."""
    import numpy as np

    import train.protocol

    langs = fs.load(str(stores), ["mfcc", "ge2e"], tmp_path / "cache")
    idx = fs.split(langs["de"], "random", 0, 3)
    shots = few_shot(idx["train"].tolist(), list(langs["de"]["emotions"]), 2, 0)
    monkeypatch.setattr(train.protocol, "few_shot", lambda *args: shots)
    before = fs.run_methods("de", ["it", "en"], langs, "random", 0, [2], 3, spk=True)[2]["ua"]
    pool = np.setdiff1d(idx["train"], shots)
    emotions = langs["de"]["emotions"].copy()
    emotions[pool] = np.random.default_rng(1).permutation(emotions[pool])[::-1]
    assert (emotions[pool] != langs["de"]["emotions"][pool]).any()
    langs["de"] = {**langs["de"], "emotions": emotions}
    after = fs.run_methods("de", ["it", "en"], langs, "random", 0, [2], 3, spk=True)[2]["ua"]
    assert {"self_z", "self_spk", "self_pooled", "self_pooled_spk"} <= set(before)
    assert after == pytest.approx(before)


@pytest.mark.parametrize("protocol", ["random", "speaker"])
def test_speaker_statistics_come_from_training_rows_or_under_the_speaker_protocol_from_each_speakers_own(
        stores, tmp_path, monkeypatch, protocol):
    """random: each speaker's training rows (every test speaker has some); speaker: all of a speaker's rows, so a
    test speaker is standardised with its own unlabelled test audio (no label is read either way)."""
    import bench.fewshot

    seen = []

    def spy(x, speakers, rows=None):
        seen.append(None if rows is None else sorted(int(i) for i in rows))
        return speaker_standardised(x, speakers, rows)

    speaker_standardised = bench.fewshot.speaker_standardised
    monkeypatch.setattr(bench.fewshot, "speaker_standardised", spy)
    langs = fs.load(str(stores), ["mfcc", "ge2e"], tmp_path / "cache")
    out = fs.run_methods("de", ["it", "en"], langs, protocol, 0, [2], 3, spk=True)
    assert {"single_spk", "proto_spk", "pooled_spk"} <= set(out[2]["ua"])
    expected = [sorted(fs.split(langs[lang], protocol, 0, 3)["train"].tolist()) if protocol == "random" else None
                for lang in ("de", "it", "en")]
    assert seen == expected


def test_the_networks_runs_join_the_studys_records_of_the_same_run_and_k(stores, tmp_path):
    """--network: single_net of each finished run of `train --few-shot T=K`, read from the run folder
    <protocol>_<target>_k<K> and joined to the study's record of the same protocol, target, K and run."""
    from click.testing import CliRunner

    from train.cli import main as train_main

    folder = tmp_path / "network" / "random_de_k2"
    r = CliRunner().invoke(train_main, ["--domains", "de=synth_de", "--features", "mfcc,ge2e", "--features-dir",
                                        str(stores), "--few-shot", "de=2", "--seeds", "2", "--epochs", "1", "--out",
                                        str(folder), "--no-checkpoints", "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    metrics = json.loads((folder / "metrics.json").read_text())
    recs = fs.network_records(tmp_path / "network")
    assert [(x["protocol"], x["target"], x["sources"], x["run"], x["k"]) for x in recs] == [
        ("random", "de", ["it", "en"], 0, 2), ("random", "de", ["it", "en"], 1, 2)]
    assert [x["ua"]["single_net"] for x in recs] == pytest.approx([run["test"]["de"]["ua"] for run in metrics["runs"]])
    study = tmp_path / "study.jsonl"
    study.write_text(json.dumps({"protocol": "random", "target": "de", "sources": ["it", "en"], "run": 0, "k": 2,
                                 "ua": {"single_logreg": 0.5}}) + "\n")
    network = tmp_path / "network.jsonl"
    network.write_text("".join(json.dumps(x) + "\n" for x in recs))
    joined = fs.records([study, network])
    assert len(joined) == 2 and joined[0]["ua"] == {"single_logreg": 0.5, "single_net": recs[0]["ua"]["single_net"]}


def test_network_single_trains_the_network_on_each_targets_shots_with_the_studys_runs(stores, tmp_path, monkeypatch):
    import train.repeated_runs

    configs = []
    monkeypatch.setattr(train.repeated_runs, "run_experiment", lambda config, log=None: configs.append(config))
    args = argparse.Namespace(
        targets=["de", "it"], shots=[5, 10], speaker_shots=10, protocols=["random", "speaker"], seeds=10, first_seed=0, folds=6,
        features=["mfcc", "ge2e"], features_dir=str(stores), network=str(tmp_path / "net"), workers=0, scheduler=None)
    assert fs.network_single(args, log=lambda s: None) == 0
    got = [(Path(c.out).name, c.domains, c.few_shot, c.protocol, c.seeds if c.protocol == "random" else c.folds,
            c.features, c.model, c.save_checkpoints) for c in configs]
    # the random protocol: the targets and their pseudo-targets (en, for both), whose runs the ensembles read
    assert got == [("random_de_k5", ["de=synth_de"], {"de": 5}, "random", 10, ["mfcc", "ge2e"], "single", False),
                   ("random_de_k10", ["de=synth_de"], {"de": 10}, "random", 10, ["mfcc", "ge2e"], "single", False),
                   ("random_it_k5", ["it=synth_it"], {"it": 5}, "random", 10, ["mfcc", "ge2e"], "single", False),
                   ("random_it_k10", ["it=synth_it"], {"it": 10}, "random", 10, ["mfcc", "ge2e"], "single", False),
                   ("random_en_k5", ["en=synth_en"], {"en": 5}, "random", 10, ["mfcc", "ge2e"], "single", False),
                   ("random_en_k10", ["en=synth_en"], {"en": 10}, "random", 10, ["mfcc", "ge2e"], "single", False),
                   ("speaker_de_k10", ["de=synth_de"], {"de": 10}, "speaker", 6, ["mfcc", "ge2e"], "single", False),
                   ("speaker_it_k10", ["it=synth_it"], {"it": 10}, "speaker", 6, ["mfcc", "ge2e"], "single", False)]


def test_the_ensembles_read_the_networks_probabilities_by_utterance_and_emotion(stores, tmp_path):
    """--network: net_* average single_net's test probabilities with a head's. The network's records are rewritten
    to certain, correct probabilities, their rows shuffled and their emotions in reverse order: every ensemble must
    then be right on every test utterance (UA 1), which it is only if rows and columns are matched by name. A run
    that is missing, or tested on other utterances, stops the study with one line naming its file."""
    from click.testing import CliRunner

    from train.cli import main as train_main

    network = tmp_path / "network"
    for lang, seeds in (("de", 2), ("it", 1), ("en", 1)):  # de's runs, and its pseudo-targets' first
        r = CliRunner().invoke(train_main, ["--domains", f"{lang}=synth_{lang}", "--features", "mfcc,ge2e",
                                            "--features-dir", str(stores), "--few-shot", f"{lang}=2", "--seeds",
                                            str(seeds), "--epochs", "1", "--out", str(network / f"random_{lang}_k2"),
                                            "--no-checkpoints", "--quiet"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    for path in network.glob("random_*_k2/runs/run*.json"):
        record = json.loads(path.read_text())
        test = record["test"]
        classes = test["scores"]["0"]["classes"]
        order = list(range(len(test["utt_ids"])))[::-1]
        test["utt_ids"] = [test["utt_ids"][i] for i in order]
        test["labels"] = [test["labels"][i] for i in order]
        test["probabilities"] = [[1.0 if j == test["labels"][i] else 0.0 for j in range(len(classes))][::-1]
                                 for i in range(len(order))]
        test["scores"]["0"]["classes"] = classes[::-1]
        path.write_text(json.dumps(record))
    args = argparse.Namespace(features_dir=str(stores), features=["mfcc", "ge2e"], out=str(tmp_path / "study"),
                              targets=["de"], seeds=2, first_seed=0, pseudo_seeds=1, shots=[2], folds=3, speaker_shots=2,
                              protocols=["random"], network=str(network), workers=0, scheduler=None)
    fs.study(args, log=lambda s: None)
    recs = fs.records(tmp_path / "study" / "results.jsonl")
    assert len(recs) == 4  # de: 2 seeds; it <- en and en <- it: 1 seed
    for r in recs:
        assert {m: r["ua"][m] for m in fs.ENSEMBLES} == {m: 1.0 for m in fs.ENSEMBLES}
        assert r["ua"]["self_spk"] < 1.0 or r["ua"]["self_pooled"] < 1.0  # the heads alone are not all perfect
    assert "net_self_spk" in fs.SINGLE and not {"net_self_pooled_spk", "net_self_pooled"} & set(fs.SINGLE)
    # a missing run: one line naming it
    (network / "random_de_k2" / "runs" / "run1.json").unlink()
    with pytest.raises(SystemExit, match=r"random_de_k2/runs/run1.json: single_net's run is missing"):
        fs.study(argparse.Namespace(**{**vars(args), "out": str(tmp_path / "study2")}), log=lambda s: None)
    # a run tested on other utterances (another split)
    path = network / "random_de_k2" / "runs" / "run0.json"
    record = json.loads(path.read_text())
    record["test"]["utt_ids"][0] = "not-in-this-split"
    path.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match=r"random_de_k2/runs/run0.json: tested on other utterances"):
        fs.study(argparse.Namespace(**{**vars(args), "out": str(tmp_path / "study3")}), log=lambda s: None)


def test_single_is_chosen_and_compared_on_the_runs_that_have_every_head(tmp_path):
    """While the network's runs are being trained, a group mixes runs with and without single_net: the report uses
    the runs that have both (before: a KeyError, or single chosen from means over different runs)."""
    def rec(run, ua):
        return {"protocol": "random", "target": "de", "sources": ["it", "en"], "k": 5, "run": run, "ua": ua}

    base = {m: 0.5 for m in fs.SINGLE if m != "single_net"} | {"zeroshot": 0.4, "pooled_c0.01": 0.6}
    recs = [rec(0, {**base, "single_net": 0.9}), rec(1, base), rec(2, base)]
    assert fs.with_every_head(recs) == recs[:1]
    pseudo = [{"protocol": "random", "target": t, "sources": [s], "k": 5, "run": 0, "ua": base}
              for t, s in (("it", "en"), ("en", "it"))]
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs + pseudo))
    text = fs.report(path)
    assert "| random | de | 5 | 1 | single_net (0.900) |" in text


def quick_configs(monkeypatch, epochs: int = 1):
    """Every configuration bench/fewshot.py builds trains for ``epochs`` epochs (the source models' recipe is 40)."""
    import train.config

    build = train.config.build_config

    def quick(domains, **settings):
        settings["train"] = {**(settings.get("train") or {}), "epochs": epochs}
        return build(domains, **settings)

    monkeypatch.setattr(train.config, "build_config", quick)


def test_the_network_transfer_methods_train_on_the_sources_then_use_the_studys_shots(stores, tmp_path, monkeypatch):
    """--transfer-net: one source model per target (base, the target zero-shot), adapt_net runs warm-started from it
    with the study's splits, proto_net and head_net on its representation; joined to the study's records."""
    quick_configs(monkeypatch)
    out, net = tmp_path / "study", tmp_path / "net"
    args = study_args(stores, out=out, targets="de", seeds=2, pseudo_seeds=1, shots=2, folds=3, speaker_shots=2,
                      transfer_net=net)
    assert fs.main(args) == 0
    source = json.loads((net / "source_de" / "config.json").read_text())
    assert source["model"] == "base" and source["few_shot"] == {"de": 0}
    adapted = json.loads((net / "random_de_k2" / "config.json").read_text())
    assert adapted["few_shot"] == {"de": 2, "it": 0, "en": 0} and adapted["train"]["optimizer"]["lr"] == fs.ADAPT_LR
    assert adapted["init_from"] == str(net / "source_de" / "checkpoints" / "run0.pt")
    recs = fs.transfer_net_records(net)
    got = Counter((r["protocol"], r["run"], r["k"], m) for r in recs for m in r["ua"])
    assert set(got) == {(p, run, k, m) for p, runs, k in (("random", 2, 2), ("speaker", 3, 2)) for run in range(runs)
                        for m in ("adapt_net", "proto_net", "head_net")} and set(got.values()) == {1}
    metrics = json.loads((net / "random_de_k2" / "metrics.json").read_text())
    adapt = sorted((r["run"], r["ua"]["adapt_net"]) for r in recs if "adapt_net" in r["ua"] and r["protocol"] == "random")
    assert [u for _, u in adapt] == pytest.approx([run["test"]["de"]["ua"] for run in metrics["runs"]])
    (out / "transfer.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
    joined = [r for r in fs.records([out / "results.jsonl", out / "transfer.jsonl"]) if r["target"] == "de"
              and len(r["sources"]) == 2]
    assert joined and all({"single_logreg", "adapt_net", "proto_net", "head_net"} <= set(r["ua"]) for r in joined)
    assert fs.main([*args]) == 0  # resumes: nothing appended
    assert len(fs.records(net / "representations_de.jsonl")) == 5


def test_no_utterance_of_the_target_reaches_the_source_model(tmp_path, monkeypatch):
    """The source model of T is the same whatever T's utterances: one model serves every seed, fold and K of T."""
    import torch

    from train.repeated_runs import run_experiment

    quick_configs(monkeypatch, epochs=2)
    weights = []
    for shuffled in (False, True):
        root = tmp_path / f"stores{int(shuffled)}"
        for i, lang in enumerate(fs.LANGUAGES):
            make_stores(root, dataset=f"synth_{lang}", language=lang, per_class=6, speakers=3, seed=i)
        if shuffled:  # de drawn again with another seed: other features and labels, the same emotions and size
            make_stores(root, dataset="synth_de", language="de", per_class=6, speakers=3, seed=7)
        args = argparse.Namespace(features=["mfcc", "ge2e"], features_dir=str(root), transfer_net=str(root / "net"))
        config = fs.source_config(args, "de")
        run_experiment(config, log=lambda s: None)
        weights.append(torch.load(Path(config.out) / "checkpoints" / "run0.pt", weights_only=False)["model"])
    assert (tmp_path / "stores0" / "synth_de" / "train.h5").read_bytes() != (tmp_path / "stores1" / "synth_de" / "train.h5").read_bytes()
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_the_multidomain_models_train_the_curve_with_the_studys_draws_and_join_its_records(stores, tmp_path, monkeypatch):
    """--multidomain: the learning curve of each target (the multi-domain models with its K shots, random protocol,
    the study's seeds); md_<model> joins the study's record of the same run and K; the curve's single runs must be
    single_net's, else the report stops naming them."""
    quick_configs(monkeypatch)
    monkeypatch.setattr(fs, "MULTIDOMAIN", ("base", "sb"))
    out, net, md = tmp_path / "study", tmp_path / "net", tmp_path / "md"
    args = study_args(stores, out=out, targets="de", seeds=2, pseudo_seeds=1, shots=2, protocols="random", network=net,
                      multidomain=md)
    assert fs.main(args) == 0
    config = json.loads((md / "de" / "k2" / "sb" / "config.json").read_text())
    assert sorted(config["domains"]) == ["de=synth_de", "en=synth_en", "it=synth_it"]
    assert config["few_shot"] == {"de": 2} and config["model"] == "sb" and config["protocol"] == "random"
    recs = fs.multidomain_records(md)
    got = sorted((r["run"], m) for r in recs for m in r["ua"])
    assert got == [(run, m) for run in (0, 1) for m in ("curve_single", "md_base", "md_sb")]
    metrics = json.loads((md / "de" / "k2" / "sb" / "metrics.json").read_text())
    assert [r["ua"]["md_sb"] for r in sorted(recs, key=lambda r: r["run"]) if "md_sb" in r["ua"]] == pytest.approx(
        [run["test"]["de"]["ua"] for run in metrics["runs"]])
    report = tmp_path / "report.md"
    import train.plots

    drawn, draw = [], train.plots.plot_differences
    monkeypatch.setattr(train.plots, "plot_differences", lambda panels, *a, **k: drawn.append(panels) or draw(panels, *a, **k))
    assert fs.main([*args, "--report", str(report)]) == 0
    text = report.read_text()
    assert "md_base − single" in text and "md_sb − single" in text and "curve_single" not in text
    joined = [r for r in fs.records([out / "results.jsonl", out / "network.jsonl", out / "multidomain.jsonl"])
              if r["target"] == "de" and len(r["sources"]) == 2]
    assert len(joined) == 2 and all({"single_logreg", "single_net", "md_base", "md_sb"} <= set(r["ua"]) for r in joined)
    # the plot beside the report: each model minus single on the table's runs, with its interval
    assert report.with_name("report_beside.png").stat().st_size > 1000
    [panels] = drawn
    [(title, groups)] = panels.items()
    assert title == "The multi-domain models trained with the K shots" and list(groups) == ["de K=2\nrandom, n=2"]
    single = fs.best_single(fs.with_every_head(joined), fs.HEADS)
    for m in ("md_base", "md_sb"):
        mean, low, high = groups["de K=2\nrandom, n=2"][m]
        assert mean == pytest.approx(np.mean([r["ua"][m] - r["ua"][single] for r in joined])) and low <= mean <= high
        assert f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]" in text
    # --first-seed: seed 1 alone, in a folder of its own, is run 1 of the curve above (its split, draws and
    # initialisation), recorded as run 1
    later = tmp_path / "md_later"
    assert fs.main(study_args(stores, out=out, targets="de", seeds=1, first_seed=1, pseudo_seeds=1, shots=2,
                              protocols="random", multidomain=later)) == 0
    assert json.loads((later / "de" / "k2" / "sb" / "config.json").read_text())["first_seed"] == 1
    assert sorted((r["run"], m, v) for r in fs.multidomain_records(later) for m, v in r["ua"].items()) == sorted(
        (r["run"], m, v) for r in recs if r["run"] == 1 for m, v in r["ua"].items())
    # a curve trained on other draws is not paired with the study: the curve's single differs from single_net
    run0 = md / "de" / "k2" / "single" / "runs" / "run0.json"
    record = json.loads(run0.read_text())
    record["test"]["predictions"] = [record["test"]["labels"][0]] * len(record["test"]["labels"])
    run0.write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="curve's single run 0 of de at K = 2"):
        fs.main([*args, "--report", str(report)])


def test_the_multidomain_models_under_the_speaker_protocol_train_on_the_studys_folds(stores, tmp_path, monkeypatch):
    """--multidomain with the speaker protocol: the curve at the speaker part's K, on the study's folds (the target's
    test speakers unseen), into speaker_<T>; its records join the study's speaker-protocol records of the same fold."""
    quick_configs(monkeypatch)
    monkeypatch.setattr(fs, "MULTIDOMAIN", ("sb",))
    out, net, md = tmp_path / "study", tmp_path / "net", tmp_path / "md"
    args = study_args(stores, out=out, targets="de", pseudo_seeds=1, protocols="speaker", folds=3, speaker_shots=2,
                      network=net, multidomain=md)
    assert fs.main(args) == 0
    with pytest.raises(SystemExit, match="no pseudo-target runs of de to choose its transfer method on"):
        fs.main([*args, "--report", str(tmp_path / "report.md")])  # the method choice needs the random protocol's
    random_part = ["--protocols", "random", "--seeds", "1", "--shots", "2"]
    assert fs.main([*args, *random_part]) == 0
    config = json.loads((md / "speaker_de" / "k2" / "sb" / "config.json").read_text())
    assert config["protocol"] == "speaker" and config["folds"] == 3 and config["few_shot"] == {"de": 2}
    recs = fs.multidomain_records(md)
    assert sorted((r["protocol"], r["run"], m) for r in recs for m in r["ua"]) == [
        ("random", 0, "curve_single"), ("random", 0, "md_sb"),
        *(("speaker", run, m) for run in (0, 1, 2) for m in ("curve_single", "md_sb"))]
    report = tmp_path / "report.md"
    assert fs.main([*args, "--report", str(report)]) == 0
    assert re.search(r"^\| speaker \| de \| 2 \| 3 \| single_\w+ \(\d\.\d{3}\) \| \d\.\d{3}: ", report.read_text(), re.M)
    joined = [r for r in fs.records([out / "results.jsonl", out / "network.jsonl", out / "multidomain.jsonl"])
              if r["protocol"] == "speaker" and r["target"] == "de" and len(r["sources"]) == 2]
    assert sorted(r["run"] for r in joined) == [0, 1, 2] and all({"single_net", "md_sb"} <= set(r["ua"]) for r in joined)


def test_the_network_runs_and_multidomain_pieces_run_as_dask_tasks_and_nothing_is_fitted_here(stores, tmp_path, monkeypatch):
    """--workers 2: single_net's configurations, the source models and adapt_net configurations of --transfer-net
    and every (target, K, model) piece of the curves run in Dask workers' train subprocesses (their folders hold
    the cell's configuration and log); the curves written afterwards in this process find all their runs finished
    (fitting here would raise), and the records join as the serial path's do."""
    import train.repeated_runs

    quick_configs(monkeypatch)
    monkeypatch.setattr(fs, "MULTIDOMAIN", ("sb",))

    def no_fitting(*a, **k):
        raise AssertionError("a run was fitted in this process")

    monkeypatch.setattr(train.repeated_runs, "fit_run", no_fitting)
    out, net, md, transfer = tmp_path / "study", tmp_path / "net", tmp_path / "md", tmp_path / "transfer"
    args = study_args(stores, out=out, targets="de", seeds=1, pseudo_seeds=1, shots=2, protocols="random", network=net,
                      multidomain=md, transfer_net=transfer)
    assert fs.main([*args, "--workers", "2"]) == 0
    for folder in (net / "random_de_k2", net / "random_it_k2", md / "de" / "k2" / "single", md / "de" / "k2" / "sb",
                   transfer / "source_de", transfer / "random_de_k2"):
        assert (folder / "cell.json").is_file() and (folder / "train.log").is_file()  # run by a worker
    assert sorted((r["run"], m) for r in fs.transfer_net_records(transfer) for m in r["ua"]) == [
        (0, "adapt_net"), (0, "head_net"), (0, "proto_net")]
    assert (md / "de" / "curve.md").is_file()
    recs = fs.multidomain_records(md)
    assert sorted((r["run"], m) for r in recs for m in r["ua"]) == [(0, "curve_single"), (0, "md_sb")]
    assert fs.main([*args, "--report", str(tmp_path / "report.md")]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "md_sb − single" in text and "| single_net |" in text


FOREIGN_RUN = {"run": 0, "fingerprint": {"config": {"model": "sb", "epochs": 99}}}


def foreign_run(folder: Path) -> Path:
    """A run of another configuration in the run folder ``folder`` (``runs/run0.json``): a cell there must fail
    rather than overwrite it."""
    run = folder / "runs" / "run0.json"
    run.parent.mkdir(parents=True)
    run.write_text(json.dumps(FOREIGN_RUN))
    return run


def test_a_failed_multidomain_piece_is_reported_and_only_its_curve_is_not_written(stores, tmp_path, monkeypatch, capsys):
    """A piece whose folder holds runs of another configuration fails (exit 5, naming it) and is not overwritten;
    its curve (de) is not written, the other target's (it) is."""
    quick_configs(monkeypatch)
    monkeypatch.setattr(fs, "MULTIDOMAIN", ("sb",))
    md = tmp_path / "md"
    run = foreign_run(md / "de" / "k2" / "sb")
    args = study_args(stores, out=tmp_path / "study", targets="de,it", seeds=1, pseudo_seeds=1, shots=2, protocols="random",
                      multidomain=md, workers=1)
    assert fs.main(args) == EXIT_PARTIAL
    assert "FAILED md random de k2 sb" in capsys.readouterr().out
    assert json.loads(run.read_text()) == FOREIGN_RUN  # not overwritten
    assert not (md / "de" / "curve.md").exists() and (md / "it" / "curve.md").is_file()


def test_a_target_whose_source_model_failed_on_a_worker_is_left_out_of_the_transfer_methods(stores, tmp_path, monkeypatch,
                                                                                            capsys):
    """--transfer-net with --workers: a source model whose folder holds a run of another configuration fails (exit
    5, naming it; the run is not overwritten); nothing is built on it (no representations, no adapt_net), and the
    other target's methods are."""
    quick_configs(monkeypatch)
    transfer = tmp_path / "transfer"
    run = foreign_run(transfer / "source_de")
    args = study_args(stores, out=tmp_path / "study", targets="de,it", seeds=1, pseudo_seeds=0, shots=2, protocols="random",
                      transfer_net=transfer, workers=1)
    assert fs.main(args) == EXIT_PARTIAL
    assert "FAILED source model de" in capsys.readouterr().out
    assert json.loads(run.read_text()) == FOREIGN_RUN  # not overwritten
    assert not (transfer / "representations_de.jsonl").exists() and not (transfer / "random_de_k2").exists()
    assert {(r["target"], m) for r in fs.transfer_net_records(transfer) for m in r["ua"]} == {
        ("it", "adapt_net"), ("it", "head_net"), ("it", "proto_net")}


def test_the_multidomain_pieces_are_the_curves_runs_under_both_protocols(stores, tmp_path):
    """The cells of --workers: per curve, single on the target alone then each model on all three languages, each
    K once; the random protocol's runs are its seeds, the speaker protocol's its folds; the folders are the curve's."""
    args = argparse.Namespace(features_dir=str(stores), features=["mfcc", "ge2e"], targets=["de"], seeds=4, first_seed=0, shots=[5, 10, 5],
                              folds=3, speaker_shots=10, protocols=["random", "speaker"], multidomain=str(tmp_path / "md"))
    cells = fs.multidomain_cells(fs.multidomain_plan(args), fs.MULTIDOMAIN)
    got = {Path(folder).name: [(c.name, c.languages, c.runs, Path(c.out).relative_to(folder).as_posix()) for c in pieces]
           for folder, pieces in cells.items()}
    md = list(fs.MULTIDOMAIN)
    assert got["de"] == [(f"md random de k{k} {m}", ("de",) if m == "single" else ("de", "it", "en"), 4, f"k{k}/{m}")
                         for k in (5, 10) for m in ["single", *md]]
    assert got["speaker_de"] == [(f"md speaker de k10 {m}", ("de",) if m == "single" else ("de", "it", "en"), 3, f"k10/{m}")
                                 for m in ["single", *md]]
    assert all(Path(c.out).is_absolute() and Path(c.config.features_dir).is_absolute() for p in cells.values() for c in p)


def test_models_trains_only_the_named_multidomain_models_and_refuses_an_unknown_one(stores, tmp_path, capsys):
    """--models: the pieces are single and the named models only, in the curve's folders; an unknown name stops the
    study with one line naming the option (exit status 2)."""
    args = argparse.Namespace(features_dir=str(stores), features=["mfcc", "ge2e"], targets=["en"], seeds=2, first_seed=0, shots=[10],
                              folds=3, speaker_shots=10, protocols=["speaker"], multidomain=str(tmp_path / "md"))
    [pieces] = fs.multidomain_cells(fs.multidomain_plan(args), ["mmoe", "nas"]).values()
    assert [(c.name, Path(c.out).parent.name) for c in pieces] == [
        (f"md speaker en k10 {m}", "k10") for m in ("single", "mmoe", "nas")]
    with pytest.raises(SystemExit) as exc:
        fs.main([*study_args(stores, out=tmp_path / "out", multidomain=tmp_path / "md"), "--models", "mmoe,moe"])
    assert exc.value.code == 2
    assert "--models: moe: not a multi-domain model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_negative_number_of_workers_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        fs.main(["--workers", "-1"])
    assert exc.value.code == 2 and "--workers: -1 is below 0" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--first-seed", "-1"], "--first-seed: -1 is below 0"),
    (["--first-seed", "3", "--network", "net"], "--first-seed: not with --network or --transfer-net"),
    (["--first-seed", "3", "--transfer-net", "tn"], "--first-seed: not with --network or --transfer-net")])
def test_a_first_seed_is_refused_below_0_and_with_the_parts_numbered_from_seed_0(options, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        fs.main(["--out", str(tmp_path / "out"), *options])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_run_of_another_configuration_under_the_multidomain_folder_is_refused(tmp_path):
    run = tmp_path / "de" / "k5" / "sb" / "runs" / "run0.json"
    run.parent.mkdir(parents=True)
    config = {"domains": ["de=emodb", "it=emovo"], "few_shot": {"de": 5}, "protocol": "random", "first_seed": 0, "model": "sb"}
    run.write_text(json.dumps({"run": 0, "fingerprint": {"config": config}}))
    with pytest.raises(ValueError, match="not a run of the learning curve of de at K = 5 with sb"):
        fs.multidomain_records(tmp_path)


def test_a_method_with_fewer_runs_so_far_is_left_out_of_its_row_rather_than_shrinking_the_others():
    """beside_choice while curves are still running: md_a and md_b have runs 0-2, md_c only run 0, md_d runs 0-3;
    the row shows md_a, md_b and md_d on runs 0-2 (n = 3 shows the most values), md_c as —."""
    def rec(run, **ua):
        return {"protocol": "random", "target": "de", "sources": ["it", "en"], "k": 5, "run": run,
                "ua": {"single_logreg": 0.5, "chosen": 0.7 + run / 100, **ua}}

    recs = [rec(0, md_a=0.6, md_b=0.4, md_c=0.9, md_d=0.5), rec(1, md_a=0.6, md_b=0.4, md_d=0.5),
            rec(2, md_a=0.6, md_b=0.4, md_d=0.5), rec(3, md_d=0.5)]
    lines = fs.beside_choice(recs, ["de"], ["md_a", "md_b", "md_c", "md_d"], "chosen", "T")
    row = [line for line in lines if line.startswith("| random | de | 5 |")]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[3:5] == ["3", "single_logreg (0.500)"]
    assert cells[5] == "0.600: +0.100 [+0.100, +0.100]" and cells[6] == "0.400: -0.100 [-0.100, -0.100]"
    assert cells[7] == "—" and cells[8].startswith("0.500: +0.000")
    assert cells[9].startswith("0.710: +0.210")  # the chosen method on runs 0-2
    # once md_c has its runs, the row shows it too
    recs[1]["ua"]["md_c"] = recs[2]["ua"]["md_c"] = 0.9
    row = [line for line in fs.beside_choice(recs, ["de"], ["md_a", "md_b", "md_c", "md_d"], "chosen", "T")
           if line.startswith("| random | de | 5 |")][0]
    assert "—" not in row and "0.900: +0.400" in row
