"""Helpers shared by the contract tests: parameters, funding, a Merkle tree like the agents'."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak

E18 = 10**18

#: Deploy parameters for tests: windows of tens of seconds, small bonds.
TEST_PARAMS = {
    "unbondingPeriod": 1_000,
    "initialSupply": 0,
    "randomnessDelay": 1,
    "livenessPenaltyBps": 1_000,
    "minChallengeWindow": 20,
    "validatorExitDelay": 500,
    "challengeBond": 100 * E18,
    "responseWindow": 50,
    "commitVoteWindow": 50,
    "revealWindow": 50,
    "providerSlashBps": 5_000,
    "winnerRewardBps": 5_000,
    "minValidatorStake": 100 * E18,
    "committeeSize": 3,
    # Contract tests mint shares directly and probe roles: keep the deployer's admin (dev
    # chains only; test_deploy checks the default, renounced, and the timelock).
    "admin": "keep",
}

JOB_DEFAULTS = {
    "specCID": "bafyreispecspecspecspecspecspecspecspecspecspecspecspecsp",
    "numStages": 2,
    "rounds": 2,
    "stepsPerRound": 4,
    "microBatches": 2,
    "rewardPerStageRound": 10 * E18,
    "sharesPerStageRound": 100,
    "minStake": 200 * E18,
    "commitWindow": 100,
    "challengeWindow": 100,
    "auditLeaves": 2,
    "ownerShareBps": 2_000,
    "validatorPool": 50 * E18,
}

JOB_FIELDS = tuple(JOB_DEFAULTS)


def job_tuple(**overrides) -> tuple:
    """A JobParams tuple in ABI order, defaults overridden by keyword."""
    params = {**JOB_DEFAULTS, **overrides}
    return tuple(params[k] for k in JOB_FIELDS)


def budget(**overrides) -> int:
    """Escrow that postJob pulls for these parameters."""
    p = {**JOB_DEFAULTS, **overrides}
    return p["rewardPerStageRound"] * p["numStages"] * p["rounds"] + p["validatorPool"]


def fund(p, account, amount: int) -> None:
    """Mint `amount` TSR to `account` and approve every protocol contract for it."""
    p.token.mint(account, amount, {"from": p.deployer})
    for spender in (p.stakes, p.market, p.court, p.shares):
        p.token.approve(spender, 2**256 - 1, {"from": account})


def initial_hashes(num_stages: int, tag: str = "init") -> list[bytes]:
    """Distinct non-zero initial state hashes, one per stage."""
    return [keccak(text=f"{tag}/{s}") for s in range(num_stages)]


def post_job(p, owner, initial=None, **overrides) -> int:
    """Post a job with JOB_DEFAULTS overridden; return its id."""
    n = {**JOB_DEFAULTS, **overrides}["numStages"]
    hashes = initial if initial is not None else initial_hashes(n)
    tx = p.market.postJob(job_tuple(**overrides), hashes, {"from": owner})
    return tx.return_value


def fill(p, job_id: int, providers) -> None:
    """Each provider i joins stage i."""
    for i, a in enumerate(providers):
        p.market.joinStage(job_id, i, {"from": a})


# ---------------------------------------------------------------------------------- merkle


def leaf_node(index: int, leaf_hash: bytes) -> bytes:
    """keccak256(bytes.concat(keccak256(abi.encode(index, leafHash)))), as AuditCourt.leafNode."""
    return keccak(keccak(encode(["uint256", "bytes32"], [index, leaf_hash])))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """OpenZeppelin's commutative pair hash."""
    return keccak(min(a, b) + max(a, b))


class Tree:
    """Binary Merkle tree over leaf hashes by index; an odd last node is carried up."""

    def __init__(self, leaf_hashes: list[bytes]):
        self.leaf_hashes = list(leaf_hashes)
        self.levels = [[leaf_node(i, h) for i, h in enumerate(leaf_hashes)]]
        while len(self.levels[-1]) > 1:
            cur = self.levels[-1]
            nxt = [hash_pair(cur[i], cur[i + 1]) for i in range(0, len(cur) - 1, 2)]
            if len(cur) % 2:
                nxt.append(cur[-1])
            self.levels.append(nxt)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0]

    def proof(self, index: int) -> list[bytes]:
        out = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                out.append(level[sibling])
            index //= 2
        return out


def make_tree(tag: str, n: int = 8) -> Tree:
    """A tree of `n` distinct leaf hashes derived from `tag`."""
    return Tree([keccak(text=f"{tag}/{i}") for i in range(n)])


def vote_hash(dispute_id: int, voter: str, guilty: bool, salt: bytes) -> bytes:
    """keccak256(abi.encode(disputeId, voter, guilty, salt))."""
    return keccak(
        encode(["uint256", "address", "bool", "bytes32"], [dispute_id, voter, guilty, salt])
    )


def final_hash(tag: str) -> bytes:
    """A non-zero final state hash derived from `tag`."""
    return keccak(text=f"final/{tag}")


