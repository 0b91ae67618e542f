"""TesseraToken: mint is owner-only; permit moves allowance by signature."""

import brownie
from eth_account import Account
from eth_account.messages import encode_typed_data


def test_owner_mints(token, owner, accounts):
    tx = token.mint(accounts[1], 10**18, {"from": owner})
    assert token.balanceOf(accounts[1]) == 10**18
    assert token.totalSupply() == 10**18
    assert tx.events["Transfer"]["to"] == accounts[1]


def test_non_owner_cannot_mint(token, accounts):
    with brownie.reverts():
        token.mint(accounts[2], 1, {"from": accounts[2]})
    assert token.totalSupply() == 0


def test_permit_sets_allowance_by_signature(token, owner, accounts, chain):
    signer = Account.create()
    spender = accounts[3]
    token.mint(signer.address, 500, {"from": owner})
    deadline = chain.time() + 3600
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": "Tessera",
            "version": "1",
            "chainId": chain.id,
            "verifyingContract": token.address,
        },
        "message": {
            "owner": signer.address,
            "spender": spender.address,
            "value": 200,
            "nonce": 0,
            "deadline": deadline,
        },
    }
    sig = Account.sign_message(encode_typed_data(full_message=typed), signer.key)
    token.permit(signer.address, spender, 200, deadline, sig.v, sig.r, sig.s, {"from": spender})
    assert token.allowance(signer.address, spender) == 200
    assert token.nonces(signer.address) == 1
    # The same signature cannot be replayed.
    with brownie.reverts():
        token.permit(signer.address, spender, 200, deadline, sig.v, sig.r, sig.s, {"from": spender})
