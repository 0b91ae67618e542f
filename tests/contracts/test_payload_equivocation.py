"""AuditCourt.provePayloadEquivocation: a sender that signed a boundary payload its own
committed leaf does not record (a payload substituted in transit, issue 11) is convicted from
the leaf, its Merkle proof and the signature alone; every forgery of such a proof fails.

Signatures are made with agents/protocol/attestation.py, the code the transport signs with,
so the contract and the agents are checked to agree on the digest byte for byte.
"""

import brownie
import pytest
from contract_helpers import (
    E18,
    JOB_DEFAULTS,
    fund,
    honest_leaves,
    initial_hashes,
    leaf_tree,
    post_job,
    record_seed,
)
from eth_utils import keccak

from agents.protocol.attestation import BACKWARD, FORWARD, PayloadContext, sign_payload

STEPS, MICRO = JOB_DEFAULTS["stepsPerRound"], JOB_DEFAULTS["microBatches"]
OUTPUT, GRAD_OUT = 4, 6  # LEAF_FIELDS positions
SUBSTITUTE = keccak(text="substituted activations")


def _errors(exc) -> str:
    return str(getattr(exc, "revert_msg", "")) + str(exc)


def _selector(signature: str) -> str:
    return keccak(text=signature)[:4].hex()


def _fails(call, error: str, selector: str) -> None:
    """`call` reverts with the custom error `error` (brownie shows a name or a selector)."""
    with pytest.raises(brownie.exceptions.VirtualMachineError) as exc:
        call()
    text = _errors(exc.value)
    assert error in text or selector in text, text


@pytest.fixture
def keyed(accounts, funded):
    """Two staked providers whose keys this test holds (payload signers)."""
    out = []
    for _ in range(2):
        a = accounts.add()
        accounts[0].transfer(a, "10 ether")
        fund(funded, a, 10_000 * E18)
        funded.stakes.stake(1_000 * E18, {"from": a})
        out.append(a)
    return out


@pytest.fixture
def round0(funded, keyed, job_owner):
    """Job with stages 0 and 1 held by `keyed`, both round-0 traces committed, seed recorded."""
    p = funded
    job = post_job(p, job_owner)
    init = initial_hashes(2)
    trees = []
    for stage, provider in enumerate(keyed):
        p.market.joinStage(job, stage, {"from": provider})
    for stage, provider in enumerate(keyed):
        leaves = [
            (*lf[:2], init[stage], *lf[3:]) if lf[0] == 0 else lf
            for lf in honest_leaves(STEPS, MICRO, f"s{stage}")
        ]
        tree = leaf_tree(leaves)
        p.market.commitRound(job, 0, stage, tree.root, leaves[-1][7], "bafyrec", {"from": provider})
        trees.append((tree, leaves))
    record_seed(p, job, 0)
    return job, trees


def _sign(p, account, job, rnd, stage, leaf, direction, payload_hash, *, market=None):
    ctx = PayloadContext(
        brownie.chain.id,
        market or p.market.address,
        job,
        rnd,
        stage,
        leaf[0],
        leaf[1],
        direction,
    )
    return sign_payload(account.private_key, ctx, payload_hash)


def test_a_forward_payload_its_leaf_does_not_record_slashes_the_sender(
    funded, keyed, round0, challenger
):
    p = funded
    job, [(tree, leaves), _] = round0
    i = 3  # step 1, micro-batch 1
    sig = _sign(p, keyed[0], job, 0, 0, leaves[i], FORWARD, SUBSTITUTE)
    stake = p.stakes.stakeOf(keyed[0])
    tx = p.court.provePayloadEquivocation(
        job, 0, 0, FORWARD, (leaves[i], tree.proof(i)), SUBSTITUTE, sig, {"from": challenger}
    )
    ev = tx.events["PayloadEquivocationProven"]
    assert (ev["stage"], ev["direction"], ev["leafIndex"]) == (0, FORWARD, i)
    assert ev["slashAmount"] == JOB_DEFAULTS["minStake"]
    assert p.stakes.stakeOf(keyed[0]) == stake - JOB_DEFAULTS["minStake"]
    assert p.court.credit(challenger) == 10 * E18  # the bounty
    assert p.market.commitment(job, 0, 0)[3]  # slashed
    assert not p.market.commitment(job, 0, 1)[3]  # the receiver is untouched
    assert p.market.stageProvider(job, 0) == brownie.ZERO_ADDRESS  # vacated for a replacement
    _fails(  # slashed once only
        lambda: p.court.provePayloadEquivocation(
            job, 0, 0, FORWARD, (leaves[i], tree.proof(i)), SUBSTITUTE, sig, {"from": challenger}
        ),
        "NothingToChallenge",
        _selector("NothingToChallenge(uint256,uint32,uint32)"),
    )


