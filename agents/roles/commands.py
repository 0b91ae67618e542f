"""`tessera` sub-apps for the protocol roles: stake, job, provider, validator, shares.

Commands only parse options, open a Connection and call the role layer; every
user mistake is a TesseraError that the root app prints as one line.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agents.chain.protocol import JobStatus
from agents.errors import TesseraError
from agents.roles.context import Connection, connect
from agents.storage.config import resolve_store_spec

console = Console()
WEI = 10**18

Rpc = Annotated[str | None, typer.Option("--rpc", help="JSON-RPC URL (or $TESSERA_RPC)")]
Network = Annotated[str | None, typer.Option("--network", help="brownie network id, e.g. sepolia")]
Keystore = Annotated[
    str | None,
    typer.Option("--keystore", help="encrypted keystore (password in $TESSERA_KEYSTORE_PASSWORD)"),
]
DevAccount = Annotated[
    int | None,
    typer.Option("--dev-account", help="anvil dev account index (local dev chains only)"),
]
Store = Annotated[
    str | None, typer.Option("--store", help="store dir or IPFS API (or $TESSERA_IPFS_API)")
]

stake_app = typer.Typer(help="Stake TSR to serve stages or validate.", no_args_is_help=True)
job_app = typer.Typer(help="Post and follow training jobs.", no_args_is_help=True)
provider_app = typer.Typer(help="Run a compute provider.", no_args_is_help=True)
validator_app = typer.Typer(help="Run a validator.", no_args_is_help=True)
shares_app = typer.Typer(help="Model shares and inference revenue.", no_args_is_help=True)


def _conn(rpc, network, keystore, dev_account, store=None, *, need_key=True) -> Connection:
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
    if value <= 0:
        raise TesseraError(f"amount must be positive, got {amount}")
    return int(value * WEI)


def _job_exists(conn: Connection, job_id: int) -> None:
    if not 1 <= job_id < conn.protocol.next_job_id():
        raise TesseraError(f"unknown job id {job_id} on chain {conn.client.chain_id}")


# -- stake ---------------------------------------------------------------------
@stake_app.command("add")
def stake_add(
    amount: str,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Stake AMOUNT TSR."""
    conn = _conn(rpc, network, keystore, dev_account)
    conn.protocol.stake(parse_tsr(amount))
    stake_show(rpc=rpc, network=network, keystore=keystore, dev_account=dev_account)


