"""``mgser``: every command of the toolkit under one name (the ``extract``, ``train`` and ``predict`` entry
points are the same commands; their generic names clash with other tools, e.g. Debian's ``extract``).

Subcommands are imported when used, so ``mgser --help`` starts fast and ``mgser prepare`` never loads torch.
"""

from __future__ import annotations

import importlib

import click

from sercore.cli import epilog, version

#: subcommand -> (module, attribute, one-line help)
COMMANDS = {
    "prepare": ("extract.cli", "prepare", "Scan a corpus and write its manifest (data_manifests/<name>.csv)."),
    "extract": ("extract.cli", "main", "Extract features of a dataset into HDF5 stores (features/<dataset>/)."),
    "train": ("train.cli", "main", "Train and evaluate models on feature stores; WA/UA over runs."),
    "predict": ("predict.cli", "main", "Predict the emotion of audio files with a trained model bundle."),
    "report": ("train.studies.html_report", "main", "Write the self-contained HTML report of a run folder."),
    "grid": ("train.studies.grid", "main", "The paper's experiment grid as resumable Dask tasks (run_all.sh)."),
    "cluster": ("sercore.cluster", "main", "Start a Dask cluster (workers as SLURM jobs) for --scheduler."),
}

EXAMPLES = """\
mgser extract --dataset demo
mgser train --domains en,de,fr
mgser predict --model runs/en-de-fr_random clip.wav
mgser grid --seeds 2 --epochs 5 de=emodb:/data/emodb en=demo
mgser cluster slurm --jobs 4 --cores 4 --memory 16GB --walltime 04:00:00 --gpus 1"""

#: What ``mgser`` without arguments prints: the pipeline, its files, where to read more.
PIPELINE = """mgser prepare -> mgser extract -> mgser train -> mgser predict
  a corpus -> data_manifests/<name>.csv -> features/<dataset>/<split>.h5 -> runs/<out>/model.bundle -> emotions
`mgser --help` lists every command (also report, grid, cluster); `mgser COMMAND --help` describes one."""


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=epilog(EXAMPLES, ["MGSER_CONFIG", "OMP_NUM_THREADS"]))
@click.version_option(version(), "--version", prog_name="mgser", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Multilingual speech emotion recognition: prepare corpora, extract features, train, predict, report.

    `mgser COMMAND --help` describes each command; `mgser` alone prints the pipeline.
    """
    if ctx.invoked_subcommand is None:
        click.echo(PIPELINE)


if __name__ == "__main__":
    main()
