"""``train``: fit and evaluate models from feature stores (never audio).

    train --domains de                                   # EmoDB, paper protocol and settings, 5 seeds
    train --domains de --protocol speaker                # leave-one-speaker-out folds
    train --domains de --features mfcc,ge2e --no-aux     # table 4's "without auxiliary loss"
    train --domains de --ablations                       # table 4 + figure 4a in one go
    train --domains de --tsne                            # figure 3
    train --domains sw=swahili --features mfcc,ge2e      # a user corpus by language code and dataset
    train --domains de,it --model nas                    # multi-domain: per-language gates + NAS (section 4.3)
    train --domains de,it --model base,sb,omoe,mmoe,nas  # table 3: OUT/<model>/ each, OUT/comparison.md, OUT/gates.png
    train --config runs/de_random/config.json --out runs/again   # the experiment of an earlier run, again
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import click

from sercore.cli import command_errors, common_options, epilog, name_list, say
from sercore.errors import EnvironmentProblem, environment_problem

from .config import (ENSEMBLE_MODEL, HEAD_MODELS, NO_DEFAULT, OPTIONS, ConfigError, DomainSpec, ExperimentConfig, Option, Range, check_device,
                     config_from_settings, field_range, option_settings)
from .models import MODELS

#: Options that may accompany ``--config FILE``: where and how the run happens, not what it computes.
WITH_CONFIG = ("config_file", "out", "features_dir", "device", "quiet", "verbose", "no_checkpoints", "overwrite", "report", "tsne",
               "ablations")


class FiniteFloat(click.FloatRange):
    """click.FloatRange that also refuses nan and inf (click's own accepts nan whatever the bounds)."""

    name = "finite float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def ranged_type(cls: type, name: str) -> click.ParamType:
    """The click type of an option that sets field ``name`` of configuration dataclass ``cls``: the field's declared
    range (``train/config.py``), so the option, a ``--config`` file and ``--help`` give the same interval."""
    return range_type(field_range(cls, name))


def range_type(r: Range) -> click.ParamType:
    """The click type of a :class:`~train.config.Range`."""
    if r.integer:
        return click.IntRange(r.low, r.high, min_open=r.low_open, max_open=r.high_open)
    return FiniteFloat(r.low, r.high, min_open=r.low_open, max_open=r.high_open)


def click_option(option: Option):
    """The click option (a decorator) of one entry of :data:`train.config.OPTIONS`."""
    kwargs: dict = {"help": option.help}
    if option.flag:
        kwargs["is_flag"] = True
        if option.default is not NO_DEFAULT:
            kwargs["default"] = option.default
    else:
        kwargs["default"] = None if option.default is NO_DEFAULT else option.default
        if option.literal is not None:
            kwargs["type"] = click.Choice(list(option.literal))
        elif option.range is not None:
            kwargs["type"] = range_type(option.range)
        elif option.folder:
            kwargs["type"] = click.Path(file_okay=False)
    if option.show_default:
        kwargs["show_default"] = True
    if option.metavar is not None:
        kwargs["metavar"] = option.metavar
    return click.option(option.decl, *([option.dest] if option.dest else []), **kwargs)


def config_options(command):
    """Every option of :data:`train.config.OPTIONS`, in its order, as click options of ``command``."""
    for option in reversed(OPTIONS):
        command = click_option(option)(command)
    return command


def check_out_folder(out: str) -> None:
    """Before any work: ``--out`` must be (or become) a writable folder; a file there is a usage error, a folder that
    cannot be created or written an :class:`~sercore.errors.EnvironmentProblem` (exit 4) naming the path."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise click.BadParameter(f"{out}: exists and is not a folder", param_hint="--out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise environment_problem(exc, path) or EnvironmentProblem(path, f"cannot create the run folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise EnvironmentProblem(path, "permission denied (the run folder is not writable)")


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]},
               epilog=epilog(__doc__.split("\n\n", 1)[1], ["OMP_NUM_THREADS"]))
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Take the whole experiment from a configuration file, e.g. the config.json of an earlier run (which it reproduces); "
                   "only --out, --features-dir, --device and the actions (--tsne, --ablations, --report, --overwrite) may be added.")
@config_options
@common_options
def main(**params) -> None:
    """Train SER models on the feature stores of the given language domains; report WA/UA over runs."""
    from .studies.ablations import run_ablations
    from .studies.model_comparison import run_comparison
    from .studies.learning_curve import run_learning_curve
    from .repeated_runs import run_experiment
    from .studies.tsne import run_tsne

    ctx = click.get_current_context()
    verbose, quiet, device = params["verbose"], params["quiet"], params["device"]
    learning_curve, ablations, tsne = params["learning_curve"], params["ablations"], params["tsne"]
    with command_errors(verbose, quiet):
        try:
            check_device(device)  # no CUDA: an environment error (4)
        except ConfigError as exc:
            raise click.BadParameter(exc.problem, param_hint="--device") from None
        config, models = _config(ctx)
        check_device(config.train.device)  # a --config file's device
    if len(models) > 1 and (ablations or tsne):
        raise click.BadParameter("--ablations and --tsne take one model", param_hint="--model")
    if learning_curve is not None and (ablations or tsne or config.few_shot):
        raise click.BadParameter("--learning-curve sets --few-shot itself and takes neither --ablations nor --tsne",
                                 param_hint="--learning-curve")
    shots_ = parse_shots(params["shots"]) if learning_curve is not None else None
    with command_errors(verbose, quiet):
        check_out_folder(config.out)
        if params["overwrite"]:  # only the run folders this command writes (not other experiments below --out)
            from .run_records import clear, owned_run_folders

            for owned in owned_run_folders(config.out, models, ablations):
                for folder in clear(owned):
                    say(f"--overwrite: removed the finished runs and their metrics in {folder}")
        if learning_curve is not None:
            run_learning_curve(config, learning_curve, shots_, models, log=say)
        elif ablations:
            run_ablations(config, log=say)
        elif len(models) > 1:
            run_comparison(config, models, log=say)
        else:
            run_experiment(config, log=say)
        if tsne:
            run_tsne(config, log=say)
        if params["report"]:
            from .studies.html_report import write_report

            say(f"report -> {write_report(config.out)}")


def _config(ctx: click.Context) -> tuple[ExperimentConfig, list[str]]:
    """The configuration and the models (several: a comparison) that a parsed command line asks for."""
    p = ctx.params
    given = lambda name: ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE  # noqa: E731
    if p["config_file"] is not None:
        extra = [name for name in p if name not in WITH_CONFIG and given(name)]
        if extra:
            raise click.UsageError(f"--config takes the experiment from {p['config_file']}; "
                                   f"{', '.join('--' + n.replace('_', '-') for n in extra)} cannot be added (edit the file instead)")
        config = ExperimentConfig.from_file(p["config_file"])
        config = replace(config, out=p["out"] or config.out,
                         features_dir=p["features_dir"] if given("features_dir") else config.features_dir,
                         save_checkpoints=config.save_checkpoints and not p["no_checkpoints"],
                         train=replace(config.train, device=p["device"] if given("device") else config.train.device,
                                       progress=not p["quiet"] and sys.stderr.isatty()))
        return config, [config.model]
    domains = name_list(p["domains"], "--domains")
    if not domains:
        raise click.UsageError("give --domains (or --config FILE)")
    for d in domains:
        try:
            DomainSpec.parse(d)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--domains") from None
    sources: list[str] = []
    if p.get("transfer_to") is not None:  # LANG's transfer model, fitted with the other languages as sources
        target = p["transfer_to"]
        if target not in [DomainSpec.parse(d).language for d in domains] or len(domains) < 2:
            raise click.BadParameter(f"{target}: expected one of two or more --domains "
                                     f"({', '.join(DomainSpec.parse(d).language for d in domains)})", param_hint="--transfer-to")
        if p["model_name"] not in (None, ENSEMBLE_MODEL, "logreg") or p.get("learning_curve") is not None:
            raise click.BadParameter("the transfer model is the ensemble of the network and the pooled head, or with "
                                     "--model logreg the head alone; give no other --model, nor --learning-curve",
                                     param_hint="--transfer-to")
        sources = [d for d in domains if DomainSpec.parse(d).language != target]
        domains = [d for d in domains if DomainSpec.parse(d).language == target]
        p = {**p, "model_name": p["model_name"] or ENSEMBLE_MODEL}
    models = name_list(p["model_name"], "--model") or (["single"] if len(domains) == 1 else ["nas"])
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {', '.join(unknown)} (known: {', '.join(MODELS)})", param_hint="--model")
    values = {o.name: _converted(o, p[o.name]) for o in OPTIONS if o.sets not in ("domains", "model")}
    settings = {**option_settings(values), "model": models[0], "transfer_sources": sources or None,
                "train.progress": not p["quiet"] and sys.stderr.isatty()}
    try:
        config = config_from_settings(domains, settings, preset=p["preset"])
        for model in models[1:]:  # a comparison: every model's configuration is checked before anything runs
            if p.get("learning_curve") is not None and model in HEAD_MODELS:  # a curve fits a head on the target alone
                continue
            replace(config, model=model)
    except ConfigError as exc:  # the options give a configuration it refuses: a usage error naming the option
        raise click.BadParameter(exc.problem, param_hint=option_of(exc.where)) from None
    return config, models


def option_of(field: str) -> str:
    """The option that sets a configuration field: ``few_shot.it`` -> ``--few-shot``, ``train.mixup`` -> ``--mixup``,
    ``multidomain.gate_init.mfcc`` -> ``--gate-init`` (the first part of the path that is an option; else the field)."""
    options = {p.name: p.opts[0] for p in main.params if isinstance(p, click.Option)}
    return next((options[part] for part in field.split(".") if part in options), field)


def _converted(option: Option, value):
    """An option's value as its field takes it: a comma list as a list, KEY=VALUE as a dict (usage errors naming
    the option); any other value as it is."""
    name = option.decl.split("/")[0]
    if option.listed:
        return name_list(value, name)
    if option.pair:
        convert, example = option.pair
        return _key_value(value, name, option.metavar, convert, example)
    return value


def _key_value(value: str | None, option: str, form: str, convert, example: str) -> dict | None:
    """``--few-shot it=10`` -> {"it": 10}: one KEY=VALUE, VALUE converted by ``convert`` (the configuration checks
    its range and its key)."""
    if value is None:
        return None
    key, sep, raw = (v.strip() for v in value.partition("="))
    try:
        converted = convert(raw)
    except ValueError:
        converted = None
    if not sep or not key or converted is None:
        raise click.BadParameter(f"{value!r}: expected {form}, e.g. {example}", param_hint=option)
    return {key: converted}


def parse_shots(value: str) -> list[int | None]:
    """``--shots 5,10,all`` -> [5, 10, None] (None: the whole training split), ascending."""
    out: list[int | None] = []
    limit = field_range(ExperimentConfig, "few_shot")
    for item in name_list(value, "--shots") or []:
        if item == "all":
            out.append(None)
        elif item.isdigit() and int(item) <= limit.high:
            out.append(int(item))
        else:
            raise click.BadParameter(f"{item!r}: expected whole numbers in {limit} or 'all'", param_hint="--shots")
    if not out:
        raise click.BadParameter("give at least one K", param_hint="--shots")
    return sorted(set(out), key=lambda k: float("inf") if k is None else k)


def settings_from_args(args: Sequence[str], refused: Sequence[str] = ()) -> tuple[dict[str, Any], str]:
    """What part of a ``train`` command line (the grid's ``--train-args``) sets: the configuration settings
    (:func:`train.config.config_from_settings`) of the options it gives, with ``train.progress`` (off with
    ``--quiet`` or without a terminal), and the preset. Usage errors as ``train`` gives them; an option named in
    ``refused`` (by parameter name, e.g. ``domains``) is one."""
    with main.make_context("train", list(args)) as ctx:
        given = {n: v for n, v in ctx.params.items() if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE}
        bad = [next(p.opts[0] for p in main.params if p.name == n) for n in given if n in refused]
        if bad:
            raise click.UsageError(f"{' '.join(args)}: {', '.join(bad)} cannot be given here")
        values = {o.name: _converted(o, given[o.name]) for o in OPTIONS if o.name in given}
        settings = {**option_settings(values), "train.progress": not ctx.params["quiet"] and sys.stderr.isatty()}
        return settings, ctx.params["preset"]


def config_from_args(args: Sequence[str]) -> ExperimentConfig:
    """The configuration ``train ARGS`` would run (one model), without running anything: the grid's cells."""
    with main.make_context("train", list(args)) as ctx:
        config, models = _config(ctx)
    if len(models) != 1:
        raise click.UsageError(f"{' '.join(args)}: one model per configuration")
    return config


if __name__ == "__main__":
    main()
