"""Integration fixtures: a real anvil (1 s blocks), the real store, real Ray, tiny models."""

from __future__ import annotations

import pytest
from integration_helpers import EVERYONE

from agents.roles.localnet import local_net


@pytest.fixture()
def net(tmp_path, ray_cluster):
    """A fresh local network per test (chain state never leaks between scenarios)."""
    with local_net(tmp_path) as n:
        n.fund(EVERYONE)
        yield n


@pytest.fixture()
def dataset(net, tmp_path):
    """A small text corpus made here (no download), as a DatasetManifest CID."""
    from agents.lineage import build_dataset

    corpus = tmp_path / "corpus.txt"
    lines = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(2000)]
    corpus.write_text("".join(lines))
    cid, _ = build_dataset(
        net.store, corpus, name="tiny", source="generated", license="CC0-1.0", shard_size=16_384
    )
    return cid
