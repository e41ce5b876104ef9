"""The experiment grid (train/studies/grid.py) and the paper's tables built from run folders (train/studies/paper_tables.py)."""

import csv
import json
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests._train_helpers import make_stores
from train.config import ExperimentConfig
from train.studies.grid import (GridOptions, cell_state, default_threads, main, offered_models, parse_domains, plan_cells,
                                run_cell, run_grid)
from train.studies.paper_tables import build_tables, read_metrics, write_tables

# ------------------------------------------------------------------------------------ tables from fake folders


def _metrics(values: dict[str, list[tuple[float, float]]], features=("ge2e", "mfcc"), protocol="random", model="single",
             aux=True, epochs=3) -> dict:
    """A metrics.json as train/run_folder.py writes it: ``values`` maps language -> [(wa, ua) per run]."""
    runs = len(next(iter(values.values())))
    summary = {}

    def stat(v):
        return {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}

    for lang, pairs in values.items():
        wa, ua = [p[0] for p in pairs], [p[1] for p in pairs]
        summary[lang] = {"dataset": f"ds_{lang}", "classes": ["angry", "sad"], "test_wa": stat(wa), "test_ua": stat(ua),
                         "valid_ua": stat(ua), "recall": {}, "confusion_sum": [[1, 0], [0, 1]]}
    return {
        "protocol": protocol, "runs_are": "seeds", "model": model, "domains": [f"{k}=ds_{k}" for k in values],
        "features": list(features), "aux": aux, "domains_summary": summary,
        "runs": [{"run": r, "seed": r, "fold": None, "test_speakers": {}, "best_epoch": 1, "seconds": 1.0,
                  "test": {lang: {"wa": values[lang][r][0], "ua": values[lang][r][1]} for lang in values},
                  "valid": {}, "history": [{"epoch": e + 1} for e in range(epochs)]} for r in range(runs)],
    }


def _write(folder, metrics):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))


def _csv_rows(root):
    return {(r["table"], r["row"], r["language"]): r for r in csv.DictReader((root / "tables.csv").open())}


def test_tables_hold_the_values_of_the_metrics_files(tmp_path):
    rng = np.random.default_rng(3)

    def pairs(n):
        return [(float(a), float(b)) for a, b in rng.uniform(0.3, 0.9, size=(n, 2))]

    expected = {}  # (table, row, language) -> [(wa, ua)] over every run of the experiment's folders

    def experiment(key_list, folders, langs, **kw):
        got = {lang: [] for lang in langs}
        for folder, runs in folders:
            vals = {lang: pairs(runs) for lang in langs}
            _write(folder, _metrics(vals, **kw))
            for lang in langs:
                got[lang] += vals[lang]
        for table, row in key_list:
            for lang in langs:
                expected[(table, row, lang)] = got[lang]

    for lang in ("de", "en"):
        experiment([("table2", "random"), ("table3", "single"), ("table4", "aux"), ("figure4a", "all")],
                   [(tmp_path / "single" / lang / "random" / f"seed{s}", 1) for s in range(3)], [lang])
        experiment([("table2", "speaker"), ("table3_speaker", "single")], [(tmp_path / "single" / lang / "speaker", 4)], [lang], protocol="speaker")
        experiment([("table4", "no_aux")], [(tmp_path / "no_aux" / lang / f"seed{s}", 1) for s in range(3)], [lang], aux=False)
        for f in ("ge2e", "mfcc"):
            experiment([("figure4a", f)], [(tmp_path / f"only_{f}" / lang / f"seed{s}", 1) for s in range(2)], [lang], features=[f])
    for model in ("sb", "nas"):
        experiment([("table3", model)], [(tmp_path / "multi" / model / f"seed{s}", 1) for s in range(2)], ["de", "en"], model=model)
    # a cell that failed half-way (unreadable metrics) and one that has not run: they contribute nothing
    (tmp_path / "no_aux" / "de" / "seed3").mkdir(parents=True)
    (tmp_path / "no_aux" / "de" / "seed3" / "metrics.json").write_text('{"runs": [')

    tables = write_tables(tmp_path, skipped_models={"omoe": "not offered by train --model"})
    rows = _csv_rows(tmp_path)
    assert set(rows) == set(expected)
    for key, vals in expected.items():
        wa, ua = np.array([v[0] for v in vals]), np.array([v[1] for v in vals])
        row = rows[key]
        assert float(row["ua_mean"]) == pytest.approx(ua.mean(), abs=1e-15), key
        assert float(row["wa_mean"]) == pytest.approx(wa.mean(), abs=1e-15), key
        assert float(row["ua_std"]) == pytest.approx(ua.std(ddof=1), abs=1e-15), key
        assert int(row["runs"]) == len(vals)
    # an experiment of one folder reports exactly that file's own summary
    spk = json.loads((tmp_path / "single" / "de" / "speaker" / "metrics.json").read_text())["domains_summary"]["de"]
    assert tables.table2[("de", "speaker")].ua.mean == spk["test_ua"]["mean"]
    assert tables.table2[("de", "speaker")].wa.std == spk["test_wa"]["std"]
    md = (tmp_path / "tables.md").read_text()
    r = tables.table3[("nas", "en")]
    assert "| nas | " in md and f"{r.ua.mean:.3f} ± {r.ua.std:.3f} ({r.ua.n}×3)" in md
    assert "omoe (not offered by train --model)" in md
    assert (tmp_path / "figure4a.png").stat().st_size > 1000
    assert read_metrics(tmp_path / "no_aux" / "de" / "seed3" / "metrics.json") is None


