"""`tessera provider …`: serve a stage of a job, or leave one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agents.cli.apps import noun_app
from agents.cli.options import (
    DevAccount,
    JobOpt,
    Keystore,
    Network,
    Rpc,
    Store,
    change_of,
    conn,
    console,
    job_exists,
    tsr,
)
from agents.cli.running import join_ray, run_until_done
from agents.errors import TesseraError
from agents.storage.config import resolve_store_spec

provider_app = noun_app("Run a compute provider.")


@provider_app.command("run")
def provider_run(
    job: JobOpt,
    stage: Annotated[
        int | None, typer.Option(min=0, help="stage to take (default: the next free one)")
    ] = None,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
    store: Store = None,
    bind: Annotated[
        str | None,
        typer.Option(
            help="serve the stage over the authenticated transport at this ZeroMQ address "
            "(e.g. tcp://0.0.0.0:7100): no Ray, the mode for independent operators",
        ),
    ] = None,
    advertise: Annotated[
        str | None,
        typer.Option(help="with --bind: the address peers reach, published on-chain"),
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            help="with --bind: transport key pair, made on first use (mode 0600) "
            "[default: $TESSERA_HOME/transport-key.json]"
        ),
    ] = None,
    snapshot_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="TESSERA_SNAPSHOT_DIR",
            help="map the stage's per-step audit snapshots from files in this local "
            "directory instead of RAM (a round holds one state per step)",
        ),
    ] = None,
) -> None:
    """Stake, join a stage of JOB and train it until the job completes, then serve it.

    Without --bind the stage runs in this operator's Ray cluster ($RAY_ADDRESS or the
    local head); with --bind it talks to the adjacent stages' providers over the
    transport (README "Running across operators"). Also performs the job's keeper
    duties (seal, seed, finalize) when they are due.
    """
    from agents.chain.deployments import tessera_home
    from agents.roles.provider import ProviderAgent
    from agents.roles.stage_loop import TransportOptions

    if bind is None and (advertise is not None or key_file is not None):
        raise TesseraError("--advertise and --key-file need --bind (the transport mode)")
    if snapshot_dir is not None:
        from agents.training.checkpoint import SpillDir

        snapshot_dir = SpillDir(snapshot_dir.expanduser().resolve()).path  # fail before staking
    c = conn(rpc, network, keystore, dev_account, store)
    job_exists(c, job)
    n = c.protocol.job_terms(job).num_stages
    if stage is not None and stage >= n:
        raise TesseraError(f"job {job} has {n} stages (0-{n - 1}): stage {stage} does not exist")
    transport = None
    if bind is None:
        join_ray()
    else:
        transport = TransportOptions(
            key_path=key_file or tessera_home() / "transport-key.json",
            bind=bind,
            advertise=advertise,
        )
    agent = ProviderAgent(
        c.protocol,
        c.store,
        store_spec=resolve_store_spec(store),
        job_id=job,
        stage=stage,
        from_block=c.client.deployment.block,
        transport=transport,
        snapshot_dir=None if snapshot_dir is None else str(snapshot_dir),
    )
    agent.join()
    where = ""
    if transport is not None:
        where = f" at {agent.link().endpoint}"
    console.print(
        f"provider {c.client.address} serves job {job} stage {agent.stage}{where} "
        f"(locked {tsr(c.protocol.job_terms(job).min_stake)} of its stake)",
        highlight=False,
    )
    run_until_done(agent, c.protocol, job, console, "provider", serve_after=True)


@provider_app.command("leave")
def provider_leave(
    job: JobOpt,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Leave your stage of JOB while the job has not filled; your stake lock is released."""
    c = conn(rpc, network, keystore, dev_account)
    job_exists(c, job)
    p = c.protocol
    if not p.has_function("JobMarket", "leaveStage"):
        raise TesseraError(
            "this deployment's JobMarket has no leaveStage; the owner can `tessera job cancel`"
        )
    terms = p.job_terms(job)
    mine = [
        s for s, who in enumerate(p.providers(job, terms.num_stages)) if who == c.client.address
    ]
    if not mine:
        raise TesseraError(f"{c.client.address} holds no stage of job {job}")
    freed = -change_of(p.locked_of, lambda: p.leave_stage(job))
    console.print(f"left stage {mine[0]} of job {job}; {tsr(freed)} unlocked", highlight=False)


@provider_app.command("claim")
def provider_claim(
    job: Annotated[
        int | None, typer.Option("--job", min=1, help="also mint this job's credited shares")
    ] = None,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Claim the stage rewards credited to you (all jobs) and, with --job, your shares."""
    c = conn(rpc, network, keystore, dev_account)
    p = c.protocol
    said = []
    if p.rewards_owed():
        said.append(f"claimed {tsr(p.claim_rewards())} of rewards")
    if job is not None:
        job_exists(c, job)
        if p.shares_owed(job):
            said.append(f"minted {p.claim_shares(job)} shares of model {job}")
    if not said:
        raise TesseraError(f"{c.client.address} has nothing to claim")
    console.print("; ".join(said), highlight=False)
