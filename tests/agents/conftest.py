"""Fixtures shared by the agent tests: the real IPFS daemon (see ipfs_daemon.py)."""

from __future__ import annotations

import pytest
from ipfs_daemon import ipfs_daemon, kubo_store

__all__ = ["ipfs_daemon", "kubo_store"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ipfs: needs the real IPFS daemon (js-ipfs or Kubo)")
