"""The paper's experiment grid, run as independent Dask tasks (``run_all.sh`` is a thin wrapper around this).

    python -m train.studies.grid de=emodb:/data/emodb it=emovo:/data/emovo         # a LocalCluster of --workers here
    python -m train.studies.grid --dry-run de=emodb en=demo                         # list the cells and their state
    python -m train.studies.grid --scheduler tcp://host:8786 --device cuda de=emodb fr=cafe:/data/CaFE   # a cluster

Domains are ``LANG=DATASET[:ROOT]`` (ROOT: the corpus folder, used by ``extract`` to prepare a missing
manifest); one dataset may serve several languages (the demo corpus: ``en=demo fr=demo``), one language
only one dataset.

What runs, in this order:

1. **Extraction** of each dataset, in the order given, by this process: ``extract`` resumes by itself (a
   finished dataset costs one pass over its stores) and spreads its batches over its own LocalCluster of
   ``--workers`` processes, or over the cluster at ``--scheduler``.
2. **Cells**, each one ``train`` configuration (an :class:`~train.config.ExperimentConfig`, built from the
   grid's settings and ``--train-args`` as ``train`` builds it; ``--dry-run`` shows a ``train`` command line of it) writing one run folder under ``--out`` (layout in
   :mod:`train.studies.grid_layout`), submitted as Dask tasks to a LocalCluster of ``--workers`` processes, or to the
   existing cluster at ``--scheduler``; ``--workers 0`` runs them one after the other in this process.
   Per language: the single-domain model under the random (paper) protocol, one cell per seed; under the
   speaker-independent protocol, one cell holding every speaker fold (``train`` runs the folds of one
   configuration together); without the auxiliary loss, one cell per seed; each feature alone, one cell per
   seed. With two or more languages: every multi-domain model of the paper that ``train --model`` offers at
   run time, one cell per seed (the others are listed as skipped), and under the speaker-independent protocol
   one cell per model holding every fold (part ``multi_speaker``; each language's fold k is the one its
   single-domain speaker cell tests). Part ``curve`` (not in the paper, not run unless asked): every language
   in turn as the target of a learning curve (:mod:`train.studies.learning_curve`), limited to each K of ``--shots`` labelled
   training utterances per emotion while the others keep all of theirs, one cell per (target, K, model, seed)
   for single (the target alone) and each ``--models`` (K = 0, zero-shot: ``base`` only); K = all is the
   ``single`` and ``multi`` parts' cells, run once for both.
3. **Tables** (:mod:`train.studies.paper_tables`): ``tables.md``, ``tables.csv``, ``figure4a.png`` and ``table3.png``, the gated
   models' traces pooled over seeds and each learning curve, from the cells' ``metrics.json`` (and, to pair a
   multi-domain run with its single-domain run, their run records), plus ``grid.json`` (every cell's state,
   seconds and host; the grid's wall time).

One cell per seed rather than one per configuration: the seeds are independent, so they spread over as many
workers as a cluster has, and a killed grid loses at most the cells in flight.

Resuming: a cell's identity is its configuration as the run fingerprint sees it (``train/run_records.py``). A
cell is done when its folder holds a complete ``metrics.json`` (readable, every language of the cell, as many
runs as asked) and its finished runs (``runs/``) were fitted under that configuration; done cells are
skipped. A folder holding runs of another configuration (e.g. other ``--epochs``) is never overwritten: that
cell fails and says which settings differ. A failed cell is reported with the tail of its ``train.log`` and does not stop the others;
the exit status is 5 (finished, some inputs failed) when any cell or extraction failed.

Resources: each cell runs ``train --config <folder>/cell.json`` in a subprocess (``--in-process``:
:func:`train.repeated_runs.run_experiment` in the worker) with
``OMP_NUM_THREADS`` = ``--threads`` (default: the CPUs divided by the workers, or $OMP_NUM_THREADS when
set); Dask runs one cell per worker at a time. Cells with ``--device cuda`` ask Dask for the worker
resource ``GPU=1``: start cluster workers with ``--resources GPU=1`` (``mgser cluster slurm --gpus 1``); the
local cluster then has one worker per visible GPU (at most ``--workers``), each seeing only its own GPU.
Remote workers need the same environment and a file system shared with this process (paths are absolute).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import click

from sercore.cli import THREADS, WORKERS, command_errors, common_options, epilog, name_list, say
from sercore.cluster import without_dask_trim
from sercore.errors import EXIT_PARTIAL, SerError, StoreError

from ..cli import option_of, parse_shots, ranged_type, settings_from_args
from ..config import (MULTIDOMAIN_MODELS, SINGLE_MODEL, ConfigError, DomainSpec, ExperimentConfig, TrainConfig,
                     check_device, command_args, config_from_settings)
from .learning_curve import ZERO_SHOT
from ..domains import default_features
from ..repeated_runs import run_experiment
from .grid_layout import GridLayout, shot_name
from ..models import MODELS
from ..run_records import config_fingerprint, differences, recorded_fingerprints
from .paper_tables import read_metrics, write_tables

#: The configuration a cell's folder holds (``train --config`` reads it).
CELL_CONFIG = "cell.json"
#: ``train`` options that ``--train-args`` may not give: the grid sets them per cell (or they make no configuration).
NOT_IN_TRAIN_ARGS = ("config_file", "domains", "model_name", "transfer_to", "learning_curve")

Echo = Callable[[str], None]


def parse_domains(specs: Sequence[str]) -> list[DomainSpec]:
    """``LANG=DATASET[:ROOT]`` arguments (:meth:`DomainSpec.parse`, the dataset required); a language may appear once."""
    domains = []
    for text in specs:
        try:
            spec = DomainSpec.parse(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="DOMAINS") from None
        if spec.dataset is None:
            raise click.BadParameter(f"{text!r} names no dataset: the grid takes LANG=DATASET[:ROOT] (e.g. de=emodb:/data/emodb)",
                                     param_hint="DOMAINS")
        domains.append(spec)
    langs = [d.language for d in domains]
    twice = sorted({x for x in langs if langs.count(x) > 1})
    if twice:
        raise click.BadParameter(f"language {', '.join(twice)} given twice: one dataset per language "
                                 f"(train tells domains apart by their language code)", param_hint="DOMAINS")
    return domains


@dataclass(frozen=True)
class Cell:
    """One ``train`` run of the grid: its run folder and configuration, and what its metrics.json must hold.

    The configuration is the cell: its identity is the run fingerprint's configuration part.
    """

    name: str  # "single de random seed 0"
    config: ExperimentConfig  # config.out: the absolute run folder
    languages: tuple[str, ...]
    runs: int | None  # runs expected in metrics.json; None: every speaker fold (train knows how many)
    gpu: bool = False

    @property
    def out(self) -> str:
        return self.config.out

    @property
    def command(self) -> list[str]:
        """A ``train`` command line of the cell's configuration (``--dry-run`` shows it; the cell runs
        ``train --config <folder>/cell.json``)."""
        return ["train", *command_args(self.config)]


#: The paper's tables (the default), then the learning curves.
DEFAULT_PARTS = ("single", "speaker", "aux", "features", "multi", "multi_speaker")
PARTS = (*DEFAULT_PARTS, "curve")
MULTI_PARTS = {"multi", "multi_speaker", "curve"}  # the parts that run multi-domain models


@dataclass
class GridOptions:
    domains: list[DomainSpec]
    out: Path = Path("runs/grid")
    seeds: int = 5
    first_seed: int = 0
    epochs: int | None = None  # None: train's default (that of its default preset)
    features: list[str] | None = None
    folds: int | None = None
    parts: tuple[str, ...] = DEFAULT_PARTS
    models: tuple[str, ...] = MULTIDOMAIN_MODELS
    shots: tuple[int | None, ...] = (0, 5, 20, None)  # part curve: K per emotion (None: all)
    device: str = "cpu"
    features_dir: Path = Path("features")
    manifest_dir: Path = Path("data_manifests")
    train_args: tuple[str, ...] = ()
    extract_args: tuple[str, ...] = ()


def offered_models(wanted: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The multi-domain models ``train --model`` offers now, and why each other wanted one is skipped."""
    return [m for m in wanted if m in MODELS], {m: "not offered by train --model" for m in wanted if m not in MODELS}