def _record(folder, run: int, utterances: dict[str, list[str]]) -> None:
    """runs/run<k>.json with the test utterances of each language (in the metrics' domain order)."""
    ids, domains = [], []
    for index, lang in enumerate(utterances):
        ids += utterances[lang]
        domains += [index] * len(utterances[lang])
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    (folder / "runs" / f"run{run}.json").write_text(json.dumps({"run": run, "test": {"utt_ids": ids, "domains": domains}}))


def test_table3_pairs_each_model_with_single_on_the_same_runs_under_both_protocols(tmp_path):
    from train.metrics import paired_interval

    rng = np.random.default_rng(5)
    utts = {lang: {s: [f"{lang}_{s}_{i}" for i in range(4)] for s in range(3)} for lang in ("de", "en")}
    single = {lang: rng.uniform(0.4, 0.8, 3) for lang in ("de", "en")}
    multi = {lang: rng.uniform(0.4, 0.8, 3) for lang in ("de", "en")}
    for lang in ("de", "en"):
        for s in range(3):
            folder = tmp_path / "single" / lang / "random" / f"seed{s}"
            m = _metrics({lang: [(0.5, float(single[lang][s]))]})
            m["runs"][0]["seed"] = s
            _write(folder, m)
            _record(folder, 0, {lang: utts[lang][s]})
        folder = tmp_path / "single" / lang / "speaker"  # three folds in one folder
        m = _metrics({lang: [(0.5, float(u)) for u in single[lang]]}, protocol="speaker")
        for r in m["runs"]:
            r["seed"], r["fold"] = 0, r["run"]
        _write(folder, m)
        for r in range(3):
            _record(folder, r, {lang: utts[lang][r]})
    for s in range(3):
        folder = tmp_path / "multi" / "nas" / f"seed{s}"
        m = _metrics({lang: [(0.5, float(multi[lang][s]))] for lang in ("de", "en")}, model="nas")
        m["runs"][0]["seed"] = s
        _write(folder, m)
        # seed 2 of en tested other utterances: not a pair
        _record(folder, 0, {"de": utts["de"][s], "en": utts["en"][s] if s < 2 else ["other"]})
    folder = tmp_path / "multi" / "nas" / "speaker"
    m = _metrics({lang: [(0.5, float(u)) for u in multi[lang]] for lang in ("de", "en")}, model="nas", protocol="speaker")
    for r in m["runs"]:
        r["seed"], r["fold"] = 0, r["run"]
    _write(folder, m)
    for r in range(3):
        _record(folder, r, {lang: utts[lang][r] for lang in ("de", "en")})

    tables = write_tables(tmp_path)
    for protocol in ("random", "speaker"):
        de = tables.paired[(protocol, "nas", "de")]
        assert (de.diff, de.low, de.high) == pytest.approx(paired_interval(list(multi["de"] - single["de"])))
        assert de.n == 3 and de.unpaired == 0
    en = tables.paired[("random", "nas", "en")]
    assert en.n == 2 and en.unpaired == 1 and en.diff == pytest.approx(float(np.mean(multi["en"][:2] - single["en"][:2])))
    assert tables.paired[("speaker", "nas", "en")].n == 3
    assert tables.table3_speaker[("nas", "de")].ua.mean == pytest.approx(float(np.mean(multi["de"])))
    assert tables.table3_speaker[("single", "de")].ua.mean == pytest.approx(float(np.mean(single["de"])))
    md = (tmp_path / "tables.md").read_text()
    assert "Speaker protocol" in md and str(tables.paired[("speaker", "nas", "de")]) in md
    rows = _csv_rows(tmp_path)
    assert float(rows[("table3_speaker", "nas", "de")]["ua_minus_single"]) == pytest.approx(de.diff)
    assert rows[("table3", "nas", "en")]["paired_runs"] == "2"
    assert (tmp_path / "table3.png").stat().st_size > 1000 and "(table3.png)" in md
    shutil.rmtree(tmp_path / "multi")  # without multi-domain runs, no figure of an earlier build stays
    write_tables(tmp_path)
    assert not (tmp_path / "table3.png").exists()


