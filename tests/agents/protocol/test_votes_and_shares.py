"""Vote commitments and share arithmetic."""

import pytest
from eth_abi import encode
from eth_utils import keccak

from agents.protocol.shares import expected_claims, pro_rata
from agents.protocol.votes import vote_commitment, vote_salt

VOTER = "0x" + "ab" * 20


def test_salt_is_stable_per_key_and_dispute():
    key = b"\x01" * 32
    assert vote_salt(key, 7) == vote_salt(key, 7)
    assert vote_salt(key, 7) != vote_salt(key, 8)
    assert vote_salt(key, 7) != vote_salt(b"\x02" * 32, 7)


def test_commitment_matches_abi_encoding():
    salt = b"\x05" * 32
    want = keccak(encode(["uint256", "address", "bool", "bytes32"], [3, VOTER, True, salt]))
    assert vote_commitment(3, VOTER, True, salt) == want
    assert vote_commitment(3, VOTER, False, salt) != want


def test_pro_rata_and_expected_claims():
    assert pro_rata(100, 1, 3) == 33
    owed = expected_claims([(100, {"a": 1, "b": 3}), (50, {"a": 1, "b": 1})])
    assert owed == {"a": 25 + 25, "b": 75 + 25}
    with pytest.raises(ValueError):
        pro_rata(1, 0, 0)
