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
from typing import Sequence

import click

from sercore.cli import command_errors, common_options, epilog, name_list, say
from sercore.errors import EnvironmentProblem, environment_problem

from .config import (DEFAULT_PRESET, HEAD_MODELS, PRESETS, ConfigError, DomainSpec, ExperimentConfig, MultiDomainConfig,
                     OptimizerConfig, TowerConfig, TrainConfig, build_config, check_device, field_range)
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
    r = field_range(cls, name)
    if r.integer:
        return click.IntRange(r.low, r.high, min_open=r.low_open, max_open=r.high_open)
    return FiniteFloat(r.low, r.high, min_open=r.low_open, max_open=r.high_open)


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
@click.option("--domains", default=None, help="Comma-separated language codes (de, fr, en, it, or LANG=DATASET for any store folder).")
@click.option("--features", default=None, help="Comma-separated features, e.g. mfcc,ge2e [default: every feature in the stores].")
@click.option("--protocol", type=click.Choice(["random", "speaker"]), default="random", show_default=True,
              help="random: the paper's stratified split re-drawn per seed; speaker: leave-speakers-out folds, all of them.")
@click.option("--seeds", type=ranged_type(ExperimentConfig, "seeds"), default=5, show_default=True, help="Runs of the random protocol (seeds first-seed..).")
@click.option("--first-seed", type=ranged_type(ExperimentConfig, "first_seed"), default=0, show_default=True, help="Seed 0 is the manifest's split.")
@click.option("--folds", type=ranged_type(ExperimentConfig, "folds"), default=None, help="Speaker protocol: number of speaker folds [default: one per speaker].")
@click.option("--epochs", type=ranged_type(TrainConfig, "epochs"), default=None, help="Training epochs [paper: 20].")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--out", default=None, type=click.Path(file_okay=False), help="Run folder [default: runs/<domains>_<protocol>].")
@click.option("--features-dir", default="features", show_default=True, type=click.Path(file_okay=False))
@click.option("--model", "model_name", default=None, metavar="[" + "|".join(MODELS) + "][,...]",
              help="single (one language), or a multi-domain model; a comma list fits each into OUT/<model> and writes "
                   "OUT/comparison.{md,csv,json} and OUT/gates.png (table 3, figure 4b). "
                   "[default: single for one language, nas (the paper's model) for several]")
@click.option("--selector", default=None, help="Multi-domain gates: feature used as the gate input x [paper: ge2e].")
@click.option("--nas-l0", type=ranged_type(MultiDomainConfig, "l0_weight"), default=None, help="nas: weight of the expected-L0 penalty on the connections [default: 0, off].")
@click.option("--nas-lr-scale", type=ranged_type(MultiDomainConfig, "nas_lr_scale"), default=None, help="nas: the connection gates learn at lr * this [paper: 1].")
@click.option("--gate-bias/--no-gate-bias", default=None,
              help="omoe, mmoe, nas: give every softmax gate a bias, softmax(W x + b) [paper: no bias].")
@click.option("--gate-lr-scale", type=ranged_type(MultiDomainConfig, "gate_lr_scale"), default=None, help="omoe, mmoe, nas: the softmax gates learn at lr * this [paper: 1].")
@click.option("--gate-init", default=None, metavar="FEATURE=W",
              help="With --gate-bias: the gates start at weight W on FEATURE, the rest shared by the other experts, W in "
                   f"{field_range(MultiDomainConfig, 'gate_init')} [default: uniform].")
@click.option("--expert-norm/--no-expert-norm", default=None,
              help="Multi-domain models: layer-normalise every expert's output before the (gated) sum [paper: no].")
@click.option("--preset", type=click.Choice(list(PRESETS)), default=DEFAULT_PRESET, show_default=True,
              help="tuned: the configuration chosen on validation data (docs/training.md); paper: section 5.1 exactly, for reproduction.")
