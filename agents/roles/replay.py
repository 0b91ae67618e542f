"""Step replays in a separate plain process, as the design requires.

The validator never replays inside its own long-lived process: replays run in
a child interpreter started with the spec's CPU kernel set, which gives bitwise
results and isolates the validator from whatever a bundle makes torch do. The
child stays up between audits (`--serve`), so torch starts once per validator
rather than once per audit; it is restarted if it dies or hangs.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from agents.errors import TesseraError

# (bundle CID, record CID, leaf indices, ChainBinding.to_json() of the commitment)
Item = tuple[str, str, list[int], dict]


@dataclass(frozen=True)
class ReplayVerdict:
    """Outcome of replaying one leaf."""

    # None: abstain — the replay could not reproduce the platform, or the process
    # failed; never grounds for a challenge or a guilty vote.
    match: bool | None
    mismatched: tuple[str, ...]
    detail: str


class ReplayWorker:
    """A child `python -m agents.training.replay --serve` process, reused across audits.

    A bundle or record the replay cannot use (missing, corrupt, not matching
    the record) comes back as a mismatch of field "bundle": publishing a
    replayable bundle is the provider's duty.
    """

    def __init__(self, store_spec: str, cpu_capability: str = "", timeout: float = 300.0):
        self.store_spec = store_spec
        self.cpu_capability = cpu_capability
        self.timeout = timeout
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ)
        if self.cpu_capability:
            env["ATEN_CPU_CAPABILITY"] = self.cpu_capability.lower()
        cmd = [sys.executable, "-m", "agents.training.replay", "--store", self.store_spec]
        return subprocess.Popen(
            [*cmd, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )

    def warm_up(self) -> None:
        """Start the child now, so the first audit does not pay torch's start-up."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()

    def close(self) -> None:
        """Stop the child process."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def _ask(self, request: dict) -> dict | None:
        """One request/reply with the child (restarted if it died); None if it failed."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            try:
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
                line = proc.stdout.readline() if ready else ""
            except (BrokenPipeError, OSError):
                line = ""
            if not line:
                self.close()
                return None
            return json.loads(line)

    def state_hashes(self, checkpoints: list[tuple[str, int]]) -> list[str | None]:
        """State hash of each (checkpoint CID, stage): the zero hash where the checkpoint is not
        a stage state, None for all if the child failed (no finding can come from that)."""
        reply = self._ask({"state_hashes": [list(c) for c in checkpoints]}) or {}
        return reply.get("hashes") or [None] * len(checkpoints)

    def initial_hashes(self, spec_cid: str, stages: list[int]) -> list[str | None]:
        """The state hash each stage of the spec starts round 0 from (None: not computable)."""
        reply = self._ask({"initial": [[spec_cid, s] for s in stages]}) or {}
        return reply.get("hashes") or [None] * len(stages)

    def replay(self, items: list[Item]) -> tuple[dict[tuple[str, int], ReplayVerdict], float]:
        """Replay every item; returns {(record CID, leaf): verdict} and the seconds taken.

        The verdicts cover every leaf of every replayed step, not only those asked for.
        """
        start = time.monotonic()
        reply = self._ask({"items": [list(i) for i in items]})
        detail = "replay process died or timed out"
        if reply is None:
            reply = {"rows": []}
        seconds = time.monotonic() - start
        if "error" in reply:
            raise TesseraError(f"replay worker refused the request: {reply['error']}")
        found = {
            (row["record"], int(row["leaf_index"])): ReplayVerdict(
                None if row["match"] is None else bool(row["match"]),
                tuple(row.get("mismatched", ())),
                str(row.get("detail", "")),
            )
            for row in reply["rows"]
        }
        for _, record, leaves, _ in items:
            for leaf in leaves:
                found.setdefault((record, leaf), ReplayVerdict(None, (), detail))
        return found, seconds
