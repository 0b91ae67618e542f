"""`tessera provider …`: serve a stage of a job, or leave one."""

from __future__ import annotations

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
) -> None:
    """Stake, join a stage of JOB and train it until the job completes, then serve it.

    Also performs the job's keeper duties (seal, seed, finalize) when they are due.
    """
    from agents.roles.provider import ProviderAgent

    c = conn(rpc, network, keystore, dev_account, store)
    job_exists(c, job)
    n = c.protocol.job_terms(job).num_stages
    if stage is not None and stage >= n:
        raise TesseraError(f"job {job} has {n} stages (0-{n - 1}): stage {stage} does not exist")
    join_ray()
    agent = ProviderAgent(
        c.protocol,
        c.store,
        store_spec=resolve_store_spec(store),
        job_id=job,
        stage=stage,
        from_block=c.client.deployment.block,
    )
    agent.join()
    console.print(
        f"provider {c.client.address} serves job {job} stage {agent.stage} "
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
    before = p.locked_of()
    p.leave_stage(job)
    console.print(
        f"left stage {mine[0]} of job {job}; {tsr(before - p.locked_of())} unlocked",
        highlight=False,
    )


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
    if not p.has_function("JobMarket", "claimRewards"):
        raise TesseraError("this deployment pays rewards and shares directly: nothing to claim")
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
