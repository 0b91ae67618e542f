"""Deploy the Tessera protocol contracts and record them in deployments/<chainId>.json.

    brownie run scripts/deploy.py --network <network>

On a development chain (anvil, chain id 1337/31337) the deployer is brownie's first unlocked
account; elsewhere it is the key in $TESSERA_DEPLOYER_KEY. The deploy logic is `deploy()`, which
the Python agents can call from any brownie-connected process (e.g. with windows of a few
seconds for the local demo).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]

DAY = 24 * 3600

#: Production-leaning defaults; every key can be overridden through `deploy(params=...)`.
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

DEV_CHAIN_IDS = (1337, 31337)


class DeployError(Exception):
    """A deployment parameter or environment problem (one line)."""


def resolve_params(params: dict | None) -> dict[str, Any]:
    """Merge `params` over DEFAULT_PARAMS; unknown keys are an error, not silently ignored."""
    merged = dict(DEFAULT_PARAMS)
    for key, value in (params or {}).items():
        if key not in DEFAULT_PARAMS:
            raise DeployError(f"unknown deploy parameter {key!r}")
        merged[key] = value
    return merged


def _containers() -> dict[str, Any]:
    """The brownie ContractContainers of the project (loading the project if needed)."""
    import brownie
    from brownie import project

    names = ("TesseraToken", "StakeManager", "ModelShares", "JobMarket", "AuditCourt")
    if all(hasattr(brownie, n) for n in names):
        return {n: getattr(brownie, n) for n in names}
    loaded = project.get_loaded_projects()
    proj = loaded[0] if loaded else project.load(PROJECT_ROOT, name="TesseraProject")
    return {n: getattr(proj, n) for n in names}


def deploy(deployer, params: dict | None = None, write: bool = True) -> dict:
    """Deploy and wire every contract from `deployer`; return the deployment record.

    The record is {"chainId", "block", "deployer", "contracts": {name: address}, "params"} and
    is written to deployments/<chainId>.json (or $TESSERA_DEPLOYMENTS_DIR) when `write` is set.
    """
    from brownie import chain

    p = resolve_params(params)
    c = _containers()
    tx = {"from": deployer}
    treasury = p["treasury"] or deployer.address

    token = c["TesseraToken"].deploy(deployer, tx)
    first_block = token.tx.block_number
    stakes = c["StakeManager"].deploy(token, p["unbondingPeriod"], deployer, tx)
    shares = c["ModelShares"].deploy(token, deployer, p["sharesUri"], tx)
    market = c["JobMarket"].deploy(token, stakes, shares, p["livenessPenaltyBps"], deployer, tx)
    court_params = tuple(p[k] for k in COURT_PARAM_KEYS)
    court = c["AuditCourt"].deploy(token, stakes, market, court_params, treasury, tx)

    market.setCourt(court, tx)
    shares.grantRole(shares.MINTER_ROLE(), market, tx)
    protocol_role = stakes.PROTOCOL_ROLE()
    stakes.grantRole(protocol_role, market, tx)
    stakes.grantRole(protocol_role, court, tx)

    record = {
        "chainId": chain.id,
        "block": first_block,
        "deployer": deployer.address,
        "contracts": {
            "TesseraToken": token.address,
            "StakeManager": stakes.address,
            "ModelShares": shares.address,
            "JobMarket": market.address,
            "AuditCourt": court.address,
        },
        "params": {**p, "treasury": treasury},
    }
    if write:
        write_record(record)
    return record


def write_record(record: dict) -> Path:
    """Write `record` to <deployments dir>/<chainId>.json and return the path."""
    directory = Path(os.environ.get("TESSERA_DEPLOYMENTS_DIR") or PROJECT_ROOT / "deployments")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{record['chainId']}.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def _deployer():
    """brownie's first account on a dev chain, else the key in $TESSERA_DEPLOYER_KEY."""
    from brownie import accounts, chain

    if chain.id in DEV_CHAIN_IDS and len(accounts) > 0:
        return accounts[0]
    key = os.environ.get("TESSERA_DEPLOYER_KEY")
    if not key:
        raise DeployError(f"chain {chain.id}: set TESSERA_DEPLOYER_KEY to the deployer's key")
    return accounts.add(key)


def main() -> None:
    """Entry point of `brownie run scripts/deploy.py`."""
    record = deploy(_deployer())
    for name, address in record["contracts"].items():
        print(f"{name:13} {address}")
    print(f"chain {record['chainId']} from block {record['block']}")
