"""StakeManager, per function:

stake: zero -> ZeroAmount; no allowance -> reverts; ok -> balance moves, Staked.
requestUnstake: zero -> ZeroAmount; above free stake (locked) -> InsufficientFreeStake;
  ok -> UnstakeRequested, releaseTime = now + period, a second request restarts the clock.
withdraw: nothing unbonding -> NothingUnbonding; early -> StillUnbonding; ok -> paid, Withdrawn.
lock/unlock/slash: non-protocol caller -> AccessControl error; lock above free -> revert;
  unlock above locked -> UnlockExceedsLocked; slash takes bonded then unbonding, capped, Slashed.
"""

import brownie
import pytest
from contract_helpers import E18

PERIOD = 1_000


@pytest.fixture
def staker(funded, accounts):
    return accounts[10]


@pytest.fixture(autouse=True)
def _fund_staker(funded, accounts):
    from contract_helpers import fund

    fund(funded, accounts[10], 1_000 * E18)


def test_stake_zero_reverts(funded, staker):
    with brownie.reverts():
        funded.stakes.stake(0, {"from": staker})


def test_stake_moves_tokens_and_emits(funded, staker):
    p = funded
    tx = p.stakes.stake(300 * E18, {"from": staker})
    assert p.stakes.stakeOf(staker) == 300 * E18
    assert p.token.balanceOf(staker) == 700 * E18
    assert tx.events["Staked"]["account"] == staker
    assert tx.events["Staked"]["amount"] == 300 * E18


def test_stake_without_allowance_reverts(funded, staker):
    funded.token.approve(funded.stakes, 0, {"from": staker})
    with brownie.reverts():
        funded.stakes.stake(1, {"from": staker})


def test_request_unstake_zero_reverts(funded, staker):
    funded.stakes.stake(10, {"from": staker})
    with brownie.reverts():
        funded.stakes.requestUnstake(0, {"from": staker})


def test_request_unstake_of_locked_stake_reverts(funded, providers, job_owner):
    from contract_helpers import post_job

    p = funded
    job = post_job(p, job_owner)
    p.market.joinStage(job, 0, {"from": providers[0]})  # locks 200 of 1,000
    assert p.stakes.freeStakeOf(providers[0]) == 800 * E18
    with brownie.reverts():
        p.stakes.requestUnstake(801 * E18, {"from": providers[0]})
    p.stakes.requestUnstake(800 * E18, {"from": providers[0]})
    assert p.stakes.stakeOf(providers[0]) == 200 * E18


def test_request_unstake_starts_and_restarts_clock(funded, staker, chain):
    p = funded
    p.stakes.stake(100, {"from": staker})
    tx = p.stakes.requestUnstake(40, {"from": staker})
    t0 = tx.timestamp
    assert tx.events["UnstakeRequested"]["releaseTime"] == t0 + PERIOD
    assert tuple(p.stakes.unbondingOf(staker)) == (40, t0 + PERIOD)
    chain.sleep(500)
    tx = p.stakes.requestUnstake(10, {"from": staker})
    assert tuple(p.stakes.unbondingOf(staker)) == (50, tx.timestamp + PERIOD)
    assert p.stakes.stakeOf(staker) == 50


def test_withdraw_nothing_reverts(funded, staker):
    with brownie.reverts():
        funded.stakes.withdraw({"from": staker})


def test_withdraw_early_reverts_then_pays(funded, staker, chain):
    p = funded
    p.stakes.stake(100, {"from": staker})
    p.stakes.requestUnstake(100, {"from": staker})
    with brownie.reverts():
        p.stakes.withdraw({"from": staker})
    chain.sleep(PERIOD + 1)
    before = p.token.balanceOf(staker)
    tx = p.stakes.withdraw({"from": staker})
    assert p.token.balanceOf(staker) == before + 100
    assert tx.events["Withdrawn"]["amount"] == 100
    assert tuple(p.stakes.unbondingOf(staker)) == (0, 0)


@pytest.mark.parametrize("fn", ["lock", "unlock"])
def test_lock_unlock_need_protocol_role(funded, staker, fn):
    with brownie.reverts():
        getattr(funded.stakes, fn)(staker, 1, {"from": staker})


def test_slash_needs_protocol_role(funded, staker, accounts):
    funded.stakes.stake(100, {"from": staker})
    with brownie.reverts():
        funded.stakes.slash(staker, 1, accounts[11], {"from": funded.deployer})


@pytest.fixture
def protocol_caller(funded, accounts):
    """accounts[12] granted PROTOCOL_ROLE by the admin, as a stand-in protocol contract."""
    p = funded
    p.stakes.grantRole(p.stakes.PROTOCOL_ROLE(), accounts[12], {"from": p.deployer})
    return accounts[12]


def test_lock_above_free_reverts_and_unlock_above_locked_reverts(funded, staker, protocol_caller):
    p = funded
    p.stakes.stake(100, {"from": staker})
    with brownie.reverts():
        p.stakes.lock(staker, 101, {"from": protocol_caller})
    tx = p.stakes.lock(staker, 60, {"from": protocol_caller})
    assert tx.events["StakeLocked"]["amount"] == 60
    assert p.stakes.lockedOf(staker) == 60
    with brownie.reverts():
        p.stakes.unlock(staker, 61, {"from": protocol_caller})
    tx = p.stakes.unlock(staker, 60, {"from": protocol_caller})
    assert tx.events["StakeUnlocked"]["amount"] == 60
    assert p.stakes.lockedOf(staker) == 0


def test_slash_takes_bonded_then_unbonding_and_caps(funded, staker, protocol_caller, accounts):
    p = funded
    beneficiary = accounts[11]
    p.stakes.stake(100, {"from": staker})
    p.stakes.requestUnstake(30, {"from": staker})
    before = p.token.balanceOf(beneficiary)
    tx = p.stakes.slash(staker, 90, beneficiary, {"from": protocol_caller})
    assert tx.return_value == 90
    assert p.stakes.stakeOf(staker) == 0
    assert p.stakes.unbondingOf(staker)[0] == 10
    tx = p.stakes.slash(staker, 500, beneficiary, {"from": protocol_caller})
    assert tx.return_value == 10
    assert tx.events["Slashed"]["amount"] == 10
    assert p.token.balanceOf(beneficiary) == before + 100
    assert p.stakes.unbondingOf(staker)[0] == 0


def test_slash_leaves_locks_so_free_stake_floors_at_zero(funded, staker, protocol_caller, accounts):
    p = funded
    p.stakes.stake(100, {"from": staker})
    p.stakes.lock(staker, 100, {"from": protocol_caller})
    p.stakes.slash(staker, 50, accounts[11], {"from": protocol_caller})
    assert p.stakes.lockedOf(staker) == 100
    assert p.stakes.freeStakeOf(staker) == 0
    with brownie.reverts():
        p.stakes.requestUnstake(1, {"from": staker})
