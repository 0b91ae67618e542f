"""The same agents on a multi-node Ray cluster, each pinned to its node by a custom resource."""

from __future__ import annotations

import pytest
import ray
from integration_helpers import (
    EVERYONE,
    OWNER,
    PROVIDERS,
    VALIDATORS,
    job_running,
    terms,
    tiny_spec,
)
from ray.cluster_utils import Cluster

from agents.chain.protocol import JobStatus
from agents.roles.localnet import drive, local_net
from agents.roles.stage_host import host_actor_name


@pytest.fixture()
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"site-head": 1}},
    )
    c.add_node(num_cpus=1, resources={"site-a": 1})
    c.add_node(num_cpus=1, resources={"site-b": 1})
    ray.init(address=c.address, namespace="tessera", log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def test_agents_run_on_their_own_nodes(tmp_path, cluster):
    from agents.lineage import build_dataset

    with local_net(tmp_path) as net:
        net.fund(EVERYONE)
        corpus = tmp_path / "c.txt"
        corpus.write_text("hello tessera\n" * 4000)
        dataset, _ = build_dataset(net.store, corpus, name="c", source="gen", license="CC0-1.0")
        placement = {
            PROVIDERS[0]: {"site-a": 0.01},
            PROVIDERS[1]: {"site-b": 0.01},
            VALIDATORS[0]: {"site-head": 0.01},
            VALIDATORS[1]: {"site-head": 0.01},
        }
        with job_running(
            net,
            tiny_spec(dataset, 2),
            terms(1, challenge_window=15),
            owner_index=OWNER,
            provider_indices=PROVIDERS[:2],
            validator_indices=VALIDATORS[:2],
            resources=placement,
        ) as run:
            assert drive(net, run, timeout=300).status == JobStatus.COMPLETED
            nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
            snaps = run.snapshots()
            by_addr = {s["address"]: s for s in snaps}
            p = run.owner.protocol
            for stage, site in ((0, "site-a"), (1, "site-b")):
                addr = net.address(PROVIDERS[stage])
                assert site in nodes[by_addr[addr]["node"]]
                host = ray.get_actor(host_actor_name(run.job_id, stage, addr), "tessera")
                host_node = ray.get(host.node_id.remote())
                assert site in nodes[host_node], "the stage host runs beside its provider"
                assert p.commitment(run.job_id, 0, stage).exists
