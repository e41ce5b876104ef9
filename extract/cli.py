"""``extract``: prepare manifests and write feature stores. Each sub-command calls one library function.

Errors end in one line naming the file or option, with the exit codes of ``sercore.errors``: 2 a bad option
(click), 3 bad data (manifest, audio root, store), 4 the machine (no space left, a read-only folder, another
``extract`` holding the dataset's lock, missing weights), 5 ``--strict`` with skipped utterances.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import click

from sercore.cli import (BATCH_SIZE, ENVIRONMENT, SEED, WAV2VEC_LAYER, WORKERS, command_errors, common_options, epilog,
                         name_list, say, show_progress, warn)
from extract.extractors import needs
from extract.extractors.registry import families, settings_fields
from sercore.errors import DataError, EnvironmentProblem

DEFAULT_MANIFESTS = Path("data_manifests")
DEFAULT_FEATURES = Path("features")

EXAMPLES = """\
extract --dataset demo                                    # generate the demo corpus, then every available feature
extract --dataset emodb --root /data/emodb --features mfcc,ge2e,ge2e_mel --workers 2
extract --dataset emodb --scheduler dask-scheduler.json --device cuda   # on a cluster (mgser cluster slurm)
extract prepare --dataset folder --root /data/swahili --language sw --speaker-pattern '^(\\d+)_'"""

#: The features ``--features`` accepts and what each needs, from the extractor registry.
FEATURES_HELP = "\b\nFeatures (--features NAME,...) and what each needs:\n" + "\n".join(
    f"  {name:<12} {need}" for name, need in needs().items()) + "".join(f"\n  {'NAME':<12} {f.needs}" for f in families())
#: The settings the extractors declare (``--wav2vec-checkpoint`` ...): keyword -> its registry entry.
WEIGHTS_SETTINGS = settings_fields()
#: click types of the settings' kinds (extract.extractors.registry.SETTING_KINDS).
SETTING_TYPES = {"path": click.Path(path_type=Path), "index": WAV2VEC_LAYER}

#: The settings' environment variables for --help (described in sercore.cli.ENVIRONMENT, or from the setting).
WEIGHTS_ENVIRONMENT = [(s.env, ENVIRONMENT.get(s.env) or f"{s.help}, when {s.option} is not given")
                       for s in WEIGHTS_SETTINGS.values() if s.env]


def weights_options(help: Mapping[str, str] | None = None):
    """A decorator adding one option per setting the registered extractors declare, e.g. ``--byol-checkpoint``
    (keyword ``byol_checkpoint``), with its environment variable in the help; ``extract`` and ``predict`` share it.

    ``help``: a command's own help for some settings (key -> text, without the final full stop or the
    environment variable), instead of the setting's."""
    own = dict(help or {})
    unknown = sorted(set(own) - set(WEIGHTS_SETTINGS))
    if unknown:
        raise ValueError(f"weights_options: no extractor declares the setting(s) {unknown}")

    def decorate(function):
        for key, s in reversed(WEIGHTS_SETTINGS.items()):
            text = own.get(key, s.help)
            function = click.option(s.option, key, type=SETTING_TYPES[s.kind], default=None,
                                    help=f"{text} (or ${s.env})." if s.env else f"{text}.")(function)
        return function

    return decorate


@click.group("extract", invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=FEATURES_HELP + "\n\n" + epilog(EXAMPLES, ["MGSER_CONFIG", *WEIGHTS_ENVIRONMENT, "OMP_NUM_THREADS"]))
@click.option("--dataset", help="Dataset to extract (emodb, emovo, cafe, iemocap, ravdess, demo, or a prepared user corpus).")
@click.option("--root", type=click.Path(path_type=Path), help="Corpus folder; used to prepare the manifest if it is missing.")
@click.option("--features", "feature_names", default=None,
              help="Comma-separated features (default: every one whose weights are available).")
@click.option("--workers", type=WORKERS, default=2, show_default=True,
              help="Dask worker processes on this machine; 0 runs in this process without Dask.")
@click.option("--scheduler", default=None,
              help="An existing Dask cluster: its scheduler's address (tcp://host:8786) or scheduler file (mgser cluster slurm).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--batch-size", type=BATCH_SIZE, default=16, show_default=True,
              help="Utterances per worker task (and per part file); the --ssl encoders run them in padded passes.")
@click.option("--overwrite", is_flag=True, help="Recompute everything instead of resuming (the old stores stay readable until replaced).")
@click.option("--strict", is_flag=True, help="Fail if any utterance had to be skipped.")
@weights_options()
@click.option("--ssl", "ssl", multiple=True, metavar="NAME=CHECKPOINT",
              help="A Hugging Face speech encoder as feature NAME: a save_pretrained folder or a model id in the local "
                   "cache (repeatable; or [ssl.NAME] tables in $MGSER_CONFIG). See docs/features.md, 'Self-supervised encoders'.")