@stake_app.command("show")
def stake_show(
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Show stake, locked and unbonding amounts."""
    p = _conn(rpc, network, keystore, dev_account).protocol
    amount, release = p.unbonding_of()
    table = Table(title=f"stake of {p.client.address}")
    for col in ("staked", "locked", "unbonding", "release at"):
        table.add_column(col)
    table.add_row(
        f"{p.stake_of() / WEI:g}",
        f"{p.locked_of() / WEI:g}",
        f"{amount / WEI:g}",
        str(release or "-"),
    )
    console.print(table)


@stake_app.command("unstake")
def stake_unstake(
    amount: str,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Start unbonding AMOUNT TSR (withdraw after the unbonding period)."""
    conn = _conn(rpc, network, keystore, dev_account)
    conn.client.send("StakeManager", "requestUnstake", parse_tsr(amount))
    console.print("unbonding started")


@stake_app.command("withdraw")
def stake_withdraw(
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Withdraw unbonded stake."""
    conn = _conn(rpc, network, keystore, dev_account)
    conn.client.send("StakeManager", "withdraw")
    console.print("withdrawn")


# -- job -------------------------------------------------------------------------
@job_app.command("post")
def job_post(
    job_file: str,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
    store: Store = None,
) -> None:
    """Post the job described by JOB_FILE (JSON or YAML: {spec, terms})."""
    from agents.roles.jobfile import load_job_file
    from agents.roles.owner import OwnerAgent

    jf = load_job_file(job_file)  # validate before touching the chain
    conn = _conn(rpc, network, keystore, dev_account, store)
    posted = OwnerAgent(conn.protocol, conn.store).post(jf.spec, jf.terms)
    console.print(
        f"job {posted.job_id} posted: spec {posted.spec_cid}, escrow {posted.escrow / WEI:g} TSR"
    )


@job_app.command("status")
def job_status(job_id: int, rpc: Rpc = None, network: Network = None) -> None:
    """Show a job's state, stages and rounds."""
    conn = _conn(rpc, network, None, None, need_key=False)
    _job_exists(conn, job_id)
    p = conn.protocol
    terms, state = p.job_terms(job_id), p.job_state(job_id)
    console.print(
        f"job {job_id}: [bold]{state.status.name}[/] round {state.current_round}/{terms.rounds} "
        f"escrow {state.escrow / WEI:g} TSR spec {terms.spec_cid}"
    )
    table = Table("stage", "provider", "last finalized round")
    for s in range(terms.num_stages):
        table.add_row(str(s), p.stage_provider(job_id, s), str(p.last_finalized_round(job_id, s)))
    console.print(table)


@job_app.command("finalize")
def job_finalize(
    job_id: int,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Seal/finalize whatever round of JOB_ID is due (anyone may)."""
    from agents.roles.keeper import Keeper

    conn = _conn(rpc, network, keystore, dev_account)
    _job_exists(conn, job_id)
    done = Keeper(conn.protocol, job_id, conn.client.deployment.block).tick()
    console.print("; ".join(done) or "nothing is due yet")


@job_app.command("checkpoint")
def job_checkpoint(
    job_id: int, rpc: Rpc = None, network: Network = None, store: Store = None
) -> None:
    """Publish the job's latest finalized CheckpointManifest; print its CID."""
    from agents.roles.owner import publish_checkpoint_manifest

    conn = _conn(rpc, network, None, None, store, need_key=False)
    _job_exists(conn, job_id)
    typer.echo(publish_checkpoint_manifest(conn.protocol, conn.store, job_id))


def _join_ray() -> None:
    """Join the operator's Ray cluster ($RAY_ADDRESS or the local head), or say how to start one."""
    import logging
    import os

    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(
            address=os.environ.get("RAY_ADDRESS", "auto"),
            namespace="tessera",
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except ConnectionError:
        raise TesseraError(
            "no Ray cluster to join: start one with `ray start --head` (see README, "
            "'Scale and trust') or set $RAY_ADDRESS"
        ) from None


# -- long-running agents ---------------------------------------------------------------
def _run_until_done(
    agent, conn: Connection, job_id: int, label: str, *, serve_after: bool = False
) -> None:
    """Tick the agent until the job ends (Ctrl-C stops it); providers can keep serving."""
    from agents.roles.loop import start_loops

    stop = threading.Event()
    threads = start_loops(agent, stop)
    try:
        while conn.protocol.job_state(job_id).status not in (
            JobStatus.COMPLETED,
            JobStatus.CANCELLED,
        ):
            time.sleep(2)
        stop.set()
        if serve_after and conn.protocol.job_state(job_id).status == JobStatus.COMPLETED:
            console.print(f"job {job_id} completed; serving inference for it (Ctrl-C stops)")
            while True:  # the stage host lives as long as this process
                time.sleep(3600)
    except KeyboardInterrupt:
        console.print(f"{label} stopped")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        close = getattr(agent, "close", None)
        if close is not None:
            close()


@provider_app.command("run")
def provider_run(
    job: Annotated[int, typer.Option(help="job id")],
    stage: Annotated[int | None, typer.Option(help="stage (default: first open)")] = None,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
    store: Store = None,
) -> None:
    """Stake, join a stage of JOB and train it until the job completes."""
    from agents.roles.provider import ProviderAgent

    conn = _conn(rpc, network, keystore, dev_account, store)
    _job_exists(conn, job)
    _join_ray()
    agent = ProviderAgent(
        conn.protocol,
        conn.store,
        store_spec=resolve_store_spec(store),
        job_id=job,
        stage=stage,
        from_block=conn.client.deployment.block,
    )
    agent.join()
    console.print(f"provider {conn.client.address} serves job {job} stage {agent.stage}")
    _run_until_done(agent, conn, job, "provider", serve_after=True)


@validator_app.command("run")
def validator_run(
    job: Annotated[int, typer.Option(help="job id")],
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
    store: Store = None,
) -> None:
    """Register as a validator and audit JOB until it completes."""
    from agents.roles.validator import ValidatorAgent

    conn = _conn(rpc, network, keystore, dev_account, store)
    _job_exists(conn, job)
    agent = ValidatorAgent(
        conn.protocol,
        conn.store,
        resolve_store_spec(store),
        job,
        from_block=conn.client.deployment.block,
    )
    agent.register()
    console.print(f"validator {conn.client.address} audits job {job}")
    _run_until_done(agent, conn, job, "validator")
    console.print(f"audit cost: {agent.stats.audit_cost:.1%} of the training time audited")


# -- shares ------------------------------------------------------------------------------
@shares_app.command("show")
def shares_show(
    model: int,
    holder: Annotated[str | None, typer.Option()] = None,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Show a holder's shares of MODEL and the revenue it can claim."""
    conn = _conn(rpc, network, keystore, dev_account, need_key=holder is None)
    _job_exists(conn, model)
    p = conn.protocol
    who = holder or conn.client.address
    supply = p.total_shares(model)
    bal = p.shares_of(model, who)
    console.print(
        f"{who}: {bal} of {supply} shares of model {model} "
        f"({(bal / supply if supply else 0):.2%}), "
        f"claimable {p.claimable(model, who) / WEI:.6f} TSR"
    )


@shares_app.command("claim")
def shares_claim(
    model: int,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Claim the revenue accrued to your shares of MODEL."""
    conn = _conn(rpc, network, keystore, dev_account)
    _job_exists(conn, model)
    paid = conn.protocol.claim(model)
    console.print(f"claimed {paid / WEI:.6f} TSR")


# -- top-level commands -------------------------------------------------------------------
def up(
    port: Annotated[int, typer.Option(help="anvil port (0: a free one)")] = 0,
    block_time: Annotated[float, typer.Option(help="seconds per block")] = 1.0,
    rpc: Rpc = None,
    network: Network = None,
) -> None:
    """Start a local chain, deploy the protocol and fund dev accounts (or check a remote one)."""
    from agents.chain.client import ChainClient
    from agents.chain.deploy import deploy_protocol
    from agents.chain.deployments import load_deployment, save_deployment
    from agents.chain.keys import dev_account
    from agents.chain.local import LocalChain

    if rpc or network:
        conn = _conn(rpc, network, None, None, need_key=False)
        dep = load_deployment(conn.client.chain_id)
        console.print(f"chain {dep.chain_id}: protocol deployed at block {dep.block}")
        for name, addr in sorted(dep.contracts.items()):
            console.print(f"  {name:13} {addr}")
        return
    import signal

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops anvil too, like Ctrl-C
    chain = LocalChain(port=port, block_time=block_time).start()
    try:
        from agents.roles.localnet import FAST_PARAMS

        deployer = ChainClient(chain.url, dev_account(0, chain.chain_id))
        dep = deploy_protocol(deployer, FAST_PARAMS)  # dispute windows of seconds, for dev
        path = save_deployment(dep)
        for i in range(1, 10):
            deployer.send(
                "TesseraToken", "mint", dev_account(i, chain.chain_id).address, 10_000 * WEI
            )
        console.print(f"anvil on {chain.url}; deployment written to {path}")
        console.print(
            f"dev accounts 1-9 hold 10,000 TSR each. In another shell:\n"
            f"  export TESSERA_RPC={chain.url}\n  ray start --head  # for providers"
        )
        console.print("Ctrl-C stops the chain.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        chain.stop()


def infer(
    model: Annotated[int, typer.Option(help="model id (= job id)")],
    prompt: Annotated[str, typer.Option(help="text to continue")],
    max_tokens: Annotated[int, typer.Option(help="byte tokens to generate")] = 64,
    price: Annotated[str, typer.Option(help="TSR per generated token")] = "0.01",
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
    store: Store = None,
) -> None:
    """Generate text through the stage holders' pipeline and pay the shareholders for it."""
    from agents.roles.gateway import InferenceGateway

    conn = _conn(rpc, network, keystore, dev_account, store)
    _job_exists(conn, model)
    _join_ray()
    gw = InferenceGateway(conn.protocol, conn.store, model, price_per_token=parse_tsr(price))
    done = gw.generate(prompt, max_tokens)
    console.print(done.text.decode("utf-8", errors="replace"), markup=False, highlight=False)
    console.print(
        f"[dim]{done.tokens} tokens, {done.fee / WEI:g} TSR paid to model {model}'s holders[/]"
    )


def demo(
    out: Annotated[str, typer.Option(help="output folder")] = "demo-out",
    stages: Annotated[int, typer.Option(help="pipeline stages (one provider each)")] = 3,
    rounds: Annotated[int, typer.Option(help="training rounds")] = 3,
    validators: Annotated[int, typer.Option(help="validator agents")] = 3,
    cheat_stage: Annotated[int, typer.Option(help="stage whose provider cheats")] = 1,
    cheat_round: Annotated[int, typer.Option(help="round (0-based) it cheats in")] = 1,
    cheat: Annotated[
        str,
        typer.Option(
            help="fake-gradient | skip-steps | wrong-data | withhold-bundles | garbage-record"
        ),
    ] = "fake-gradient",
    no_cheat: Annotated[bool, typer.Option("--no-cheat", help="everyone is honest")] = False,
    compression: Annotated[str, typer.Option(help="none | int8 | topk")] = "int8",
) -> None:
    """Run the whole protocol locally; exit 0 only if every check holds."""
    from pathlib import Path

    from agents.roles.demo import DemoOptions, print_report, run_demo

    if not 0 <= cheat_stage < stages:
        raise TesseraError(f"--cheat-stage must be in 0..{stages - 1}")
    if not 0 <= cheat_round < rounds - 1:
        raise TesseraError(f"--cheat-round must be in 0..{rounds - 2} (a later round must follow)")
    opts = DemoOptions(
        out=Path(out),
        stages=stages,
        rounds=rounds,
        validators=validators,
        cheat_stage=None if no_cheat else cheat_stage,
        cheat_round=cheat_round,
        cheat=cheat,
        compression=compression,
    )
    report = run_demo(opts, console)
    print_report(report, console)
    if not report.ok:
        raise typer.Exit(1)
