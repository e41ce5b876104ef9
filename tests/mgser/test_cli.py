"""Command-line conventions: --version everywhere, the mgser group, --help with examples and environment,
-v/--quiet through logging, and the documented exit codes (sercore/errors.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from extract.cli import main as extract_main
from mgser.cli import COMMANDS
from mgser.cli import main as mgser_main
from sercore.cli import version
from sercore.errors import EXIT_BUG, EXIT_DATA, EXIT_ENVIRONMENT, EXIT_PARTIAL, EXIT_USAGE
from sercore.manifest import Utterance, write_manifest
from train.cli import main as train_main
from train.studies.grid import main as grid_main
from predict.cli import main as predict_main
from train.studies.html_report import main as report_main

REPO = Path(__file__).resolve().parents[2]
COMMAND_OBJECTS = {"extract": extract_main, "train": train_main, "predict": predict_main, "report": report_main,
                   "grid": grid_main}


@pytest.mark.parametrize("name", sorted(COMMAND_OBJECTS))
def test_every_command_has_version_examples_environment_and_exit_codes_in_its_help(name):
    command = COMMAND_OBJECTS[name]
    r = CliRunner().invoke(command, ["--version"])
    assert r.exit_code == 0 and r.output.strip().endswith(f"(mgser) {version()}"), r.output
    text = CliRunner().invoke(command, ["--help"]).output
    assert "Examples:" in text and "Exit status: 0 success" in text and "-v, --verbose" in text and "-q, --quiet" in text
    if name in ("extract", "predict"):
        assert "MGSER_CONFIG" in text and "MGSER_BYOL_CHECKPOINT" in text


def test_mgser_lists_its_subcommands_and_runs_each():
    r = CliRunner().invoke(mgser_main, ["--help"])
    assert r.exit_code == 0
    for name in ("prepare", "extract", "train", "predict", "report", "grid", "cluster"):
        assert f"  {name} " in r.output
    assert CliRunner().invoke(mgser_main, ["--version"]).output.strip() == f"mgser {version()}"
    for name in COMMANDS:
        r = CliRunner().invoke(mgser_main, [name, "--help"])
        assert r.exit_code == 0 and "Usage: " in r.output, (name, r.output)
    assert CliRunner().invoke(mgser_main, ["nonsense"]).exit_code == EXIT_USAGE


def test_each_subcommand_is_named_as_mgser_calls_it():
    # the generated command-line reference (docs/reference/cli.md, mkdocs-click) titles each command by its click name
    ctx = mgser_main.make_context("mgser", [], resilient_parsing=True)
    for name in COMMANDS:
        assert mgser_main.get_command(ctx, name).name == name, name


def test_mgser_without_arguments_prints_the_pipeline():
    r = CliRunner().invoke(mgser_main, [])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert len(lines) == 3, lines
    steps = [lines[0].index(f"mgser {step}") for step in ("prepare", "extract", "train", "predict")]
    assert steps == sorted(steps)
    assert "mgser --help" in r.output


def test_the_entry_points_are_installed_beside_mgser():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    scripts = {line.split("=")[0].strip() for line in cfg["options.entry_points"]["console_scripts"].split("\n") if line}
    assert {"extract", "train", "predict", "mgser"} <= scripts


@pytest.fixture()
def corpus(tmp_path):
    """Two clips (one all-silent: skipped by extraction) and their manifest."""
    sr = 16000
    t = np.arange(sr // 2) / sr
    sf.write(tmp_path / "good.wav", (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), sr)
    sf.write(tmp_path / "silent.wav", np.zeros(sr // 2, np.float32), sr)
    rows = [Utterance("good", str(tmp_path / "good.wav"), "s", "xx", "sad", "train"),
            Utterance("silent", str(tmp_path / "silent.wav"), "s", "xx", "angry", "train")]
    write_manifest(rows, tmp_path / "m" / "c.csv")
    return ["--dataset", "c", "--features", "mfcc", "--workers", "0", "--manifest-dir", str(tmp_path / "m"),
            "--features-dir", str(tmp_path / "f")]


def test_exit_codes_usage_data_environment_partial_and_bug(corpus, tmp_path, monkeypatch):
    run = lambda args: CliRunner().invoke(extract_main, args)  # noqa: E731
    r = run([*corpus, "--workers", "-1"])
    assert r.exit_code == EXIT_USAGE and "--workers" in r.output
    r = run(["--dataset", "nothing", "--manifest-dir", str(tmp_path / "none")])
    assert r.exit_code == EXIT_DATA and "nothing.csv" in r.output
    r = run([*corpus, "--features", "byol"])
    assert r.exit_code == EXIT_ENVIRONMENT and "--features: byol: no weights configured" in r.output
    r = run([*corpus, "--strict"])
    assert r.exit_code == EXIT_PARTIAL and "--strict: 1 utterance(s) could not be extracted" in r.output

    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        r = run([*corpus, "--scheduler", "tcp://127.0.0.1:9"])
    assert r.exit_code == EXIT_ENVIRONMENT and "tcp://127.0.0.1:9: cannot reach the Dask scheduler" in r.output

    def broken(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr("extract.pipeline.extract_dataset", broken)
    r = run(corpus)
    assert r.exit_code == EXIT_BUG and r.output.strip().splitlines()[-1] == (
        "error: unexpected RuntimeError: something nobody expected (a bug; rerun with -v for the traceback)")
    assert "Traceback" in run([*corpus, "-v"]).output


def test_quiet_and_verbose_go_through_logging(corpus):
    loud = CliRunner().invoke(extract_main, corpus)
    assert loud.exit_code == 0 and "1 computed" in loud.output and "silent" in loud.output
    quiet = CliRunner().invoke(extract_main, [*corpus, "--overwrite", "-q"])
    assert quiet.exit_code == 0 and "computed" not in quiet.output
    assert "1 utterance(s) skipped" in quiet.output  # a warning: shown even with --quiet


def test_the_demo_without_its_extra_says_how_to_install_it(tmp_path, monkeypatch):
    from extract.prepare.demo import Espeak

    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails, as without the extra
    monkeypatch.setattr(Espeak, "_instance", None)
    r = CliRunner().invoke(extract_main, ["prepare", "--dataset", "demo", "--root", str(tmp_path / "demo"),
                                          "--manifest-dir", str(tmp_path / "m")])
    assert r.exit_code == EXIT_ENVIRONMENT and "pip install 'mgser[demo]'" in r.output, r.output


@pytest.mark.slow
def test_nothing_imports_torchaudio():
    """fairseq-fixed pulls in a torchaudio whose extension does not load with the tested torch: the toolkit,
    its extractors and every command's help must run without importing it."""
    code = """
import importlib, pkgutil, sys
for package in ("sercore", "extract", "train", "predict", "mgser"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        importlib.import_module(info.name)
from extract.extractors import NAMES, extractor_class
for name in NAMES:
    extractor_class(name)
try:
    import fairseq.models.wav2vec  # what the wav2vec extractor loads, when the extra is installed
except ImportError:
    pass
assert "torchaudio" not in sys.modules, "torchaudio was imported"
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_extract_on_cuda_without_cuda_is_an_environment_problem_before_any_work(tmp_path):
    manifest_dir, features_dir = tmp_path / "manifests", tmp_path / "features"
    path = tmp_path / "a.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    write_manifest([Utterance("a", str(path), "s1", "de", "neutral", "train")], manifest_dir / "c.csv")
    r = CliRunner().invoke(extract_main, ["--dataset", "c", "--features", "mfcc", "--device", "cuda", "--workers", "0",
                                          "--manifest-dir", str(manifest_dir), "--features-dir", str(features_dir)])
    assert r.exit_code == EXIT_ENVIRONMENT, r.output
    assert r.output.strip().splitlines()[-1].startswith("error: --device: cuda: CUDA is not available on this machine")
    assert "Traceback" not in r.output and not features_dir.exists()


def test_extract_without_a_dataset_is_a_usage_error():
    for args in ([], ["-q"]):
        r = CliRunner().invoke(extract_main, args)
        assert r.exit_code == EXIT_USAGE and "Missing option '--dataset'" in r.output, r.output
    r = CliRunner().invoke(mgser_main, ["extract"])
    assert r.exit_code == EXIT_USAGE, r.output


def test_progress_bars_only_when_stderr_is_a_terminal(corpus, monkeypatch):
    from sercore.cli import show_progress

    r = CliRunner().invoke(extract_main, corpus)  # stderr captured: not a terminal
    assert r.exit_code == 0 and "1 computed" in r.output
    assert "|" not in r.stderr and "utt/s" not in r.stderr, r.stderr

    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Tty())
    assert show_progress() and not show_progress(quiet=True)


def test_resemblyzer_is_imported_without_the_pkg_resources_warning():
    code = ("import warnings; warnings.simplefilter('always')\n"
            "from extract.extractors import ExtractorSettings\n"
            "from extract.extractors.ge2e import Ge2eMelExtractor\n"
            "Ge2eMelExtractor(ExtractorSettings()).load()\n"
            "warnings.warn('pkg_resources is deprecated elsewhere', UserWarning)\n")  # only that import is silenced
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("pkg_resources is deprecated") == 1 and "deprecated elsewhere" in r.stderr, r.stderr


def test_extract_help_lists_every_registered_feature_and_what_it_needs():
    from click.testing import CliRunner

    from extract.cli import main as extract_main
    from extract.extractors import NEEDS, REGISTRY

    assert set(NEEDS) == set(REGISTRY)
    text = CliRunner().invoke(extract_main, ["--help"]).output
    lines = text[text.index("Features (--features"):].splitlines()
    for name in REGISTRY:
        assert any(line.split()[:1] == [name] and NEEDS[name] in line for line in lines), name
