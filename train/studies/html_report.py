"""A one-file HTML report of a run folder: what a person looks at instead of ``metrics.json``.

    train --domains de --report ...            # writes <out>/report.html at the end
    python -m train.studies.html_report RUN_DIR [-o FILE]   # the same, for a run folder that exists already

The report is self-contained (CSS inline, every image base64-embedded), so it can be mailed or
archived on its own. It holds, in this order:

- tables found at the top of the folder: the model comparison of a multi-model run
  (``comparison.csv``, the paper's table 3) and the ablation table (``ablations/ablations.csv``, table 4);
- one section per run folder below ``RUN_DIR`` that has a ``metrics.json`` (the folder itself first, then
  e.g. ``<model>/`` of a comparison or ``ablations/<variant>/``): the summary (WA / UA mean ± std per
  language over the runs, protocol, runs, features, model), per-class recall, the per-run table, the
  weights kept in ``model.bundle``, the gate and NAS tables (``gates_test.csv``, ``gates_differ.csv``,
  ``nas_test.csv``; the per-epoch traces ``gates.csv`` and ``nas.csv`` are too long for a page and are shown
  by their figures) and every figure of the folder (confusion matrices first, then t-SNE, gate weights, NAS heat map, ...);
- the figures at the top of the folder (e.g. ``gates.png`` of a comparison).
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Iterable, Sequence

import click

from sercore.cli import command_errors, common_options, epilog, say
from sercore.errors import DataError
from sercore.tables import CsvError, read_csv_text

REPORT_NAME = "report.html"
#: How deep below the run folder run folders (with a metrics.json) are looked for.
MAX_DEPTH = 3

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f3f7; } td.l, th.l { text-align: left; }
.meta { color: #555; font-size: 0.9em; } figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figcaption { font-size: 0.8em; color: #555; } img { max-width: 100%; border: 1px solid #eee; }
"""


def _e(x) -> str:
    return html.escape(str(x))