def test_a_backward_payload_its_leaf_does_not_record_slashes_the_sender(
    funded, keyed, round0, challenger
):
    p = funded
    job, [_, (tree, leaves)] = round0
    sig = _sign(p, keyed[1], job, 0, 1, leaves[0], BACKWARD, SUBSTITUTE)
    tx = p.court.provePayloadEquivocation(
        job, 0, 1, BACKWARD, (leaves[0], tree.proof(0)), SUBSTITUTE, sig, {"from": challenger}
    )
    assert tx.events["PayloadEquivocationProven"]["stage"] == 1
    assert p.market.commitment(job, 0, 1)[3] and not p.market.commitment(job, 0, 0)[3]


def test_forged_equivocation_proofs_are_refused(funded, keyed, round0, challenger, accounts):
    p = funded
    job, [(tree, leaves), (tree1, leaves1)] = round0
    i = 1
    sent = (leaves[i], tree.proof(i))
    not_signer = _selector("NotProviderSignature(address,address)")
    not_fault = _selector("NotAFault(bytes32)")

    def prove(stage, direction, leaf_proof, payload_hash, sig):
        return lambda: p.court.provePayloadEquivocation(
            job, 0, stage, direction, leaf_proof, payload_hash, sig, {"from": challenger}
        )

    # Someone else's signature (the receiver framing its sender with a key of its own).
    other = _sign(p, keyed[1], job, 0, 0, leaves[i], FORWARD, SUBSTITUTE)
    _fails(prove(0, FORWARD, sent, SUBSTITUTE, other), "NotProviderSignature", not_signer)
    stranger = accounts.add()
    forged = _sign(p, stranger, job, 0, 0, leaves[i], FORWARD, SUBSTITUTE)
    _fails(prove(0, FORWARD, sent, SUBSTITUTE, forged), "NotProviderSignature", not_signer)
    # The honest sender's real signature over the payload its leaf records.
    honest = _sign(p, keyed[0], job, 0, 0, leaves[i], FORWARD, leaves[i][OUTPUT])
    _fails(prove(0, FORWARD, sent, leaves[i][OUTPUT], honest), "NotAFault", not_fault)
    honest_back = _sign(p, keyed[1], job, 0, 1, leaves1[i], BACKWARD, leaves1[i][GRAD_OUT])
    sent1 = (leaves1[i], tree1.proof(i))
    _fails(prove(1, BACKWARD, sent1, leaves1[i][GRAD_OUT], honest_back), "NotAFault", not_fault)
    # A leaf that is not in the committed root (its output rewritten to something else).
    fake = (*leaves[i][:OUTPUT], keccak(text="rewritten"), *leaves[i][OUTPUT + 1 :])
    real = _sign(p, keyed[0], job, 0, 0, leaves[i], FORWARD, SUBSTITUTE)
    _fails(
        prove(0, FORWARD, (fake, tree.proof(i)), SUBSTITUTE, real),
        "LeafNotInRoot",
        _selector("LeafNotInRoot(bytes32,bytes32)"),
    )
    # A real substitution signature, replayed for another job, round, stage, step, micro-batch,
    # direction or market: the digest differs, so it recovers to nobody's key.
    elsewhere = [
        _sign(p, keyed[0], job + 1, 0, 0, leaves[i], FORWARD, SUBSTITUTE),
        _sign(p, keyed[0], job, 1, 0, leaves[i], FORWARD, SUBSTITUTE),
        _sign(p, keyed[0], job, 0, 1, leaves[i], FORWARD, SUBSTITUTE),
        _sign(p, keyed[0], job, 0, 0, leaves[i - 1], FORWARD, SUBSTITUTE),
        _sign(p, keyed[0], job, 0, 0, leaves[i], BACKWARD, SUBSTITUTE),
        _sign(p, keyed[0], job, 0, 0, leaves[i], FORWARD, SUBSTITUTE, market=p.court.address),
    ]
    for sig in elsewhere:
        _fails(prove(0, FORWARD, sent, SUBSTITUTE, sig), "NotProviderSignature", not_signer)
    # Stage 0's real substitution signature presented against stage 1's commitment.
    _fails(prove(1, FORWARD, sent1, SUBSTITUTE, real), "NotProviderSignature", not_signer)
    _fails(prove(0, 2, sent, SUBSTITUTE, real), "NotAFault", not_fault)  # no such direction
    _fails(
        prove(0, FORWARD, sent, SUBSTITUTE, real[:64]),
        "ECDSAInvalidSignatureLength",
        _selector("ECDSAInvalidSignatureLength(uint256)"),
    )
    # After the challenge window the proof is too late, like every other.
    brownie.chain.sleep(JOB_DEFAULTS["challengeWindow"] + 5)
    brownie.chain.mine()
    _fails(
        prove(0, FORWARD, sent, SUBSTITUTE, real),
        "OutsideChallengeWindow",
        _selector("OutsideChallengeWindow(uint64,uint64,uint64)"),
    )
    assert not p.market.commitment(job, 0, 0)[3] and not p.market.commitment(job, 0, 1)[3]
