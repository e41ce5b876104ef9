"""Options and configuration files of train, the grid and extract: ranges, names, usage errors (exit 2) against data
errors (exit 3) and bugs (exit 1)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sercore.errors import EXIT_DATA
from train.cli import main as train_main


def _invoke(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("key, value, expected", [
    ("features", "mfcc", "features: expected list[str] | None, got 'mfcc' (a str)"),
    ("domains", "de", "domains: expected list[str], got 'de' (a str)"),
    ("train", {"epochs": 1.5}, "train.epochs: expected int, got 1.5 (a float)"),
    ("encoders", {"mfcc": {"kernel_sizes": "x"}}, "encoders.kernel_sizes: expected tuple[int, ...], got 'x' (a str)"),
])
def test_a_configuration_value_of_the_wrong_type_names_the_key_the_value_and_the_type(tmp_path, key, value, expected):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"domains": ["de"], key: value}))
    r = _invoke(train_main, "--config", path)
    assert r.exit_code == EXIT_DATA
    assert r.output.strip() == f"error: {path}: {expected}"
