"""Finished runs on disk, so that a killed ``train`` resumes from its last finished run instead of refitting.

Layout under the run folder (``config.out``)::

    runs/run<k>.pt      the run's best weights, aux-loss parameters and scalers (the format of
                        ``checkpoints/run<k>.pt``), written under a temporary name and renamed into place
    runs/run<k>.json    the run's record: seed/fold, test speakers, valid/test scores with per-utterance
                        predictions and class probabilities, per-epoch history, best epoch, seconds, the mixing details of
                        multi-domain models, the SHA-256 of ``run<k>.pt`` and the fingerprint it was fitted
                        under; written last (also atomically), so its presence means "run k is finished"
    provenance.json     at the end: library versions, git commit, the fingerprint, the data hashes and the
                        SHA-256 of every run's checkpoint

The **fingerprint** is everything that decides a run's result: the configuration (minus what does not:
the output folder, the number of seeds, whether checkpoints are copied, progress bars, the stores' folder
name; plus, under the random protocol from seed 0, which split seed 0 is), a SHA-256 over the data actually
read (utterance ids, labels, speakers, store splits, every feature array, and the extractor provenance), the model name, the torch version,
the SHA-256 of a warm start's checkpoint (``--init-from``) and, for ``--transfer-to``, the same SHA-256 over each
source corpus and ``--unlabelled`` corpus it reads. On a rerun,
:class:`RunState` loads every finished run whose fingerprint matches (its metrics come back exactly as
written) and refits the others; a finished run with another fingerprint is refused with a message saying
what differs, since mixing it in would put two experiments' runs in one table. ``train --overwrite``
removes the run records and the outputs computed from them first, in the run folders this command writes
and nowhere else (:func:`clear`, :func:`owned_run_folders`). A record whose checkpoint is missing or does not match
its hash (a kill between the two renames, a hand-edited folder) is refitted, with a note.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sercore.errors import DataError
from sercore.fsio import file_sha256, hash_array, write_atomic

from .config import HEAD_MODELS
from .fit_run import RunResult
from .protocol import STORES_SEED
from .metrics import Scores
from .network_trainer import Evaluation, FitResult
from .warm_start import checkpoint_digest

FORMAT_VERSION = 1
RUNS_DIR = "runs"
#: Configuration fields that do not change a run's result (and may differ between a run and its resumption).
VOLATILE = ("out", "seeds", "save_checkpoints", "features_dir")
VOLATILE_TRAIN = ("progress", "max_batch_gb")
#: Configuration fields added after run folders were first written, with the value that does what the toolkit
#: did before they existed: left out of the fingerprint at that value, so those folders still resume.
#: Dotted paths; ``*`` stands for any key of a dict (per-feature encoder overrides).
ADDED_FIELDS = {"frame_stride": 1, "encoders.*.frame_stride": 1, "multidomain.gate_bias": False,
                "multidomain.gate_lr_scale": 1.0, "multidomain.expert_norm": False,
                "multidomain.gate_init": {}, "few_shot": {}, "train.epoch_size": None,
                "train.time_mask": 0.0, "train.feature_mask": 0.0, "train.mixup": 0.0,
                "few_shot_valid": False, "transfer_sources": [], "transfer_unlabelled": [],
                "init_from": None, "train.speaker_adversarial": 0.0}
#: Keys added to the fit state in a checkpoint file (the rest is ``FitResult.state``).
_CHECKPOINT_META = ("classes", "features", "domains", "run", "seed", "fold", "config")


class RunFolderError(DataError):
    """A run folder that holds finished runs of another configuration or data."""


# --------------------------------------------------------------------------------------------------
# Fingerprints and provenance


def data_digest(data) -> str:
    """SHA-256 over what a domain feeds the trainer (a :class:`train.domains.DomainData`), in its fixed order."""
    h = hashlib.sha256()
    h.update(json.dumps([str(data.spec), data.utt_ids, data.speakers, data.emotions, data.store_splits,
                         data.provenance], sort_keys=True, default=str).encode())
    for name in sorted(data.features):
        h.update(name.encode())
        for a in data.features[name]:
            hash_array(h, np.asarray(a, dtype=np.float32))
    return h.hexdigest()


def config_fingerprint(config) -> dict:
    """The configuration's part of the fingerprint: every field but the :data:`VOLATILE` ones, as JSON values."""
    cfg = config.to_dict()
    for key in VOLATILE:
        cfg.pop(key, None)
    for key in VOLATILE_TRAIN:
        cfg.get("train", {}).pop(key, None)
    for path, value in ADDED_FIELDS.items():
        _drop_at(cfg, path.split("."), value)
    if cfg.get("protocol") == "random" and cfg.get("first_seed") == STORES_SEED:
        # seed 0 trains and tests on the stores' split (it used to redraw a split with seed 0): runs fitted
        # before that are of another experiment
        cfg["seed_0_split"] = "stores"
    if cfg.get("few_shot") and not cfg.get("few_shot_valid"):
        # a few-shot language's validation split is no longer used (K labelled utterances per emotion in all):
        # few-shot runs fitted before that, which chose the epoch on it, are of another experiment
        cfg["few_shot_labels"] = "K per emotion in all"
    if cfg.get("train", {}).get("speaker_norm") and (cfg.get("model") in HEAD_MODELS or cfg.get("transfer_sources")):
        # the heads' pooled statistics are standardised per speaker in float64 (they were in float32): runs
        # fitted before that are of another experiment
        cfg["pooled_precision"] = "float64"
    return json.loads(json.dumps(cfg, sort_keys=True, default=str))


