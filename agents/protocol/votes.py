"""Commit–reveal votes of dispute committees.

The salt is derived from the voter's key and the dispute id, so a validator
that restarts between commit and reveal can rebuild it from nothing but its key.
"""

from __future__ import annotations

import hmac
from hashlib import sha256

from eth_abi import encode
from eth_utils import keccak, to_checksum_address


def vote_salt(private_key: bytes, dispute_id: int) -> bytes:
    """A 32-byte salt only the key holder can compute, stable across restarts."""
    return hmac.new(private_key, b"tessera-vote" + dispute_id.to_bytes(32, "big"), sha256).digest()


def vote_commitment(dispute_id: int, voter: str, guilty: bool, salt: bytes) -> bytes:
    """keccak256(abi.encode(disputeId, voter, guilty, salt)), as AuditCourt checks it."""
    return keccak(
        encode(
            ["uint256", "address", "bool", "bytes32"],
            [dispute_id, to_checksum_address(voter), guilty, salt],
        )
    )
