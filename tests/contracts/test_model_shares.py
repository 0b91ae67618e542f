"""ModelShares, per function:

mint: without MINTER_ROLE -> reverts; zero -> ZeroAmount; admin can grant the role.
depositRevenue: zero -> ZeroAmount; no shares -> NoSharesOutstanding; ok -> RevenueDeposited,
  pro-rata accrual.
claim: nothing -> NothingToClaim; ok -> RevenueClaimed, paid once.
transfer/burn: settle first (seller keeps, buyer earns only later revenue).
rounding: never more than deposited; dust below one wei per holder.
"""

import brownie
import pytest
from contract_helpers import E18, fund


@pytest.fixture
def minter(funded, accounts):
    p = funded
    p.shares.grantRole(p.shares.MINTER_ROLE(), accounts[12], {"from": p.deployer})
    return accounts[12]


@pytest.fixture
def payer(funded, accounts):
    fund(funded, accounts[13], 1_000_000 * E18)
    return accounts[13]


MODEL = 77


def test_mint_needs_minter_role(funded, accounts):
    with brownie.reverts():
        funded.shares.mint(accounts[2], MODEL, 1, {"from": accounts[2]})


def test_only_admin_grants_minter_role(funded, accounts):
    p = funded
    role = p.shares.MINTER_ROLE()
    with brownie.reverts():
        p.shares.grantRole(role, accounts[2], {"from": accounts[2]})
    assert p.shares.hasRole(role, p.vault) and not p.shares.hasRole(role, p.market)


def test_mint_zero_reverts_and_mint_emits(funded, minter, accounts):
    p = funded
    with brownie.reverts():
        p.shares.mint(accounts[2], MODEL, 0, {"from": minter})
    tx = p.shares.mint(accounts[2], MODEL, 5, {"from": minter})
    assert tx.events["TransferSingle"]["value"] == 5
    assert p.shares.totalSupply(MODEL) == 5


def test_deposit_without_shares_reverts(funded, payer):
    with brownie.reverts():
        funded.shares.depositRevenue(MODEL, 100, {"from": payer})


def test_deposit_zero_reverts(funded, minter, payer, accounts):
    funded.shares.mint(accounts[2], MODEL, 1, {"from": minter})
    with brownie.reverts():
        funded.shares.depositRevenue(MODEL, 0, {"from": payer})


def test_deposit_and_claim_pro_rata(funded, minter, payer, accounts):
    p = funded
    a, b = accounts[2], accounts[3]
    p.shares.mint(a, MODEL, 1, {"from": minter})
    p.shares.mint(b, MODEL, 3, {"from": minter})
    tx = p.shares.depositRevenue(MODEL, 400, {"from": payer})
    assert tx.events["RevenueDeposited"]["amount"] == 400
    assert tx.events["RevenueDeposited"]["payer"] == payer
    assert p.shares.claimable(MODEL, a) == 100
    assert p.shares.claimable(MODEL, b) == 300
    before = p.token.balanceOf(b)
    tx = p.shares.claim(MODEL, {"from": b})
    assert tx.events["RevenueClaimed"]["amount"] == 300
    assert p.token.balanceOf(b) == before + 300
    assert p.shares.claimable(MODEL, b) == 0
    assert p.shares.totalClaimed(MODEL) == 300
    assert p.shares.totalDeposited(MODEL) == 400


def test_claim_nothing_reverts(funded, minter, accounts):
    funded.shares.mint(accounts[2], MODEL, 1, {"from": minter})
    with brownie.reverts():
        funded.shares.claim(MODEL, {"from": accounts[2]})


def test_transfer_settles_seller_keeps_buyer_gets_later_revenue_only(
    funded, minter, payer, accounts
):
    p = funded
    seller, buyer = accounts[2], accounts[3]
    p.shares.mint(seller, MODEL, 10, {"from": minter})
    p.shares.depositRevenue(MODEL, 1_000, {"from": payer})
    p.shares.safeTransferFrom(seller, buyer, MODEL, 5, b"", {"from": seller})
    assert p.shares.claimable(MODEL, seller) == 1_000
    assert p.shares.claimable(MODEL, buyer) == 0
    p.shares.depositRevenue(MODEL, 1_000, {"from": payer})
    assert p.shares.claimable(MODEL, seller) == 1_500
    assert p.shares.claimable(MODEL, buyer) == 500


def test_batch_transfer_settles_every_id(funded, minter, payer, accounts):
    p = funded
    a, b = accounts[2], accounts[3]
    p.shares.mint(a, 1, 2, {"from": minter})
    p.shares.mint(a, 2, 2, {"from": minter})
    p.shares.depositRevenue(1, 100, {"from": payer})
    p.shares.depositRevenue(2, 200, {"from": payer})
    p.shares.safeBatchTransferFrom(a, b, [1, 2], [2, 2], b"", {"from": a})
    assert p.shares.claimable(1, a) == 100
    assert p.shares.claimable(2, a) == 200
    assert p.shares.claimable(1, b) == 0


def test_burn_settles_and_keeps_accrued(funded, minter, payer, accounts):
    p = funded
    a, b = accounts[2], accounts[3]
    p.shares.mint(a, MODEL, 1, {"from": minter})
    p.shares.mint(b, MODEL, 1, {"from": minter})
    p.shares.depositRevenue(MODEL, 100, {"from": payer})
    with brownie.reverts():
        p.shares.burn(MODEL, 0, {"from": a})
    p.shares.burn(MODEL, 1, {"from": a})
    assert p.shares.totalSupply(MODEL) == 1
    assert p.shares.claimable(MODEL, a) == 50
    p.shares.depositRevenue(MODEL, 100, {"from": payer})
    assert p.shares.claimable(MODEL, a) == 50
    assert p.shares.claimable(MODEL, b) == 150


def test_rounding_never_overpays(funded, minter, payer, accounts):
    p = funded
    holders = accounts[2:5]
    for h in holders:
        p.shares.mint(h, MODEL, 1, {"from": minter})
    for _ in range(3):
        p.shares.depositRevenue(MODEL, 100, {"from": payer})
    total = sum(p.shares.claimable(MODEL, h) for h in holders)
    assert 300 - len(holders) <= total <= 300
    for h in holders:
        p.shares.claim(MODEL, {"from": h})
    assert p.token.balanceOf(p.shares) == 300 - total


def test_supports_erc1155_and_access_control(funded):
    assert funded.shares.supportsInterface("0xd9b67a26")
    assert funded.shares.supportsInterface("0x7965db0b")
    assert not funded.shares.supportsInterface("0xffffffff")
