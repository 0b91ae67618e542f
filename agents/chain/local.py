"""A local anvil chain, started and stopped by Tessera itself.

Never attaches to a chain someone else left running: it always picks a free
loopback port unless one is given, and refuses a port already in use.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from agents.chain.artifacts import PROJECT_ROOT
from agents.chain.errors import ChainError


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_binary() -> str:
    """Path of the anvil binary (from PATH or the npm package)."""
    found = shutil.which("anvil")
    if found:
        return found
    for arch in ("amd64", "arm64"):
        candidate = PROJECT_ROOT / f"node_modules/@foundry-rs/anvil-linux-{arch}/bin/anvil"
        if candidate.exists():
            return str(candidate)
    raise ChainError("anvil not found: run `make setup` (npm installs @foundry-rs/anvil)")


@dataclass
class LocalChain:
    """An anvil process on 127.0.0.1."""

    port: int = 0
    chain_id: int = 31337
    block_time: float | None = 1.0
    accounts: int = 20
    log_path: Path | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The RPC URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> LocalChain:
        """Start anvil and wait until it answers."""
        if not self.port:
            self.port = free_port()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", self.port)) == 0:
                raise ChainError(
                    f"port {self.port} is already in use; refusing to reuse that chain"
                )
        cmd = [
            anvil_binary(),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(self.accounts),
            "--gas-limit",
            "30000000",
        ]
        if self.block_time:
            cmd += ["--block-time", str(self.block_time)]
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ChainError(f"anvil exited with code {self._proc.returncode}")
            try:
                r = httpx.post(
                    self.url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                    timeout=1.0,
                )
                if r.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise ChainError(f"anvil did not answer on {self.url} within {timeout:.0f}s")

    def stop(self) -> None:
        """Stop anvil (and only the anvil this object started)."""
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None

    def __enter__(self) -> LocalChain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
