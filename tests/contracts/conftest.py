"""Contract-test fixtures: every test runs in brownie's fn_isolation snapshot."""

import pytest


@pytest.fixture(autouse=True)
def isolation(fn_isolation):
    """Revert the chain to a snapshot after every test."""


@pytest.fixture(scope="module")
def owner(accounts):
    return accounts[0]


@pytest.fixture(scope="module")
def token(TesseraToken, owner):
    return TesseraToken.deploy(owner, {"from": owner})
