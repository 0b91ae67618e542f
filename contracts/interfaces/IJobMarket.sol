// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IJobMarket
/// @notice Training jobs: one stage per provider with a per-job stake allocation, strictly
///         sequential rounds of commit -> seal -> challenge window -> finalize. Terms and escrow
///         are kept by a JobTerms, credited rewards and shares by a RewardVault (claimed there).
interface IJobMarket {
    /// @notice Everything the owner fixes when posting a job. Every field is bounded (see the
    ///         MAX_/MIN_ constants and `minChallengeWindow`).
    struct JobParams {
        string specCID;
        uint32 numStages;
        uint32 rounds;
        uint32 stepsPerRound;
        uint32 microBatches;
        uint256 rewardPerStageRound;
        uint256 sharesPerStageRound;
        uint256 minStake;
        uint64 commitWindow;
        uint64 challengeWindow;
        uint16 auditLeaves;
        uint16 ownerShareBps;
        uint256 validatorPool;
    }

    /// @notice Job status as returned by `jobState`.
    enum JobStatus {
        Open,
        Running,
        Completed,
        Cancelled
    }

    /// @notice A job parameter is out of range; `name` says which, `value` what was given.
    error InvalidJobParameter(bytes32 name, uint256 value);
    /// @notice No job has id `jobId`.
    error UnknownJob(uint256 jobId);
    /// @notice The job is in status `status`, which does not allow this call.
    error WrongJobStatus(uint256 jobId, JobStatus status);
    /// @notice `stage` is not below the job's `numStages`.
    error StageOutOfRange(uint256 jobId, uint32 stage, uint32 numStages);
    /// @notice `stage` is already held by `provider`.
    error StageTaken(uint256 jobId, uint32 stage, address provider);
    /// @notice `provider` already holds, or held, stage `heldStage` of the job.
    error OneStagePerProvider(uint256 jobId, address provider, uint32 heldStage);
    /// @notice `caller` is not the provider of `stage`.
    error NotStageProvider(uint256 jobId, uint32 stage, address caller);
    /// @notice `caller` holds no stage of the job.
    error NoStageHeld(uint256 jobId, address caller);
    /// @notice `provider` was vacated by the court and its allocation is released only when the
    ///         round finalizes: it cannot re-join before.
    error AllocationPending(uint256 jobId, address provider);
    /// @notice `round` is not the job's current round `currentRound`.
    error NotCurrentRound(uint256 jobId, uint32 round, uint32 currentRound);
    /// @notice `round` has not started (it waits for a vacant stage to be re-joined).
    error RoundNotStarted(uint256 jobId, uint32 round);
    /// @notice The commit deadline of `round` was `deadline`; now is `nowTime`.
    error CommitWindowClosed(uint256 jobId, uint32 round, uint64 deadline, uint64 nowTime);
    /// @notice The commit phase of `round` is open until `deadline`; now is `nowTime`.
    error CommitWindowOpen(uint256 jobId, uint32 round, uint64 deadline, uint64 nowTime);
    /// @notice `stage` already committed `round`.
    error AlreadyCommitted(uint256 jobId, uint32 round, uint32 stage);
    /// @notice A zero trace root, zero final state hash or empty record CID.
    error EmptyCommitment(uint256 jobId, uint32 round, uint32 stage);
    /// @notice `round` is already sealed.
    error RoundAlreadySealed(uint256 jobId, uint32 round);
    /// @notice `round` is not sealed yet.
    error RoundNotSealed(uint256 jobId, uint32 round);
    /// @notice The challenge window of `round` ends at `windowEnd`; now is `nowTime`.
    error ChallengeWindowOpen(uint256 jobId, uint32 round, uint64 windowEnd, uint64 nowTime);
    /// @notice `round` still has `openDisputes` unresolved disputes.
    error DisputesOpen(uint256 jobId, uint32 round, uint256 openDisputes);
    /// @notice The audit seed of `round` becomes available at block `anchorBlock`.
    error AuditSeedNotYetAvailable(uint256 jobId, uint32 round, uint64 anchorBlock);
    /// @notice `caller` may not cancel: it is not the owner `owner` and the job is not stalled
    ///         (anyone may cancel from `stalledAt`).
    error NotJobOwner(uint256 jobId, address caller, address owner, uint64 stalledAt);
    /// @notice A round of the job is in flight (started and not finalized): it cannot be
    ///         cancelled nor left.
    error RoundInFlight(uint256 jobId, uint32 round);
    /// @notice Only the AuditCourt may call; `caller` is not it.
    error NotCourt(address caller);
    /// @notice The court address was already set, or is zero.
    error CourtAlreadySet(address court);
    /// @notice The court address has not been set yet.
    error CourtNotSet();
    /// @notice `caller` did not commit `stage` of `round`, so it has no audit bundle to publish.
    error NotCommitter(uint256 jobId, uint32 round, uint32 stage, address caller);

