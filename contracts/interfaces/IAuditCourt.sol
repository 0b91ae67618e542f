// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IAuditCourt
/// @notice Disputes over committed trace leaves, decided by a commit-reveal committee of
///         staked validators.
interface IAuditCourt {
    /// @notice Dispute status as returned by `dispute`.
    enum DisputeStatus {
        Open,
        Voting,
        ProviderSlashed,
        ChallengerSlashed,
        Void
    }

    /// @notice Constructor parameters, each exposed as a view.
    struct CourtParams {
        uint256 challengeBond;
        uint64 responseWindow;
        uint64 commitVoteWindow;
        uint64 revealWindow;
        uint16 providerSlashBps;
        uint16 winnerRewardBps;
        uint256 nonRevealPenalty;
        uint256 minValidatorStake;
        uint8 committeeSize;
    }

    /// @notice A parameter is out of range; `name` says which.
    error InvalidCourtParameter(bytes32 name, uint256 value);
    /// @notice `account` is already a registered validator.
    error AlreadyValidator(address account);
    /// @notice `account` is not a registered validator.
    error NotValidator(address account);
    /// @notice `account` sits on `active` undecided committees and cannot leave yet.
    error OnActiveCommittee(address account, uint256 active);
    /// @notice The round's challenge window is [`windowStart`, `windowEnd`]; now is `nowTime`.
    error OutsideChallengeWindow(uint64 windowStart, uint64 windowEnd, uint64 nowTime);
    /// @notice The commitment was already slashed, or the stage never committed.
    error NothingToChallenge(uint256 jobId, uint32 round, uint32 stage);
    /// @notice The leaf node `leafNode` is not under `traceRoot` with the given proof.
    error LeafNotInRoot(bytes32 traceRoot, bytes32 leafNode);
    /// @notice This leaf of this commitment is already disputed by `disputeId`.
    error LeafAlreadyDisputed(uint256 disputeId);
    /// @notice A provider cannot challenge its own commitment.
    error SelfChallenge(address provider);
    /// @notice The audit seed of the round is not available yet (see JobMarket.recordAuditSeed).
    error AuditSeedNotReady(uint256 jobId, uint32 round);
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

    /// @notice `account` registered as a validator, locking `stakeLocked`.
    event ValidatorRegistered(address indexed account, uint256 stakeLocked);
    /// @notice `account` deregistered; its validator lock was released.
    event ValidatorDeregistered(address indexed account);
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
    /// @notice The committee that decides the dispute.
    event CommitteeDrawn(uint256 indexed disputeId, address[] members);
    /// @notice `voter` committed a sealed vote.
    event VoteCommitted(uint256 indexed disputeId, address indexed voter);
    /// @notice `voter` revealed `guilty`.
    event VoteRevealed(uint256 indexed disputeId, address indexed voter, bool guilty);
    /// @notice The dispute ended; `slashAmount` was taken from the loser.
    event DisputeResolved(uint256 indexed disputeId, bool providerSlashed, uint256 slashAmount);
    /// @notice The dispute ended without a decision (no vote revealed); the bond was refunded.
    event DisputeVoided(uint256 indexed disputeId);
    /// @notice `voter` did not reveal and lost `penalty`.
    event NonRevealSlashed(uint256 indexed disputeId, address indexed voter, uint256 penalty);
    /// @notice `amount` was credited to `account` (withdraw with `withdrawCredit`).
    event Credited(address indexed account, uint256 amount);
    /// @notice `account` withdrew `amount` of credit.
    event CreditWithdrawn(address indexed account, uint256 amount);

    /// @notice Open disputes of a round (JobMarket waits for zero before finalizing).
    function openDisputes(uint256 jobId, uint32 round) external view returns (uint256);
}
