"""HTML run reports: written by `train --report` and by `python -m train.studies.html_report`, images embedded."""

import base64
import csv
import re
import shutil

import pytest
from click.testing import CliRunner

from sercore.errors import DataError
from tests._train_helpers import make_stores
from train.cli import main as train_main
from train.studies.html_report import main as report_main
from train.studies.html_report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _embedded_pngs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def test_train_report_is_self_contained_with_tables_and_figures(tmp_path):
    stores = make_stores(tmp_path / "features", dataset="synth", language="de", per_class=12)
    out = tmp_path / "run"
    r = CliRunner().invoke(train_main, ["--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1",
                                        "--seeds", "2", "--out", str(out), "--report"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"report -> {out / 'report.html'}" in r.output
    text = (out / "report.html").read_text()
    # no reference to any other file: every image is inline
    assert not re.search(r'src="(?!data:)', text) and "<link" not in text
    pngs = _embedded_pngs(text)
    assert len(pngs) == 1 and pngs[0] == (out / "confusion_de.png").read_bytes() and pngs[0].startswith(PNG_MAGIC)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    mean = next(row for row in rows if row["row"] == "mean")
    # the summary shows what metrics.csv says (to 3 decimals), and one row per run
    assert f"{float(mean['test_ua']):.3f} ± " in text and f"{float(mean['test_wa']):.3f} ± " in text
    assert text.count("<tr><td class=r>") >= 2 and "seeds: 0, 1" in text
    assert "model.bundle" in text and "best validation UA" in text


def test_report_of_an_existing_folder_picks_up_comparison_and_extra_plots(tmp_path, capsys):
    stores = make_stores(tmp_path / "features", dataset="synth", language="de", per_class=12)
    out = tmp_path / "cmp"
    r = CliRunner().invoke(train_main, ["--domains", "de=synth", "--features-dir", str(stores), "--epochs", "1",
                                        "--seeds", "1", "--out", str(out / "single"), "--quiet"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    # what a multi-model run leaves at the top: a comparison table and a gates figure
    (out / "comparison.csv").write_text("model,domain,wa_mean,wa_std,ua_mean,ua_std,runs\nsingle,de,0.5000,0.0000,0.4375,0.0000,1\n")
    shutil.copy(out / "single" / "confusion_de.png", out / "gates.png")
    r = CliRunner().invoke(report_main, [str(out)])
    assert r.exit_code == 0 and "report ->" in r.output, r.output
    text = (out / "report.html").read_text()
    assert "Model comparison" in text and "<td class=r>0.4375</td>" in text
    assert "<h2>single: single model</h2>" in text and "gates.png" in text and len(_embedded_pngs(text)) == 2


def test_a_folder_without_runs_is_refused_by_name(tmp_path):
    with pytest.raises(DataError, match="not a run folder"):
        write_report(tmp_path)
