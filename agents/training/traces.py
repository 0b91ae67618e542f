"""Step-trace leaves: their on-chain hash, the round's tree, and audit sampling.

Conventions a validator relies on (the worker records leaves this way):

- index = step * micro_batches + micro_batch, `step` counted within the round.
- params_before / params_after: `state_hash` of the whole stage state
  (parameters and AdamW state) at the start / end of the
  step; the same for every micro-batch of a step.
- input: stage 0 -> tensor hash of the int64 token ids; other stages -> hash
  of the payload received, as sent by the stage before.
- output: the payload sent to the next stage; on the last stage the tensor
  hash of the micro-batch's mean loss (float32 scalar).
- grad_in: the payload received from the next stage; on the last stage the
  tensor hash of the loss-gradient seed, the float32 scalar 1/micro_batches.
- grad_out: the gradient payload sent to the stage before; stage 0 -> zero hash.
- data_ref: stage 0 and the last stage -> `data.window_ref` of the micro-batch's
  windows (shard CIDs, offsets and token bytes); middle stages -> zero hash.
- input_attestation / grad_in_attestation (leaf v2): keccak256 of the 65-byte
  signature the SENDING stage's provider made over the payload received
  (`agents.protocol.attestation`); zero hash where there is no sender (stage
  0's input, the last stage's gradient seed). The receiver records them, so
  a boundary mismatch names whoever signed the wrong payload.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode as abi_encode

from agents.lineage.documents import TraceLeaf
from agents.training.merkle import MerkleError, MerkleTree, keccak, to_bytes32

LEAF_HASH_FIELDS = (
    "params_before",
    "input",
    "output",
    "grad_in",
    "grad_out",
    "params_after",
    "data_ref",
    "input_attestation",
    "grad_in_attestation",
)
# Fields a replay recomputes (the attestations are signatures it cannot remake).
REPLAY_FIELDS = LEAF_HASH_FIELDS[:7]


def leaf_hash(leaf: TraceLeaf) -> bytes:
    """Leaf v2: keccak256(abi.encode(uint256 step, uint256 microBatch, bytes32 paramsBefore,
    bytes32 input, bytes32 output, bytes32 gradIn, bytes32 gradOut, bytes32 paramsAfter,
    bytes32 dataRef, bytes32 inputAttestation, bytes32 gradInAttestation)) — the leafHash
    the contracts recompute."""
    # Every field is a static 32-byte word, so abi.encode is their concatenation (the
    # generic encoder was ~80% of hashing a 4000-leaf round; test_merkle pins the bytes).
    head = leaf.step.to_bytes(32, "big") + leaf.micro_batch.to_bytes(32, "big")
    fields = [getattr(leaf, f) for f in LEAF_HASH_FIELDS]
    if all(isinstance(f, str) and len(f) == 66 and f[:2] == "0x" for f in fields):
        # One hex decode for the nine words (the per-word path was most of a tree build).
        try:
            return keccak(head + bytes.fromhex("".join(f[2:] for f in fields)))
        except ValueError:
            pass  # not hex: to_bytes32 below names the bad word
    return keccak(head + b"".join(to_bytes32(f) for f in fields))


def leaf_struct(leaf: TraceLeaf) -> tuple:
    """The leaf as the contracts' `TraceLeaf` struct (AuditCourt.proveFault's argument)."""
    return (leaf.step, leaf.micro_batch, *(to_bytes32(getattr(leaf, f)) for f in LEAF_HASH_FIELDS))


def trace_tree(leaves: Sequence[TraceLeaf]) -> MerkleTree:
    """The round's Merkle tree; leaves must be given with indices 0..n-1 in order."""
    for i, leaf in enumerate(leaves):
        if leaf.index != i:
            raise MerkleError(f"leaf at position {i} has index {leaf.index}")
    return MerkleTree([leaf_hash(leaf) for leaf in leaves])


def sample_leaves(seed: bytes, stage: int, k: int, num_leaves: int) -> list[int]:
    """The leaf indices a validator audits: sorted, unique, at most k.

    index_j = uint256(keccak256(abi.encode(bytes32 seed, uint256 stage, uint256 j))) % num_leaves
    for j = 0, 1, ..., skipping indices already drawn, until min(k, num_leaves)
    are drawn or j reaches 4 * k + 16 (the bound keeps the cost fixed; with
    k <= num_leaves / 2 it is almost never reached). k >= num_leaves -> all leaves.
    """
    if num_leaves < 1:
        raise MerkleError(f"num_leaves must be positive, got {num_leaves}")
    if k < 0:
        raise MerkleError(f"k must be non-negative, got {k}")
    seed = to_bytes32(seed)
    if k >= num_leaves:
        return list(range(num_leaves))
    chosen: set[int] = set()
    for j in range(4 * k + 16):
        if len(chosen) == k:
            break
        digest = keccak(abi_encode(["bytes32", "uint256", "uint256"], [seed, stage, j]))
        chosen.add(int.from_bytes(digest, "big") % num_leaves)
    return sorted(chosen)


def validator_sample(seed: bytes, stage: int, validator: str, k: int, num_leaves: int) -> list[int]:
    """The leaf indices ONE validator audits: its own draw, so coverage grows with validators.

    index_j = uint256(keccak256(abi.encode(bytes32 seed, address validator, uint256 stage,
    uint256 j))) % num_leaves, for j = 0, 1, ... as in `sample_leaves` (sorted, unique,
    at most k; k >= num_leaves -> all leaves). Anyone can recompute any validator's draw,
    so a provider publishes one bundle covering every registered validator's sample.
    """
    from eth_utils import to_checksum_address

    if num_leaves < 1:
        raise MerkleError(f"num_leaves must be positive, got {num_leaves}")
    if k < 0:
        raise MerkleError(f"k must be non-negative, got {k}")
    if k >= num_leaves:
        return list(range(num_leaves))
    seed = to_bytes32(seed)
    who = to_checksum_address(validator)
    chosen: set[int] = set()
    for j in range(4 * k + 16):
        if len(chosen) == k:
            break
        digest = keccak(
            abi_encode(["bytes32", "address", "uint256", "uint256"], [seed, who, stage, j])
        )
        chosen.add(int.from_bytes(digest, "big") % num_leaves)
    return sorted(chosen)


def union_sample(
    seed: bytes, stage: int, validators: Sequence[str], k: int, num_leaves: int
) -> list[int]:
    """Every leaf some validator in `validators` samples: what a provider's bundle covers."""
    out: set[int] = set()
    for v in validators:
        out.update(validator_sample(seed, stage, v, k, num_leaves))
    return sorted(out)