def commit_all(p, job_id: int, rnd: int, providers, tag: str = "t", seed: bool = True):
    """Stage i's provider commits a fresh tree for round `rnd`; return the trees. With
    `seed`, the audit seed is recorded right after the sealing commit (in its anchor block)."""
    trees = []
    for s, a in enumerate(providers):
        tree = make_tree(f"{tag}/{job_id}/{rnd}/{s}")
        p.market.commitRound(
            job_id, rnd, s, tree.root, final_hash(f"{tag}/{s}"), f"bafyrecord{rnd}{s}", {"from": a}
        )
        trees.append(tree)
    if seed and p.market.roundInfo(job_id, rnd)[3] != 0:
        record_seed(p, job_id, rnd)
    return trees


def record_seed(p, job_id: int, rnd: int, sender=None) -> bytes:
    """Record the round's audit seed, mining up to its anchor block first."""
    from brownie import chain

    for _ in range(3):  # a missed anchor re-anchors once; then it is reached
        if int(p.market.seedAnchor(job_id, rnd)) == 0:
            raise AssertionError(f"round {rnd} of job {job_id} is not sealed")
        try:
            return p.market.auditSeed(job_id, rnd)
        except Exception:
            pass
        anchor = p.market.seedAnchor(job_id, rnd)
        while chain.height + 1 < anchor:
            chain.mine()
        p.market.recordAuditSeed(job_id, rnd, {"from": sender or p.deployer})
    return p.market.auditSeed(job_id, rnd)


# ---------------------------------------------------------------------------------- leaves v2

LEAF_FIELDS = (
    "step",
    "microBatch",
    "paramsBefore",
    "input",
    "output",
    "gradIn",
    "gradOut",
    "paramsAfter",
    "dataRef",
    "inputAttestation",
    "gradInAttestation",
)
_LEAF_TYPES = ["uint256", "uint256"] + ["bytes32"] * 9


def leaf(step: int, micro: int, tag: str = "x", **fields) -> tuple:
    """A v2 trace leaf tuple; unspecified hashes derive from `tag`, step and micro-batch.
    paramsBefore / paramsAfter default to a chain: state(step) -> state(step + 1)."""
    values = {
        "step": step,
        "microBatch": micro,
        "paramsBefore": keccak(text=f"{tag}/state/{step}"),
        "paramsAfter": keccak(text=f"{tag}/state/{step + 1}"),
    }
    for f in LEAF_FIELDS[2:]:
        values.setdefault(f, keccak(text=f"{tag}/{f}/{step}/{micro}"))
    values.update(fields)
    return tuple(values[f] for f in LEAF_FIELDS)


def leaf_hash_v2(lf: tuple) -> bytes:
    """keccak256(abi.encode(step, microBatch, paramsBefore, ..., gradInAttestation))."""
    return keccak(encode(_LEAF_TYPES, list(lf)))


def honest_leaves(steps: int, micro: int, tag: str = "x") -> list[tuple]:
    """Leaves of an honest trace: index = step * micro + microBatch, states chained."""
    return [leaf(s, m, tag) for s in range(steps) for m in range(micro)]


def leaf_tree(leaves: list[tuple]) -> Tree:
    """The Merkle tree of v2 leaves."""
    return Tree([leaf_hash_v2(lf) for lf in leaves])


def reveal_errors(exc) -> str:
    """Text of a brownie VirtualMachineError for matching custom error names."""
    return str(getattr(exc, "revert_msg", "")) + str(exc)


def run_state_machine(machine_cls, args: tuple, chain, seeds, steps: int) -> None:
    """Run a brownie-style state machine (st_* argument ranges, rule_*/invariant_* methods,
    setup(), optional WEIGHTS) once per seed: revert the chain to a snapshot, call setup(),
    then run `steps` rules picked by a PRNG seeded with the seed, checking every invariant
    after each rule. A failure names the seed and the steps so far, so it replays exactly.

    Why not brownie's `state_machine`: brownie 1.22 is compiled with mypyc here and its
    state_machine rejects the subclass it builds (TypeError: _BrownieStateMachine object
    expected). Why not hypothesis's own stateful runner: with the small example budget CI
    affords, hypothesis 6.27 starts from minimal examples (few steps, seed 0, smallest
    arguments), which never get past the first round of a job.
    """
    import inspect
    import random

    rules = sorted(k for k in vars(machine_cls) if k.startswith("rule_"))
    invariants = sorted(k for k in vars(machine_cls) if k.startswith("invariant_"))
    params = {r: list(inspect.signature(getattr(machine_cls, r)).parameters)[1:] for r in rules}
    weights = [getattr(machine_cls, "WEIGHTS", {}).get(r, 1) for r in rules]
    ranges = {k: v for k, v in vars(machine_cls).items() if k.startswith("st_")}
    chain.snapshot()
    for seed in seeds:
        chain.revert()
        picker = random.Random(seed)
        machine = machine_cls(*args)
        machine.setup()
        done = []
        for _ in range(steps):
            name = picker.choices(rules, weights=weights)[0]
            kwargs = {p: picker.randint(*ranges[p]) for p in params[name]}
            done.append((name, kwargs))
            try:
                getattr(machine, name)(**kwargs)
                for inv in invariants:
                    getattr(machine, inv)()
            except BaseException as exc:
                trail = "\n".join(f"  {n} {k}" for n, k in done)
                raise AssertionError(f"seed {seed} failed after steps:\n{trail}") from exc
