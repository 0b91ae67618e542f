"""Python trace trees (agents.training) verify in AuditCourt for 1 to 1,000 leaves."""

import pytest
from eth_utils import keccak

from agents.training.merkle import MerkleTree


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 175, 1000])
def test_python_proofs_verify_in_the_court(protocol, n):
    court = protocol.court
    leaves = [keccak(text=f"leaf/{n}/{i}") for i in range(n)]
    tree = MerkleTree(leaves)
    picks = sorted({0, n - 1, n // 2, n // 3, (7 * n) // 11})
    for i in picks:
        assert court.provesLeaf(tree.root, i, leaves[i], tree.proof(i))
        # The same proof with another index or another hash does not verify.
        assert not court.provesLeaf(tree.root, i, keccak(text="forged"), tree.proof(i))
        if n > 1:
            assert not court.provesLeaf(tree.root, (i + 1) % n, leaves[i], tree.proof(i))
