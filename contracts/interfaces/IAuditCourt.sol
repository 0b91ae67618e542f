// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IAuditCourt
/// @notice Disputes over committed trace leaves: decided by a stake-weighted commit-reveal
///         committee drawn from the validator set snapshotted at the round's seal, or, for
///         structural faults that two leaves prove by themselves, at once.
interface IAuditCourt {
    /// @notice Dispute status as returned by `dispute`.
    enum DisputeStatus {
        Open,
        Voting,
        ProviderSlashed,
        ChallengerSlashed,
        Void
    }

    /// @notice What a structural proof shows (see `proveFault`).
    enum FaultKind {
        StepParamsMismatch,
        StepDiscontinuity,
        StartStateMismatch,
        FinalStateMismatch
    }

    /// @notice Trace leaf v2: the fields whose abi.encode is hashed into the leaf hash.
    struct TraceLeaf {
        uint256 step;
        uint256 microBatch;
        bytes32 paramsBefore;
        bytes32 input;
        bytes32 output;
        bytes32 gradIn;
        bytes32 gradOut;
        bytes32 paramsAfter;
        bytes32 dataRef;
        bytes32 inputAttestation;
        bytes32 gradInAttestation;
    }

    /// @notice A leaf with its Merkle proof against the disputed commitment's trace root.
    struct LeafProof {
        TraceLeaf leaf;
        bytes32[] proof;
    }

    /// @notice Constructor parameters, each exposed as a view.
    struct CourtParams {
        uint256 challengeBond;
        uint64 responseWindow;
        uint64 commitVoteWindow;
        uint64 revealWindow;
        uint16 providerSlashBps;
        uint16 winnerRewardBps;
        uint8 committeeSize;
    }

    /// @notice A parameter is out of range; `name` says which.
    error InvalidCourtParameter(bytes32 name, uint256 value);
    /// @notice The round's challenge window is [`windowStart`, `windowEnd`]; now is `nowTime`.
    error OutsideChallengeWindow(uint64 windowStart, uint64 windowEnd, uint64 nowTime);
    /// @notice The commitment was already slashed, or the stage never committed.
    error NothingToChallenge(uint256 jobId, uint32 round, uint32 stage);
    /// @notice `leafIndex` is not below the job's leaf count `leafCount`: no honest provider
    ///         could answer a dispute over it.
    error LeafIndexOutOfRange(uint256 leafIndex, uint256 leafCount);
    /// @notice The leaf node `leafNode` is not under `traceRoot` with the given proof.
    error LeafNotInRoot(bytes32 traceRoot, bytes32 leafNode);
    /// @notice The caller already disputed this leaf (others still may).
    error LeafAlreadyDisputed(uint256 disputeId);
    /// @notice A provider cannot challenge its own commitment.
    error SelfChallenge(address provider);
    /// @notice The audit seed of the round is not available yet (see JobMarket.recordAuditSeed).
    error AuditSeedNotReady(uint256 jobId, uint32 round);
    /// @notice Fewer than `committeeSize` validators were registered by the round's seal: no
    ///         committee could sit.
    error NoCourt(uint256 jobId, uint32 round, uint256 snapshotSize);
    /// @notice No dispute has id `disputeId`.
    error UnknownDispute(uint256 disputeId);
    /// @notice The dispute is in `status`, which does not allow this call.
    error WrongDisputeStatus(uint256 disputeId, DisputeStatus status);
    /// @notice `caller` is not the accused provider `provider`.
    error NotAccused(uint256 disputeId, address caller, address provider);
    /// @notice The deadline `deadline` passed; now is `nowTime`.
    error DeadlinePassed(uint256 disputeId, uint64 deadline, uint64 nowTime);
    /// @notice The deadline `deadline` has not passed yet; now is `nowTime`.
    error DeadlineNotReached(uint256 disputeId, uint64 deadline, uint64 nowTime);
    /// @notice The bundle CID is empty.
    error EmptyBundle(uint256 disputeId);
    /// @notice The dispute came from `challengeIndex`: answer it with `revealLeaf`.
    error LeafNotRevealed(uint256 disputeId);
    /// @notice The dispute's leaf is already known: answer it with `respond`.
    error LeafAlreadyRevealed(uint256 disputeId);
    /// @notice `caller` is not on the committee of the dispute.
    error NotCommitteeMember(uint256 disputeId, address caller);
    /// @notice A vote commitment must be non-zero.
    error ZeroVoteCommitment(uint256 disputeId);
    /// @notice `voter` already committed a vote.
    error AlreadyVoted(uint256 disputeId, address voter);
    /// @notice `voter` has no committed vote to reveal.
    error NoCommittedVote(uint256 disputeId, address voter);
    /// @notice `voter` already revealed.
    error AlreadyRevealed(uint256 disputeId, address voter);
    /// @notice The revealed vote does not hash to the commitment of `voter`.
    error RevealMismatch(uint256 disputeId, address voter);
    /// @notice `account` has no credit to withdraw.
    error NoCredit(address account);
    /// @notice The two leaves do not show the claimed structural fault; `reason` says why.
    error NotAFault(bytes32 reason);
    /// @notice The payload signature recovers to `signer`, not the commitment's `provider`.
    error NotProviderSignature(address signer, address provider);