@click.option("--no-aux", is_flag=True, help="Train without the contrastive auxiliary loss (alpha = 0).")
@click.option("--alpha", type=ranged_type(TrainConfig, "alpha"), default=None, help="Weight of the auxiliary loss [default: per language, de 0.01].")
@click.option("--aux-reduction", type=click.Choice(["sum", "mean"]), default=None, help="Over samples [paper eq. 6: sum].")
@click.option("--standardize/--no-standardize", default=None, help="Standardise features with training statistics.")
@click.option("--speaker-norm/--no-speaker-norm", default=None,
              help="Standardise each utterance with its own speaker's statistics (unlabelled; replaces --standardize) [paper: no].")
@click.option("--finetune-ge2e/--no-finetune-ge2e", default=None,
              help="Fine-tune resemblyzer's GE2E encoder on the stored ge2e_mel frames at lr * 0.01.")
@click.option("--sampler", type=click.Choice(["balanced", "shuffle"]), default=None, help="Training batches [default: balanced].")
@click.option("--length-batches/--no-length-batches", default=None,
              help="Balanced batches grouped by utterance length: less padding, faster [paper: no].")
@click.option("--per-class", type=ranged_type(TrainConfig, "per_class"), default=None, help="Balanced batches: utterances per class [default: 8].")
@click.option("--batch-size", type=ranged_type(TrainConfig, "batch_size"), default=None, help="Shuffled batches: size [default: 32].")
@click.option("--lr", type=ranged_type(OptimizerConfig, "lr"), default=None, help="AdamW learning rate [paper: 1e-3].")
@click.option("--weight-decay", type=ranged_type(OptimizerConfig, "weight_decay"), default=None, help="AdamW weight decay [paper: 1e-5].")
@click.option("--dropout", type=ranged_type(TowerConfig, "dropout"), default=None, help="Tower dropout [paper: 0.1].")
@click.option("--input-dropout", type=ranged_type(TowerConfig, "input_dropout"), default=None, help="Dropout on the representation before the tower [paper: none].")
@click.option("--stats-pooling/--no-stats-pooling", default=None,
              help="Encoders also pool mean + std over time of the LSTM outputs [paper: attention only].")
@click.option("--input-stats/--no-input-stats", default=None,
              help="Encoders also pool mean + std over time of their input frames and deltas [paper: no].")
@click.option("--frame-stride", type=ranged_type(ExperimentConfig, "frame_stride"), default=None,
              help="Sequence encoders average every N frames before their convolution: N times fewer LSTM steps [paper: 1].")
@click.option("--ema", type=ranged_type(TrainConfig, "ema"), default=None, help="Evaluate an exponential moving average of the weights with this decay.")
@click.option("--label-smoothing", type=ranged_type(TrainConfig, "label_smoothing"), default=None, help="Label smoothing of the cross-entropy [paper: 0].")
@click.option("--crop", type=ranged_type(TrainConfig, "crop"), default=None,
              help="Training augmentation: random contiguous crops of at least this fraction of each sequence [paper: none].")
@click.option("--time-mask", type=ranged_type(TrainConfig, "time_mask"), default=None,
              help="Training augmentation: zero one span of up to this fraction of each sequence's frames [paper: none].")
@click.option("--feature-mask", type=ranged_type(TrainConfig, "feature_mask"), default=None,
              help="Training augmentation: zero one band of up to this fraction of each sequence's dimensions [paper: none].")
@click.option("--mixup", type=ranged_type(TrainConfig, "mixup"), default=None,
              help="Training augmentation: mixup within each language, lam ~ Beta(MIXUP, MIXUP); 0: off [paper: none].")
@click.option("--refit/--no-refit", default=None,
              help="After choosing the epoch on valid, retrain on train + valid for that many epochs and test it [paper: no].")
@click.option("--max-seconds", type=ranged_type(TrainConfig, "max_seconds"), default=None,
              help="Crop sequence features longer than this to their central part, in training, evaluation and predict "
                   "[default: 60; the paper's corpora have no longer utterance].")
