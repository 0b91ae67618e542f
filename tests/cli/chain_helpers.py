"""A `tessera up` chain started through the real script, shared by a test module."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cli_helpers import TESSERA


class Background:
    """A long-running `tessera` command whose output lines are collected as they come."""

    def __init__(self, *args: str, env: dict):
        self.args = args
        self.proc = subprocess.Popen(
            [TESSERA, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,  # its own group: signals reach it and its children only
        )
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float) -> str:
        """The first output line containing `needle`; AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            if self.proc.poll() is not None and not any(needle in ln for ln in self.lines):
                time.sleep(0.5)  # let the reader drain the last lines
                if not any(needle in ln for ln in self.lines):
                    raise AssertionError(
                        f"`tessera {' '.join(self.args)}` exited {self.proc.returncode} "
                        f"before printing {needle!r}:\n{self.text[-3000:]}"
                    )
            time.sleep(0.3)
        raise AssertionError(f"no {needle!r} after {timeout:.0f}s:\n{self.text[-3000:]}")

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a user would; kill if it does not stop."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode


@dataclass
class DevChain:
    """What `tessera up` printed, and the environment the other commands run in."""

    url: str
    deployment_file: Path
    env: dict
    up: Background
    background: list[Background] = field(default_factory=list)

    def start(self, *args: str, env: dict | None = None) -> Background:
        merged = {**self.env, **(env or {})}
        bg = Background(*args, env={k: v for k, v in merged.items() if v is not None})
        self.background.append(bg)
        return bg


@contextlib.contextmanager
def dev_chain(home: Path):
    """`tessera up` with HOME=`home`; yields a DevChain; stops everything it started."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TESSERA_DEPLOYMENTS_DIR", "TESSERA_HOME", "TESSERA_RPC", "RAY_ADDRESS")
    }
    env.update(
        HOME=str(home),
        TESSERA_STORE_DIR=str(home / "store"),
        TESSERA_IPFS_API="",
        COLUMNS="200",
    )
    up = Background("up", env=env)
    try:
        line = up.wait_for("anvil on ", timeout=120)
        url = line.split("anvil on ", 1)[1].split(";", 1)[0].strip()
        path = Path(line.split("deployment written to ", 1)[1].strip())
        unset = dict.fromkeys(("TESSERA_DEPLOYMENTS_DIR", "TESSERA_HOME", "RAY_ADDRESS"))
        chain = DevChain(url, path, {**env, **unset, "TESSERA_RPC": url}, up)
        try:
            yield chain
        finally:
            for bg in chain.background:
                bg.interrupt()
    finally:
        if up.proc.poll() is None:
            up.proc.terminate()  # SIGTERM stops anvil too
            try:
                up.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(up.proc.pid, signal.SIGKILL)