    /// @notice The accused provider revealed `leafHash` at the challenged index (proven).
    event LeafRevealed(uint256 indexed disputeId, bytes32 leafHash);
    /// @notice `challenger` disputed leaf `leafIndex` of `stage` in `round`.
    event ChallengeOpened(
        uint256 indexed disputeId,
        uint256 indexed jobId,
        uint32 round,
        uint32 stage,
        uint256 leafIndex,
        address indexed challenger
    );
    /// @notice The accused provider answered with its audit bundle.
    event ChallengeAnswered(uint256 indexed disputeId, string bundleCID);
    /// @notice The committee (one entry per seat) of attempt `attempt` of the dispute.
    event CommitteeDrawn(uint256 indexed disputeId, address[] members);
    /// @notice No quorum revealed in attempt `attempt`: a new committee is drawn.
    event CommitteeRedrawn(uint256 indexed disputeId, uint8 attempt);
    /// @notice `voter` committed a sealed vote.
    event VoteCommitted(uint256 indexed disputeId, address indexed voter);
    /// @notice `voter` revealed `guilty`.
    event VoteRevealed(uint256 indexed disputeId, address indexed voter, bool guilty);
    /// @notice The dispute ended; `slashAmount` was taken from the loser.
    event DisputeResolved(uint256 indexed disputeId, bool providerSlashed, uint256 slashAmount);
    /// @notice The dispute ended without a decision; the leaf stays challengeable by others.
    event DisputeVoided(uint256 indexed disputeId);
    /// @notice `voter` did not reveal and lost `penalty`.
    event NonRevealSlashed(uint256 indexed disputeId, address indexed voter, uint256 penalty);
    /// @notice `prover` proved a structural fault of `kind` in `stage`'s commitment of `round`.
    event FaultProven(
        uint256 indexed jobId,
        uint32 round,
        uint32 stage,
        FaultKind kind,
        address indexed prover,
        uint256 slashAmount
    );
    /// @notice `prover` proved that `stage`'s provider signed a payload (`direction` 0 forward,
    ///         1 backward) for leaf `leafIndex` of `round` other than the one the leaf records.
    event PayloadEquivocationProven(
        uint256 indexed jobId,
        uint32 round,
        uint32 stage,
        uint8 direction,
        uint256 leafIndex,
        address indexed prover,
        uint256 slashAmount
    );
    /// @notice `amount` was credited to `account` (withdraw with `withdrawCredit`).
    event Credited(address indexed account, uint256 amount);
    /// @notice `account` withdrew `amount` of credit.
    event CreditWithdrawn(address indexed account, uint256 amount);

    /// @notice Open disputes of a round (JobMarket waits for zero before finalizing).
    function openDisputes(uint256 jobId, uint32 round) external view returns (uint256);
}
