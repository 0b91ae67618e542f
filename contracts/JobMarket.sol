// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";
import {IModelShares} from "./interfaces/IModelShares.sol";
import {IAuditCourt} from "./interfaces/IAuditCourt.sol";
import {IRandomnessSource} from "./interfaces/IRandomnessSource.sol";
import {IJobTerms} from "./interfaces/IJobTerms.sol";
import {IRewardVault} from "./interfaces/IRewardVault.sol";
import {JobTerms} from "./JobTerms.sol";
import {RewardVault} from "./RewardVault.sol";

/// @title JobMarket
/// @notice Training jobs: stage membership and the round state machine. The owner posts a job
///         here (its terms and escrow are kept by `terms`, a JobTerms this contract creates);
///         providers hold ONE stage each with an allocation of `minStake` of their stake to the
///         job (slashable only for this job's faults); rounds run strictly one after the other:
///         start -> commit phase -> sealed -> challenge window -> finalized. Finalization
///         CREDITS rewards and shares in `vault` (a RewardVault this contract creates; storage
///         only, no call to anybody's code); each party claims its own there.
/// @dev This contract holds no tokens: escrow is in `terms`, credited rewards in `vault`. The
///      three split one concern each (terms and escrow / rounds / rewards), and both children
///      accept writes from this contract only.
contract JobMarket is IJobMarket, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice A job waiting for stages this many times (commitWindow + challengeWindow) is
    ///         stalled: anyone may cancel it.
    uint64 public constant STALL_WINDOWS = 2;
    uint256 private constant _BPS = 10_000;

    /// @dev Two slots. The second caches the schedule terms the round machine reads on every
    ///      call (immutable once posted, the same values as in `terms`), so commitRound reads no
    ///      other contract.
    struct Job {
        address owner;
        JobStatus status;
        uint32 currentRound;
        uint32 filledStages;
        /// @dev Since when the current round waits for stages (0 while a round is in flight).
        uint64 waitingSince;
        uint64 commitWindow;
        uint64 challengeWindow;
        uint32 numStages;
        uint32 rounds;
    }

    struct Round {
        uint64 start;
        uint64 sealedAt;
        uint64 sealBlock;
        uint32 commits;
        bool finalized;
    }

    struct Seed {
        uint64 anchorBlock;
        bytes32 value;
    }

    /// @dev Two slots only: commitRound stays under 100k gas. The committer of an unslashed
    ///      commitment of the current round is always the stage's provider (nobody leaves or is
    ///      vacated during the commit phase, and only a slash vacates afterwards), so it is
    ///      recorded separately only when the round finalizes or the commitment is slashed.
    struct Commitment {
        bytes32 traceRoot;
        bytes32 finalStateHash;
    }

    struct Stage {
        /// @dev Current holder (0 = vacant).
        address provider;
        /// @dev round + 1 of the last round in which the stage was paid (0 = none).
        uint32 lastPaidRound;
        /// @dev Provider vacated by the court whose allocation is released at finalization.
        address releaseAtFinalize;
    }

    /// @dev What became of a commitment after its round: its committer (recorded once the
    ///      round finalized or the commitment was slashed) and whether it was slashed.
    struct Verdict {
        address committer;
        bool slashed;
    }

    /// @dev What a finalized round pays out (built in storage-only code, paid after).
    struct Payout {
        uint256 reward;
        uint256 sharesEach;
        uint256 paidCount;
        uint256 ownerShares;
        address[] payees;
        address[] released;
    }

    /// @notice Token of escrow and rewards (TesseraToken).
    IERC20 public immutable token;
    /// @notice Stake registry; this contract allocates and slashes provider stake there.
    IStakeManager public immutable stakes;
    /// @notice Terms and escrow of every job (created by this contract).
    IJobTerms public immutable terms;
    /// @notice Credited rewards and shares, claimed there (created by this contract; it holds
    ///         MINTER_ROLE on ModelShares).
    IRewardVault public immutable vault;
    /// @notice Source of the audit seeds.
    IRandomnessSource public immutable randomness;
    /// @notice Fraction (basis points) of `minStake` a provider that misses a commit deadline
    ///         loses to the job's validator pool.
    uint16 public immutable livenessPenaltyBps;
    /// @notice The AuditCourt, set once after deployment.
    IAuditCourt public court;

    uint256 private _nextJobId = 1;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 jobId => mapping(uint32 stage => Stage)) private _stages;
    /// @dev stage + 1 of the only stage `provider` may ever hold in the job (0 = none yet).
    mapping(uint256 jobId => mapping(address provider => uint32)) private _heldStage;
    mapping(uint256 jobId => mapping(uint32 round => Round)) private _rounds;
    mapping(uint256 jobId => mapping(uint32 round => Seed)) private _seeds;
    mapping(uint256 jobId => mapping(uint32 round => mapping(uint32 stage => Commitment))) private
        _commitments;
    mapping(uint256 jobId => mapping(uint32 round => mapping(uint32 stage => Verdict))) private
        _verdicts;

    modifier onlyCourt() {
        if (msg.sender != address(court)) revert NotCourt(msg.sender);
        _;
    }

    /// @param token_ Escrow and reward token.
    /// @param stakes_ StakeManager (this contract needs its PROTOCOL_ROLE).
    /// @param shares_ ModelShares (the vault this contract creates needs its MINTER_ROLE).
    /// @param randomness_ Source of audit seeds.
    /// @param livenessPenaltyBps_ Fraction of `minStake` slashed for a missed commit.
    /// @param minChallengeWindow_ Shortest challenge window of a job (seconds, > 0).
    /// @param admin Account that wires the court (renounced after wiring).
    constructor(
        IERC20 token_,
        IStakeManager stakes_,
        IModelShares shares_,
        IRandomnessSource randomness_,
        uint16 livenessPenaltyBps_,
        uint64 minChallengeWindow_,
        address admin
    ) {
        if (livenessPenaltyBps_ > _BPS) {
            revert InvalidJobParameter("livenessPenaltyBps", livenessPenaltyBps_);
        }
        token = token_;
        stakes = stakes_;
        randomness = randomness_;
        livenessPenaltyBps = livenessPenaltyBps_;
        terms = new JobTerms(token_, address(this), minChallengeWindow_);
        vault = new RewardVault(token_, shares_, address(this));
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Wires the AuditCourt; callable once by the admin.
    /// @param court_ The AuditCourt address.
    function setCourt(IAuditCourt court_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (address(court) != address(0) || address(court_) == address(0)) {
            revert CourtAlreadySet(address(court));
        }
        court = court_;
        emit CourtSet(address(court_));
    }

    // ------------------------------------------------------------------ owner side

    /// @notice Posts a job and escrows `rewardPerStageRound * numStages * rounds +
    ///         validatorPool` (pulled with transferFrom). Every parameter is bounded.
    /// @param p The job parameters (see JobParams).
    /// @param initialStateHashes State hash each stage's round 0 must start from (one per
    ///        stage, non-zero): a round 0 whose first leaf starts elsewhere is a provable fault.
    /// @return jobId The new job's id (ids start at 1).
    function postJob(JobParams calldata p, bytes32[] calldata initialStateHashes)
        external
        nonReentrant
        returns (uint256 jobId)
    {
        if (address(court) == address(0)) revert CourtNotSet();
        jobId = _nextJobId++;
        uint256 budget = terms.open(jobId, p, initialStateHashes); // reverts out of bounds
        _jobs[jobId] = Job({
            owner: msg.sender,
            status: JobStatus.Open,
            currentRound: 0,
            filledStages: 0,
            // solhint-disable-next-line not-rely-on-time
            waitingSince: uint64(block.timestamp),
            commitWindow: p.commitWindow,
            challengeWindow: p.challengeWindow,
            numStages: p.numStages,
            rounds: p.rounds
        });
        emit JobPosted(jobId, msg.sender, p.specCID);
        // Straight into the escrow contract (the owner approves this contract, as before).
        token.safeTransferFrom(msg.sender, address(terms), budget);
    }

    /// @notice Cancels the job and refunds the escrow left to the owner; every stage holder's
    ///         allocation is released. Only while no round is in flight (work committed in a
    ///         round is always finalized, so credited, first). The owner may cancel then; anyone
    ///         may once the job has waited for stages past `stalledAt`.
    /// @param jobId Job to cancel.
    function cancelJob(uint256 jobId) external nonReentrant {
        Job storage job = _existing(jobId);
        if (job.status != JobStatus.Open && job.status != JobStatus.Running) {
            revert WrongJobStatus(jobId, job.status);
        }
        if (_rounds[jobId][job.currentRound].start != 0) revert RoundInFlight(jobId, job.currentRound);
        uint64 stalled = _stalledAt(jobId, job);
        // solhint-disable-next-line not-rely-on-time
        if (msg.sender != job.owner && block.timestamp < stalled) {
            revert NotJobOwner(jobId, msg.sender, job.owner, stalled);
        }
        job.status = JobStatus.Cancelled;
        emit JobCancelled(jobId, msg.sender);
        _releaseHolders(jobId, job.numStages);
        emit EscrowRefunded(jobId, job.owner, terms.refund(jobId, job.owner));
    }

    // ------------------------------------------------------------------ provider side

    /// @notice Joins `stage`, allocating the job's `minStake` of the caller's free stake to the
    ///         job. A provider may only ever hold one stage of a job (it may re-join that same
    ///         stage). When the last vacant stage fills, the current round starts.
    /// @param jobId Job to join.
    /// @param stage Stage index, below `numStages`.
    function joinStage(uint256 jobId, uint32 stage) external nonReentrant {
        Job storage job = _existing(jobId);
        if (job.status != JobStatus.Open && job.status != JobStatus.Running) {
            revert WrongJobStatus(jobId, job.status);
        }
        uint32 numStages = job.numStages;
        if (stage >= numStages) revert StageOutOfRange(jobId, stage, numStages);
        address holder = _stages[jobId][stage].provider;
        if (holder != address(0)) revert StageTaken(jobId, stage, holder);
        uint32 held = _heldStage[jobId][msg.sender];
        if (held != 0 && held != stage + 1) revert OneStagePerProvider(jobId, msg.sender, held - 1);
        if (_stages[jobId][stage].releaseAtFinalize == msg.sender) revert AllocationPending(jobId, msg.sender);

        _stages[jobId][stage].provider = msg.sender;
        _heldStage[jobId][msg.sender] = stage + 1;
        uint32 filled = job.filledStages + 1;
        job.filledStages = filled;
        emit StageJoined(jobId, stage, msg.sender);
        if (filled == numStages) {
            job.status = JobStatus.Running;
            uint32 round = job.currentRound;
            if (_rounds[jobId][round].start == 0) _startRound(jobId, job, round);
        }
        (,, uint256 minStake) = terms.leafLayout(jobId);
        stakes.allocate(msg.sender, bytes32(jobId), minStake);
    }

    /// @notice Leaves the caller's stage and releases its allocation, while no round is in
    ///         flight (the job is Open, or Running and waiting for a vacant stage): the caller
    ///         has no commitment that a dispute could still reach.
    /// @param jobId Job.
    function leaveStage(uint256 jobId) external nonReentrant {
        Job storage job = _existing(jobId);
        if (job.status != JobStatus.Open && job.status != JobStatus.Running) {
            revert WrongJobStatus(jobId, job.status);
        }
        if (_rounds[jobId][job.currentRound].start != 0) revert RoundInFlight(jobId, job.currentRound);
        uint32 held = _heldStage[jobId][msg.sender];
        if (held == 0 || _stages[jobId][held - 1].provider != msg.sender) {
            revert NoStageHeld(jobId, msg.sender);
        }
        delete _stages[jobId][held - 1].provider;
        --job.filledStages;
        emit StageVacated(jobId, held - 1, msg.sender);
        stakes.release(msg.sender, bytes32(jobId));
    }

    /// @notice Commits the Merkle root of the stage's trace leaves, the state hash of the
    ///         checkpoint it publishes (which must equal the last leaf's paramsAfter) and the CID
    ///         of its round record. Only the stage's provider, once, before the commit deadline.
    ///         The last commit seals the round.
    /// @param jobId Job.
    /// @param round Current round.
    /// @param stage Caller's stage.
    /// @param traceRoot Merkle root of the trace leaves (non-zero).
    /// @param finalStateHash State hash of the published checkpoint (non-zero).
    /// @param recordCID CID of the RoundRecord on IPFS (non-empty; kept in the event log only).
    function commitRound(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        bytes32 traceRoot,
        bytes32 finalStateHash,
        string calldata recordCID
    ) external {
        // No nonReentrant: this function makes no external call (and it keeps the gas low).
        Job memory job = _jobs[jobId];
        if (job.status != JobStatus.Running) {
            if (job.owner == address(0)) revert UnknownJob(jobId);
            revert WrongJobStatus(jobId, job.status);
        }
        if (round != job.currentRound) revert NotCurrentRound(jobId, round, job.currentRound);
        Round storage r = _rounds[jobId][round];
        Round memory rm = r;
        if (rm.start == 0) revert RoundNotStarted(jobId, round);
        if (rm.sealBlock != 0) revert RoundAlreadySealed(jobId, round);
        uint64 deadline = rm.start + job.commitWindow;
        // solhint-disable-next-line not-rely-on-time
        if (block.timestamp > deadline) {
            // solhint-disable-next-line not-rely-on-time
            revert CommitWindowClosed(jobId, round, deadline, uint64(block.timestamp));
        }
        if (_stages[jobId][stage].provider != msg.sender) {
            revert NotStageProvider(jobId, stage, msg.sender);
        }
        if (traceRoot == bytes32(0) || finalStateHash == bytes32(0) || bytes(recordCID).length == 0)
        {
            revert EmptyCommitment(jobId, round, stage);
        }
        Commitment storage c = _commitments[jobId][round][stage];
        if (c.traceRoot != bytes32(0)) revert AlreadyCommitted(jobId, round, stage);

        c.traceRoot = traceRoot;
        c.finalStateHash = finalStateHash;
        uint32 commits = rm.commits + 1;
        r.commits = commits;
        emit RoundCommitted(jobId, round, stage, msg.sender, traceRoot, finalStateHash, recordCID);
        // Rounds start only with every stage filled and nobody is vacated during the commit
        // phase, so `numStages` commits means every stage committed.
        if (commits == job.numStages) _seal(jobId, round, r);
    }

    /// @notice Publishes the CID of the audit bundle of a sealed round (event only).
    /// @param jobId Job.
    /// @param round A sealed round.
    /// @param stage Caller's committed stage.
    /// @param bundleCID CID of the AuditBundle on IPFS (non-empty).
    function postAuditBundle(uint256 jobId, uint32 round, uint32 stage, string calldata bundleCID)
        external
    {
        if (_rounds[jobId][round].sealBlock == 0) revert RoundNotSealed(jobId, round);
        if (_committerOf(jobId, round, stage) != msg.sender) {
            revert NotCommitter(jobId, round, stage, msg.sender);
        }
        if (bytes(bundleCID).length == 0) revert EmptyCommitment(jobId, round, stage);
        emit AuditBundlePosted(jobId, round, stage, msg.sender, bundleCID);
    }

    /// @notice Seals the current round once its commit deadline passed. Every stage that did
    ///         not commit loses `livenessPenaltyBps` of `minStake` to the job's validator pool
    ///         (not to the owner, who sets the window), its allocation is released and the stage
    ///         is vacated.
    /// @param jobId Job.
    /// @param round Current round.
    function sealRound(uint256 jobId, uint32 round) external nonReentrant {
        Job storage job = _running(jobId);
        if (round != job.currentRound) revert NotCurrentRound(jobId, round, job.currentRound);
        Round storage r = _rounds[jobId][round];
        if (r.start == 0) revert RoundNotStarted(jobId, round);
        if (r.sealBlock != 0) revert RoundAlreadySealed(jobId, round);
        uint64 deadline = r.start + job.commitWindow;
        // solhint-disable-next-line not-rely-on-time
        if (block.timestamp <= deadline) {
            // solhint-disable-next-line not-rely-on-time
            revert CommitWindowOpen(jobId, round, deadline, uint64(block.timestamp));
        }
        uint32 numStages = job.numStages;
        address[] memory absent = new address[](numStages);
        for (uint32 s = 0; s < numStages; ++s) {
            if (_commitments[jobId][round][s].traceRoot != bytes32(0)) continue;
            address provider = _stages[jobId][s].provider;
            absent[s] = provider;
            delete _stages[jobId][s].provider;
            --job.filledStages;
            emit StageVacated(jobId, s, provider);
        }
        _seal(jobId, round, r);
        // Interactions last, with the trusted StakeManager and JobTerms. Earlier rounds are all
        // finalized, so no dispute can still reach an absent provider: its allocation is
        // released at once. Penalties go straight to the escrow, into the validator pool.
        (,, uint256 minStake) = terms.leafLayout(jobId);
        uint256 penalty = (minStake * livenessPenaltyBps) / _BPS;
        for (uint32 s = 0; s < numStages; ++s) {
            if (absent[s] == address(0)) continue;
            uint256 taken = penalty == 0
                ? 0
                : stakes.slashAllocation(absent[s], bytes32(jobId), penalty, address(terms));
            if (taken != 0) terms.addToPool(jobId, taken);
            emit LivenessSlashed(jobId, round, s, absent[s], taken);
            stakes.release(absent[s], bytes32(jobId));
        }
    }

    /// @notice Stores the audit seed of a sealed round, read from the randomness source at its
    ///         anchor block. Called in the anchor block it records the seed; called before, it
    ///         does nothing; called later, when nobody recorded it in time, it re-anchors the
    ///         seed `delay` blocks ahead. Returns 0 unless the seed is recorded.
    /// @param jobId Job.
    /// @param round Sealed round.
    /// @return seed The stored seed, or 0 when not recorded (yet).
    function recordAuditSeed(uint256 jobId, uint32 round) external returns (bytes32 seed) {
        Seed storage s = _seeds[jobId][round];
        if (s.value != bytes32(0)) return s.value;
        if (_rounds[jobId][round].sealBlock == 0) revert RoundNotSealed(jobId, round);
        uint64 anchor = _anchorOf(jobId, round);
        (bytes32 value, bool expired) = randomness.randomness(anchor);
        if (expired) {
            uint64 next = uint64(block.number) + randomness.delay();
            s.anchorBlock = next;
            emit AuditSeedReanchored(jobId, round, next);
            return bytes32(0);
        }
        // Before the anchor block: nothing to record yet (no revert, so a poke on an
        // automining dev chain still moves it on by a block).
        if (value == bytes32(0)) return bytes32(0);
        seed = keccak256(abi.encode(value, jobId, round));
        s.value = seed;
        emit AuditSeedRecorded(jobId, round, seed);
    }

    /// @notice Finalizes a sealed round after its challenge window, once no dispute of it is
    ///         open: every committed, unslashed stage is CREDITED `rewardPerStageRound` and
    ///         `sharesPerStageRound`, the owner its share. Storage only: nobody's code runs here.
    ///         The next round starts at once when every stage is filled; after the last round the
    ///         job completes, the unspent escrow returns to the owner and every allocation is
    ///         released.
    /// @param jobId Job.
    /// @param round Current round.
    function finalizeRound(uint256 jobId, uint32 round) external nonReentrant {
        Job storage job = _running(jobId);
        if (round != job.currentRound) revert NotCurrentRound(jobId, round, job.currentRound);
        Round storage r = _rounds[jobId][round];
        if (r.sealBlock == 0) revert RoundNotSealed(jobId, round);
        uint64 windowEnd = r.sealedAt + job.challengeWindow;
        // solhint-disable-next-line not-rely-on-time
        if (block.timestamp <= windowEnd) {
            // solhint-disable-next-line not-rely-on-time
            revert ChallengeWindowOpen(jobId, round, windowEnd, uint64(block.timestamp));
        }
        uint256 open = court.openDisputes(jobId, round);
        if (open != 0) revert DisputesOpen(jobId, round, open);
        r.finalized = true;
        emit RoundFinalized(jobId, round);

        Payout memory pay = _creditStages(jobId, round, job);
        bool completed = _advance(jobId, job, round);
        // Interactions: the trusted StakeManager, JobTerms and RewardVault only.
        terms.pay(jobId, pay.paidCount * pay.reward, address(vault));
        vault.credit(jobId, pay.payees, pay.reward, pay.sharesEach, job.owner, pay.ownerShares);
        for (uint256 s = 0; s < pay.released.length; ++s) {
            if (pay.released[s] != address(0)) stakes.release(pay.released[s], bytes32(jobId));
        }
        if (completed) {
            _releaseHolders(jobId, job.numStages);
            emit EscrowRefunded(jobId, job.owner, terms.refund(jobId, job.owner));
        }
    }

    /// @dev Moves the job past a finalized round: completes it, starts the next round, or
    ///      marks it waiting for stages. Returns whether it completed.
    function _advance(uint256 jobId, Job storage job, uint32 round) private returns (bool completed) {
        completed = round + 1 == job.rounds;
        if (completed) {
            job.status = JobStatus.Completed;
            emit JobCompleted(jobId);
        } else {
            job.currentRound = round + 1;
            if (job.filledStages == job.numStages) {
                _startRound(jobId, job, round + 1);
            } else {
                // solhint-disable-next-line not-rely-on-time
                job.waitingSince = uint64(block.timestamp);
            }
        }
    }

    // ------------------------------------------------------------------ court hook

    /// @notice Court only: slashes the commitment of `stage` in `round` AT MOST ONCE, taking
    ///         `slashBps` of `minStake` from the committer's allocation to THIS job (never more
    ///         than it holds, never any other job's) to the court. Vacates the stage if its
    ///         committer still holds it (its allocation is released when the round finalizes)
    ///         and sends the court a bounty of min(validator pool left, rewardPerStageRound).
    ///         A second call for the same commitment takes nothing.
    /// @param jobId Job.
    /// @param round Round of the commitment.
    /// @param stage Stage of the commitment.
    /// @param slashBps Fraction of `minStake` to take.
    /// @return provider The committer.
    /// @return slashed Stake taken (sent to the court).
    /// @return bounty Tokens of the validator pool sent to the court.
    function slashCommitment(uint256 jobId, uint32 round, uint32 stage, uint16 slashBps)
        external
        onlyCourt
        nonReentrant
        returns (address provider, uint256 slashed, uint256 bounty)
    {
        provider = _committerOf(jobId, round, stage);
        if (_verdicts[jobId][round][stage].slashed || provider == address(0)) return (provider, 0, 0);
        _verdicts[jobId][round][stage].slashed = true;
        _verdicts[jobId][round][stage].committer = provider;
        Job storage job = _jobs[jobId];
        if (
            job.status == JobStatus.Running && job.currentRound == round
                && _stages[jobId][stage].provider == provider
        ) {
            delete _stages[jobId][stage].provider;
            --job.filledStages;
            _stages[jobId][stage].releaseAtFinalize = provider;
            emit StageVacated(jobId, stage, provider);
        }
        // Interactions: the trusted StakeManager and JobTerms only (the caller is the court).
        (,, uint256 minStake) = terms.leafLayout(jobId);
        (uint256 reward,,) = terms.payTerms(jobId);
        slashed = stakes.slashAllocation(provider, bytes32(jobId), (minStake * slashBps) / _BPS, msg.sender);
        emit CommitmentSlashed(jobId, round, stage, provider, slashed);
        bounty = terms.payBounty(jobId, reward, msg.sender);
        if (bounty != 0) emit BountyPaid(jobId, round, bounty);
    }

    // ------------------------------------------------------------------ views

    /// @notice Id the next posted job will get.
    /// @return The next job id.
    function nextJobId() external view returns (uint256) {
        return _nextJobId;
    }

    /// @notice Live state of a job.
    /// @param jobId Job.
    /// @return status 0 Open, 1 Running, 2 Completed, 3 Cancelled.
    /// @return owner Job owner.
    /// @return currentRound Round in progress (or waiting for a stage).
    /// @return roundStart Start of the current round (0 while it waits for a stage).
    /// @return escrow Tokens still escrowed for the job.
    function jobState(uint256 jobId)
        external
        view
        returns (
            JobStatus status,
            address owner,
            uint32 currentRound,
            uint64 roundStart,
            uint256 escrow
        )
    {
        Job storage job = _existing(jobId);
        return (
            job.status,
            job.owner,
            job.currentRound,
            _rounds[jobId][job.currentRound].start,
            terms.funds(jobId).escrow
        );
    }

    /// @notice When anybody (not only the owner) may cancel the job: waiting for stages since
    ///         `waitingSince` for STALL_WINDOWS * (commitWindow + challengeWindow). 0 while a
    ///         round is in flight or the job ended.
    /// @param jobId Job.
    /// @return The timestamp.
    function stalledAt(uint256 jobId) external view returns (uint64) {
        return _stalledAt(jobId, _existing(jobId));
    }

    /// @notice Number of stages currently held.
    /// @param jobId Job.
    /// @return Filled stages.
    function filledStages(uint256 jobId) external view returns (uint32) {
        return _jobs[jobId].filledStages;
    }

    /// @notice Provider holding `stage`, or the zero address if vacant.
    /// @param jobId Job.
    /// @param stage Stage.
    /// @return The provider.
    function stageProvider(uint256 jobId, uint32 stage) external view returns (address) {
        return _stages[jobId][stage].provider;
    }

    /// @notice Stage `provider` holds or held in the job, or -1 if none.
    /// @param jobId Job.
    /// @param provider Account.
    /// @return The stage index, or -1.
    function stageOf(uint256 jobId, address provider) external view returns (int256) {
        return int256(uint256(_heldStage[jobId][provider])) - 1;
    }

    /// @notice Last round in which `stage` was paid (its last accepted checkpoint), -1 if none.
    /// @param jobId Job.
    /// @param stage Stage.
    /// @return The round, or -1.
    function lastFinalizedRound(uint256 jobId, uint32 stage) external view returns (int256) {
        return int256(uint256(_stages[jobId][stage].lastPaidRound)) - 1;
    }

    /// @notice The commitment of `stage` in `round` (the record CID is in the RoundCommitted
    ///         event only).
    /// @param jobId Job.
    /// @param round Round.
    /// @param stage Stage.
    /// @return traceRoot Committed Merkle root (0 if none).
    /// @return finalStateHash Committed state hash of the published checkpoint.
    /// @return provider Committer (0 if none).
    /// @return slashed Whether the court slashed it.
    function commitment(uint256 jobId, uint32 round, uint32 stage)
        external
        view
        returns (bytes32 traceRoot, bytes32 finalStateHash, address provider, bool slashed)
    {
        Commitment memory c = _commitments[jobId][round][stage];
        return (c.traceRoot, c.finalStateHash, _committerOf(jobId, round, stage), _verdicts[jobId][round][stage].slashed);
    }

    /// @notice Timeline of a round.
    /// @param jobId Job.
    /// @param round Round.
    /// @return start Start time (0 = not started).
    /// @return commitDeadline Last second a commit is accepted (0 = not started).
    /// @return sealedAt Seal time (0 = not sealed).
    /// @return sealBlock Seal block (0 = not sealed).
    /// @return finalized Whether finalized.
    function roundInfo(uint256 jobId, uint32 round)
        external
        view
        returns (uint64 start, uint64 commitDeadline, uint64 sealedAt, uint64 sealBlock, bool finalized)
    {
        Round memory r = _rounds[jobId][round];
        commitDeadline = r.start == 0 ? 0 : r.start + _jobs[jobId].commitWindow;
        return (r.start, commitDeadline, r.sealedAt, r.sealBlock, r.finalized);
    }

    /// @notice Number of stages that committed `round`.
    /// @param jobId Job.
    /// @param round Round.
    /// @return Commit count.
    function roundCommits(uint256 jobId, uint32 round) external view returns (uint32) {
        return _rounds[jobId][round].commits;
    }

    /// @notice Block whose randomness makes the round's audit seed (0 before the seal).
    /// @param jobId Job.
    /// @param round Round.
    /// @return The anchor block.
    function seedAnchor(uint256 jobId, uint32 round) external view returns (uint64) {
        if (_rounds[jobId][round].sealBlock == 0) return 0;
        return _anchorOf(jobId, round);
    }

    /// @notice Audit seed of a sealed round once recorded (see recordAuditSeed).
    /// @param jobId Job.
    /// @param round Round.
    /// @return The seed.
    function auditSeed(uint256 jobId, uint32 round) external view returns (bytes32) {
        bytes32 value = _seeds[jobId][round].value;
        if (value == bytes32(0)) {
            uint64 anchor = _rounds[jobId][round].sealBlock == 0 ? 0 : _anchorOf(jobId, round);
            revert AuditSeedNotYetAvailable(jobId, round, anchor);
        }
        return value;
    }

    /// @inheritdoc IJobMarket
    function auditTarget(uint256 jobId, uint32 round, uint32 stage)
        external
        view
        returns (
            bytes32 traceRoot,
            address provider,
            bool slashed,
            uint64 sealedAt,
            uint64 windowEnd,
            uint64 sealBlock
        )
    {
        Round memory r = _rounds[jobId][round];
        windowEnd = r.sealBlock == 0 ? 0 : r.sealedAt + _jobs[jobId].challengeWindow;
        return (
            _commitments[jobId][round][stage].traceRoot,
            _committerOf(jobId, round, stage),
            _verdicts[jobId][round][stage].slashed,
            r.sealedAt,
            windowEnd,
            r.sealBlock
        );
    }

    /// @inheritdoc IJobMarket
    function leafLayout(uint256 jobId)
        external
        view
        returns (uint32 stepsPerRound, uint32 microBatches, uint256 minStake)
    {
        return terms.leafLayout(jobId);
    }

    /// @inheritdoc IJobMarket
    function stateHashes(uint256 jobId, uint32 round, uint32 stage)
        external
        view
        returns (bytes32 expectedStart, bytes32 committedFinal)
    {
        // The last paid round before `round` (disputes reach only the unfinalized current
        // round, so every paid round is before it); none paid: the job's initial state.
        uint32 lastPaid = _stages[jobId][stage].lastPaidRound;
        if (lastPaid != 0 && lastPaid - 1 < round) {
            expectedStart = _commitments[jobId][lastPaid - 1][stage].finalStateHash;
        } else {
            expectedStart = terms.initialStateHash(jobId, stage);
        }
        committedFinal = _commitments[jobId][round][stage].finalStateHash;
    }

    // ------------------------------------------------------------------ internals

    function _existing(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
    }

    function _running(uint256 jobId) private view returns (Job storage job) {
        job = _existing(jobId);
        if (job.status != JobStatus.Running) revert WrongJobStatus(jobId, job.status);
    }

    function _stalledAt(uint256 jobId, Job storage job) private view returns (uint64) {
        if (job.status != JobStatus.Open && job.status != JobStatus.Running) return 0;
        if (_rounds[jobId][job.currentRound].start != 0) return 0;
        return job.waitingSince + STALL_WINDOWS * (job.commitWindow + job.challengeWindow);
    }

    /// @dev The committer of a commitment: recorded once the round finalized or the commitment
    ///      was slashed; before that it is the stage's provider (see Commitment).
    function _committerOf(uint256 jobId, uint32 round, uint32 stage) private view returns (address) {
        if (_commitments[jobId][round][stage].traceRoot == bytes32(0)) return address(0);
        address recorded = _verdicts[jobId][round][stage].committer;
        if (recorded != address(0)) return recorded;
        return _stages[jobId][stage].provider;
    }

    /// @dev The seed's anchor block: the re-anchored one, else sealBlock + delay.
    function _anchorOf(uint256 jobId, uint32 round) private view returns (uint64) {
        uint64 reanchored = _seeds[jobId][round].anchorBlock;
        if (reanchored != 0) return reanchored;
        return _rounds[jobId][round].sealBlock + randomness.delay();
    }

    function _startRound(uint256 jobId, Job storage job, uint32 round) private {
        // solhint-disable-next-line not-rely-on-time
        uint64 start = uint64(block.timestamp);
        _rounds[jobId][round].start = start;
        job.waitingSince = 0;
        emit RoundStarted(jobId, round, start);
    }

    function _seal(uint256 jobId, uint32 round, Round storage r) private {
        // solhint-disable-next-line not-rely-on-time
        r.sealedAt = uint64(block.timestamp);
        r.sealBlock = uint64(block.number);
        // The seed's anchor is a block after the seal (nobody knows its randomness now). It is
        // derived from sealBlock, and stored only on a re-anchor: no extra slot in this commit.
        emit RoundSealed(jobId, round, uint64(block.number), _anchorOf(jobId, round));
    }

    /// @dev Marks every committed, unslashed stage of `round` paid (its provider goes in
    ///      `payees`, 0 for a stage not paid: the vault credits them), the owner's shares, and
    ///      the court-vacated providers whose allocation is released now. Storage only.
    function _creditStages(uint256 jobId, uint32 round, Job storage job)
        private
        returns (Payout memory pay)
    {
        uint32 numStages = job.numStages;
        uint16 ownerShareBps;
        (pay.reward, pay.sharesEach, ownerShareBps) = terms.payTerms(jobId);
        pay.payees = new address[](numStages);
        pay.released = new address[](numStages);
        for (uint32 s = 0; s < numStages; ++s) {
            if (
                _commitments[jobId][round][s].traceRoot != bytes32(0) && !_verdicts[jobId][round][s].slashed
            ) {
                address provider = _stages[jobId][s].provider;
                _verdicts[jobId][round][s].committer = provider;
                _stages[jobId][s].lastPaidRound = round + 1;
                pay.payees[s] = provider;
                ++pay.paidCount;
                emit StagePaid(jobId, round, s, provider, pay.reward, pay.sharesEach);
            }
            address vacated = _stages[jobId][s].releaseAtFinalize;
            if (vacated != address(0)) {
                pay.released[s] = vacated;
                delete _stages[jobId][s].releaseAtFinalize;
            }
        }
        pay.ownerShares = (pay.paidCount * pay.sharesEach * ownerShareBps) / (_BPS - ownerShareBps);
        if (pay.ownerShares != 0) emit OwnerSharesMinted(jobId, round, job.owner, pay.ownerShares);
    }

    function _releaseHolders(uint256 jobId, uint32 numStages) private {
        for (uint32 s = 0; s < numStages; ++s) {
            address holder = _stages[jobId][s].provider;
            if (holder != address(0)) stakes.release(holder, bytes32(jobId));
        }
    }
}
