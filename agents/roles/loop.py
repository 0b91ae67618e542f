"""Running a role: each of its loops ticks in its own thread until told to stop."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)


def run_forever(agent, stop, interval: float = 0.5, tick=None) -> None:
    """Call `tick` (default `agent.tick`) until `stop` is set, never dying on an error."""
    tick = tick or agent.tick
    while not stop.is_set():
        try:
            tick()
        except Exception as exc:  # keep the loop alive; the chain is the source of truth
            log.warning("%s: %s", type(agent).__name__, exc)
            agent_notes = getattr(getattr(agent, "stats", None), "notes", None)
            if agent_notes is not None:
                agent_notes.append(f"{type(exc).__name__}: {exc}")
        time.sleep(interval)


def start_loops(agent, stop: threading.Event, interval: float = 0.5) -> list[threading.Thread]:
    """Start one daemon thread per loop of `agent` (`agent.loops()`, else `[agent.tick]`)."""
    loops = getattr(agent, "loops", lambda: [agent.tick])()
    threads = [
        threading.Thread(target=run_forever, args=(agent, stop, interval, loop), daemon=True)
        for loop in loops
    ]
    for t in threads:
        t.start()
    return threads
