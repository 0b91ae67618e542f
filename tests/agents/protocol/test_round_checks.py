"""Validator pre-checks over round records (pure, no chain)."""

from __future__ import annotations

import pytest

from agents.lineage.documents import DeterminismConfig, RoundRecord, TraceLeaf
from agents.protocol.audit import Structural, attribute_boundary, check_boundaries, check_record
from agents.training.traces import trace_tree, union_sample, validator_sample

CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def h(n: int) -> str:
    return "0x" + f"{n:064x}"


def leaves_for(stage: int, steps: int = 2, mbs: int = 2, *, start: int = 100) -> list[TraceLeaf]:
    out = []
    for step in range(steps):
        for mb in range(mbs):
            i = step * mbs + mb
            out.append(
                TraceLeaf(
                    index=i,
                    step=step,
                    micro_batch=mb,
                    params_before=h(start + step),
                    input=h(1000 * stage + i),
                    output=h(1000 * (stage + 1) + i),
                    grad_in=h(5000 + 1000 * (stage + 1) + i),
                    grad_out=h(5000 + 1000 * stage + i),
                    params_after=h(start + step + 1),
                    data_ref=h(0),
                )
            )
    return out


def record(stage: int, leaves: list[TraceLeaf]) -> RoundRecord:
    return RoundRecord(
        job_id=1,
        round=0,
        stage=stage,
        provider="0x" + "ab" * 20,
        spec=CID,
        parent_checkpoint=None,
        new_checkpoint=CID,
        trace_root=trace_tree(leaves).root_hex,
        leaves=leaves,
        determinism=DeterminismConfig(),
    )


def test_consistent_round_has_no_findings():
    recs = [record(s, leaves_for(s, start=100 * (s + 1))) for s in range(3)]
    for r in recs:
        assert check_record(r, r.trace_root, r.leaves[0].params_before) == []
    assert check_boundaries(recs) == []


def test_record_not_matching_commitment_is_reported_whole():
    r = record(0, leaves_for(0))
    findings = check_record(r, h(42), None)
    assert [(f.stage, f.leaf) for f in findings] == [(0, None)]


def test_wrong_parent_and_broken_state_chain_name_the_leaf():
    leaves = leaves_for(1)
    broken = [*leaves[:2], leaves[2].model_copy(update={"params_before": h(9)}), leaves[3]]
    r = record(1, broken)
    reasons = {(f.leaf, f.reason.split()[0]) for f in check_record(r, r.trace_root, h(7))}
    assert (0, "first") in reasons  # does not start from the finalized checkpoint
    assert any(leaf == 2 for leaf, _ in reasons)  # the step that starts elsewhere
    assert any(leaf == 3 for leaf, _ in reasons)  # micro-batches disagree on the start


@pytest.mark.parametrize("field", ["output", "grad_in"])
def test_boundary_mismatch_names_stage_and_leaf(field):
    up, down = leaves_for(0), leaves_for(1)
    up[3] = up[3].model_copy(update={field: h(777)})
    findings = check_boundaries([record(0, up), record(1, down)])
    # A mismatch alone does not say who lied: both sides' leaf is replayed, nobody accused.
    assert sorted((f.stage, f.leaf) for f in findings) == [(0, 3), (1, 3)]
    assert all(f.replay_only for f in findings)


def test_data_ref_of_stage_0_and_the_last_stage_is_cross_checked():
    recs = [record(s, leaves_for(s)) for s in range(3)]
    last = [
        lf.model_copy(update={"data_ref": h(5)}) if lf.index == 1 else lf for lf in recs[2].leaves
    ]
    findings = check_boundaries([recs[0], recs[1], record(2, last)])
    assert sorted((f.stage, f.leaf) for f in findings) == [(0, 1), (2, 1)]


def test_structural_faults_name_the_two_contradicting_leaves():
    leaves = leaves_for(1)
    swapped = [*leaves[:2], *(lf.model_copy(update={"params_before": h(9)}) for lf in leaves[2:])]
    r = record(1, swapped)
    (f,) = check_record(r, r.trace_root, None)
    assert (f.structural, f.leaf, f.other_leaf) == (Structural.DISCONTINUITY, 2, 1)
    split = [*leaves[:3], leaves[3].model_copy(update={"params_before": h(9)})]
    r = record(1, split)
    kinds = {(f.structural, f.leaf, f.other_leaf) for f in check_record(r, r.trace_root, None)}
    assert (Structural.SPLIT_STEP, 3, 2) in kinds


def test_round_start_initial_state_and_checkpoint_are_checked():
    r = record(0, leaves_for(0))
    (f,) = check_record(r, r.trace_root, h(1), initial=True)
    assert (f.structural, f.leaf) == (Structural.INITIAL_STATE, 0)
    (f,) = check_record(r, r.trace_root, h(1))
    assert f.structural is Structural.ROUND_START
    assert check_record(r, r.trace_root, h(100), checkpoint_hash=h(102)) == []
    (f,) = check_record(r, r.trace_root, h(100), checkpoint_hash=h(101))
    assert (f.structural, f.leaf) == (Structural.FINAL_STATE, 3)


def _signed_pair(sender_key, received: str, recorded_sig=None):
    from eth_account import Account

    from agents.protocol.attestation import PayloadContext, attestation_hash, sign_payload

    ctx = PayloadContext(31337, "0x" + "ab" * 20, 1, 0, 0, 1, 1, 0)
    sig = sign_payload(sender_key, ctx, received)
    up = leaves_for(0)[3]
    down = leaves_for(1)[3].model_copy(
        update={"input": received, "input_attestation": attestation_hash(recorded_sig or sig)}
    )
    return ctx, sig, up, down, Account.from_key(sender_key).address


