"""Checks a validator runs on a round's records before replaying anything.

Pure functions over RoundRecords: whether each record matches its on-chain
commitment, whether the stages agree on what crossed each boundary, and
whether each stage's state chain is continuous from its parent checkpoint.
Every finding names the stage and the leaf to challenge.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from agents.lineage.documents import RoundRecord
from agents.training.traces import trace_tree

ZERO = "0x" + "00" * 32


@dataclass(frozen=True)
class Finding:
    """Something wrong with one leaf (or a whole record when leaf is None)."""

    stage: int
    leaf: int | None
    reason: str
    provable: bool = True  # False: the leaf must be challenged by index (challengeIndex)


def check_record(
    record: RoundRecord, committed_root: str, expected_parent: str | None
) -> list[Finding]:
    """A record against its commitment, and its own state chain."""
    s = record.stage
    out: list[Finding] = []
    try:
        root = trace_tree(record.leaves).root_hex
    except Exception as exc:  # malformed leaf list
        return [Finding(s, None, f"leaves do not form a trace tree: {exc}")]
    if (
        root.lower() != committed_root.lower()
        or record.trace_root.lower() != committed_root.lower()
    ):
        return [Finding(s, None, "record does not match the committed trace root")]
    if expected_parent is not None and record.leaves[0].params_before != expected_parent:
        out.append(Finding(s, 0, "first step does not start from the last finalized checkpoint"))
    for prev, leaf in pairwise(record.leaves):
        if leaf.step == prev.step and leaf.params_before != prev.params_before:
            out.append(
                Finding(s, leaf.index, "micro-batches of one step start from different states")
            )
        if leaf.step == prev.step + 1 and leaf.params_before != prev.params_after:
            out.append(Finding(s, leaf.index, "step does not start where the previous one ended"))
    return out


def check_boundaries(records: list[RoundRecord]) -> list[Finding]:
    """Stage s's sent payloads equal stage s+1's received ones, leaf by leaf."""
    out: list[Finding] = []
    for up, down in pairwise(records):
        if len(up.leaves) != len(down.leaves):
            out.append(Finding(down.stage, None, "stages recorded different numbers of leaves"))
            continue
        for a, b in zip(up.leaves, down.leaves, strict=True):
            if a.output != b.input:
                out.append(
                    Finding(down.stage, b.index, f"input differs from stage {up.stage}'s output")
                )
            if a.grad_in != b.grad_out:
                out.append(
                    Finding(
                        up.stage, a.index, f"grad_in differs from stage {down.stage}'s grad_out"
                    )
                )
    return out
