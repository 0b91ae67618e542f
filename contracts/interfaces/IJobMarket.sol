// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IJobMarket
/// @notice Training jobs: escrow, one stage per provider, strictly sequential rounds of
///         commit -> seal -> challenge window -> finalize.
interface IJobMarket {
    /// @notice Everything the owner fixes when posting a job.
    struct JobParams {
        string specCID;
        uint32 numStages;
        uint32 rounds;
        uint32 stepsPerRound;
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
    /// @notice A zero trace root or empty record CID.
    error EmptyCommitment(uint256 jobId, uint32 round, uint32 stage);
    /// @notice `round` is already sealed.
    error RoundAlreadySealed(uint256 jobId, uint32 round);
    /// @notice `round` is not sealed yet.
    error RoundNotSealed(uint256 jobId, uint32 round);
    /// @notice The challenge window of `round` ends at `windowEnd`; now is `nowTime`.
    error ChallengeWindowOpen(uint256 jobId, uint32 round, uint64 windowEnd, uint64 nowTime);
    /// @notice `round` still has `openDisputes` unresolved disputes.
    error DisputesOpen(uint256 jobId, uint32 round, uint256 openDisputes);
    /// @notice `round` is already finalized.
    error RoundAlreadyFinalized(uint256 jobId, uint32 round);
    /// @notice The audit seed of `round` becomes available after block `anchorBlock`.
    error AuditSeedNotYetAvailable(uint256 jobId, uint32 round, uint64 anchorBlock);
    /// @notice The anchor block `anchorBlock` is older than 256 blocks and nobody recorded
    ///         the seed; call `recordAuditSeed` to re-anchor it.
    error AuditSeedExpired(uint256 jobId, uint32 round, uint64 anchorBlock);
    /// @notice `caller` is not the job owner `owner`.
    error NotJobOwner(uint256 jobId, address caller, address owner);
    /// @notice A round of the job is in flight (started and not finalized): it cannot be cancelled.
    error RoundInFlight(uint256 jobId, uint32 round);
    /// @notice Only the AuditCourt may call; `caller` is not it.
    error NotCourt(address caller);
    /// @notice The court address was already set, or is zero.
    error CourtAlreadySet(address court);
    /// @notice The court address has not been set yet.
    error CourtNotSet();
    /// @notice No parked shares of `jobId` for `account`.
    error NoParkedShares(uint256 jobId, address account);
    /// @notice `caller` did not commit `stage` of `round`, so it has no audit bundle to publish.
    error NotCommitter(uint256 jobId, uint32 round, uint32 stage, address caller);

