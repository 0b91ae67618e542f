"""Shared pytest fixtures.

The brownie pytest plugin launches the `development` network (anvil) once per
session when the first test is collected. We point it at a free loopback port
first, so the suite never attaches to a chain someone else left on 8545.
Agent tests that need Ray share one light local cluster per session.
"""

from __future__ import annotations

import os
import socket

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_configure(config: pytest.Config) -> None:
    from brownie._config import CONFIG

    port = int(os.environ.get("TESSERA_TEST_CHAIN_PORT") or _free_port())
    for network_id in ("development", "anvil"):
        net = CONFIG.networks.get(network_id)
        if net is not None and "cmd_settings" in net:
            net["cmd_settings"]["port"] = port
            net["cmd_settings"]["accounts"] = 20
            net["cmd_settings"]["gas_limit"] = 30_000_000


@pytest.fixture()
def ray_cluster():
    """A light local Ray cluster, started on first use and shared by later tests.

    Function-scoped on purpose: a test that needs its own multi-node cluster
    shuts this one down, and the next test that asks for Ray gets it back.
    """
    ray = pytest.importorskip("ray")
    from agents.roles.localnet import init_local_ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    init_local_ray()
    return ray


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the anvil brownie launched now, so pytest's summary is the last line printed."""
    import contextlib
    import io

    from brownie.network import rpc

    if rpc.is_active():
        with contextlib.redirect_stdout(io.StringIO()):
            rpc.kill(exc=False)
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
