"""The paper's tables, filled from a grid's run folders only: their ``metrics.json`` and, to pair runs, their run records.

    python -m train.studies.paper_tables runs/grid          # (re)write runs/grid/tables.md, tables.csv, figure4a.png

The folders are those :mod:`train.studies.grid` writes, one ``train`` run each, laid out as :mod:`train.studies.grid_layout` says.
Table 3 also pairs each multi-domain model with the single-domain model of each language, run by run (same seed or
fold), keeping a pair only when the run records (``runs/run<k>.json``) show the same test utterances, and gives
the mean difference of test UA with its 95% t interval (:class:`Paired`), and likewise each multi-domain model
against the one before it in the paper's order (base < sb < omoe < mmoe < nas). Each gated model's table-3 runs are pooled over their seed
folders into ``multi/<model>/gates.csv``, ``gates.png``, ``gates_differ.csv`` (``nas.csv``, ``nas.png``), as one
``train --seeds N`` would write them (:mod:`train.gate_reports`). A grid with the part ``curve`` also gets
each target language's learning curve, written as ``train --learning-curve`` writes it (``curve/<lang>/curve.md``,
``.csv``, ``.json``, ``.png``; :mod:`train.studies.learning_curve`) and summed up in ``tables.md``.

An experiment's figure for one language is the mean and the sample standard deviation (ddof=1, as
``train`` reports them) over every run of every folder of the experiment: the seeds of the random
protocol, the folds of the speaker protocol. A folder whose ``metrics.json`` is missing or unreadable
(a cell that failed or has not run yet) contributes nothing and the table says how many runs it holds.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sercore.tables import write_csv

from ..config import MULTIDOMAIN_MODELS, SINGLE_MODEL, DomainSpec
from .learning_curve import ZERO_SHOT, curve_markdown, curve_table, target_uas, write_curve
from .grid_layout import GridLayout, natural_key, shot_name
from ..gate_reports import final_gates, gate_differences, gate_rows, write_traces
from ..metrics import paired_interval, run_summary
from ..plots import plot_differences
from ..run_records import RUNS_DIR

#: Table 2 of the paper ("Ours", random protocol), quoted under our table 2 for comparison.
PAPER_TABLE2 = {"de": (0.957, 0.954), "fr": (0.871, 0.851)}


@dataclass
class Stat:
    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Stat":
        return cls(**run_summary(values))

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}"


@dataclass
class Result:
    """One experiment on one language: WA and UA over its runs, and where they came from."""

    experiment: str  # e.g. "single/de/random", "multi/nas"
    language: str
    dataset: str
    features: list[str]
    ua: Stat
    wa: Stat
    files: list[str] = field(default_factory=list)
    epochs: int = 0  # the most epochs a run trained (its history); fewer only with early stopping

    @property
    def runs_label(self) -> str:
        return f"{self.ua.n}×{self.epochs}"


def read_metrics(path: Path) -> dict | None:
    """A run folder's metrics, or None when the file is missing or not a complete ``train`` output."""
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or not m.get("runs") or not isinstance(m.get("domains_summary"), dict):
        return None
    return m


def aggregate(files: list[Path], language: str, experiment: str) -> Result | None:
    """Every run of ``language`` in ``files``; None when no file holds one."""
    ua, wa, used, dataset, features, epochs = [], [], [], "", [], 0
    for path in sorted(files, key=natural_key):
        m = read_metrics(path)
        if m is None or language not in m["domains_summary"]:
            continue
        for run in m["runs"]:
            scores = run["test"][language]
            ua.append(scores["ua"])
            wa.append(scores["wa"])
            epochs = max(epochs, len(run.get("history") or []))
        used.append(str(path))
        dataset = m["domains_summary"][language].get("dataset", "")
        features = list(m.get("features", []))
    if not ua:
        return None
    return Result(experiment, language, dataset, features, Stat.of(ua), Stat.of(wa), used, epochs)


@dataclass
class Paired:
    """A multi-domain model minus the single-domain model on one language: test UA of runs matched by seed or fold
    that tested the same utterances (checked on the run records), mean and 95% t interval over those runs."""

    diff: float
    low: float
    high: float
    n: int
    unpaired: int = 0  # runs of the model without a single-domain partner on the same utterances

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.diff:+.3f} (n={self.n})"
        return f"{self.diff:+.3f} [{self.low:+.3f}, {self.high:+.3f}] (n={self.n})"


