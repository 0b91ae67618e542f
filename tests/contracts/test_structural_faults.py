"""AuditCourt.proveFault: structural faults convicted from the leaves alone (issue 11).

A provider commits a tree of v2 leaves (full fields; the court recomputes each leaf hash).
Each kind of fault is proven with the leaves and their proofs and slashes the whole job
allocation at once, no committee; the same proof against an honest trace is refused, so an
honest provider can never be convicted this way.
"""

import brownie
import pytest
from contract_helpers import (
    E18,
    JOB_DEFAULTS,
    honest_leaves,
    initial_hashes,
    leaf_hash_v2,
    leaf_tree,
    post_job,
    record_seed,
)

STEPS, MICRO = JOB_DEFAULTS["stepsPerRound"], JOB_DEFAULTS["microBatches"]
STEP_PARAMS, STEP_GAP, START, FINAL = 0, 1, 2, 3


def _sleep(chain, seconds):
    chain.sleep(seconds)
    chain.mine()


def _honest(tag, start=None):
    """An honest trace whose first paramsBefore is `start` (default: the leaf helper's)."""
    leaves = honest_leaves(STEPS, MICRO, tag)
    if start is not None:
        leaves = [_with(lf, paramsBefore=start) if lf[0] == 0 else lf for lf in leaves]
    return leaves


def _with(lf, **fields):
    from contract_helpers import LEAF_FIELDS

    values = dict(zip(LEAF_FIELDS, lf, strict=True))
    values.update(fields)
    return tuple(values[f] for f in LEAF_FIELDS)


def _commit(p, job, rnd, stage, provider, leaves, final=None):
    tree = leaf_tree(leaves)
    final = final if final is not None else leaves[-1][7]
    p.market.commitRound(job, rnd, stage, tree.root, final, "bafyrec", {"from": provider})
    return tree


def _proof(tree, leaves, i):
    return (leaves[i], tree.proof(i))


@pytest.fixture
def job(funded, providers, job_owner):
    """A 2-stage job whose stages start from initial_hashes(2)."""
    p = funded
    j = post_job(p, job_owner)
    p.market.joinStage(j, 0, {"from": providers[0]})
    p.market.joinStage(j, 1, {"from": providers[1]})
    return j


def _round0(p, job, providers, leaves1, final1=None):
    """Stage 0 honest from its initial state; stage 1 commits `leaves1`."""
    init = initial_hashes(2)
    l0 = _honest("s0", start=init[0])
    t0 = _commit(p, job, 0, 0, providers[0], l0)
    t1 = _commit(p, job, 0, 1, providers[1], leaves1, final1)
    record_seed(p, job, 0)
    return (t0, l0), (t1, leaves1)


def test_leaf_hash_is_the_v2_encoding(funded):
    lf = honest_leaves(1, 1, "enc")[0]
    assert funded.court.leafHash(lf) == "0x" + leaf_hash_v2(lf).hex()


def test_step_params_mismatch_is_slashed_at_once(funded, job, providers, challenger):
    """Two micro-batches of one step that start from different weights."""
    p = funded
    init = initial_hashes(2)
    leaves = _honest("s1", start=init[1])
    leaves[3] = _with(leaves[3], paramsBefore=b"\x55" * 32)  # step 1, micro-batch 1
    _, (tree, leaves) = _round0(p, job, providers, leaves)
    stake = p.stakes.stakeOf(providers[1])
    with brownie.reverts():  # two leaves of the step that agree: no fault
        p.court.proveFault(
            job,
            0,
            1,
            STEP_PARAMS,
            _proof(tree, leaves, 0),
            _proof(tree, leaves, 1),
            {"from": challenger},
        )
    with brownie.reverts():  # different steps are not this kind
        p.court.proveFault(
            job,
            0,
            1,
            STEP_PARAMS,
            _proof(tree, leaves, 1),
            _proof(tree, leaves, 3),
            {"from": challenger},
        )
    tx = p.court.proveFault(
        job,
        0,
        1,
        STEP_PARAMS,
        _proof(tree, leaves, 2),
        _proof(tree, leaves, 3),
        {"from": challenger},
    )
    assert tx.events["FaultProven"]["slashAmount"] == JOB_DEFAULTS["minStake"]
    assert p.stakes.stakeOf(providers[1]) == stake - JOB_DEFAULTS["minStake"]
    assert p.court.credit(challenger) == 10 * E18  # the bounty
    assert p.market.commitment(job, 0, 1)[3]
    assert p.market.stageProvider(job, 1) == brownie.ZERO_ADDRESS
    with brownie.reverts():  # slashed once only
        p.court.proveFault(
            job,
            0,
            1,
            STEP_PARAMS,
            _proof(tree, leaves, 2),
            _proof(tree, leaves, 3),
            {"from": challenger},
        )