def grid_features(options: GridOptions, domain: DomainSpec) -> tuple[list[str], str]:
    """The features a language's cells use, and where the list comes from."""
    if options.features:
        return list(options.features), "--features"
    try:
        return default_features(domain, options.features_dir), "stores"
    except StoreError:  # not extracted yet (a dry run): what extraction would produce here
        from extract.extractors import ExtractorSettings, extractor_class
        from extract.pipeline import available_features

        names, _ = available_features(None, ExtractorSettings().with_env_defaults())
        return [n for n in names if not extractor_class(n).input_of], "extractors available here (not extracted yet)"


def plan_cells(options: GridOptions, models: Sequence[str]) -> list[Cell]:
    """Every cell of the grid, in submission order (table 2 first, multi-domain last)."""
    grid = GridLayout(options.out.resolve())
    gpu = options.device.startswith("cuda")
    # train's own defaults, then the grid's settings of every cell, then --train-args (as train reads a command
    # line: the later option wins), the cell's folder last
    given, preset = settings_from_args(options.train_args, refused=NOT_IN_TRAIN_ARGS)
    common = {"train.epochs": options.epochs, "train.device": options.device,
              "features_dir": str(options.features_dir.resolve()), **given}
    seeds = range(options.first_seed, options.first_seed + options.seeds)
    cells: list[Cell] = []

    def add(name: str, folder: Path, domains: Sequence[DomainSpec], settings: dict, languages: Sequence[str], runs: int | None) -> None:
        if any(c.out == str(folder) for c in cells):  # the curve's K = all cells are table 3's
            return
        try:
            config = config_from_settings([str(d) for d in domains], {**settings, **common, "out": str(folder)}, preset=preset)
        except ConfigError as exc:  # as train refuses the command line: a usage error naming the option
            raise click.BadParameter(exc.problem, param_hint=option_of(exc.where)) from None
        cells.append(Cell(name, config, tuple(languages), runs, gpu))

    def one_seed(s: int) -> dict:
        return {"seeds": 1, "first_seed": s}

    features = {d.language: grid_features(options, d)[0] for d in options.domains}
    for d in options.domains:
        base = {"features": features[d.language]}
        if "single" in options.parts:
            for s in seeds:
                add(f"single {d.language} random seed {s}", grid.seed(grid.random(d.language), s), [d],
                    {**base, "protocol": "random", **one_seed(s)}, [d.language], 1)
        if "speaker" in options.parts:
            add(f"single {d.language} speaker", grid.speaker(d.language), [d],
                {**base, "protocol": "speaker", "folds": options.folds or None}, [d.language], options.folds)
        if "aux" in options.parts:
            for s in seeds:
                add(f"no_aux {d.language} seed {s}", grid.seed(grid.no_aux(d.language), s), [d],
                    {**base, "train.aux": False, **one_seed(s)}, [d.language], 1)
        if "features" in options.parts and len(features[d.language]) > 1:
            for f in features[d.language]:
                for s in seeds:
                    add(f"only_{f} {d.language} seed {s}", grid.seed(grid.only(f, d.language), s), [d],
                        {"features": [f], **one_seed(s)}, [d.language], 1)
    if MULTI_PARTS & set(options.parts) and len(options.domains) >= 2:
        shared = [f for f in features[options.domains[0].language] if all(f in v for v in features.values())]
        languages = [d.language for d in options.domains]
        for model in models:
            base = {"features": shared, "model": model}
            if "multi" in options.parts:
                for s in seeds:
                    add(f"multi {model} seed {s}", grid.seed(grid.multi(model), s), options.domains,
                        {**base, **one_seed(s)}, languages, 1)
            if "multi_speaker" in options.parts:  # each language's fold k is its single-domain fold k
                add(f"multi {model} speaker", grid.multi_speaker(model), options.domains,
                    {**base, "protocol": "speaker", "folds": options.folds or None}, languages, options.folds)
        if "curve" in options.parts:
            for target in languages:
                for k in options.shots:
                    for model in [SINGLE_MODEL, *models]:
                        if k == 0 and model != ZERO_SHOT:
                            continue
                        if model == SINGLE_MODEL:
                            domains, base = [options.domains[languages.index(target)]], {"features": features[target]}
                            trained, paper_name = [target], f"single {target} random"
                        else:
                            domains, base = options.domains, {"features": shared, "model": model}
                            trained, paper_name = languages, f"multi {model}"
                        # K = all: table 3's cell (planned once, under its own name)
                        name = paper_name if k is None else f"curve {target} {shot_name(k)} {model}"
                        few = {} if k is None else {"few_shot": {target: k}}
                        folder = grid.curve(target, k, model)
                        for s in seeds:
                            add(f"{name} seed {s}", grid.seed(folder, s), domains, {**base, **few, **one_seed(s)}, trained, 1)
    return cells


