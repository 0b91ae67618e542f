"""Running an agent from the CLI: joining Ray, ticking the agent, showing progress.

Progress is a stream of events (a round trained, a commit, a bundle, a
challenge, a vote, a payment, a phase change), printed as lines as they
happen; on a terminal a Rich progress bar of the job's rounds stays below
them. The events come from the agent's stats and the chain, never from
parsing logs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from agents.cli.options import tsr
from agents.errors import TesseraError

RAY_HELP = "start one with `ray start --head` (see README, 'Using it') or set $RAY_ADDRESS"


def _probe(host: str, port: int, timeout: float = 3.0) -> str | None:
    """None if something listens at host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _ray_target(address: str) -> tuple[str, int] | None:
    """(host, port) a Ray address points at, or None for ones Ray resolves itself."""
    if address in ("", "auto", "local"):
        current = Path("/tmp/ray/ray_current_cluster")  # where `ray start` records the head
        if address == "auto" and current.is_file():
            address = current.read_text().strip()
        else:
            return None
    address = address.split("://", 1)[-1].rstrip("/")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise TesseraError(f"RAY_ADDRESS {address!r} is not host:port; {RAY_HELP}")
    return host, int(port)


def join_ray() -> None:
    """Join the operator's Ray cluster ($RAY_ADDRESS or the local head), failing fast."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS", "auto")
    target = _ray_target(address)
    if target is not None:
        why = _probe(*target)
        if why is not None:
            where = f"RAY_ADDRESS={address}" if "RAY_ADDRESS" in os.environ else "the local head"
            raise TesseraError(
                f"cannot reach the Ray cluster at {target[0]}:{target[1]} ({where}): {why}; "
                + RAY_HELP
            )
    try:
        ray.init(
            address=address,
            namespace="tessera",
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except ConnectionError:
        raise TesseraError(f"no Ray cluster to join: {RAY_HELP}") from None


class AgentProgress:
    """Turns an agent's stats and the job's chain state into progress lines."""

    def __init__(self, agent, protocol, job_id: int, console: Console, kind: str):
        self.agent = agent
        self.p = protocol
        self.job_id = job_id
        self.console = console
        self.kind = kind
        self._seen: dict[str, int] = {}
        self._phase: tuple | None = None
        self._shares = 0
        self._balance = protocol.balance()
        self.rounds = protocol.job_terms(job_id).rounds
        self.bar = None
        self._task = None

    def _new(self, key: str, items: list) -> list:
        start = self._seen.get(key, 0)
        self._seen[key] = len(items)
        return items[start:]

    def say(self, text: str) -> None:
        """One progress line."""
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text}", highlight=False)

    def update(self) -> None:
        """Print what happened since the last call."""
        from agents.roles.keeper import describe_job

        s = self.agent.stats
        if self.kind == "provider":
            for r, cid in self._new("commits", list(s.commits)):
                loss = s.losses.get(r)
                extra = f", loss {loss:.4f}" if loss is not None else ""
                self.say(f"round {r}: trained and committed{extra} (record {cid})")
            for r, cid in self._new("bundles", list(s.bundles)):
                self.say(f"round {r}: audit bundle posted ({cid})")
            for d in self._new("responses", list(s.responses)):
                self.say(f"answered challenge {d} with an audit bundle")
        else:
            for d, r, st, leaf, why in self._new("challenges", list(s.challenges)):
                self.say(f"round {r}: challenged stage {st} leaf {leaf} (dispute {d}): {why}")
            for d, guilty in self._new("votes", list(s.votes)):
                self.say(f"voted {'guilty' if guilty else 'not guilty'} on dispute {d}")
            if s.rounds_audited != self._seen.get("audited", 0):
                self._seen["audited"] = s.rounds_audited
                self.say(
                    f"audited {s.rounds_audited} round(s) so far: {s.leaves_replayed} leaves "
                    f"replayed in {s.replay_seconds:.1f} s"
                )
        for note in self._new("notes", list(s.notes)):
            self.say(f"[yellow]note:[/] {note}")
        info = describe_job(self.p, self.job_id)
        phase = (info["status"], info["current_round"], info["phase"])
        if phase != self._phase:
            self._phase = phase
            where = "" if info["current_round"] is None else f"round {info['current_round']}: "
            deadline = (
                f" ({info['deadline_what']} in {info['seconds_left']} s)"
                if info["next_deadline"] is not None
                else ""
            )
            self.say(f"{where}{info['phase_text'] or info['phase']}{deadline}")
        shares = self.p.shares_of(self.job_id)
        balance = self.p.balance()
        if shares != self._shares or balance != self._balance:
            delta = balance - self._balance
            paid = f", {'+' if delta >= 0 else ''}{tsr(delta)}" if delta else ""
            self.say(f"payment: {shares} shares of model {self.job_id}{paid}")
            self._shares, self._balance = shares, balance
        if self.bar is not None:
            self.bar.update(self._task, completed=info["rounds_finalized"])

    def bar_context(self):
        """A Rich progress bar of finalized rounds on a terminal; nothing otherwise."""
        if not self.console.is_terminal:
            return nullcontext()
        self.bar = Progress(
            TextColumn(f"job {self.job_id} rounds finalized"),
            BarColumn(),
            MofNCompleteColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self.bar.add_task("rounds", total=self.rounds)
        return self.bar


def run_until_done(
    agent, protocol, job_id: int, console: Console, kind: str, *, serve_after: bool = False
) -> None:
    """Tick the agent until the job ends, showing progress (Ctrl-C stops it).

    A provider then keeps serving inference, re-creating its stage host from
    the last finalized checkpoint if the host is lost.
    """
    from agents.chain.protocol import JobStatus
    from agents.roles.loop import start_loops

    stop = threading.Event()
    if hasattr(agent, "stopping"):  # a transport agent's serving waits end with the run
        agent.stopping = stop
    threads = start_loops(agent, stop)
    progress = AgentProgress(agent, protocol, job_id, console, kind)
    try:
        with progress.bar_context():
            while True:
                progress.update()
                status = protocol.job_state(job_id).status
                if status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
                    break
                time.sleep(2)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        progress.update()
        if serve_after and protocol.job_state(job_id).status == JobStatus.COMPLETED:
            progress.say(f"job {job_id} completed; serving inference for it (Ctrl-C stops)")
            if getattr(agent, "transport", None) is not None:
                # Over the transport the agent's own tick serves paid requests.
                stop.clear()
                threads = start_loops(agent, stop)
                while True:
                    time.sleep(3)
            while True:
                said = agent.ensure_serving_host()
                if said:
                    progress.say(said)
                time.sleep(3)
    except KeyboardInterrupt:
        console.print(f"{kind} stopped")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        close = getattr(agent, "close", None)
        if close is not None:
            close()