def _drop_at(d: dict, keys: list[str], value) -> None:
    """Remove the dotted path ``keys`` from the nested dict ``d`` where it holds ``value``."""
    head, rest = keys[0], keys[1:]
    for key in (list(d) if head == "*" else [head]):
        if not rest:
            if key in d and d[key] == value:
                del d[key]
        elif isinstance(d.get(key), dict):
            _drop_at(d[key], rest, value)


def fingerprint(config, domain_data, features) -> dict:
    """What decides the results of the runs of ``config`` on ``domain_data`` (see the module docstring)."""
    return {
        "format_version": FORMAT_VERSION,
        "config": config_fingerprint(config),
        "features": list(features),
        "data": {str(d.spec): data_digest(d) for d in domain_data},
        "torch": torch.__version__,
        # the warm start's content, not only its path: a checkpoint trained again is another experiment
        **({"init_from_sha256": checkpoint_digest(config.init_from)} if config.init_from else {}),
        # --transfer-to's source corpora and --unlabelled recordings, by content: one extracted again is another
        # experiment
        **({"transfer_data": transfer_digests(config, features)} if config.transfer_sources else {}),
    }


def transfer_digests(config, features) -> dict:
    """:func:`data_digest` of every corpus ``train --transfer-to`` reads besides the target."""
    from .transfer import transfer_data

    return {role: {spec: data_digest(d) for spec, d in corpora.items()}
            for role, corpora in transfer_data(config, features).items()}