def test_the_papers_order_is_checked_step_by_step_on_paired_runs(tmp_path):
    from train.metrics import paired_interval

    rng = np.random.default_rng(9)
    ua = {m: rng.uniform(0.4, 0.9, 3) for m in ("base", "sb", "nas")}  # omoe and mmoe not run: nas follows sb
    for m in ua:
        for s in range(3):
            folder = tmp_path / "multi" / m / f"seed{s}"
            metrics = _metrics({"de": [(0.5, float(ua[m][s]))]}, model=m)
            metrics["runs"][0]["seed"] = s
            _write(folder, metrics)
            _record(folder, 0, {"de": [f"u{s}_{i}" for i in range(4)]})
    (tmp_path / "multi" / "mmoe").mkdir()  # a folder without runs (a cell not run yet) is no step
    tables = write_tables(tmp_path)
    assert set(tables.steps) == {("random", "base", "sb", "de"), ("random", "sb", "nas", "de")}
    step = tables.steps[("random", "sb", "nas", "de")]
    assert (step.diff, step.low, step.high) == pytest.approx(paired_interval(list(ua["nas"] - ua["sb"]))) and step.n == 3
    md = (tmp_path / "tables.md").read_text()
    assert "base < sb < nas" in md and f"| nas - sb | {step} |" in md and f"| sb - base | {tables.steps[('random', 'base', 'sb', 'de')]} |" in md


def test_a_table_changes_when_a_metrics_file_changes(tmp_path):
    folder = tmp_path / "single" / "de" / "random" / "seed0"
    _write(folder, _metrics({"de": [(0.5, 0.4)]}))
    assert build_tables(tmp_path).table2[("de", "random")].ua.mean == 0.4
    _write(folder, _metrics({"de": [(0.5, 0.7)]}))
    assert build_tables(tmp_path).table2[("de", "random")].ua.mean == 0.7


