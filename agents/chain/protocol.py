"""Typed access to the Tessera contracts: the one place that knows their ABI names.

Roles call these methods instead of spelling contract function names, so a
contract change is one edit here. Views return frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from web3 import Web3
from web3.logs import DISCARD

from agents.chain.client import ChainClient
from agents.chain.errors import RevertError
from agents.protocol.rounds import RoundView

ZERO_ADDRESS = "0x" + "00" * 20

#: JobTerms constants that bound job terms (see agents/protocol/bounds.py).
JOB_BOUND_NAMES = (
    "MAX_STAGES",
    "MAX_ROUNDS",
    "MAX_STEPS_PER_ROUND",
    "MAX_MICRO_BATCHES",
    "MAX_LEAVES",
    "MAX_AUDIT_LEAVES",
    "MAX_TOKEN_AMOUNT",
    "MAX_SHARES_PER_STAGE_ROUND",
    "MIN_COMMIT_WINDOW",
    "MAX_COMMIT_WINDOW",
    "MAX_CHALLENGE_WINDOW",
    "MAX_OWNER_SHARE_BPS",
    "minChallengeWindow",
)


class JobStatus(IntEnum):
    """JobMarket's job states."""

    OPEN = 0
    RUNNING = 1
    COMPLETED = 2
    CANCELLED = 3


class DisputeStatus(IntEnum):
    """AuditCourt's dispute states."""

    AWAITING_RESPONSE = 0
    VOTING = 1
    PROVIDER_SLASHED = 2
    CHALLENGER_SLASHED = 3
    VOID = 4  # nobody on the committee revealed: the bond goes back, nobody is slashed

    @property
    def closed(self) -> bool:
        return self >= DisputeStatus.PROVIDER_SLASHED


@dataclass(frozen=True)
class JobTerms:
    """The on-chain terms of a job (JobMarket.JobParams)."""

    spec_cid: str
    num_stages: int
    rounds: int
    steps_per_round: int
    micro_batches: int
    reward_per_stage_round: int
    shares_per_stage_round: int
    min_stake: int
    commit_window: int
    challenge_window: int
    audit_leaves: int
    owner_share_bps: int
    validator_pool: int

    def as_tuple(self) -> tuple:
        """The struct argument of `postJob`."""
        return (
            self.spec_cid,
            self.num_stages,
            self.rounds,
            self.steps_per_round,
            self.micro_batches,
            self.reward_per_stage_round,
            self.shares_per_stage_round,
            self.min_stake,
            self.commit_window,
            self.challenge_window,
            self.audit_leaves,
            self.owner_share_bps,
            self.validator_pool,
        )

    @property
    def escrow(self) -> int:
        """What `postJob` pulls from the owner."""
        return self.reward_per_stage_round * self.num_stages * self.rounds + self.validator_pool

    @property
    def leaf_count(self) -> int:
        """Trace leaves per stage and round (leaf index = step * micro_batches + micro_batch)."""
        return self.steps_per_round * self.micro_batches


@dataclass(frozen=True)
class JobState:
    """JobMarket.jobState."""

    status: JobStatus
    owner: str
    current_round: int
    round_start: int
    escrow: int


@dataclass(frozen=True)
class Commitment:
    """What a stage committed for a round (JobMarket.commitment + the RoundCommitted log)."""

    trace_root: str
    record_cid: str
    final_state_hash: str
    slashed: bool
    provider: str = ZERO_ADDRESS

    @property
    def exists(self) -> bool:
        return int(self.trace_root, 16) != 0


@dataclass(frozen=True)
class Dispute:
    """AuditCourt.dispute."""

    dispute_id: int
    job_id: int
    round: int
    stage: int
    leaf_index: int
    leaf_hash: str
    challenger: str
    provider: str
    status: DisputeStatus
    response_deadline: int
    commit_deadline: int
    reveal_deadline: int
    bundle_cid: str


def _hex(b: bytes | str) -> str:
    return b if isinstance(b, str) else "0x" + bytes(b).hex()


