"""Deploy the Tessera protocol contracts and record them in deployments/<chainId>.json.

    python scripts/deploy.py --rpc URL [--keystore FILE] [--param name=value ...] [--force] [--yes]
    brownie run scripts/deploy.py --network <network>

Both go through `agents.chain.deploy.deploy_protocol` (web3, from the brownie build). The key
comes from $TESSERA_PRIVATE_KEY or an encrypted keystore, never from a file in the repo; on a
brownie dev network its first unlocked account deploys. `deploy()` below is the same wiring
through brownie ContractContainers, which the contract tests use to get brownie objects.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]

DEV_CHAIN_IDS = (1337, 31337)


class DeployError(Exception):
    """A deployment parameter or environment problem (one line)."""


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

    from agents.chain.deploy import COURT_PARAM_KEYS, resolve_params

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


def _parse_param(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise DeployError(f"--param takes name=value, got {text!r}")
    try:
        return key, int(value)
    except ValueError:
        return key, value


def deploy_cli(argv: list[str] | None = None) -> int:
    """`python scripts/deploy.py --rpc URL`: deploy with web3 from a key in the environment.

    Estimates and prints the gas and cost first, asks before sending (unless
    --yes), and refuses a chain that already has deployments/<chainId>.json
    unless --force. Returns the exit status.
    """
    import argparse

    from agents.chain.client import ChainClient
    from agents.chain.deploy import deploy_protocol, estimate_deployment_gas
    from agents.chain.deployments import deployment_path, save_deployment
    from agents.chain.keys import load_account
    from agents.errors import TesseraError

    ap = argparse.ArgumentParser(prog="scripts/deploy.py", description=__doc__.splitlines()[0])
    ap.add_argument("--rpc", default=os.environ.get("TESSERA_RPC"), help="JSON-RPC URL")
    ap.add_argument(
        "--keystore", help="encrypted keystore (password in $TESSERA_KEYSTORE_PASSWORD)"
    )
    ap.add_argument("--param", action="append", default=[], help="override: name=value")
    ap.add_argument("--force", action="store_true", help="deploy again over an existing registry")
    ap.add_argument("--yes", action="store_true", help="do not ask before sending")
    args = ap.parse_args(argv)
    try:
        if not args.rpc:
            raise DeployError("no RPC: pass --rpc URL or set $TESSERA_RPC")
        params = dict(_parse_param(t) for t in args.param)
        client = ChainClient(args.rpc, load_account(keystore=args.keystore))
        path = deployment_path(client.chain_id)
        if path.exists() and not args.force:
            raise DeployError(
                f"chain {client.chain_id} already has a deployment ({path}); "
                "pass --force to deploy a new one over it"
            )
        gas = estimate_deployment_gas(client, params)
        price = int(client.w3.eth.gas_price)
        balance = int(client.w3.eth.get_balance(client.address))
        print(f"chain {client.chain_id}, deployer {client.address}")
        print(
            f"estimated gas {gas:,} at {price / 1e9:.3g} gwei = {gas * price / 1e18:.6f} ETH "
            f"(balance {balance / 1e18:.6f} ETH)"
        )
        if gas * price > balance:
            raise DeployError("the deployer cannot pay for the deployment")
        if not args.yes and input("deploy? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing sent")
            return 1
        dep = deploy_protocol(client, params)
        written = save_deployment(dep)
        for name, address in sorted(dep.contracts.items()):
            print(f"{name:13} {address}")
        print(f"registry written to {written}")
        return 0
    except (DeployError, TesseraError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main() -> None:
    """Entry point of `brownie run scripts/deploy.py --network ID` (same path as --rpc)."""
    from brownie import accounts, chain, network

    argv = ["--rpc", network.web3.provider.endpoint_uri, "--yes"]
    if chain.id in DEV_CHAIN_IDS and len(accounts) > 0 and "TESSERA_PRIVATE_KEY" not in os.environ:
        os.environ["TESSERA_PRIVATE_KEY"] = accounts[0].private_key  # anvil's dev key
    if deploy_cli(argv):
        raise SystemExit(1)


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_ROOT))
    sys.exit(deploy_cli())
