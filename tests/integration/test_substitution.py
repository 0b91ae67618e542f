"""A payload substituted in transit (issue 11), end to end over the transport.

Each provider is its own OS process and signs what it sends with its staked key. The
stage-1 provider, in round 0, signs and sends other activations than its leaf records on
one micro-batch, then computes honestly, so a replay of its own leaf matches and its
receiver's replay matches too: only the boundary disagrees. The sender is convicted from its
leaf, the Merkle proof and the signature the receiver kept
(AuditCourt.provePayloadEquivocation), by whichever comes first: the validator (from the
receiver's bundle) or the receiver itself (which holds the signatures of every leaf, sampled
or not). The receiver, which computed on what it was sent, is neither challenged nor
slashed; a standby takes the vacated stage and the job completes.
"""

from __future__ import annotations

from types import SimpleNamespace

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
from agents.roles.validator import ValidatorAgent

STAGES, CHEATER, CHEAT_ROUND = 3, 1, 0


def _spec(dataset):
    spec = tiny_spec(dataset, STAGES)
    # One step a round: every bundle holds the step, so the receiver's bundle carries the
    # sender's signature over the substituted micro-batch (and the rounds stay short).
    return spec.model_copy(
        update={"training": spec.training.model_copy(update={"steps_per_round": 1})}
    )


def _events(p, contract, name, job):
    return [e for e in p.client.events(contract, name, 0) if int(e.args["jobId"]) == job]


def test_a_payload_substituted_in_transit_convicts_the_sender_only(net, dataset, capsys):
    with (
        job_running(
            net,
            _spec(dataset),
            terms(2, challenge_window=30),
            owner_index=OWNER,
            provider_indices=PROVIDERS[:STAGES],
            validator_indices=VALIDATORS[:1],  # the proof needs no committee
            standby_indices=STANDBYS[:1],
            faults={CHEATER: ("substitute-payload", (CHEAT_ROUND,))},
            transport=True,
            peer_timeout=10,
        ) as run
    ):
        state = drive(net, run, timeout=400)
        assert state.status == JobStatus.COMPLETED
        p, job = run.owner.protocol, run.job_id
        cheater = net.address(PROVIDERS[CHEATER])

        # The substitution happened: the receiver recorded (and signed-for) other activations
        # than the sender's leaf records, on the last micro-batch only.
        rec = {
            s: load_document(net.store, p.commitment(job, CHEAT_ROUND, s).record_cid, RoundRecord)
            for s in range(STAGES)
        }
        sender, receiver = rec[CHEATER].leaves, rec[CHEATER + 1].leaves
        differ = [a.index for a, b in zip(sender, receiver, strict=True) if a.output != b.input]
        assert differ == [len(sender) - 1]
        assert receiver[-1].input_attestation != "0x" + "00" * 32

        # Convicted outright from the signature: the cheater, in the round it cheated.
        proven = _events(p, "AuditCourt", "PayloadEquivocationProven", job)
        assert proven, [s.get("notes") for s in run.snapshots() if s["kind"] == "validator"]
        assert {(int(e.args["round"]), int(e.args["stage"])) for e in proven} == {
            (CHEAT_ROUND, CHEATER)
        }
        assert {int(e.args["leafIndex"]) for e in proven} == {len(sender) - 1}
        provers = {e.args["prover"].lower() for e in proven}
        receiver_provider = net.address(PROVIDERS[CHEATER + 1]).lower()
        assert provers <= {net.address(VALIDATORS[0]).lower(), receiver_provider}
        with capsys.disabled():
            who = "the receiver" if provers == {receiver_provider} else "the validator"
            print(f"\nsubstitution proven by {who}")
        slashed = {
            (r, s)
            for r in range(2)
            for s in range(STAGES)
            if p.commitment(job, r, s).exists and p.commitment(job, r, s).slashed
        }
        assert slashed == {(CHEAT_ROUND, CHEATER)}
        assert p.commitment(job, CHEAT_ROUND, CHEATER).provider.lower() == cheater.lower()
        # Nobody was challenged (the receiver least of all), nothing else was proven.
        assert _events(p, "AuditCourt", "ChallengeOpened", job) == []
        assert _events(p, "AuditCourt", "FaultProven", job) == []

        # Had the proof been refused, the leaf would go to a committee: a member's judgment
        # convicts the sender on the same signature although its replay matches, and
        # clears the receiver and stage 0 (the committee's code, on this job's chain data).
        judge = ValidatorAgent(net.protocol(VALIDATORS[0]), net.store, str(net.store_dir), job)
        last_mb = len(sender) - 1
        for stage, guilty in ((CHEATER, True), (CHEATER + 1, False), (0, False)):
            d = SimpleNamespace(
                job_id=job,
                round=CHEAT_ROUND,
                stage=stage,
                leaf_index=last_mb,
                provider=p.commitment(job, CHEAT_ROUND, stage).provider,
            )
            assert judge._equivocated(d, rec[stage]) is guilty, stage
        judge.close()

        # The stage continued with the standby, which finished the job.
        replacement = p.stage_provider(job, CHEATER)
        assert replacement.lower() == net.address(STANDBYS[0]).lower()
        last = load_document(net.store, p.commitment(job, 1, CHEATER).record_cid, RoundRecord)
        assert last.provider.lower() == replacement.lower()
        assert not p.commitment(job, 1, CHEATER).slashed
        assert last.leaves[0].input_attestation != "0x" + "00" * 32  # still over the transport
