"""Inference requests over the transport: what the payer signs, what a stage checks.

A request is paid on-chain first (`InferencePayments.pay`, which names the
model, the request id and the tokens bought). Every step the gateway sends a
stage is signed by the payer's key over

    keccak256(abi.encode("tessera/infer@1", chainId, payments, requestId, stage, position,
                         payloadHash))   (EIP-191 personal_sign)

so a stage serves a request only to whoever paid for it, and counts the steps
against the tokens bought. Pure functions and a small ledger, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address


def request_digest(
    chain_id: int, payments: str, request_id: bytes, stage: int, position: int, payload_hash: bytes
) -> bytes:
    """The 32 bytes the payer signs for one step of one request at one stage."""
    return keccak(
        abi_encode(
            ["string", "uint256", "address", "bytes32", "uint32", "uint32", "bytes32"],
            [
                "tessera/infer@1",
                chain_id,
                to_checksum_address(payments),
                request_id,
                stage,
                position,
                payload_hash,
            ],
        )
    )


def sign_request(private_key, *args) -> bytes:
    """The payer's signature of `request_digest(*args)`."""
    return bytes(
        Account.sign_message(encode_defunct(primitive=request_digest(*args)), private_key).signature
    )


def request_signer(signature: bytes, *args) -> str:
    """Who signed one request step (raises on a malformed signature)."""
    msg = encode_defunct(primitive=request_digest(*args))
    return to_checksum_address(Account.recover_message(msg, signature=signature))


@dataclass
class RequestLedger:
    """Steps served per paid request at one stage: one step per token bought, no more."""

    served: dict[bytes, int] = field(default_factory=dict)

    def admit(self, request_id: bytes, tokens_paid: int) -> str | None:
        """None if one more step may be served, else the one-line reason it may not."""
        n = self.served.get(request_id, 0)
        if n >= tokens_paid:
            return f"request 0x{request_id.hex()} paid for {tokens_paid} tokens; all {n} are served"
        return None

    def record(self, request_id: bytes) -> None:
        self.served[request_id] = self.served.get(request_id, 0) + 1
