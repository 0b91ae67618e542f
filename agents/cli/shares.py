"""`tessera shares …`: who holds a model, what they can claim; claim it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from agents.cli.apps import noun_app
from agents.cli.options import (
    DevAccount,
    Json,
    Keystore,
    ModelId,
    Network,
    Rpc,
    conn,
    console,
    job_exists,
    parse_address,
    print_json,
    tsr,
)
from agents.errors import TesseraError

shares_app = noun_app("Model shares and inference revenue.")


@shares_app.command("show")
def shares_show(
    model: ModelId,
    holder: Annotated[
        str | None, typer.Option(help="one holder's address (default: every holder)")
    ] = None,
    json_out: Json = False,
    rpc: Rpc = None,
    network: Network = None,
) -> None:
    """Show the holders of MODEL's shares and the revenue each can claim (no key needed)."""
    who = parse_address(holder, "--holder") if holder else None
    c = conn(rpc, network, None, None, need_key=False)
    job_exists(c, model)
    p = c.protocol
    supply = p.total_shares(model)
    holders = [who] if who else p.share_holders(model)
    rows = []
    for h in holders:
        bal = p.shares_of(model, h)
        if who is None and bal == 0 and p.claimable(model, h) == 0:
            continue
        rows.append(
            {
                "holder": h,
                "shares": bal,
                "fraction": bal / supply if supply else 0.0,
                "claimable_wei": p.claimable(model, h),
            }
        )
    if json_out:
        print_json({"model": model, "total_shares": supply, "holders": rows})
        return
    table = Table(
        "holder", "shares", "of supply", "claimable", title=f"model {model}: {supply} shares"
    )
    for r in rows:
        table.add_row(
            r["holder"], str(r["shares"]), f"{r['fraction']:.2%}", tsr(r["claimable_wei"])
        )
    console.print(table)


@shares_app.command("claim")
def shares_claim(
    model: ModelId,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Claim the inference revenue accrued to your shares of MODEL."""
    c = conn(rpc, network, keystore, dev_account)
    job_exists(c, model)
    if c.protocol.claimable(model) == 0:
        raise TesseraError(f"{c.client.address} has no revenue of model {model} to claim")
    console.print(f"claimed {tsr(c.protocol.claim(model))}", highlight=False)


@shares_app.command("claim-parked")
def shares_claim_parked(
    model: ModelId,
    to: Annotated[str | None, typer.Option(help="receiver (default: you)")] = None,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Claim shares of MODEL whose mint to your contract account was refused and parked."""
    receiver = parse_address(to, "--to") if to else None
    c = conn(rpc, network, keystore, dev_account)
    job_exists(c, model)
    if c.protocol.parked_shares(model) == 0:
        raise TesseraError(f"{c.client.address} has no parked shares of model {model}")
    n = c.protocol.claim_parked_shares(model, receiver)
    console.print(f"claimed {n} parked shares of model {model}", highlight=False)
