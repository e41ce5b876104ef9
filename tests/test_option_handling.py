"""Options and configuration files of train, the grid and extract: ranges, names, usage errors (exit 2) against data
errors (exit 3) and bugs (exit 1)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sercore.errors import EXIT_DATA
from train.cli import main as train_main


def _invoke(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("key, value, expected", [
    ("features", "mfcc", "features: expected list[str] | None, got 'mfcc' (a str)"),
    ("domains", "de", "domains: expected list[str], got 'de' (a str)"),
    ("train", {"epochs": 1.5}, "train.epochs: expected int, got 1.5 (a float)"),
    ("encoders", {"mfcc": {"kernel_sizes": "x"}}, "encoders.kernel_sizes: expected tuple[int, ...], got 'x' (a str)"),
])
def test_a_configuration_value_of_the_wrong_type_names_the_key_the_value_and_the_type(tmp_path, key, value, expected):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"domains": ["de"], key: value}))
    r = _invoke(train_main, "--config", path)
    assert r.exit_code == EXIT_DATA
    assert r.output.strip() == f"error: {path}: {expected}"


@pytest.mark.parametrize("command, args, option", [
    ("train", ["--domains", "de", "--features", ","], "--features"),
    ("train", ["--domains", "de", "--features", "mfcc,,"], "--features"),
    ("train", ["--domains", "de", "--features", "mfcc,ge2e,mfcc"], "--features"),
    ("train", ["--domains", ","], "--domains"),
    ("train", ["--domains", "de", "--model", "single,"], "--model"),
    ("train", ["--domains", "de", "--learning-curve", "de", "--shots", "5,,all"], "--shots"),
    ("grid", ["de=emodb", "--features", "mfcc,,"], "--features"),
    ("grid", ["de=emodb", "--parts", "single,,speaker"], "--parts"),
    ("grid", ["de=emodb", "--models", "nas,nas"], "--models"),
    ("extract", ["--dataset", "demo", "--features", ","], "--features"),
    ("extract", ["--dataset", "demo", "--features", "mfcc,,"], "--features"),
    ("extract", ["--dataset", "demo", "--features", "mfcc,mfcc"], "--features"),
])
def test_empty_or_repeated_names_in_a_comma_list_are_usage_errors(tmp_path, monkeypatch, command, args, option):
    from extract.cli import main as extract_main
    from train.studies.grid import main as grid_main

    monkeypatch.chdir(tmp_path)  # nothing may be prepared, extracted or trained in the test's folder either
    main = {"train": train_main, "grid": grid_main, "extract": extract_main}[command]
    r = _invoke(main, *args, "--out" if command != "extract" else "--features-dir", tmp_path / "out")
    assert r.exit_code == 2, r.output
    assert option in r.output and ("empty name" in r.output or "given twice" in r.output)
    assert not (tmp_path / "out").exists() and not (tmp_path / "data_manifests").exists()


@pytest.fixture()
def stores(tmp_path):
    from tests._train_helpers import make_stores

    return make_stores(tmp_path / "features", dataset="synth", language="de", per_class=8, speakers=4, with_mel=False)


@pytest.mark.parametrize("args, option, problem", [
    (["--domains", "de,de"], "--domains", "given twice"),
    (["--domains", "de,de=synth"], "--domains", "language de given twice"),
    (["--domains", "de=../../etc"], "--domains", "not a plain name"),
    (["--domains", "de=synth", "--protocol", "speaker", "--folds", "99"], "--folds", "99 speaker folds, but de=synth has 4 speakers"),
])
def test_options_that_do_not_fit_the_data_are_usage_errors(stores, tmp_path, args, option, problem):
    r = _invoke(train_main, *args, "--features-dir", stores, "--out", tmp_path / "out", "--epochs", 1, "--seeds", 1)
    assert r.exit_code == 2, r.output
    assert option in r.output and problem in r.output


def test_a_configuration_file_with_a_language_twice_or_a_dataset_path_is_a_data_error(tmp_path):
    path = tmp_path / "cfg.json"
    for domains, problem in ((["de", "de=synth"], "language de given twice"), (["de=../x"], "not a plain name")):
        path.write_text(json.dumps({"domains": domains}))
        r = _invoke(train_main, "--config", path)
        assert r.exit_code == EXIT_DATA and f"{path}: domains: " in r.output and problem in r.output


def _raise_value_error(*args, **kwargs):
    raise ValueError("operands could not be broadcast together")


def test_a_value_error_inside_a_train_run_is_a_bug_not_a_usage_error(stores, tmp_path, monkeypatch):
    # train.cli imports the studies when it runs; imported for the first time under the patch, they would keep the
    # raising run_experiment for the rest of the session (a later --ablations test then failed with this error)
    import train.studies.ablations, train.studies.learning_curve, train.studies.model_comparison  # noqa: E401, F401

    monkeypatch.setattr("train.repeated_runs.run_experiment", _raise_value_error)
    args = ["--domains", "de=synth", "--features-dir", stores, "--out", tmp_path / "out", "--epochs", 1, "--seeds", 1]
    r = _invoke(train_main, *args)
    assert r.exit_code == 1 and r.output.strip() == ("error: unexpected ValueError: operands could not be broadcast "
                                                     "together (a bug; rerun with -v for the traceback)")
    assert "Traceback" in _invoke(train_main, *args, "-v").output


def test_a_value_error_inside_extraction_is_a_bug_not_a_usage_error(tmp_path, monkeypatch):
    from extract.cli import main as extract_main

    monkeypatch.setattr("extract.pipeline.extract_dataset", _raise_value_error)
    args = ["--dataset", "c", "--manifest-dir", tmp_path, "--features-dir", tmp_path / "f"]
    r = _invoke(extract_main, *args)
    assert r.exit_code == 1 and "unexpected ValueError: operands could not be broadcast together" in r.output
    assert "Traceback" in _invoke(extract_main, *args, "-v").output


def test_the_toolkits_own_checks_inside_a_run_are_still_usage_errors(stores, tmp_path):
    from tests._train_helpers import make_stores

    make_stores(stores, dataset="synth_it", language="it", per_class=8, speakers=4)
    r = _invoke(train_main, "--domains", "de=synth,it=synth_it", "--model", "single", "--features-dir", stores,
                "--out", tmp_path / "out", "--epochs", 1, "--seeds", 1)
    assert r.exit_code == 2 and "error: --model: the single-domain model takes one domain" in r.output
    r = _invoke(train_main, "--domains", "de=synth,it=synth_it", "--model", "nas", "--selector", "byol", "--features-dir",
                stores, "--out", tmp_path / "out", "--epochs", 1, "--seeds", 1)
    assert r.exit_code == 2 and "error: --selector: the nas gates read feature 'byol'" in r.output


def test_an_unknown_feature_or_bad_ssl_layers_in_extract_are_usage_errors(tmp_path):
    from extract.cli import main as extract_main
    from sercore.manifest import Utterance, write_manifest

    write_manifest([Utterance("a", str(tmp_path / "a.wav"), "s", "xx", "sad", "train")], tmp_path / "m" / "c.csv")
    base = ["--dataset", "c", "--workers", 0, "--manifest-dir", tmp_path / "m", "--features-dir", tmp_path / "f"]
    r = _invoke(extract_main, *base, "--features", "nope")
    assert r.exit_code == 2 and "error: --features: unknown feature 'nope'" in r.output
    r = _invoke(extract_main, *base, "--features", "enc", "--ssl", f"enc={tmp_path}", "--ssl-layers", "0,,6")
    assert r.exit_code == 2 and "error: --ssl-layers: ssl feature 'enc': layers must be" in r.output


HUGE = "99999999999999999999"


@pytest.mark.parametrize("option", ["--epochs", "--seeds", "--first-seed", "--folds", "--per-class", "--batch-size",
                                    "--patience", "--frame-stride", "--max-seconds", "--max-batch-gb", "--mixup", "--alpha",
                                    "--lr", "--weight-decay", "--nas-l0", "--nas-lr-scale", "--gate-lr-scale"])
def test_every_numeric_train_option_has_an_upper_bound_shown_in_help(option, tmp_path):
    r = _invoke(train_main, "--domains", "de", option, HUGE, "--out", tmp_path / "out")
    assert r.exit_code == 2 and f"Invalid value for '{option}'" in r.output and "<=" in r.output, r.output
    help_line = _invoke(train_main, "--help").output.split(option, 1)[1].split("\n  --", 1)[0]
    assert "<=x<=" in help_line or "<x<=" in help_line or "<=x<" in help_line


@pytest.mark.parametrize("args, option", [
    (["--few-shot", f"de={HUGE}"], "--few-shot"),
    (["--learning-curve", "de", "--shots", HUGE], "--shots"),
])
def test_key_value_and_list_options_refuse_huge_numbers(args, option, tmp_path):
    r = _invoke(train_main, "--domains", "de", *args, "--out", tmp_path / "out")
    assert r.exit_code == 2 and option in r.output, r.output


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "epochs", 10 ** 20, "train.epochs: must be in [1, 100000], got 100000000000000000000"),
    ("train", "epochs", 10 ** 400, "train.epochs: must be in [1, 100000], got about 10^400"),
    (None, "first_seed", 2 ** 40, "first_seed: must be in [0, 2147483647]"),
    (None, "few_shot", {"de": 10 ** 7}, "few_shot.de: must be in [0, 1000000]"),
    ("train", "max_seconds", 1e300, "train.max_seconds: must be in (0, 86400]"),
])
def test_configuration_fields_out_of_their_range_are_data_errors_naming_the_file(tmp_path, section, key, value, message):
    path = tmp_path / "cfg.json"
    config = {"domains": ["de"], **({section: {key: value}} if section else {key: value})}
    path.write_text(json.dumps(config))
    r = _invoke(train_main, "--config", path)
    assert r.exit_code == EXIT_DATA and r.output.strip().startswith(f"error: {path}: {message}"), r.output


@pytest.mark.parametrize("command, args, option", [
    ("extract", ["--dataset", "demo", "--batch-size", HUGE], "--batch-size"),
    ("extract", ["--dataset", "demo", "--workers", HUGE], "--workers"),
    ("extract", ["--dataset", "demo", "--wav2vec-layer", HUGE], "--wav2vec-layer"),
    ("extract", ["prepare", "--dataset", "demo", "--seed", HUGE], "--seed"),
    ("grid", ["de=emodb", "--epochs", HUGE], "--epochs"),
    ("grid", ["de=emodb", "--threads", HUGE], "--threads"),
    ("predict", ["--batch-size", HUGE], "--batch-size"),
])
def test_numeric_options_of_the_other_commands_have_upper_bounds(tmp_path, monkeypatch, command, args, option):
    from extract.cli import main as extract_main
    from predict.cli import main as predict_main
    from train.studies.grid import main as grid_main

    monkeypatch.chdir(tmp_path)
    main = {"grid": grid_main, "extract": extract_main, "predict": predict_main}[command]
    r = _invoke(main, *args)
    assert r.exit_code == 2 and f"Invalid value for '{option}'" in r.output and "<=" in r.output, r.output


def test_a_value_error_while_predict_loads_its_model_is_a_bug_not_a_usage_error(tmp_path, monkeypatch):
    from predict.cli import main as predict_main

    monkeypatch.setattr("predict.cli.load_bundle", _raise_value_error)
    (tmp_path / "model.bundle").write_bytes(b"")
    (tmp_path / "a.wav").write_bytes(b"")
    r = CliRunner().invoke(predict_main, ["--model", str(tmp_path / "model.bundle"), str(tmp_path / "a.wav")])
    assert r.exit_code == 1 and "unexpected ValueError: operands could not be broadcast together" in r.output
