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


DEFAULT_PARAMS: dict[str, Any] = {
    # StakeManager
    "unbondingPeriod": 7 * 24 * 3600,
    # JobMarket
    "livenessPenaltyBps": 1000,
    # AuditCourt (CourtParams)
    "challengeBond": 50 * 10**18,
    "responseWindow": 3600,
    "commitVoteWindow": 3600,
    "revealWindow": 3600,
    "providerSlashBps": 10_000,
    "winnerRewardBps": 5000,
    "nonRevealPenalty": 5 * 10**18,
    "minValidatorStake": 100 * 10**18,
    "committeeSize": 3,
    # ModelShares
    "sharesURI": "ipfs://{id}",
}

_COURT_FIELDS = (
    "challengeBond",
    "responseWindow",
    "commitVoteWindow",
    "revealWindow",
    "providerSlashBps",
    "winnerRewardBps",
    "nonRevealPenalty",
    "minValidatorStake",
    "committeeSize",
)


def deploy_protocol(client, params: dict[str, Any] | None = None):
    """Deploy and wire TesseraToken, StakeManager, ModelShares, JobMarket, AuditCourt.

    Returns the `Deployment` (not yet saved: the caller decides where).
    """
    from agents.chain.deployments import Deployment

    p = {**DEFAULT_PARAMS, **(params or {})}
    unknown = set(p) - set(DEFAULT_PARAMS)
    if unknown:
        raise ChainError(f"unknown deployment parameters: {sorted(unknown)}")
    me = client.address
    start_block = int(client.w3.eth.block_number)
    token = deploy_contract(client, "TesseraToken", me)
    stakes = deploy_contract(client, "StakeManager", token, p["unbondingPeriod"], me)
    shares = deploy_contract(client, "ModelShares", token, me, p["sharesURI"])
    market = deploy_contract(
        client, "JobMarket", token, stakes, shares, p["livenessPenaltyBps"], me
    )
    court_params = tuple(p[f] for f in _COURT_FIELDS)
    court = deploy_contract(client, "AuditCourt", token, stakes, market, court_params, me)
    client.deployment = Deployment(
        chain_id=client.chain_id,
        block=start_block,
        contracts={
            "TesseraToken": token,
            "StakeManager": stakes,
            "ModelShares": shares,
            "JobMarket": market,
            "AuditCourt": court,
        },
        deployer=me,
        params={k: (str(v) if isinstance(v, int) and v > 2**53 else v) for k, v in p.items()},
    )
    protocol_role = client.call("StakeManager", "PROTOCOL_ROLE")
    minter_role = client.call("ModelShares", "MINTER_ROLE")
    client.send("JobMarket", "setCourt", court)
    client.send("StakeManager", "grantRole", protocol_role, market)
    client.send("StakeManager", "grantRole", protocol_role, court)
    client.send("ModelShares", "grantRole", minter_role, market)
    return client.deployment
