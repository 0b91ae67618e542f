"""AuditCourt, per function:

registerValidator (ValidatorRegistry): no free stake -> InsufficientFreeStake; twice ->
  AlreadyValidator; below the minimum -> StakeTooLow; ok -> allocation.
deregisterValidator / releaseValidatorStake: exit first, release after the exit delay and not
  while on an undecided committee.
challenge: outside window; leaf not in root; index past the leaf count; self; same leaf twice
  by the same account (others may); seed not ready;
  ok -> bond pulled, ChallengeOpened, openDisputes, finalizeRound blocked.
respond: not accused; empty CID; late; ok -> committee drawn without the parties or late
  registrants.
slashUnanswered: early; ok -> provider slashed, stage vacated, challenger credited.
commitVote/revealVote: non-member; late; twice; reveal before the commit phase ends; mismatch;
  replay; no commit.
resolve: guilty majority; innocent majority; tie; non-revealer penalty; nobody revealed -> void.
withdrawCredit: nothing -> NoCredit; ok -> paid.
"""

import brownie
import pytest
from contract_helpers import E18, commit_all, fill, final_hash, post_job, record_seed, vote_hash

BOND = 100 * E18
SALT = b"\x07" * 32


def _sleep(chain, seconds):
    chain.sleep(seconds)
    chain.mine()


def _challenge(p, job, trees, who, stage=1, leaf=3):
    tree = trees[stage]
    return p.court.challenge(
        job, 0, stage, leaf, tree.leaf_hashes[leaf], tree.proof(leaf), {"from": who}
    )


def test_register_and_deregister(funded, validators, accounts, chain):
    p = funded
    with brownie.reverts():  # no stake
        p.registry.registerValidator(100 * E18, {"from": accounts[15]})
    with brownie.reverts():  # below the minimum
        p.registry.registerValidator(99 * E18, {"from": validators[0]})
    tx = p.registry.registerValidator(100 * E18, {"from": validators[0]})
    assert tx.events["ValidatorRegistered"]["account"] == validators[0]
    assert p.court.isValidator(validators[0]) and p.registry.entryCount() == 1
    assert p.stakes.lockedOf(validators[0]) == 100 * E18
    with brownie.reverts():
        p.registry.registerValidator(100 * E18, {"from": validators[0]})
    p.registry.registerValidator(300 * E18, {"from": validators[1]})
    assert p.registry.entry(1)[3] == 300 * E18  # its draw weight
    with brownie.reverts():
        p.registry.deregisterValidator({"from": validators[2]})
    tx = p.registry.deregisterValidator({"from": validators[0]})
    assert tx.events["ValidatorExiting"]["account"] == validators[0]
    assert not p.court.isValidator(validators[0])
    with brownie.reverts():  # still slashable for rounds sealed before the exit
        p.registry.releaseValidatorStake({"from": validators[0]})
    _sleep(chain, 501)
    tx = p.registry.releaseValidatorStake({"from": validators[0]})
    assert tx.events["ValidatorReleased"]["amount"] == 100 * E18
    assert p.stakes.lockedOf(validators[0]) == 0
    assert p.registry.entryCount() == 2  # append-only: the entry stays, released


def test_challenge_checks(funded, sealed, providers, challenger, chain):
    p = funded
    job, trees = sealed
    t = trees[1]
    with brownie.reverts():  # leaf hash not in the root
        p.court.challenge(job, 0, 1, 3, b"\x01" * 32, t.proof(3), {"from": challenger})
    with brownie.reverts():  # right hash, wrong index
        p.court.challenge(job, 0, 1, 2, t.leaf_hashes[3], t.proof(3), {"from": challenger})
    with brownie.reverts():  # the provider itself
        _challenge(p, job, trees, providers[1])
    with brownie.reverts():  # a stage that never committed / unknown round
        p.court.challenge(job, 1, 1, 3, t.leaf_hashes[3], t.proof(3), {"from": challenger})
    before = p.token.balanceOf(challenger)
    tx = _challenge(p, job, trees, challenger)
    ev = tx.events["ChallengeOpened"]
    assert ev["disputeId"] == 1 and ev["leafIndex"] == 3 and ev["challenger"] == challenger
    assert p.token.balanceOf(challenger) == before - BOND
    assert p.court.openDisputes(job, 0) == 1
    d = p.court.dispute(1)
    assert d[5] == challenger and d[6] == providers[1] and d[7] == 0
    with brownie.reverts():  # the same leaf again by the same account
        _challenge(p, job, trees, challenger)
    _challenge(p, job, trees, providers[2])  # another account may: the leaf stays open
    assert p.court.openDisputes(job, 0) == 2
    _sleep(chain, 101)
    with brownie.reverts():  # window closed
        _challenge(p, job, trees, challenger, leaf=4)
    with brownie.reverts():  # finalize waits for the dispute
        p.market.finalizeRound(job, 0, {"from": challenger})


