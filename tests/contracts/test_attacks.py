"""Attack proofs of concept: each one is an exploit attempt that must fail."""

import brownie
import pytest
from contract_helpers import (
    E18,
    commit_all,
    fill,
    final_hash,
    fund,
    hash_pair,
    make_tree,
    post_job,
    vote_hash,
)

MODEL = 501
SALT = b"\x09" * 32


@pytest.fixture
def minter(funded, accounts):
    p = funded
    p.shares.grantRole(p.shares.MINTER_ROLE(), accounts[12], {"from": p.deployer})
    return accounts[12]


@pytest.fixture
def payer(funded, accounts):
    fund(funded, accounts[13], 1_000_000 * E18)
    return accounts[13]


@pytest.fixture
def attacker(HookedAccount, accounts):
    return HookedAccount.deploy({"from": accounts[14]})


def _as(attacker, target, data, operator):
    return attacker.execute(target, data, {"from": operator})


def test_reentrant_claim_through_erc1155_receiver_gets_only_its_due(
    funded, minter, payer, attacker, accounts
):
    """The attacker's receive hook re-enters claim() while shares are moving to it: it must
    get exactly its own accrued revenue, once, and nothing of the sender's."""
    p = funded
    op, seller = accounts[14], accounts[2]
    p.shares.mint(attacker, MODEL, 10, {"from": minter})
    p.shares.mint(seller, MODEL, 10, {"from": minter})
    p.shares.depositRevenue(MODEL, 1_000, {"from": payer})
    attacker.setMode(2, p.shares, p.shares.claim.encode_input(MODEL), {"from": op})
    # The seller sends 10 shares to the attacker: the hook runs claim() mid-transfer.
    p.shares.safeTransferFrom(seller, attacker, MODEL, 10, b"", {"from": seller})
    assert attacker.reentrySuccesses() == 1
    assert p.token.balanceOf(attacker) == 500
    assert p.shares.claimable(MODEL, seller) == 500  # the seller keeps its accrual
    with brownie.reverts():  # and nothing is left to claim a second time
        _as(attacker, p.shares, p.shares.claim.encode_input(MODEL), op)
    p.shares.claim(MODEL, {"from": seller})
    assert p.token.balanceOf(p.shares) == 0


def test_reentrant_finalize_from_mint_hook_is_refused(
    funded, attacker, accounts, job_owner, providers, chain
):
    """A provider contract re-entering finalizeRound from its share hook gets nothing extra."""
    p = funded
    op = accounts[14]
    fund(p, op, 1_000 * E18)
    p.token.transfer(attacker, 500 * E18, {"from": op})
    _as(attacker, p.token, p.token.approve.encode_input(p.stakes, 2**256 - 1), op)
    _as(attacker, p.stakes, p.stakes.stake.encode_input(500 * E18), op)
    job = post_job(p, job_owner, rounds=3)
    _as(attacker, p.market, p.market.joinStage.encode_input(job, 0), op)
    p.market.joinStage(job, 1, {"from": providers[1]})
    _as(
        attacker,
        p.market,
        p.market.commitRound.encode_input(job, 0, 0, make_tree("a").root, final_hash("f"), "c"),
        op,
    )
    p.market.commitRound(
        job, 0, 1, make_tree("b").root, final_hash("f"), "c", {"from": providers[1]}
    )
    chain.sleep(101)
    chain.mine()
    before = p.token.balanceOf(attacker)
    p.market.finalizeRound(job, 0, {"from": job_owner})  # credits only: no hook runs here
    attacker.setMode(2, p.vault, p.vault.claimShares.encode_input(job, attacker), {"from": op})
    # Its claim's hook re-enters claimShares: refused (credit already cleared, and guarded).
    _as(attacker, p.vault, p.vault.claimShares.encode_input(job, attacker), op)
    _as(attacker, p.vault, p.vault.claimRewards.encode_input(), op)
    assert attacker.reentryFailures() == 1 and attacker.reentrySuccesses() == 0
    assert p.token.balanceOf(attacker) == before + 10 * E18
    assert p.shares.balanceOf(attacker, job) == 100


def test_claiming_twice_pays_once(funded, minter, payer, accounts):
    p = funded
    a = accounts[2]
    p.shares.mint(a, MODEL, 1, {"from": minter})
    p.shares.depositRevenue(MODEL, 700, {"from": payer})
    before = p.token.balanceOf(a)
    p.shares.claim(MODEL, {"from": a})
    with brownie.reverts():
        p.shares.claim(MODEL, {"from": a})
    assert p.token.balanceOf(a) == before + 700


def test_buying_shares_after_revenue_landed_earns_none_of_it(funded, minter, payer, accounts):
    """Buy shares right before/after a deposit and sell right after: only revenue deposited
    while holding is earned; unclaimed revenue of the seller cannot be captured."""
    p = funded
    holder, buyer = accounts[2], accounts[3]
    p.shares.mint(holder, MODEL, 100, {"from": minter})
    p.shares.depositRevenue(MODEL, 10_000, {"from": payer})
    p.shares.safeTransferFrom(holder, buyer, MODEL, 100, b"", {"from": holder})
    with brownie.reverts():
        p.shares.claim(MODEL, {"from": buyer})
    p.shares.safeTransferFrom(buyer, holder, MODEL, 100, b"", {"from": buyer})
    assert p.shares.claimable(MODEL, buyer) == 0
    assert p.shares.claimable(MODEL, holder) == 10_000


