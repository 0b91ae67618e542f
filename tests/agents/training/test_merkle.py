"""The trace Merkle tree: hand-computed small trees, proofs for 1..1000 leaves, sampling."""

from __future__ import annotations

import random

import pytest
from eth_abi import encode
from eth_utils import keccak

from agents.lineage.documents import TraceLeaf
from agents.training.merkle import MerkleError, MerkleTree, merkle_root, verify_proof
from agents.training.traces import LEAF_HASH_FIELDS, leaf_hash, sample_leaves, trace_tree


def _h(i: int) -> bytes:
    return keccak(i.to_bytes(32, "big"))


def _node(i: int, h: bytes) -> bytes:
    return keccak(keccak(encode(["uint256", "bytes32"], [i, h])))


def _pair(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


def test_one_leaf_root_is_its_double_hashed_node_with_empty_proof():
    tree = MerkleTree([_h(0)])
    assert tree.root == _node(0, _h(0))
    assert tree.proof(0) == []
    assert verify_proof(tree.root, 0, _h(0), [])


def test_two_and_three_leaf_roots_match_hand_computed_keccak():
    n = [_node(i, _h(i)) for i in range(3)]
    assert merkle_root([_h(0), _h(1)]) == _pair(n[0], n[1])
    # The odd third node moves up unchanged and pairs at the next level.
    assert merkle_root([_h(i) for i in range(3)]) == _pair(_pair(n[0], n[1]), n[2])
    tree = MerkleTree([_h(i) for i in range(3)])
    assert tree.proof(2) == [_pair(n[0], n[1])]
    assert tree.proof(0) == [n[1], n[2]]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100, 255, 1000])
def test_every_proof_verifies_and_a_wrong_one_does_not(size):
    leaves = [_h(i) for i in range(size)]
    tree = MerkleTree(leaves)
    indices = range(size) if size <= 100 else random.Random(size).sample(range(size), 60)
    for i in indices:
        proof = tree.proof(i)
        assert len(proof) <= max(1, (size - 1).bit_length())
        assert verify_proof(tree.root_hex, i, "0x" + leaves[i].hex(), proof)
        # Same hash under another index, or another hash: rejected.
        assert not verify_proof(tree.root, (i + 1) % (size + 1), leaves[i], proof)
        assert not verify_proof(tree.root, i, _h(size + 5), proof)
        if proof:
            bad = list(proof)
            bad[0] = _h(99999)
            assert not verify_proof(tree.root, i, leaves[i], bad)


def test_bad_inputs_raise_merkle_error():
    with pytest.raises(MerkleError):
        MerkleTree([])
    with pytest.raises(MerkleError, match="32 bytes"):
        MerkleTree([b"short"])
    with pytest.raises(MerkleError, match="not in"):
        MerkleTree([_h(0)]).proof(1)


def _leaf(index: int, **kw) -> TraceLeaf:
    fields = dict.fromkeys(
        ("params_before", "input", "output", "grad_in", "grad_out", "params_after", "data_ref"),
        "0x" + "11" * 32,
    )
    fields.update(kw)
    return TraceLeaf(index=index, step=index // 2, micro_batch=index % 2, **fields)


def test_leaf_hash_is_keccak_of_abi_encoded_fields():
    # Leaf v2: 2 uint256 then 9 bytes32, in exactly this order (HELPERS.md, the contracts).
    leaf = _leaf(
        3,
        output="0x" + "ab" * 32,
        input_attestation="0x" + "cd" * 32,
        grad_in_attestation="0x" + "ef" * 32,
    )
    order = (
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
    expected = keccak(
        encode(
            ["uint256", "uint256"] + ["bytes32"] * 9,
            [1, 1] + [bytes.fromhex(getattr(leaf, f)[2:]) for f in order],
        )
    )
    assert leaf_hash(leaf) == expected
    assert leaf_hash(_leaf(3, output="0x" + "ab" * 32)) != expected


def test_leaf_hash_vector_shared_with_the_contracts():
    """A fixed vector: the Solidity leaf encoding must give the same bytes32."""
    leaf = TraceLeaf(
        index=5,
        step=2,
        micro_batch=1,
        **{f"{f}": "0x" + f"{i + 1:02x}" * 32 for i, f in enumerate(LEAF_HASH_FIELDS)},
    )
    assert (
        "0x" + leaf_hash(leaf).hex()
        == "0xfc9b77baf9f5ea68657296ab17628479c9c186be1d228c5a0828de85d8a098b5"
    )


def test_trace_tree_requires_leaves_in_index_order():
    assert trace_tree([_leaf(0), _leaf(1)]).root == merkle_root(
        [leaf_hash(_leaf(0)), leaf_hash(_leaf(1))]
    )
    with pytest.raises(MerkleError, match="index"):
        trace_tree([_leaf(1), _leaf(0)])


def test_sample_leaves_is_the_documented_keccak_draw():
    seed = keccak(b"round seed")
    got = sample_leaves(seed, 2, 3, 50)
    expected: list[int] = []
    j = 0
    while len(expected) < 3:
        d = keccak(encode(["bytes32", "uint256", "uint256"], [seed, 2, j]))
        v = int.from_bytes(d, "big") % 50
        if v not in expected:
            expected.append(v)
        j += 1
    assert got == sorted(expected)
    assert sample_leaves(seed, 3, 3, 50) != got  # the stage changes the draw
    assert sample_leaves(seed, 0, 10, 4) == [0, 1, 2, 3]
    assert sample_leaves(seed, 0, 0, 4) == []
    with pytest.raises(MerkleError):
        sample_leaves(b"short", 0, 1, 4)
