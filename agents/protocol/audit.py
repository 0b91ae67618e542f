"""Checks a validator runs on a round's records before replaying anything.

Pure functions over RoundRecords and hashes the chain holds: whether each
record matches its on-chain commitment, whether each stage's state chain is
continuous (within the round, from the last finalized round, from the initial
state committed with the job, into the checkpoint it publishes), whether the
stages agree on what crossed each boundary, and — with the payload
signatures — who signed a payload that does not match. Every finding names
the stage and the leaf to challenge; a structural finding also names the
second leaf that contradicts it (what AuditCourt's structural entry point
takes with both proofs, no committee needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from itertools import pairwise

from agents.lineage.documents import RoundRecord, TraceLeaf
from agents.protocol.attestation import (
    ZERO_ATTESTATION,
    AttestationError,
    PayloadContext,
    attestation_hash,
    recover_signer,
)
from agents.training.traces import trace_tree

ZERO = "0x" + "00" * 32


class Structural(Enum):
    """Faults two committed leaves (or a leaf and a chain-held hash) prove on their own."""

    SPLIT_STEP = "split-step"  # two micro-batches of one step start from different states
    DISCONTINUITY = "discontinuity"  # params_before(t+1) != params_after(t)
    ROUND_START = "round-start"  # first params_before != last finalized round's last params_after
    INITIAL_STATE = "initial-state"  # round 0 not from the initial state hash committed on-chain
    FINAL_STATE = "final-state"  # published checkpoint != the last leaf's params_after


@dataclass(frozen=True)
class Equivocation:
    """A sender's signature over a payload its own leaf does not record: what
    AuditCourt.provePayloadEquivocation takes with the sender's leaf and its proof."""

    direction: int  # 0 forward (the leaf's output), 1 backward (its grad_out)
    payload_hash: str  # the hash the sender signed (what the receiver recorded)
    signature: bytes


@dataclass(frozen=True)
class Finding:
    """Something wrong with one leaf (or a whole record when leaf is None)."""

    stage: int
    leaf: int | None
    reason: str
    provable: bool = True  # False: the leaf must be challenged by index (challengeIndex)
    structural: Structural | None = None
    other_leaf: int | None = None  # the contradicting leaf of a two-leaf structural fault
    replay_only: bool = False  # not a fault by itself: replay this leaf to find who lied
    equivocation: Equivocation | None = None  # the sender signed what its leaf does not record


def check_record(
    record: RoundRecord,
    committed_root: str,
    expected_parent: str | None,
    *,
    initial: bool = False,
    checkpoint_hash: str | None = None,
) -> list[Finding]:
    """A record against its commitment, and its own state chain.

    `expected_parent` is the state the round must start from: the last
    finalized round's last params_after, or (with `initial=True`) the stage's
    initial state hash committed with the job. `checkpoint_hash` is the state
    hash of the published `new_checkpoint` (None: not checked).
    """
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
    first = record.leaves[0]
    if expected_parent is not None and first.params_before != expected_parent:
        kind = Structural.INITIAL_STATE if initial else Structural.ROUND_START
        what = "the initial state committed with the job" if initial else "the last final state"
        out.append(Finding(s, 0, f"first step does not start from {what}", structural=kind))
    for prev, leaf in pairwise(record.leaves):
        if leaf.step == prev.step and leaf.params_before != prev.params_before:
            out.append(
                Finding(
                    s,
                    leaf.index,
                    "micro-batches of one step start from different states",
                    structural=Structural.SPLIT_STEP,
                    other_leaf=prev.index,
                )
            )
        if leaf.step == prev.step + 1 and leaf.params_before != prev.params_after:
            out.append(
                Finding(
                    s,
                    leaf.index,
                    "step does not start where the previous one ended",
                    structural=Structural.DISCONTINUITY,
                    other_leaf=prev.index,
                )
            )
    last = record.leaves[-1]
    if checkpoint_hash is not None and checkpoint_hash != last.params_after:
        out.append(
            Finding(
                s,
                last.index,
                "published checkpoint is not the state the leaves end in",
                structural=Structural.FINAL_STATE,
            )
        )
    return out