def test_learning_curves_come_from_their_folders_and_table3s_paired_by_seed(tmp_path):
    from train.metrics import paired_interval

    rng = np.random.default_rng(7)
    ua = {}  # (K, model) -> UA per seed

    def runs(folder_of, k, model, seeds, langs):
        ua[(k, model)] = {s: float(rng.uniform(0.3, 0.9)) for s in seeds}
        for s in seeds:
            m = _metrics({lang: [(0.5, ua[(k, model)][s] if lang == "de" else 0.5)] for lang in langs}, model=model)
            m["runs"][0]["seed"] = s
            _write(folder_of / f"seed{s}", m)

    runs(tmp_path / "curve/de/k0/base", 0, "base", [0, 1, 2], ["de", "en"])
    runs(tmp_path / "curve/de/k2/single", 2, "single", [0, 1, 2], ["de"])
    runs(tmp_path / "curve/de/k2/nas", 2, "nas", [0, 2], ["de", "en"])  # seed 1 not run (yet)
    runs(tmp_path / "single/de/random", None, "single", [0, 1, 2], ["de"])
    runs(tmp_path / "multi/nas", None, "nas", [0, 1, 2], ["de", "en"])
    runs(tmp_path / "multi/sb", None, "sb", [0, 1, 2], ["de", "en"])  # in table 3 but not in the curve

    tables = write_tables(tmp_path)
    curve = tables.curves["de"]
    assert list(tables.curves) == ["de"] and curve["shots"] == ["k0", "k2", "all"]
    assert list(curve["models"]) == ["single", "base", "nas"] and curve["domains"] == ["de=ds_de", "en=ds_en"]
    assert curve["models"]["base"]["k0"]["ua"] == list(ua[(0, "base")].values()) and "vs_single" not in curve["models"]["base"]["k0"]
    paired = curve["models"]["nas"]["k2"]["vs_single"]  # seeds 0 and 2 only
    expected = paired_interval([ua[(2, "nas")][s] - ua[(2, "single")][s] for s in (0, 2)])
    assert (paired["diff"], paired["ci_low"], paired["ci_high"]) == pytest.approx(expected) and paired["runs"] == 2
    at_all = curve["models"]["nas"]["all"]  # table 3's runs
    assert at_all["ua"] == list(ua[(None, "nas")].values()) and at_all["vs_single"]["runs"] == 3
    assert "all" not in curve["models"]["base"]  # base has no table-3 folder here
    written = json.loads((tmp_path / "curve/de/curve.json").read_text())
    assert written == json.loads(json.dumps(curve)) and (tmp_path / "curve/de/curve.png").stat().st_size > 1000
    md = (tmp_path / "tables.md").read_text()
    assert "## Learning curves" in md and "curve/de/curve.png" in md and f"{paired['diff']:+.3f}" in md


def test_table3s_gates_are_pooled_over_the_seed_folders(tmp_path):
    from train.metrics import paired_interval

    rng = np.random.default_rng(11)
    last = {}  # seed -> language -> [mfcc, ge2e] weights at the last epoch
    for seed in range(3):
        m = _metrics({lang: [(0.5, 0.6)] for lang in ("de", "en")}, model="mmoe")
        m["runs"][0]["seed"] = seed
        history = []
        for epoch in (1, 2):
            w = {lang: float(rng.uniform(0.2, 0.8)) for lang in ("de", "en")}
            history.append({"epoch": epoch, "mixing": {"gates": {lang: {"mfcc": w[lang], "ge2e": 1 - w[lang]} for lang in w}}})
        last[seed] = {lang: [w[lang], 1 - w[lang]] for lang in w}
        m["runs"][0]["history"] = history
        m["mixing"] = {"experts": ["mfcc", "ge2e"]}
        _write(tmp_path / "multi" / "mmoe" / f"seed{seed}", m)

    tables = write_tables(tmp_path)
    weights = tables.gates["mmoe"].final_weights()
    assert weights[("en", "ge2e")].mean == pytest.approx(np.mean([last[s]["en"][1] for s in range(3)])) and weights[("en", "ge2e")].n == 3
    rows = list(csv.DictReader((tmp_path / "multi" / "mmoe" / "gates_differ.csv").open()))
    mfcc = next(r for r in rows if r["expert"] == "mfcc")
    expected = paired_interval([last[s]["de"][0] - last[s]["en"][0] for s in range(3)])
    assert (mfcc["language_a"], mfcc["language_b"], mfcc["runs"]) == ("de", "en", "3")
    assert [float(mfcc[k]) for k in ("difference", "ci_low", "ci_high")] == pytest.approx(expected, abs=1e-6)
    assert len(list(csv.DictReader((tmp_path / "multi" / "mmoe" / "gates.csv").open()))) == 3 * 2 * 2 * 2
    md = (tmp_path / "tables.md").read_text()
    assert "**mmoe** (3 seeds)" in md and f"| de | {weights[('de', 'mfcc')]} |" in md and "intervals exclude 0" in md