def test_a_boundary_mismatch_convicts_whoever_signed_the_wrong_payload():
    key = b"\x07" * 32
    # The receiver holds the sender's signature over what it recorded: the sender lied.
    ctx, sig, up, down, sender = _signed_pair(key, h(4242))
    f = attribute_boundary(up, down, sig, ctx, sender, receiver_stage=1)
    assert (f.stage, f.leaf) == (0, 3)
    # ...and the finding carries what AuditCourt.provePayloadEquivocation takes: the
    # direction, the hash the sender signed (not its leaf's output) and the signature.
    assert f.equivocation is not None
    assert (f.equivocation.direction, f.equivocation.payload_hash) == (0, h(4242))
    assert f.equivocation.payload_hash != up.output and f.equivocation.signature == bytes(sig)
    # A payload substituted in transit has no sender signature: the receiver is blamed
    # (an honest receiver refuses it; one that records it is the liar).
    forged = sign_payload_by_other(ctx, h(4242))
    ctx, _, up, down, sender = _signed_pair(key, h(4242), recorded_sig=forged)
    f = attribute_boundary(up, down, forged, ctx, sender, receiver_stage=1)
    assert (f.stage, f.leaf) == (1, 3) and f.equivocation is None  # nothing to prove it with
    assert attribute_boundary(up, down, None, ctx, sender, receiver_stage=1).stage == 1
    # Agreement: nobody.
    ctx, sig, up, down, sender = _signed_pair(key, leaves_for(0)[3].output)
    assert attribute_boundary(up, down, sig, ctx, sender, receiver_stage=1) is None


def sign_payload_by_other(ctx, payload_hash):
    from agents.protocol.attestation import sign_payload

    return sign_payload(b"\x09" * 32, ctx, payload_hash)


def test_each_validator_draws_its_own_leaves_and_coverage_grows():
    seed = b"\x01" * 32
    vals = ["0x" + f"{i:040x}" for i in range(1, 11)]
    draws = [validator_sample(seed, 1, v, 2, 400) for v in vals]
    assert all(len(d) == 2 for d in draws)
    assert len({tuple(d) for d in draws}) == 10  # not everyone the same leaves
    assert validator_sample(seed, 1, vals[0], 2, 400) == draws[0]  # anyone can recompute it
    union = union_sample(seed, 1, vals, 2, 400)
    assert set(union) == {i for d in draws for i in d} and len(union) > 2 * 5
    assert validator_sample(seed, 1, vals[0], 9, 4) == [0, 1, 2, 3]


def test_a_receiver_finds_every_substituted_leaf_it_holds_a_signature_for():
    from eth_account import Account

    from agents.protocol.attestation import PayloadContext, attestation_hash, sign_payload
    from agents.protocol.audit import sender_equivocations

    key = b"\x07" * 32

    def ctx_of(leaf):
        return PayloadContext(31337, "0x" + "ab" * 20, 1, 0, 0, leaf.step, leaf.micro_batch, 0)

    up, down = leaves_for(0), leaves_for(1)
    sigs = {}
    for lf in down:  # the honest payloads, as the receiver got them: the sender's outputs
        sigs[lf.index] = sign_payload(key, ctx_of(lf), up[lf.index].output)
        down[lf.index] = lf.model_copy(
            update={
                "input": up[lf.index].output,
                "input_attestation": attestation_hash(sigs[lf.index]),
            }
        )
    sender = Account.from_key(key).address
    assert sender_equivocations(record(0, up), record(1, down), sigs, ctx_of, sender) == []
    # Leaf 2 (step 1, micro-batch 0): the sender signed and sent other activations.
    sigs[2] = sign_payload(key, ctx_of(down[2]), h(4242))
    down[2] = down[2].model_copy(
        update={"input": h(4242), "input_attestation": attestation_hash(sigs[2])}
    )
    (f,) = sender_equivocations(record(0, up), record(1, down), sigs, ctx_of, sender)
    assert (f.stage, f.leaf, f.equivocation.payload_hash) == (0, 2, h(4242))
    # A signature by anyone else proves nothing against the sender (it blames the receiver).
    sigs[2] = sign_payload_by_other(ctx_of(down[2]), h(4242))
    down[2] = down[2].model_copy(update={"input_attestation": attestation_hash(sigs[2])})
    assert sender_equivocations(record(0, up), record(1, down), sigs, ctx_of, sender) == []


def test_of_two_payloads_signed_for_one_slot_the_unrecorded_one_convicts():
    from agents.protocol.audit import double_sign_finding

    leaf = leaves_for(0)[1]
    sig_a, sig_b = b"\x01" * 65, b"\x02" * 65
    f = double_sign_finding(leaf, 0, [(leaf.output, sig_a), (h(77), sig_b)], 0)
    assert (f.stage, f.leaf, f.equivocation.payload_hash, f.equivocation.signature) == (
        0,
        1,
        h(77),
        sig_b,
    )
    f = double_sign_finding(leaf, 1, [(h(78), sig_a), (leaf.grad_out, sig_b)], 0)
    assert (f.equivocation.direction, f.equivocation.payload_hash) == (1, h(78))
    assert double_sign_finding(leaf, 0, [(leaf.output, sig_a)], 0) is None