@click.option("--ssl-layers", default=None, help="Hidden states to store for the --ssl encoders: 'all' (default) or e.g. 0,6,12.")
@click.option("--ssl-compute-dtype", type=click.Choice(["float32", "float16", "bfloat16"]), default=None,
              help="Precision of the --ssl encoders' forward passes (float16 / bfloat16: --device cuda only; "
                   "default float32).")
@click.option("--manifest-dir", type=click.Path(path_type=Path), default=DEFAULT_MANIFESTS, show_default=True)
@click.option("--features-dir", type=click.Path(path_type=Path), default=DEFAULT_FEATURES, show_default=True)
@common_options
@click.pass_context
def main(ctx: click.Context, dataset, root, feature_names, workers, scheduler, device, batch_size, overwrite, strict,
         ssl, ssl_layers, ssl_compute_dtype, manifest_dir, features_dir, verbose, quiet, **weights) -> None:
    """Extract pretrained-model features of a dataset into HDF5 stores under features/<dataset>/.

    Run as `extract --dataset emodb --root /path/to/emodb`, or use a sub-command.
    """
    if ctx.invoked_subcommand is not None:
        return
    if dataset is None:  # nothing to do is a usage error, not a success
        raise click.UsageError("Missing option '--dataset' (or a sub-command: prepare).", ctx)
    names = name_list(feature_names, "--features")  # a usage error before anything is prepared
    from extract.extractors import ExtractorSettings
    from extract.extractors.base import MissingWeightsError
    from extract.pipeline import extract_dataset
    from sercore.manifest import manifest_path

    with command_errors(verbose, quiet):
        if scheduler is None:  # a cluster's workers may have the CUDA this machine lacks
            from sercore.device import check_cuda

            check_cuda(device)
        if not manifest_path(manifest_dir, dataset).is_file() and (root is not None or dataset == "demo"):
            from extract.prepare import prepare_dataset

            prepare_dataset(dataset, root, manifest_dir=manifest_dir, echo=say, progress=show_progress(quiet))
        from extract.extractors.ssl import parse_ssl_option

        try:
            encoders = parse_ssl_option(ssl, ssl_layers, ssl_compute_dtype)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--ssl") from None
        settings = ExtractorSettings(device=device, ssl=encoders, **weights)
        try:
            extract_dataset(dataset, names, settings=settings, manifest_dir=manifest_dir, features_dir=features_dir,
                            workers=workers, scheduler=scheduler, batch_size=batch_size, overwrite=overwrite,
                            strict=strict, progress=show_progress(quiet), echo=say, warn=warn)
        except MissingWeightsError as exc:  # the weights are not on this machine
            raise EnvironmentProblem("--features", str(exc)) from None


def _merges(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    from sercore.labels import parse_merges

    try:
        return parse_merges(value)
    except DataError as exc:
        raise click.BadParameter(exc.problem) from None


@main.command()
@click.option("--dataset", required=True,
              help="Corpus layout: emodb, emovo, cafe, iemocap, ravdess, folder, csv, or demo (generated).")
@click.option("--root", default=None, type=click.Path(path_type=Path),
              help="Corpus folder (the CSV file for --dataset csv; for demo, where to generate it: default demo_corpus/).")
@click.option("--name", default=None, help="Manifest name, data_manifests/<name>.csv (default: the dataset name).")
@click.option("--language", default=None, help="Language code, required for folder/csv corpora (e.g. sw, yo).")
@click.option("--speaker-pattern", default=None,
              help="folder corpora: regular expression finding the speaker in a file name, e.g. '^(\\d+)_'.")
@click.option("--layout", default=None,
              help="folder corpora: which folder level is the label and which the speaker, e.g. '{speaker}/{emotion}/*' "
                   "(default '{emotion}/*').")
@click.option("--protocol", type=click.Choice(["random", "speaker"]), default="random", show_default=True,
              help="Split written into the manifest: the paper's random split, or speaker-independent.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--merge", multiple=True, callback=_merges, metavar="SOURCE=TARGET",
              help="Merge one emotion into another, e.g. --merge calm=neutral (repeat, or separate by commas). "
                   "Without it every label is kept as a class of its own.")
@click.option("--manifest-dir", type=click.Path(path_type=Path), default=DEFAULT_MANIFESTS, show_default=True)
@common_options
def prepare(dataset, root, name, language, speaker_pattern, layout, protocol, seed, merge, manifest_dir, verbose, quiet) -> None:
    """Scan a corpus and write data_manifests/<name>.csv (see docs/corpora.md)."""
    from extract.prepare import prepare_dataset

    options = {"speaker_pattern": speaker_pattern} if speaker_pattern else {}
    if layout:
        options["layout"] = layout
    options["merge"] = merge
    with command_errors(verbose, quiet):
        prepare_dataset(dataset, root, name=name, language=language, protocol=protocol, seed=seed,
                        manifest_dir=manifest_dir, echo=say, progress=show_progress(quiet), **options)


if __name__ == "__main__":
    main()