@dataclass
class Tables:
    languages: list[str]
    features: list[str]  # single-feature ablations found, in figure order
    table2: dict[tuple[str, str], Result]  # (language, protocol)
    table3: dict[tuple[str, str], Result]  # (model, language); model "single" is the one-language reference
    table4: dict[tuple[str, bool], Result]  # (language, aux)
    ablation: dict[tuple[str, str], Result]  # (language, feature or "all")
    multi_models: list[str] = field(default_factory=list)
    table3_speaker: dict[tuple[str, str], Result] = field(default_factory=dict)  # the same, speaker protocol
    #: (protocol, model, language) -> the model minus single, paired (table 3's last columns)
    paired: dict[tuple[str, str, str], Paired] = field(default_factory=dict)
    #: (protocol, before, model, language) -> the model minus the one before it in the paper's order
    #: (base < sb < omoe < mmoe < nas; models without runs under the protocol skipped)
    steps: dict[tuple[str, str, str, str], Paired] = field(default_factory=dict)
    #: target language -> its learning curve (:func:`train.studies.learning_curve.curve_table`)
    curves: dict[str, dict] = field(default_factory=dict)
    #: gated model -> its table-3 runs (random protocol) pooled over the seed folders (:class:`SeedGates`)
    gates: dict[str, "SeedGates"] = field(default_factory=dict)

    def results(self) -> list[tuple[str, str, Result]]:
        """(table, row, result) for every filled cell, in table order."""
        rows = [("table2", protocol, r) for (lang, protocol), r in self.table2.items()]
        rows += [("table3", model, r) for (model, lang), r in self.table3.items()]
        rows += [("table3_speaker", model, r) for (model, lang), r in self.table3_speaker.items()]
        rows += [("table4", "aux" if aux else "no_aux", r) for (lang, aux), r in self.table4.items()]
        rows += [("figure4a", feature, r) for (lang, feature), r in self.ablation.items()]
        return rows


def _test_utterances(folder: Path, run: int, domain: int | None) -> list[str] | None:
    """The utterances run ``run`` of a run folder tested for its ``domain``-th language (its record in ``runs/``),
    or None (also when the language's index is unknown)."""
    if domain is None:
        return None
    try:
        test = json.loads((folder / RUNS_DIR / f"run{run}.json").read_text())["test"]
        return [u for u, d in zip(test["utt_ids"], test["domains"]) if d == domain]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _runs_by_split(files: list[Path], language: str) -> dict[tuple, tuple[float, Path, int, int | None]]:
    """(seed, fold) -> (test UA, run folder, run index, the language's index among the folder's domains) of every run
    of ``language`` in ``files``; each metrics.json is read once."""
    out = {}
    for path in files:
        m = read_metrics(path)
        if m is None or language not in m["domains_summary"]:
            continue
        try:
            languages = [DomainSpec.parse(d).language for d in m["domains"]]
            domain = languages.index(language)
        except (KeyError, TypeError, ValueError):
            domain = None  # its runs cannot be paired
        for run in m["runs"]:
            out[(run.get("seed"), run.get("fold"))] = (run["test"][language]["ua"], path.parent, run["run"], domain)
    return out


def paired_difference(reference: list[Path], model: list[Path], language: str) -> Paired | None:
    """The model's runs minus the reference's on the same split (seed or fold) and the same test utterances."""
    a, b = _runs_by_split(reference, language), _runs_by_split(model, language)
    diffs = []
    for key, (ua, folder, run, domain) in b.items():
        partner = a.get(key)
        if partner is None:
            continue
        theirs = _test_utterances(*partner[1:])
        if theirs is not None and theirs == _test_utterances(folder, run, domain):
            diffs.append(ua - partner[0])
    if not diffs:
        return None
    diff, low, high = paired_interval(diffs)
    return Paired(diff, low, high, len(diffs), len(b) - len(diffs))


@dataclass
class SeedGates:
    """A gated multi-domain model's gate traces over the seed folders of its table-3 experiment (one run each),
    pooled as if one ``train --seeds N`` had run them: keyed by seed."""

    languages: list[str]
    experts: list[str]
    histories: dict[int, list[dict]]  # seed -> its run's per-epoch history

    def rows(self) -> list:
        """The rows of ``gates.csv`` (:func:`train.gate_reports.gate_rows`), run = seed."""
        return gate_rows(self.histories, self.languages, self.experts)

    def final_weights(self) -> dict[tuple[str, str], Stat]:
        """(language, expert) -> the mean gate weight at each run's last epoch, over runs."""
        values: dict[tuple[str, str], list[float]] = {}
        for (_, lang, expert), weight in sorted(final_gates(self.rows()).items()):
            values.setdefault((lang, expert), []).append(weight)
        return {key: Stat.of(v) for key, v in values.items()}


