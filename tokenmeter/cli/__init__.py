"""The tokenmeter command line (placeholder until the CLI lands)."""

import click


@click.group()
def cli() -> None:
    """tokenmeter: LLM usage and cost in one database."""
