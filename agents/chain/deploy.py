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
DEV_CHAIN_IDS = (1337, 31337)
#: Longest challenge window a job may set (JobTerms.MAX_CHALLENGE_WINDOW).
MAX_CHALLENGE_WINDOW = 30 * DAY
#: Committees drawn again after one fails its quorum (AuditCourt.MAX_REDRAWS).
MAX_REDRAWS = 1

#: Production-leaning defaults for a public chain; every key can be overridden.
DEFAULT_PARAMS: dict[str, Any] = {
    # StakeManager: longer than any dispute (response + every committee's commit and reveal
    # windows); checked by the AuditCourt constructor.
    "unbondingPeriod": 7 * DAY,
    # TesseraToken: whole supply minted to the deployer (the faucet works on dev chains only).
    "initialSupply": 10**9 * 10**18,
    # PrevrandaoRandomness: blocks between a round's seal and the block whose prevrandao seeds it.
    "randomnessDelay": 8,
    # JobMarket: share of minStake lost by a provider that misses a commit deadline (to the
    # job's validator pool) and the shortest challenge window a job may set.
    "livenessPenaltyBps": 1_000,
    "minChallengeWindow": 3_600,
    # ValidatorRegistry: least validator stake, and how long an exiting validator stays
    # slashable (covers a round sealed just before its exit: challenge window + dispute).
    "minValidatorStake": 1_000 * 10**18,
    "validatorExitDelay": MAX_CHALLENGE_WINDOW + 7 * DAY,
    # AuditCourt.
    "challengeBond": 100 * 10**18,
    "responseWindow": 1 * DAY,
    "commitVoteWindow": 1 * DAY,
    "revealWindow": 1 * DAY,
    "providerSlashBps": 5_000,
    "winnerRewardBps": 5_000,
    "committeeSize": 3,
    # Receiver of rounding dust and undecided penalties; None means the deployer.
    "treasury": None,
    # ModelShares metadata URI template (ERC-1155 `{id}` substitution).
    "sharesUri": "ipfs://tessera/models/{id}.json",
    # Who holds DEFAULT_ADMIN_ROLE after wiring: "renounce" (nobody), "timelock" (a
    # TimelockController whose delay exceeds the unbonding period), or "keep" (the deployer;
    # dev chains only, for tests that mint shares directly).
    "admin": "renounce",
}
# Wiring calls (two setCourt, three grantRole) and the admin hand-over after the deployments.
WIRING_GAS = 5 * 60_000 + 8 * 40_000

COURT_PARAM_KEYS = (
    "challengeBond",
    "responseWindow",
    "commitVoteWindow",
    "revealWindow",
    "providerSlashBps",
    "winnerRewardBps",
    "committeeSize",
)
ADMIN_MODES = ("renounce", "timelock", "keep")


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


def dispute_span(p: dict[str, Any]) -> int:
    """Longest time a dispute can take (AuditCourt.disputeSpan)."""
    return p["responseWindow"] + (MAX_REDRAWS + 1) * (p["commitVoteWindow"] + p["revealWindow"])


def resolve_params(params: dict[str, Any] | None, chain_id: int | None = None) -> dict[str, Any]:
    """DEFAULT_PARAMS overridden by `params`; an unknown key or an inconsistent set of windows
    is an error (one line), never ignored."""
    unknown = set(params or {}) - set(DEFAULT_PARAMS)
    if unknown:
        raise ChainError(f"unknown deployment parameters: {sorted(unknown)}")
    p = {**DEFAULT_PARAMS, **(params or {})}
    span = dispute_span(p)
    if span > p["unbondingPeriod"]:
        raise ChainError(
            f"unbondingPeriod {p['unbondingPeriod']} s is shorter than a dispute ({span} s: "
            "response + committees' commit and reveal windows)"
        )
    if p["validatorExitDelay"] < span:
        raise ChainError(f"validatorExitDelay {p['validatorExitDelay']} s < a dispute ({span} s)")
    if p["admin"] not in ADMIN_MODES:
        raise ChainError(f"admin must be one of {ADMIN_MODES}, got {p['admin']!r}")
    if p["admin"] == "keep" and chain_id is not None and chain_id not in DEV_CHAIN_IDS:
        raise ChainError(f"admin=keep is for dev chains only (chain {chain_id})")
    return p