def test_challenge_before_seed_is_available_reverts(
    funded, providers, job_owner, challenger, chain
):
    p = funded
    job = post_job(p, job_owner)
    fill(p, job, providers[:2])
    trees = commit_all(p, job, 0, providers[:2], seed=False)
    chain.mine(3)
    with brownie.reverts():  # nobody recorded the seed in its anchor block: it re-anchors
        _challenge(p, job, trees, challenger)


def test_slash_unanswered(funded, sealed, providers, challenger, job_owner, chain):
    p = funded
    job, trees = sealed
    _challenge(p, job, trees, challenger)
    with brownie.reverts():
        p.court.slashUnanswered(1, {"from": job_owner})
    _sleep(chain, 51)
    with brownie.reverts():  # too late to answer
        p.court.respond(1, "bafybundle", {"from": providers[1]})
    stake_before = p.stakes.stakeOf(providers[1])
    tx = p.court.slashUnanswered(1, {"from": job_owner})
    assert tx.events["DisputeResolved"]["providerSlashed"]
    # Unanswered: the WHOLE job allocation (minStake 200), not a fraction.
    assert tx.events["DisputeResolved"]["slashAmount"] == 200 * E18
    assert p.stakes.stakeOf(providers[1]) == stake_before - 200 * E18
    # Bond back + bounty (10 of the validator pool); the slash goes to the treasury.
    assert p.court.credit(challenger) == BOND + 10 * E18
    assert p.court.credit(p.deployer) == 200 * E18
    assert p.market.commitment(job, 0, 1)[3]
    assert p.market.stageProvider(job, 1) == brownie.ZERO_ADDRESS
    assert p.terms.funds(job)[1] == 40 * E18
    assert p.court.dispute(1)[7] == 2
    assert p.court.openDisputes(job, 0) == 0
    with brownie.reverts():
        p.court.slashUnanswered(1, {"from": job_owner})
    _sleep(chain, 60)
    tx = p.market.finalizeRound(job, 0, {"from": job_owner})
    assert len(tx.events["StagePaid"]) == 1 and tx.events["StagePaid"]["stage"] == 0
    assert p.stakes.lockedOf(providers[1]) == 0  # released once the round closed
    before = p.token.balanceOf(challenger)
    p.court.withdrawCredit({"from": challenger})
    assert p.token.balanceOf(challenger) == before + 110 * E18
    with brownie.reverts():
        p.court.withdrawCredit({"from": challenger})


@pytest.fixture
def voting(funded, sealed, providers, challenger):
    p = funded
    job, trees = sealed
    _challenge(p, job, trees, challenger)
    return job, 1


def test_respond_checks_and_committee(funded, voting, providers, challenger, validators):
    p = funded
    _job, d = voting
    with brownie.reverts():
        p.court.respond(d, "bafybundle", {"from": challenger})
    with brownie.reverts():
        p.court.respond(d, "", {"from": providers[1]})
    tx = p.court.respond(d, "bafybundle", {"from": providers[1]})
    assert tx.events["ChallengeAnswered"]["bundleCID"] == "bafybundle"
    members = list(p.court.committee(d))
    assert len(members) == 3 and len(set(members)) == 3
    assert set(members) <= set(validators)
    assert list(tx.events["CommitteeDrawn"]["members"]) == members
    for m in members:
        assert p.registry.activeCommittees(m) == 1
    assert p.court.dispute(d)[7] == 1
    with brownie.reverts():
        p.court.respond(d, "bafybundle", {"from": providers[1]})


