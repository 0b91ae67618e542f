"""scripts/deploy.py: deploys, wires roles, hands the admin role over, writes the record."""

import json

import brownie
import pytest
from contract_helpers import TEST_PARAMS

CONTRACTS = {
    "TesseraToken",
    "StakeManager",
    "ModelShares",
    "PrevrandaoRandomness",
    "JobMarket",
    "JobTerms",
    "RewardVault",
    "ValidatorRegistry",
    "AuditCourt",
    "ProviderDirectory",
    "InferencePayments",
}
ADMIN = "0x" + "00" * 32


def _deployed(record, StakeManager, ModelShares, JobMarket, ValidatorRegistry):
    c = record["contracts"]
    return (
        StakeManager.at(c["StakeManager"]),
        ModelShares.at(c["ModelShares"]),
        JobMarket.at(c["JobMarket"]),
        ValidatorRegistry.at(c["ValidatorRegistry"]),
    )


def test_deploy_writes_record_wires_roles_and_renounces_admin(
    deploy_module,
    accounts,
    chain,
    tmp_path,
    monkeypatch,
    ModelShares,
    StakeManager,
    JobMarket,
    ValidatorRegistry,
    InferencePayments,
):
    """M-7: by default no admin key survives the deployment: the deployer cannot grant itself
    PROTOCOL_ROLE (to slash anyone) nor MINTER_ROLE (to dilute revenue)."""
    monkeypatch.setenv("TESSERA_DEPLOYMENTS_DIR", str(tmp_path))
    params = {**TEST_PARAMS, "committeeSize": 5, "admin": "renounce"}
    record = deploy_module.deploy(accounts[0], params)
    saved = json.loads((tmp_path / f"{chain.id}.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert set(saved) == {"chainId", "block", "deployer", "contracts", "params"}
    assert set(saved["contracts"]) == CONTRACTS
    assert saved["params"]["committeeSize"] == 5 and saved["deployer"] == accounts[0]
    c = saved["contracts"]
    stakes, shares, market, registry = _deployed(
        record, StakeManager, ModelShares, JobMarket, ValidatorRegistry
    )
    assert shares.hasRole(shares.MINTER_ROLE(), c["RewardVault"])
    assert not shares.hasRole(shares.MINTER_ROLE(), c["JobMarket"])
    assert market.terms() == c["JobTerms"] and market.vault() == c["RewardVault"]
    assert stakes.hasRole(stakes.PROTOCOL_ROLE(), c["JobMarket"])
    assert stakes.hasRole(stakes.PROTOCOL_ROLE(), c["ValidatorRegistry"])
    assert not stakes.hasRole(stakes.PROTOCOL_ROLE(), c["AuditCourt"])
    assert market.court() == c["AuditCourt"] and registry.court() == c["AuditCourt"]
    assert stakes.unbondingPeriod() == TEST_PARAMS["unbondingPeriod"]
    for contract in (stakes, shares, market, registry):
        assert not contract.hasRole(ADMIN, accounts[0])
    with brownie.reverts():
        stakes.grantRole(stakes.PROTOCOL_ROLE(), accounts[0], {"from": accounts[0]})
    with brownie.reverts():
        shares.grantRole(shares.MINTER_ROLE(), accounts[0], {"from": accounts[0]})
    # Nobody can reprice inference either (a model's revenue is its holders'): the default
    # price holds for good.
    payments = InferencePayments.at(c["InferencePayments"])
    assert payments.owner() == brownie.ZERO_ADDRESS
    with brownie.reverts():
        payments.setPrice(1, 0, {"from": accounts[0]})


def test_deploy_with_timelock_hands_admin_to_a_delay_longer_than_unbonding(
    deploy_module,
    accounts,
    ModelShares,
    StakeManager,
    JobMarket,
    ValidatorRegistry,
    Timelock,
    InferencePayments,
):
    """M-7: with admin=timelock every admin role sits in a TimelockController whose delay
    exceeds the unbonding period, so anyone can unstake before an admin action lands."""
    record = deploy_module.deploy(accounts[0], {**TEST_PARAMS, "admin": "timelock"}, write=False)
    lock = Timelock.at(record["contracts"]["Timelock"])
    assert lock.getMinDelay() > TEST_PARAMS["unbondingPeriod"]
    for contract in _deployed(record, StakeManager, ModelShares, JobMarket, ValidatorRegistry):
        assert contract.hasRole(ADMIN, lock)
        assert not contract.hasRole(ADMIN, accounts[0])
    assert InferencePayments.at(record["contracts"]["InferencePayments"]).owner() == lock


def test_faucet_mints_only_on_dev_chains(protocol, accounts, chain):
    """M-7: the token's faucet is tied to the dev chain ids (the Sepolia-id chain of
    tests/integration/test_testnet.py shows the refusal)."""
    assert chain.id in (1337, 31337)
    assert protocol.token.faucetEnabled()


def test_deploy_rejects_windows_longer_than_unbonding(deploy_module, accounts):
    """Low: a dispute (response + every committee's windows) must fit in the unbonding period,
    checked by resolve_params and again by the AuditCourt constructor."""
    with pytest.raises(Exception, match="unbondingPeriod"):
        deploy_module.deploy(accounts[0], {**TEST_PARAMS, "unbondingPeriod": 100}, write=False)


def test_court_constructor_checks_the_unbonding_period(
    protocol, accounts, AuditCourt, StakeManager
):
    p = protocol
    short = StakeManager.deploy(p.token, 10, accounts[0], {"from": accounts[0]})
    params = tuple(
        TEST_PARAMS[k]
        for k in (
            "challengeBond",
            "responseWindow",
            "commitVoteWindow",
            "revealWindow",
            "providerSlashBps",
            "winnerRewardBps",
            "committeeSize",
        )
    )
    with brownie.reverts():
        AuditCourt.deploy(
            p.token, short, p.market, p.registry, params, accounts[0], {"from": accounts[0]}
        )


def test_deploy_rejects_unknown_parameter(deploy_module, accounts):
    # A typo in a parameter name is an error (raised by agents.chain.deploy.resolve_params).
    with pytest.raises(Exception, match="unknown deploy"):
        deploy_module.deploy(accounts[0], {"challengeBondd": 1}, write=False)


EIP170_BYTES = 24_576


def test_every_contract_fits_eip170_and_the_market_keeps_headroom(protocol, web3):
    """Each deployed contract's runtime code is under EIP-170's limit, and the JobMarket, split
    by concern (stages and rounds; terms and escrow in JobTerms; credits in RewardVault),
    keeps 10% headroom for fixes: a JobMarket grown back to the limit fails here first."""
    sizes = {
        name: len(web3.eth.get_code(address))
        for name, address in protocol.record["contracts"].items()
    }
    assert all(0 < size < EIP170_BYTES for size in sizes.values()), sizes
    assert sizes["JobMarket"] < 0.9 * EIP170_BYTES, sizes
    # The market holds no code of its children: they are separate contracts it created.
    assert sizes["JobTerms"] > 0 and sizes["RewardVault"] > 0
