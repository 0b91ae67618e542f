"""scripts/deploy.py: deploys, wires roles and writes deployments/<chainId>.json."""

import json

import pytest
from contract_helpers import TEST_PARAMS


def test_deploy_writes_record_and_wires_roles(
    deploy_module, accounts, chain, tmp_path, monkeypatch, ModelShares, StakeManager, JobMarket
):
    monkeypatch.setenv("TESSERA_DEPLOYMENTS_DIR", str(tmp_path))
    record = deploy_module.deploy(accounts[0], {**TEST_PARAMS, "committeeSize": 5})
    saved = json.loads((tmp_path / f"{chain.id}.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert set(saved) == {"chainId", "block", "deployer", "contracts", "params"}
    assert set(saved["contracts"]) == {
        "TesseraToken",
        "StakeManager",
        "ModelShares",
        "JobMarket",
        "AuditCourt",
        "ProviderDirectory",
        "InferencePayments",
    }
    assert saved["params"]["committeeSize"] == 5 and saved["deployer"] == accounts[0]
    c = saved["contracts"]
    shares, stakes = ModelShares.at(c["ModelShares"]), StakeManager.at(c["StakeManager"])
    market = JobMarket.at(c["JobMarket"])
    assert shares.hasRole(shares.MINTER_ROLE(), c["JobMarket"])
    assert stakes.hasRole(stakes.PROTOCOL_ROLE(), c["JobMarket"])
    assert stakes.hasRole(stakes.PROTOCOL_ROLE(), c["AuditCourt"])
    assert market.court() == c["AuditCourt"]
    assert stakes.unbondingPeriod() == TEST_PARAMS["unbondingPeriod"]


def test_deploy_rejects_unknown_parameter(deploy_module, accounts):
    # A typo in a parameter name is an error (raised by agents.chain.deploy.resolve_params).
    with pytest.raises(Exception, match="unknown deploy"):
        deploy_module.deploy(accounts[0], {"challengeBondd": 1}, write=False)