def test_committee_excludes_parties_and_late_validators(
    funded, sealed, providers, validators, challenger, accounts
):
    p = funded
    job, trees = sealed
    # A validator that registers after the seal cannot sit on this round's committees.
    from contract_helpers import fund

    fund(p, accounts[15], 1_000 * E18)
    p.stakes.stake(500 * E18, {"from": accounts[15]})
    p.registry.registerValidator(100 * E18, {"from": accounts[15]})
    # validators[0] challenges: it must not judge its own challenge.
    _challenge(p, job, trees, validators[0])
    p.court.respond(1, "bafybundle", {"from": providers[1]})
    members = set(p.court.committee(1))
    assert members == set(validators[1:])


def _members(p, d):
    """The committee as brownie accounts (they are unlocked anvil accounts)."""
    return [brownie.accounts.at(a) for a in p.court.committee(d)]


def _vote(p, d, votes, chain, reveal=True):
    for m, guilty in votes.items():
        p.court.commitVote(d, vote_hash(d, m.address, guilty, SALT), {"from": m})
    if reveal:
        for m, guilty in votes.items():
            p.court.revealVote(d, guilty, SALT, {"from": m})


def test_vote_checks(funded, voting, providers, challenger, accounts, chain):
    p = funded
    _job, d = voting
    with brownie.reverts():  # no voting before the answer
        p.court.commitVote(d, b"\x01" * 32, {"from": accounts[5]})
    p.court.respond(d, "bafybundle", {"from": providers[1]})
    m = _members(p, d)
    outsider = next(a for a in accounts[5:9] if a not in m)
    with brownie.reverts():
        p.court.commitVote(d, b"\x01" * 32, {"from": outsider})
    p.court.commitVote(d, vote_hash(d, m[0].address, True, SALT), {"from": m[0]})
    with brownie.reverts():
        p.court.commitVote(d, vote_hash(d, m[0].address, True, SALT), {"from": m[0]})
    with brownie.reverts():  # Low: a zero commitment is refused
        p.court.commitVote(d, b"\x00" * 32, {"from": m[1]})
    with brownie.reverts():  # commit phase still open and not everyone committed
        p.court.revealVote(d, True, SALT, {"from": m[0]})
    _sleep(chain, 51)
    with brownie.reverts():  # commit phase over
        p.court.commitVote(d, vote_hash(d, m[1].address, True, SALT), {"from": m[1]})
    with brownie.reverts():  # nothing committed
        p.court.revealVote(d, True, SALT, {"from": m[1]})
    with brownie.reverts():  # wrong vote
        p.court.revealVote(d, False, SALT, {"from": m[0]})
    tx = p.court.revealVote(d, True, SALT, {"from": m[0]})
    assert tx.events["VoteRevealed"]["guilty"]
    with brownie.reverts():
        p.court.revealVote(d, True, SALT, {"from": m[0]})
    assert tuple(p.court.tally(d))[:3] == (1, 1, 1)
    with brownie.reverts():  # Low: a zero commitment is refused
        p.court.commitVote(d, b"\x00" * 32, {"from": m[1]})


def test_guilty_majority_slashes_provider(funded, voting, providers, challenger, chain):
    p = funded
    _job, d = voting
    p.court.respond(d, "bafybundle", {"from": providers[1]})
    m = _members(p, d)
    with brownie.reverts():  # nobody voted yet, deadline not reached
        p.court.resolve(d, {"from": challenger})
    _vote(p, d, {m[0]: True, m[1]: True, m[2]: False}, chain)
    tx = p.court.resolve(d, {"from": challenger})  # early: everyone revealed
    assert tx.events["DisputeResolved"]["providerSlashed"]
    assert p.court.credit(challenger) == BOND + 10 * E18 + 50 * E18
    assert p.court.credit(m[0]) == 25 * E18 and p.court.credit(m[1]) == 25 * E18
    assert p.court.credit(m[2]) == 0
    assert p.court.dispute(d)[7] == 2
    assert all(p.registry.activeCommittees(x) == 0 for x in m)


