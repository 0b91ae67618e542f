"""Deploy the Tessera protocol contracts and record them in deployments/<chainId>.json.

    python scripts/deploy.py --rpc URL [--keystore FILE] [--param name=value ...] [--force] [--yes]
    brownie run scripts/deploy.py --network <network>

Both go through `agents.chain.deploy.deploy_protocol` (web3, from the brownie build). The key
comes from $TESSERA_PRIVATE_KEY or an encrypted keystore, never from a file in the repo; on a
brownie dev network its first unlocked account deploys. `deploy()` below is the same wiring
through brownie ContractContainers, which the contract tests use to get brownie objects.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

DEV_CHAIN_IDS = (1337, 31337)


class DeployError(Exception):
    """A deployment parameter or environment problem (one line)."""


def deploy(deployer, params: dict | None = None, write: bool = True) -> dict:
    """Deploy and wire every contract from a brownie account; return the deployment record.

    The same `agents.chain.deploy.deploy_protocol` as every other path, sent with the
    account's key over brownie's current connection. The record is {"chainId", "block",
    "deployer", "contracts", "params"}; it is written to deployments/<chainId>.json (or
    $TESSERA_DEPLOYMENTS_DIR) when `write` is set.
    """
    from brownie import chain, network

    from agents.chain.client import ChainClient
    from agents.chain.deploy import deploy_protocol
    from agents.chain.deployments import Deployment, save_deployment

    client = ChainClient(
        network.web3.provider.endpoint_uri,
        _signer(deployer, chain.id),
        deployment=Deployment(0, 0, {}),
    )
    dep = deploy_protocol(client, params)
    if write:
        save_deployment(dep)
    return dep.to_dict()


def _signer(account, chain_id: int):
    """The eth-account signer of a brownie account (a dev chain's unlocked ones by address)."""
    from eth_account import Account

    from agents.chain.keys import dev_account

    key = getattr(account, "private_key", None)
    if key:
        return Account.from_key(key)
    if chain_id in DEV_CHAIN_IDS:
        for i in range(64):
            candidate = dev_account(i, chain_id)
            if candidate.address == account.address:
                return candidate
    raise DeployError(f"no key for {account.address}: load it into brownie or use --rpc")


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
        key = bytes(_signer(accounts[0], chain.id).key).hex()
        os.environ["TESSERA_PRIVATE_KEY"] = "0x" + key  # anvil's well-known dev key
    if chain.id in DEV_CHAIN_IDS:
        argv.append("--force")  # a dev chain starts empty: its old registry is stale
    if deploy_cli(argv):
        raise SystemExit(1)


if __name__ == "__main__":
    sys.path.insert(0, str(PROJECT_ROOT))
    sys.exit(deploy_cli())
