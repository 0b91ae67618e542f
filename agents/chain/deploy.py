"""Deploying the protocol with web3.py from the brownie build artifacts.

Used by `tessera up`, the demo and the integration tests; the brownie script
`scripts/deploy.py` calls the same `deploy_protocol` so there is one deployment
procedure for every network.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3

from agents.chain.artifacts import PROTOCOL_CONTRACTS, load_artifact
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


DAY = 24 * 3600

#: Production-leaning defaults for a public chain; every key can be overridden.
DEFAULT_PARAMS: dict[str, Any] = {
    # StakeManager: longer than any dispute (response + commit + reveal windows), so stake that
    # starts unbonding while a dispute is pending can still be slashed.
    "unbondingPeriod": 7 * DAY,
    # JobMarket: share of minStake lost by a provider that misses a commit deadline.
    "livenessPenaltyBps": 1_000,
    # AuditCourt.
    "challengeBond": 100 * 10**18,
    "responseWindow": 1 * DAY,
    "commitVoteWindow": 1 * DAY,
    "revealWindow": 1 * DAY,
    "providerSlashBps": 5_000,
    "winnerRewardBps": 5_000,
    "nonRevealPenalty": 10 * 10**18,
    "minValidatorStake": 1_000 * 10**18,
    "committeeSize": 3,
    # Receiver of rounding dust and undecided penalties; None means the deployer.
    "treasury": None,
    # ModelShares metadata URI template (ERC-1155 `{id}` substitution).
    "sharesUri": "ipfs://tessera/models/{id}.json",
}
# Wiring calls (setCourt, three grantRole) after the five deployments.
WIRING_GAS = 4 * 60_000

COURT_PARAM_KEYS = (
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


# --- transport issue: provider endpoints and pay-before-serve (kept apart for easy merges) ---
TRANSPORT_CONTRACTS = ("ProviderDirectory", "InferencePayments")
DEFAULT_PARAMS.update(
    {
        # InferencePayments: TSR wei per generated token for models without their own price.
        "inferencePricePerToken": 10**16,
    }
)


def _transport_constructor_args(p: dict[str, Any], me: str, addr: dict[str, str]) -> dict:
    """Constructor arguments of the transport contracts (after the protocol ones)."""
    token, shares = addr.get("TesseraToken", me), addr.get("ModelShares", me)
    return {
        "ProviderDirectory": (),
        "InferencePayments": (token, shares, p["inferencePricePerToken"], me),
    }


def deploy_transport(client, p: dict[str, Any], addr: dict[str, str]) -> None:
    """Deploy ProviderDirectory and InferencePayments into `addr` (no wiring needed)."""
    for name in TRANSPORT_CONTRACTS:
        args = _transport_constructor_args(p, client.address, addr)[name]
        addr[name] = deploy_contract(client, name, *args)


# --- end of the transport block ---


def resolve_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """DEFAULT_PARAMS overridden by `params`; an unknown key is an error, never ignored."""
    unknown = set(params or {}) - set(DEFAULT_PARAMS)
    if unknown:
        raise ChainError(f"unknown deployment parameters: {sorted(unknown)}")
    return {**DEFAULT_PARAMS, **(params or {})}


def _constructor_args(p: dict[str, Any], me: str, addr: dict[str, str]) -> dict[str, tuple]:
    """Constructor arguments of each contract, given the addresses deployed before it."""
    token, stakes = addr.get("TesseraToken", me), addr.get("StakeManager", me)
    shares, market = addr.get("ModelShares", me), addr.get("JobMarket", me)
    court_params = tuple(p[f] for f in COURT_PARAM_KEYS)
    return {
        "TesseraToken": (me,),
        "StakeManager": (token, p["unbondingPeriod"], me),
        "ModelShares": (token, me, p["sharesUri"]),
        "JobMarket": (token, stakes, shares, p["livenessPenaltyBps"], me),
        "AuditCourt": (token, stakes, market, court_params, p["treasury"] or me),
    }


def estimate_deployment_gas(client, params: dict[str, Any] | None = None) -> int:
    """Gas of the five deployments (estimated by the node) plus the wiring calls.

    Addresses not deployed yet are stood in for by the deployer's address: the
    calldata has the same size, so the estimate is the same.
    """
    p = resolve_params(params)
    total = WIRING_GAS
    for name, args in _constructor_args(p, client.address, {}).items():
        art = load_artifact(name)
        ctor = client.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args)
        total += ctor.estimate_gas({"from": client.address})
    for name, args in _transport_constructor_args(p, client.address, {}).items():
        art = load_artifact(name)
        ctor = client.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args)
        total += ctor.estimate_gas({"from": client.address})
    return total


def deploy_protocol(client, params: dict[str, Any] | None = None):
    """Deploy and wire TesseraToken, StakeManager, ModelShares, JobMarket, AuditCourt.

    Returns the `Deployment` (not yet saved: the caller decides where).
    """
    from agents.chain.deployments import Deployment

    p = resolve_params(params)
    me = client.address
    start_block = int(client.w3.eth.block_number)
    addr: dict[str, str] = {}
    for name in PROTOCOL_CONTRACTS:
        addr[name] = deploy_contract(client, name, *_constructor_args(p, me, addr)[name])
    deploy_transport(client, p, addr)
    client.deployment = Deployment(
        chain_id=client.chain_id,
        block=start_block,
        contracts=addr,
        deployer=me,
        params={**p, "treasury": p["treasury"] or me},
    )
    protocol_role = client.call("StakeManager", "PROTOCOL_ROLE")
    minter_role = client.call("ModelShares", "MINTER_ROLE")
    client.send("JobMarket", "setCourt", addr["AuditCourt"])
    client.send("StakeManager", "grantRole", protocol_role, addr["JobMarket"])
    client.send("StakeManager", "grantRole", protocol_role, addr["AuditCourt"])
    client.send("ModelShares", "grantRole", minter_role, addr["JobMarket"])
    return client.deployment
