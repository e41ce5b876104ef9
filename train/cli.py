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

import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import click

from sercore.cli import command_errors, common_options, epilog, say
from sercore.errors import EXIT_USAGE, SerError

from .config import PRESETS, DomainSpec, ExperimentConfig, build_config
from .models import MODELS

#: Options that may accompany ``--config FILE``: where and how the run happens, not what it computes.
WITH_CONFIG = ("config_file", "out", "features_dir", "device", "quiet", "verbose", "no_checkpoints", "overwrite", "report", "tsne",
               "ablations")


def comma_list(value: str | None) -> list[str] | None:
    """``"a, b,"`` -> ``["a", "b"]``; None for nothing (an option's comma-separated values)."""
    items = [v.strip() for v in (value or "").split(",") if v.strip()]
    return items or None


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog=epilog(__doc__.split("\n\n", 1)[1], ["OMP_NUM_THREADS"]))
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Take the whole experiment from a configuration file, e.g. the config.json of an earlier run (which it reproduces); "
                   "only --out, --features-dir, --device and the actions (--tsne, --ablations, --report, --overwrite) may be added.")
@click.option("--domains", default=None, help="Comma-separated language codes (de, fr, en, it, or LANG=DATASET for any store folder).")
@click.option("--features", default=None, help="Comma-separated features, e.g. mfcc,ge2e [default: every feature in the stores].")
@click.option("--protocol", type=click.Choice(["random", "speaker"]), default="random", show_default=True,
              help="random: the paper's stratified split re-drawn per seed; speaker: leave-speakers-out folds, all of them.")
@click.option("--seeds", type=click.IntRange(1), default=5, show_default=True, help="Runs of the random protocol (seeds first-seed..).")
@click.option("--first-seed", type=click.IntRange(0), default=0, show_default=True, help="Seed 0 is the manifest's split.")
@click.option("--folds", type=click.IntRange(3), default=None, help="Speaker protocol: number of speaker folds [default: one per speaker].")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Training epochs [paper: 20].")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--out", default=None, help="Run folder [default: runs/<domains>_<protocol>].")
@click.option("--features-dir", default="features", show_default=True, type=click.Path(file_okay=False))
@click.option("--model", "model_name", default=None, metavar="[" + "|".join(MODELS) + "][,...]",
              help="single (one language), or a multi-domain model; a comma list fits each into OUT/<model> and writes "
                   "OUT/comparison.{md,csv,json} and OUT/gates.png (table 3, figure 4b). "
                   "[default: single for one language, nas (the paper's model) for several]")
@click.option("--selector", default=None, help="Multi-domain gates: feature used as the gate input x [paper: ge2e].")
@click.option("--nas-l0", type=float, default=None, help="nas: weight of the expected-L0 penalty on the connections [default: 0, off].")
@click.option("--nas-lr-scale", type=float, default=None, help="nas: the connection gates learn at lr * this [paper: 1].")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="paper", show_default=True,
              help="paper: section 5.1 values; tuned: + the deviations chosen on EmoDB (README, Training).")
@click.option("--no-aux", is_flag=True, help="Train without the contrastive auxiliary loss (alpha = 0).")
@click.option("--alpha", type=float, default=None, help="Weight of the auxiliary loss [default: per language, de 0.01].")
@click.option("--aux-reduction", type=click.Choice(["sum", "mean"]), default=None, help="Over samples [paper eq. 6: sum].")
@click.option("--standardize/--no-standardize", default=None, help="Standardise features with training statistics.")
@click.option("--speaker-norm/--no-speaker-norm", default=None,
              help="Standardise each utterance with its own speaker's statistics (unlabelled; replaces --standardize) [paper: no].")
@click.option("--finetune-ge2e/--no-finetune-ge2e", default=None,
              help="Fine-tune resemblyzer's GE2E encoder on the stored ge2e_mel frames at lr * 0.01.")
@click.option("--sampler", type=click.Choice(["balanced", "shuffle"]), default=None, help="Training batches [default: balanced].")
@click.option("--per-class", type=click.IntRange(1), default=None, help="Balanced batches: utterances per class [default: 8].")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Shuffled batches: size [default: 32].")
@click.option("--lr", type=float, default=None, help="AdamW learning rate [paper: 1e-3].")
@click.option("--weight-decay", type=float, default=None, help="AdamW weight decay [paper: 1e-5].")
@click.option("--dropout", type=float, default=None, help="Tower dropout [paper: 0.1].")
@click.option("--input-dropout", type=float, default=None, help="Dropout on the representation before the tower [paper: none].")
@click.option("--stats-pooling/--no-stats-pooling", default=None,
              help="Encoders also pool mean + std over time of the LSTM outputs [paper: attention only].")
@click.option("--input-stats/--no-input-stats", default=None,
              help="Encoders also pool mean + std over time of their input frames and deltas [paper: no].")
