"""Few-shot training of one language (--few-shot) and the learning curve (--learning-curve, train/studies/learning_curve.py)."""

import csv
import json
from collections import Counter

import pytest
from click.testing import CliRunner

import train.fit_run
from train.cli import main
from train.protocol import few_shot
from tests._train_helpers import make_stores

IT = ("neutral", "happy", "angry", "sad", "fear")


def test_few_shot_keeps_at_most_k_per_emotion_nested_and_seeded():
    emotions = ["a"] * 10 + ["b"] * 3 + ["c"] * 7
    indices = list(range(0, 20, 1))[::-1]  # order of the split does not matter
    kept = {k: few_shot(indices, emotions, k, seed=4) for k in (1, 2, 5, 100)}
    assert Counter(emotions[i] for i in kept[5]) == {"a": 5, "b": 3, "c": 5}
    assert sorted(kept[100]) == list(range(20)) and kept[5] == sorted(kept[5])
    for small, large in ((1, 2), (2, 5), (5, 100)):  # the utterances of a smaller K stay in a larger one
        assert set(kept[small]) <= set(kept[large])
    assert few_shot(indices, emotions, 2, seed=4) == kept[2]
    assert any(few_shot(indices, emotions, 2, seed=s) != kept[2] for s in range(5, 10))
    assert set(few_shot([0, 1, 2, 11], emotions, 2, seed=0)) in ({0, 1, 11}, {0, 2, 11}, {1, 2, 11})  # only those given


@pytest.fixture()
def two_stores(tmp_path):
    root = tmp_path / "features"
    make_stores(root, dataset="synth", language="de", per_class=12, speakers=3)
    make_stores(root, dataset="synth_it", language="it", emotions=IT, per_class=12, speakers=3, seed=1)
    return root


