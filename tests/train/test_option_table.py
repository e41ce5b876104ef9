"""``train``'s options are declared once (train.config.OPTIONS): the click options and the configuration come
from that table, and the grid's cells are the configurations ``train`` builds from the same command line."""

from dataclasses import fields

import click
import pytest

from train.cli import config_from_args, main
from train.config import (OPTIONS, command_args, config_from_settings, field_range,
                          setting_at)
from train.models import MODELS
from train.studies.grid import PARTS, GridOptions, parse_domains, plan_cells

#: train's click options that are not in the table: the configuration file and the common ones.
NOT_IN_TABLE = {"config_file", "verbose", "quiet", "version"}


def test_every_train_option_comes_from_the_table_in_its_order():
    params = [p for p in main.params if isinstance(p, click.Option) and p.name not in NOT_IN_TABLE]
    assert [p.name for p in params] == [o.name for o in OPTIONS]
    for param, option in zip(params, OPTIONS):
        assert param.opts[0] == option.decl.split("/")[0] and param.help == option.help, option.name
        if option.range is not None:  # the field's declared interval is the option's type
            assert (param.type.min, param.type.max) == (option.range.low, option.range.high), option.name
        if option.literal is not None:
            assert list(param.type.choices) == list(option.literal), option.name
    assert next(o for o in OPTIONS if o.name == "model_name").metavar == "[" + "|".join(MODELS) + "][,...]"


def test_each_option_sets_its_own_existing_field():
    paths = [o.sets for o in OPTIONS if o.sets is not None]
    assert len(paths) == len(set(paths))
    config = config_from_settings(["de", "it"], {}, preset="paper")
    for option in OPTIONS:
        if option.sets is None or option.sets in ("domains", "model"):
            continue
        f, cls = option.target
        assert f.name in {g.name for g in fields(cls)}
        if option.range is not None:
            assert option.range == field_range(cls, f.name)
        setting_at(config, option.sets)  # the path resolves in a configuration


@pytest.mark.parametrize("path,value", [("train.epochs", 3), ("train.optimizer.lr", 0.02), ("languages.*.tower.dropout", 0.25),
                                        ("multidomain.l0_weight", 0.5), ("seeds", 2), ("few_shot", {"it": 4})])
def test_a_setting_lands_in_its_field(path, value):
    config = config_from_settings(["de", "it"], {path: value}, preset="paper")
    assert setting_at(config, path) == value
    assert all(lang.tower.dropout == setting_at(config, "languages.*.tower.dropout") for lang in config.languages.values())
    with pytest.raises(ValueError, match="not a configuration field"):
        config_from_settings(["de"], {"train.optimizer.nothing.x": 1})


def _cells(tmp_path, train_args):
    opts = GridOptions(parse_domains(["de=a", "en=b"]), out=tmp_path / "grid", seeds=2, epochs=3, folds=4, features=["mfcc", "ge2e"],
                       features_dir=tmp_path / "feat", parts=PARTS, shots=(0, 5, None), train_args=train_args)
    return plan_cells(opts, ["base", "nas"])


@pytest.mark.parametrize("train_args", [(), ("--preset", "paper", "--no-checkpoints"),
                                        ("--lr", "0.01", "--gate-bias", "--gate-init", "mfcc=0.5", "--no-standardize",
                                         "--dropout", "0.2", "--ema", "0.9", "--device", "cuda", "--seeds", "3")])
def test_grid_cells_are_the_configurations_train_builds_from_their_command_line(tmp_path, train_args):
    cells = _cells(tmp_path, train_args)
    assert len(cells) > 20
    for cell in cells:
        assert config_from_args(command_args(cell.config)) == cell.config, cell.name


def test_a_grid_cell_equals_train_on_the_hand_written_command_line(tmp_path):
    cell = next(c for c in _cells(tmp_path, ("--preset", "paper", "--lr", "0.01")) if c.name == "no_aux de seed 1")
    written = ["--domains", "de=a", "--features", "mfcc,ge2e", "--no-aux", "--seeds", "1", "--first-seed", "1", "--epochs", "3",
               "--preset", "paper", "--lr", "0.01", "--features-dir", str((tmp_path / "feat").resolve()),
               "--out", str((tmp_path / "grid").resolve() / "no_aux" / "de" / "seed1")]
    assert config_from_args(written) == cell.config
    assert cell.config.train.aux is False and cell.config.train.optimizer.lr == 0.01 and cell.config.train.epochs == 3


def test_grid_refuses_train_args_it_sets_per_cell(tmp_path):
    with pytest.raises(click.UsageError, match="--domains"):
        _cells(tmp_path, ("--domains", "de"))


def test_command_args_prefers_the_default_preset_and_names_another():
    assert "--preset" not in command_args(config_from_settings(["de"], {}))
    paper = config_from_settings(["de"], {"train.progress": False}, preset="paper")  # train: no terminal, no progress
    args = command_args(paper)
    assert args[args.index("--preset") + 1] == "paper" and config_from_args(args) == paper