# ------------------------------------------------------------------------------------ planning


def test_every_model_of_table3_is_offered_and_another_name_is_skipped_with_its_reason():
    assert offered_models(("base", "sb", "omoe", "mmoe", "nas")) == (["base", "sb", "omoe", "mmoe", "nas"], {})
    assert offered_models(("sb", "moe2")) == (["sb"], {"moe2": "not offered by train --model"})


def test_domains_parse_and_refuse_a_language_twice():
    d = parse_domains(["de=emodb:/data/emo:db", "en=demo"])
    assert (d[0].language, d[0].dataset, d[0].root, d[1].root) == ("de", "emodb", "/data/emo:db", None)
    with pytest.raises(Exception, match="given twice"):
        parse_domains(["de=emodb", "de=demo"])
    with pytest.raises(Exception, match="LANG=DATASET"):
        parse_domains(["emodb"])


def test_plan_lists_every_cell_once_with_gpu_resources(tmp_path):
    opts = GridOptions(parse_domains(["de=a", "en=b"]), out=tmp_path, seeds=2, features=["mfcc", "ge2e"], device="cuda")
    cells = plan_cells(opts, ["sb", "nas"])
    names = [c.name for c in cells]
    assert len(names) == len(set(names)) == 2 * (2 + 1 + 2 + 2 * 2) + 2 * (2 + 1)
    speaker = next(c for c in cells if c.name == "multi sb speaker")
    assert speaker.config.protocol == "speaker" and speaker.config.model == "sb" and speaker.out.endswith("multi/sb/speaker")
    assert all(c.gpu for c in cells) and len({c.out for c in cells}) == len(cells)
    nas = next(c for c in cells if c.name == "multi nas seed 1")
    assert nas.config.domains == ["de=a", "en=b"] and nas.config.first_seed == 1 and nas.languages == ("de", "en")
    assert nas.command[:3] == ["train", "--domains", "de=a,en=b"] and "--first-seed" in nas.command
    one = plan_cells(GridOptions(parse_domains(["de=a"]), out=tmp_path, seeds=1, features=["mfcc"]), ["nas"])
    assert [c.name for c in one] == ["single de random seed 0", "single de speaker", "no_aux de seed 0"]


def test_the_curve_part_plans_every_target_and_reuses_table3s_cells_at_all(tmp_path):
    opts = GridOptions(parse_domains(["de=a", "en=b"]), out=tmp_path, seeds=2, features=["mfcc", "ge2e"],
                       parts=("single", "multi", "curve"), shots=(0, 3, None))
    cells = plan_cells(opts, ["base", "nas"])
    names = [c.name for c in cells]
    paper = 2 * 2 + 2 * 2  # single and multi, two seeds each
    per_target = 2 + 2 * 3  # K = 0: base; K = 3: single, base, nas; K = all: table 3's
    assert len(names) == len(set(names)) == len({c.out for c in cells}) == paper + 2 * per_target
    zero = next(c for c in cells if c.name == "curve en k0 base seed 1")
    assert zero.config.few_shot == {"en": 0} and zero.out.endswith("curve/en/k0/base/seed1") and zero.languages == ("de", "en")
    single = next(c for c in cells if c.name == "curve de k3 single seed 0")
    assert single.config.domains == ["de=a"] and single.config.model == "single" and single.config.few_shot == {"de": 3}
    assert next(c for c in cells if c.name == "curve de k3 nas seed 0").config.few_shot == {"de": 3}
    assert not any("k0 nas" in n or "k0 single" in n for n in names)
    alone = plan_cells(replace(opts, parts=("curve",)), ["base", "nas"])  # K = all brings table 3's cells along
    assert {c.name for c in alone} == set(names) and [c.config for c in alone if c.name == "multi nas seed 0"] == \
        [c.config for c in cells if c.name == "multi nas seed 0"]
    r = CliRunner().invoke(main, ["--dry-run", "--parts", "curve", "--models", "sb", "de=a", "en=b"])
    assert r.exit_code == 2 and "--shots" in r.output and "base" in r.output


