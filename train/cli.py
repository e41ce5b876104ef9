"""``train``: fit and evaluate models from feature stores."""

from __future__ import annotations

import sys

import click

from sercore.errors import SerError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--domains", required=True, help="Comma-separated language codes, e.g. de or en,de,fr.")
def main(domains: str) -> None:
    """Train SER models on the feature stores of the given language domains."""
    click.echo("error: training is not implemented yet", err=True)
    sys.exit(2)


if __name__ == "__main__":
    main()
