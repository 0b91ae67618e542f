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

Item = tuple[str, str, list[int]]  # (bundle CID, record CID, leaf indices)


@dataclass(frozen=True)
class ReplayVerdict:
    """Outcome of replaying one leaf."""

    match: bool | None  # None: the replay process itself failed (never grounds for a challenge)
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

    def replay(self, items: list[Item]) -> tuple[dict[tuple[str, int], ReplayVerdict], float]:
        """Replay every item; returns {(record CID, leaf): verdict} and the seconds taken."""
        start = time.monotonic()
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            detail = "replay process died"
            try:
                proc.stdin.write(json.dumps({"items": [list(i) for i in items]}) + "\n")
                proc.stdin.flush()
                ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
                line = proc.stdout.readline() if ready else ""
            except (BrokenPipeError, OSError):
                line = ""
            if not line:
                detail = detail if ready else f"replay timed out after {self.timeout:.0f}s"
                self.close()
                reply: dict = {"rows": []}
            else:
                reply = json.loads(line)
        seconds = time.monotonic() - start
        if "error" in reply:
            raise TesseraError(f"replay worker refused the request: {reply['error']}")
        found = {
            (row["record"], int(row["leaf_index"])): ReplayVerdict(
                bool(row["match"]), tuple(row.get("mismatched", ())), str(row.get("detail", ""))
            )
            for row in reply["rows"]
        }
        for _, record, leaves in items:
            for leaf in leaves:
                found.setdefault((record, leaf), ReplayVerdict(None, (), detail))
        return found, seconds
