"""JobMarket, per function:

postJob: each bad parameter -> InvalidJobParameter; escrow pulled; JobPosted; ids from 1.
joinStage: unknown job; stage out of range; stage taken; second stage by one provider;
  not enough free stake; ok -> StageJoined, stake locked; last join -> Running, RoundStarted.
commitRound: not the provider; wrong round; after deadline; empty root/CID; twice;
  ok -> RoundCommitted; last commit -> RoundSealed.
sealRound: before deadline -> CommitWindowOpen; absent stages slashed, vacated, unlocked.
auditSeed/recordAuditSeed: not sealed; not yet; value; expired -> re-anchored.
finalizeRound: window open; disputes open (see test_audit_court); pays + mints + owner share;
  next round starts; last round completes, refunds, unlocks; vacated stage re-joined resumes.
cancelJob: not owner; round in flight; ok -> refund, JobCancelled, locks released.
slashCommitment: only the court.
"""

import brownie
import pytest
from contract_helpers import (
    E18,
    JOB_DEFAULTS,
    budget,
    commit_all,
    fill,
    final_hash,
    initial_hashes,
    job_tuple,
    make_tree,
    post_job,
    record_seed,
)


def _sleep(chain, seconds):
    chain.sleep(seconds)
    chain.mine()


@pytest.mark.parametrize(
    "field,value",
    [
        ("specCID", ""),
        ("numStages", 0),
        ("numStages", 65),
        ("rounds", 0),
        ("stepsPerRound", 0),
        ("sharesPerStageRound", 0),
        ("minStake", 0),
        ("commitWindow", 0),
        ("challengeWindow", 0),
        ("auditLeaves", 0),
        ("ownerShareBps", 10_000),
        ("microBatches", 0),
        ("rounds", 10_001),
        ("commitWindow", 2**64 - 1),
        ("challengeWindow", 2**64 - 1),
        ("challengeWindow", 19),
        ("sharesPerStageRound", 2**255),
        ("auditLeaves", 9),
    ],
)
def test_post_job_rejects_bad_parameter(funded, job_owner, field, value):
    with brownie.reverts():
        funded.market.postJob(job_tuple(**{field: value}), initial_hashes(2), {"from": job_owner})


def test_post_job_needs_one_nonzero_initial_hash_per_stage(funded, job_owner):
    p = funded
    for hashes in ([], initial_hashes(3), [initial_hashes(1)[0], b"\x00" * 32]):
        with brownie.reverts():
            p.market.postJob(job_tuple(), hashes, {"from": job_owner})
    job = post_job(p, job_owner)
    assert p.terms.initialStateHash(job, 1) == "0x" + initial_hashes(2)[1].hex()


def test_post_job_escrows_budget_and_emits(funded, job_owner):
    p = funded
    before = p.token.balanceOf(job_owner)
    assert p.market.nextJobId() == 1
    tx = p.market.postJob(job_tuple(), initial_hashes(2), {"from": job_owner})
    assert tx.return_value == 1
    assert tx.events["JobPosted"]["owner"] == job_owner
    assert tx.events["JobPosted"]["specCID"] == JOB_DEFAULTS["specCID"]
    assert p.token.balanceOf(job_owner) == before - budget()
    state = p.market.jobState(1)
    assert state[0] == 0 and state[1] == job_owner and state[4] == budget()
    assert p.terms.params(1)[1] == JOB_DEFAULTS["numStages"]
    assert p.market.nextJobId() == 2


def test_post_job_needs_court(JobMarket, funded, job_owner):
    p = funded
    bare = JobMarket.deploy(
        p.token, p.stakes, p.shares, p.randomness, 1000, 20, p.deployer, {"from": p.deployer}
    )
    with brownie.reverts():
        bare.postJob(job_tuple(), initial_hashes(2), {"from": job_owner})
    with brownie.reverts():
        bare.setCourt(p.court, {"from": job_owner})
    bare.setCourt(p.court, {"from": p.deployer})
    with brownie.reverts():
        bare.setCourt(p.court, {"from": p.deployer})


def test_join_unknown_job_and_out_of_range(funded, providers, job_owner):
    p = funded
    with brownie.reverts():
        p.market.joinStage(9, 0, {"from": providers[0]})
    job = post_job(p, job_owner)
    with brownie.reverts():
        p.market.joinStage(job, 2, {"from": providers[0]})


