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
@click.option("--dataset", help="Dataset to extract (emodb, cafe, iemocap, emovo, or a prepared user corpus).")
@click.option("--root", type=click.Path(path_type=Path), help="Corpus folder; needed the first time, to prepare the manifest.")
@click.option("--features", "feature_names", default=None, help="Comma-separated features (default: every one whose weights are available).")
@click.pass_context
def main(ctx: click.Context, dataset: str | None, root: Path | None, feature_names: str | None) -> None:
    """Extract pretrained-model features of a dataset into HDF5 stores under features/<dataset>/.

    Run as `extract --dataset emodb --root /path/to/emodb`, or use a sub-command.
    """
    if ctx.invoked_subcommand is not None:
        return
    if dataset is None:
        click.echo(ctx.get_help())
        return
    _fail(NotImplementedError("feature extraction is not implemented yet"))


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
