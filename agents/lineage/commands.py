"""`tessera lineage show CID` and `tessera data add`: the lineage documents' commands.

Datasets are lineage documents (a DatasetManifest links its shards), so their
command lives here, not with the content store, which knows no documents.
Machine-readable results (a CID) go alone to stdout; summaries and progress
go to stderr, so `CID=$(tessera data add DIR)` works.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from agents.cli.apps import noun_app
from agents.lineage.tree import graph_dot, lineage_json, lineage_tree, render_rich
from agents.storage import open_store, validate_cid

lineage_app = noun_app("Lineage of checkpoints, rounds and datasets.")
data_app = noun_app("Datasets: byte-level token shards on IPFS.")
err = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="block-store folder or IPFS API address "
        "(default: $TESSERA_IPFS_API, else $TESSERA_STORE_DIR, else ~/.tessera/blocks)",
    ),
]


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
    store: StoreOpt = None,
) -> None:
    """Print the lineage back to the dataset: a tree, or JSON / dot for tools.

    Content the store lacks is labelled missing; content whose bytes do not
    match its CID is labelled corrupt.
    """
    graph = lineage_tree(open_store(store), validate_cid(cid))
    if format is Format.json:
        typer.echo(lineage_json(graph))
    elif format is Format.dot:
        typer.echo(graph_dot(graph), nl=False)
    else:
        Console().print(render_rich(graph))


@data_app.command("add")
def data_add(
    path: Annotated[Path, typer.Argument(help="text file, JSONL file, or folder of them")],
    name: Annotated[
        str | None, typer.Option(help="dataset name (default: the path's name)")
    ] = None,
    source: Annotated[str | None, typer.Option(help="where the text came from")] = None,
    license: Annotated[str, typer.Option("--license", help="the text's license")] = "unknown",
    shard_size: Annotated[int, typer.Option(min=1, help="bytes (= tokens) per shard")] = 1 << 20,
    skip_binary: Annotated[
        bool,
        typer.Option("--skip-binary", help="leave out files that are not UTF-8 text (listed)"),
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Turn text into byte-level token shards and a DatasetManifest; print its CID.

    Streams the input (memory stays flat whatever its size) with a progress bar.
    """
    from agents.lineage.datasets import DatasetError, build_dataset, input_size

    if not path.exists():
        raise DatasetError(f"no such file or folder: {path}")
    skipped: list[Path] = []

    def on_skip(file: Path, why: str) -> None:
        skipped.append(file)
        err.print(f"skipped {why}", highlight=False)

    progress = Progress(
        TextColumn("sharding"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )
    with progress:
        task = progress.add_task("data", total=input_size(path))
        cid, manifest = build_dataset(
            open_store(store),
            path,
            name=name or path.resolve().name,
            source=source or str(path),
            license=license,
            shard_size=shard_size,
            skip_binary=skip_binary,
            on_skip=on_skip,
            on_progress=lambda n: progress.advance(task, n),
        )
    left_out = f", {len(skipped)} binary file(s) skipped" if skipped else ""
    err.print(
        f"dataset {manifest.name!r}: {len(manifest.shards)} shard(s), "
        f"{manifest.total_tokens} tokens{left_out}",
        highlight=False,
    )
    typer.echo(cid)
