"""Options shared by the chain-facing commands, and small parsing helpers.

Every help text names the environment variable that can stand in for the
option, so a user never has to read the source to find it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from agents.errors import TesseraError

if TYPE_CHECKING:  # the chain stack (web3) loads only when a command needs it
    from agents.roles.context import Connection

console = Console(soft_wrap=True)  # lines stay whole when piped (scripts parse them)
err_console = Console(stderr=True, soft_wrap=True)
WEI = 10**18
# `tessera up` funds dev accounts 1-9 (0 deploys); anything else is an unfunded key.
DEV_ACCOUNTS = range(0, 10)

Rpc = Annotated[
    str | None,
    typer.Option("--rpc", help="JSON-RPC URL of the chain (default: $TESSERA_RPC)"),
]
Network = Annotated[
    str | None,
    typer.Option("--network", help="brownie network id instead of --rpc, e.g. sepolia"),
]
Keystore = Annotated[
    str | None,
    typer.Option(
        "--keystore",
        help="encrypted keystore file (default: $TESSERA_KEYSTORE; its password is read from "
        "$TESSERA_KEYSTORE_PASSWORD). Without one the key is $TESSERA_PRIVATE_KEY",
    ),
]
DevAccount = Annotated[
    int | None,
    typer.Option(
        "--dev-account",
        min=DEV_ACCOUNTS.start,
        max=DEV_ACCOUNTS.stop - 1,
        help="use anvil dev account N (0-9; local dev chains only; `tessera up` funds 1-9)",
    ),
]
Store = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="block-store folder or IPFS API address "
        "(default: $TESSERA_IPFS_API, else $TESSERA_STORE_DIR, else ~/.tessera/blocks)",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="print JSON for scripts instead of text")]
JobId = Annotated[int, typer.Argument(min=1, metavar="JOB_ID", help="job id")]
JobOpt = Annotated[int, typer.Option("--job", min=1, help="job id")]
ModelId = Annotated[int, typer.Argument(min=1, metavar="MODEL", help="model id (= the job id)")]


def conn(
    rpc: str | None,
    network: str | None,
    keystore: str | None,
    dev_account: int | None,
    store: str | None = None,
    *,
    need_key: bool = True,
) -> Connection:
    """Open a Connection for a command; every failure is one TesseraError line."""
    from agents.roles.context import connect

    return connect(
        rpc=rpc,
        network=network,
        keystore=keystore,
        dev_index=dev_account,
        store=store,
        need_key=need_key,
    )


def parse_tsr(amount: str) -> int:
    """'12.5' TSR -> wei, or a clear error."""
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise TesseraError(f"not an amount of TSR: {amount!r}") from None
    if not value.is_finite() or value <= 0:
        raise TesseraError(f"amount must be a positive number of TSR, got {amount}")
    wei = value * WEI
    if wei != wei.to_integral_value():
        raise TesseraError(f"{amount} TSR has more than 18 decimals")
    return int(wei)


def change_of(read: Callable[[], int], act: Callable[[], Any]) -> int:
    """How much `read()` rose across `act()` (negative: it fell), e.g. a balance
    across a withdrawal or a locked amount across a release."""
    before = read()
    act()
    return read() - before


def tsr(wei: int) -> str:
    """Wei as a TSR amount for people ('12.5 TSR')."""
    from agents.roles.jobfile import format_tsr

    return format_tsr(wei)


def parse_address(text: str, what: str = "address") -> str:
    """A checksummed address, or one clear line naming what was wrong."""
    from web3 import Web3

    if not Web3.is_address(text):
        raise TesseraError(f"{what} {text!r} is not an address (0x followed by 40 hex digits)")
    return Web3.to_checksum_address(text)


def job_exists(c: Connection, job_id: int) -> None:
    """Refuse a job id the chain does not know."""
    if not 1 <= job_id < c.protocol.next_job_id():
        raise TesseraError(f"unknown job id {job_id} on chain {c.client.chain_id}")


def print_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
