"""Agents as Ray actors: a role built inside its own process, ticking in a thread.

The actor has no policy of its own (Ray Train's lesson): it builds the role
from plain arguments, runs `tick()` until told to stop, and answers
`snapshot()` with the role's stats for progress displays. Placing it with a
custom resource (`{"agent-3": 0.01}`) pins each agent to its operator's node.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
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
        other_dataset: str | None = None,
        platform: str | None = None,
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
            from agents.roles.provider import ProviderAgent

            kwargs: dict[str, Any] = dict(
                store_spec=store,
                job_id=job_id,
                stage=stage,
                from_block=dep.block,
                resources=resources,
            )
            if fault:
                # Only the demo and the tests ask for a cheat: the faults live apart.
                from agents.faults import Fault, FaultyProviderAgent

                self.agent: Any = FaultyProviderAgent(
                    conn.protocol,
                    conn.store,
                    fault=Fault.parse(fault),
                    fault_rounds=frozenset(fault_rounds),
                    other_dataset=other_dataset,
                    **kwargs,
                )
            else:
                self.agent = ProviderAgent(conn.protocol, conn.store, **kwargs)
        elif kind == "validator":
            from agents.roles.validator import ValidatorAgent

            worker = None
            if platform:
                # A validator whose replays run on another platform (tests only).
                from agents.faults import ForeignReplayWorker

                worker = ForeignReplayWorker(store, platform)
            self.agent = ValidatorAgent(
                conn.protocol, conn.store, store, job_id, from_block=dep.block, replay_worker=worker
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


# ---------------------------------------------------------------------------------------
# One provider, one OS process, no Ray: the across-operators mode.
# ---------------------------------------------------------------------------------------


def provider_process_main(argv: list[str] | None = None) -> int:
    """`python -m agents.roles.runner provider ...`: one provider in its own process.

    The staked key comes from $TESSERA_PRIVATE_KEY (never the command line);
    the transport key from --key-file (made on first run, mode 0600). The
    process joins its stage, publishes its endpoint, and ticks until SIGTERM
    or the --stop-file appears, writing its stats to --status-file.
    """
    import argparse
    import contextlib
    import json
    import os
    import signal
    import time
    from pathlib import Path

    from agents.chain.deployments import Deployment
    from agents.errors import TesseraError
    from agents.roles.context import connect
    from agents.roles.provider import ProviderAgent
    from agents.roles.stage_loop import TransportOptions

    ap = argparse.ArgumentParser(prog="agents.roles.runner provider")
    ap.add_argument("--rpc", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--deployment", required=True, help="deployment registry JSON file")
    ap.add_argument("--job", type=int, required=True)
    ap.add_argument("--stage", type=int, default=None)
    ap.add_argument("--key-file", required=True, help="transport key pair (made if missing)")
    ap.add_argument("--bind", default="tcp://127.0.0.1:0")
    ap.add_argument("--advertise", default=None, help="address published on-chain")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a peer is lost")
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--fault", default=None)
    ap.add_argument("--fault-rounds", default="")
    ap.add_argument("--status-file", default=None)
    ap.add_argument("--stop-file", default=None)
    ap.add_argument("--log-file", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(
        filename=args.log_file,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    for noisy in ("web3", "urllib3", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import torch

    torch.set_num_threads(1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        key = os.environ.get("TESSERA_PRIVATE_KEY")
        if not key:
            raise TesseraError("no provider key: set $TESSERA_PRIVATE_KEY")
        dep = Deployment.from_dict(json.loads(Path(args.deployment).read_text()))
        conn = connect(rpc=args.rpc, private_key=key, store=args.store, deployment=dep)
        rounds = frozenset(int(r) for r in args.fault_rounds.split(",") if r)
        kwargs = dict(
            store_spec=args.store,
            job_id=args.job,
            stage=args.stage,
            from_block=dep.block,
            transport=TransportOptions(
                key_path=Path(args.key_file),
                bind=args.bind,
                advertise=args.advertise,
                timeout=args.timeout,
            ),
        )
        if args.fault:
            # Only the demo and the tests ask for a cheat: the faults live apart.
            from agents.faults import Fault, FaultyProviderAgent

            agent = FaultyProviderAgent(
                conn.protocol,
                conn.store,
                fault=Fault.parse(args.fault),
                fault_rounds=rounds,
                **kwargs,
            )
        else:
            agent = ProviderAgent(conn.protocol, conn.store, **kwargs)
        agent.stopping = stop
        stage = agent.join()
        link = agent.link()
        logging.getLogger(__name__).info(
            "provider %s serves job %s stage %s at %s", agent.me, args.job, stage, link.endpoint
        )
    except TesseraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def write_status() -> None:
        if not args.status_file:
            return
        out = dataclasses.asdict(agent.stats)
        out.update(
            kind="provider",
            address=agent.me,
            stage=agent.stage,
            vacated=agent.vacated,
            pid=os.getpid(),
            endpoint=link.endpoint,
            transport={
                **link.stats,
                "round": link.guard.round if link.guard else None,
                "attempt": link.guard.attempt if link.guard else None,
            },
            refusals=list(link.ep.refusals[-20:]),
        )
        tmp = Path(args.status_file + ".tmp")
        tmp.write_text(json.dumps(out, default=str))
        tmp.replace(args.status_file)

    def status_loop() -> None:
        # Its own thread: a round blocks the tick for its whole length, and the
        # demo's table (and the tests) want to see it while it runs.
        while not stop.wait(0.3):
            # RuntimeError: stats changed under the dump; the next one will do.
            with contextlib.suppress(RuntimeError, ValueError, OSError):
                write_status()

    threading.Thread(target=status_loop, name="status", daemon=True).start()
    log = logging.getLogger(__name__)
    while not stop.is_set():
        if args.stop_file and Path(args.stop_file).exists():
            break
        t0 = time.monotonic()
        try:
            agent.tick()
        except Exception as exc:  # the chain is the source of truth: keep ticking
            log.warning("provider tick: %s", exc)
            agent.stats.notes.append(f"{type(exc).__name__}: {exc}")
        # A tick that served the transport already waited on its socket.
        time.sleep(max(0.0, args.interval - (time.monotonic() - t0)))
    write_status()
    agent.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "provider":
        sys.exit(provider_process_main(sys.argv[2:]))
    print("usage: python -m agents.roles.runner provider --help", file=sys.stderr)
    sys.exit(2)
