"""The `tessera` command: one Typer app with a sub-app per noun.

Commands are thin: they parse arguments and call the service layer in the
concern's package. A user mistake (any `TesseraError`) prints one line and
exits non-zero, never a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from agents.errors import TesseraError

err_console = Console(stderr=True)

app = typer.Typer(
    name="tessera",
    help="Decentralized pipeline-parallel training on an EVM chain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_subapps() -> None:
    """Attach each concern's sub-app; a concern that is not built yet is skipped."""
    import importlib

    for module_name, attr, name in (
        ("agents.storage.commands", "store_app", "store"),
        ("agents.storage.commands", "data_app", "data"),
        ("agents.lineage.commands", "lineage_app", "lineage"),
        ("agents.roles.commands", "stake_app", "stake"),
        ("agents.roles.commands", "job_app", "job"),
        ("agents.roles.commands", "provider_app", "provider"),
        ("agents.roles.commands", "validator_app", "validator"),
        ("agents.roles.commands", "shares_app", "shares"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        app.add_typer(getattr(module, attr), name=name)


_register_subapps()


def _register_commands() -> None:
    """Top-level verbs: `up`, `infer`, `demo`."""
    try:
        from agents.roles import commands
    except ModuleNotFoundError as exc:  # roles need every other concern
        if not (exc.name or "").startswith("agents."):
            raise
        return
    app.command("up")(commands.up)
    app.command("infer")(commands.infer)
    app.command("demo")(commands.demo)


_register_commands()


def main() -> None:
    """Entry point: run the app, turning TesseraError into one line on stderr."""
    try:
        # standalone_mode=False returns the code of a `typer.Exit` instead of exiting.
        code = app(standalone_mode=False)
    except TesseraError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