def seed_gates(files: list[Path]) -> SeedGates | None:
    """The gate traces of the runs in ``files`` (metrics.json of one gated model's seed folders); None without any."""
    gates = None
    for path in files:
        m = read_metrics(path)
        if m is None or "experts" not in m.get("mixing", {}):
            continue
        if gates is None:
            gates = SeedGates([DomainSpec.parse(d).language for d in m["domains"]], list(m["mixing"]["experts"]), {})
        for run in m["runs"]:
            gates.histories[run["seed"]] = run.get("history") or []
    return gates


def build_curve(grid: GridLayout, target: str) -> dict | None:
    """The learning curve of ``target`` from its ``curve/<target>/k<K>/<model>`` folders and, at K = all, table 3's
    (single-domain random protocol and each multi-domain model that has a curve folder); None without any run."""
    shots: list[int | None] = [*grid.curve_shots(target), None]
    found = {p.name for k in shots[:-1] for p in grid.curve(target, k, SINGLE_MODEL).parent.glob("*") if p.is_dir()}
    models = [SINGLE_MODEL] + [m for m in MULTIDOMAIN_MODELS if m in found] + sorted(found - {SINGLE_MODEL, *MULTIDOMAIN_MODELS})
    uas: dict[str, dict[str, dict]] = {}
    domains, features = [target], []
    for k in shots:
        for model in models:
            if k == 0 and model != ZERO_SHOT:
                continue
            runs = {}
            for path in grid.seed_metrics(grid.curve(target, k, model)):
                m = read_metrics(path)
                if m is None or target not in m["domains_summary"]:
                    continue
                runs.update(target_uas(m, target))
                if model != SINGLE_MODEL:
                    domains, features = list(m["domains"]), list(m.get("features", []))
            if runs:
                uas.setdefault(shot_name(k), {})[model] = runs
    if not uas:
        return None
    return curve_table(uas, target, domains, "random", features, models)


def build_tables(root: str | Path) -> Tables:
    """Read the run folders under ``root`` (layout: :mod:`train.studies.grid_layout`)."""
    grid = GridLayout(Path(root))
    languages, features, multi = grid.languages(), grid.features(), grid.models()
    for m in multi:
        for path in grid.seed_metrics(grid.multi(m)):
            meta = read_metrics(path)
            for lang in (meta or {}).get("domains_summary", {}):
                if lang not in languages:
                    languages.append(lang)
    t = Tables(languages, features, {}, {}, {}, {}, multi)

    def put(table: dict, key, files: list[Path], experiment: Path, language: str) -> None:
        r = aggregate(files, language, experiment.relative_to(grid.root).as_posix())
        if r is not None:
            table[key] = r

    for lang in languages:
        random, speaker = grid.random(lang), grid.speaker(lang)
        random_files = grid.seed_metrics(random)
        put(t.table2, (lang, "random"), random_files, random, lang)
        put(t.table2, (lang, "speaker"), [speaker / "metrics.json"], speaker, lang)
        put(t.table3, ("single", lang), random_files, random, lang)
        put(t.table4, (lang, True), random_files, random, lang)
        put(t.table4, (lang, False), grid.seed_metrics(grid.no_aux(lang)), grid.no_aux(lang), lang)
        put(t.ablation, (lang, "all"), random_files, random, lang)
        for f in features:
            put(t.ablation, (lang, f), grid.seed_metrics(grid.only(f, lang)), grid.only(f, lang), lang)
    for lang in languages:
        put(t.table3_speaker, ("single", lang), [grid.speaker(lang) / "metrics.json"], grid.speaker(lang), lang)
    for m in multi:
        for lang in languages:
            seeds, speaker = grid.seed_metrics(grid.multi(m)), [grid.multi_speaker(m) / "metrics.json"]
            put(t.table3, (m, lang), seeds, grid.multi(m), lang)
            put(t.table3_speaker, (m, lang), speaker, grid.multi_speaker(m), lang)
            for protocol, single, runs in (("random", grid.seed_metrics(grid.random(lang)), seeds),
                                           ("speaker", [grid.speaker(lang) / "metrics.json"], speaker)):
                paired = paired_difference(single, runs, lang)
                if paired is not None:
                    t.paired[(protocol, m, lang)] = paired
    files = {"random": lambda m: grid.seed_metrics(grid.multi(m)), "speaker": lambda m: [grid.multi_speaker(m) / "metrics.json"]}
    for protocol, table in (("random", t.table3), ("speaker", t.table3_speaker)):
        paper = [m for m in MULTIDOMAIN_MODELS if any((m, lang) in table for lang in languages)]  # base < sb < ... < nas
        for before, m in zip(paper, paper[1:]):
            for lang in languages:
                step = paired_difference(files[protocol](before), files[protocol](m), lang)
                if step is not None:
                    t.steps[(protocol, before, m, lang)] = step
    for m in multi:
        gates = seed_gates(grid.seed_metrics(grid.multi(m)))
        if gates is not None and gates.rows():
            t.gates[m] = gates
    for target in grid.curve_targets():
        curve = build_curve(grid, target)
        if curve is not None:
            t.curves[target] = curve
    return t


