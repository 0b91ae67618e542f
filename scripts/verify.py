"""Verify the deployed contracts' source on a block explorer.

    python scripts/verify.py --chain-id 11155111 [--write-only] [--network sepolia]

For every contract in deployments/<chainId>.json it builds the exact solc standard-JSON input
from the brownie build (compiler, optimizer, EVM version, OpenZeppelin sources) and the
ABI-encoded constructor arguments (from the registry's parameters). With $ETHERSCAN_TOKEN and
a brownie network id it publishes through brownie's `publish_source`; with --write-only it
writes build/verify/<Contract>.json and prints the arguments to paste into the explorer's
"Verify & Publish → Solidity (Standard-Json-Input)" form.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def constructor_args(dep) -> dict[str, str]:
    """Hex ABI-encoded constructor arguments of each deployed contract."""
    from eth_abi import encode

    from agents.chain.artifacts import load_artifact
    from agents.chain.deploy import _constructor_args, resolve_params

    params = {k: v for k, v in dep.params.items() if k in resolve_params(None)}
    args = _constructor_args(resolve_params(params), dep.deployer, dep.contracts)
    out = {}
    for name, values in args.items():
        ctor = next(i for i in load_artifact(name).abi if i["type"] == "constructor")
        types = [_abi_type(i) for i in ctor["inputs"]]
        out[name] = encode(types, list(values)).hex()
    return out


def _abi_type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + param["type"][5:]
    return param["type"]


def main(argv: list[str] | None = None) -> int:
    """Write or publish the verification inputs; returns the exit status."""
    ap = argparse.ArgumentParser(prog="scripts/verify.py")
    ap.add_argument("--chain-id", type=int, required=True)
    ap.add_argument("--network", help="brownie network id, to publish through its explorer")
    ap.add_argument("--write-only", action="store_true", help="write the inputs, publish nothing")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from brownie import project

    from agents.chain.deployments import load_deployment
    from agents.errors import TesseraError

    try:
        dep = load_deployment(args.chain_id)
    except TesseraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    proj = project.load(ROOT, name="TesseraVerify")
    encoded = constructor_args(dep)
    publish = not args.write_only
    if publish and not (os.environ.get("ETHERSCAN_TOKEN") and args.network):
        print("error: publishing needs $ETHERSCAN_TOKEN and --network (or use --write-only)")
        return 1
    if publish:
        from brownie import network

        network.connect(args.network)
    out_dir = ROOT / "build" / "verify"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, address in sorted(dep.contracts.items()):
        container = getattr(proj, name)
        info = container.get_verification_info()
        if publish:
            ok = container.publish_source(container.at(address))
            print(f"{name:13} {address} {'verified' if ok else 'FAILED'}")
            continue
        path = out_dir / f"{name}.json"
        path.write_text(json.dumps(info["standard_json_input"], indent=1))
        print(f"{name:13} {address} {info['compiler_version']} -> {path}")
        print(f"{'':13} constructor arguments: {encoded[name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
