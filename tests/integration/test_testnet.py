"""Tessera against a chain that plays a public testnet.

anvil runs with Sepolia's chain id and 1 s blocks; the protocol is deployed by
`scripts/deploy.py --rpc URL` with a key from the environment and found by the
agents through the deployments file alone; every participant is a fresh key
(no dev account, no dev shortcut); agents act on events 1 block deep; and the
RPC they all talk to fails every third request.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from flaky_rpc import flaky_rpc
from integration_helpers import job_running, terms, tiny_spec

from agents.chain.deployments import load_deployment
from agents.chain.local import LocalChain
from agents.chain.protocol import JobStatus
from agents.roles.localnet import FAST_PARAMS, LocalNet, drive

SEPOLIA = 11155111
ROOT = Path(__file__).resolve().parents[2]
# anvil's first prefunded key, used here only as "the deployer's key in the environment".
Account.enable_unaudited_hdwallet_features()
DEPLOYER = Account.from_mnemonic(
    "test test test test test test test test test test test junk", account_path="m/44'/60'/0'/0/0"
)


def deploy(rpc: str, deployments: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "TESSERA_PRIVATE_KEY": "0x" + bytes(DEPLOYER.key).hex(),
        "TESSERA_DEPLOYMENTS_DIR": str(deployments),
    }
    params = [f"--param={k}={v}" for k, v in FAST_PARAMS.items()]
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts/deploy.py"), "--rpc", rpc, "--yes", *params, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.fixture()
def testnet(tmp_path):
    with LocalChain(chain_id=SEPOLIA, block_time=1) as chain:
        yield chain


def test_deploy_then_job_through_a_flaky_rpc(tmp_path, testnet, ray_cluster, monkeypatch):
    from agents.lineage import build_dataset
    from agents.storage import open_store

    deployments = tmp_path / "deployments"
    first = deploy(testnet.url, deployments)
    assert first.returncode == 0, first.stderr
    assert "estimated gas" in first.stdout
    dep = load_deployment(SEPOLIA, deployments)
    assert set(dep.contracts) >= {"JobMarket", "AuditCourt", "ModelShares", "StakeManager"}

    again = deploy(testnet.url, deployments)
    assert again.returncode != 0
    assert "--force" in again.stderr and "Traceback" not in again.stderr
    assert load_deployment(SEPOLIA, deployments) == dep  # the registry is untouched

    with flaky_rpc(testnet.url) as proxy:
        monkeypatch.setenv("TESSERA_DEPLOYMENTS_DIR", str(deployments))
        keys = [DEPLOYER, *(Account.create() for _ in range(6))]
        store_dir = tmp_path / "store"
        net = LocalNet(
            testnet,
            dep,
            store_dir,
            open_store(str(store_dir)),
            keys,
            rpc_url=proxy.url,
            confirmations=1,
        )
        net.fund(range(1, 7), eth=10**18)
        # M-7: off dev chains the faucet is gone (and the token's owner renounced); accounts
        # were paid from the initial supply.
        deployer = net.protocol(0).client
        assert not deployer.call("TesseraToken", "faucetEnabled")
        assert int(deployer.call("TesseraToken", "owner"), 16) == 0
        corpus = tmp_path / "c.txt"
        corpus.write_text("to be or not to be\n" * 3000)
        dataset, _ = build_dataset(net.store, corpus, name="c", source="gen", license="CC0-1.0")
        with job_running(
            net,
            tiny_spec(dataset, 2),
            terms(1, challenge_window=20),
            owner_index=1,
            provider_indices=[2, 3],
            validator_indices=[4, 5],
        ) as run:
            state = drive(net, run, timeout=400)
        assert state.status == JobStatus.COMPLETED
        p = net.protocol(1)
        for stage in range(2):
            assert p.commitment(run.job_id, 0, stage).exists
            assert not p.commitment(run.job_id, 0, stage).slashed
        assert proxy.failed > 50  # the RPC really was failing all along