# ------------------------------------------------------------------------------------ a real tiny grid


@pytest.fixture()
def features(tmp_path):
    root = tmp_path / "features"
    make_stores(root, dataset="sde", language="de", per_class=12, speakers=3, seed=0)
    make_stores(root, dataset="sen", language="en", per_class=12, speakers=3, seed=1)
    return root


def _options(features, out, **kw):
    base = dict(out=out, seeds=1, epochs=1, features_dir=features, models=("sb",), train_args=("--no-checkpoints",))
    return GridOptions(parse_domains(["de=sde", "en=sen"]), **{**base, **kw})


@pytest.mark.slow
def test_tiny_grid_runs_resumes_and_its_tables_match_the_metrics_files(features, tmp_path):
    out = tmp_path / "grid"
    lines = []
    opts = _options(features, out)
    threads = torch.get_num_threads()
    assert run_grid(opts, workers=0, in_process=True, threads=threads + 1, skip_extraction=True,
                    echo=lines.append) == 0, "\n".join(lines)
    assert torch.get_num_threads() == threads  # the cells' thread count does not outlive them
    model = opts.models[0]
    assert any("[1/" in line and " ok " in line for line in lines)
    rows = _csv_rows(out)
    for lang in ("de", "en"):
        folders = {("table2", "random"): f"single/{lang}/random/seed0", ("table2", "speaker"): f"single/{lang}/speaker",
                   ("table4", "no_aux"): f"no_aux/{lang}/seed0", ("figure4a", "mfcc"): f"only_mfcc/{lang}/seed0",
                   ("figure4a", "ge2e"): f"only_ge2e/{lang}/seed0"}
        folders[("table3", model)] = f"multi/{model}/seed0"
        for (table, row), folder in folders.items():
            summary = json.loads((out / folder / "metrics.json").read_text())["domains_summary"][lang]
            got = rows[(table, row, lang)]
            assert float(got["ua_mean"]) == summary["test_ua"]["mean"] and float(got["wa_mean"]) == summary["test_wa"]["mean"]
            assert math.isclose(float(got["ua_std"]), summary["test_ua"]["std"], abs_tol=1e-12)
            assert int(got["runs"]) == summary["test_ua"]["n"] and got["epochs"] == "1"
    assert int(rows[("table2", "speaker", "de")]["runs"]) == 3  # one fold per speaker
    grid = json.loads((out / "grid.json").read_text())
    assert all(c["state"] == "ok" for c in grid["cells"].values()) and not grid["failed"]
    assert not grid["skipped_models"] and "not offered" not in (out / "tables.md").read_text()

    # a rerun runs nothing; other settings in the same folders are refused, never overwritten
    lines.clear()
    assert run_grid(opts, workers=0, in_process=True, skip_extraction=True, echo=lines.append) == 0
    assert any(" 0 to run" in line for line in lines) and not any(" ok " in line for line in lines)
    before = (out / "single/de/random/seed0/metrics.json").read_text()
    lines.clear()
    assert run_grid(_options(features, out, epochs=2, parts=("single",)), workers=0, in_process=True,
                    skip_extraction=True, echo=lines.append) == 5
    assert any("FAILED single de random seed 0" in line and "another configuration" in line and "train.epochs" in line
               for line in lines)
    assert (out / "single/de/random/seed0/metrics.json").read_text() == before