def _cell(r: Result | None, what: str) -> str:
    if r is None:
        return "—"
    return f"{getattr(r, what)} ({r.runs_label})" if what == "ua" else str(getattr(r, what))


def gates_markdown(gates: dict[str, SeedGates]) -> list[str]:
    """Table 3's gate weights at the last epoch per language and expert, and whether two languages' gates differ."""
    if not gates:
        return []
    lines = ["", "### Gates of table 3's runs (random protocol)", "",
             "Mean gate weight over each language's validation utterances at each run's last epoch, mean ± std over "
             "the seeds; then each pair of languages' paired difference per expert with its 95% t interval over "
             "the seeds. Over the epochs: `multi/<model>/gates.png` (`nas.png`), every seed in one file.", ""]
    for model, g in gates.items():
        weights = g.final_weights()
        lines += [f"**{model}** ({len(g.histories)} seeds)", "", "| language | " + " | ".join(g.experts) + " |",
                  "| --- |" + " ---: |" * len(g.experts)]
        for lang in g.languages:
            lines.append(f"| {lang} | " + " | ".join(str(weights[(lang, e)]) if (lang, e) in weights else "—" for e in g.experts) + " |")
        diffs = gate_differences(g.rows(), g.languages, g.experts)
        differing = [d for d in diffs if d.differs]
        lines += ["", f"{len(differing)} of {len(diffs)} (pair, expert) intervals exclude 0"
                  + (": " + "; ".join(f"{d.first} - {d.second} on {d.expert} {d.figures()}" for d in differing) if differing else "")
                  + ".", ""]
    return lines