# ---------------------------------------------------------------------------------------------- cell state


def cell_state(cell: Cell) -> str:
    """``done``, ``todo``, or ``conflict: why`` (the folder holds runs of another configuration).

    A cell's identity is its configuration as the run fingerprint sees it (:func:`train.run_records.config_fingerprint`):
    the folder's finished runs must have been fitted under it. Their data is checked when the cell runs
    (:class:`train.run_records.RunState` refuses runs of other data).
    """
    folder = Path(cell.out)
    metrics = read_metrics(folder / "metrics.json")
    recorded = recorded_fingerprints(folder)
    ours = config_fingerprint(cell.config)
    for path, fp in recorded.items():
        theirs = (fp or {}).get("config")
        if theirs != ours:
            diff = differences(theirs, ours) if isinstance(theirs, dict) else ["(unreadable record)"]
            return (f"conflict: {path} is a run of another configuration (differs in: {', '.join(diff[:6])}); "
                    f"use another --out or remove the folder")
    if metrics is None:
        return "todo"
    if not recorded:
        return f"conflict: {folder}/metrics.json has no run records (runs/) of this toolkit; use another --out or remove it"
    missing = [lang for lang in cell.languages if lang not in metrics["domains_summary"]]
    if missing or (cell.runs is not None and len(metrics["runs"]) != cell.runs):
        return "todo"
    return "done"


