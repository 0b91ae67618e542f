"""Payload attribution: who sent what across a stage boundary.

Every payload that crosses a stage boundary (activations forward, gradients
backward) is signed by the SENDING stage's provider with its staked key, so a
boundary mismatch convicts whoever signed the wrong payload, and a party in
the middle (a driver, a relay) that substitutes a payload is caught: it
cannot produce the sender's signature over the substitute.

The signed message is fixed here and nowhere else (the contracts and the
transport verify the same bytes):

    digest    = keccak256(abi.encode(uint256 chainId, address jobMarket, uint256 jobId,
                                     uint32 round, uint32 stage, uint32 step,
                                     uint32 microBatch, uint8 direction, bytes32 payloadHash))
    signature = EIP-191 personal_sign(digest)   (65 bytes r | s | v, v in {27, 28})

`stage` is the SENDER's stage for both directions; direction 0 = forward
(activations), 1 = backward (gradients). `payloadHash` is the payload's
canonical `tensors_hash` as the receiver records it in its leaf.

The receiver records keccak256(signature) in its trace leaf
(`input_attestation` for forward payloads, `grad_in_attestation` for
backward ones); the zero hash where there is no sender (stage 0's input, the
last stage's incoming gradient seed).

Pure functions: no chain, no network, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_address, keccak, to_checksum_address

from agents.errors import TesseraError

FORWARD = 0
BACKWARD = 1
ZERO_ATTESTATION = "0x" + "00" * 32
SIGNATURE_BYTES = 65

_DIGEST_TYPES = [
    "uint256",
    "address",
    "uint256",
    "uint32",
    "uint32",
    "uint32",
    "uint32",
    "uint8",
    "bytes32",
]
_U32 = 2**32


class AttestationError(TesseraError):
    """A payload signature that is malformed, for another message, or by another key."""


@dataclass(frozen=True)
class PayloadContext:
    """Everything a payload signature binds besides the payload hash.

    `stage` is the sending stage; `direction` is FORWARD or BACKWARD.
    """

    chain_id: int
    job_market: str
    job_id: int
    round: int
    stage: int
    step: int
    micro_batch: int
    direction: int

    def __post_init__(self) -> None:
        if not is_address(self.job_market):
            raise AttestationError(f"job market {self.job_market!r} is not an address")
        if self.direction not in (FORWARD, BACKWARD):
            raise AttestationError(
                f"direction must be 0 (forward) or 1 (backward), got {self.direction}"
            )
        if self.chain_id < 0 or self.job_id < 0:
            raise AttestationError("chain id and job id must be non-negative")
        for name in ("round", "stage", "step", "micro_batch"):
            value = getattr(self, name)
            if not 0 <= value < _U32:
                raise AttestationError(f"{name} {value} does not fit a uint32")


def _bytes32(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        text = value.removeprefix("0x")
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise AttestationError(f"{what} {value!r} is not hex") from None
    if len(value) != 32:
        raise AttestationError(f"{what} must be 32 bytes, got {len(value)}")
    return value


def _signature_bytes(signature: bytes | str) -> bytes:
    if isinstance(signature, str):
        try:
            signature = bytes.fromhex(signature.removeprefix("0x"))
        except ValueError:
            raise AttestationError("signature is not hex") from None
    if len(signature) != SIGNATURE_BYTES:
        raise AttestationError(f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}")
    return bytes(signature)


def payload_digest(ctx: PayloadContext, payload_hash: bytes | str) -> bytes:
    """keccak256(abi.encode(chainId, jobMarket, jobId, round, stage, step, microBatch,
    direction, payloadHash)): the 32 bytes the sender personal_signs."""
    return keccak(
        abi_encode(
            _DIGEST_TYPES,
            [
                ctx.chain_id,
                to_checksum_address(ctx.job_market),
                ctx.job_id,
                ctx.round,
                ctx.stage,
                ctx.step,
                ctx.micro_batch,
                ctx.direction,
                _bytes32(payload_hash, "payload hash"),
            ],
        )
    )


def sign_payload(private_key: bytes | str, ctx: PayloadContext, payload_hash: bytes | str) -> bytes:
    """The sender's 65-byte EIP-191 signature over `payload_digest(ctx, payload_hash)`."""
    message = encode_defunct(primitive=payload_digest(ctx, payload_hash))
    return bytes(Account.sign_message(message, private_key).signature)


def recover_signer(ctx: PayloadContext, payload_hash: bytes | str, signature: bytes | str) -> str:
    """The checksummed address whose key made `signature` over this payload."""
    sig = _signature_bytes(signature)
    if sig[64] not in (27, 28):
        # ecrecover in Solidity only takes 27/28; refusing others keeps both sides equal.
        raise AttestationError(f"signature v must be 27 or 28, got {sig[64]}")
    message = encode_defunct(primitive=payload_digest(ctx, payload_hash))
    try:
        return to_checksum_address(Account.recover_message(message, signature=sig))
    except Exception as exc:  # eth_keys raises several types for bad r/s
        raise AttestationError(f"signature does not recover: {exc}") from None


def verify_payload(
    ctx: PayloadContext,
    payload_hash: bytes | str,
    signature: bytes | str,
    expected_signer: str,
) -> None:
    """Raise AttestationError unless `expected_signer` signed this payload in this context."""
    signer = recover_signer(ctx, payload_hash, signature)
    if signer != to_checksum_address(expected_signer):
        want = to_checksum_address(expected_signer)
        raise AttestationError(
            f"payload for stage {ctx.stage} step {ctx.step} micro-batch {ctx.micro_batch} "
            f"direction {ctx.direction} is signed by {signer}, not {want}"
        )


def is_signed_by(
    ctx: PayloadContext, payload_hash: bytes | str, signature: bytes | str, signer: str
) -> bool:
    """True when `signer` made `signature` over this payload; False for any other outcome."""
    try:
        verify_payload(ctx, payload_hash, signature, signer)
    except AttestationError:
        return False
    return True


def attestation_hash(signature: bytes | str | None) -> str:
    """keccak256 of the 65-byte signature, as recorded in a leaf; zero hash for no sender."""
    if signature is None:
        return ZERO_ATTESTATION
    return "0x" + keccak(_signature_bytes(signature)).hex()