def test_innocent_majority_slashes_challenger(funded, voting, providers, challenger, chain):
    p = funded
    job, d = voting
    p.court.respond(d, "bafybundle", {"from": providers[1]})
    m = _members(p, d)
    stake_before = p.stakes.stakeOf(providers[1])
    _vote(p, d, {m[0]: False, m[1]: False, m[2]: True}, chain)
    tx = p.court.resolve(d, {"from": challenger})
    assert not tx.events["DisputeResolved"]["providerSlashed"]
    assert tx.events["DisputeResolved"]["slashAmount"] == BOND
    assert p.court.credit(providers[1]) == 50 * E18
    assert p.court.credit(m[0]) == 25 * E18 and p.court.credit(m[1]) == 25 * E18
    assert p.court.credit(challenger) == 0
    assert p.stakes.stakeOf(providers[1]) == stake_before
    assert not p.market.commitment(job, 0, 1)[3]
    assert p.court.dispute(d)[7] == 3


def test_tie_goes_to_the_provider_and_non_revealer_pays_what_is_decided(
    funded, voting, providers, challenger, chain
):
    p = funded
    _job, d = voting
    p.court.respond(d, "bafybundle", {"from": providers[1]})
    m = _members(p, d)
    _vote(p, d, {m[0]: True, m[1]: False, m[2]: True}, chain, reveal=False)
    p.court.revealVote(d, True, SALT, {"from": m[0]})
    p.court.revealVote(d, False, SALT, {"from": m[1]})
    with brownie.reverts():  # m[2] has not revealed and the deadline is ahead
        p.court.resolve(d, {"from": challenger})
    _sleep(chain, 101)
    stake_before = p.stakes.stakeOf(m[2])
    decided = p.court.tally(d)[5]
    assert decided == 100 * E18  # max(bond 100, 50% of minStake 200)
    tx = p.court.resolve(d, {"from": challenger})  # 2 of 3 revealed: quorum
    assert not tx.events["DisputeResolved"]["providerSlashed"]
    assert tx.events["NonRevealSlashed"]["voter"] == m[2]
    # M-3: not revealing costs what the vote decides, not a token fee.
    assert p.stakes.stakeOf(m[2]) == stake_before - decided
    # m[1] (the only majority voter) gets the bond's other half and the penalty.
    assert p.court.credit(m[1]) == 50 * E18 + decided


def test_nobody_reveals_redraws_then_voids_and_refunds_bond(
    funded, voting, providers, challenger, chain
):
    p = funded
    _job, d = voting
    p.court.respond(d, "bafybundle", {"from": providers[1]})
    first = _members(p, d)
    _sleep(chain, 101)
    tx = p.court.resolve(d, {"from": challenger})
    # No quorum: every absent member pays, a new committee is drawn, nothing is decided.
    assert len(tx.events["NonRevealSlashed"]) == 3
    assert tx.events["CommitteeRedrawn"]["attempt"] == 1
    # The three absent members lost their whole 100 TSR: only one validator can still cover
    # the dispute, short of a quorum, so the redraw voids it and the bond returns.
    assert tx.events["DisputeVoided"]["disputeId"] == d
    assert p.court.credit(challenger) == BOND
    assert p.court.dispute(d)[7] == 4
    assert p.court.openDisputes(_job, 0) == 0
    assert all(p.registry.activeCommittees(x) == 0 for x in first)


def test_unknown_dispute_reverts(funded, challenger):
    with brownie.reverts():
        funded.court.dispute(1)
    with brownie.reverts():
        funded.court.resolve(5, {"from": challenger})


def test_agents_merkle_tree_verifies_on_chain(funded, sealed, providers, challenger, chain):
    """The Python agents' tree (agents.training.merkle) yields proofs the court accepts."""
    merkle = pytest.importorskip("agents.training.merkle")
    from eth_utils import keccak

    p = funded
    job, _ = sealed
    leaves = [keccak(text=f"agents/{i}") for i in range(8)]
    tree = merkle.MerkleTree(leaves)
    # Round 1 starts after round 0 closes; commit the agents' root there.
    _sleep(chain, 101)
    p.market.finalizeRound(job, 0, {"from": challenger})
    p.market.commitRound(job, 1, 0, tree.root, final_hash("f"), "c", {"from": providers[0]})
    p.market.commitRound(job, 1, 1, tree.root, final_hash("f"), "c", {"from": providers[1]})
    record_seed(p, job, 1)
    for leaf in (0, 5, 7):
        p.court.challenge(job, 1, 1, leaf, leaves[leaf], tree.proof(leaf), {"from": challenger})
    assert p.court.openDisputes(job, 1) == 3
