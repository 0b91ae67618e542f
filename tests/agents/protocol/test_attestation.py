"""Payload signatures: the exact bytes signed, who can sign, and what a signature binds."""

from dataclasses import replace

import pytest
from eth_account import Account
from eth_utils import keccak

from agents.protocol.attestation import (
    BACKWARD,
    FORWARD,
    ZERO_ATTESTATION,
    AttestationError,
    PayloadContext,
    attestation_hash,
    is_signed_by,
    payload_digest,
    recover_signer,
    sign_payload,
    verify_payload,
)

SENDER = Account.from_key(b"\x11" * 32)
OTHER = Account.from_key(b"\x22" * 32)
MARKET = "0x" + "ab" * 20
PAYLOAD = "0x" + "5a" * 32
CTX = PayloadContext(
    chain_id=31337,
    job_market=MARKET,
    job_id=7,
    round=2,
    stage=1,
    step=3,
    micro_batch=1,
    direction=FORWARD,
)


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_digest_is_the_abi_encoding_written_out_by_hand():
    # abi.encode pads every static value to one 32-byte word, in declaration order.
    packed = (
        _word(31337)
        + bytes(12)
        + bytes.fromhex("ab" * 20)
        + _word(7)
        + _word(2)
        + _word(1)
        + _word(3)
        + _word(1)
        + _word(FORWARD)
        + bytes.fromhex("5a" * 32)
    )
    assert payload_digest(CTX, PAYLOAD) == keccak(packed)


def test_signature_is_personal_sign_of_the_digest():
    sig = sign_payload(SENDER.key, CTX, PAYLOAD)
    assert len(sig) == 65 and sig[64] in (27, 28)
    # What Solidity's ECDSA.recover(MessageHashUtils.toEthSignedMessageHash(digest), sig) sees.
    eth_signed = keccak(b"\x19Ethereum Signed Message:\n32" + payload_digest(CTX, PAYLOAD))
    assert Account._recover_hash(eth_signed, signature=sig) == SENDER.address
    assert recover_signer(CTX, PAYLOAD, sig) == SENDER.address
    verify_payload(CTX, PAYLOAD, sig, SENDER.address.lower())


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": 1},
        {"job_market": "0x" + "cd" * 20},
        {"job_id": 8},
        {"round": 3},
        {"stage": 2},
        {"step": 4},
        {"micro_batch": 0},
        {"direction": BACKWARD},
    ],
)
def test_signature_binds_every_context_field(change):
    sig = sign_payload(SENDER.key, CTX, PAYLOAD)
    other = replace(CTX, **change)
    assert not is_signed_by(other, PAYLOAD, sig, SENDER.address)
    with pytest.raises(AttestationError, match="signed by"):
        verify_payload(other, PAYLOAD, sig, SENDER.address)


def test_substituted_payload_or_other_signer_is_refused():
    sig = sign_payload(SENDER.key, CTX, PAYLOAD)
    assert not is_signed_by(CTX, "0x" + "5b" * 32, sig, SENDER.address)
    forged = sign_payload(OTHER.key, CTX, PAYLOAD)
    assert not is_signed_by(CTX, PAYLOAD, forged, SENDER.address)
    assert is_signed_by(CTX, PAYLOAD, forged, OTHER.address)


def test_malformed_signatures_are_one_clear_error():
    sig = sign_payload(SENDER.key, CTX, PAYLOAD)
    with pytest.raises(AttestationError, match="65 bytes"):
        recover_signer(CTX, PAYLOAD, sig[:64])
    with pytest.raises(AttestationError, match="v must be 27 or 28"):
        recover_signer(CTX, PAYLOAD, sig[:64] + b"\x01")
    with pytest.raises(AttestationError, match="not hex"):
        recover_signer(CTX, PAYLOAD, "0xzz")
    with pytest.raises(AttestationError):
        recover_signer(CTX, PAYLOAD, b"\x00" * 64 + b"\x1b")
    assert not is_signed_by(CTX, PAYLOAD, b"\x00" * 65, SENDER.address)


def test_context_rejects_values_the_encoding_cannot_carry():
    with pytest.raises(AttestationError, match="uint32"):
        replace(CTX, step=2**32)
    with pytest.raises(AttestationError, match="direction"):
        replace(CTX, direction=2)
    with pytest.raises(AttestationError, match="not an address"):
        replace(CTX, job_market="0x1234")
    with pytest.raises(AttestationError, match="32 bytes"):
        payload_digest(CTX, "0x1234")


def test_attestation_hash_is_keccak_of_the_signature_or_zero():
    sig = sign_payload(SENDER.key, CTX, PAYLOAD)
    assert attestation_hash(sig) == "0x" + keccak(sig).hex()
    assert attestation_hash("0x" + sig.hex()) == attestation_hash(sig)
    assert attestation_hash(None) == ZERO_ATTESTATION
    # Deterministic (RFC 6979): the same payload signed twice gives the same leaf value.
    assert attestation_hash(sign_payload(SENDER.key, CTX, PAYLOAD)) == attestation_hash(sig)
