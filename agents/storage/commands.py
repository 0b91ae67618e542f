"""`tessera store …` and `tessera data …`: thin commands over the content store.

Machine-readable results (a CID) go alone to stdout; summaries go to stderr,
so `CID=$(tessera store add FILE)` works.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agents.storage import compute_cid, open_store, validate_cid
from agents.storage.errors import StoreError

err = Console(stderr=True)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="block-store folder or IPFS API address "
        "(default: $TESSERA_IPFS_API, else $TESSERA_STORE_DIR, else ~/.tessera/blocks)",
    ),
]

store_app = typer.Typer(help="Content on IPFS: add, get, export and import.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets: byte-level token shards on IPFS.", no_args_is_help=True)


@store_app.command("add")
def store_add(
    path: Annotated[Path, typer.Argument(help="file or folder to add")],
    only_hash: Annotated[
        bool, typer.Option("--only-hash", "-n", help="print the CID, store nothing")
    ] = False,
    cid_version: Annotated[int, typer.Option("--cid-version", help="0 or 1")] = 1,
    pin: Annotated[bool, typer.Option("--pin/--no-pin", help="pin what is added")] = True,
    store: StoreOpt = None,
) -> None:
    """Add a file or folder; print its CID (the same as `ipfs add -r --cid-version`)."""
    if cid_version not in (0, 1):
        raise StoreError(f"--cid-version must be 0 or 1, got {cid_version}")
    if not path.exists():
        raise StoreError(f"no such file or folder: {path}")
    if only_hash:
        typer.echo(compute_cid(path, cid_version=cid_version))
        return
    target = open_store(store)
    if path.is_dir():
        if cid_version != 1:
            raise StoreError("folders are added as CIDv1 only")
        cid = target.add_dir(path, pin=pin)
    else:
        cid = target.add_file(path, pin=pin, cid_version=cid_version)
    typer.echo(cid)


@store_app.command("get")
def store_get(
    cid: Annotated[str, typer.Argument(help="CID of a file or folder")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="where to write (default: stdout)")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Write content to a path, or a file's bytes to stdout; every block is verified."""
    cid = validate_cid(cid)
    target = open_store(store)
    if output is None:
        out = sys.stdout.buffer
        for piece in target.cat_stream(cid):
            out.write(piece)
        out.flush()
        return
    target.get(cid, output)
    err.print(f"wrote {cid} to {output}", highlight=False)


@store_app.command("export")
def store_export(
    cid: Annotated[str, typer.Argument(help="root CID")],
    output: Annotated[Path, typer.Option("--output", "-o", help="CAR file to write")],
    store: StoreOpt = None,
) -> None:
    """Export a whole DAG as a CARv1 file."""
    cid = validate_cid(cid)
    open_store(store).export_car(cid, output)
    err.print(f"exported {cid} to {output}", highlight=False)


@store_app.command("import")
def store_import(
    car: Annotated[Path, typer.Argument(help="CARv1 file")],
    store: StoreOpt = None,
) -> None:
    """Import a CARv1 file (every block verified) and pin its roots; print the roots."""
    for root in open_store(store).import_car(car):
        typer.echo(root)


@store_app.command("gc")
def store_gc(store: StoreOpt = None) -> None:
    """Remove every unpinned block; print how many were removed."""
    typer.echo(open_store(store).gc())


@data_app.command("add")
def data_add(
    path: Annotated[Path, typer.Argument(help="text file, JSONL file, or folder of them")],
    name: Annotated[
        str | None, typer.Option(help="dataset name (default: the path's name)")
    ] = None,
    source: Annotated[str | None, typer.Option(help="where the text came from")] = None,
    license: Annotated[str, typer.Option("--license", help="the text's license")] = "unknown",
    shard_size: Annotated[int, typer.Option(help="bytes (= tokens) per shard")] = 1 << 20,
    store: StoreOpt = None,
) -> None:
    """Turn text into byte-level token shards and a DatasetManifest; print its CID."""
    from agents.lineage.datasets import build_dataset

    cid, manifest = build_dataset(
        open_store(store),
        path,
        name=name or path.resolve().name,
        source=source or str(path),
        license=license,
        shard_size=shard_size,
    )
    err.print(
        f"dataset {manifest.name!r}: {len(manifest.shards)} shard(s), "
        f"{manifest.total_tokens} tokens",
        highlight=False,
    )
    typer.echo(cid)