@pytest.mark.slow
def test_a_tiny_curve_runs_and_its_table_holds_the_target_uas_of_its_folders(features, tmp_path):
    out = tmp_path / "grid"
    lines = []
    opts = _options(features, out, parts=("curve",), shots=(0, 2, None), models=("base",))
    assert run_grid(opts, workers=0, in_process=True, skip_extraction=True, echo=lines.append) == 0, "\n".join(lines)
    assert any("grid: 9 cells" in line for line in lines)  # per target: k0 base, k2 single and base; all: 3 shared
    for target in ("de", "en"):
        curve = json.loads((out / "curve" / target / "curve.json").read_text())
        assert curve["shots"] == ["k0", "k2", "all"] and list(curve["models"]) == ["single", "base"]
        for shot, model, folder in (("k0", "base", f"curve/{target}/k0/base/seed0"), ("k2", "single", f"curve/{target}/k2/single/seed0"),
                                    ("all", "base", "multi/base/seed0"), ("all", "single", f"single/{target}/random/seed0")):
            metrics = json.loads((out / folder / "metrics.json").read_text())
            assert curve["models"][model][shot]["ua"] == [metrics["runs"][0]["test"][target]["ua"]], (target, shot, model)
        config = json.loads((out / f"curve/{target}/k2/base/seed0/config.json").read_text())
        assert config["few_shot"] == {target: 2} and config["model"] == "base"
    assert "### en" in (out / "tables.md").read_text()
    lines.clear()
    assert run_grid(opts, workers=0, in_process=True, skip_extraction=True, echo=lines.append) == 0
    assert any(" 0 to run" in line for line in lines)


def test_a_failed_cell_is_reported_and_the_others_still_run(features, tmp_path):
    out = tmp_path / "grid"
    opts = GridOptions(parse_domains(["de=sde", "fr=missing"]), out=out, seeds=1, epochs=1, features=["ge2e"],
                       features_dir=features, parts=("single",), train_args=("--no-checkpoints",))
    lines = []
    assert run_grid(opts, workers=0, in_process=True, skip_extraction=True, echo=lines.append) == 5
    assert (out / "single/de/random/seed0/metrics.json").is_file()
    failed = [line for line in lines if "FAILED single fr random seed 0" in line]
    assert failed and "status 3" in failed[0]  # a data error (sercore.errors)
    assert "missing" in (out / "single/fr/random/seed0/train.log").read_text()
    assert cell_state(plan_cells(opts, [])[1]) == "todo"  # it runs again next time


@pytest.mark.slow
def test_cells_run_as_dask_tasks_and_as_subprocesses(features, tmp_path):
    from dask.distributed import LocalCluster

    out = tmp_path / "grid"
    opts = GridOptions(parse_domains(["de=sde"]), out=out, seeds=2, epochs=1, features=["ge2e"], features_dir=features,
                       parts=("single",), train_args=("--no-checkpoints",))
    lines = []
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        assert run_grid(opts, scheduler=cluster.scheduler_address, in_process=True, skip_extraction=True,
                        echo=lines.append) == 0, "\n".join(lines)
    assert any(line.startswith("[2/2] ok") for line in lines)
    # the default way: `train` in a subprocess, its output in the cell's train.log
    cell = plan_cells(GridOptions(parse_domains(["de=sde"]), out=tmp_path / "sub", seeds=1, epochs=1, features=["ge2e"],
                                  features_dir=features, parts=("single",), train_args=("--no-checkpoints",)), [])[0]
    result = run_cell(cell, threads=1)
    assert result.ok, result.error
    assert "test UA" in (tmp_path / "sub/single/de/random/seed0/train.log").read_text() and cell_state(cell) == "done"
    # the subprocess ran the cell's configuration, saved in the folder (`train --config cell.json`)
    assert ExperimentConfig.from_file(tmp_path / "sub/single/de/random/seed0/cell.json") == cell.config


