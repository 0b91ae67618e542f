"""Run step replays in a separate plain process, as the design requires.

The validator never replays inside its own long-lived process: a fresh
interpreter with the spec's determinism settings gives bitwise results and
isolates the validator from whatever the bundle makes torch do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

from agents.errors import TesseraError


@dataclass(frozen=True)
class ReplayVerdict:
    """Outcome of replaying one leaf."""

    match: bool | None  # None: the replay itself crashed (never grounds for a challenge)
    mismatched: tuple[str, ...]
    detail: str


def replay_leaves(
    store_spec: str, bundle_cid: str, record_cid: str, leaves: list[int], timeout: float = 600
) -> tuple[dict[int, ReplayVerdict], float]:
    """Replay `leaves` of `record_cid` from `bundle_cid` in one fresh Python process.

    Returns the verdict per leaf and the seconds the replay took. A bundle or
    record the replay rejects (exit status 2: missing, corrupt, not matching
    the record) is a mismatch of field "bundle": publishing a replayable bundle
    is the provider's duty.
    """
    cmd = [sys.executable, "-m", "agents.training.replay", "--store", store_spec, bundle_cid]
    cmd += [record_cid, *map(str, leaves)]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise TesseraError(f"replay of {record_cid} timed out after {timeout:.0f}s") from None
    seconds = time.monotonic() - start
    found: dict[int, ReplayVerdict] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            out = json.loads(line)
            found[int(out["leaf_index"])] = ReplayVerdict(
                bool(out["match"]), tuple(out.get("mismatched", ())), str(out.get("detail", ""))
            )
    err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    for leaf in leaves:
        if leaf in found:
            continue
        if proc.returncode == 2:
            found[leaf] = ReplayVerdict(False, ("bundle",), err)
        else:
            found[leaf] = ReplayVerdict(None, (), f"replay did not run: {err}")
    return found, seconds