@dataclass
class CellResult:
    name: str
    ok: bool
    seconds: float
    returncode: int | None = None
    error: str = ""
    host: str = field(default_factory=socket.gethostname)


def _death_signal():
    """Linux: a function for the child, before exec, so that the train subprocess gets SIGTERM when the worker
    that started it dies (no orphaned runs). Looked up here, in the parent: the child must not import."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def run_cell(cell: Cell, threads: int | None = None, in_process: bool = False) -> CellResult:
    """Dask task (or plain call): run one cell's ``train`` command, its output in ``<out>/train.log``."""
    folder = Path(cell.out)
    state = cell_state(cell)
    if state.startswith("conflict"):
        return CellResult(cell.name, False, 0.0, error=state)
    folder.mkdir(parents=True, exist_ok=True)
    cell.config.save(folder / CELL_CONFIG)  # what the subprocess runs (`train --config`), and a record for the reader
    log = folder / "train.log"
    start = time.perf_counter()
    if in_process:
        rc = _train_in_process(cell, threads, log)
    else:
        env = without_dask_trim(dict(os.environ))  # a remote worker's Dask setting slows training (sercore.cluster)
        if threads:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        with log.open("w") as f:
            rc = subprocess.run([sys.executable, "-m", "train.cli", "--config", str(folder / CELL_CONFIG)],
                                stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, preexec_fn=_death_signal()).returncode
    seconds = time.perf_counter() - start
    if rc != 0:
        return CellResult(cell.name, False, seconds, rc, f"train exited with status {rc}; {log}:\n{_tail(log)}")
    state = cell_state(cell)
    if state != "done":
        return CellResult(cell.name, False, seconds, rc, f"train finished but {folder}/metrics.json is not complete ({state})")
    return CellResult(cell.name, True, seconds, rc)


