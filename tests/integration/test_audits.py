"""Attacks a provider that reads the code would try, each on a real chain, store, Ray
cluster and torch: every one is challenged, the cheater slashed, and its stage continues
with a replacement that resumes from the last finalized checkpoint. Scenarios share jobs
(four or three cheaters a job) to keep the suite short."""

from __future__ import annotations

from integration_helpers import (
    OWNER,
    PROVIDERS,
    STANDBYS,
    VALIDATORS,
    job_running,
    terms,
    tiny_spec,
)

from agents.chain.protocol import JobStatus
from agents.lineage import load_document
from agents.lineage.documents import RoundRecord
from agents.roles.localnet import drive


def _events(p, contract, name, job):
    return [e for e in p.client.events(contract, name, 0) if int(e.args.get("jobId", job)) == job]


def _check_no_honest_challenged(net, run, cheats: dict[int, tuple[str, tuple[int, ...]]]):
    """Every challenge opened is against a cheater in a round it cheated in: an honest
    provider (everyone in round 0 here, the replacements after) is never challenged."""
    p = run.owner.protocol
    wrong = []
    for e in _events(p, "AuditCourt", "ChallengeOpened", run.job_id):
        d = p.dispute(int(e.args["disputeId"]))
        _kind, rounds = cheats.get(d.stage, ("honest", ()))
        cheater = net.address(PROVIDERS[d.stage]).lower()
        if d.provider.lower() != cheater or d.round not in rounds:
            wrong.append((d.dispute_id, d.round, d.stage, d.leaf_index))
    if wrong:
        ids = {w[0] for w in wrong}
        reasons = [
            c
            for snap in run.snapshots()
            if snap["kind"] == "validator"
            for c in snap.get("challenges", [])
            if c[0] in ids
        ]
        raise AssertionError(
            f"honest providers challenged (dispute, round, stage, leaf): {wrong}; "
            f"validators' reasons: {reasons}"
        )


def _check_caught_and_replaced(net, run, cheats: dict[int, tuple[str, tuple[int, ...]]]):
    p = run.owner.protocol
    job = run.job_id
    _check_no_honest_challenged(net, run, cheats)
    resolved = _events(p, "AuditCourt", "DisputeResolved", job)
    slashed = {
        p.dispute(int(e.args["disputeId"])).stage: p.dispute(int(e.args["disputeId"])).round
        for e in resolved
        if e.args["providerSlashed"]
    }
    # Structural faults are convicted outright from two leaves and their proofs.
    proven = _events(p, "AuditCourt", "FaultProven", job)
    for e in proven:
        assert int(e.args["stage"]) in cheats, f"fault proven against an honest stage: {e.args}"
        slashed.setdefault(int(e.args["stage"]), int(e.args["round"]))
    assert set(slashed) == set(cheats), f"slashed (stage: round) {slashed}"
    lost = [
        (d.dispute_id, d.round, d.stage, d.leaf_index, d.provider, d.challenger)
        for d in (p.dispute(int(e.args["disputeId"])) for e in resolved)
        if d.status.name != "PROVIDER_SLASHED"
    ]
    assert all(e.args["providerSlashed"] for e in resolved), f"challengers lost: {lost}"
    for stage, (kind, rounds) in cheats.items():
        cheater = net.address(PROVIDERS[stage])
        caught = slashed[stage]
        assert caught in rounds, f"stage {stage} ({kind}) slashed in round {caught}"
        assert p.commitment(job, caught, stage).slashed
        replacement = p.stage_provider(job, stage)
        assert replacement.lower() != cheater.lower()
        last = p.job_terms(job).rounds - 1
        rec = load_document(net.store, p.commitment(job, last, stage).record_cid, RoundRecord)
        assert rec.provider.lower() == replacement.lower()
        assert not p.commitment(job, last, stage).slashed


def test_spec_and_dataset_swaps_weight_swaps_and_arbitrary_starts_are_slashed(net, dataset):
    cheats = {
        0: ("dataset-swap", (0, 1)),  # trains stage 0 on other data, names it in its record
        1: ("spec-swap", (0, 1)),  # lr 1e-12: learns nothing, names that spec
        2: ("swap-weights", (0,)),  # other weights between steps 0 and 1, honest from there
        3: ("arbitrary-init", (0,)),  # round 0 from weights nobody committed to
    }
    with job_running(
        net,
        tiny_spec(dataset, 4),
        terms(2, challenge_window=25),
        owner_index=OWNER,
        provider_indices=PROVIDERS[:4],
        validator_indices=VALIDATORS,
        standby_indices=STANDBYS[:4],
        faults={stage: (kind, rounds) for stage, (kind, rounds) in cheats.items()},
    ) as run:
        state = drive(net, run, timeout=900)
        assert state.status == JobStatus.COMPLETED
        _check_caught_and_replaced(net, run, cheats)
        # A round 0 from uncommitted weights needs no committee: a validator proved it
        # from the step-0 leaf and its proof (AuditCourt.proveFault).
        p = run.owner.protocol
        proven = {int(e.args["stage"]) for e in _events(p, "AuditCourt", "FaultProven", run.job_id)}
        said = [
            (snap.get("faults_proven"), snap.get("notes"))
            for snap in run.snapshots()
            if snap["kind"] == "validator"
        ]
        assert 3 in proven, f"faults proven on stages {proven}; validators: {said}"


def test_poison_wrong_checkpoint_old_record_and_withheld_bundles_are_slashed(net, dataset):
    cheats = {
        0: ("wrong-checkpoint", (1,)),  # publishes a checkpoint its leaves do not end in
        1: ("poison-micro-batch", (1,)),  # made-up gradient on micro-batch 1 of every step
        2: ("old-record", (1,)),  # re-commits round 0's root and record for round 1
        3: ("withhold-bundles", (1,)),  # publishes no bundle, answers no challenge
    }
    with job_running(
        net,
        tiny_spec(dataset, 4),
        terms(3, challenge_window=25),
        owner_index=OWNER,
        provider_indices=PROVIDERS[:4],
        validator_indices=VALIDATORS,
        standby_indices=STANDBYS[:4],
        faults={stage: (kind, rounds) for stage, (kind, rounds) in cheats.items()},
    ) as run:
        state = drive(net, run, timeout=900)
        assert state.status == JobStatus.COMPLETED
        _check_caught_and_replaced(net, run, cheats)
        p = run.owner.protocol
        for stage in range(4):
            # Replacements resumed from round 0's true checkpoint (the liar's was not used).
            r0 = load_document(
                net.store, p.commitment(run.job_id, 0, stage).record_cid, RoundRecord
            )
            r2 = load_document(
                net.store, p.commitment(run.job_id, 2, stage).record_cid, RoundRecord
            )
            assert r2.parent_checkpoint == r0.new_checkpoint
            assert r2.leaves[0].params_before == r0.leaves[-1].params_after
            assert p.shares_of(run.job_id, net.address(PROVIDERS[stage])) == 1000  # round 0 only
