"""Where a grid keeps its run folders (one ``train`` run each): defined here once, for the grid that writes
them (:func:`train.studies.grid.plan_cells`) and the tables that read them (:func:`train.studies.paper_tables.build_tables`)::

    single/<lang>/random/seed<k>/     single-domain model, random protocol (tables 2, 3, 4)
    single/<lang>/speaker/            speaker-independent protocol, every fold in one folder (table 2)
    no_aux/<lang>/seed<k>/            without the auxiliary loss (table 4)
    only_<feature>/<lang>/seed<k>/    one feature alone (figure 4a)
    multi/<model>/seed<k>/            a multi-domain model over all languages (table 3)
    multi/<model>/speaker/            the same, speaker-independent protocol, every fold in one folder (table 3)
    curve/<lang>/k<K>/<model>/seed<k>/  <lang> limited to K training utterances per emotion (the learning curve);
                                      at K = all the curve reads table 3's folders (``single/<lang>/random``, ``multi/<model>``)

An *experiment* folder (``single/de/random``, ``multi/nas``) holds one ``seed<k>`` folder per seed, except
the speaker protocol's, which is itself the run folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..config import MULTIDOMAIN_MODELS, SINGLE_MODEL

ONLY = "only_"


def shot_name(k: int | None) -> str:
    """The folder and table name of K training utterances per emotion: ``k5``, or ``all`` (None: the whole split)."""
    return "all" if k is None else f"k{k}"


def natural_key(path: Path) -> list:
    """``seed10`` after ``seed9``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


@dataclass(frozen=True)
class GridLayout:
    root: Path

    # experiment folders
    def random(self, language: str) -> Path:
        return self.root / "single" / language / "random"

    def speaker(self, language: str) -> Path:
        return self.root / "single" / language / "speaker"

    def no_aux(self, language: str) -> Path:
        return self.root / "no_aux" / language

    def only(self, feature: str, language: str) -> Path:
        return self.root / f"{ONLY}{feature}" / language

    def multi(self, model: str) -> Path:
        return self.root / "multi" / model

    def multi_speaker(self, model: str) -> Path:
        return self.multi(model) / "speaker"

    def curve(self, target: str, k: int | None, model: str) -> Path:
        """The experiment of ``model`` with ``target`` limited to K utterances per emotion (K = None: all, table 3's)."""
        if k is None:
            return self.random(target) if model == SINGLE_MODEL else self.multi(model)
        return self.root / "curve" / target / shot_name(k) / model

    def curve_root(self, target: str) -> Path:
        """Where the learning curve of ``target`` is written (``curve.md``, ``curve.png``, ...)."""
        return self.root / "curve" / target

    @staticmethod
    def seed(experiment: Path, seed: int) -> Path:
        """The run folder of one seed of an experiment."""
        return experiment / f"seed{seed}"

    @staticmethod
    def seed_metrics(experiment: Path) -> list[Path]:
        """The ``metrics.json`` of every seed folder of an experiment, in seed order."""
        return sorted(experiment.glob("seed*/metrics.json"), key=natural_key)

    # what a grid folder holds
    def languages(self) -> list[str]:
        """Languages with a single-domain experiment: the random/speaker ones first, then ablations, sorted within."""
        dirs = lambda base: {p.name for p in base.glob("*") if p.is_dir()}  # noqa: E731
        out = sorted(dirs(self.root / "single"))
        out += sorted(set().union(*[dirs(d) for d in self.root.glob(f"{ONLY}*")]) - set(out))
        out += sorted(dirs(self.root / "no_aux") - set(out))
        return out

    def features(self) -> list[str]:
        """Features with a one-feature ablation, sorted."""
        return sorted(d.name[len(ONLY):] for d in self.root.glob(f"{ONLY}*") if d.is_dir())

    def curve_targets(self) -> list[str]:
        """Languages with a learning curve (any ``curve/<lang>/k<K>`` folder), sorted."""
        return sorted(p.name for p in (self.root / "curve").glob("*") if p.is_dir() and any(p.glob("k*")))

    def curve_shots(self, target: str) -> list[int]:
        """The K of ``target``'s ``curve/<lang>/k<K>`` folders, ascending (K = all is table 3's, not listed here)."""
        return sorted(int(p.name[1:]) for p in self.curve_root(target).glob("k*") if p.is_dir() and p.name[1:].isdigit())

    def models(self) -> list[str]:
        """Multi-domain models with an experiment folder: the paper's in table 3's order, then any other, sorted."""
        base = self.root / "multi"
        found = [m for m in MULTIDOMAIN_MODELS if (base / m).is_dir()]
        return found + sorted(p.name for p in base.glob("*") if p.is_dir() and p.name not in MULTIDOMAIN_MODELS)