@click.option("--ema", type=float, default=None, help="Evaluate an exponential moving average of the weights with this decay.")
@click.option("--label-smoothing", type=float, default=None, help="Label smoothing of the cross-entropy [paper: 0].")
@click.option("--crop", type=click.FloatRange(0, 1), default=None,
              help="Training augmentation: random contiguous crops of at least this fraction of each sequence [paper: none].")
@click.option("--refit/--no-refit", default=None,
              help="After choosing the epoch on valid, retrain on train + valid for that many epochs and test it [paper: no].")
@click.option("--patience", type=click.IntRange(1), default=None, help="Early stop after this many epochs without a better validation score.")
@click.option("--tsne", is_flag=True, help="Also fit run 0 with and without the aux loss and plot t-SNE of test representations (figure 3).")
@click.option("--ablations", is_flag=True, help="Instead: all features, without aux loss, each feature alone (table 4, figure 4a).")
@click.option("--no-checkpoints", is_flag=True, help="Do not copy the best weights of each run to OUT/checkpoints/.")
@click.option("--overwrite", is_flag=True,
              help="Start over: forget the finished runs in OUT/runs/ (by default a rerun resumes from them).")
@click.option("--report", is_flag=True, help="Also write OUT/report.html: tables and figures in one self-contained file.")
@common_options
def main(config_file, domains, features, protocol, seeds, first_seed, folds, epochs, device, out, features_dir, model_name, selector, nas_l0, nas_lr_scale, preset,
         no_aux, alpha, aux_reduction, standardize, speaker_norm, finetune_ge2e, sampler, per_class, batch_size, lr, weight_decay,
         dropout, input_dropout, stats_pooling, input_stats, ema, label_smoothing, crop, refit, patience, tsne, ablations, no_checkpoints, quiet,
         report, overwrite, verbose) -> None:
    """Train SER models on the feature stores of the given language domains; report WA/UA over runs."""
    from .ablations import run_ablations
    from .compare import run_comparison
    from .experiment import run_experiment
    from .tsne import run_tsne

    ctx = click.get_current_context()
    try:
        config, models = _config(ctx)
    except SerError as exc:  # a configuration file that is not one
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    if len(models) > 1 and (ablations or tsne):
        raise click.BadParameter("--ablations and --tsne take one model", param_hint="--model")
    with command_errors(verbose, quiet):
        try:
            if overwrite:
                from .runstate import clear

                for folder in clear(config.out):
                    say(f"--overwrite: removed the finished runs and their metrics in {folder}")
            if ablations:
                run_ablations(config, log=say)
            elif len(models) > 1:
                run_comparison(config, models, log=say)
            else:
                run_experiment(config, log=say)
            if tsne:
                run_tsne(config, log=say)
            if report:
                from .report import write_report

                say(f"report -> {write_report(config.out)}")
        except ValueError as exc:  # configuration errors from builders (e.g. one model, several domains)
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)


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
    domains = comma_list(p["domains"])
    if not domains:
        raise click.UsageError("give --domains (or --config FILE)")
    for d in domains:
        try:
            DomainSpec.parse(d)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--domains") from None
    models = comma_list(p["model_name"]) or (["single"] if len(domains) == 1 else ["nas"])
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise click.BadParameter(f"unknown model(s) {', '.join(unknown)} (known: {', '.join(MODELS)})", param_hint="--model")
    train = {k: p[k] for k in ("device", "epochs", "aux_reduction", "standardize", "finetune_ge2e", "sampler", "per_class",
                               "batch_size", "patience", "alpha", "ema", "label_smoothing", "crop", "refit", "speaker_norm")}
    config = build_config(
        domains, preset=p["preset"], train={**train, "progress": not p["quiet"] and sys.stderr.isatty(), "aux": False if p["no_aux"] else None},
        optimizer={"lr": p["lr"], "weight_decay": p["weight_decay"]},
        tower={"dropout": p["dropout"], "input_dropout": p["input_dropout"]},
        multidomain={"selector": p["selector"], "l0_weight": p["nas_l0"], "nas_lr_scale": p["nas_lr_scale"]},
        features=comma_list(p["features"]), protocol=p["protocol"], seeds=p["seeds"], folds=p["folds"],
        first_seed=p["first_seed"], features_dir=p["features_dir"], out=p["out"], model=models[0],
        save_checkpoints=not p["no_checkpoints"], stats_pooling=p["stats_pooling"], input_stats=p["input_stats"])
    return config, models


def config_from_args(args: Sequence[str]) -> ExperimentConfig:
    """The configuration ``train ARGS`` would run (one model), without running anything: the grid's cells."""
    with main.make_context("train", list(args)) as ctx:
        config, models = _config(ctx)
    if len(models) != 1:
        raise click.UsageError(f"{' '.join(args)}: one model per configuration")
    return config


if __name__ == "__main__":
    main()
