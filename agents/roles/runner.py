"""Agents as Ray actors: a role built inside its own process, ticking in a thread.

The actor has no policy of its own (Ray Train's lesson): it builds the role
from plain arguments, runs `tick()` until told to stop, and answers
`snapshot()` with the role's stats for progress displays. Placing it with a
custom resource (`{"agent-3": 0.01}`) pins each agent to its operator's node.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Any


class AgentRunner:
    """Body of the `AgentActor` Ray actor."""

    def __init__(
        self,
        kind: str,
        *,
        rpc: str,
        private_key: str,
        store: str,
        job_id: int,
        deployment: dict,
        stage: int | None = None,
        fault: str | None = None,
        fault_rounds: tuple[int, ...] = (),
        resources: dict[str, float] | None = None,
        confirmations: int = 0,
        log_level: int = logging.WARNING,
    ):
        logging.basicConfig(level=log_level)
        from agents.chain.deployments import Deployment
        from agents.roles.context import connect

        dep = Deployment.from_dict(deployment)
        conn = connect(
            rpc=rpc,
            private_key=private_key,
            store=store,
            deployment=dep,
            confirmations=confirmations,
        )
        self.kind = kind
        self.address = conn.client.address
        if kind == "provider":
            from agents.roles.provider import Misbehaviour, ProviderAgent
            from agents.training.worker import Fault

            parsed: Any = None
            if fault:
                names = {f.value: f for f in [*Fault, *Misbehaviour]}
                parsed = names.get(fault) or Fault[fault.upper().replace("-", "_")]
            self.agent: Any = ProviderAgent(
                conn.protocol,
                conn.store,
                store_spec=store,
                job_id=job_id,
                stage=stage,
                from_block=dep.block,
                fault=parsed,
                fault_rounds=frozenset(fault_rounds),
                resources=resources,
            )
        elif kind == "validator":
            from agents.roles.validator import ValidatorAgent

            self.agent = ValidatorAgent(
                conn.protocol, conn.store, store, job_id, from_block=dep.block
            )
        else:
            raise ValueError(f"unknown agent kind {kind!r}")
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def setup(self) -> int | None:
        """Join (providers) or register (validators); returns the stage for providers."""
        if self.kind == "provider":
            return self.agent.join()
        self.agent.register()
        return None

    def start(self, interval: float = 1.0) -> str:
        """Start ticking in a background thread; returns the agent's address."""
        from agents.roles.loop import start_loops

        if not any(t.is_alive() for t in self._threads):
            self._stop.clear()
            self._threads = start_loops(self.agent, self._stop, interval)
        return self.address

    def stop(self) -> None:
        """Stop ticking (the stage host, if any, keeps serving inference)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        close = getattr(self.agent, "close", None)
        if close is not None:
            close()

    def snapshot(self) -> dict:
        """The role's stats as plain data."""
        out = dataclasses.asdict(self.agent.stats)
        import ray

        out["kind"] = self.kind
        out["node"] = ray.get_runtime_context().get_node_id()
        out["address"] = self.address
        out["stage"] = getattr(self.agent, "stage", None)
        out["vacated"] = getattr(self.agent, "vacated", False)
        if self.kind == "validator":
            out["audit_cost"] = self.agent.stats.audit_cost
        return out


def agent_actor(resources: dict[str, float] | None = None):
    """The Ray actor class for AgentRunner, with optional placement resources."""
    import ray

    opts: dict[str, Any] = {"num_cpus": 0, "max_concurrency": 4}
    if resources:
        opts["resources"] = resources
    return ray.remote(**opts)(AgentRunner)