def _pm(s: dict | None, digits: int = 3) -> str:
    if not s:
        return ""
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence], left: int = 1) -> str:
    """An HTML table; the first ``left`` columns are left-aligned (labels), the others right-aligned."""
    out = ["<table><tr>" + "".join(f"<th class={'l' if i < left else 'r'}>{_e(h)}</th>" for i, h in enumerate(header)) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td class={'l' if i < left else 'r'}>{_e(v)}</td>" for i, v in enumerate(row)) + "</tr>")
    return "\n".join(out) + "</table>"


def _csv_table(path: Path) -> str:
    try:
        table = read_csv_text(path)
    except (UnicodeDecodeError, CsvError) as exc:
        raise DataError(path, f"unreadable CSV ({exc})") from None
    if table.columns.empty:
        return ""
    header, body = list(table.columns), [["" if v is None else v for v in row] for row in table.itertuples(index=False)]
    numeric = lambda v: v.replace(".", "", 1).replace("-", "", 1).isdigit()  # noqa: E731
    left = next((i for i, h in enumerate(header) if body and all(numeric(r[i]) for r in body if i < len(r) and r[i])), len(header))
    return _table(header, body, left=max(1, left))


def _image(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _images(folder: Path) -> str:
    """Every PNG of the folder: confusion matrices first, then the others by name."""
    pngs = sorted(folder.glob("*.png"), key=lambda p: (not p.name.startswith("confusion"), p.name))
    return "\n".join(_image(p, p.name) for p in pngs)


def run_folders(root: Path) -> list[Path]:
    """``root`` and the folders below it (at most MAX_DEPTH levels) holding a metrics.json; root first."""
    found = []
    for depth in range(MAX_DEPTH + 1):
        pattern = "/".join(["*"] * depth + ["metrics.json"])
        found += sorted(p.parent for p in root.glob(pattern) if p.is_file() and "checkpoints" not in p.parts)
    return found


def _run_section(folder: Path, root: Path) -> str:
    metrics = json.loads((folder / "metrics.json").read_text())
    config = {}
    if (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
    name = root.resolve().name if folder == root else str(folder.relative_to(root))
    runs = metrics.get("runs", [])
    langs = list(metrics.get("domains_summary", {}))
    parts = [f"<h2>{_e(name)}: {_e(metrics.get('model', config.get('model', '?')))} model</h2>"]
    train = config.get("train", {})
    facts = [f"protocol <b>{_e(metrics.get('protocol'))}</b> ({len(runs)} {_e(metrics.get('runs_are', 'runs'))}"
             + (f": {', '.join(str(r['seed']) for r in runs)}" if metrics.get("protocol") == "random" else "") + ")",
             f"features <b>{_e(', '.join(metrics.get('features', [])))}</b>",
             f"domains {_e(', '.join(metrics.get('domains', [])))}",
             f"auxiliary loss {'on' if metrics.get('aux') else 'off'}"]
    if train:
        facts.append(f"{train.get('epochs')} epochs, standardise {'yes' if train.get('standardize') else 'no'}, "
                     f"GE2E fine-tuning {'yes' if train.get('finetune_ge2e') else 'no'}")
    started = config.get("resolved", {}).get("started")
    if started:
        facts.append(f"started {_e(started)}, torch {_e(config['resolved'].get('torch', ''))}")
    parts.append(f"<p class=meta>{'; '.join(facts)}</p>")

    parts.append("<h3>Summary (test set, mean ± sample std over runs)</h3>")
    rows = []
    for lang, s in metrics.get("domains_summary", {}).items():
        rows.append([lang, s.get("dataset", ""), _pm(s.get("test_wa")), _pm(s.get("test_ua")), _pm(s.get("valid_ua")),
                     s.get("test_ua", {}).get("n", len(runs))])
    parts.append(_table(["language", "dataset", "test WA", "test UA", "valid UA", "runs"], rows, left=2))

    for lang, s in metrics.get("domains_summary", {}).items():
        recall = s.get("recall") or {}
        if recall:
            parts.append(f"<h3>Per-class recall, {_e(lang)} (test, mean ± std)</h3>")
            parts.append(_table(list(recall), [[_pm(v) for v in recall.values()]], left=0))

    if runs:
        parts.append("<h3>Runs</h3>")
        header = ["run", "seed", "fold"] + [f"{lang} {k}" for lang in langs for k in ("test WA", "test UA", "valid UA")]
        header += ["best epoch", "seconds"]
        speakers = metrics.get("protocol") == "speaker"
        if speakers:
            header.append("test speakers")
        body = []
        for r in runs:
            row = [r.get("run"), r.get("seed"), "" if r.get("fold") is None else r.get("fold")]
            for lang in langs:
                t, v = r.get("test", {}).get(lang, {}), r.get("valid", {}).get(lang, {})
                row += [f"{t['wa']:.3f}" if "wa" in t else "", f"{t['ua']:.3f}" if "ua" in t else "",
                        f"{v['ua']:.3f}" if "ua" in v else ""]
            row += [r.get("best_epoch", ""), r.get("seconds", "")]
            if speakers:
                row.append("; ".join(f"{k}: {','.join(v)}" for k, v in r.get("test_speakers", {}).items()))
            body.append(row)
        parts.append(_table(header, body, left=0))

    if (folder / "model.bundle").is_file():
        try:
            from sercore.bundle import read_bundle

            sel = read_bundle(folder / "model.bundle")["meta"]["selected_run"]
            what = f"fold {sel['fold']}" if sel.get("fold") is not None else f"seed {sel['seed']}"
            parts.append(f"<p class=meta>model.bundle (for <code>predict</code>): weights of run {sel['run']} ({_e(what)}), "
                         f"valid UA {sel['valid_ua']:.3f}, test UA {sel['test_ua']:.3f}; chosen by {_e(sel['rule'])}.</p>")
        except Exception as exc:  # noqa: BLE001 - the report still shows everything else
            parts.append(f"<p class=meta>model.bundle could not be read: {_e(exc)}</p>")

    for table, title in (("gates_test.csv", "Gate weights (mean over test utterances and runs)"),
                         ("gates_differ.csv", "Languages' gates at the last epoch: differences over runs (95% t interval)"),
                         ("nas_test.csv", "NAS connections")):
        if (folder / table).is_file():
            parts.append(f"<h3>{title}</h3>" + _csv_table(folder / table))
    images = _images(folder)
    if images:
        parts.append("<h3>Figures</h3>" + images)
    return "\n".join(parts)


def render(root: str | Path) -> str:
    """The report of run folder ``root`` as one HTML string (see the module docstring)."""
    root = Path(root)
    folders = run_folders(root)
    tops = []
    if (root / "comparison.csv").is_file():
        tops.append("<h2>Model comparison (table 3)</h2>" + _csv_table(root / "comparison.csv"))
    for abl in (root / "ablations" / "ablations.csv", root / "ablations.csv"):
        if abl.is_file():
            tops.append("<h2>Ablations (table 4, figure 4a)</h2>" + _csv_table(abl))
            break
    if not folders and not tops:
        raise DataError(root, "no metrics.json, comparison.csv or ablations.csv here or below: not a run folder")
    sections = [_run_section(f, root) for f in folders]
    top_images = _images(root) if root not in folders else ""
    if top_images:
        sections.append("<h2>Figures</h2>" + top_images)
    title = f"mgser run report: {root.resolve().name}"
    return "\n".join([
        "<!DOCTYPE html>", "<html lang=en><head><meta charset=utf-8>", f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>", f"<h1>{_e(title)}</h1>",
        f"<p class=meta>{_e(root.resolve())}; report written {time.strftime('%Y-%m-%d %H:%M:%S')}. "
        "WA: weighted accuracy (overall), UA: unweighted accuracy (mean per-class recall).</p>",
        *tops, *sections, "</body></html>",
    ])


def write_report(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of run folder ``root`` to ``out`` (default ``root/report.html``) and return its path."""
    out = Path(out) if out is not None else Path(root) / REPORT_NAME
    text = render(root)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


@click.command("report", context_settings={"help_option_names": ["-h", "--help"]},
               epilog=epilog("report runs/de_random                 # -> runs/de_random/report.html\n"
                             "report runs/grid/multi/nas/seed0 -o nas.html"))
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Report file [default: RUN_DIR/report.html].")
@common_options
def main(run_dir: Path, output: Path | None, verbose: int, quiet: bool) -> None:
    """HTML report of a train run folder: tables and figures in one self-contained file."""
    with command_errors(verbose, quiet):
        say(f"report -> {write_report(run_dir, output)}")


if __name__ == "__main__":
    main()
