"""`tessera validator …`: audit a job, leave the validator set, withdraw credits."""

from __future__ import annotations

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
from agents.cli.running import run_until_done
from agents.errors import TesseraError
from agents.storage.config import resolve_store_spec

validator_app = noun_app("Run a validator.")


@validator_app.command("run")
def validator_run(
    job: JobOpt,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
    store: Store = None,
) -> None:
    """Register as a validator (locking its stake) and audit JOB until it completes.

    Also performs the job's keeper duties. `tessera validator deregister`
    releases the stake afterwards.
    """
    from agents.chain.protocol import JobStatus
    from agents.roles.validator import ValidatorAgent

    c = conn(rpc, network, keystore, dev_account, store)
    job_exists(c, job)
    status = c.protocol.job_state(job).status
    if status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
        raise TesseraError(f"job {job} is {status.name.lower()}: there is nothing to audit")
    agent = ValidatorAgent(
        c.protocol,
        c.store,
        resolve_store_spec(store),
        job,
        from_block=c.client.deployment.block,
    )
    agent.register()
    console.print(
        f"validator {c.client.address} audits job {job} "
        f"({tsr(c.protocol.locked_of())} of its stake locked)",
        highlight=False,
    )
    run_until_done(agent, c.protocol, job, console, "validator")
    s = agent.stats
    if s.train_seconds_audited:
        console.print(
            f"audit cost: replaying the sampled steps took {s.audit_cost:.1%} of the time "
            f"their training took ({s.replay_seconds:.1f} s of replay for "
            f"{s.train_seconds_audited:.1f} s of audited training)",
            highlight=False,
        )
    console.print("`tessera validator deregister` releases your validator stake")


@validator_app.command("deregister")
def validator_deregister(
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Leave the validator set; the stake it locked becomes free (then `stake unstake`)."""
    c = conn(rpc, network, keystore, dev_account)
    p = c.protocol
    if not p.is_validator():
        raise TesseraError(f"{c.client.address} is not a registered validator")
    freed = -change_of(p.locked_of, p.deregister_validator)
    if freed:
        console.print(f"deregistered {c.client.address}; {tsr(freed)} unlocked", highlight=False)
        return
    delay = int(c.client.call("ValidatorRegistry", "exitDelay"))
    console.print(
        f"deregistered {c.client.address}: exit started; its stake is released after {delay} s "
        "with `tessera validator release`",
        highlight=False,
    )


@validator_app.command("release")
def validator_release(
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Release your validator stake once the exit delay after `deregister` has passed."""
    c = conn(rpc, network, keystore, dev_account)
    p = c.protocol
    freed = -change_of(
        p.locked_of, lambda: c.client.send("ValidatorRegistry", "releaseValidatorStake")
    )
    console.print(f"{tsr(freed)} unlocked", highlight=False)


@validator_app.command("withdraw-credit")
def validator_withdraw_credit(
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Withdraw what the court credited you (bounties, returned bonds, rewards)."""
    c = conn(rpc, network, keystore, dev_account)
    if c.protocol.credit_of() == 0:
        raise TesseraError(f"{c.client.address} has no court credit to withdraw")
    console.print(f"withdrew {tsr(c.protocol.withdraw_credit())}", highlight=False)