    /// @notice `owner` posted job `jobId` described by `specCID`.
    event JobPosted(uint256 indexed jobId, address indexed owner, string specCID);
    /// @notice `provider` joined `stage`.
    event StageJoined(uint256 indexed jobId, uint32 indexed stage, address indexed provider);
    /// @notice `provider` left `stage` (liveness failure, slashed, or `leaveStage`).
    event StageVacated(uint256 indexed jobId, uint32 indexed stage, address indexed provider);
    /// @notice `round` started at `start`.
    event RoundStarted(uint256 indexed jobId, uint32 indexed round, uint64 start);
    /// @notice `provider` committed `traceRoot`, the state hash of its published checkpoint
    ///         `finalStateHash` and the round record `recordCID` for `stage`.
    event RoundCommitted(
        uint256 indexed jobId,
        uint32 indexed round,
        uint32 indexed stage,
        address provider,
        bytes32 traceRoot,
        bytes32 finalStateHash,
        string recordCID
    );
    /// @notice `round` was sealed in block `sealBlock`; its audit seed anchors on
    ///         `anchorBlock`.
    event RoundSealed(uint256 indexed jobId, uint32 indexed round, uint64 sealBlock, uint64 anchorBlock);
    /// @notice `provider` published the audit bundle `bundleCID` of `stage` in `round`.
    event AuditBundlePosted(
        uint256 indexed jobId,
        uint32 indexed round,
        uint32 indexed stage,
        address provider,
        string bundleCID
    );
    /// @notice `provider` of `stage` missed the commit deadline and lost `penalty` to the job's
    ///         validator pool.
    event LivenessSlashed(
        uint256 indexed jobId,
        uint32 indexed round,
        uint32 indexed stage,
        address provider,
        uint256 penalty
    );
    /// @notice The audit seed of `round` was stored on-chain.
    event AuditSeedRecorded(uint256 indexed jobId, uint32 indexed round, bytes32 seed);
    /// @notice Nobody stored the seed in its anchor block; it now anchors on `anchorBlock`.
    event AuditSeedReanchored(uint256 indexed jobId, uint32 indexed round, uint64 anchorBlock);
    /// @notice `round` was finalized.
    event RoundFinalized(uint256 indexed jobId, uint32 indexed round);
    /// @notice `provider` of `stage` was credited `reward` and `shares` for `round` (in the
    ///         RewardVault).
    event StagePaid(
        uint256 indexed jobId,
        uint32 indexed round,
        uint32 indexed stage,
        address provider,
        uint256 reward,
        uint256 shares
    );
    /// @notice The owner was credited `shares` for `round`.
    event OwnerSharesMinted(uint256 indexed jobId, uint32 indexed round, address owner, uint256 shares);
    /// @notice The commitment of `stage` in `round` was slashed by the court (`amount` taken).
    event CommitmentSlashed(
        uint256 indexed jobId,
        uint32 indexed round,
        uint32 indexed stage,
        address provider,
        uint256 amount
    );
    /// @notice `bounty` of the job's validator pool went to the court for a proven fault.
    event BountyPaid(uint256 indexed jobId, uint32 indexed round, uint256 bounty);
    /// @notice The last round was finalized.
    event JobCompleted(uint256 indexed jobId);
    /// @notice `by` cancelled the job.
    event JobCancelled(uint256 indexed jobId, address indexed by);
    /// @notice `refund` of escrow was returned to the owner of the job.
    event EscrowRefunded(uint256 indexed jobId, address indexed owner, uint256 refund);
    /// @notice The AuditCourt was wired in.
    event CourtSet(address indexed court);

    /// @notice Posts a job with one initial state hash per stage and escrows its whole budget.
    function postJob(JobParams calldata p, bytes32[] calldata initialStateHashes)
        external
        returns (uint256 jobId);
    /// @notice Joins `stage` of `jobId`, allocating the job's minimum stake.
    function joinStage(uint256 jobId, uint32 stage) external;
    /// @notice Leaves the caller's stage while no round is in flight.
    function leaveStage(uint256 jobId) external;
    /// @notice Commits the trace root, final state hash and round record of `stage`.
    function commitRound(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        bytes32 traceRoot,
        bytes32 finalStateHash,
        string calldata recordCID
    ) external;
    /// @notice Seals `round` after its commit deadline, slashing and vacating absent stages.
    function sealRound(uint256 jobId, uint32 round) external;
    /// @notice Publishes the audit bundle CID of `stage` for the sealed `round` (event only).
    function postAuditBundle(uint256 jobId, uint32 round, uint32 stage, string calldata bundleCID)
        external;
    /// @notice Stores the audit seed of `round` (or re-anchors it when its block passed).
    function recordAuditSeed(uint256 jobId, uint32 round) external returns (bytes32 seed);
    /// @notice Finalizes `round`: credits every unslashed committed stage.
    function finalizeRound(uint256 jobId, uint32 round) external;
    /// @notice Cancels a job while no round is in flight (owner), or once stalled (anyone).
    function cancelJob(uint256 jobId) external;
    /// @notice Court hook: slashes the commitment of `stage` in `round` (at most once).
    function slashCommitment(uint256 jobId, uint32 round, uint32 stage, uint16 slashBps)
        external
        returns (address provider, uint256 slashed, uint256 bounty);

    /// @notice Audit seed of a sealed round.
    function auditSeed(uint256 jobId, uint32 round) external view returns (bytes32);
    /// @notice What the court needs to open a dispute on a commitment.
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
        );
    /// @notice Trace layout of a job: leafCount = stepsPerRound * microBatches.
    function leafLayout(uint256 jobId)
        external
        view
        returns (uint32 stepsPerRound, uint32 microBatches, uint256 minStake);
    /// @notice State hash a stage's round must start from and the final state hash it committed.
    function stateHashes(uint256 jobId, uint32 round, uint32 stage)
        external
        view
        returns (bytes32 expectedStart, bytes32 committedFinal);
}
