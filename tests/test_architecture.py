"""The layout's rules, checked on the source (AST) of every module of the packages:

- the packages are layers, ``sercore`` < ``extract`` < ``train`` < ``predict`` < ``mgser`` < ``bench`` (the
  benchmarks): a module imports only from its own layer or the ones below (no arrow runs back up);
- the module import graph, function-level imports included, has no circle;
- no module imports another module's private name (``from m import _x``, ``m._x``), except a package's own
  private modules (``extract.extractors._weights`` inside ``extract.extractors``);
- models see only the model contract (``train.model_io``), the configuration and each other, never the HDF5
  loading or the trainer;
- the benchmarks use the packages as they are installed: no ``sys.path`` changes, nothing from ``tests/``, no
  other object's private attribute (``trainer._loader``);
- inside ``train``, the library never imports the studies (``train.studies``) or the command (``train.cli``): a
  study may use the library, never the other way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("sercore", "extract", "train", "predict", "mgser", "bench")
#: What ``train.models`` may import from the project.
#: train.pooling: the pooled statistics of the heads (train/models/pooled_head.py), a numpy function of the features alone.
#: sercore.tables: the CSV format of the report a model module writes (layer_weights.csv, train/models/layer_weights.py).
MODEL_ALLOWED = ("train.model_io", "train.config", "train.models", "train.pooling", "sercore.errors", "sercore.labels",
                 "sercore.tables")


def _modules() -> dict[str, Path]:
    out = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not _is_package(importer):
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _project(name: str) -> str | None:
    """The longest project module that ``name`` is or lies in (``a.b.c`` -> ``a.b`` if c is a name in a.b)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(name: str) -> list[tuple[str, str | None, int]]:
    """(imported project module, imported name or None, line) of every import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text(), str(MODULES[name]))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = _project(alias.name)
                if target:
                    out.append((target, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, node.module, node.level)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:  # a submodule
                    out.append((full, None, node.lineno))
                elif _project(base):
                    out.append((_project(base), alias.name, node.lineno))
    return out


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def test_no_import_runs_back_up_a_layer():
    bad = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {target} ({target.split('.')[0]} is above {m.split('.')[0]})"
           for m, edges in GRAPH.items() for target, _, line in edges if _layer(target) > _layer(m)]
    assert not bad, "\n".join(bad)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def test_the_import_graph_has_no_circle():
    # An import of a.b.c also runs a/__init__ and a/b/__init__, but a package's own __init__ importing its
    # submodules is no circle: edges into a package's __init__ from inside that package are left out.
    edges = {m: sorted({t for t, _, _ in e if t != m and not m.startswith(t + ".")}) for m, e in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_uses_another_modules_private_name():
    bad = []
    for m, path in MODULES.items():
        package = m if _is_package(m) else m.rpartition(".")[0]
        for target, name, line in GRAPH[m]:
            if name and name.startswith("_") and not name.startswith("__") and target != m:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}.{name}")
            leaf = target.rpartition(".")[2]
            if name is None and leaf.startswith("_") and not leaf.startswith("__") \
                    and target.rpartition(".")[0] != package:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports the private module {target} from outside its package")
        # attribute access on an imported project module: ``store._decode_attr``
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if _project(a.name) == a.name:
                        aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(m, node.module, node.level)
                for a in node.names:
                    if f"{base}.{a.name}" in MODULES:
                        aliases[a.asname or a.name] = f"{base}.{a.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not bad, "\n".join(bad)


def _train_library(module: str) -> bool:
    return module.split(".")[0] == "train" and not _is_study_or_command(module)


def _is_study_or_command(module: str) -> bool:
    return module == "train.cli" or module == "train.studies" or module.startswith("train.studies.")


def test_the_training_library_never_imports_a_study_or_the_command():
    library = [m for m in MODULES if _train_library(m)]
    assert "train.fit_run" in library and "train.studies.grid" not in library and "train.cli" not in library
    bad = [f"{MODULES[m].relative_to(ROOT)}:{line} imports {target}"
           for m in library for target, _, line in GRAPH[m] if _is_study_or_command(target)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("train.models")))
def test_models_see_only_the_model_contract_and_the_configuration(module):
    bad = [f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}" for target, _, line in GRAPH[module]
           if not any(target == a or target.startswith(a + ".") for a in MODEL_ALLOWED)]
    assert not bad, "\n".join(bad)


def test_the_graph_holds_the_edges_the_rules_look_at():
    """The checks are not vacuous: relative, absolute and submodule imports all become edges."""
    assert ("train.model_io", "Batch") in [(t, n) for t, n, _ in GRAPH["train.models.single"]]  # from ..model_io import
    assert any(t == "train.models" for t, _, _ in GRAPH["predict.bundle"])  # from train.models import build_model
    assert any(t == "train.models.ge2e" for t, _, _ in GRAPH["train.network_trainer"])  # from .models.ge2e import ...
    assert _layer("predict.cli") > _layer("train.fit_run") > _layer("extract.pipeline") > _layer("sercore.store")


def _bench_problems(source: str, name: str) -> list[str]:
    """What keeps a benchmark (``source``, file ``name``) from running as ``python -m bench.NAME`` on the installed
    packages alone."""
    tests = {"tests"} | {p.stem for p in (ROOT / "tests").glob("*.py")}
    benches = {p.stem for p in (ROOT / "bench").glob("*.py")}
    bad = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "path" \
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "sys":
            bad.append(f"{where} changes sys.path (sys.path.{node.attr})")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            bad.append(f"{where} uses another object's private attribute .{node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            bad += [f"{where} imports {n} from tests/" for n in names if n.split(".")[0] in tests]
            bad += [f"{where} imports {n} as a top-level module (from bench/ on sys.path; bench.{n})" for n in names
                    if n.split(".")[0] in benches and (isinstance(node, ast.Import) or not node.level)]
    return bad


def test_benchmarks_run_on_the_installed_packages_alone():
    bad = [problem for path in sorted((ROOT / "bench").glob("*.py"))
           for problem in _bench_problems(path.read_text(), str(path.relative_to(ROOT)))]
    assert not bad, "\n".join(bad)


def test_the_benchmark_rules_see_what_they_forbid():
    """Not vacuous: each forbidden use is found, and a module's own private attributes are not."""
    source = ("import sys\nsys.path.insert(0, '.')\nfrom tests._train_helpers import make_stores\n"
              "import _checkpoint_builders\nloader = trainer._loader(data, train=True)\nself._ok = cls._ok\n"
              "from paired import finished_runs\nfrom bench.paired import finished_runs\n")
    assert sorted(_bench_problems(source, "probe.py")) == [
        "probe.py:2 changes sys.path (sys.path.insert)", "probe.py:3 imports tests._train_helpers from tests/",
        "probe.py:4 imports _checkpoint_builders from tests/", "probe.py:5 uses another object's private attribute ._loader",
        "probe.py:7 imports paired as a top-level module (from bench/ on sys.path; bench.paired)"]
