"""Where weight paths come from: explicit settings (CLI) > environment variables > the MGSER_CONFIG file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from extract.extractors import ExtractorSettings
from sercore.errors import DataError

TOML = """
wav2vec_checkpoint = "weights/wav2vec_large.pt"
allosaurus_model = "/models/uni2005"
byol_checkpoint = "~/byol/AudioNTT2020-BYOLA-64x96d2048.pth"

[extra]
allosaurus_output = "hidden"
"""


def test_toml_file_with_relative_paths(tmp_path):
    cfg = tmp_path / "weights.toml"
    cfg.write_text(TOML)
    s = ExtractorSettings.from_file(cfg)
    assert s.wav2vec_checkpoint == tmp_path / "weights" / "wav2vec_large.pt"
    assert s.allosaurus_model == Path("/models/uni2005")
    assert s.byol_checkpoint == Path("~/byol/AudioNTT2020-BYOLA-64x96d2048.pth").expanduser()
    assert s.extra == {"allosaurus_output": "hidden"}


def test_precedence_cli_then_env_then_file(tmp_path, monkeypatch):
    cfg = tmp_path / "weights.json"
    cfg.write_text(json.dumps({"wav2vec_checkpoint": "/file/w2v.pt", "allosaurus_model": "/file/uni2005",
                               "byol_checkpoint": "/file/byol.pth", "extra": {"allosaurus_output": "hidden"}}))
    monkeypatch.setenv("MGSER_CONFIG", str(cfg))
    monkeypatch.setenv("MGSER_ALLOSAURUS_MODEL", "/env/uni2005")
    monkeypatch.delenv("MGSER_WAV2VEC_CHECKPOINT", raising=False)
    monkeypatch.delenv("MGSER_BYOL_CHECKPOINT", raising=False)
    s = ExtractorSettings(byol_checkpoint=Path("/cli/byol.pth"), extra={"allosaurus_output": "posteriors"}).with_env_defaults()
    assert s.byol_checkpoint == Path("/cli/byol.pth")
    assert s.allosaurus_model == Path("/env/uni2005")
    assert s.wav2vec_checkpoint == Path("/file/w2v.pt")
    assert s.extra == {"allosaurus_output": "posteriors"}


@pytest.mark.parametrize("name,text,problem", [
    ("bad.toml", "wav2vec_checkpoint = ", "not a valid TOML"),
    ("bad.json", "{", "not a valid JSON"),
    ("typo.toml", 'wav2vec_chekpoint = "x"', "unknown keys"),
])
def test_bad_files_name_the_file(tmp_path, name, text, problem):
    (tmp_path / name).write_text(text)
    with pytest.raises(DataError, match=rf"{name}: .*{problem}"):
        ExtractorSettings.from_file(tmp_path / name)
    with pytest.raises(DataError, match="cannot read"):
        ExtractorSettings.from_file(tmp_path / "absent.toml")