def test_join_locks_stake_and_emits(funded, providers, job_owner):
    p = funded
    job = post_job(p, job_owner)
    tx = p.market.joinStage(job, 1, {"from": providers[0]})
    assert tx.events["StageJoined"]["stage"] == 1
    assert tx.events["StageJoined"]["provider"] == providers[0]
    assert p.stakes.lockedOf(providers[0]) == JOB_DEFAULTS["minStake"]
    assert p.market.stageProvider(job, 1) == providers[0]
    assert p.market.stageOf(job, providers[0]) == 1
    assert p.market.stageOf(job, providers[1]) == -1
    assert p.market.jobState(job)[0] == 0
    with brownie.reverts():
        p.market.joinStage(job, 1, {"from": providers[1]})


def test_join_without_enough_free_stake_reverts(funded, job_owner, accounts):
    p = funded
    job = post_job(p, job_owner)
    with brownie.reverts():
        p.market.joinStage(job, 0, {"from": accounts[15]})


def test_last_join_starts_round_zero(funded, providers, job_owner):
    p = funded
    job = post_job(p, job_owner)
    p.market.joinStage(job, 0, {"from": providers[0]})
    tx = p.market.joinStage(job, 1, {"from": providers[1]})
    assert tx.events["RoundStarted"]["round"] == 0
    state = p.market.jobState(job)
    assert state[0] == 1 and state[2] == 0 and state[3] == tx.timestamp
    info = p.market.roundInfo(job, 0)
    assert info[0] == tx.timestamp and info[1] == tx.timestamp + JOB_DEFAULTS["commitWindow"]


@pytest.fixture
def running(funded, providers, job_owner):
    job = post_job(funded, job_owner)
    fill(funded, job, providers[:2])
    return job


def test_commit_checks(funded, running, providers, chain):
    p, job = funded, running
    root = make_tree("x").root
    with brownie.reverts():  # someone else's stage
        p.market.commitRound(job, 0, 1, root, final_hash("f"), "cid", {"from": providers[0]})
    with brownie.reverts():  # not the current round
        p.market.commitRound(job, 1, 0, root, final_hash("f"), "cid", {"from": providers[0]})
    with brownie.reverts():  # empty root
        p.market.commitRound(
            job, 0, 0, b"\x00" * 32, final_hash("f"), "cid", {"from": providers[0]}
        )
    with brownie.reverts():  # empty CID
        p.market.commitRound(job, 0, 0, root, final_hash("f"), "", {"from": providers[0]})
    tx = p.market.commitRound(job, 0, 0, root, final_hash("f"), "cid0", {"from": providers[0]})
    ev = tx.events["RoundCommitted"]
    assert ev["traceRoot"] == "0x" + root.hex() and ev["recordCID"] == "cid0"
    assert ev["provider"] == providers[0]
    assert ev["finalStateHash"] == "0x" + final_hash("f").hex()
    c = p.market.commitment(job, 0, 0)
    assert c[0] == "0x" + root.hex() and c[1] == "0x" + final_hash("f").hex()
    assert c[2] == providers[0] and not c[3]
    with brownie.reverts():  # empty final state hash
        p.market.commitRound(job, 0, 1, root, b"\x00" * 32, "cid", {"from": providers[1]})
    with brownie.reverts():  # twice
        p.market.commitRound(job, 0, 0, root, final_hash("f"), "cid0", {"from": providers[0]})
    _sleep(chain, 101)
    with brownie.reverts():  # after the deadline
        p.market.commitRound(job, 0, 1, root, final_hash("f"), "cid1", {"from": providers[1]})


def test_last_commit_seals_round(funded, running, providers):
    p, job = funded, running
    p.market.commitRound(
        job, 0, 0, make_tree("a").root, final_hash("f"), "c", {"from": providers[0]}
    )
    tx = p.market.commitRound(
        job, 0, 1, make_tree("b").root, final_hash("f"), "c", {"from": providers[1]}
    )
    assert tx.events["RoundSealed"]["sealBlock"] == tx.block_number
    info = p.market.roundInfo(job, 0)
    assert info[2] == tx.timestamp and info[3] == tx.block_number
    with brownie.reverts():
        p.market.sealRound(job, 0, {"from": providers[0]})


def test_seal_before_deadline_reverts(funded, running, providers):
    with brownie.reverts():
        funded.market.sealRound(running, 0, {"from": providers[0]})


