"""Validator pre-checks over round records (pure, no chain)."""

from __future__ import annotations

import pytest

from agents.lineage.documents import DeterminismConfig, RoundRecord, TraceLeaf
from agents.protocol.audit import check_boundaries, check_record
from agents.training.traces import trace_tree

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
    assert [(f.stage, f.leaf) for f in findings] == [(1 if field == "output" else 0, 3)]