def to_markdown(t: Tables, skipped_models: dict[str, str] | None = None) -> str:
    lines = ["# The paper's tables, as measured", "",
             "Mean ± sample standard deviation over runs (seeds of the random protocol, folds of the speaker "
             "protocol); after UA, in parentheses: runs × epochs trained. Built only from the run folders' `metrics.json` "
             "(and their run records, to pair table 3's runs; `python -m train.studies.paper_tables FOLDER` rebuilds this file). — : not run, or failed.", ""]

    lines += ["## Table 2: single-domain model", "",
              "| language | dataset | features | UA random | WA random | UA speaker-independent | WA speaker-independent |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for lang in t.languages:
        rnd, spk = t.table2.get((lang, "random")), t.table2.get((lang, "speaker"))
        any_r = rnd or spk
        if any_r is None:
            continue
        lines.append(f"| {lang} | {any_r.dataset} | {','.join(any_r.features)} | {_cell(rnd, 'ua')} | {_cell(rnd, 'wa')} "
                     f"| {_cell(spk, 'ua')} | {_cell(spk, 'wa')} |")
    quoted = [f"{lang} UA {ua:.3f} WA {wa:.3f}" for lang, (ua, wa) in PAPER_TABLE2.items() if lang in t.languages]
    if quoted:
        lines += ["", f"The paper (random protocol, five features): {'; '.join(quoted)}."]

    lines += ["", "## Table 3: multi-domain models", ""]
    if t.multi_models or skipped_models:
        for protocol, table in (("random", t.table3), ("speaker", t.table3_speaker)):
            if protocol == "speaker" and not any(m != "single" for m, _ in table):
                continue
            lines += [f"{protocol.capitalize()} protocol. Test UA and WA, then the paired difference model - single on "
                      "test UA with its 95% t interval over the runs of the same seed or fold that tested the same "
                      "utterances (checked on the run records):", "",
                      "| model | " + " | ".join(f"UA {lang} | WA {lang}" for lang in t.languages) + " | "
                      + " | ".join(f"UA {lang} - single" for lang in t.languages) + " |",
                      "| --- | " + " | ".join("--- | ---" for _ in t.languages) + " | " + " | ".join("---" for _ in t.languages) + " |"]
            for model in ["single", *t.multi_models]:
                label = "single (one model per language)" if model == "single" else model
                paired = [str(t.paired[(protocol, model, lang)]) if (protocol, model, lang) in t.paired else "—"
                          for lang in t.languages]
                lines.append(f"| {label} | " + " | ".join(f"{_cell(table.get((model, lang)), 'ua')} | "
                                                           f"{_cell(table.get((model, lang)), 'wa')}" for lang in t.languages)
                             + " | " + " | ".join(paired) + " |")
            for model, why in (skipped_models or {}).items():
                if model not in t.multi_models:
                    lines.append(f"| {model} | " + " | ".join("— | —" for _ in t.languages) + " | "
                                 + " | ".join("—" for _ in t.languages) + " |")
            lines.append("")
            steps = list(dict.fromkeys((before, m) for pr, before, m, _ in t.steps if pr == protocol))
            if steps:
                order = " < ".join([steps[0][0], *(m for _, m in steps)])
                lines += [f"The paper's order ({order}) step by step, {protocol} protocol: each model minus the one "
                          "before it, paired as above:", "",
                          "| step | " + " | ".join(f"UA {lang}" for lang in t.languages) + " |",
                          "| --- |" + " --- |" * len(t.languages)]
                for before, m in steps:
                    lines.append(f"| {m} - {before} | " + " | ".join(str(t.steps[(protocol, before, m, lang)]) if
                                                                    (protocol, before, m, lang) in t.steps else "—"
                                                                    for lang in t.languages) + " |")
                lines.append("")
        if skipped_models:
            lines += ["", "Not run: " + "; ".join(f"{m} ({why})" for m, why in skipped_models.items()) + "."]
        if t.paired:
            lines += ["", "![table 3: paired differences](table3.png)"]
        if t.multi_models:
            lines += ["", "Gate weights per language and feature (figure 4b) and the NAS connection probabilities of "
                          "each multi-domain run: `multi/<model>/seed<k>/gates_test.png`, `nas_test.png` and their CSV files; "
                          "over training: `gates.png`, `nas.png`, `gates.csv`, `nas.csv`."]
        lines += gates_markdown(t.gates)
    else:
        lines.append("No multi-domain run in this folder (the grid runs them with two or more languages and the parts multi, "
                     "multi_speaker).")

    lines += ["", "## Table 4: single-domain model with and without the auxiliary loss (random protocol)", "",
              "| language | UA with | WA with | UA without | WA without | UA gain |", "| --- | --- | --- | --- | --- | --- |"]
    for lang in t.languages:
        on, off = t.table4.get((lang, True)), t.table4.get((lang, False))
        if on is None and off is None:
            continue
        gain = f"{on.ua.mean - off.ua.mean:+.3f}" if on and off else "—"
        lines.append(f"| {lang} | {_cell(on, 'ua')} | {_cell(on, 'wa')} | {_cell(off, 'ua')} | {_cell(off, 'wa')} | {gain} |")

    lines += ["", "## Figure 4a: each feature alone (random protocol, UA)", ""]
    columns = [*t.features, "all"]
    lines += ["| language | " + " | ".join(f"UA {c}" for c in columns) + " |", "| --- |" + " --- |" * len(columns)]
    for lang in t.languages:
        if not any((lang, c) in t.ablation for c in columns):
            continue
        lines.append(f"| {lang} | " + " | ".join(_cell(t.ablation.get((lang, c)), "ua") for c in columns) + " |")
    lines += ["", "![figure 4a](figure4a.png)", ""]

    if t.curves:
        lines += ["## Learning curves: a target language with K labelled training utterances per emotion (not in the paper)", "",
                  "The other languages keep all of theirs; K = all is table 3's runs of the same seeds. Each curve's "
                  "files: `curve/<language>/curve.md`, `.csv`, `.json`, `.png`.", ""]
        for target, curve in t.curves.items():
            lines += [f"### {target}", "", curve_markdown(curve), f"![learning curve of {target}](curve/{target}/curve.png)", ""]
    return "\n".join(lines)


CSV_HEADER = ["table", "row", "experiment", "language", "dataset", "features", "ua_mean", "ua_std", "wa_mean", "wa_std",
              "runs", "epochs", "files", "ua_minus_single", "ci_low", "ci_high", "paired_runs"]


def csv_rows(t: Tables) -> list[list]:
    """The rows of ``tables.csv`` (:data:`CSV_HEADER`): one per filled cell, the figures in full precision."""
    rows = []
    for table, row, r in t.results():
        protocol = {"table3": "random", "table3_speaker": "speaker"}.get(table)
        p = t.paired.get((protocol, row, r.language))
        rows.append([table, row, r.experiment, r.language, r.dataset, "+".join(r.features), repr(r.ua.mean),
                     repr(r.ua.std), repr(r.wa.mean), repr(r.wa.std), r.ua.n, r.epochs, ";".join(r.files),
                     *((repr(p.diff), repr(p.low), repr(p.high), p.n) if p else ("", "", "", ""))])
    return rows


def write_tables(root: str | Path, skipped_models: dict[str, str] | None = None) -> Tables:
    """Write ``tables.md``, ``tables.csv`` (one row per filled cell of tables 2-4 and figure 4a, full precision),
    ``figure4a.png``, ``table3.png`` (table 3's paired differences) and each learning curve's files (``curve/<language>/``)."""
    root = Path(root)
    if skipped_models is None:  # a rebuild: what the grid recorded
        try:
            skipped_models = json.loads((root / "grid.json").read_text()).get("skipped_models") or {}
        except (OSError, ValueError, AttributeError):
            skipped_models = {}
    t = build_tables(root)
    grid = GridLayout(root)
    for model in t.multi_models:  # gates.csv, gates.png, gates_differ.csv, nas.* over every seed (none: removed)
        g = t.gates.get(model, SeedGates([], [], {}))
        write_traces(g.histories, g.languages, g.experts, grid.multi(model), f"{model}, seeds")
    (root / "tables.md").write_text(to_markdown(t, skipped_models))
    write_csv(root / "tables.csv", csv_rows(t), CSV_HEADER)
    plot_feature_ablation(t, root / "figure4a.png")
    (root / "table3.png").unlink(missing_ok=True)  # never an earlier build's figure beside this one's tables
    panels: dict[str, dict[str, dict]] = {}  # protocol -> model -> language -> (diff, low, high)
    for (protocol, model, lang), p in t.paired.items():
        panels.setdefault(f"{protocol} protocol", {}).setdefault(model, {})[lang] = (p.diff, p.low, p.high)
    if panels:
        plot_differences(panels, root / "table3.png", "test UA: model - single (95% t interval)",
                         "Table 3: each model minus one model per language")
    for target, curve in t.curves.items():
        write_curve(curve, grid.curve_root(target))
    return t


def plot_feature_ablation(t: Tables, path: Path) -> Path | None:
    """Figure 4a: UA of each feature alone and of all features, per language, with the std as error bars."""
    columns = [*t.features, "all"]
    langs = [lang for lang in t.languages if any((lang, c) in t.ablation for c in columns)]
    if not langs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(langs) * len(columns) * 0.5, 3.6))
    for j, c in enumerate(columns):
        xs = [i + (j - (len(columns) - 1) / 2) * width for i in range(len(langs))]
        rs = [t.ablation.get((lang, c)) for lang in langs]
        ax.bar(xs, [r.ua.mean if r else 0.0 for r in rs], width, yerr=[r.ua.std if r else 0.0 for r in rs],
               label="all features" if c == "all" else c, capsize=3)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_ylabel("test UA")
    ax.set_ylim(0, 1)
    ax.set_title("Single-feature performance (figure 4a)")
    ax.legend(fontsize=8, ncols=min(len(columns), 4))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1])
        sys.exit(0 if args and args[0] in ("-h", "--help") else 2)
    root = Path(args[0])
    if not root.is_dir():
        print(f"error: {root}: no such folder", file=sys.stderr)
        sys.exit(2)
    write_tables(root)
    print(f"tables -> {root / 'tables.md'}, {root / 'tables.csv'}")


if __name__ == "__main__":
    main()