def _train_in_process(cell: Cell, threads: int | None, log: Path) -> int:
    """``run_experiment`` of the cell's configuration, its log in ``log``; the exit status ``train`` would give.
    torch's thread count is set to ``threads`` for the cell and restored afterwards (the process may go on)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with log.open("w") as f:
            echo = lambda line: print(line, file=f, flush=True)  # noqa: E731
            try:
                run_experiment(cell.config, log=echo)
            except SerError as exc:
                echo(f"error: {exc}")
                return exc.exit_code
            except Exception:  # noqa: BLE001 - a bug in one cell must not stop the others; its traceback is in the log
                traceback.print_exc(file=f)
                return 1
        return 0
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- the grid


def default_threads(workers: int, scheduler: str | None = None) -> int | None:
    """Torch threads per cell: $OMP_NUM_THREADS where set, else this machine's CPUs shared among ``workers``; None
    for a cluster at ``scheduler`` (its workers' own setting holds)."""
    if scheduler:
        return None
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def extract_command(options: GridOptions, domain: DomainSpec, workers: int, scheduler: str | None) -> list[str]:
    cmd = ["extract", "--dataset", domain.dataset, "--features-dir", str(options.features_dir),
           "--manifest-dir", str(options.manifest_dir), "--device", "cuda" if options.device.startswith("cuda") else "cpu"]
    if domain.root:
        cmd += ["--root", domain.root]
    if options.features:
        cmd += ["--features", ",".join(options.features)]
    cmd += ["--scheduler", scheduler] if scheduler else ["--workers", str(workers)]
    return cmd + list(options.extract_args)


def first_of_each_dataset(domains: Sequence[DomainSpec]) -> list[DomainSpec]:
    """One domain per dataset, in the order given (the first one names the corpus root)."""
    seen: dict[str, DomainSpec] = {}
    for d in domains:
        if d.dataset not in seen or (seen[d.dataset].root is None and d.root):
            seen[d.dataset] = d if d.dataset not in seen else replace(seen[d.dataset], root=d.root)
    return list(seen.values())


def run_extractions(options: GridOptions, workers: int, scheduler: str | None, echo: Echo) -> dict[str, str]:
    """Extract each dataset once, in order; returns the datasets that failed, with why."""
    failed = {}
    for d in first_of_each_dataset(options.domains):
        cmd = extract_command(options, d, workers, scheduler)
        echo(f"extract {d.dataset}: {shlex.join(cmd)}")
        start = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", "extract.cli", *cmd[1:]], stdin=subprocess.DEVNULL).returncode
        if rc != 0:
            failed[d.dataset] = f"extract exited with status {rc}"
            echo(f"FAILED extract {d.dataset} (status {rc}): its cells are not run")
        else:
            echo(f"extract {d.dataset}: done in {time.perf_counter() - start:.1f} s")
    return failed


def execute_cells(cells: list[Cell], workers: int, scheduler: str | None, threads: int | None, in_process: bool,
                  gpu: bool, echo: Echo, report: Callable[[CellResult], None]) -> None:
    """Run ``cells`` (:func:`run_cell`) as Dask tasks on a LocalCluster of ``workers`` processes (``gpu``: one per
    visible GPU, at most ``workers``) or on the cluster at ``scheduler``; ``workers`` 0 without a scheduler: one after
    the other in this process. ``report`` gets each cell's result as it finishes (a dead worker: a failed result)."""
    if workers == 0 and not scheduler:
        for cell in cells:
            report(run_cell(cell, threads, in_process))
        return
    from dask.distributed import as_completed

    from sercore.cluster import dask_client

    with dask_client(workers, scheduler, resources={"GPU": 1} if gpu else None, gpu=gpu, echo=echo) as client:
        futures = {client.submit(run_cell, cell, threads, in_process, pure=False,
                                 resources={"GPU": 1} if cell.gpu else None): cell for cell in cells}
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as exc:  # the worker died (killed, out of memory) or the task could not run
                result = CellResult(futures[future].name, False, 0.0, error=f"{type(exc).__name__}: {exc}")
            report(result)
            future.release()


def run_grid(options: GridOptions, *, workers: int = 2, scheduler: str | None = None, threads: int | None = None,
             in_process: bool = False, dry_run: bool = False, skip_extraction: bool = False, echo: Echo = print) -> int:
    """Extraction, cells, tables (module docstring). Returns the exit status: 0, or 1 if anything failed."""
    start = time.time()
    models, skipped_models = offered_models(options.models) if MULTI_PARTS & set(options.parts) else ([], {})
    if len(options.domains) < 2:
        skipped_models = {}
    failed_extraction: dict[str, str] = {}
    if not skip_extraction:
        if dry_run:
            for d in first_of_each_dataset(options.domains):
                echo(f"extract {d.dataset}: {shlex.join(extract_command(options, d, workers, scheduler))}")
        else:
            failed_extraction = run_extractions(options, workers, scheduler, echo)
    ok_domains = [d for d in options.domains if d.dataset not in failed_extraction]
    plan_options = replace(options, domains=ok_domains)
    cells = plan_cells(plan_options, models) if ok_domains else []
    for model, why in skipped_models.items():
        echo(f"skip  multi {model}: {why}")
    states = {c.name: cell_state(c) for c in cells}
    todo = [c for c in cells if states[c.name] == "todo"]
    done = [c for c in cells if states[c.name] == "done"]
    conflicts = {n: s for n, s in states.items() if s.startswith("conflict")}
    echo(f"grid: {len(cells)} cells, {len(done)} done already, {len(todo)} to run, {len(conflicts)} in conflict -> {options.out}")
    if dry_run:
        for c in cells:
            echo(f"{states[c.name].split(':')[0]:8s} {c.name}: {shlex.join(c.command)}")
        return 0

    results: dict[str, CellResult] = {n: CellResult(n, False, 0.0, error=s) for n, s in conflicts.items()}
    for n, s in conflicts.items():
        echo(f"FAILED {n}: {s}")
    counter = {"n": len(done)}

    def report(r: CellResult) -> None:
        results[r.name] = r
        counter["n"] += 1
        if r.ok:
            echo(f"[{counter['n']}/{len(cells)}] ok     {r.name} ({r.seconds:.0f} s on {r.host})")
        else:
            echo(f"[{counter['n']}/{len(cells)}] FAILED {r.name}: {r.error}")

    threads = threads or default_threads(workers, scheduler)
    if todo:
        execute_cells(todo, workers, scheduler, threads, in_process, options.device.startswith("cuda"), echo, report)
    failures = {n: r.error for n, r in results.items() if not r.ok}
    options.out.mkdir(parents=True, exist_ok=True)
    write_tables(options.out, skipped_models)
    summary = {
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)),
        "wall_seconds": round(time.time() - start, 1),
        "workers": workers, "scheduler": scheduler, "threads": threads,
        "cells": {c.name: {"folder": c.out, "command": c.command,
                           "state": "done before" if c in done else ("ok" if results.get(c.name, CellResult(c.name, False, 0)).ok else "failed"),
                           "seconds": round(results[c.name].seconds, 1) if c.name in results else None,
                           "host": results[c.name].host if c.name in results else None} for c in cells},
        "failed": failures, "failed_extraction": failed_extraction, "skipped_models": skipped_models,
    }
    (options.out / "grid.json").write_text(json.dumps(summary, indent=2))
    echo(f"tables -> {options.out / 'tables.md'}, {options.out / 'tables.csv'}; "
         f"{len(cells) - len(failures)}/{len(cells)} cells done in {time.time() - start:.0f} s")
    if failures or failed_extraction:
        echo(f"{len(failures)} cell(s) and {len(failed_extraction)} extraction(s) failed:")
        for n, why in {**failed_extraction, **failures}.items():
            echo(f"  {n}: {why.splitlines()[0] if why else ''}")
        return EXIT_PARTIAL
    return 0


