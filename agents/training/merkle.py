"""The Merkle tree of a round's trace leaves, as OpenZeppelin's MerkleProof checks it.

- A leaf is identified by (uint256 leafIndex, bytes32 leafHash); its tree node
  is keccak256(keccak256(abi.encode(leafIndex, leafHash))) (OZ's double hash,
  so no inner node can pass for a leaf).
- An inner node is keccak256 of its two children in sorted order (OZ's
  commutative hash), so a proof is just the list of siblings.
- Shape: nodes in index order, paired left to right level by level; an odd
  node at the end of a level moves up unchanged. One leaf: root = its node,
  proof = [].

`MerkleProof.verify(proof, root, node)` accepts every proof `MerkleTree.proof`
makes; `verify_proof` is the same check in Python.
"""

from __future__ import annotations

from collections.abc import Sequence

try:  # safe-pysha3 (a dependency): ~1.6 us a hash, against ~16 us for eth_utils.keccak
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        """keccak256 of `data` (Ethereum's, not NIST SHA3)."""
        return _keccak_256(data).digest()

except ImportError:  # pragma: no cover - eth_utils' pure fallback, same digests
    from eth_utils import keccak

from agents.training.errors import TrainingError


class MerkleError(TrainingError):
    """A leaf list, index or hash the tree cannot take."""


def to_bytes32(value: bytes | str) -> bytes:
    """A bytes32 from raw bytes or 0x hex, or MerkleError."""
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value.removeprefix("0x"))
        except ValueError:
            raise MerkleError(f"not hex: {value!r}") from None
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise MerkleError(f"expected 32 bytes, got {value!r}")
    return bytes(value)


def leaf_node(index: int, leaf_hash: bytes | str) -> bytes:
    """The tree node of leaf `index`: keccak256(keccak256(abi.encode(index, leafHash)))."""
    if index < 0:
        raise MerkleError(f"leaf index must be non-negative, got {index}")
    # abi.encode of two static words is their 32-byte big-endian concatenation (written
    # out: eth_abi's encoder was most of the cost of hashing a round's tree).
    return keccak(keccak(index.to_bytes(32, "big") + to_bytes32(leaf_hash)))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OZ's commutative keccak256 of two nodes (smaller first)."""
    return keccak(a + b) if a <= b else keccak(b + a)


class MerkleTree:
    """A Merkle tree over leaf hashes given in leaf-index order (index i = position i)."""

    def __init__(self, leaves: Sequence[bytes | str]) -> None:
        if not leaves:
            raise MerkleError("a Merkle tree needs at least one leaf")
        level = [leaf_node(i, h) for i, h in enumerate(leaves)]
        self.levels: list[list[bytes]] = [level]
        while len(level) > 1:
            nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.levels.append(nxt)
            level = nxt

    @property
    def root(self) -> bytes:
        """The 32-byte root."""
        return self.levels[-1][0]

    @property
    def root_hex(self) -> str:
        """The root as 0x hex, as committed on chain."""
        return "0x" + self.root.hex()

    def __len__(self) -> int:
        return len(self.levels[0])

    def proof(self, index: int) -> list[bytes]:
        """Sibling nodes from leaf `index` up to the root."""
        if not 0 <= index < len(self):
            raise MerkleError(f"leaf index {index} is not in 0..{len(self) - 1}")
        out = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                out.append(level[sibling])
            index //= 2
        return out


def merkle_root(leaf_hashes_by_index: Sequence[bytes | str]) -> bytes:
    """Root of the tree over these leaf hashes (index i = position i)."""
    return MerkleTree(leaf_hashes_by_index).root


def verify_proof(
    root: bytes | str, index: int, leaf_hash: bytes | str, proof: Sequence[bytes | str]
) -> bool:
    """True if `proof` shows leaf (index, leaf_hash) is in the tree with `root` (OZ's check)."""
    node = leaf_node(index, leaf_hash)
    for sibling in proof:
        node = hash_pair(node, to_bytes32(sibling))
    return node == to_bytes32(root)
