"""A whole local Tessera network in one call: anvil, contracts, store, funded accounts.

`tessera demo` and the integration tests both stand on this, so what the demo
shows is exactly what the tests check. Agents are Ray actors made by `agent()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
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
    # >= a whole dispute: 15 + 2 * (25 + 15) s (checked at deploy).
    "unbondingPeriod": 120,
    "validatorExitDelay": 120,
    "minChallengeWindow": 5,
    # Two blocks: a keeper that waits for one confirmation still pokes in the anchor block.
    "randomnessDelay": 2,
    "responseWindow": 15,
    "commitVoteWindow": 25,
    "revealWindow": 15,
    "challengeBond": 5 * WEI,
    "minValidatorStake": 20 * WEI,
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
        """Give TSR from account 0 (the faucet on a dev chain; its initial supply elsewhere,
        where the faucet is disabled) and optionally send ETH for gas."""
        deployer = self.protocol(0).client
        faucet = bool(deployer.call("TesseraToken", "faucetEnabled"))
        for i in indices:
            if eth:
                deployer.transfer_eth(self.address(i), eth)
            if faucet:
                deployer.send("TesseraToken", "mint", self.address(i), amount)
            else:
                deployer.send("TesseraToken", "transfer", self.address(i), amount)

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


class ProviderProcess:
    """A provider in its own OS process (no Ray), talking to its peers over the transport.

    What the demo and the tests use for the across-operators mode: the same
    `python -m agents.roles.runner provider` an operator runs on its machine.
    The staked key goes to the child in its environment, never on its command line.
    """

    def __init__(
        self,
        net: LocalNet,
        index: int,
        job_id: int,
        *,
        stage: int | None = None,
        fault: str | None = None,
        fault_rounds: tuple[int, ...] = (),
        timeout: float = 20.0,
        workdir: Path | None = None,
    ) -> None:
        self.net = net
        self.index = index
        self.job_id = job_id
        self.stage = stage
        self.address = net.address(index)
        self.dir = (workdir or net.store_dir.parent / "providers") / f"p{index}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.status_file = self.dir / "status.json"
        self.log_file = self.dir / "provider.log"
        self.stop_file = self.dir / "stop"
        dep_file = self.dir / "deployment.json"
        dep_file.write_text(net.deployment.to_json())
        self.argv = [
            sys.executable,
            "-m",
            "agents.roles.runner",
            "provider",
            "--rpc",
            net.url,
            "--store",
            str(net.store_dir),
            "--deployment",
            str(dep_file),
            "--job",
            str(job_id),
            "--key-file",
            str(self.dir / "transport-key.json"),
            "--timeout",
            str(timeout),
            "--status-file",
            str(self.status_file),
            "--stop-file",
            str(self.stop_file),
            "--log-file",
            str(self.log_file),
        ]
        if stage is not None:
            self.argv += ["--stage", str(stage)]
        if fault:
            self.argv += ["--fault", fault, "--fault-rounds", ",".join(map(str, fault_rounds))]
        self.proc: subprocess.Popen | None = None
        self.started = False

    def start(self) -> ProviderProcess:
        """Start (or restart) the process; returns self."""
        self.stop_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "TESSERA_PRIVATE_KEY": "0x" + bytes(self.net.keys[self.index].key).hex(),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("RAY_ADDRESS", None)  # its own process, no cluster shared with anyone
        self.proc = subprocess.Popen(
            self.argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "stderr.log", "ab"),  # noqa: SIM115 (the child owns it)
        )
        self.started = True
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would (nothing flushed, nothing said)."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the process to stop, then make sure it did."""
        if not self.alive():
            return
        self.stop_file.touch()
        self.proc.terminate()  # the process stops between two socket waits
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def snapshot(self) -> dict:
        """The process's last written stats (empty defaults before its first tick)."""
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {
                "kind": "provider",
                "address": self.address,
                "stage": self.stage,
                "commits": [],
                "bundles": [],
                "notes": [],
            }

    def log_text(self) -> str:
        text = self.log_file.read_text() if self.log_file.exists() else ""
        err = self.dir / "stderr.log"
        return text + (err.read_text() if err.exists() else "")


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
        procs = [a for a in self.actors if isinstance(a, ProviderProcess)]
        actors = [a for a in self.actors if not isinstance(a, ProviderProcess)]
        out = [p.snapshot() for p in procs if p.started]
        if actors:
            import ray

            out += ray.get([a.snapshot.remote() for a in actors])
        return out

    def stop(self) -> None:
        actors = [a for a in self.actors if not isinstance(a, ProviderProcess)]
        for p in self.actors:
            if isinstance(p, ProviderProcess):
                p.stop()
        if actors:
            import ray

            with contextlib.suppress(Exception):  # best effort: Ray tears them down anyway
                ray.get([a.stop.remote() for a in actors], timeout=60)


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
    transport: bool = False,
    peer_timeout: float = 20.0,
    validator_platforms: dict[int, str] | None = None,
) -> JobRun:
    """Post the job as `owner_index`, then start one provider per stage and the validators.

    `faults` maps a stage to (fault name, rounds); `resources` maps a participant index
    to the Ray resources its agent (and stage host) must be placed with. With
    `transport`, every provider (standbys too) is its own OS process without Ray
    (`ProviderProcess`) and the validators stay Ray actors of this process.
    `validator_platforms` puts a validator's replays on another platform
    (`agents.faults.PLATFORMS`, tests only).
    """
    import ray

    from agents.roles.owner import OwnerAgent

    faults = faults or {}
    resources = resources or {}
    owner = OwnerAgent(net.protocol(owner_index), net.store)
    posted = owner.post(spec, terms)
    job = posted.job_id
    providers: list[Any] = []
    for stage, idx in enumerate(provider_indices):
        fault, rounds = faults.get(stage, (None, ()))
        if transport:
            providers.append(
                ProviderProcess(
                    net,
                    idx,
                    job,
                    stage=stage,
                    fault=fault,
                    fault_rounds=rounds,
                    timeout=peer_timeout,
                )
            )
            continue
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
    platforms = validator_platforms or {}
    validators = [
        net.agent("validator", i, job, resources=resources.get(i), platform=platforms.get(i))
        for i in validator_indices
    ]
    if transport:
        standbys: list[Any] = [
            ProviderProcess(net, i, job, timeout=peer_timeout) for i in standby_indices
        ]
        for p in providers:
            p.start()
    else:
        standbys = [
            net.agent("provider", i, job, resources=resources.get(i)) for i in standby_indices
        ]
    actors = [a for a in [*providers, *validators] if not isinstance(a, ProviderProcess)]
    if actors:
        ray.get([a.setup.remote() for a in actors])
        ray.get([a.start.remote() for a in actors])
    return JobRun(job, posted.spec_cid, owner, providers, validators, list(standbys))