@click.option("--max-batch-gb", type=ranged_type(TrainConfig, "max_batch_gb"), default=None,
              help="Refuse to start when a training batch would need more memory than this (an estimate) [default: 8].")
@click.option("--few-shot", default=None, metavar="LANG=K",
              help="Low-resource simulation: language LANG trains on at most K utterances per emotion of its training split "
                   "(drawn per run) and uses none of its validation split: the epoch is chosen on the other languages' "
                   "validation splits (LANG alone: the last epoch); its test split unchanged. K in "
                   f"{field_range(ExperimentConfig, 'few_shot')} [default: all].")
@click.option("--few-shot-valid", is_flag=True, default=None,
              help="The old, not low-resource protocol of --few-shot and --learning-curve: LANG also keeps its whole "
                   "validation split for choosing the epoch [default: no].")
@click.option("--transfer-to", default=None, metavar="LANG",
              help="Train the recommended transfer method for LANG, a language with few labels: one logistic regression "
                   "on the pooled statistics of every language of --domains (each corpus standardised with its own "
                   "training audio, LANG's labelled utterances weighted up), written as LANG's logreg head (run folder, "
                   "bundle, predict).")
@click.option("--learning-curve", default=None, metavar="LANG",
              help="Instead: fit every --model at every --shots K of LANG (single: LANG alone) into OUT/k<K>/<model> and "
                   "write OUT/curve.{md,csv,json,png}: LANG's test UA against K, each model against single.")
@click.option("--shots", default="5,10,20,40,all", show_default=True, metavar="K,...",
              help="--learning-curve: utterances per emotion of the target language; all = its whole training split; "
                   "0 = zero-shot (base only).")
@click.option("--patience", type=ranged_type(TrainConfig, "patience"), default=None, help="Early stop after this many epochs without a better validation score.")
@click.option("--tsne", is_flag=True, help="Also fit run 0 with and without the aux loss and plot t-SNE of test representations (figure 3).")
@click.option("--ablations", is_flag=True, help="Instead: all features, without aux loss, each feature alone (table 4, figure 4a).")
@click.option("--no-checkpoints", is_flag=True, help="Do not copy the best weights of each run to OUT/checkpoints/.")
@click.option("--overwrite", is_flag=True,
              help="Start over: forget the finished runs in OUT/runs/ (by default a rerun resumes from them).")