    /// @notice `owner` posted job `jobId` described by `specCID`.
    event JobPosted(uint256 indexed jobId, address indexed owner, string specCID);
    /// @notice `provider` joined `stage`.
    event StageJoined(uint256 indexed jobId, uint32 indexed stage, address indexed provider);
    /// @notice `provider` left `stage` (liveness failure or slashed).
    event StageVacated(uint256 indexed jobId, uint32 indexed stage, address indexed provider);
    /// @notice `round` started at `start`.
    event RoundStarted(uint256 indexed jobId, uint32 indexed round, uint64 start);
    /// @notice `provider` committed `traceRoot` and the round record `recordCID` for `stage`.
    event RoundCommitted(
        uint256 indexed jobId,
        uint32 indexed round,
        uint32 indexed stage,
        address provider,
        bytes32 traceRoot,
        string recordCID
    );
    /// @notice `round` was sealed in block `sealBlock`; its audit seed anchors on the next block.
    event RoundSealed(uint256 indexed jobId, uint32 indexed round, uint64 sealBlock);
    /// @notice `provider` published the audit bundle `bundleCID` of the sampled leaves of
    ///         `stage` in `round` (validators replay from it).
    event AuditBundlePosted(
        uint256 indexed jobId,
        uint32 indexed round,
        uint32 indexed stage,
        address provider,
        string bundleCID
    );
    /// @notice `provider` of `stage` missed the commit deadline and lost `penalty`.
    event LivenessSlashed(
        uint256 indexed jobId,
        uint32 indexed round,
        uint32 indexed stage,
        address provider,
        uint256 penalty
    );
    /// @notice The audit seed of `round` was stored on-chain.
    event AuditSeedRecorded(uint256 indexed jobId, uint32 indexed round, bytes32 seed);
    /// @notice Nobody stored the seed within 256 blocks; it now anchors on block `anchorBlock`.
    event AuditSeedReanchored(uint256 indexed jobId, uint32 indexed round, uint64 anchorBlock);
    /// @notice `round` was finalized.
    event RoundFinalized(uint256 indexed jobId, uint32 indexed round);
    /// @notice `provider` of `stage` was paid `reward` and minted `shares` for `round`.
    event StagePaid(
        uint256 indexed jobId,
        uint32 indexed round,
        uint32 indexed stage,
        address provider,
        uint256 reward,
        uint256 shares
    );
    /// @notice The owner was minted `shares` for `round`.
    event OwnerSharesMinted(uint256 indexed jobId, uint32 indexed round, address owner, uint256 shares);
    /// @notice Minting `shares` to `account` failed (its ERC-1155 hook refused); it may claim them
    ///         later with `claimParkedShares`.
    event SharesParked(uint256 indexed jobId, address indexed account, uint256 shares);
    /// @notice `account` minted its parked shares of `jobId` to `to`.
    event ParkedSharesClaimed(
        uint256 indexed jobId, address indexed account, address indexed to, uint256 shares
    );
    /// @notice The commitment of `stage` in `round` was slashed by the court.
    event CommitmentSlashed(
        uint256 indexed jobId, uint32 indexed round, uint32 indexed stage, address provider
    );
    /// @notice `bounty` of the job's validator pool went to the court for a proven fault.
    event BountyPaid(uint256 indexed jobId, uint32 indexed round, uint256 bounty);
    /// @notice The last round was finalized; `refund` of unspent escrow went back to the owner.
    event JobCompleted(uint256 indexed jobId);
    /// @notice The owner cancelled the job; the escrow left went back to it.
    event JobCancelled(uint256 indexed jobId);
    /// @notice `refund` of escrow was returned to the owner of the job.
    event EscrowRefunded(uint256 indexed jobId, address indexed owner, uint256 refund);
    /// @notice The AuditCourt was wired in.
    event CourtSet(address indexed court);

    /// @notice Posts a job and escrows its whole budget.
    function postJob(JobParams calldata p) external returns (uint256 jobId);
    /// @notice Joins `stage` of `jobId`, locking the job's minimum stake.
    function joinStage(uint256 jobId, uint32 stage) external;
    /// @notice Commits the trace root and round record of `stage` for `round`.
    function commitRound(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        bytes32 traceRoot,
        string calldata recordCID
    ) external;
    /// @notice Seals `round` after its commit deadline, slashing and vacating absent stages.
    function sealRound(uint256 jobId, uint32 round) external;
    /// @notice Publishes the audit bundle CID of `stage` for the sealed `round` (event only).
    function postAuditBundle(uint256 jobId, uint32 round, uint32 stage, string calldata bundleCID)
        external;
    /// @notice Stores the audit seed of `round` (or re-anchors it when it expired).
    function recordAuditSeed(uint256 jobId, uint32 round) external returns (bytes32 seed);
    /// @notice Finalizes `round`: pays and mints every unslashed committed stage.
    function finalizeRound(uint256 jobId, uint32 round) external;
    /// @notice Cancels a job while no round is in flight, refunding the escrow left.
    function cancelJob(uint256 jobId) external;
    /// @notice Court hook: slashes the commitment of `stage` in `round`.
    function slashCommitment(uint256 jobId, uint32 round, uint32 stage)
        external
        returns (address provider, uint256 stakeAtRisk, uint256 bounty);

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
}
