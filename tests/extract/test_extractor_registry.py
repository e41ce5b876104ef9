"""The extractor registry: each module registers its own features with their configuration dataclass; the
settings, ``extract``'s options and help, and the docs' feature list all come from it; a new extractor is one file."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from extract.extractors import DEFAULT_NAMES, NAMES, ExtractorSettings, extractor_class
from extract.extractors.registry import config_defaults, families, register, registrations, settings_fields

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "extract" / "extractors"
DOCS = REPO / "docs" / "features.md"


def _declared_registrations() -> dict[str, str]:
    """feature name -> module, read from the source: every ``@register("name", ...)`` of every module."""
    out = {}
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for deco in node.decorator_list:
                    if isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register":
                        out[deco.args[0].value] = path.stem
    return out


def test_the_registry_lists_every_registration_of_every_extractor_module():
    declared = _declared_registrations()
    assert set(declared) == set(NAMES) == {r.name for r in registrations()}
    assert {"mfcc", "allosaurus", "wav2vec", "ge2e", "ge2e_mel", "byol", "egemaps", "egemaps_lld", "compare"} <= set(declared)
    for r in registrations():
        assert r.extractor.__module__ == f"extract.extractors.{declared[r.name]}", r.name  # registered in its own file
        assert r.extractor.name == r.name and r.extractor.config_class is r.config
        assert r.config.__module__ == r.extractor.__module__, f"{r.name}: its configuration is declared in its module"
        assert dataclasses.is_dataclass(r.config) and r.config.__dataclass_params__.frozen, r.name
        assert extractor_class(r.name) is r.extractor
    assert [f.key for f in families()] == ["ssl"]
    assert extractor_class("enc", ExtractorSettings(ssl={"enc": {"checkpoint": "x"}})).__module__ == "extract.extractors.ssl"


def test_listing_order_and_default_set_are_unchanged():
    """The listing starts with the paper's features, then openSMILE's, in this order (an extractor added later
    comes after them without editing this test); the default set is the paper's."""
    known = ("mfcc", "allosaurus", "wav2vec", "ge2e", "byol", "ge2e_mel", "egemaps", "egemaps_lld", "compare")
    assert NAMES[:len(known)] == known
    assert DEFAULT_NAMES == ("mfcc", "allosaurus", "wav2vec", "ge2e", "byol", "ge2e_mel")


def test_configurations_default_to_the_constants_the_stores_record():
    configs = {r.name: config_defaults(r.config) for r in registrations()}
    assert configs["mfcc"] == {"n_mfcc": 40, "win_length": 400, "hop_length": 160, "n_fft": 512}
    assert configs["wav2vec"] == {"checkpoint": None, "layer": None}
    assert configs["allosaurus"] == {"model": None, "output": "posteriors"}
    assert configs["byol"] == {"checkpoint": None, "norm_stats": None}
    assert configs["ge2e"] == configs["ge2e_mel"] == {"embedding_dim": 256, "mel_channels": 40, "hop_seconds": 0.01}
    assert configs["egemaps"] == {"feature_set": "eGeMAPSv02", "feature_level": "Functionals", "size": 88}
    assert configs["egemaps_lld"] == {"feature_set": "eGeMAPSv02", "feature_level": "LowLevelDescriptors", "size": 25}
    assert configs["compare"] == {"feature_set": "ComParE_2016", "feature_level": "Functionals", "size": 6373}


def test_mfcc_records_the_same_parameters_as_before():
    """The stored provenance (what predict compares) keeps its shape and values."""
    mfcc = extractor_class("mfcc")(ExtractorSettings())
    mfcc.load()
    prov = mfcc.provenance()
    assert prov.pop("version").startswith("librosa ")
    assert prov == {"kind": "sequence", "dim": 40, "extractor": "mfcc", "sample_rate": 16000, "hop_seconds": 0.01,
                    "checkpoint_sha256": "", "window_seconds": 0.025, "n_mfcc": 40, "n_fft": 512}


def test_settings_keys_options_and_environment_come_from_the_configurations(tmp_path, monkeypatch):
    fields = settings_fields()
    assert {k: (s.option, s.env) for k, s in fields.items()} == {
        "allosaurus_model": ("--allosaurus-model", "MGSER_ALLOSAURUS_MODEL"),
        "wav2vec_checkpoint": ("--wav2vec-checkpoint", "MGSER_WAV2VEC_CHECKPOINT"),
        "wav2vec_layer": ("--wav2vec-layer", ""),
        "byol_checkpoint": ("--byol-checkpoint", "MGSER_BYOL_CHECKPOINT"),
    }
    monkeypatch.setenv("MGSER_BYOL_CHECKPOINT", "/env/byol.pth")
    s = ExtractorSettings(wav2vec_layer=3).with_env_defaults()
    byol, wav2vec = extractor_class("byol"), extractor_class("wav2vec")
    assert byol.configure(s).checkpoint == Path("/env/byol.pth") and wav2vec.configure(s).layer == 3
    assert extractor_class("allosaurus")(ExtractorSettings(extra={"allosaurus_output": "hidden"})).config.output == "hidden"
    with pytest.raises(TypeError, match="unknown setting"):
        ExtractorSettings(byol_weights="x")


def test_registering_refuses_a_mutable_configuration_and_a_second_extractor_under_one_name():
    @dataclasses.dataclass
    class Mutable:
        x: int = 1

    with pytest.raises(TypeError, match="frozen dataclass"):
        register("toy_mutable", needs="", config=Mutable)
    with pytest.raises(ValueError, match="registered twice"):
        register("mfcc", needs="", config=extractor_class("mfcc").config_class)(type("Other", (), {}))


