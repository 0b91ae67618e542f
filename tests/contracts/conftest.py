"""Contract-test fixtures: every test runs in brownie's fn_isolation snapshot.

`protocol` deploys the five contracts through scripts/deploy.py (the same code path as
`brownie run scripts/deploy.py`) with windows of a few hundred seconds.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from contract_helpers import JOB_DEFAULTS, TEST_PARAMS, commit_all, fill, fund, post_job

_DEPLOY = Path(__file__).resolve().parents[2] / "scripts" / "deploy.py"


def load_deploy_module():
    """Import scripts/deploy.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("tessera_deploy_script", _DEPLOY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    """Revert the chain to a snapshot after every test."""


@pytest.fixture(scope="module")
def owner(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def token(TesseraToken, owner):
    return TesseraToken.deploy(owner, 0, {"from": owner})


@pytest.fixture(scope="module")
def deploy_module():
    return load_deploy_module()


@pytest.fixture(scope="module")
def protocol(
    deploy_module,
    accounts,
    TesseraToken,
    StakeManager,
    ModelShares,
    JobMarket,
    JobTerms,
    RewardVault,
    AuditCourt,
    ValidatorRegistry,
    PrevrandaoRandomness,
):
    """All contracts deployed and wired, with test windows; `p.deployer` is accounts[0]."""
    deployer = accounts[0]
    record = deploy_module.deploy(deployer, TEST_PARAMS, write=False)
    addr = record["contracts"]
    return SimpleNamespace(
        deployer=deployer,
        record=record,
        token=TesseraToken.at(addr["TesseraToken"]),
        stakes=StakeManager.at(addr["StakeManager"]),
        shares=ModelShares.at(addr["ModelShares"]),
        market=JobMarket.at(addr["JobMarket"]),
        terms=JobTerms.at(addr["JobTerms"]),
        vault=RewardVault.at(addr["RewardVault"]),
        court=AuditCourt.at(addr["AuditCourt"]),
        registry=ValidatorRegistry.at(addr["ValidatorRegistry"]),
        randomness=PrevrandaoRandomness.at(addr["PrevrandaoRandomness"]),
        params=record["params"],
    )


@pytest.fixture(scope="module")
def job_owner(accounts):
    return accounts[1]


@pytest.fixture(scope="module")
def providers(accounts):
    return [accounts[2], accounts[3], accounts[4]]


@pytest.fixture(scope="module")
def validators(accounts):
    return [accounts[5], accounts[6], accounts[7], accounts[8]]


@pytest.fixture(scope="module")
def challenger(accounts):
    return accounts[9]


@pytest.fixture(scope="module")
def funded(protocol, job_owner, providers, validators, challenger):
    """Every actor holds 10,000 TSR; providers and validators staked 1,000 each."""
    p = protocol
    for a in [job_owner, challenger, *providers, *validators]:
        fund(p, a, 10_000 * 10**18)
    for a in [*providers, *validators]:
        p.stakes.stake(1_000 * 10**18, {"from": a})
    return p


@pytest.fixture
def job_defaults():
    return dict(JOB_DEFAULTS)


@pytest.fixture
def sealed(funded, providers, validators, job_owner, chain):
    """Job with 2 stages, round 0 committed and sealed (seed recorded), 4 validators of 100 TSR
    registered before."""
    p = funded
    for v in validators:
        p.registry.registerValidator(100 * 10**18, {"from": v})
    job = post_job(p, job_owner)
    fill(p, job, providers[:2])
    trees = commit_all(p, job, 0, providers[:2])
    return job, trees
