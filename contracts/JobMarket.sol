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

/// @title JobMarket
/// @notice Training jobs. The owner escrows the whole budget; providers stake and hold ONE
///         stage each; rounds run strictly one after the other:
///         start -> commit phase -> sealed -> challenge window -> finalized (paid + minted).
///         A stage vacated for missing a deadline or for a proven fault can be re-joined and
///         resumes from its last finalized round.
/// @dev Money in this contract: sum over live jobs of `escrow`. Rewards are pushed in
///      TesseraToken, which has no transfer hooks and no blocklist, so a recipient can neither
///      re-enter nor block `finalizeRound`; shares are minted with try/catch and parked for a
///      later pull when the receiver's ERC-1155 hook refuses them.
contract JobMarket is IJobMarket, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Largest number of stages a job may have; bounds every loop over stages.
    uint32 public constant MAX_STAGES = 64;
    uint256 private constant _BPS = 10_000;
    /// @notice Number of past blocks whose hash the EVM exposes.
    uint256 private constant _BLOCKHASH_WINDOW = 256;

    struct Job {
        address owner;
        JobStatus status;
        uint32 currentRound;
        uint32 filledStages;
    }

    struct Funds {
        uint256 escrow;
        uint256 validatorPoolLeft;
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

    struct Commitment {
        bytes32 traceRoot;
        address provider;
        uint64 committedAt;
        bool slashed;
    }

    /// @notice Token of escrow and rewards (TesseraToken).
    IERC20 public immutable token;
    /// @notice Stake registry; this contract locks and slashes provider stake there.
    IStakeManager public immutable stakes;
    /// @notice ERC-1155 model shares; this contract holds MINTER_ROLE there.
    IModelShares public immutable shares;
    /// @notice Fraction (basis points) of `minStake` slashed from a provider that misses a
    ///         commit deadline.
    uint16 public immutable livenessPenaltyBps;

    /// @notice The AuditCourt, set once after deployment.
    IAuditCourt public court;

    uint256 private _nextJobId = 1;
    mapping(uint256 jobId => JobParams) private _params;
    mapping(uint256 jobId => Job) private _jobs;
    mapping(uint256 jobId => Funds) private _funds;
    mapping(uint256 jobId => mapping(uint32 stage => address)) private _stageProvider;
    /// @dev stage + 1 of the only stage `provider` may ever hold in the job (0 = none yet).
    mapping(uint256 jobId => mapping(address provider => uint32)) private _heldStage;
    /// @dev round + 1 of the last round in which the stage was paid (0 = none).
    mapping(uint256 jobId => mapping(uint32 stage => uint32)) private _lastPaidRound;
    /// @dev Provider vacated by the court whose lock is released when the round finalizes.
    mapping(uint256 jobId => mapping(uint32 stage => address)) private _releaseAtFinalize;
    mapping(uint256 jobId => mapping(uint32 round => Round)) private _rounds;
    mapping(uint256 jobId => mapping(uint32 round => Seed)) private _seeds;
    mapping(uint256 jobId => mapping(uint32 round => mapping(uint32 stage => Commitment))) private
        _commitments;
    mapping(uint256 jobId => mapping(address account => uint256)) private _parkedShares;

    modifier onlyCourt() {
        if (msg.sender != address(court)) revert NotCourt(msg.sender);
        _;
    }

    /// @param token_ Escrow and reward token.
    /// @param stakes_ StakeManager (this contract needs its PROTOCOL_ROLE).
    /// @param shares_ ModelShares (this contract needs its MINTER_ROLE).
    /// @param livenessPenaltyBps_ Fraction of `minStake` slashed for a missed commit.
    /// @param admin Account that wires the court.
    constructor(
        IERC20 token_,
        IStakeManager stakes_,
        IModelShares shares_,
        uint16 livenessPenaltyBps_,
        address admin
    ) {
        if (livenessPenaltyBps_ > _BPS) {
            revert InvalidJobParameter("livenessPenaltyBps", livenessPenaltyBps_);
        }
        token = token_;
        stakes = stakes_;
        shares = shares_;
        livenessPenaltyBps = livenessPenaltyBps_;
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
    ///         validatorPool` (pulled with transferFrom).
    /// @param p The job parameters (see JobParams).
    /// @return jobId The new job's id (ids start at 1).
    function postJob(JobParams calldata p) external nonReentrant returns (uint256 jobId) {
        if (address(court) == address(0)) revert CourtNotSet();
        _validate(p);
        uint256 budget = p.rewardPerStageRound * p.numStages * p.rounds + p.validatorPool;
        jobId = _nextJobId++;
        _params[jobId] = p;
        _jobs[jobId] = Job({owner: msg.sender, status: JobStatus.Open, currentRound: 0, filledStages: 0});
        _funds[jobId] = Funds({escrow: budget, validatorPoolLeft: p.validatorPool});
        emit JobPosted(jobId, msg.sender, p.specCID);
        token.safeTransferFrom(msg.sender, address(this), budget);
    }

    /// @notice Cancels the job and refunds the escrow left. Allowed to the owner while the job is
    ///         Open, or Running with no round in flight (the current round waits for a vacated
    ///         stage); every stage holder's lock is released.
    /// @param jobId Job to cancel.
    function cancelJob(uint256 jobId) external nonReentrant {
        Job storage job = _existing(jobId);
        if (msg.sender != job.owner) revert NotJobOwner(jobId, msg.sender, job.owner);
        if (job.status == JobStatus.Running) {
            if (_rounds[jobId][job.currentRound].start != 0) {
                revert RoundInFlight(jobId, job.currentRound);
            }
        } else if (job.status != JobStatus.Open) {
            revert WrongJobStatus(jobId, job.status);
        }
        job.status = JobStatus.Cancelled;
        uint256 refund = _funds[jobId].escrow;
        delete _funds[jobId];
        emit JobCancelled(jobId);
        emit EscrowRefunded(jobId, job.owner, refund);
        _releaseHolders(jobId);
        if (refund != 0) token.safeTransfer(job.owner, refund);
    }

    // ------------------------------------------------------------------ provider side

    /// @notice Joins `stage`, locking the job's `minStake` of the caller's free stake. A provider
    ///         may only ever hold one stage of a job (it may re-join that same stage). When the
    ///         last vacant stage fills, the current round starts.
    /// @param jobId Job to join.
    /// @param stage Stage index, below `numStages`.
    function joinStage(uint256 jobId, uint32 stage) external nonReentrant {
        Job storage job = _existing(jobId);
        if (job.status != JobStatus.Open && job.status != JobStatus.Running) {
            revert WrongJobStatus(jobId, job.status);
        }
        JobParams storage p = _params[jobId];
        uint32 numStages = p.numStages;
        if (stage >= numStages) revert StageOutOfRange(jobId, stage, numStages);
        address holder = _stageProvider[jobId][stage];
        if (holder != address(0)) revert StageTaken(jobId, stage, holder);
        uint32 held = _heldStage[jobId][msg.sender];
        if (held != 0 && held != stage + 1) revert OneStagePerProvider(jobId, msg.sender, held - 1);

        _stageProvider[jobId][stage] = msg.sender;
        _heldStage[jobId][msg.sender] = stage + 1;
        uint32 filled = job.filledStages + 1;
        job.filledStages = filled;
        emit StageJoined(jobId, stage, msg.sender);
        if (filled == numStages) {
            job.status = JobStatus.Running;
            uint32 round = job.currentRound;
            if (_rounds[jobId][round].start == 0) _startRound(jobId, round);
        }
        stakes.lock(msg.sender, p.minStake);
    }

    /// @notice Commits the Merkle root of the stage's step traces and the CID of its round record.
    ///         Only the stage's provider, once, before the round's commit deadline. The last
    ///         commit seals the round.
    /// @param jobId Job.
    /// @param round Current round.
    /// @param stage Caller's stage.
    /// @param traceRoot Merkle root of the trace leaves (non-zero).
    /// @param recordCID CID of the RoundRecord on IPFS (non-empty; kept in the event log only).
    function commitRound(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        bytes32 traceRoot,
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
        uint64 deadline = rm.start + _params[jobId].commitWindow;
        // solhint-disable-next-line not-rely-on-time
        if (block.timestamp > deadline) {
            // solhint-disable-next-line not-rely-on-time
            revert CommitWindowClosed(jobId, round, deadline, uint64(block.timestamp));
        }
        if (_stageProvider[jobId][stage] != msg.sender) {
            revert NotStageProvider(jobId, stage, msg.sender);
        }
        if (traceRoot == bytes32(0) || bytes(recordCID).length == 0) {
            revert EmptyCommitment(jobId, round, stage);
        }
        Commitment storage c = _commitments[jobId][round][stage];
        if (c.committedAt != 0) revert AlreadyCommitted(jobId, round, stage);

        c.traceRoot = traceRoot;
        c.provider = msg.sender;
        // solhint-disable-next-line not-rely-on-time
        c.committedAt = uint64(block.timestamp);
        uint32 commits = rm.commits + 1;
        r.commits = commits;
        emit RoundCommitted(jobId, round, stage, msg.sender, traceRoot, recordCID);
        // Rounds start only with every stage filled and nobody is vacated during the commit
        // phase, so `numStages` commits means every stage committed.
        if (commits == _params[jobId].numStages) _seal(jobId, round, r);
    }

    /// @notice Publishes the CID of the audit bundle for the sampled leaves of a sealed round.
    ///         Only the committer of that stage; the CID lives in the event log only (like the
    ///         record CID), so validators find it without the provider being online.
    /// @dev Publishing is the provider's duty but not enforced here: a validator that finds no
    ///      bundle challenges a sampled leaf, and the provider must then answer in the court.
    /// @param jobId Job.
    /// @param round A sealed round.
    /// @param stage Caller's committed stage.
    /// @param bundleCID CID of the AuditBundle on IPFS (non-empty).
    function postAuditBundle(uint256 jobId, uint32 round, uint32 stage, string calldata bundleCID)
        external
    {
        if (_rounds[jobId][round].sealBlock == 0) revert RoundNotSealed(jobId, round);
        if (_commitments[jobId][round][stage].provider != msg.sender) {
            revert NotCommitter(jobId, round, stage, msg.sender);
        }
        if (bytes(bundleCID).length == 0) revert EmptyCommitment(jobId, round, stage);
        emit AuditBundlePosted(jobId, round, stage, msg.sender, bundleCID);
    }

    /// @notice Seals the current round once its commit deadline passed. Every stage that did
    ///         not commit loses `livenessPenaltyBps` of `minStake` to the job owner, its lock is
    ///         released and the stage is vacated.
    /// @param jobId Job.
    /// @param round Current round.
    function sealRound(uint256 jobId, uint32 round) external nonReentrant {
        Job storage job = _running(jobId);
        if (round != job.currentRound) revert NotCurrentRound(jobId, round, job.currentRound);
        Round storage r = _rounds[jobId][round];
        if (r.start == 0) revert RoundNotStarted(jobId, round);
        if (r.sealBlock != 0) revert RoundAlreadySealed(jobId, round);
        JobParams storage p = _params[jobId];
        uint64 deadline = r.start + p.commitWindow;
        // solhint-disable-next-line not-rely-on-time
        if (block.timestamp <= deadline) {
            // solhint-disable-next-line not-rely-on-time
            revert CommitWindowOpen(jobId, round, deadline, uint64(block.timestamp));
        }
        uint32 numStages = p.numStages;
        address[] memory absent = new address[](numStages);
        uint256 penalty = (p.minStake * livenessPenaltyBps) / _BPS;
        for (uint32 s = 0; s < numStages; ++s) {
            if (_commitments[jobId][round][s].committedAt != 0) continue;
            address provider = _stageProvider[jobId][s];
            absent[s] = provider;
            delete _stageProvider[jobId][s];
            --job.filledStages;
            emit StageVacated(jobId, s, provider);
        }
        _seal(jobId, round, r);
        // Interactions last, with the trusted StakeManager. Earlier rounds are all finalized,
        // so no dispute can still reach an absent provider: its lock is released at once.
        for (uint32 s = 0; s < numStages; ++s) {
            if (absent[s] == address(0)) continue;
            uint256 taken = penalty == 0 ? 0 : stakes.slash(absent[s], penalty, job.owner);
            emit LivenessSlashed(jobId, round, s, absent[s], taken);
            stakes.unlock(absent[s], p.minStake);
        }
    }

    /// @notice Stores the audit seed of a sealed round so it outlives the 256-block horizon of
    ///         `blockhash`. If nobody stored it in time, re-anchors it on the current block (the
    ///         seed is then available one block later) and returns 0.
    /// @param jobId Job.
    /// @param round Sealed round.
    /// @return seed The stored seed, or 0 after a re-anchor.
    function recordAuditSeed(uint256 jobId, uint32 round) external returns (bytes32 seed) {
        Seed storage s = _seeds[jobId][round];
        if (s.value != bytes32(0)) return s.value;
        uint64 anchor = _anchorBlock(jobId, round);
        if (block.number <= anchor) revert AuditSeedNotYetAvailable(jobId, round, anchor);
        if (block.number - anchor > _BLOCKHASH_WINDOW) {
            s.anchorBlock = uint64(block.number);
            emit AuditSeedReanchored(jobId, round, uint64(block.number));
            return bytes32(0);
        }
        seed = _seedAt(jobId, round, anchor);
        s.value = seed;
        emit AuditSeedRecorded(jobId, round, seed);
    }

    /// @notice Finalizes a sealed round after its challenge window, once no dispute of it is
    ///         open: every committed, unslashed stage is paid `rewardPerStageRound` and minted
    ///         `sharesPerStageRound`; the owner is minted its share. The next round starts at
    ///         once when every stage is filled; after the last round the job completes, the
    ///         unspent escrow returns to the owner and every stage lock is released.
    /// @param jobId Job.
    /// @param round Current round.
    function finalizeRound(uint256 jobId, uint32 round) external nonReentrant {
        Job storage job = _running(jobId);
        if (round != job.currentRound) revert NotCurrentRound(jobId, round, job.currentRound);
        Round storage r = _rounds[jobId][round];
        if (r.sealBlock == 0) revert RoundNotSealed(jobId, round);
        JobParams storage p = _params[jobId];
        uint64 windowEnd = r.sealedAt + p.challengeWindow;
        // solhint-disable-next-line not-rely-on-time
        if (block.timestamp <= windowEnd) {
            // solhint-disable-next-line not-rely-on-time
            revert ChallengeWindowOpen(jobId, round, windowEnd, uint64(block.timestamp));
        }
        uint256 open = court.openDisputes(jobId, round);
        if (open != 0) revert DisputesOpen(jobId, round, open);
        r.finalized = true;
        emit RoundFinalized(jobId, round);

        (address[] memory paid, address[] memory released) = _settleStages(jobId, round, p);
        uint256 paidCount = 0;
        for (uint256 s = 0; s < paid.length; ++s) {
            if (paid[s] != address(0)) ++paidCount;
        }
        uint256 ownerShares = (paidCount * p.sharesPerStageRound * p.ownerShareBps)
            / (_BPS - p.ownerShareBps);
        if (ownerShares != 0) emit OwnerSharesMinted(jobId, round, job.owner, ownerShares);

        uint256 refund = 0;
        bool completed = round + 1 == p.rounds;
        if (completed) {
            job.status = JobStatus.Completed;
            refund = _funds[jobId].escrow;
            delete _funds[jobId];
            emit JobCompleted(jobId);
            emit EscrowRefunded(jobId, job.owner, refund);
        } else {
            job.currentRound = round + 1;
            if (job.filledStages == p.numStages) _startRound(jobId, round + 1);
        }

        _payout(jobId, p, paid, released);
        if (ownerShares != 0) _mintOrPark(jobId, job.owner, ownerShares);
        if (completed) {
            _releaseHolders(jobId);
            if (refund != 0) token.safeTransfer(job.owner, refund);
        }
    }

    /// @notice Mints to `to` the shares of `jobId` whose mint to the caller was refused by the
    ///         caller's ERC-1155 hook.
    /// @param jobId Job (= model id).
    /// @param to Receiver of the shares.
    function claimParkedShares(uint256 jobId, address to) external nonReentrant {
        uint256 amount = _parkedShares[jobId][msg.sender];
        if (amount == 0) revert NoParkedShares(jobId, msg.sender);
        delete _parkedShares[jobId][msg.sender];
        emit ParkedSharesClaimed(jobId, msg.sender, to, amount);
        shares.mint(to, jobId, amount);
    }

    // ------------------------------------------------------------------ court hook

    /// @notice Court only: marks the commitment of `stage` in `round` slashed (it will not be
    ///         paid), vacates the stage if its committer still holds it (its lock is released
    ///         when the round finalizes), and on the first slash of the commitment sends the
    ///         court a bounty of min(validator pool left, rewardPerStageRound).
    /// @param jobId Job.
    /// @param round Round of the commitment.
    /// @param stage Stage of the commitment.
    /// @return provider The committer.
    /// @return stakeAtRisk The job's `minStake` (the base of the court's slash).
    /// @return bounty Tokens transferred to the court.
    function slashCommitment(uint256 jobId, uint32 round, uint32 stage)
        external
        onlyCourt
        nonReentrant
        returns (address provider, uint256 stakeAtRisk, uint256 bounty)
    {
        Commitment storage c = _commitments[jobId][round][stage];
        provider = c.provider;
        JobParams storage p = _params[jobId];
        stakeAtRisk = p.minStake;
        if (c.slashed) return (provider, stakeAtRisk, 0);
        c.slashed = true;
        emit CommitmentSlashed(jobId, round, stage, provider);
        Job storage job = _jobs[jobId];
        if (
            job.status == JobStatus.Running && job.currentRound == round
                && _stageProvider[jobId][stage] == provider && provider != address(0)
        ) {
            delete _stageProvider[jobId][stage];
            --job.filledStages;
            _releaseAtFinalize[jobId][stage] = provider;
            emit StageVacated(jobId, stage, provider);
        }
        Funds storage f = _funds[jobId];
        bounty = f.validatorPoolLeft < p.rewardPerStageRound
            ? f.validatorPoolLeft
            : p.rewardPerStageRound;
        if (bounty != 0) {
            f.validatorPoolLeft -= bounty;
            f.escrow -= bounty;
            emit BountyPaid(jobId, round, bounty);
            token.safeTransfer(msg.sender, bounty);
        }
    }

    // ------------------------------------------------------------------ views

    /// @notice Id the next posted job will get.
    /// @return The next job id.
    function nextJobId() external view returns (uint256) {
        return _nextJobId;
    }

    /// @notice Parameters of a job.
    /// @param jobId Job.
    /// @return The JobParams it was posted with.
    function jobParams(uint256 jobId) external view returns (JobParams memory) {
        _existingView(jobId);
        return _params[jobId];
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
        Job memory job = _existingView(jobId);
        return (
            job.status,
            job.owner,
            job.currentRound,
            _rounds[jobId][job.currentRound].start,
            _funds[jobId].escrow
        );
    }

    /// @notice Number of stages currently held.
    /// @param jobId Job.
    /// @return Filled stages.
    function filledStages(uint256 jobId) external view returns (uint32) {
        return _jobs[jobId].filledStages;
    }

    /// @notice What is left of the job's validator pool.
    /// @param jobId Job.
    /// @return Tokens left.
    function validatorPoolLeft(uint256 jobId) external view returns (uint256) {
        return _funds[jobId].validatorPoolLeft;
    }

    /// @notice Provider holding `stage`, or the zero address if vacant.
    /// @param jobId Job.
    /// @param stage Stage.
    /// @return The provider.
    function stageProvider(uint256 jobId, uint32 stage) external view returns (address) {
        return _stageProvider[jobId][stage];
    }

    /// @notice Stage `provider` holds or held in the job, or -1 if none.
    /// @param jobId Job.
    /// @param provider Account.
    /// @return The stage index, or -1.
    function stageOf(uint256 jobId, address provider) external view returns (int256) {
        return int256(uint256(_heldStage[jobId][provider])) - 1;
    }

    /// @notice Last round in which `stage` was paid (its last accepted checkpoint), -1 if none.
    ///         A provider re-joining the stage resumes from this round's checkpoint.
    /// @param jobId Job.
    /// @param stage Stage.
    /// @return The round, or -1.
    function lastFinalizedRound(uint256 jobId, uint32 stage) external view returns (int256) {
        return int256(uint256(_lastPaidRound[jobId][stage])) - 1;
    }

    /// @notice The commitment of `stage` in `round` (the record CID is in the RoundCommitted
    ///         event only: storing it would double the gas of a commit).
    /// @param jobId Job.
    /// @param round Round.
    /// @param stage Stage.
    /// @return traceRoot Committed Merkle root (0 if none).
    /// @return provider Committer.
    /// @return committedAt Commit timestamp (0 if none).
    /// @return slashed Whether the court slashed it.
    function commitment(uint256 jobId, uint32 round, uint32 stage)
        external
        view
        returns (bytes32 traceRoot, address provider, uint64 committedAt, bool slashed)
    {
        Commitment memory c = _commitments[jobId][round][stage];
        return (c.traceRoot, c.provider, c.committedAt, c.slashed);
    }

    /// @notice Timeline of a round.
    /// @param jobId Job.
    /// @param round Round.
    /// @return start Start time (0 = not started).
    /// @return commitDeadline Last second a commit is accepted (0 = not started).
    /// @return sealedAt Seal time (0 = not sealed); the challenge window is
    ///         [sealedAt, sealedAt + challengeWindow].
    /// @return sealBlock Seal block (0 = not sealed); the audit seed anchors on sealBlock + 1.
    /// @return finalized Whether finalized.
    function roundInfo(uint256 jobId, uint32 round)
        external
        view
        returns (
            uint64 start,
            uint64 commitDeadline,
            uint64 sealedAt,
            uint64 sealBlock,
            bool finalized
        )
    {
        Round memory r = _rounds[jobId][round];
        commitDeadline = r.start == 0 ? 0 : r.start + _params[jobId].commitWindow;
        return (r.start, commitDeadline, r.sealedAt, r.sealBlock, r.finalized);
    }

    /// @notice Number of stages that committed `round`.
    /// @param jobId Job.
    /// @param round Round.
    /// @return Commit count.
    function roundCommits(uint256 jobId, uint32 round) external view returns (uint32) {
        return _rounds[jobId][round].commits;
    }

    /// @notice Audit seed of a sealed round: keccak256(abi.encode(blockhash(anchor), jobId,
    ///         round)) with anchor = sealBlock + 1 (or the re-anchored block). Reverts until
    ///         block.number > anchor, and after 256 blocks unless it was recorded.
    /// @param jobId Job.
    /// @param round Round.
    /// @return The seed.
    function auditSeed(uint256 jobId, uint32 round) external view returns (bytes32) {
        bytes32 stored = _seeds[jobId][round].value;
        if (stored != bytes32(0)) return stored;
        uint64 anchor = _anchorBlock(jobId, round);
        if (block.number <= anchor) revert AuditSeedNotYetAvailable(jobId, round, anchor);
        if (block.number - anchor > _BLOCKHASH_WINDOW) revert AuditSeedExpired(jobId, round, anchor);
        return _seedAt(jobId, round, anchor);
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
        Commitment memory c = _commitments[jobId][round][stage];
        Round memory r = _rounds[jobId][round];
        windowEnd = r.sealBlock == 0 ? 0 : r.sealedAt + _params[jobId].challengeWindow;
        return (c.traceRoot, c.provider, c.slashed, r.sealedAt, windowEnd, r.sealBlock);
    }

    /// @notice Shares of `jobId` parked for `account` (see claimParkedShares).
    /// @param jobId Job.
    /// @param account Account.
    /// @return Parked shares.
    function parkedShares(uint256 jobId, address account) external view returns (uint256) {
        return _parkedShares[jobId][account];
    }

    // ------------------------------------------------------------------ internals

    function _validate(JobParams calldata p) private pure {
        if (bytes(p.specCID).length == 0) revert InvalidJobParameter("specCID", 0);
        if (p.numStages == 0 || p.numStages > MAX_STAGES) {
            revert InvalidJobParameter("numStages", p.numStages);
        }
        if (p.rounds == 0) revert InvalidJobParameter("rounds", 0);
        if (p.stepsPerRound == 0) revert InvalidJobParameter("stepsPerRound", 0);
        if (p.sharesPerStageRound == 0) revert InvalidJobParameter("sharesPerStageRound", 0);
        if (p.minStake == 0) revert InvalidJobParameter("minStake", 0);
        if (p.commitWindow == 0) revert InvalidJobParameter("commitWindow", 0);
        if (p.challengeWindow == 0) revert InvalidJobParameter("challengeWindow", 0);
        if (p.auditLeaves == 0) revert InvalidJobParameter("auditLeaves", 0);
        if (p.ownerShareBps >= _BPS) revert InvalidJobParameter("ownerShareBps", p.ownerShareBps);
    }

    function _existing(uint256 jobId) private view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
    }

    function _existingView(uint256 jobId) private view returns (Job memory job) {
        job = _jobs[jobId];
        if (job.owner == address(0)) revert UnknownJob(jobId);
    }

    function _running(uint256 jobId) private view returns (Job storage job) {
        job = _existing(jobId);
        if (job.status != JobStatus.Running) revert WrongJobStatus(jobId, job.status);
    }

    function _startRound(uint256 jobId, uint32 round) private {
        // solhint-disable-next-line not-rely-on-time
        uint64 start = uint64(block.timestamp);
        _rounds[jobId][round].start = start;
        emit RoundStarted(jobId, round, start);
    }

    function _seal(uint256 jobId, uint32 round, Round storage r) private {
        // solhint-disable-next-line not-rely-on-time
        r.sealedAt = uint64(block.timestamp);
        r.sealBlock = uint64(block.number);
        emit RoundSealed(jobId, round, uint64(block.number));
    }

    /// @dev Effects of finalization per stage: pays from escrow, records the last paid round,
    ///      collects court-vacated providers whose lock is now released.
    function _settleStages(uint256 jobId, uint32 round, JobParams storage p)
        private
        returns (address[] memory paid, address[] memory released)
    {
        uint32 numStages = p.numStages;
        paid = new address[](numStages);
        released = new address[](numStages);
        uint256 reward = p.rewardPerStageRound;
        uint256 spent = 0;
        for (uint32 s = 0; s < numStages; ++s) {
            Commitment memory c = _commitments[jobId][round][s];
            if (c.committedAt != 0 && !c.slashed) {
                paid[s] = c.provider;
                spent += reward;
                _lastPaidRound[jobId][s] = round + 1;
                emit StagePaid(jobId, round, s, c.provider, reward, p.sharesPerStageRound);
            }
            address vacated = _releaseAtFinalize[jobId][s];
            if (vacated != address(0)) {
                released[s] = vacated;
                delete _releaseAtFinalize[jobId][s];
            }
        }
        _funds[jobId].escrow -= spent;
    }

    /// @dev Interactions of finalization: rewards, shares, lock releases of court-vacated
    ///      providers.
    function _payout(
        uint256 jobId,
        JobParams storage p,
        address[] memory paid,
        address[] memory released
    ) private {
        for (uint256 s = 0; s < paid.length; ++s) {
            if (paid[s] == address(0)) continue;
            token.safeTransfer(paid[s], p.rewardPerStageRound);
            _mintOrPark(jobId, paid[s], p.sharesPerStageRound);
        }
        for (uint256 s = 0; s < released.length; ++s) {
            if (released[s] != address(0)) stakes.unlock(released[s], p.minStake);
        }
    }

    function _mintOrPark(uint256 jobId, address to, uint256 amount) private {
        // A receiver whose ERC-1155 hook reverts must not block the round for everyone.
        // solhint-disable-next-line no-empty-blocks
        try shares.mint(to, jobId, amount) {}
        catch {
            _parkedShares[jobId][to] += amount;
            emit SharesParked(jobId, to, amount);
        }
    }

    function _releaseHolders(uint256 jobId) private {
        JobParams storage p = _params[jobId];
        uint32 numStages = p.numStages;
        for (uint32 s = 0; s < numStages; ++s) {
            address holder = _stageProvider[jobId][s];
            if (holder != address(0)) stakes.unlock(holder, p.minStake);
        }
    }

    function _anchorBlock(uint256 jobId, uint32 round) private view returns (uint64) {
        uint64 sealBlock = _rounds[jobId][round].sealBlock;
        if (sealBlock == 0) revert RoundNotSealed(jobId, round);
        uint64 reanchored = _seeds[jobId][round].anchorBlock;
        return reanchored != 0 ? reanchored : sealBlock + 1;
    }

    function _seedAt(uint256 jobId, uint32 round, uint64 anchor) private view returns (bytes32) {
        return keccak256(abi.encode(blockhash(anchor), jobId, round));
    }
}