def test_seal_slashes_and_vacates_absent_stage(funded, running, providers, job_owner, chain):
    p, job = funded, running
    p.market.commitRound(
        job, 0, 0, make_tree("a").root, final_hash("f"), "c", {"from": providers[0]}
    )
    _sleep(chain, 101)
    owner_before = p.token.balanceOf(job_owner)
    pool_before = p.terms.funds(job)[1]
    stake_before = p.stakes.stakeOf(providers[1])
    tx = p.market.sealRound(job, 0, {"from": providers[2]})
    penalty = JOB_DEFAULTS["minStake"] // 10
    assert tx.events["StageVacated"]["provider"] == providers[1]
    assert tx.events["LivenessSlashed"]["penalty"] == penalty
    assert p.stakes.stakeOf(providers[1]) == stake_before - penalty
    # Low: the penalty feeds the job's validator pool, never the owner (who sets the window).
    assert p.token.balanceOf(job_owner) == owner_before
    assert p.terms.funds(job)[1] == pool_before + penalty
    assert p.stakes.lockedOf(providers[1]) == 0
    assert p.market.stageProvider(job, 1) == brownie.ZERO_ADDRESS
    assert p.market.filledStages(job) == 1


def test_audit_seed_lifecycle(funded, running, providers, chain, web3):
    """The seed is prevrandao read IN the anchor block (seal + delay): before it a poke does
    nothing, in it the seed is stored, after it an unrecorded seed re-anchors."""
    p, job = funded, running
    with brownie.reverts():  # not sealed
        p.market.auditSeed(job, 0)
    commit_all(p, job, 0, providers[:2], seed=False)
    seal_block = p.market.roundInfo(job, 0)[3]
    anchor = p.market.seedAnchor(job, 0)
    assert anchor == seal_block + p.randomness.delay()
    with brownie.reverts():
        p.market.auditSeed(job, 0)
    tx = p.market.recordAuditSeed(job, 0, {"from": providers[2]})
    assert tx.block_number == anchor
    from eth_abi import encode
    from eth_utils import keccak

    mix = web3.eth.get_block(anchor)["mixHash"]
    mix = mix if int.from_bytes(mix) else keccak(encode(["uint64"], [anchor]))
    expected = keccak(encode(["bytes32", "uint256", "uint32"], [mix, job, 0]))
    assert tx.events["AuditSeedRecorded"]["seed"] == "0x" + expected.hex()
    chain.mine(300)
    assert p.market.auditSeed(job, 0) == "0x" + expected.hex()  # stored: outlives any window


def test_audit_seed_missed_anchor_reanchors(funded, running, providers, chain):
    p, job = funded, running
    commit_all(p, job, 0, providers[:2], seed=False)
    chain.mine(5)
    tx = p.market.recordAuditSeed(job, 0, {"from": providers[2]})
    assert tx.return_value == "0x" + "00" * 32
    new_anchor = tx.events["AuditSeedReanchored"]["anchorBlock"]
    assert new_anchor == tx.block_number + p.randomness.delay()
    assert p.market.seedAnchor(job, 0) == new_anchor
    assert record_seed(p, job, 0) != "0x" + "00" * 32


def test_finalize_checks_and_payout(funded, running, providers, job_owner, chain):
    p, job = funded, running
    with brownie.reverts():  # not sealed
        p.market.finalizeRound(job, 0, {"from": job_owner})
    commit_all(p, job, 0, providers[:2])
    with brownie.reverts():  # challenge window open
        p.market.finalizeRound(job, 0, {"from": job_owner})
    _sleep(chain, 101)
    tx = p.market.finalizeRound(job, 0, {"from": providers[2]})
    paid = tx.events["StagePaid"]
    assert len(paid) == 2 and paid[0]["reward"] == 10 * E18 and paid[0]["shares"] == 100
    assert tx.events["RoundFinalized"]["round"] == 0
    assert tx.events["OwnerSharesMinted"]["shares"] == 50
    assert tx.events["RoundStarted"]["round"] == 1
    # Credited, not pushed: each party pulls its own.
    for a in providers[:2]:
        assert p.vault.rewardsOwed(a) == 10 * E18
        assert p.vault.sharesOwed(job, a) == 100
        bal = p.token.balanceOf(a)
        assert p.vault.claimRewards({"from": a}).return_value == 10 * E18
        assert p.token.balanceOf(a) == bal + 10 * E18
        p.vault.claimShares(job, a, {"from": a})
        assert p.shares.balanceOf(a, job) == 100
        with brownie.reverts():
            p.vault.claimRewards({"from": a})
    assert p.vault.sharesOwed(job, job_owner) == 50
    assert p.vault.totalRewardsOwed() == 0
    assert p.market.lastFinalizedRound(job, 0) == 0
    assert p.market.jobState(job)[4] == budget() - 20 * E18
    with brownie.reverts():  # not the current round any more
        p.market.finalizeRound(job, 0, {"from": job_owner})


