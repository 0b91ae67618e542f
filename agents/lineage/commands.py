"""`tessera lineage show CID`: where a checkpoint or round record came from."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from agents.lineage.tree import graph_dot, lineage_json, lineage_tree, render_rich
from agents.storage import open_store, validate_cid

lineage_app = typer.Typer(help="Lineage of checkpoints, rounds and datasets.", no_args_is_help=True)


class Format(StrEnum):
    """Output formats of `lineage show`."""

    tree = "tree"
    json = "json"
    dot = "dot"


@lineage_app.command("show")
def show(
    cid: Annotated[str, typer.Argument(help="CID of a checkpoint, round record, spec or dataset")],
    format: Annotated[
        Format, typer.Option("--format", "-f", help="tree, json or dot")
    ] = Format.tree,
    store: Annotated[
        str | None, typer.Option("--store", help="block-store folder or IPFS API address")
    ] = None,
) -> None:
    """Print the lineage back to the dataset: a Rich tree, or JSON / dot for tools."""
    graph = lineage_tree(open_store(store), validate_cid(cid))
    if format is Format.json:
        typer.echo(lineage_json(graph))
    elif format is Format.dot:
        typer.echo(graph_dot(graph), nl=False)
    else:
        Console().print(render_rich(graph))
