"""AuditCourt.challengeIndex / revealLeaf: disputes over a leaf nobody else can prove.

A provider that commits a root but publishes a record that does not match it leaves
validators no leaf to prove. challengeIndex names an index; the provider must reveal the
leaf hash with its proof (revealLeaf) or be slashed.

Branches: respond on an unrevealed dispute -> LeafNotRevealed; revealLeaf with a wrong
proof -> LeafNotInRoot; revealLeaf by someone else -> NotAccused; revealLeaf on a proven
challenge -> LeafAlreadyRevealed; a valid reveal -> LeafRevealed, committee drawn, voting;
no reveal before the deadline -> slashUnanswered slashes the provider.
"""

import brownie


def test_reveal_then_committee(funded, sealed, providers, challenger, chain):
    p = funded
    job, trees = sealed
    tree = trees[1]
    tx = p.court.challengeIndex(job, 0, 1, 2, {"from": challenger})
    d = tx.events["ChallengeOpened"]["disputeId"]
    assert p.court.dispute(d)[4] == "0x" + "00" * 32
    with brownie.reverts():  # must reveal, not just respond
        p.court.respond(d, "bafy", {"from": providers[1]})
    with brownie.reverts():  # a leaf that is not in the root
        p.court.revealLeaf(d, tree.leaf_hashes[3], tree.proof(3), "bafy", {"from": providers[1]})
    with brownie.reverts():  # only the accused
        p.court.revealLeaf(d, tree.leaf_hashes[2], tree.proof(2), "bafy", {"from": providers[0]})
    tx = p.court.revealLeaf(d, tree.leaf_hashes[2], tree.proof(2), "bafy", {"from": providers[1]})
    assert tx.events["LeafRevealed"]["leafHash"] == "0x" + tree.leaf_hashes[2].hex()
    assert "CommitteeDrawn" in tx.events
    assert p.court.dispute(d)[7] == 1  # Voting
    assert p.court.dispute(d)[4] == "0x" + tree.leaf_hashes[2].hex()


def test_proven_challenge_cannot_be_revealed(funded, sealed, providers, challenger, chain):
    p = funded
    job, trees = sealed
    tree = trees[1]
    tx = p.court.challenge(job, 0, 1, 1, tree.leaf_hashes[1], tree.proof(1), {"from": challenger})
    d = tx.events["ChallengeOpened"]["disputeId"]
    with brownie.reverts():
        p.court.revealLeaf(d, tree.leaf_hashes[1], tree.proof(1), "b", {"from": providers[1]})


def test_unrevealed_leaf_is_slashed(funded, sealed, providers, challenger, chain):
    p = funded
    job, _ = sealed
    stake_before = p.stakes.stakeOf(providers[1])
    d = p.court.challengeIndex(job, 0, 1, 0, {"from": challenger}).events["ChallengeOpened"][
        "disputeId"
    ]
    chain.sleep(int(p.court.responseWindow()) + 1)
    chain.mine()
    tx = p.court.slashUnanswered(d, {"from": challenger})
    assert tx.events["DisputeResolved"]["providerSlashed"]
    assert p.stakes.stakeOf(providers[1]) < stake_before
    assert p.market.commitment(job, 0, 1)[3]  # slashed