def test_weights_swapped_between_steps_are_slashed(funded, job, providers, challenger):
    """paramsBefore(t+1) != paramsAfter(t): weights replaced between steps."""
    p = funded
    init = initial_hashes(2)
    leaves = _honest("s1", start=init[1])
    swapped = b"\x77" * 32
    leaves[4] = _with(leaves[4], paramsBefore=swapped)  # step 2, both micro-batches
    leaves[5] = _with(leaves[5], paramsBefore=swapped)
    _, (tree, leaves) = _round0(p, job, providers, leaves)
    with brownie.reverts():  # steps 0 -> 1 are continuous
        p.court.proveFault(
            job,
            0,
            1,
            STEP_GAP,
            _proof(tree, leaves, 1),
            _proof(tree, leaves, 2),
            {"from": challenger},
        )
    with brownie.reverts():  # not consecutive
        p.court.proveFault(
            job,
            0,
            1,
            STEP_GAP,
            _proof(tree, leaves, 0),
            _proof(tree, leaves, 4),
            {"from": challenger},
        )
    tx = p.court.proveFault(
        job,
        0,
        1,
        STEP_GAP,
        _proof(tree, leaves, 3),
        _proof(tree, leaves, 4),
        {"from": challenger},
    )
    assert tx.events["FaultProven"]["kind"] == STEP_GAP


def test_round_zero_from_arbitrary_weights_is_slashed(funded, job, providers, challenger):
    """Round 0's first paramsBefore is not the initial state hash committed with the job."""
    p = funded
    leaves = _honest("s1", start=b"\x99" * 32)
    (t0, l0), (tree, leaves) = _round0(p, job, providers, leaves)
    empty = (leaves[0], [])
    with brownie.reverts():  # stage 0 started from its committed initial state
        p.court.proveFault(job, 0, 0, START, _proof(t0, l0, 0), empty, {"from": challenger})
    with brownie.reverts():  # only a step-0 leaf shows where the round starts
        p.court.proveFault(job, 0, 1, START, _proof(tree, leaves, 2), empty, {"from": challenger})
    tx = p.court.proveFault(job, 0, 1, START, _proof(tree, leaves, 1), empty, {"from": challenger})
    assert tx.events["FaultProven"]["kind"] == START


def test_published_checkpoint_not_the_traced_state_is_slashed(funded, job, providers, challenger):
    """The committed final state hash (the published checkpoint) is not the last paramsAfter."""
    p = funded
    init = initial_hashes(2)
    leaves = _honest("s1", start=init[1])
    (t0, l0), (tree, leaves) = _round0(p, job, providers, leaves, final1=b"\x44" * 32)
    last = len(leaves) - 1
    empty = (leaves[0], [])
    with brownie.reverts():  # stage 0 published the state its trace ends in
        p.court.proveFault(job, 0, 0, FINAL, _proof(t0, l0, last), empty, {"from": challenger})
    with brownie.reverts():  # not the last step
        p.court.proveFault(job, 0, 1, FINAL, _proof(tree, leaves, 0), empty, {"from": challenger})
    p.court.proveFault(job, 0, 1, FINAL, _proof(tree, leaves, last), empty, {"from": challenger})
    assert p.market.commitment(job, 0, 1)[3]


def test_round_not_starting_from_last_finalized_state_is_slashed(
    funded, job, providers, challenger, chain
):
    """Round 1 must start from round 0's committed final state (the finalized checkpoint)."""
    p = funded
    init = initial_hashes(2)
    l1 = _honest("s1", start=init[1])
    _round0(p, job, providers, l1)
    _sleep(chain, 101)
    p.market.finalizeRound(job, 0, {"from": challenger})
    prev_final = l1[-1][7]
    assert p.market.stateHashes(job, 1, 1)[0] == "0x" + prev_final.hex()
    good = _honest("r1s0", start=_honest("s0", start=init[0])[-1][7])
    bad = _honest("r1s1", start=b"\x12" * 32)  # not where round 0 ended
    t0 = _commit(p, job, 1, 0, providers[0], good)
    t1 = _commit(p, job, 1, 1, providers[1], bad)
    record_seed(p, job, 1)
    empty = (bad[0], [])
    with brownie.reverts():
        p.court.proveFault(job, 1, 0, START, _proof(t0, good, 0), empty, {"from": challenger})
    p.court.proveFault(job, 1, 1, START, _proof(t1, bad, 0), empty, {"from": challenger})
    assert p.market.commitment(job, 1, 1)[3]


def test_fault_proofs_need_the_window_and_a_real_leaf(funded, job, providers, challenger, chain):
    p = funded
    init = initial_hashes(2)
    leaves = _honest("s1", start=b"\x98" * 32)
    _, (tree, leaves) = _round0(p, job, providers, leaves)
    forged = _with(leaves[0], input=b"\x01" * 32)
    with brownie.reverts():  # a leaf that is not in the root
        p.court.proveFault(
            job, 0, 1, START, (forged, tree.proof(0)), (forged, []), {"from": challenger}
        )
    with brownie.reverts():  # a leaf whose step / micro-batch is not its index
        p.court.proveFault(
            job, 0, 1, START, (leaves[0], tree.proof(1)), (forged, []), {"from": challenger}
        )
    _sleep(chain, 101)
    with brownie.reverts():  # window closed
        p.court.proveFault(
            job, 0, 1, START, _proof(tree, leaves, 0), (forged, []), {"from": challenger}
        )
    assert init  # the initial hashes were committed with the job
