"""``extract``: prepare manifests and write feature stores. Each sub-command calls one library function."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sercore.errors import SerError

DEFAULT_MANIFESTS = Path("data_manifests")
DEFAULT_FEATURES = Path("features")


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset", help="Dataset to extract (emodb, emovo, cafe, iemocap, demo, or a prepared user corpus).")
@click.option("--root", type=click.Path(path_type=Path), help="Corpus folder; used to prepare the manifest if it is missing.")
@click.option("--features", "feature_names", default=None,
              help="Comma-separated features (default: every one whose weights are available).")
@click.option("--workers", type=int, default=2, show_default=True,
              help="Dask worker processes on this machine; 0 runs in this process without Dask.")
@click.option("--scheduler", default=None, help="Address of an existing Dask scheduler, e.g. tcp://host:8786.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True, help="Utterances per worker task (and per part file).")
@click.option("--overwrite", is_flag=True, help="Recompute everything instead of resuming.")
@click.option("--strict", is_flag=True, help="Fail if any utterance had to be skipped.")
@click.option("--wav2vec-checkpoint", type=click.Path(path_type=Path), default=None, help="wav2vec checkpoint (or $MGSER_WAV2VEC_CHECKPOINT).")
@click.option("--wav2vec-layer", type=int, default=None, help="wav2vec 2.0 / HuBERT: transformer layer to keep.")
@click.option("--allosaurus-model", type=click.Path(path_type=Path), default=None, help="Allosaurus model folder (or $MGSER_ALLOSAURUS_MODEL).")
@click.option("--byol-checkpoint", type=click.Path(path_type=Path), default=None, help="BYOL-A checkpoint (or $MGSER_BYOL_CHECKPOINT).")
@click.option("--manifest-dir", type=click.Path(path_type=Path), default=DEFAULT_MANIFESTS, show_default=True)
@click.option("--features-dir", type=click.Path(path_type=Path), default=DEFAULT_FEATURES, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def main(ctx: click.Context, dataset, root, feature_names, workers, scheduler, device, batch_size, overwrite, strict,
         wav2vec_checkpoint, wav2vec_layer, allosaurus_model, byol_checkpoint, manifest_dir, features_dir, quiet) -> None:
    """Extract pretrained-model features of a dataset into HDF5 stores under features/<dataset>/.

    Run as `extract --dataset emodb --root /path/to/emodb`, or use a sub-command.
    """
    if ctx.invoked_subcommand is not None:
        return
    if dataset is None:
        click.echo(ctx.get_help())
        return
    from extract.extractors import ExtractorSettings
    from extract.extractors.base import MissingWeightsError
    from extract.pipeline import extract_dataset
    from sercore.manifest import manifest_path

    try:
        if not manifest_path(manifest_dir, dataset).is_file() and (root is not None or dataset == "demo"):
            from extract.prepare import prepare_dataset

            prepare_dataset(dataset, root, manifest_dir=manifest_dir, echo=click.echo)
        settings = ExtractorSettings(device=device, wav2vec_checkpoint=wav2vec_checkpoint, wav2vec_layer=wav2vec_layer,
                                     allosaurus_model=allosaurus_model, byol_checkpoint=byol_checkpoint)
        names = [f.strip() for f in feature_names.split(",") if f.strip()] if feature_names else None
        extract_dataset(dataset, names, settings=settings, manifest_dir=manifest_dir, features_dir=features_dir,
                        workers=workers, scheduler=scheduler, batch_size=batch_size, overwrite=overwrite,
                        strict=strict, progress=not quiet, echo=click.echo)
    except (SerError, MissingWeightsError, ValueError) as exc:
        _fail(exc)


@main.command()
@click.option("--dataset", required=True, help="Corpus layout: emodb, emovo, cafe, iemocap, folder, csv, or demo (generated).")
@click.option("--root", default=None, type=click.Path(path_type=Path),
              help="Corpus folder (the CSV file for --dataset csv; for demo, where to generate it: default demo_corpus/).")
@click.option("--name", default=None, help="Manifest name, data_manifests/<name>.csv (default: the dataset name).")
@click.option("--language", default=None, help="Language code, required for folder/csv corpora (e.g. sw, yo).")
@click.option("--speaker-pattern", default=None,
              help="folder corpora: regular expression finding the speaker in a file name, e.g. '^(\\d+)_'.")
@click.option("--protocol", type=click.Choice(["random", "speaker"]), default="random", show_default=True,
              help="Split written into the manifest: the paper's random split, or speaker-independent.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--manifest-dir", type=click.Path(path_type=Path), default=DEFAULT_MANIFESTS, show_default=True)
def prepare(dataset, root, name, language, speaker_pattern, protocol, seed, manifest_dir) -> None:
    """Scan a corpus and write data_manifests/<name>.csv (see README, "Preparing corpora")."""
    from extract.prepare import prepare_dataset

    options = {"speaker_pattern": speaker_pattern} if speaker_pattern else {}
    try:
        prepare_dataset(dataset, root, name=name, language=language, protocol=protocol, seed=seed,
                        manifest_dir=manifest_dir, echo=click.echo, **options)
    except SerError as exc:
        _fail(exc)


if __name__ == "__main__":
    main()
