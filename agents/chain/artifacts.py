"""Contract ABIs and bytecode from the brownie build, and custom-error decoding.

The brownie build (`build/contracts/<Name>.json`) is the single source of ABIs;
every custom error of every Tessera contract is indexed by selector so a revert
is reported as `ErrorName(arg=value, ...)` instead of raw hex.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from eth_abi import decode as abi_decode
from eth_utils import keccak

from agents.chain.errors import ChainError

#: Deployment order: each contract's constructor takes addresses of the ones before it.
PROTOCOL_CONTRACTS = (
    "TesseraToken",
    "StakeManager",
    "ModelShares",
    "PrevrandaoRandomness",
    "JobMarket",
    "ValidatorRegistry",
    "AuditCourt",
)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = PROJECT_ROOT / "build" / "contracts"


@dataclass(frozen=True)
class Artifact:
    """ABI and creation bytecode of one compiled contract."""

    name: str
    abi: list[dict]
    bytecode: str


def _type_string(param: dict) -> str:
    """Canonical ABI type of a parameter (tuples expanded)."""
    t = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(_type_string(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


@cache
def load_artifact(name: str, build_dir: Path = BUILD_DIR) -> Artifact:
    """Load one contract's artifact from the brownie build folder."""
    path = build_dir / f"{name}.json"
    if not path.exists():
        raise ChainError(f"no build artifact {path}: run `make compile` (brownie compile)")
    data = json.loads(path.read_text())
    bytecode = data.get("bytecode") or ""
    return Artifact(name=name, abi=data["abi"], bytecode=bytecode)


@cache
def error_index(build_dir: Path = BUILD_DIR) -> dict[bytes, tuple[str, list[dict]]]:
    """Selector -> (error name, inputs) over every artifact in the build."""
    index: dict[bytes, tuple[str, list[dict]]] = {}
    if not build_dir.exists():
        return index
    for path in sorted(build_dir.glob("*.json")):
        try:
            abi = json.loads(path.read_text()).get("abi", [])
        except (OSError, ValueError):
            continue
        for item in abi:
            if item.get("type") != "error":
                continue
            sig = f"{item['name']}({','.join(_type_string(i) for i in item['inputs'])})"
            index[keccak(text=sig)[:4]] = (item["name"], item["inputs"])
    # Solidity's built-in Error(string) and Panic(uint256).
    index[keccak(text="Error(string)")[:4]] = ("Error", [{"name": "reason", "type": "string"}])
    index[keccak(text="Panic(uint256)")[:4]] = ("Panic", [{"name": "code", "type": "uint256"}])
    return index


def _fmt(value: object) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def decode_revert(data: bytes | str | None) -> tuple[str, str | None, dict]:
    """Decode revert data into (one-line message, error name, args)."""
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x")) if data else b""
    if not data:
        return "reverted without a reason", None, {}
    if len(data) < 4:
        return f"reverted with data 0x{data.hex()}", None, {}
    entry = error_index().get(data[:4])
    if entry is None:
        return f"reverted with unknown error 0x{data[:4].hex()}", None, {}
    name, inputs = entry
    try:
        values = abi_decode([_type_string(i) for i in inputs], data[4:])
    except Exception:  # malformed payload: still name the error
        return f"reverted: {name}(<undecodable>)", name, {}
    args = {
        (i.get("name") or f"arg{n}"): v for n, (i, v) in enumerate(zip(inputs, values, strict=True))
    }
    if name == "Error":
        return f"reverted: {values[0]}", name, args
    shown = ", ".join(f"{k}={_fmt(v)}" for k, v in args.items())
    return f"reverted: {name}({shown})", name, args
