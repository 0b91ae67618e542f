"""Helpers shared by the contract tests: parameters, funding, a Merkle tree like the agents'."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak

E18 = 10**18

#: Deploy parameters for tests: windows of tens of seconds, small bonds.
TEST_PARAMS = {
    "unbondingPeriod": 1_000,
    "livenessPenaltyBps": 1_000,
    "challengeBond": 100 * E18,
    "responseWindow": 50,
    "commitVoteWindow": 50,
    "revealWindow": 50,
    "providerSlashBps": 5_000,
    "winnerRewardBps": 5_000,
    "nonRevealPenalty": 10 * E18,
    "minValidatorStake": 100 * E18,
    "committeeSize": 3,
}

JOB_DEFAULTS = {
    "specCID": "bafyreispecspecspecspecspecspecspecspecspecspecspecspecsp",
    "numStages": 2,
    "rounds": 2,
    "stepsPerRound": 4,
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


def post_job(p, owner, **overrides) -> int:
    """Post a job with JOB_DEFAULTS overridden; return its id."""
    tx = p.market.postJob(job_tuple(**overrides), {"from": owner})
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


def commit_all(p, job_id: int, rnd: int, providers, tag: str = "t") -> list[Tree]:
    """Stage i's provider commits a fresh tree for round `rnd`; return the trees."""
    trees = []
    for s, a in enumerate(providers):
        tree = make_tree(f"{tag}/{job_id}/{rnd}/{s}")
        p.market.commitRound(job_id, rnd, s, tree.root, f"bafyrecord{rnd}{s}", {"from": a})
        trees.append(tree)
    return trees


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