class Protocol:
    """Views and transactions of the deployed protocol, for one account."""

    def __init__(self, client: ChainClient):
        self.client = client
        self._record_cids: dict[tuple[int, int, int], str] = {}
        self._terms: dict[int, JobTerms] = {}

    # -- token and stake -------------------------------------------------------
    def balance(self, who: str | None = None) -> int:
        """TSR balance."""
        return self.client.call("TesseraToken", "balanceOf", who or self.client.address)

    def approve(self, spender_contract: str, amount: int) -> None:
        """Approve a protocol contract to pull `amount` TSR, if not already allowed."""
        spender = self.client.deployment.address(spender_contract)
        allowed = self.client.call("TesseraToken", "allowance", self.client.address, spender)
        if allowed < amount:
            self.client.send("TesseraToken", "approve", spender, amount)

    def stake_of(self, who: str | None = None) -> int:
        return self.client.call("StakeManager", "stakeOf", who or self.client.address)

    def locked_of(self, who: str | None = None) -> int:
        return self.client.call("StakeManager", "lockedOf", who or self.client.address)

    def unbonding_of(self, who: str | None = None) -> tuple[int, int]:
        amount, release = self.client.call(
            "StakeManager", "unbondingOf", who or self.client.address
        )
        return int(amount), int(release)

    def free_stake(self, who: str | None = None) -> int:
        """Bonded stake not allocated to any job or validator registration."""
        return self.client.call("StakeManager", "freeStakeOf", who or self.client.address)

    def stake(self, amount: int) -> None:
        """Approve and stake `amount`."""
        self.approve("StakeManager", amount)
        self.client.send("StakeManager", "stake", amount)

    def ensure_stake(self, free_needed: int) -> int:
        """Top up stake so that at least `free_needed` is unlocked; returns what was added."""
        free = self.stake_of() - self.locked_of()
        if free >= free_needed:
            return 0
        self.stake(free_needed - free)
        return free_needed - free

    # -- jobs ------------------------------------------------------------------
    def next_job_id(self) -> int:
        return self.client.call("JobMarket", "nextJobId")

    def job_terms(self, job_id: int) -> JobTerms:
        """A job's terms (immutable once posted, so read once)."""
        if job_id not in self._terms:
            terms = JobTerms(*self.client.call("JobTerms", "params", job_id))
            if terms.num_stages == 0:  # unknown job: do not cache
                return terms
            self._terms[job_id] = terms
        return self._terms[job_id]

    def job_state(self, job_id: int) -> JobState:
        status, owner, current_round, round_start, escrow = self.client.call(
            "JobMarket", "jobState", job_id
        )
        return JobState(JobStatus(status), owner, current_round, round_start, escrow)

    def stage_provider(self, job_id: int, stage: int) -> str:
        return self.client.call("JobMarket", "stageProvider", job_id, stage)

    def providers(self, job_id: int, num_stages: int) -> list[str]:
        return [self.stage_provider(job_id, s) for s in range(num_stages)]

    def validators(self) -> list[str]:
        """Every registered, not exiting validator (whose leaf samples a provider's bundle must
        cover), in registration order (ValidatorRegistry entries)."""
        n = int(self.client.call("ValidatorRegistry", "entryCount"))
        out = []
        for i in range(n):
            account, _registered, exit_block, _weight, released = self.client.call(
                "ValidatorRegistry", "entry", i
            )
            if int(exit_block) == 0 and not released:
                out.append(account)
        return out

    def initial_state_hash(self, job_id: int, stage: int) -> str | None:
        """The stage's initial state hash committed with the job; None where the deployed
        JobMarket predates initial state hashes."""
        try:
            value = self.client.call("JobTerms", "initialStateHash", job_id, stage)
        except Exception:  # no such function in this deployment's ABI
            return None
        return "0x" + bytes(value).hex()

    def last_finalized_round(self, job_id: int, stage: int) -> int:
        """The last round whose checkpoint of `stage` is final (-1: none)."""
        return int(self.client.call("JobMarket", "lastFinalizedRound", job_id, stage))

    def commitment(self, job_id: int, round_: int, stage: int) -> Commitment:
        """The stage's commitment; the record CID comes from the RoundCommitted log."""
        root, final, provider, slashed = self.client.call(
            "JobMarket", "commitment", job_id, round_, stage
        )
        cid = self.record_cid(job_id, round_, stage) if int.from_bytes(bytes(root)) else ""
        return Commitment(_hex(root), cid, _hex(final), bool(slashed), provider)

    def state_hashes(self, job_id: int, round_: int, stage: int) -> tuple[str, str]:
        """(state the stage's round must start from, final state hash it committed)."""
        start, final = self.client.call("JobMarket", "stateHashes", job_id, round_, stage)
        return _hex(start), _hex(final)

    def job_bounds(self) -> dict[str, int]:
        """JobTerms' bounds on job terms (constants), for client-side checks."""
        if not hasattr(self, "_bounds"):
            self._bounds = {
                name: int(self.client.call("JobTerms", name)) for name in JOB_BOUND_NAMES
            }
        return self._bounds

    def check_terms(self, terms: JobTerms) -> None:
        """Raise TermsOutOfBounds (one line naming the field) when a term is outside the
        bounds JobMarket enforces; a provider refuses such a job before staking."""
        from agents.protocol.bounds import check_job_terms

        check_job_terms(terms, self.job_bounds())

    def record_cid(self, job_id: int, round_: int, stage: int) -> str:
        """The RoundRecord CID a stage committed (kept in the event log only, to save gas)."""
        key = (job_id, round_, stage)
        if key not in self._record_cids:
            events = self.client.events(
                "JobMarket",
                "RoundCommitted",
                self.client.deployment.block,
                filters={"jobId": job_id, "round": round_, "stage": stage},
            )
            if not events:
                return ""  # committed less than `confirmations` blocks ago
            self._record_cids[key] = events[-1].args["recordCID"]
        return self._record_cids[key]

    def round_view(self, job_id: int, round_: int) -> RoundView:
        return RoundView.from_tuple(self.client.call("JobMarket", "roundInfo", job_id, round_))

    def audit_seed(self, job_id: int, round_: int) -> bytes | None:
        """The round's audit seed, or None while it is not available yet."""
        try:
            return bytes(self.client.call("JobMarket", "auditSeed", job_id, round_))
        except RevertError:
            return None

    def seed_anchor(self, job_id: int, round_: int) -> int:
        """The block whose randomness makes the round's seed (0 before the seal)."""
        return int(self.client.call("JobMarket", "seedAnchor", job_id, round_))

    def ensure_audit_seed(self, job_id: int, round_: int, timeout: float = 30.0) -> bytes | None:
        """Record the round's seed: the recording transaction must be mined IN the anchor block,
        so wait for the block before it and send then. A poke before the anchor is a no-op
        (used to move an automining chain on); one after it re-anchors `delay` blocks ahead,
        and the loop tries again. Returns the seed, or None after `timeout` seconds."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seed = self.audit_seed(job_id, round_)
            if seed is not None:
                return seed
            anchor = self.seed_anchor(job_id, round_)
            if anchor == 0:
                return None  # not sealed
            height = int(self.client.w3.eth.block_number)
            if height + 1 < anchor:
                # Wait for the chain to reach the block before the anchor; an automining chain
                # does not move by itself, so after a short wait a no-op poke mines a block.
                waited = time.monotonic()
                while int(self.client.w3.eth.block_number) == height:
                    if time.monotonic() - waited > 1.5:
                        self.record_audit_seed(job_id, round_)
                        break
                    time.sleep(0.1)
                continue
            self.record_audit_seed(job_id, round_)
        return self.audit_seed(job_id, round_)

    def record_audit_seed(self, job_id: int, round_: int) -> None:
        """Store the round's seed on-chain so it outlives blockhash's 256-block horizon."""
        self.client.send("JobMarket", "recordAuditSeed", job_id, round_)

    def post_job(self, terms: JobTerms, initial_state_hashes: list[str | bytes]) -> int:
        """Approve the escrow and post the job with each stage's initial state hash; returns
        its id."""
        self.approve("JobMarket", terms.escrow)
        hashes = [
            Web3.to_bytes(hexstr=h) if isinstance(h, str) else bytes(h)
            for h in initial_state_hashes
        ]
        receipt = self.client.send("JobMarket", "postJob", terms.as_tuple(), hashes)
        events = (
            self.client.contract("JobMarket")
            .events.JobPosted()
            .process_receipt(receipt, errors=DISCARD)
        )
        return int(events[0]["args"]["jobId"])

    def join_stage(self, job_id: int, stage: int) -> None:
        self.client.send("JobMarket", "joinStage", job_id, stage)

    def leave_stage(self, job_id: int) -> None:
        """Leave the stage held in `job_id` (only while no round is in flight)."""
        self.client.send("JobMarket", "leaveStage", job_id)

    def commit_round(
        self,
        job_id: int,
        round_: int,
        stage: int,
        trace_root: str,
        final_state_hash: str,
        record_cid: str,
    ) -> None:
        """Commit the round: trace root, state hash of the published checkpoint, record."""
        self.client.send(
            "JobMarket",
            "commitRound",
            job_id,
            round_,
            stage,
            Web3.to_bytes(hexstr=trace_root),
            Web3.to_bytes(hexstr=final_state_hash),
            record_cid,
        )

    def post_audit_bundle(self, job_id: int, round_: int, stage: int, bundle_cid: str) -> None:
        self.client.send("JobMarket", "postAuditBundle", job_id, round_, stage, bundle_cid)

    def seal_round(self, job_id: int, round_: int) -> None:
        self.client.send("JobMarket", "sealRound", job_id, round_)

    def finalize_round(self, job_id: int, round_: int) -> None:
        self.client.send("JobMarket", "finalizeRound", job_id, round_)

    def cancel_job(self, job_id: int) -> None:
        self.client.send("JobMarket", "cancelJob", job_id)

    def rewards_owed(self, who: str | None = None) -> int:
        """Rewards credited to `who` by finalized rounds and not claimed yet."""
        return int(self.client.call("RewardVault", "rewardsOwed", who or self.client.address))

    def shares_owed(self, job_id: int, who: str | None = None) -> int:
        """Shares of `job_id` credited to `who` and not claimed (minted) yet."""
        who = who or self.client.address
        return int(self.client.call("RewardVault", "sharesOwed", job_id, who))

    def claim_rewards(self) -> int:
        """Claim every credited reward; returns the amount (0 when nothing was due)."""
        owed = self.rewards_owed()
        if owed:
            self.client.send("RewardVault", "claimRewards")
        return owed

    def claim_shares(self, job_id: int, to: str | None = None) -> int:
        """Mint the shares of `job_id` credited to this account; returns how many."""
        owed = self.shares_owed(job_id)
        if owed:
            self.client.send("RewardVault", "claimShares", job_id, to or self.client.address)
        return owed

    def claim_all(self, job_id: int) -> tuple[int, int]:
        """Claim this account's rewards and its shares of `job_id`."""
        return self.claim_rewards(), self.claim_shares(job_id)

    # -- disputes --------------------------------------------------------------
    def is_validator(self, who: str | None = None) -> bool:
        return bool(self.client.call("AuditCourt", "isValidator", who or self.client.address))

    def register_validator(self, amount: int | None = None) -> None:
        """Register as a validator, allocating `amount` (default: the registry minimum) of
        free stake: the committee draw weight."""
        if amount is None:
            amount = int(self.client.call("ValidatorRegistry", "minValidatorStake"))
        self.client.send("ValidatorRegistry", "registerValidator", amount)

    def deregister_validator(self) -> None:
        """Start exiting the validator set (stake released after the exit delay)."""
        self.client.send("ValidatorRegistry", "deregisterValidator")

    def open_disputes(self, job_id: int, round_: int) -> int:
        return int(self.client.call("AuditCourt", "openDisputes", job_id, round_))

    def dispute(self, dispute_id: int) -> Dispute:
        t = self.client.call("AuditCourt", "dispute", dispute_id)
        return Dispute(
            dispute_id,
            int(t[0]),
            int(t[1]),
            int(t[2]),
            int(t[3]),
            _hex(t[4]),
            t[5],
            t[6],
            DisputeStatus(t[7]),
            int(t[8]),
            int(t[9]),
            int(t[10]),
            t[11],
        )

    def committee(self, dispute_id: int) -> list[str]:
        return list(self.client.call("AuditCourt", "committee", dispute_id))

    def challenge(
        self,
        job_id: int,
        round_: int,
        stage: int,
        leaf_index: int,
        leaf_hash: bytes,
        proof: list[bytes],
    ) -> int:
        """Approve the bond and open a challenge; returns the dispute id."""
        self.approve("AuditCourt", int(self.client.call("AuditCourt", "challengeBond")))
        receipt = self.client.send(
            "AuditCourt", "challenge", job_id, round_, stage, leaf_index, leaf_hash, proof
        )
        events = (
            self.client.contract("AuditCourt")
            .events.ChallengeOpened()
            .process_receipt(receipt, errors=DISCARD)
        )
        return int(events[0]["args"]["disputeId"])

    def challenge_index(self, job_id: int, round_: int, stage: int, leaf_index: int) -> int:
        """Approve the bond and challenge a leaf nobody can prove; returns the dispute id."""
        self.approve("AuditCourt", int(self.client.call("AuditCourt", "challengeBond")))
        receipt = self.client.send(
            "AuditCourt", "challengeIndex", job_id, round_, stage, leaf_index
        )
        events = (
            self.client.contract("AuditCourt")
            .events.ChallengeOpened()
            .process_receipt(receipt, errors=DISCARD)
        )
        return int(events[0]["args"]["disputeId"])

    def reveal_leaf(
        self, dispute_id: int, leaf_hash: bytes, proof: list[bytes], bundle_cid: str
    ) -> None:
        """Answer a challengeIndex dispute: the leaf hash, its proof and the bundle."""
        self.client.send("AuditCourt", "revealLeaf", dispute_id, leaf_hash, proof, bundle_cid)

    def respond(self, dispute_id: int, bundle_cid: str) -> None:
        self.client.send("AuditCourt", "respond", dispute_id, bundle_cid)

    def slash_unanswered(self, dispute_id: int) -> None:
        self.client.send("AuditCourt", "slashUnanswered", dispute_id)

    def commit_vote(self, dispute_id: int, commitment: bytes) -> None:
        self.client.send("AuditCourt", "commitVote", dispute_id, commitment)

    def reveal_vote(self, dispute_id: int, guilty: bool, salt: bytes) -> None:
        self.client.send("AuditCourt", "revealVote", dispute_id, guilty, salt)

    def resolve(self, dispute_id: int) -> None:
        self.client.send("AuditCourt", "resolve", dispute_id)

    def prove_fault(
        self, job_id: int, round_: int, stage: int, kind: int, a: tuple, b: tuple
    ) -> None:
        """Prove a structural fault (AuditCourt.FaultKind `kind`) with two (leaf fields tuple,
        proof) pairs; `b` is ignored by the single-leaf kinds but must be well-formed."""
        self.client.send("AuditCourt", "proveFault", job_id, round_, stage, kind, a, b)

    def prove_payload_equivocation(
        self,
        job_id: int,
        round_: int,
        stage: int,
        direction: int,
        sent: tuple,
        payload_hash: bytes,
        signature: bytes,
    ) -> None:
        """Prove that `stage`'s provider signed a payload (`direction` 0 forward, 1 backward)
        its own leaf does not record: `sent` is the (leaf fields tuple, proof) of its leaf,
        `payload_hash` and `signature` what the receiver holds."""
        self.client.send(
            "AuditCourt",
            "provePayloadEquivocation",
            job_id,
            round_,
            stage,
            direction,
            sent,
            payload_hash,
            signature,
        )

    # -- shares ----------------------------------------------------------------
    def shares_of(self, model_id: int, who: str | None = None) -> int:
        return self.client.call("ModelShares", "balanceOf", who or self.client.address, model_id)

    def total_shares(self, model_id: int) -> int:
        return self.client.call("ModelShares", "totalSupply", model_id)

    def claimable(self, model_id: int, who: str | None = None) -> int:
        return self.client.call("ModelShares", "claimable", model_id, who or self.client.address)

    def deposit_revenue(self, model_id: int, amount: int) -> None:
        """Approve and deposit inference revenue for `model_id`."""
        self.approve("ModelShares", amount)
        self.client.send("ModelShares", "depositRevenue", model_id, amount)

    def claim(self, model_id: int) -> int:
        """Claim accrued revenue; returns the amount paid."""
        receipt = self.client.send("ModelShares", "claim", model_id)
        events = (
            self.client.contract("ModelShares")
            .events.RevenueClaimed()
            .process_receipt(receipt, errors=DISCARD)
        )
        return int(events[0]["args"]["amount"]) if events else 0

    # -- exits and pull claims (every action a user may need has a CLI command) ---------
    def has_function(self, contract: str, fn: str) -> bool:
        """Whether the deployed ABI of `contract` has function `fn` (ABIs change per release)."""
        return any(
            e.get("type") == "function" and e.get("name") == fn
            for e in self.client.contract(contract).abi
        )

    def credit_of(self, who: str | None = None) -> int:
        """Tokens the court credited to `who` (bounties, refunded bonds), not yet withdrawn."""
        return int(self.client.call("AuditCourt", "credit", who or self.client.address))

    def withdraw_credit(self) -> int:
        """Withdraw every token the court credited to this account; returns the amount."""
        amount = self.credit_of()
        self.client.send("AuditCourt", "withdrawCredit")
        return amount

    def parked_shares(self, job_id: int, who: str | None = None) -> int:
        """Shares of `job_id` credited to `who` and not minted yet (every share is credited at
        finalization and pulled since issue 10; the old 'parked' shares are these)."""
        return self.shares_owed(job_id, who)

    def claim_parked_shares(self, job_id: int, to: str | None = None) -> int:
        """Mint this account's credited shares of `job_id` to `to` (default: itself)."""
        return self.claim_shares(job_id, to)

    def share_holders(self, model_id: int) -> list[str]:
        """Every address that ever received shares of `model_id` (from TransferSingle logs)."""
        seen: dict[str, None] = {}
        start = self.client.deployment.block
        for ev in self.client.events("ModelShares", "TransferSingle", start):
            if int(ev.args["id"]) == model_id and int(ev.args["to"], 16) != 0:
                seen.setdefault(ev.args["to"], None)
        for ev in self.client.events("ModelShares", "TransferBatch", start):
            if model_id in [int(i) for i in ev.args["ids"]] and int(ev.args["to"], 16) != 0:
                seen.setdefault(ev.args["to"], None)
        return list(seen)
