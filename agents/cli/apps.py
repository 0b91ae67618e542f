"""Typer apps as every `tessera` noun builds them.

Help is printed by the plain formatter (`rich_markup_mode=None`): flags show
no value placeholder, so `--no-cheat` does not read as if it took a
`<bool>`. A noun given alone (`tessera job`) prints its help and exits 0
through a documented `invoke_without_command` callback, not through the
parser's "no arguments" error.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer


def _settings() -> dict:
    return {"help_option_names": ["--help", "-h"]}


def noun_app(help: str) -> typer.Typer:
    """A sub-app for one noun (`tessera job …`) that prints its help when given alone."""
    sub = typer.Typer(
        help=help,
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings=_settings(),
    )

    @sub.callback(invoke_without_command=True)
    def _alone(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            typer.echo(ctx.get_help())
            raise typer.Exit(0)

    return sub


def tessera_version() -> str:
    """The installed distribution's version."""
    try:
        return version("tessera")
    except PackageNotFoundError:  # run from a checkout without `pip install -e .`
        return "0+unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tessera {tessera_version()}")
        raise typer.Exit(0)


def root_app() -> typer.Typer:
    """The `tessera` app: `--version`, and its help when run bare."""
    app = typer.Typer(
        name="tessera",
        help="Decentralized pipeline-parallel training on an EVM chain.",
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings=_settings(),
    )

    @app.callback(invoke_without_command=True)
    def _root(
        ctx: typer.Context,
        show_version: Annotated[
            bool,
            typer.Option(
                "--version",
                callback=_print_version,
                is_eager=True,
                help="Print the version and exit.",
            ),
        ] = False,
    ) -> None:
        if ctx.invoked_subcommand is None:
            typer.echo(ctx.get_help())
            raise typer.Exit(0)

    return app