def test_asking_for_mfcc_imports_no_model_library():
    code = ("import sys, numpy as np\n"
            "import extract.extractors as e\n"
            "ex = e.extractor_class('mfcc')(e.ExtractorSettings()); ex.load(); ex.extract(np.zeros(16000, np.float32))\n"
            "heavy = {'torch', 'fairseq', 'allosaurus', 'opensmile', 'transformers', 'resemblyzer'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


def _docs_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_feature_list_is_the_registry():
    """docs/features.md holds a placeholder that the site's build hook fills with every registered feature."""
    hooks = _docs_hooks()
    source = DOCS.read_text()
    assert source.count(hooks.FEATURE_TABLE) == 1
    page = hooks.on_page_markdown(source)
    assert hooks.FEATURE_TABLE not in page
    for r in registrations():
        assert f"| `{r.name}` | {r.needs} | {'by default' if r.default else 'when named'} |" in page.splitlines()
    for f in families():
        assert f"| NAME | {f.needs} | when named |" in page.splitlines()
    assert hooks.on_page_markdown("# no placeholder") == "# no placeholder"


TOY = '''"""A toy extractor: one file."""

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .base import FeatureExtractor
from .registry import register, setting


@dataclass(frozen=True)
class ToyConfig:
    checkpoint: Path | None = setting("toy_checkpoint", option="--toy-checkpoint", help="Toy weights",
                                      env="MGSER_TOY_CHECKPOINT")
    size: int = 3


@register("toy", needs="a toy checkpoint (--toy-checkpoint)", config=ToyConfig)
class ToyExtractor(FeatureExtractor):
    kind: ClassVar[str] = "embedding"
    sample_rate: ClassVar[int] = 16000

    def load(self) -> None:
        pass

    @property
    def dim(self) -> int:
        return self.config.size

    def extract(self, wav):
        return np.full(self.config.size, float(len(wav)), np.float32)
'''


def test_a_new_extractor_is_one_file(tmp_path):
    """A copy of the extract package with one more module: the feature is registered, its setting is an
    ``ExtractorSettings`` key, a weights-file key and an ``extract`` option, ``extract --help`` and the docs' feature
    table list it; the unchanged ``predict`` offers the option too and ``mgser.load_model`` /
    ``extractor_settings`` take its key."""
    shutil.copytree(REPO / "extract", tmp_path / "extract", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "extract" / "extractors" / "toy.py").write_text(TOY)
    (tmp_path / "w.json").write_text('{"toy_checkpoint": "toy.bin"}')
    code = (f"import sys; sys.path[:0] = [{str(tmp_path)!r}, {str(REPO)!r}]\n"
            "from click.testing import CliRunner\n"
            "from extract.extractors import NAMES, DEFAULT_NAMES, ExtractorSettings, extractor_class\n"
            "from extract.cli import main\n"
            "assert 'toy' in NAMES and 'toy' not in DEFAULT_NAMES, NAMES\n"
            f"s = ExtractorSettings.from_file({str(tmp_path / 'w.json')!r})\n"
            "ex = extractor_class('toy')(s)\n"
            f"assert str(ex.config.checkpoint) == {str(tmp_path / 'toy.bin')!r} and ex.dim == 3\n"
            "from extract.extractors import feature_table\n"
            "assert '| `toy` | a toy checkpoint (--toy-checkpoint) | when named |' in feature_table().splitlines()\n"
            "print(CliRunner().invoke(main, ['--help'], terminal_width=200).output)\n"
            "print('=== predict')\n"
            "import mgser, predict.cli\n"
            f"assert predict.cli.__file__.startswith({str(REPO)!r})  # the project's predict, unchanged\n"
            "print(CliRunner().invoke(predict.cli.main, ['--help'], terminal_width=200).output)\n"
            "class Recorded:\n"
            "    inputs = ['toy']\n"
            "    def provenance(self, language): return {'toy': {'extractor': 'toy', 'dim': 3}}\n"
            "settings = predict.cli.extractor_settings(Recorded(), 'de', toy_checkpoint='t.bin')\n"
            "assert str(settings.get('toy_checkpoint')) == 't.bin' and extractor_class('toy')(settings).config.checkpoint\n"
            "from sercore.bundle import BundleError\n"
            "try:\n"
            f"    mgser.load_model({str(tmp_path / 'none.bundle')!r}, toy_checkpoint='t.bin')\n"
            "except BundleError:\n"
            "    pass  # the keyword is accepted: the missing bundle is what fails\n"
            "r = CliRunner().invoke(predict.cli.main, ['--model', 'none.bundle', '--toy-checkpoint', 't.bin', 'x.wav'])\n"
            "assert r.exit_code == 3 and 'none.bundle' in r.output, r.output  # not a usage error (2)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    extract_help, predict_help = r.stdout.split("=== predict")
    lines = extract_help.splitlines()
    assert any(line.split()[:1] == ["toy"] and "a toy checkpoint (--toy-checkpoint)" in line for line in lines), r.stdout
    for text in (extract_help, predict_help):
        assert any("--toy-checkpoint PATH" in line and "Toy weights (or $MGSER_TOY_CHECKPOINT)." in line
                   for line in text.splitlines()), text
        environment = text[text.index("Environment:"):]
        assert any(line.split() == ["MGSER_TOY_CHECKPOINT", "Toy", "weights,", "when", "--toy-checkpoint", "is", "not",
                                    "given"] for line in environment.splitlines()), environment
    assert importlib.import_module("extract.extractors").__file__.startswith(str(REPO))  # this process: the real one
