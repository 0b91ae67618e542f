"""A whole local Tessera network in one call: anvil, contracts, store, funded accounts.

`tessera demo` and the integration tests both stand on this, so what the demo
shows is exactly what the tests check. Agents are Ray actors made by `agent()`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from agents.chain.client import ChainClient
from agents.chain.deploy import deploy_protocol
from agents.chain.deployments import Deployment
from agents.chain.keys import dev_account
from agents.chain.local import LocalChain
from agents.chain.protocol import Protocol

WEI = 10**18

# Windows short enough for a demo on one machine, long enough for 2 cores.
FAST_PARAMS: dict[str, Any] = {
    "unbondingPeriod": 30,
    "responseWindow": 15,
    "commitVoteWindow": 25,
    "revealWindow": 15,
    "challengeBond": 5 * WEI,
    "minValidatorStake": 20 * WEI,
    "nonRevealPenalty": 1 * WEI,
    "committeeSize": 3,
}


@dataclass
class LocalNet:
    """Handles to a running network: participants are numbered keys (account 0 deploys).

    On a dev chain the keys are anvil's dev accounts; elsewhere (a chain that
    plays a public testnet) they are whatever keys the caller funded.
    """

    chain: LocalChain
    deployment: Deployment
    store_dir: Path
    store: Any
    keys: list[LocalAccount]
    rpc_url: str | None = None  # e.g. a proxy in front of the chain
    confirmations: int = 0
    _clients: dict[int, ChainClient] = field(default_factory=dict, repr=False)

    @property
    def url(self) -> str:
        return self.rpc_url or self.chain.url

    def protocol(self, index: int) -> Protocol:
        """Typed protocol access as participant `index`."""
        if index not in self._clients:
            self._clients[index] = ChainClient(
                self.url,
                self.keys[index],
                deployment=self.deployment,
                confirmations=self.confirmations,
            )
        return Protocol(self._clients[index])

    def address(self, index: int) -> str:
        return self.keys[index].address

    def fund(self, indices, amount: int = 10_000 * WEI, eth: int = 0) -> None:
        """Mint TSR (account 0 owns the token's faucet) and optionally send ETH for gas."""
        deployer = self.protocol(0).client
        for i in indices:
            if eth:
                deployer.transfer_eth(self.address(i), eth)
            deployer.send("TesseraToken", "mint", self.address(i), amount)

    def agent(self, kind: str, index: int, job_id: int, *, resources=None, **kw):
        """A provider or validator AgentRunner actor for participant `index`."""
        from agents.roles.runner import agent_actor

        return agent_actor(resources).remote(
            kind,
            rpc=self.url,
            private_key="0x" + bytes(self.keys[index].key).hex(),
            store=str(self.store_dir),
            job_id=job_id,
            deployment=self.deployment.to_dict(),
            resources=resources,
            confirmations=self.confirmations,
            **kw,
        )


@contextlib.contextmanager
def local_net(
    out: Path, *, params: dict[str, Any] | None = None, block_time: float = 1.0
) -> Iterator[LocalNet]:
    """Start anvil, deploy with `params` (FAST_PARAMS by default), open the store in `out`."""
    from agents.storage import open_store

    out.mkdir(parents=True, exist_ok=True)
    os.environ["TESSERA_DEPLOYMENTS_DIR"] = str(out / "deployments")
    chain = LocalChain(block_time=block_time, log_path=out / "anvil.log").start()
    try:
        keys = [dev_account(i, chain.chain_id) for i in range(chain.accounts)]
        deployer = ChainClient(chain.url, keys[0])
        deployment = deploy_protocol(deployer, params={**FAST_PARAMS, **(params or {})})
        store_dir = out / "store"
        yield LocalNet(chain, deployment, store_dir, open_store(str(store_dir)), keys)
    finally:
        chain.stop()


def init_local_ray(**kw: Any) -> bool:
    """Join or start a light local Ray (TOOLCHAIN.md settings); True if started here."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        address="local",
        namespace="tessera",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=300 * 2**20,
        log_to_driver=False,
        _system_config={"enable_worker_prestart": False},
        **kw,
    )
    return True


@dataclass
class JobRun:
    """A job and the agent actors working on it."""

    job_id: int
    spec_cid: str
    owner: Any  # OwnerAgent
    providers: list[Any]
    validators: list[Any]
    standbys: list[Any]
    started_standbys: list[Any] = field(default_factory=list)

    @property
    def actors(self) -> list[Any]:
        return [*self.providers, *self.validators, *self.standbys]

    def snapshots(self) -> list[dict]:
        import ray

        return ray.get([a.snapshot.remote() for a in self.actors])

    def stop(self) -> None:
        import ray

        with contextlib.suppress(Exception):  # best effort: Ray tears them down anyway
            ray.get([a.stop.remote() for a in self.actors], timeout=60)


def start_job(
    net: LocalNet,
    spec,
    terms,
    *,
    owner_index: int,
    provider_indices: list[int],
    validator_indices: list[int],
    standby_indices: list[int] = (),
    faults: dict[int, tuple[str, tuple[int, ...]]] | None = None,
    resources: dict[int, dict[str, float]] | None = None,
) -> JobRun:
    """Post the job as `owner_index`, then start one provider per stage and the validators.

    `faults` maps a stage to (fault name, rounds); `resources` maps a participant index
    to the Ray resources its agent (and stage host) must be placed with.
    """
    import ray

    from agents.roles.owner import OwnerAgent

    faults = faults or {}
    resources = resources or {}
    owner = OwnerAgent(net.protocol(owner_index), net.store)
    posted = owner.post(spec, terms)
    job = posted.job_id
    providers = []
    for stage, idx in enumerate(provider_indices):
        fault, rounds = faults.get(stage, (None, ()))
        providers.append(
            net.agent(
                "provider",
                idx,
                job,
                stage=stage,
                fault=fault,
                fault_rounds=rounds,
                resources=resources.get(idx),
            )
        )
    validators = [
        net.agent("validator", i, job, resources=resources.get(i)) for i in validator_indices
    ]
    standbys = [net.agent("provider", i, job, resources=resources.get(i)) for i in standby_indices]
    ray.get([a.setup.remote() for a in [*providers, *validators]])
    ray.get([a.start.remote() for a in [*providers, *validators]])
    return JobRun(job, posted.spec_cid, owner, providers, validators, list(standbys))


def drive(net: LocalNet, run: JobRun, *, timeout: float, on_tick=None, interval: float = 1.0):
    """Keep the job moving (keeper duties, standbys into vacated stages) until it ends.

    Returns the final JobState; raises TimeoutError after `timeout` seconds.
    """
    import time

    import ray

    from agents.chain.protocol import JobStatus

    p = run.owner.protocol
    terms = p.job_terms(run.job_id)
    deadline = time.monotonic() + timeout
    while True:
        state = p.job_state(run.job_id)
        run.owner.tick(run.job_id, net.deployment.block)
        if state.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
            return state
        vacant = [
            s for s in range(terms.num_stages) if int(p.stage_provider(run.job_id, s), 16) == 0
        ]
        if vacant and state.status == JobStatus.RUNNING and run.standbys:
            standby = run.standbys.pop(0)
            ray.get(standby.setup.remote())
            ray.get(standby.start.remote())
            run.started_standbys.append(standby)
            run.providers.append(standby)
        if on_tick is not None:
            on_tick(state)
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {run.job_id} still {state.status.name} after {timeout:.0f}s")
        time.sleep(interval)
