"""The deployments registry: `<chainId>.json`, one file per chain.

Public chains are recorded in the checkout's `deployments/` (committed, shared).
Local dev chains (chain id 31337/1337) come and go with `tessera up`, so their
file lives in the user's data directory (`$TESSERA_HOME`, default ~/.tessera,
under `deployments/`), never in the checkout. `$TESSERA_DEPLOYMENTS_DIR`
overrides both.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from agents.chain.artifacts import PROJECT_ROOT
from agents.chain.errors import DeploymentNotFound

DEPLOYMENTS_DIR = PROJECT_ROOT / "deployments"


@dataclass(frozen=True)
class Deployment:
    """Addresses of the protocol contracts on one chain."""

    chain_id: int
    block: int
    contracts: dict[str, str]
    deployer: str = ""
    params: dict = field(default_factory=dict)

    def address(self, name: str) -> str:
        """Address of contract `name`, or a clear error."""
        try:
            return self.contracts[name]
        except KeyError:
            raise DeploymentNotFound(
                f"deployment for chain {self.chain_id} has no contract {name}"
            ) from None

    def to_dict(self) -> dict:
        """The registry file's content."""
        return json.loads(self.to_json())

    @classmethod
    def from_dict(cls, data: dict) -> Deployment:
        """Parse the registry file's content."""
        return cls(
            chain_id=int(data["chainId"]),
            block=int(data["block"]),
            contracts=dict(data["contracts"]),
            deployer=data.get("deployer", ""),
            params=data.get("params", {}),
        )

    def to_json(self) -> str:
        """The registry file's text."""
        return json.dumps(
            {
                "chainId": self.chain_id,
                "block": self.block,
                "deployer": self.deployer,
                "contracts": self.contracts,
                "params": self.params,
            },
            indent=2,
            sort_keys=True,
        )


# Chain ids of local dev chains (anvil, hardhat): throwaway, per-user deployments.
DEV_CHAIN_IDS = frozenset({1337, 31337})


def tessera_home() -> Path:
    """The user's Tessera data directory: $TESSERA_HOME, else ~/.tessera."""
    env = os.environ.get("TESSERA_HOME", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".tessera"


def deployments_dir(chain_id: int | None = None) -> Path:
    """The registry folder for `chain_id` (see the module docstring)."""
    env = os.environ.get("TESSERA_DEPLOYMENTS_DIR")
    if env:
        return Path(env)
    if chain_id in DEV_CHAIN_IDS:
        return tessera_home() / "deployments"
    return DEPLOYMENTS_DIR


def deployment_path(chain_id: int, directory: Path | None = None) -> Path:
    """Where the registry file of `chain_id` lives."""
    return (directory or deployments_dir(chain_id)) / f"{chain_id}.json"


def load_deployment(chain_id: int, directory: Path | None = None) -> Deployment:
    """Read `deployments/<chainId>.json`; a clear error if there is none."""
    path = deployment_path(chain_id, directory)
    if not path.exists():
        raise DeploymentNotFound(
            f"no deployment for chain id {chain_id} ({path}); deploy first "
            "(`tessera up` locally, or `brownie run scripts/deploy.py --network ...`)"
        )
    try:
        return Deployment.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise DeploymentNotFound(f"{path} is not a valid deployments file: {exc}") from None


def save_deployment(deployment: Deployment, directory: Path | None = None) -> Path:
    """Write the registry file atomically."""
    path = deployment_path(deployment.chain_id, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(deployment.to_json() + "\n")
    tmp.replace(path)
    return path
