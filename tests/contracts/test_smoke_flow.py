"""End-to-end happy path of one job: the contracts wired by scripts/deploy.py work together."""

from contract_helpers import E18, budget, fill, final_hash, make_tree, post_job


def test_two_round_job_pays_mints_and_completes(funded, job_owner, providers, chain):
    p = funded
    before = p.token.balanceOf(job_owner)
    job = post_job(p, job_owner)
    assert p.token.balanceOf(job_owner) == before - budget()
    fill(p, job, providers[:2])
    for rnd in range(2):
        for s in range(2):
            tree = make_tree(f"{job}/{rnd}/{s}")
            p.market.commitRound(
                job, rnd, s, tree.root, final_hash("f"), "bafyrecord", {"from": providers[s]}
            )
        chain.sleep(101)
        chain.mine()
        p.market.finalizeRound(job, rnd, {"from": job_owner})
    state = p.market.jobState(job)
    assert state[0] == 2
    # Rewards: 2 rounds x 10 TSR per provider; the validator pool (50) comes back to the owner.
    assert p.token.balanceOf(job_owner) == before - budget() + 50 * E18
    # Rewards and shares are credits, claimed by each party (pull).
    assert p.vault.rewardsOwed(providers[0]) == 20 * E18
    assert p.shares.balanceOf(providers[0], job) == 0
    for a in [providers[0], providers[1], job_owner]:
        p.vault.claimShares(job, a, {"from": a})
    bal = p.token.balanceOf(providers[0])
    p.vault.claimRewards({"from": providers[0]})
    assert p.token.balanceOf(providers[0]) - bal == 20 * E18
    assert p.shares.balanceOf(providers[0], job) == 200
    assert p.shares.balanceOf(job_owner, job) == 2 * (200 * 2000 // 8000)
    assert p.stakes.lockedOf(providers[0]) == 0
