"""A provider never signs two different payloads for one slot of a round (so a signature it
made can never contradict its own commitment: AuditCourt.provePayloadEquivocation cannot be
turned against an honest stage by a neighbour that restarts a round with other inputs)."""

from __future__ import annotations

import pytest
import torch

from agents.roles.stage_loop import StageLink, StaticPeerView
from agents.training.hashing import tensors_hash
from agents.transport.guard import FORWARD, RoundGuard
from agents.transport.keys import TransportKey
from agents.transport.signed import PayloadConflict, SignedPayloads

H1, H2 = b"\x01" * 32, b"\x02" * 32


def test_one_hash_per_slot_survives_a_crash_and_resets_each_round(tmp_path):
    path = tmp_path / "signed.log"
    log = SignedPayloads(path)
    log.admit(3, 0, 1, FORWARD, H1)
    log.admit(3, 0, 1, FORWARD, H1)  # a retried attempt recomputing the same payload
    log.admit(3, 0, 1, 1, H2)  # the other direction is another slot
    with pytest.raises(PayloadConflict, match="already signed payload"):
        log.admit(3, 0, 1, FORWARD, H2)
    # A crash (a torn last line included) loses nothing that was sent.
    with path.open("a") as f:
        f.write("3 1 0 0 ab")
    again = SignedPayloads(path)
    assert again.round == 3
    with pytest.raises(PayloadConflict):
        again.admit(3, 0, 1, FORWARD, H2)
    again.admit(3, 1, 0, FORWARD, H2)  # the torn slot was never signed
    # The next round starts empty (and the file with it).
    again.admit(4, 0, 1, FORWARD, H2)
    assert SignedPayloads(path).round == 4
    assert path.read_text().count("\n") == 1


def test_the_stage_link_refuses_to_sign_a_second_payload_for_a_slot():
    view = StaticPeerView(chain_id=31337, job_market="0x" + "ab" * 20, providers={}, records={})
    link = StageLink(view, 1, 1, 3, key=TransportKey.generate(), bind="tcp://127.0.0.1:0")
    try:
        link.guard = RoundGuard(1, 1, 3, 2, 2)
        link.guard.begin(0, 1)
        first = {"x": torch.ones(2, 2)}
        # What an earlier attempt of the round signed and sent for step 0, micro-batch 0.
        link.signed.admit(0, 0, 0, FORWARD, bytes.fromhex(tensors_hash(first)[2:]))
        other = {"x": torch.zeros(2, 2)}  # computed from another neighbour's input
        with pytest.raises(PayloadConflict):
            link._send_data(b"\x07" * 32, 2, 0, 0, FORWARD, other)
        assert link.stats["refused"] == 0
    finally:
        link.close()


def test_a_neighbour_resending_another_payload_for_a_slot_is_refused():
    """Attempt 1 accepted A for (step 0, mb 0); attempt 2 brings B for the same slot, signed
    by the same neighbour: refused (and named), so this stage never computes, nor signs,
    outputs that differ between attempts. Resending A is accepted."""
    from eth_account import Account

    from agents.protocol.attestation import PayloadContext, recover_signer, sign_payload
    from agents.transport.endpoint import Incoming
    from agents.transport.frames import Header, Kind
    from agents.transport.payloads import payload_to_bytes

    market = "0x" + "ab" * 20
    view = StaticPeerView(chain_id=31337, job_market=market, providers={}, records={})
    link = StageLink(view, 1, 1, 3, key=TransportKey.generate(), bind="tcp://127.0.0.1:0")
    upstream = Account.create()
    link._stage_key[0] = (upstream.address, b"k" * 40, "tcp://127.0.0.1:1")
    refused: list[str] = []
    link.ep.refuse = refused.append

    def message(payload, attempt):
        ph = bytes.fromhex(tensors_hash(payload)[2:])
        sig = sign_payload(upstream.key, PayloadContext(31337, market, 1, 0, 0, 0, 0, 0), ph)
        h = Header(Kind.DATA, 1, 0, attempt, 0, 0, 0, FORWARD, payload_hash=ph, signature=sig)
        return Incoming(b"k" * 40, "stage 0 provider", b"", h, payload_to_bytes(payload))

    try:
        link.guard = RoundGuard(1, 1, 3, 2, 2)
        a, b = {"x": torch.ones(2, 2)}, {"x": torch.zeros(2, 2)}
        link.guard.begin(0, 1)
        link._accept(message(a, 1))
        assert len(link._queues[FORWARD]) == 1 and refused == []
        link.guard.begin(0, 2)  # the neighbour restarted the round
        link._queues[FORWARD].clear()
        link._accept(message(b, 2))
        assert len(link._queues[FORWARD]) == 0
        assert len(refused) == 1 and "already received payload" in refused[0]
        # Kept as evidence: the same key signed both payloads for the slot.
        ((rnd, sender, step, mb, direction, pair),) = link.conflicts
        assert (rnd, sender, step, mb, direction) == (0, 0, 0, 0, FORWARD)
        ha, hb = (bytes.fromhex(tensors_hash(x)[2:]) for x in (a, b))
        assert [ph for ph, _ in pair] == [ha, hb]
        ctx = PayloadContext(31337, market, 1, 0, 0, 0, 0, 0)
        assert all(recover_signer(ctx, ph, sig) == upstream.address for ph, sig in pair)
        link._accept(message(a, 2))
        assert len(link._queues[FORWARD]) == 1
    finally:
        link.close()
