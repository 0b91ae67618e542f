"""Deploying the protocol with web3.py from the brownie build artifacts.

Used by `tessera up`, the demo and the integration tests; the brownie script
`scripts/deploy.py` calls the same `deploy_protocol` so there is one deployment
procedure for every network.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3

from agents.chain.artifacts import load_artifact
from agents.chain.errors import ChainError


def deploy_contract(client, name: str, *args: Any) -> str:
    """Deploy contract `name` with constructor `args`; return its address."""
    art = load_artifact(name)
    if not art.bytecode:
        raise ChainError(f"{name} has no bytecode in the build (abstract contract or interface?)")
    factory = client.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    ctor = factory.constructor(*args)
    with client._lock:
        gas = ctor.estimate_gas({"from": client.address})
        tx = ctor.build_transaction(
            {
                "from": client.address,
                "nonce": client._next_nonce(),
                "chainId": client.chain_id,
                "gas": int(gas * 1.2) + 50_000,
            }
        )
        tx_hash = client.w3.eth.send_raw_transaction(
            client.account.sign_transaction(tx).raw_transaction
        )
    receipt = client.wait_receipt(tx_hash)
    if receipt["status"] != 1 or not receipt.get("contractAddress"):
        raise ChainError(f"deploying {name} failed in block {receipt['blockNumber']}")
    return Web3.to_checksum_address(receipt["contractAddress"])
