"""A real IPFS daemon for tests: js-ipfs (`ipfs@0.66.1` from npm) on loopback.

TOOLCHAIN.md's recipe: a fresh repo in a temp IPFS_PATH (`init --profile=test
--emptyRepo`), API / Gateway / RPC / Swarm on free 127.0.0.1 ports, no
bootstrap peers, MDNS and webRTCStar off, `daemon --enable-preload=false`.
HOME is left alone. If TESSERA_TEST_IPFS_API is set, that node (a real Kubo,
say) is used instead and nothing is started.

The daemon must start: a failure is a test *error* with the daemon's log, not
a skip, so CI cannot go green without the interoperability checks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
JSIPFS = REPO_ROOT / "node_modules" / ".bin" / "jsipfs"
START_TIMEOUT_S = 90


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class IpfsDaemon:
    """A running daemon: its RPC address as a multiaddr and as a URL."""

    multiaddr: str
    url: str
    process: subprocess.Popen | None
    log: Path | None


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()[-2000:]}")


def start_daemon(workdir: Path) -> IpfsDaemon:
    """Initialise a repo in `workdir` and start js-ipfs; wait until its API answers."""
    if not JSIPFS.exists():
        raise RuntimeError(f"{JSIPFS} is missing: run `npm ci` (see TOOLCHAIN.md)")
    env = {**os.environ, "IPFS_PATH": str(workdir / "repo")}
    env.pop("IPFS_API", None)
    _run([str(JSIPFS), "init", "--profile=test", "--emptyRepo"], env)
    api, gateway, rpc, swarm = (free_port() for _ in range(4))
    settings = {
        "Addresses.API": f"/ip4/127.0.0.1/tcp/{api}",
        "Addresses.Gateway": f"/ip4/127.0.0.1/tcp/{gateway}",
        "Addresses.RPC": f"/ip4/127.0.0.1/tcp/{rpc}",
        "Addresses.Swarm": [f"/ip4/127.0.0.1/tcp/{swarm}"],
        "Addresses.Delegates": [],
        "Bootstrap": [],
        "Discovery.MDNS.Enabled": False,
        "Discovery.webRTCStar.Enabled": False,
    }
    config_path = workdir / "repo" / "config"
    config = json.loads(config_path.read_text())
    for dotted, value in settings.items():
        node = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    config_path.write_text(json.dumps(config, indent=2))
    log = workdir / "daemon.log"
    with open(log, "wb") as log_fh:
        process = subprocess.Popen(
            [str(JSIPFS), "daemon", "--enable-preload=false"],
            env=env,
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so we stop all of it
        )
    url = f"http://127.0.0.1:{api}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"jsipfs daemon exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            if httpx.post(f"{url}/api/v0/version", timeout=2).status_code == 200:
                return IpfsDaemon(f"/ip4/127.0.0.1/tcp/{api}", url, process, log)
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    stop_daemon(IpfsDaemon("", url, process, log))
    raise RuntimeError(
        f"jsipfs daemon did not answer in {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}"
    )


def stop_daemon(daemon: IpfsDaemon) -> None:
    """Stop the daemon's process group (only the processes this fixture started)."""
    process = daemon.process
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def ipfs_daemon():
    """A real IPFS node for the session (js-ipfs, or TESSERA_TEST_IPFS_API)."""
    external = os.environ.get("TESSERA_TEST_IPFS_API")
    if external:
        from agents.storage.kubo import api_url

        yield IpfsDaemon(external, api_url(external), None, None)
        return
    workdir = Path(tempfile.mkdtemp(prefix="tessera-ipfs-"))
    try:
        daemon = start_daemon(workdir)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"the js-ipfs test daemon could not start: {exc}", pytrace=False)
    try:
        yield daemon
    finally:
        stop_daemon(daemon)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def kubo_store(ipfs_daemon):
    """A KuboStore on the session daemon (short timeouts so faults show fast)."""
    from agents.storage import KuboStore

    store = KuboStore(ipfs_daemon.multiaddr, timeout=30, retries=2, fetch_timeout=3)
    yield store
    store.close()