def test_vacated_stage_rejoined_resumes(funded, running, providers, job_owner, chain):
    p, job = funded, running
    p.market.commitRound(
        job, 0, 0, make_tree("a").root, final_hash("f"), "c", {"from": providers[0]}
    )
    _sleep(chain, 101)
    p.market.sealRound(job, 0, {"from": job_owner})
    _sleep(chain, 101)
    tx = p.market.finalizeRound(job, 0, {"from": job_owner})
    assert len(tx.events["StagePaid"]) == 1
    assert "RoundStarted" not in tx.events  # stage 1 is vacant
    assert p.market.jobState(job)[2] == 1 and p.market.jobState(job)[3] == 0
    assert p.market.lastFinalizedRound(job, 1) == -1
    with brownie.reverts():  # round 1 waits for the stage
        p.market.commitRound(
            job, 1, 0, make_tree("b").root, final_hash("f"), "c", {"from": providers[0]}
        )
    with brownie.reverts():  # a provider of stage 0 cannot take stage 1 too
        p.market.joinStage(job, 1, {"from": providers[0]})
    tx = p.market.joinStage(job, 1, {"from": providers[2]})
    assert tx.events["RoundStarted"]["round"] == 1
    commit_all(p, job, 1, [providers[0], providers[2]])
    _sleep(chain, 101)
    tx = p.market.finalizeRound(job, 1, {"from": job_owner})
    assert tx.events["JobCompleted"]["jobId"] == job
    assert p.market.lastFinalizedRound(job, 1) == 1
    # Unspent: stage 1's round-0 reward (10) + the validator pool (50) + the liveness
    # penalty that fed the pool (20).
    assert tx.events["EscrowRefunded"]["refund"] == 80 * E18
    for a in (providers[0], providers[2]):
        assert p.stakes.lockedOf(a) == 0
    assert p.market.jobState(job)[0] == 2


def test_cancel_job(funded, providers, job_owner):
    p = funded
    job = post_job(p, job_owner)
    p.market.joinStage(job, 0, {"from": providers[0]})
    with brownie.reverts():
        p.market.cancelJob(job, {"from": providers[0]})
    before = p.token.balanceOf(job_owner)
    tx = p.market.cancelJob(job, {"from": job_owner})
    assert tx.events["JobCancelled"]["jobId"] == job
    assert p.token.balanceOf(job_owner) == before + budget()
    assert p.stakes.lockedOf(providers[0]) == 0
    assert p.market.jobState(job)[0] == 3
    with brownie.reverts():
        p.market.cancelJob(job, {"from": job_owner})
    with brownie.reverts():
        p.market.joinStage(job, 1, {"from": providers[1]})


def test_cancel_running_job_with_round_in_flight_reverts(funded, running, job_owner):
    with brownie.reverts():
        funded.market.cancelJob(running, {"from": job_owner})


def test_slash_commitment_only_court(funded, running, providers):
    with brownie.reverts():
        funded.market.slashCommitment(running, 0, 0, 10_000, {"from": providers[0]})


def test_leave_stage_of_open_job_releases_the_allocation(funded, providers, job_owner):
    p = funded
    job = post_job(p, job_owner)
    p.market.joinStage(job, 0, {"from": providers[0]})
    with brownie.reverts():  # holds nothing
        p.market.leaveStage(job, {"from": providers[1]})
    tx = p.market.leaveStage(job, {"from": providers[0]})
    assert tx.events["StageVacated"]["provider"] == providers[0]
    assert p.stakes.lockedOf(providers[0]) == 0
    assert p.market.filledStages(job) == 0
    p.market.joinStage(job, 0, {"from": providers[0]})  # it may come back