def test_dry_run_lists_cells_and_runs_nothing(features, tmp_path):
    out = tmp_path / "grid"
    r = CliRunner().invoke(main, ["--dry-run", "--skip-extraction", "--features-dir", str(features), "--out", str(out),
                                  "--seeds", "2", "--models", "nas", "de=sde", "en=sen"])
    assert r.exit_code == 0, r.output
    assert "todo     single de random seed 1: train --domains de=sde --features ge2e,mfcc" in r.output
    assert "todo     only_mfcc en seed 0" in r.output
    assert "multi nas seed 0" in r.output
    assert not out.exists()
    r = CliRunner().invoke(main, ["--dry-run", "de=sde", "de=other"])
    assert r.exit_code == 2 and "given twice" in r.output


def test_cells_train_for_the_default_presets_epochs_unless_told(features, tmp_path):
    from train.config import PRESETS, TrainConfig

    def epochs(**kwargs) -> set[int]:
        opts = GridOptions(parse_domains(["de=sde"]), out=tmp_path / "g", seeds=1, features=["ge2e"], features_dir=features,
                           parts=("single", "speaker"), **kwargs)
        return {cell.config.train.epochs for cell in plan_cells(opts, [])}

    assert epochs() == {PRESETS["tuned"].train["epochs"]} == {40}
    assert epochs(train_args=("--preset", "paper")) == {TrainConfig().epochs} == {20}
    assert epochs(epochs=3) == {3}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_local_grid_on_cuda_without_cuda_is_an_environment_problem_before_any_work(features, tmp_path):
    out = tmp_path / "grid"
    r = CliRunner().invoke(main, ["--device", "cuda", "--skip-extraction", "--features-dir", str(features), "--out", str(out),
                                  "--parts", "single", "--seeds", "1", "de=sde"])
    assert r.exit_code == 4, r.output
    assert r.output.strip().splitlines()[-1].startswith("error: --device: cuda: CUDA is not available on this machine")
    assert not out.exists()
    r = CliRunner().invoke(main, ["--device", "gpu", "--skip-extraction", "--features-dir", str(features), "--out", str(out),
                                  "de=sde"])
    assert r.exit_code == 2 and "unknown device 'gpu'" in r.output and not out.exists(), r.output


def test_a_local_grid_on_cuda_starts_gpu_workers_whose_resource_its_cells_ask_for(features, tmp_path, monkeypatch):
    import contextlib

    import sercore.cluster as cluster

    asked: list[dict] = []

    class Stop(Exception):
        pass

    @contextlib.contextmanager
    def fake_client(workers, scheduler=None, **kwargs):
        asked.append({"workers": workers, "scheduler": scheduler, **kwargs})
        raise Stop
        yield

    monkeypatch.setattr(cluster, "dask_client", fake_client)
    opts = GridOptions(parse_domains(["de=sde"]), out=tmp_path / "grid", seeds=1, epochs=1, features=["ge2e"],
                       features_dir=features, parts=("single",), device="cuda")
    with pytest.raises(Stop):
        run_grid(opts, workers=3, skip_extraction=True, echo=lambda line: None)
    assert asked[0]["gpu"] is True and asked[0]["resources"] == {"GPU": 1} and asked[0]["workers"] == 3
    with pytest.raises(Stop):
        run_grid(replace(opts, device="cpu"), workers=3, skip_extraction=True, echo=lambda line: None)
    assert asked[1]["gpu"] is False and asked[1]["resources"] is None


def test_run_all_help_prints_its_whole_description(tmp_path):
    """`run_all.sh --help`: every comment line of the script's header, then the grid's options."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "run_all.sh"
    header = []
    for line in script.read_text().splitlines()[1:]:
        if not line.startswith("#"):
            break
        header.append(line)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(script.parent)}
    out = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, env=env, cwd=tmp_path, check=True).stdout
    assert len(header) > 10 and out.splitlines()[:len(header)] == header
    assert "--workers" in out.split("\n\n", 1)[1]


def test_the_cells_threads_default_to_omp_num_threads_else_the_cpus_shared_and_a_clusters_own(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [default_threads(w) for w in (0, 1, 3, 16)] == [8, 8, 2, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads(2) == 3
    assert default_threads(2, "tcp://scheduler:8786") is None  # a cluster's workers keep their own setting