def test_second_stage_by_one_provider_fails(funded, providers, job_owner, chain):
    p = funded
    job = post_job(p, job_owner, numStages=3)
    p.market.joinStage(job, 0, {"from": providers[0]})
    with brownie.reverts():
        p.market.joinStage(job, 1, {"from": providers[0]})
    # Nor after being vacated: a provider never sees the weights of two stages.
    p.market.joinStage(job, 1, {"from": providers[1]})
    p.market.joinStage(job, 2, {"from": providers[2]})
    p.market.commitRound(
        job, 0, 1, make_tree("b").root, final_hash("f"), "c", {"from": providers[1]}
    )
    p.market.commitRound(
        job, 0, 2, make_tree("c").root, final_hash("f"), "c", {"from": providers[2]}
    )
    chain.sleep(101)
    chain.mine()
    p.market.sealRound(job, 0, {"from": job_owner})  # providers[0] vacated
    assert p.market.stageProvider(job, 0) == brownie.ZERO_ADDRESS
    chain.sleep(101)
    chain.mine()
    p.market.finalizeRound(job, 0, {"from": job_owner})
    with brownie.reverts():
        p.market.joinStage(job, 0, {"from": providers[1]})


def test_committing_for_someone_elses_stage_fails(funded, providers, job_owner, accounts):
    p = funded
    job = post_job(p, job_owner)
    fill(p, job, providers[:2])
    for who in (providers[0], accounts[15], job_owner):
        with brownie.reverts():
            p.market.commitRound(
                job, 0, 1, make_tree("x").root, final_hash("f"), "c", {"from": who}
            )
    assert p.market.commitment(job, 0, 1)[0] == "0x" + "00" * 32


def test_withdrawing_stake_to_dodge_a_pending_challenge_fails(
    funded, providers, validators, job_owner, challenger, chain
):
    p = funded
    job = post_job(p, job_owner)
    fill(p, job, providers[:2])
    for v in validators:
        p.registry.registerValidator(100 * E18, {"from": v})
    trees = commit_all(p, job, 0, providers[:2])
    t = trees[1]
    p.court.challenge(job, 0, 1, 2, t.leaf_hashes[2], t.proof(2), {"from": challenger})
    cheat = providers[1]
    free = p.stakes.freeStakeOf(cheat)
    with brownie.reverts():  # the locked part cannot start unbonding
        p.stakes.requestUnstake(free + 1, {"from": cheat})
    p.stakes.requestUnstake(free, {"from": cheat})
    with brownie.reverts():  # and what unbonds waits for the unbonding period
        p.stakes.withdraw({"from": cheat})
    chain.sleep(200)  # window, response deadline pass; unbonding (1,000 s) does not
    chain.mine()
    with brownie.reverts():  # the round cannot close while the dispute is open
        p.market.finalizeRound(job, 0, {"from": job_owner})
    tx = p.court.slashUnanswered(1, {"from": job_owner})
    assert tx.events["DisputeResolved"]["slashAmount"] == 200 * E18
    assert p.stakes.stakeOf(cheat) == 0  # the whole 200 allocated to the job


def test_replaying_a_reveal_fails(funded, sealed, providers, challenger, chain):
    p = funded
    job, trees = sealed
    t = trees[1]
    for leaf in (1, 2):
        p.court.challenge(job, 0, 1, leaf, t.leaf_hashes[leaf], t.proof(leaf), {"from": challenger})
        p.court.respond(leaf, "bafybundle", {"from": providers[1]})
    m1 = [brownie.accounts.at(x) for x in p.court.committee(1)]
    m2 = [brownie.accounts.at(x) for x in p.court.committee(2)]
    # 4 eligible validators, committees of 3: at least two sit on both.
    a = next(x for x in m1 if x in m2)
    b = next(x for x in m1 if x != a)
    p.court.commitVote(1, vote_hash(1, a.address, True, SALT), {"from": a})
    # b copies a's sealed vote: its reveal can never match (the voter is in the hash).
    p.court.commitVote(1, vote_hash(1, a.address, True, SALT), {"from": b})
    p.court.commitVote(2, vote_hash(2, a.address, False, SALT), {"from": a})
    chain.sleep(51)
    chain.mine()
    p.court.revealVote(1, True, SALT, {"from": a})
    with brownie.reverts():
        p.court.revealVote(1, True, SALT, {"from": a})  # same reveal twice
    with brownie.reverts():
        p.court.revealVote(1, True, SALT, {"from": b})  # someone else's reveal
    with brownie.reverts():  # a's dispute-1 reveal replayed on dispute 2
        p.court.revealVote(2, True, SALT, {"from": a})
    assert tuple(p.court.tally(1))[:3] == (2, 1, 1)


def test_challenging_with_a_leaf_not_in_the_root_fails(
    funded, providers, job_owner, challenger, chain
):
    p = funded
    job = post_job(p, job_owner)
    fill(p, job, providers[:2])
    trees = commit_all(p, job, 0, providers[:2])
    t = trees[1]
    forged = b"\xee" * 32
    with brownie.reverts():  # a forged leaf with a genuine proof
        p.court.challenge(job, 0, 1, 2, forged, t.proof(2), {"from": challenger})
    with brownie.reverts():  # a genuine leaf of ANOTHER stage's tree
        p.court.challenge(
            job, 0, 1, 2, trees[0].leaf_hashes[2], trees[0].proof(2), {"from": challenger}
        )
    # An inner node passed off as a leaf (second preimage): the double hash rejects it.
    inner = hash_pair(t.levels[0][0], t.levels[0][1])
    with brownie.reverts():
        p.court.challenge(job, 0, 1, 0, inner, t.proof(0)[1:], {"from": challenger})
    assert p.court.disputeCount() == 0