def check_boundaries(records: list[RoundRecord]) -> list[Finding]:
    """Stage s's sent payloads equal stage s+1's received ones, leaf by leaf, and stage 0's
    data_ref equals the last stage's.

    A mismatch alone does not say which side lied, so these findings are
    `replay_only`: the validator replays that leaf on both sides (and
    `attribute_boundary` decides from the payload signatures).
    """
    out: list[Finding] = []
    for up, down in pairwise(records):
        if len(up.leaves) != len(down.leaves):
            out.append(Finding(down.stage, None, "stages recorded different numbers of leaves"))
            continue
        for a, b in zip(up.leaves, down.leaves, strict=True):
            if a.output != b.input:
                why = f"input differs from stage {up.stage}'s output"
                out.append(Finding(down.stage, b.index, why, replay_only=True))
                out.append(Finding(up.stage, a.index, why, replay_only=True))
            if a.grad_in != b.grad_out:
                why = f"grad_in differs from stage {down.stage}'s grad_out"
                out.append(Finding(up.stage, a.index, why, replay_only=True))
                out.append(Finding(down.stage, b.index, why, replay_only=True))
    if len(records) > 1 and len(records[0].leaves) == len(records[-1].leaves):
        first, last = records[0], records[-1]
        for a, b in zip(first.leaves, last.leaves, strict=True):
            if a.data_ref != b.data_ref:
                why = "stage 0 and the last stage consumed different data"
                out.append(Finding(first.stage, a.index, why, replay_only=True))
                out.append(Finding(last.stage, b.index, why, replay_only=True))
    return out


def attribute_boundary(
    sender_leaf: TraceLeaf,
    receiver_leaf: TraceLeaf,
    signature: bytes | str | None,
    ctx: PayloadContext,
    sender: str,
    *,
    receiver_stage: int,
) -> Finding | None:
    """Who lied at one boundary crossing, from the signature the receiver holds.

    `ctx.direction` 0 compares the sender's `output` with the receiver's
    `input`; 1 its `grad_out` with the receiver's `grad_in`. The receiver must
    show a signature whose keccak is its recorded attestation and which the
    sender's key made over the payload hash it recorded; then a sender whose
    own leaf names another payload signed what it did not record (the sender
    lied, or a relay substituted a payload and the receiver refused it — the
    receiver cannot hold a valid signature for a substitute). Otherwise the
    receiver recorded a payload nobody signed (the receiver lied). None: the
    hashes agree.
    """
    forward = ctx.direction == 0
    sent = sender_leaf.output if forward else sender_leaf.grad_out
    got = receiver_leaf.input if forward else receiver_leaf.grad_in
    recorded = receiver_leaf.input_attestation if forward else receiver_leaf.grad_in_attestation
    if sent == got:
        return None
    field = "input" if forward else "grad_in"
    receiver_fault = Finding(
        receiver_stage, receiver_leaf.index, f"recorded {field} is not signed by its sender"
    )
    if signature is None or recorded == ZERO_ATTESTATION:
        return receiver_fault
    try:
        if attestation_hash(signature) != recorded:
            return receiver_fault
        signer = recover_signer(ctx, got, signature)
    except AttestationError:
        return receiver_fault
    if signer.lower() != sender.lower():
        return receiver_fault
    return Finding(
        ctx.stage,
        sender_leaf.index,
        f"signed a {'forward' if forward else 'backward'} payload its leaf does not record",
        equivocation=Equivocation(ctx.direction, got, bytes.fromhex(_hex(signature))),
    )


def _hex(signature: bytes | str) -> str:
    return signature.hex() if isinstance(signature, bytes) else signature.removeprefix("0x")


def sender_equivocations(
    sender: RoundRecord,
    receiver: RoundRecord,
    signatures: dict[int, bytes | str | None],
    ctx_of,
    sender_provider: str,
) -> list[Finding]:
    """Every leaf at which the receiver holds the sender's signature over a payload the
    sender's own leaf does not record (what a receiver proves for itself, on every leaf, not
    only the sampled ones a bundle carries). `signatures` maps a leaf index to the
    signature the receiver kept for this direction; `ctx_of(leaf)` is the signed context of
    the sender's leaf."""
    out = []
    for a, b in zip(sender.leaves, receiver.leaves, strict=False):
        sig = signatures.get(b.index)
        if sig is None:
            continue
        f = attribute_boundary(a, b, sig, ctx_of(a), sender_provider, receiver_stage=receiver.stage)
        if f is not None and f.equivocation is not None:
            out.append(f)
    return out


def double_sign_finding(
    sender_leaf: TraceLeaf, direction: int, signed: list[tuple[str, bytes]], sender_stage: int
) -> Finding | None:
    """A neighbour signed two payloads for one slot (in two attempts of a round): whichever
    its committed leaf does not record convicts it. `signed` is [(payload hash, signature)];
    None when every hash is the recorded one."""
    recorded = sender_leaf.output if direction == 0 else sender_leaf.grad_out
    for payload_hash, signature in signed:
        if payload_hash != recorded:
            return Finding(
                sender_stage,
                sender_leaf.index,
                "signed two payloads for one slot of the round",
                equivocation=Equivocation(direction, payload_hash, bytes(signature)),
            )
    return None
