"""`tessera store …`: thin commands over the content store (datasets are `tessera data`).

Machine-readable results (a CID) go alone to stdout; summaries go to stderr,
so `CID=$(tessera store add FILE)` works.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agents.cli.apps import noun_app
from agents.storage import compute_cid, open_store, validate_cid
from agents.storage.errors import StoreError

err = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="block-store folder or IPFS API address "
        "(default: $TESSERA_IPFS_API, else $TESSERA_STORE_DIR, else ~/.tessera/blocks)",
    ),
]

store_app = noun_app("Content on IPFS: add, get, export, import, verify.")


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


@store_app.command("verify")
def store_verify(
    repair: Annotated[
        bool, typer.Option("--remove-bad", help="delete the blocks that fail, so a re-add heals")
    ] = False,
    store: StoreOpt = None,
) -> None:
    """Re-hash every block (a scrub); list each one whose bytes do not match its CID.

    Exits 1 if any block is bad. `store add` of the original content or
    `store import` of a good CAR replaces a bad block either way.
    """
    report = open_store(store).verify()
    for cid, why in report.bad:
        typer.echo(f"bad {cid}: {why}")
    removed = ""
    if repair and report.bad:
        removed = f", {open_store(store).remove_blocks([c for c, _ in report.bad])} removed"
    err.print(f"checked {report.checked} blocks: {len(report.bad)} bad{removed}", highlight=False)
    if report.bad:
        raise typer.Exit(1)