@click.option("--report", is_flag=True, help="Also write OUT/report.html: tables and figures in one self-contained file.")
@common_options
def main(config_file, domains, features, protocol, seeds, first_seed, folds, epochs, device, out, features_dir, model_name, selector, nas_l0, nas_lr_scale, gate_bias, gate_lr_scale, gate_init, expert_norm, preset,
         no_aux, alpha, aux_reduction, standardize, speaker_norm, finetune_ge2e, sampler, length_batches, per_class, batch_size, lr, weight_decay,
         dropout, input_dropout, stats_pooling, input_stats, frame_stride, ema, label_smoothing, crop, time_mask, feature_mask, mixup, refit, max_seconds, max_batch_gb, few_shot, few_shot_valid, transfer_to, learning_curve, shots, patience, tsne, ablations, no_checkpoints, quiet,
         report, overwrite, verbose) -> None:
    """Train SER models on the feature stores of the given language domains; report WA/UA over runs."""
    from .studies.ablations import run_ablations
    from .studies.model_comparison import run_comparison
    from .studies.learning_curve import run_learning_curve
    from .repeated_runs import run_experiment
    from .studies.tsne import run_tsne

    ctx = click.get_current_context()
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
    shots_ = parse_shots(shots) if learning_curve is not None else None
    with command_errors(verbose, quiet):
        check_out_folder(config.out)
        if overwrite:  # only the run folders this command writes (not other experiments below --out)
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
        if report:
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
    if p.get("transfer_to") is not None:  # LANG's logreg head, fitted with the other languages as sources
        target = p["transfer_to"]
        if target not in [DomainSpec.parse(d).language for d in domains] or len(domains) < 2:
            raise click.BadParameter(f"{target}: expected one of two or more --domains "
                                     f"({', '.join(DomainSpec.parse(d).language for d in domains)})", param_hint="--transfer-to")
        if p["model_name"] not in (None, "logreg") or p.get("learning_curve") is not None:
            raise click.BadParameter("the transfer head is a logreg head; give neither --model nor --learning-curve",
                                     param_hint="--transfer-to")
        sources = [d for d in domains if DomainSpec.parse(d).language != target]
        domains = [d for d in domains if DomainSpec.parse(d).language == target]
        p = {**p, "model_name": "logreg"}
    models = name_list(p["model_name"], "--model") or (["single"] if len(domains) == 1 else ["nas"])
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {', '.join(unknown)} (known: {', '.join(MODELS)})", param_hint="--model")
    train = {k: p[k] for k in ("device", "epochs", "aux_reduction", "standardize", "finetune_ge2e", "sampler", "length_batches", "per_class",
                               "batch_size", "patience", "alpha", "ema", "label_smoothing", "crop", "time_mask", "feature_mask", "mixup", "refit", "speaker_norm", "max_seconds", "max_batch_gb")}
    try:
        config = build_config(
            domains, preset=p["preset"], train={**train, "progress": not p["quiet"] and sys.stderr.isatty(), "aux": False if p["no_aux"] else None},
            optimizer={"lr": p["lr"], "weight_decay": p["weight_decay"]},
            tower={"dropout": p["dropout"], "input_dropout": p["input_dropout"]},
            multidomain={"selector": p["selector"], "l0_weight": p["nas_l0"], "nas_lr_scale": p["nas_lr_scale"],
                         "gate_bias": p["gate_bias"], "gate_lr_scale": p["gate_lr_scale"], "expert_norm": p["expert_norm"],
                         "gate_init": _key_value(p["gate_init"], "--gate-init", "FEATURE=W", float, "mfcc=0.6")},
            features=name_list(p["features"], "--features"), protocol=p["protocol"], seeds=p["seeds"], folds=p["folds"],
            first_seed=p["first_seed"], features_dir=p["features_dir"], out=p["out"], model=models[0],
            save_checkpoints=not p["no_checkpoints"], stats_pooling=p["stats_pooling"], input_stats=p["input_stats"],
            frame_stride=p["frame_stride"], few_shot=_key_value(p["few_shot"], "--few-shot", "LANG=K", int, "it=10"),
            few_shot_valid=p["few_shot_valid"], transfer_sources=sources or None)
        for model in models[1:]:  # a comparison: every model's configuration is checked before anything runs
            if p.get("learning_curve") is not None and model in HEAD_MODELS:  # a curve fits a head on the target alone
                continue
            replace(config, model=model)
    except ConfigError as exc:  # the options give a configuration it refuses: a usage error naming the option
        raise click.BadParameter(exc.problem, param_hint=_option_of(exc.where, ctx)) from None
    return config, models


def _option_of(field: str, ctx: click.Context) -> str:
    """The option that sets a configuration field: ``few_shot.it`` -> ``--few-shot``, ``train.mixup`` -> ``--mixup``,
    ``multidomain.gate_init.mfcc`` -> ``--gate-init`` (the first part of the path that is an option; else the field)."""
    options = {p.name: p.opts[0] for p in ctx.command.params if isinstance(p, click.Option)}
    return next((options[part] for part in field.split(".") if part in options), field)


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


def config_from_args(args: Sequence[str]) -> ExperimentConfig:
    """The configuration ``train ARGS`` would run (one model), without running anything: the grid's cells."""
    with main.make_context("train", list(args)) as ctx:
        config, models = _config(ctx)
    if len(models) != 1:
        raise click.UsageError(f"{' '.join(args)}: one model per configuration")
    return config


if __name__ == "__main__":
    main()
