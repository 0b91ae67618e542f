"""Rounds do not stall without a validator or an owner: the providers keep the job moving.

Two provider agents (Ray actors, as `tessera provider run` runs them) and
nobody else: no validator, no owner loop, nobody calling `job finalize`. The
seal, the audit seed and the finalize of every round must come from the
providers' own keeper duties.
"""

from __future__ import annotations

import time

import ray
from integration_helpers import OWNER, PROVIDERS, job_running, terms, tiny_spec

from agents.chain.protocol import JobStatus


def test_providers_alone_seal_seed_and_finalize_every_round(net, dataset):
    spec = tiny_spec(dataset, 2)
    with job_running(
        net,
        spec,
        terms(2, challenge_window=6),
        owner_index=OWNER,
        provider_indices=PROVIDERS[:2],
        validator_indices=[],
    ) as run:
        p = net.protocol(OWNER)
        deadline = time.monotonic() + 300
        while p.job_state(run.job_id).status != JobStatus.COMPLETED:
            assert time.monotonic() < deadline, [s["notes"][-3:] for s in run.snapshots()]
            time.sleep(2)
        for stage in range(2):
            assert p.last_finalized_round(run.job_id, stage) == 1
        finalizers = {
            ev.tx_hash
            for ev in p.client.events("JobMarket", "RoundFinalized", net.deployment.block)
        }
        senders = {p.client.w3.eth.get_transaction(h)["from"] for h in finalizers}
        assert senders <= {net.address(i) for i in PROVIDERS[:2]}
        assert len(finalizers) == 2
        ray.get([a.snapshot.remote() for a in run.providers])