def digest(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()


def differences(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two JSON-like dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def git_commit(path: str | Path | None = None) -> str:
    """The commit of the git checkout holding this package (``+dirty`` if it has changes), or ``unknown``."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict:
    """Library versions, Python, machine and git commit: what a run folder records about where it ran."""
    from importlib import metadata

    versions = {}
    for pkg in ("torch", "numpy", "h5py", "scikit-learn", "librosa", "resemblyzer", "soundfile", "mgser"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    import torch

    versions["torch"] = torch.__version__  # with the build tag (+cpu, +cu130) that the package metadata may lack
    return {"versions": versions, "python": platform.python_version(), "machine": platform.machine(),
            "git_commit": git_commit()}


# --------------------------------------------------------------------------------------------------
# Atomic writes


def write_json_atomic(path: Path, obj) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str)))


def torch_bytes(obj) -> bytes:
    """``torch.save`` into memory. Written to disk with Python's own file calls, a full disk or a read-only folder is
    an ``OSError`` with its errno and path (torch's writer turns it into an untyped RuntimeError)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_checkpoint_atomic(path: Path, checkpoint: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = torch_bytes(checkpoint)
    write_atomic(path, lambda tmp: tmp.write_bytes(data))


# --------------------------------------------------------------------------------------------------
# Evaluations <-> JSON


def _evaluation_to_json(e: Evaluation) -> dict:
    return {"scores": {str(d): s.as_dict() for d, s in e.scores.items()}, "loss": e.loss,
            "labels": e.labels.tolist(), "predictions": e.predictions.tolist(), "domains": e.domains.tolist(),
            "utt_ids": list(e.utt_ids),
            **({"probabilities": np.asarray(e.probabilities, dtype=np.float64).tolist()} if e.probabilities is not None else {})}


def _evaluation_from_json(d: dict) -> Evaluation:
    # Representations and per-row extras are not kept: every output is written from scores and details.
    probabilities = np.asarray(d["probabilities"], dtype=np.float32) if "probabilities" in d else None
    return Evaluation({int(k): Scores(**v) for k, v in d["scores"].items()}, d["loss"], np.asarray(d["labels"]),
                      np.asarray(d["predictions"]), np.asarray(d["domains"]), np.zeros((len(d["labels"]), 0), np.float32),
                      list(d["utt_ids"]), probabilities=probabilities)


@dataclass
class RunState:
    """The finished runs of one run folder under one fingerprint. See the module docstring."""

    out: Path
    fingerprint: dict
    log: Callable[[str], None] = print

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.folder = self.out / RUNS_DIR
        self.key = digest(self.fingerprint)
        self.check()

    def record_path(self, run: int) -> Path:
        return self.folder / f"run{run}.json"

    def checkpoint_path(self, run: int) -> Path:
        return self.folder / f"run{run}.pt"

    def check(self) -> None:
        """Refuse a folder holding finished runs fitted under another fingerprint (before anything is written)."""
        for path in record_paths(self.out):
            try:
                record = json.loads(path.read_text())
                theirs = record["fingerprint"]
            except (OSError, ValueError, KeyError, TypeError):
                raise RunFolderError(path, "unreadable run record; remove it or start over with `train --overwrite`") from None
            if digest(theirs) != self.key:
                diff = differences(theirs, self.fingerprint)
                shown = ", ".join(diff[:6]) + (f" and {len(diff) - 6} more" if len(diff) > 6 else "")
                raise RunFolderError(path, f"this run folder holds a finished run of another configuration or data "
                                           f"(differs in: {shown}); use another --out, or `train --overwrite` to start over")

    def load(self, run: int):
        """The finished run ``run`` as a :class:`train.fit_run.RunResult`, or None if it must be fitted."""
        path = self.record_path(run)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        ckpt_path = self.checkpoint_path(run)
        if not ckpt_path.is_file() or file_sha256(ckpt_path) != record["checkpoint_sha256"]:
            self.log(f"  note: {ckpt_path} is missing or does not match its record; run {run} is fitted again")
            return None
        # Our own file, checked against the hash in its record; scalers are numpy arrays, hence weights_only=False.
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        state = {k: v for k, v in checkpoint.items() if k not in _CHECKPOINT_META}
        fit = FitResult(record["best_epoch"], _evaluation_from_json(record["valid"]), _evaluation_from_json(record["test"]),
                        record["history"], record["seconds"], state)
        return RunResult(record["run"], record["seed"], record["fold"], fit, record["test_speakers"], record["details"])

    def save(self, result: RunResult, checkpoint: dict) -> str:
        """Commit a finished run: its checkpoint, then its record. Returns the checkpoint's SHA-256."""
        self.folder.mkdir(parents=True, exist_ok=True)
        ckpt_path = self.checkpoint_path(result.run)
        save_checkpoint_atomic(ckpt_path, checkpoint)
        sha = file_sha256(ckpt_path)
        fit = result.fit
        write_json_atomic(self.record_path(result.run), {
            "format_version": FORMAT_VERSION, "run": result.run, "seed": result.seed, "fold": result.fold,
            "test_speakers": result.test_speakers, "details": result.details, "best_epoch": fit.best_epoch,
            "seconds": fit.seconds, "history": fit.history, "valid": _evaluation_to_json(fit.valid),
            "test": _evaluation_to_json(fit.test), "checkpoint_sha256": sha, "fingerprint": self.fingerprint,
            "git_commit": git_commit(),
        })
        return sha

    def copy_checkpoint(self, run: int, dest: Path) -> None:
        """``checkpoints/run<k>.pt``: a hard link to (or atomic copy of) the run's checkpoint."""
        src = self.checkpoint_path(run)
        if dest.exists() and os.path.samefile(src, dest):
            return  # rename() onto another link of the same file would do nothing and leave the temporary name

        def link_or_copy(tmp: Path) -> None:
            tmp.unlink(missing_ok=True)
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)

        write_atomic(dest, link_or_copy)

    def write_provenance(self, runs: list[int], domain_data) -> Path:
        """``provenance.json``: versions, git commit, fingerprint, data hashes, store files, checkpoint hashes."""
        checkpoints = {}
        for k in runs:
            path = self.record_path(k)
            if path.is_file():
                checkpoints[f"run{k}"] = json.loads(path.read_text())["checkpoint_sha256"]
        path = self.out / "provenance.json"
        write_json_atomic(path, {
            **environment(), "fingerprint_sha256": self.key, "fingerprint": self.fingerprint,
            "stores": {str(p): {"bytes": p.stat().st_size} for d in domain_data for p in d.paths if p.is_file()},
            "extractors": {str(d.spec): d.provenance for d in domain_data}, "checkpoints_sha256": checkpoints,
        })
        return path


def record_paths(out: str | Path) -> list[Path]:
    """The run records (``runs/run<k>.json``) of run folder ``out``, in run order; [] when it has none."""
    folder = Path(out) / RUNS_DIR
    paths = folder.glob("run*.json") if folder.is_dir() else []
    return sorted(paths, key=lambda p: (0, int(p.stem[3:]), "") if p.stem[3:].isdigit() else (1, 0, p.name))


def recorded_fingerprints(out: str | Path) -> dict[Path, dict | None]:
    """The fingerprint each finished run of run folder ``out`` was fitted under (None: an unreadable record)."""
    found = {}
    for path in record_paths(out):
        try:
            found[path] = json.loads(path.read_text())["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError):
            found[path] = None
    return found


#: What ``--overwrite`` removes from a run folder besides ``runs/``: every output computed from the runs, so that
#: a killed fresh start never leaves the old configuration's metrics beside the new ``config.json``.
DERIVED = ("checkpoints", "metrics.json", "metrics.csv", "provenance.json", "model.bundle")


def clear(folder: str | Path) -> list[Path]:
    """``train --overwrite``: forget the finished runs of the run folder ``folder`` (its ``runs/`` and what was
    computed from them, :data:`DERIVED`). Nothing else is touched: not other files of the folder, and not other
    experiments in folders below it (a parent folder of several experiments stays as it is; the command
    clears each run folder it writes itself, see :func:`owned_run_folders`). Returns ``[folder]`` if it held
    finished runs or their outputs, else ``[]``."""
    folder = Path(folder)
    targets = [folder / name for name in (RUNS_DIR, *DERIVED) if (folder / name).exists() or (folder / name).is_symlink()]
    for target in targets:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    return [folder] if targets else []


def owned_run_folders(out: str | Path, models: list[str] | None = None, ablations: bool = False) -> list[Path]:
    """The run folders one ``train`` command writes under ``out``: ``out`` itself; ``out/<model>`` for each
    model of a comparison (``--model a,b``); ``out/ablations/<variant>`` for ``--ablations`` (the variants of
    :func:`train.studies.ablations.ablation_configs`: all_features, no_aux, only_<feature>)."""
    out = Path(out)
    if ablations:
        root = out / "ablations"
        variants = sorted(p for p in root.iterdir() if p.is_dir() and (p.name in ("all_features", "no_aux")
                                                                        or p.name.startswith("only_"))) if root.is_dir() else []
        return variants
    if models and len(models) > 1:
        return [out / m for m in models]
    return [out]