def _constructor_args(p: dict[str, Any], me: str, addr: dict[str, str]) -> dict[str, tuple]:
    """Constructor arguments of each contract, given the addresses deployed before it."""
    token, stakes = addr.get("TesseraToken", me), addr.get("StakeManager", me)
    shares, market = addr.get("ModelShares", me), addr.get("JobMarket", me)
    rand, registry = addr.get("PrevrandaoRandomness", me), addr.get("ValidatorRegistry", me)
    court_params = tuple(p[f] for f in COURT_PARAM_KEYS)
    return {
        "TesseraToken": (me, p["initialSupply"]),
        "StakeManager": (token, p["unbondingPeriod"], me),
        "ModelShares": (token, me, p["sharesUri"]),
        "PrevrandaoRandomness": (p["randomnessDelay"],),
        "JobMarket": (
            token,
            stakes,
            shares,
            rand,
            p["livenessPenaltyBps"],
            p["minChallengeWindow"],
            me,
        ),
        "ValidatorRegistry": (stakes, p["minValidatorStake"], p["validatorExitDelay"], me),
        "AuditCourt": (token, stakes, market, registry, court_params, p["treasury"] or me),
    }


def estimate_deployment_gas(client, params: dict[str, Any] | None = None) -> int:
    """Gas of the deployments (estimated by the node) plus the wiring calls.

    Addresses not deployed yet are stood in for by the deployer's address: the
    calldata has the same size, so the estimate is the same. The AuditCourt's
    constructor reads other contracts, so it is counted from its bytecode size.
    """
    p = resolve_params(params, client.chain_id)
    total = WIRING_GAS
    for name, args in _constructor_args(p, client.address, {}).items():
        art = load_artifact(name)
        if name == "AuditCourt":
            total += 32_000 + 200 * (len(art.bytecode) // 2 - 2) + 300_000
            continue
        ctor = client.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args)
        total += ctor.estimate_gas({"from": client.address})
    for name, args in _transport_constructor_args(p, client.address, {}).items():
        art = load_artifact(name)
        ctor = client.w3.eth.contract(abi=art.abi, bytecode=art.bytecode).constructor(*args)
        total += ctor.estimate_gas({"from": client.address})
    return total


#: Contracts the JobMarket creates in its constructor, by the JobMarket getter of each address.
MARKET_CHILDREN = {"JobTerms": "terms", "RewardVault": "vault"}

#: Contracts whose DEFAULT_ADMIN_ROLE is handed over after wiring.
ADMINISTERED = ("StakeManager", "ModelShares", "JobMarket", "ValidatorRegistry")


def deploy_protocol(client, params: dict[str, Any] | None = None):
    """Deploy and wire every protocol contract, then hand the admin role over.

    After wiring nobody keeps an admin key by default: DEFAULT_ADMIN_ROLE is renounced on
    every contract (admin="renounce"), or granted to a TimelockController whose delay exceeds
    the unbonding period (admin="timelock", recorded as contracts["Timelock"]). On chains other
    than dev chains the token's ownership (its faucet) is renounced too.
    Returns the `Deployment` (not yet saved: the caller decides where).
    """
    from agents.chain.deployments import Deployment

    p = resolve_params(params, client.chain_id)
    me = client.address
    start_block = int(client.w3.eth.block_number)
    addr: dict[str, str] = {}
    for name in PROTOCOL_CONTRACTS:
        addr[name] = deploy_contract(client, name, *_constructor_args(p, me, addr)[name])
        if name == "JobMarket":  # it creates its terms-and-escrow and reward contracts
            for child, getter in MARKET_CHILDREN.items():
                addr[child] = Web3.to_checksum_address(
                    client.w3.eth.contract(address=addr[name], abi=load_artifact(name).abi)
                    .functions[getter]()
                    .call()
                )
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
    client.send("ValidatorRegistry", "setCourt", addr["AuditCourt"])
    client.send("StakeManager", "grantRole", protocol_role, addr["JobMarket"])
    client.send("StakeManager", "grantRole", protocol_role, addr["ValidatorRegistry"])
    client.send("ModelShares", "grantRole", minter_role, addr["RewardVault"])
    _hand_over_admin(client, p, addr)
    return client.deployment


def _hand_over_admin(client, p: dict[str, Any], addr: dict[str, str]) -> None:
    """Renounce (or move to a timelock) every admin role the deployer holds."""
    me = client.address
    if p["admin"] == "keep":
        return
    admin_role = b"\x00" * 32
    if p["admin"] == "timelock":
        delay = p["unbondingPeriod"] + 1
        timelock = deploy_contract(client, "Timelock", delay, [me], [me])
        addr["Timelock"] = timelock
        client.deployment.contracts["Timelock"] = timelock
        for name in ADMINISTERED:
            client.send(name, "grantRole", admin_role, timelock)
        # Prices of inference move only through the timelock too.
        client.send("InferencePayments", "transferOwnership", timelock)
    else:  # renounce: every model is served at the deployment's default price, for good
        client.send("InferencePayments", "renounceOwnership")
    for name in ADMINISTERED:
        client.send(name, "renounceRole", admin_role, me)
    if client.chain_id not in DEV_CHAIN_IDS:
        client.send("TesseraToken", "renounceOwnership")
