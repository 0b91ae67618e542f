"""Sending an equivocation proof to the court: shared by the validator and the provider."""

from __future__ import annotations

from agents.chain.protocol import Protocol
from agents.lineage.documents import RoundRecord
from agents.protocol.audit import Finding
from agents.training.traces import leaf_struct, trace_tree


def prove_equivocation(p: Protocol, job_id: int, round_: int, sender: RoundRecord, f: Finding):
    """AuditCourt.provePayloadEquivocation for `f` (a finding with `equivocation`) against the
    sender's record `sender`: its leaf, the leaf's proof, the signed hash and the signature.
    Raises RevertError when the chain refuses it."""
    eq = f.equivocation
    sent = (leaf_struct(sender.leaves[f.leaf]), trace_tree(sender.leaves).proof(f.leaf))
    payload_hash = bytes.fromhex(eq.payload_hash.removeprefix("0x"))
    p.prove_payload_equivocation(
        job_id, round_, f.stage, eq.direction, sent, payload_hash, eq.signature
    )