@click.command("grid", context_settings={"help_option_names": ["-h", "--help"]}, help=__doc__.split("\n\n")[0],
               epilog=epilog(__doc__.split("\n\n")[1], ["TRAIN_ARGS", "EXTRACT_ARGS", "OMP_NUM_THREADS"]))
@click.argument("domains", nargs=-1)
@click.option("--out", default="runs/grid", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seeds", type=ranged_type(ExperimentConfig, "seeds"), default=5, show_default=True, help="Seeds per random-protocol configuration.")
@click.option("--first-seed", type=ranged_type(ExperimentConfig, "first_seed"), default=0, show_default=True)
@click.option("--epochs", type=ranged_type(TrainConfig, "epochs"), default=None,
              help="Epochs of every cell [default: train's: 40 (the tuned preset), 20 with --train-args '--preset paper'].")
@click.option("--features", default=None, help="Comma-separated features for every cell (and extraction) [default: every feature in the stores].")
@click.option("--folds", type=ranged_type(ExperimentConfig, "folds"), default=None, help="Speaker protocol: speaker folds [default: one per speaker].")
@click.option("--parts", default=",".join(DEFAULT_PARTS), show_default=True,
              help="Which parts of the grid: single (random protocol), speaker, aux (without the aux loss), features (each alone), "
                   "multi (the multi-domain models, random protocol), multi_speaker (the same, speaker protocol); "
                   "curve (each language's learning curve over --shots, not in the paper).")
@click.option("--shots", default="0,5,20,all", show_default=True, metavar="K,...",
              help="Part curve: labelled training utterances per emotion of the target language; all = its whole split; "
                   "0 = zero-shot (base only).")
@click.option("--models", default=",".join(MULTIDOMAIN_MODELS), show_default=True, help="Multi-domain models to run (those train offers).")
@click.option("--workers", type=WORKERS, default=2, show_default=True,
              help="LocalCluster worker processes (one cell each at a time); 0: cells one by one in this process.")
@click.option("--threads", type=THREADS, default=None, help="Torch/OpenMP threads per cell [default: $OMP_NUM_THREADS, else CPUs / workers].")
@click.option("--scheduler", default=None,
              help="An existing Dask cluster instead of a LocalCluster: its scheduler's address or scheduler file (mgser cluster slurm).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (cells then ask Dask for the worker resource GPU=1).")
@click.option("--features-dir", default="features", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--manifest-dir", default="data_manifests", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--train-args", default="", envvar="TRAIN_ARGS", help="Extra train arguments for every cell (or $TRAIN_ARGS), e.g. '--no-checkpoints'.")
@click.option("--extract-args", default="", envvar="EXTRACT_ARGS", help="Extra extract arguments (or $EXTRACT_ARGS), e.g. '--wav2vec-checkpoint F'.")
@click.option("--skip-extraction", is_flag=True, help="Use the stores as they are (no extract step).")
@click.option("--in-process", is_flag=True, help="Run train as a library call in the worker instead of a subprocess.")
@click.option("--dry-run", is_flag=True, help="List the extraction commands and every cell with its state; run nothing.")
@click.option("--tables-only", is_flag=True, help="Only rebuild the tables from the run folders under --out.")
@common_options
def main(domains, out, seeds, first_seed, epochs, features, folds, parts, shots, models, workers, threads, scheduler, device,
         features_dir, manifest_dir, train_args, extract_args, skip_extraction, in_process, dry_run, tables_only,
         verbose, quiet) -> None:
    """The paper's experiment grid for LANG=DATASET[:ROOT] domains, resumable, on a local or remote Dask cluster."""
    if tables_only:
        write_tables(out)
        click.echo(f"tables -> {out / 'tables.md'}, {out / 'tables.csv'}")
        return
    if not domains:
        raise click.UsageError("give at least one domain LANG=DATASET[:ROOT], e.g. de=emodb:/data/emodb en=demo")
    parts_list = tuple(name_list(parts, "--parts") or ())
    unknown = [p for p in parts_list if p not in PARTS]
    if unknown:
        raise click.BadParameter(f"unknown part(s) {', '.join(unknown)} (known: {', '.join(PARTS)})", param_hint="--parts")
    model_list = tuple(name_list(models, "--models") or ())
    shot_list = tuple(parse_shots(shots))
    if "curve" in parts_list and 0 in shot_list and ZERO_SHOT not in model_list:
        raise click.BadParameter(f"--shots 0 (zero-shot) is run by the model {ZERO_SHOT} only; add it to --models", param_hint="--shots")
    options = GridOptions(parse_domains(domains), out, seeds, first_seed, epochs, name_list(features, "--features"), folds, parts_list,
                          model_list, shot_list, device, features_dir, manifest_dir, tuple(shlex.split(train_args)),
                          tuple(shlex.split(extract_args)))
    with command_errors(verbose, quiet):
        if scheduler is None and not dry_run:  # a cluster's workers may have the CUDA this machine lacks
            try:
                check_device(device)  # no CUDA: an environment error (4)
            except ConfigError as exc:
                raise click.BadParameter(exc.problem, param_hint="--device") from None
        status = run_grid(options, workers=workers, scheduler=scheduler, threads=threads, in_process=in_process,
                          dry_run=dry_run, skip_extraction=skip_extraction, echo=say)
    sys.exit(status)


if __name__ == "__main__":
    main()