@pytest.mark.slow
def test_learning_curve_fits_every_model_at_every_k_and_compares_with_single(two_stores, tmp_path, monkeypatch):
    drawn = []

    def spy(indices, emotions, k, seed):
        out = few_shot(indices, emotions, k, seed)
        drawn.append((k, seed, Counter(emotions[i] for i in out)))
        return out

    monkeypatch.setattr(train.fit_run, "few_shot", spy)
    out = tmp_path / "curve"
    args = ["--domains", "de=synth,it=synth_it", "--features-dir", str(two_stores), "--epochs", "1", "--seeds", "2",
            "--model", "base", "--learning-curve", "it", "--shots", "all,0,2", "--out", str(out), "--quiet", "--no-checkpoints"]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    # single (added) and base at K = 2 draw 2 per emotion of it, for seeds 0 and 1; nothing at 0 (zero-shot) or "all"
    assert sorted((k, s) for k, s, _ in drawn) == [(2, 0), (2, 0), (2, 1), (2, 1)]
    assert all(c == {e: 2 for e in IT} for _, _, c in drawn)
    assert json.loads((out / "k2" / "single" / "config.json").read_text())["domains"] == ["it=synth_it"]
    assert json.loads((out / "k2" / "base" / "config.json").read_text())["few_shot"] == {"it": 2}
    assert json.loads((out / "k0" / "base" / "config.json").read_text())["few_shot"] == {"it": 0}
    assert json.loads((out / "all" / "base" / "config.json").read_text())["few_shot"] == {}
    assert not (out / "k0" / "single").exists()  # single cannot label a language it never saw
    table = json.loads((out / "curve.json").read_text())
    assert table["shots"] == ["k0", "k2", "all"] and list(table["models"]) == ["single", "base"]
    for shot in ("k2", "all"):
        for model in ("single", "base"):  # the curve holds what the run folders measured
            metrics = json.loads((out / shot / model / "metrics.json").read_text())
            assert table["models"][model][shot]["ua"] == [r["test"]["it"]["ua"] for r in metrics["runs"]]
        base, single = table["models"]["base"][shot]["ua"], table["models"]["single"][shot]["ua"]
        assert table["models"]["base"][shot]["vs_single"]["diff"] == pytest.approx((base[0] - single[0] + base[1] - single[1]) / 2)
    assert "k0" not in table["models"]["single"] and "vs_single" not in table["models"]["base"]["k0"]
    rows = list(csv.DictReader((out / "curve.csv").open()))
    assert [(r["shots"], r["model"]) for r in rows] == [("k0", "base"), ("k2", "single"), ("k2", "base"), ("all", "single"),
                                                        ("all", "base")]
    text = (out / "curve.md").read_text()
    assert "| 2 |" in text and "| 0 |" in text and "zero-shot" in text and (out / "curve.png").stat().st_size > 1000
    # a rerun resumes every run folder instead of fitting again
    drawn.clear()
    r = CliRunner().invoke(main, [a for a in args if a != "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0 and r.output.count("finished earlier") == 10 and not drawn, r.output


def test_few_shot_refusals(two_stores, tmp_path):
    common = ["--domains", "de=synth,it=synth_it", "--features-dir", str(two_stores), "--epochs", "1", "--seeds", "1", "--quiet",
              "--model", "sb", "--out", str(tmp_path / "x")]
    for extra, words in ((["--few-shot", "it"], "--few-shot"), (["--few-shot", "it=-1"], "--few-shot"),
                         (["--few-shot", "fr=3"], "'fr' is not among the domains"),
                         (["--few-shot", "it=3", "--refit"], "refit"),
                         (["--few-shot", "it=0"], "zero-shot"),
                         (["--learning-curve", "it", "--shots", "0,5"], "base"),
                         (["--learning-curve", "fr"], "fr"),
                         (["--learning-curve", "it", "--shots", "5,x"], "--shots"),
                         (["--learning-curve", "it", "--few-shot", "it=3"], "--learning-curve")):
        r = CliRunner().invoke(main, [*common, *extra])
        assert r.exit_code == 2 and words in r.output, (extra, r.output)


def test_every_k_trains_for_the_steps_of_the_whole_split(two_stores, tmp_path, monkeypatch):
    # an epoch of a few-shot run has as many balanced batches as one over the unlimited training split would
    import train.network_trainer

    batches = []
    original = train.network_trainer.ClassBalancedBatchSampler

    class Spy(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            batches.append((len(self.pools), self.n_batches))

    monkeypatch.setattr(train.network_trainer, "ClassBalancedBatchSampler", Spy)
    common = ["--domains", "it=synth_it", "--features-dir", str(two_stores), "--epochs", "1", "--seeds", "1", "--quiet", "--per-class", "2",
              "--no-checkpoints"]
    for extra in ([], ["--few-shot", "it=2"]):
        r = CliRunner().invoke(main, [*common, *extra, "--out", str(tmp_path / str(len(extra)))], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    (groups_all, n_all), (groups_few, n_few) = batches
    assert groups_all == groups_few == 5 and n_few == n_all > 1  # 10 utterances alone would make one batch


def test_zero_shot_uses_no_target_label_and_scores_the_shared_emotions_only(two_stores, tmp_path):
    # it has "fear", de does not: zero-shot it is tested on its neutral, happy, angry and sad utterances, and
    # fear is never predicted; its validation utterances do not choose the epoch
    out = tmp_path / "zero"
    r = CliRunner().invoke(main, ["--domains", "de=synth,it=synth_it", "--features-dir", str(two_stores), "--epochs", "2",
                                  "--seeds", "1", "--model", "base", "--few-shot", "it=0", "--out", str(out), "--quiet",
                                  "--no-checkpoints"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    run = json.loads((out / "metrics.json").read_text())["runs"][0]
    test = run["test"]["it"]
    fear = test["classes"].index("fear")
    assert test["recall"]["fear"] is None and sum(test["confusion"][fear]) == 0
    assert sum(row[fear] for row in test["confusion"]) == 0  # never predicted
    assert test["n"] == sum(map(sum, test["confusion"])) > 0 and all(v is not None for k, v in test["recall"].items() if k != "fear")
    assert "it" not in run["valid"] and "de" in run["valid"]

    def no_nan(value):
        raise AssertionError(f"metrics.json holds {value}")

    summary = json.loads((out / "metrics.json").read_text(), parse_constant=no_nan)["domains_summary"]["it"]
    assert summary["recall"]["fear"] is None and summary["recall"]["sad"]["n"] == 1  # fear was never tested


def test_a_zero_shot_languages_unseen_classes_are_masked_in_the_shared_tower_only():
    import torch

    from train.config import ExperimentConfig
    from train.model_io import Batch, DomainInfo
    from train.models import build_model

    kinds, dims = {"ge2e": "embedding"}, {"ge2e": 3}
    domains = [DomainInfo("de", ["angry", "sad"], kinds, dims), DomainInfo("it", ["angry", "fear", "sad"], kinds, dims)]
    model = build_model("base", ExperimentConfig(domains=["de", "it"], model="base", few_shot={"it": 0}), domains).eval()
    batch = Batch({}, {}, {"ge2e": torch.randn(4, 3)}, torch.tensor([0, 1, 0, 0]), torch.tensor([0, 0, 1, 1]), list("abcd"))
    logits = model(batch).logits
    assert torch.isfinite(logits[:2, :2]).all() and torch.isinf(logits[:2, 2]).all()  # de: 2 classes, padding
    assert torch.isinf(logits[2:, 1]).all() and torch.isfinite(logits[2:, [0, 2]]).all()  # it: fear masked
    full = build_model("base", ExperimentConfig(domains=["de", "it"], model="base"), domains).eval()
    assert torch.isfinite(full(batch).logits[2:]).all()


def test_curve_plot_draws_the_differences_from_single_beside_the_curve(tmp_path):
    from matplotlib.image import imread

    from train.plots import plot_curve

    lines = {"Single": [None, (0.6, 0.5, 0.7), (0.9, 0.85, 0.95)], "Base": [(0.4, 0.3, 0.5), (0.62, 0.5, 0.74), None]}
    both = plot_curve(["0", "5", "all"], lines, tmp_path / "both.png", "K", "UA",
                      differences={"Base": [None, (0.02, -0.1, 0.14), None]}, difference_label="Base - single")
    alone = plot_curve(["0", "5", "all"], lines, tmp_path / "alone.png", "K", "UA")
    empty = plot_curve(["0", "5", "all"], lines, tmp_path / "empty.png", "K", "UA", differences={"Base": [None] * 3})
    assert imread(both).shape[1] == 2 * imread(alone).shape[1]  # a second panel of the same size
    assert imread(empty).shape == imread(alone).shape  # no difference to draw: no empty panel


@pytest.mark.parametrize("keep_valid", [False, True])
def test_the_target_contributes_k_labelled_utterances_per_emotion_to_training_and_selection(
        two_stores, tmp_path, monkeypatch, keep_valid):
    # every labelled utterance of the target that a fit trains on or chooses by (the epoch; a head's C and
    # temperature, fitted on its validation rows) is one of its K shots; the old protocol (--few-shot-valid) chooses the epoch on its whole
    # validation split too, and fails the count
    import train.network_trainer

    k, touched, selected_rows = 2, {"train": set(), "select": set()}, []

    def target_ids(dataset):  # the synthetic stores name utterances <language>_<emotion>_<n>
        return {u for p in getattr(dataset, "datasets", [dataset]) for u in p.utt_ids if u.startswith("it_")}

    original_fit, original_select = train.network_trainer.Trainer.fit, train.fit_run.select_head

    def fit_spy(self, train_set, valid, test):
        touched["train"].update(target_ids(train_set))
        touched["select"].update(target_ids(valid))
        return original_fit(self, train_set, valid, test)

    def select_spy(config, x, y, groups=None, seed=0):
        selected_rows.append(len(y))
        return original_select(config, x, y, groups, seed)

    monkeypatch.setattr(train.network_trainer.Trainer, "fit", fit_spy)
    monkeypatch.setattr(train.fit_run, "select_head", select_spy)
    out = tmp_path / "curve"
    args = ["--domains", "de=synth,it=synth_it", "--features-dir", str(two_stores), "--epochs", "2", "--seeds", "1",
            "--model", "base,logreg", "--learning-curve", "it", "--shots", str(k), "--out", str(out), "--quiet",
            "--no-checkpoints", *(["--few-shot-valid"] if keep_valid else [])]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    per_emotion = Counter(u.split("_")[1] for u in touched["train"] | touched["select"])
    assert set(per_emotion) == set(IT) and selected_rows == [k * len(IT)]  # the head's C: CV inside the K shots
    head_run = json.loads((out / "k2" / "logreg" / "metrics.json").read_text())["runs"][0]  # valid: its temperature
    if keep_valid:
        assert max(per_emotion.values()) > k and touched["select"] and "it" in head_run["valid"]
    else:
        assert max(per_emotion.values()) <= k, per_emotion
        assert not touched["select"] and "it" not in head_run["valid"]
    table = json.loads((out / "curve.json").read_text())
    assert list(table["models"]) == ["single", "base", "logreg"]
    assert json.loads((out / "k2" / "logreg" / "config.json").read_text())["domains"] == ["it=synth_it"]


def test_few_shot_runs_of_the_old_protocol_do_not_resume_as_the_new_one():
    # the fingerprint of a few-shot run says that the K shots were all of the target's labels; a run folder fitted
    # with the target's validation split (before, or --few-shot-valid) has another one; runs without --few-shot
    # keep theirs (their folders still resume)
    from train.config import ExperimentConfig
    from train.run_records import config_fingerprint

    def fp(**kw):
        return config_fingerprint(ExperimentConfig(domains=["de", "it"], model="sb", **kw))

    plain, new, old = fp(), fp(few_shot={"it": 5}), fp(few_shot={"it": 5}, few_shot_valid=True)
    assert new != old and "few_shot_valid" not in plain and "few_shot_labels" not in plain
    assert {k: v for k, v in old.items() if k != "few_shot_valid"} == {k: v for k, v in new.items() if k != "few_shot_labels"}
