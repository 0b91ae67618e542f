"""`tessera stake …`: stake TSR, see it, unbond it, withdraw it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from agents.cli.apps import noun_app
from agents.cli.options import (
    DevAccount,
    Json,
    Keystore,
    Network,
    Rpc,
    change_of,
    conn,
    console,
    parse_tsr,
    print_json,
    tsr,
)

stake_app = noun_app("Stake TSR to serve stages or validate.")
Amount = Annotated[str, typer.Argument(help="amount of TSR, e.g. 12.5")]


@stake_app.command("add")
def stake_add(
    amount: Amount,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Stake AMOUNT TSR."""
    wei = parse_tsr(amount)  # a typo is refused before the chain is contacted
    c = conn(rpc, network, keystore, dev_account)
    c.protocol.stake(wei)
    stake_show(rpc=rpc, network=network, keystore=keystore, dev_account=dev_account)


@stake_app.command("show")
def stake_show(
    json_out: Json = False,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Show your stake: staked, locked in jobs, unbonding, and your TSR balance."""
    p = conn(rpc, network, keystore, dev_account).protocol
    amount, release = p.unbonding_of()
    info = {
        "address": p.client.address,
        "staked_wei": p.stake_of(),
        "locked_wei": p.locked_of(),
        "unbonding_wei": amount,
        "release_at": release or None,
        "balance_wei": p.balance(),
    }
    if json_out:
        print_json(info)
        return
    table = Table(title=f"stake of {p.client.address}")
    for col in ("staked", "locked", "unbonding", "release at", "balance"):
        table.add_column(col)
    table.add_row(
        tsr(info["staked_wei"]),
        tsr(info["locked_wei"]),
        tsr(amount),
        str(release or "-"),
        tsr(info["balance_wei"]),
    )
    console.print(table)


@stake_app.command("unstake")
def stake_unstake(
    amount: Amount,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Start unbonding AMOUNT TSR (withdraw it after the unbonding period)."""
    wei = parse_tsr(amount)
    c = conn(rpc, network, keystore, dev_account)
    c.client.send("StakeManager", "requestUnstake", wei)
    _, release = c.protocol.unbonding_of()
    console.print(f"unbonding {amount} TSR; withdraw after chain time {release}", highlight=False)


@stake_app.command("withdraw")
def stake_withdraw(
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Withdraw stake whose unbonding period is over."""
    c = conn(rpc, network, keystore, dev_account)
    got = change_of(c.protocol.balance, lambda: c.client.send("StakeManager", "withdraw"))
    console.print(f"withdrew {tsr(got)}", highlight=False)