def _wait_for_claims(p, job_id: int, deadline: float) -> None:
    """Wait until every account credited shares of the job (StagePaid providers, the owner)
    has claimed them: the agents pull their own credits on their next tick."""
    import time

    paid = {
        e.args["provider"]
        for e in p.client.events("JobMarket", "StagePaid", 0)
        if int(e.args["jobId"]) == job_id
    }
    paid.add(p.job_state(job_id).owner)
    while any(p.shares_owed(job_id, who) for who in paid):
        p.claim_shares(job_id)  # `p` is the owner's: its own share is pulled here
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id}: shares still unclaimed by {sorted(paid)}")
        time.sleep(0.5)


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
            _wait_for_claims(p, run.job_id, deadline)
            return state
        vacant = [
            s for s in range(terms.num_stages) if int(p.stage_provider(run.job_id, s), 16) == 0
        ]
        if vacant and state.status == JobStatus.RUNNING and run.standbys:
            standby = run.standbys.pop(0)
            if isinstance(standby, ProviderProcess):
                standby.start()
            else:
                ray.get(standby.setup.remote())
                ray.get(standby.start.remote())
            run.started_standbys.append(standby)
            run.providers.append(standby)
        if on_tick is not None:
            on_tick(state)
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {run.job_id} still {state.status.name} after {timeout:.0f}s")
        time.sleep(interval)
