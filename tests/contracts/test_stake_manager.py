"""StakeManager, per function:

stake: zero -> ZeroAmount; no allowance -> reverts; ok -> balance moves, Staked.
requestUnstake: zero -> ZeroAmount; above free stake (locked) -> InsufficientFreeStake;
  ok -> UnstakeRequested, releaseTime = now + period, a second request restarts the clock.
withdraw: nothing unbonding -> NothingUnbonding; early -> StillUnbonding; ok -> paid, Withdrawn.
allocate/release/slashAllocation: non-protocol caller -> AccessControl error; allocate above
  free -> revert; release frees the whole allocation; a slash takes from one allocation only,
  capped at what it holds; allocations are namespaced by allocator.
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


ID_A = b"\x0a".rjust(32, b"\x00")
ID_B = b"\x0b".rjust(32, b"\x00")


@pytest.mark.parametrize("fn", ["allocate", "slashAllocation"])
def test_allocation_calls_need_protocol_role(funded, staker, fn, accounts):
    funded.stakes.stake(100, {"from": staker})
    args = (staker, ID_A, 1) if fn == "allocate" else (staker, ID_A, 1, accounts[11])
    with brownie.reverts():
        getattr(funded.stakes, fn)(*args, {"from": staker})


def test_release_needs_protocol_role(funded, staker):
    with brownie.reverts():
        funded.stakes.release(staker, ID_A, {"from": staker})


@pytest.fixture
def protocol_caller(funded, accounts):
    """accounts[12] granted PROTOCOL_ROLE by the admin, as a stand-in protocol contract."""
    p = funded
    p.stakes.grantRole(p.stakes.PROTOCOL_ROLE(), accounts[12], {"from": p.deployer})
    return accounts[12]


def test_allocate_above_free_reverts_and_release_frees_all(funded, staker, protocol_caller):
    p = funded
    p.stakes.stake(100, {"from": staker})
    with brownie.reverts():
        p.stakes.allocate(staker, ID_A, 101, {"from": protocol_caller})
    tx = p.stakes.allocate(staker, ID_A, 60, {"from": protocol_caller})
    assert tx.events["Allocated"]["amount"] == 60
    assert p.stakes.lockedOf(staker) == 60
    assert p.stakes.allocationOf(staker, protocol_caller, ID_A) == 60
    with brownie.reverts():
        p.stakes.allocate(staker, ID_B, 41, {"from": protocol_caller})
    tx = p.stakes.release(staker, ID_A, {"from": protocol_caller})
    assert tx.return_value == 60 and tx.events["Released"]["amount"] == 60
    assert p.stakes.lockedOf(staker) == 0
    assert p.stakes.release(staker, ID_A, {"from": protocol_caller}).return_value == 0


def test_slash_takes_only_from_its_allocation_and_caps(funded, staker, protocol_caller, accounts):
    """M-4 at the StakeManager: a slash reaches one allocation only, never more than it
    holds, never the free stake or another allocation."""
    p = funded
    beneficiary = accounts[11]
    p.stakes.stake(100, {"from": staker})
    p.stakes.allocate(staker, ID_A, 30, {"from": protocol_caller})
    p.stakes.allocate(staker, ID_B, 50, {"from": protocol_caller})
    before = p.token.balanceOf(beneficiary)
    tx = p.stakes.slashAllocation(staker, ID_A, 90, beneficiary, {"from": protocol_caller})
    assert tx.return_value == 30
    assert tx.events["Slashed"]["amount"] == 30
    assert p.stakes.stakeOf(staker) == 70
    assert p.stakes.allocationOf(staker, protocol_caller, ID_A) == 0
    assert p.stakes.allocationOf(staker, protocol_caller, ID_B) == 50
    assert p.stakes.freeStakeOf(staker) == 20
    assert (
        p.stakes.slashAllocation(
            staker, ID_A, 10, beneficiary, {"from": protocol_caller}
        ).return_value
        == 0
    )
    assert p.token.balanceOf(beneficiary) == before + 30


def test_allocations_are_namespaced_by_allocator(funded, staker, protocol_caller, accounts):
    """One protocol contract cannot slash or release another's allocation with the same id."""
    p = funded
    other = accounts[13]
    p.stakes.grantRole(p.stakes.PROTOCOL_ROLE(), other, {"from": p.deployer})
    p.stakes.stake(100, {"from": staker})
    p.stakes.allocate(staker, ID_A, 100, {"from": protocol_caller})
    assert p.stakes.slashAllocation(staker, ID_A, 100, other, {"from": other}).return_value == 0
    assert p.stakes.release(staker, ID_A, {"from": other}).return_value == 0
    assert p.stakes.lockedOf(staker) == 100
    with brownie.reverts():
        p.stakes.requestUnstake(1, {"from": staker})
