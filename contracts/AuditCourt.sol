// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {IAuditCourt} from "./interfaces/IAuditCourt.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";
import {IValidatorRegistry} from "./interfaces/IValidatorRegistry.sol";

/// @title AuditCourt
/// @notice Disputes over trace leaves. Rules it holds:
///         - No dispute can be opened that an honest provider cannot answer: the leaf index is
///           below the job's leaf count (stepsPerRound * microBatches), and a proven leaf is in
///           the committed root.
///         - The accused must answer before a deadline or lose its WHOLE allocation to the job
///           (the challenger gets only its bond and the bounty back, so a cheater's second
///           account pre-empting its own challenge pays more than a conviction would cost).
///         - An answered dispute goes to a committee drawn by stake from the validator set
///           registered by the round's seal block; seats are voted by commit-reveal. A decision
///           needs a quorum of seats; without one, the non-revealers lose what the vote decides
///           and a new committee is drawn (once), then the dispute is void. Every leaf stays
///           challengeable by every other account after a void or innocent outcome.
///         - Structural faults (leaves that contradict each other or the committed state
///           hashes) are proven with the leaves themselves and slash the whole allocation at once.
///         - A payload equivocation (the provider signed, for a boundary crossing, a payload
///           other than the one its own committed leaf records) is proven with the leaf and the
///           signature and slashes the whole allocation at once (`provePayloadEquivocation`).
///         A commitment is slashed at most once, and never beyond its job's allocation
///         (JobMarket.slashCommitment). Every payout is a credit withdrawn with
///         `withdrawCredit` (pull).
/// @dev Token balance of this contract == bonds of undecided disputes + sum of credits.
contract AuditCourt is IAuditCourt, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Largest committee (seats); bounds every loop over a committee.
    uint8 public constant MAX_COMMITTEE = 21;
    /// @notice Committees drawn again after one fails to reach quorum.
    uint8 public constant MAX_REDRAWS = 1;
    uint16 private constant _BPS = 10_000;

    struct Dispute {
        uint256 jobId;
        uint32 round;
        uint32 stage;
        DisputeStatus status;
        uint8 attempt;
        uint64 responseDeadline;
        uint64 commitDeadline;
        uint64 revealDeadline;
        uint64 snapshotBlock;
        uint16 commits;
        uint16 revealedMembers;
        uint16 revealedSeats;
        uint16 guiltySeats;
        address challenger;
        address provider;
        uint256 leafIndex;
        bytes32 leafHash;
        uint256 bond;
        uint256 stakeDecided;
        string bundleCID;
    }

    struct Ballot {
        bytes32 commitment;
        bool revealed;
        bool guilty;
    }

    /// @notice Token of bonds and payouts (TesseraToken).
    IERC20 public immutable token;
    /// @notice The JobMarket whose commitments are disputed.
    IJobMarket public immutable market;
    /// @notice Validator registry the committees are drawn from.
    IValidatorRegistry public immutable registry;
    /// @notice Receives what no winner or voter takes (rounding dust, penalties without a
    ///         decision, the stake slashed without a committee).
    address public immutable treasury;

    /// @notice Bond a challenger posts.
    uint256 public immutable challengeBond;
    /// @notice Seconds the accused provider has to answer.
    uint64 public immutable responseWindow;
    /// @notice Seconds a committee has to commit votes.
    uint64 public immutable commitVoteWindow;
    /// @notice Seconds a committee has to reveal after the commit window.
    uint64 public immutable revealWindow;
    /// @notice Fraction (basis points) of the job's `minStake` slashed on a guilty verdict.
    uint16 public immutable providerSlashBps;
    /// @notice Fraction (basis points) of a verdict's slash paid to the winner.
    uint16 public immutable winnerRewardBps;
    /// @notice Seats per committee.
    uint8 public immutable committeeSize;

    uint256 private _disputeCount;
    mapping(uint256 disputeId => Dispute) private _disputes;
    mapping(uint256 disputeId => address[]) private _members;
    mapping(uint256 disputeId => mapping(uint8 attempt => mapping(address => uint16))) private
        _seats;
    mapping(uint256 disputeId => mapping(uint8 attempt => mapping(address => Ballot))) private
        _ballots;
    mapping(bytes32 leafChallengerKey => uint256 disputeId) private _disputeBy;
    mapping(uint256 jobId => mapping(uint32 round => uint256)) private _openDisputes;
    mapping(address account => uint256) private _credit;

    /// @param token_ Bond and payout token.
    /// @param stakes_ StakeManager (read for the unbonding period).
    /// @param market_ JobMarket.
    /// @param registry_ ValidatorRegistry.
    /// @param p Court parameters.
    /// @param treasury_ Receiver of dust and undecided penalties.
    constructor(
        IERC20 token_,
        IStakeManager stakes_,
        IJobMarket market_,
        IValidatorRegistry registry_,
        CourtParams memory p,
        address treasury_
    ) {
        if (p.challengeBond == 0) revert InvalidCourtParameter("challengeBond", 0);
        if (p.responseWindow == 0) revert InvalidCourtParameter("responseWindow", 0);
        if (p.commitVoteWindow == 0) revert InvalidCourtParameter("commitVoteWindow", 0);
        if (p.revealWindow == 0) revert InvalidCourtParameter("revealWindow", 0);
        if (p.providerSlashBps == 0 || p.providerSlashBps > _BPS) {
            revert InvalidCourtParameter("providerSlashBps", p.providerSlashBps);
        }
        if (p.winnerRewardBps > _BPS) revert InvalidCourtParameter("winnerRewardBps", p.winnerRewardBps);
        if (p.committeeSize == 0 || p.committeeSize > MAX_COMMITTEE) {
            revert InvalidCourtParameter("committeeSize", p.committeeSize);
        }
        if (treasury_ == address(0)) revert InvalidCourtParameter("treasury", 0);
        // Every stage of a dispute must end while stake that began unbonding at its start is
        // still slashable.
        uint256 span = disputeSpan(p.responseWindow, p.commitVoteWindow, p.revealWindow);
        if (span > stakes_.unbondingPeriod()) revert InvalidCourtParameter("unbondingPeriod", span);
        if (registry_.exitDelay() < span) revert InvalidCourtParameter("exitDelay", span);
        token = token_;
        market = market_;
        registry = registry_;
        treasury = treasury_;
        challengeBond = p.challengeBond;
        responseWindow = p.responseWindow;
        commitVoteWindow = p.commitVoteWindow;
        revealWindow = p.revealWindow;
        providerSlashBps = p.providerSlashBps;
        winnerRewardBps = p.winnerRewardBps;
        committeeSize = p.committeeSize;
    }

    // ------------------------------------------------------------------ disputes

    /// @notice Disputes leaf `leafIndex` (hash `leafHash`) of `stage`'s commitment in `round`,
    ///         pulling `challengeBond`. Only inside the round's challenge window, once its audit
    ///         seed is recorded, for an index below the job's leaf count, with a proof that the
    ///         leaf is under the committed trace root. Each account may dispute a leaf once.
    /// @param jobId Job.
    /// @param round Round.
    /// @param stage Stage.
    /// @param leafIndex Index of the trace leaf (step * microBatches + microBatch).
    /// @param leafHash Hash of the trace leaf.
    /// @param proof Sibling hashes from the leaf node to the root (OpenZeppelin sorted pairs).
    /// @return disputeId Id of the new dispute (ids start at 1).
    function challenge(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        uint256 leafIndex,
        bytes32 leafHash,
        bytes32[] calldata proof
    ) external nonReentrant returns (uint256 disputeId) {
        (address provider, bytes32 root, uint64 sealBlock) = _target(jobId, round, stage, leafIndex);
        if (!provesLeaf(root, leafIndex, leafHash, proof)) {
            revert LeafNotInRoot(root, leafNode(leafIndex, leafHash));
        }
        disputeId = _open(jobId, round, stage, leafIndex, leafHash, provider, sealBlock);
    }

    /// @notice Challenges leaf `leafIndex` (below the job's leaf count) of a commitment whose
    ///         published record does not prove its leaves. The provider must reveal the leaf with
    ///         its Merkle proof (`revealLeaf`) before the response deadline, which an honest
    ///         provider always can, or lose its whole job allocation. Pulls `challengeBond`.
    /// @param jobId Job.
    /// @param round Sealed round, inside its challenge window.
    /// @param stage Challenged stage.
    /// @param leafIndex Leaf to reveal.
    /// @return disputeId The new dispute.
    function challengeIndex(uint256 jobId, uint32 round, uint32 stage, uint256 leafIndex)
        external
        nonReentrant
        returns (uint256 disputeId)
    {
        (address provider,, uint64 sealBlock) = _target(jobId, round, stage, leafIndex);
        disputeId = _open(jobId, round, stage, leafIndex, bytes32(0), provider, sealBlock);
    }

    /// @notice The accused provider answers with the CID of its audit bundle before the response
    ///         deadline; the committee is drawn and voting opens.
    /// @param disputeId Dispute (its leaf must be known: see `revealLeaf`).
    /// @param bundleCID CID of the audit bundle (non-empty).
    function respond(uint256 disputeId, string calldata bundleCID) external nonReentrant {
        Dispute storage d = _answerable(disputeId);
        if (d.leafHash == bytes32(0)) revert LeafNotRevealed(disputeId);
        _answer(d, disputeId, bundleCID);
    }

    /// @notice Answers a `challengeIndex` dispute: reveals the leaf hash at the challenged
    ///         index with its Merkle proof against the committed root, and the audit bundle.
    /// @param disputeId Dispute opened by `challengeIndex`.
    /// @param leafHash The committed leaf hash at the challenged index.
    /// @param proof Its Merkle proof.
    /// @param bundleCID CID of the audit bundle (non-empty).
    function revealLeaf(
        uint256 disputeId,
        bytes32 leafHash,
        bytes32[] calldata proof,
        string calldata bundleCID
    ) external nonReentrant {
        Dispute storage d = _answerable(disputeId);
        if (d.leafHash != bytes32(0)) revert LeafAlreadyRevealed(disputeId);
        (bytes32 root,,,,,) = market.auditTarget(d.jobId, d.round, d.stage);
        if (!provesLeaf(root, d.leafIndex, leafHash, proof)) {
            revert LeafNotInRoot(root, leafNode(d.leafIndex, leafHash));
        }
        d.leafHash = leafHash;
        emit LeafRevealed(disputeId, leafHash);
        _answer(d, disputeId, bundleCID);
    }

    /// @notice After the response deadline passed unanswered, slashes the provider's WHOLE
    ///         allocation to the job (anyone may call). The challenger gets its bond and the
    ///         bounty; the slashed stake goes to the treasury, so answering a challenge from
    ///         one's own second account is never cheaper than being convicted.
    /// @param disputeId Dispute.
    function slashUnanswered(uint256 disputeId) external nonReentrant {
        Dispute storage d = _dispute(disputeId);
        if (d.status != DisputeStatus.Open) revert WrongDisputeStatus(disputeId, d.status);
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (nowTime <= d.responseDeadline) {
            revert DeadlineNotReached(disputeId, d.responseDeadline, nowTime);
        }
        _close(d);
        d.status = DisputeStatus.ProviderSlashed;
        (, uint256 slashed, uint256 bounty) = market.slashCommitment(d.jobId, d.round, d.stage, _BPS);
        _addCredit(d.challenger, d.bond + bounty);
        _addCredit(treasury, slashed);
        emit DisputeResolved(disputeId, true, slashed);
    }

    /// @notice A committee member commits its sealed vote (non-zero)
    ///         keccak256(abi.encode(disputeId, voter, guilty, salt)) before the commit deadline.
    /// @param disputeId Dispute.
    /// @param voteCommitment The sealed vote.
    function commitVote(uint256 disputeId, bytes32 voteCommitment) external {
        Dispute storage d = _dispute(disputeId);
        if (d.status != DisputeStatus.Voting) revert WrongDisputeStatus(disputeId, d.status);
        uint8 attempt = d.attempt;
        if (_seats[disputeId][attempt][msg.sender] == 0) {
            revert NotCommitteeMember(disputeId, msg.sender);
        }
        if (voteCommitment == bytes32(0)) revert ZeroVoteCommitment(disputeId);
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (nowTime > d.commitDeadline) revert DeadlinePassed(disputeId, d.commitDeadline, nowTime);
        Ballot storage b = _ballots[disputeId][attempt][msg.sender];
        if (b.commitment != bytes32(0)) revert AlreadyVoted(disputeId, msg.sender);
        b.commitment = voteCommitment;
        ++d.commits;
        emit VoteCommitted(disputeId, msg.sender);
    }

    /// @notice Reveals a committed vote, after the commit deadline (or once every member
    ///         committed) and before the reveal deadline. The vote weighs the member's seats.
    /// @param disputeId Dispute.
    /// @param guilty The vote: true when the provider's leaf is wrong.
    /// @param salt The salt used in the commitment.
    function revealVote(uint256 disputeId, bool guilty, bytes32 salt) external {
        Dispute storage d = _dispute(disputeId);
        if (d.status != DisputeStatus.Voting) revert WrongDisputeStatus(disputeId, d.status);
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (nowTime <= d.commitDeadline && d.commits < _members[disputeId].length) {
            revert DeadlineNotReached(disputeId, d.commitDeadline, nowTime);
        }
        if (nowTime > d.revealDeadline) revert DeadlinePassed(disputeId, d.revealDeadline, nowTime);
        uint8 attempt = d.attempt;
        Ballot storage b = _ballots[disputeId][attempt][msg.sender];
        if (b.commitment == bytes32(0)) revert NoCommittedVote(disputeId, msg.sender);
        if (b.revealed) revert AlreadyRevealed(disputeId, msg.sender);
        if (voteHash(disputeId, msg.sender, guilty, salt) != b.commitment) {
            revert RevealMismatch(disputeId, msg.sender);
        }
        b.revealed = true;
        b.guilty = guilty;
        uint16 seats = _seats[disputeId][attempt][msg.sender];
        ++d.revealedMembers;
        d.revealedSeats += seats;
        if (guilty) d.guiltySeats += seats;
        emit VoteRevealed(disputeId, msg.sender, guilty);
    }

    /// @notice Decides a voted dispute after the reveal deadline, or early once every member
    ///         revealed (anyone may call). With a quorum of seats revealed, a strict majority of
    ///         revealed seats decides: guilty slashes `providerSlashBps` of the provider's
    ///         allocation, innocent takes the challenger's bond. Every member that did not reveal
    ///         loses what the vote decides (`stakeDecided`). Without a quorum, a new committee is
    ///         drawn (MAX_REDRAWS times), then the dispute is void and the bond returns.
    /// @param disputeId Dispute.
    function resolve(uint256 disputeId) external nonReentrant {
        Dispute storage d = _dispute(disputeId);
        if (d.status != DisputeStatus.Voting) revert WrongDisputeStatus(disputeId, d.status);
        address[] memory members = _members[disputeId];
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (nowTime <= d.revealDeadline && d.revealedMembers < members.length) {
            revert DeadlineNotReached(disputeId, d.revealDeadline, nowTime);
        }
        uint8 attempt = d.attempt;
        bool quorate = d.revealedSeats >= quorum();
        bool providerLoses = 2 * uint256(d.guiltySeats) > d.revealedSeats;
        // Winners get one weight per seat; non-revealers are collected to be slashed.
        uint256[] memory weights = new uint256[](members.length);
        address[] memory absent = new address[](members.length);
        for (uint256 i = 0; i < members.length; ++i) {
            address m = members[i];
            registry.leaveCommittee(m);
            Ballot memory b = _ballots[disputeId][attempt][m];
            if (!b.revealed) absent[i] = m;
            else if (quorate && b.guilty == providerLoses) weights[i] = _seats[disputeId][attempt][m];
        }
        uint256 penalties = _slashAbsent(disputeId, absent, d.stakeDecided);
        if (!quorate) {
            _addCredit(treasury, penalties);
            _noQuorum(d, disputeId, attempt);
            return;
        }
        _close(d);
        uint256 slashed;
        if (providerLoses) {
            d.status = DisputeStatus.ProviderSlashed;
            uint256 bounty;
            (, slashed, bounty) =
                market.slashCommitment(d.jobId, d.round, d.stage, providerSlashBps);
            uint256 toWinner = (slashed * winnerRewardBps) / _BPS;
            _addCredit(d.challenger, d.bond + bounty + toWinner);
            _share(slashed - toWinner + penalties, members, weights);
        } else {
            d.status = DisputeStatus.ChallengerSlashed;
            slashed = d.bond;
            uint256 toWinner = (slashed * winnerRewardBps) / _BPS;
            _addCredit(d.provider, toWinner);
            _share(slashed - toWinner + penalties, members, weights);
        }
        emit DisputeResolved(disputeId, providerLoses, slashed);
    }

    /// @notice Proves a structural fault in `stage`'s commitment of `round` with the leaves
    ///         themselves (full fields; the contract recomputes each leaf hash with the v2
    ///         encoding of traces.py and checks its Merkle proof and index), and slashes the
    ///         provider's whole job allocation at once, no committee. The prover is credited the
    ///         bounty; the slashed stake goes to the treasury. Inside the challenge window only.
    ///         Each kind is a fault only a cheat can commit, because an honest provider's leaves
    ///         follow from one another by construction:
    ///         - StepParamsMismatch (`a`, `b`): two leaves of one step with different
    ///           paramsBefore or paramsAfter. Every micro-batch of a step is computed from the
    ///           same state and the step's optimizer update is applied once, after all of them,
    ///           so an honest trace records one state pair per step.
    ///         - StepDiscontinuity (`a` at step t, `b` at step t+1): paramsBefore(t+1) !=
    ///           paramsAfter(t). Honest training starts each step where the last one ended; a
    ///           difference means weights were swapped between steps.
    ///         - StartStateMismatch (`a` at step 0; `b` unused): the round's first paramsBefore
    ///           differs from the state it must start from: the committed final state hash of
    ///           the stage's last finalized (paid) round, or, when none, the initial state hash
    ///           the owner committed with the job. An honest provider (or a replacement) loads
    ///           that checkpoint and checks its state hash before training. The committed hash,
    ///           not the previous round's last leaf, is the reference: it is what the checkpoint
    ///           was published under, so an honest successor is never blamed for a predecessor.
    ///         - FinalStateMismatch (`a` at the last step; `b` unused): the last paramsAfter
    ///           differs from the final state hash committed with the round, i.e. the published
    ///           checkpoint is not the state the trace ends in.
    /// @param jobId Job.
    /// @param round Round of the commitment (sealed, inside its challenge window).
    /// @param stage Stage of the commitment.
    /// @param kind What the leaves show.
    /// @param a First leaf with its proof.
    /// @param b Second leaf with its proof (StepParamsMismatch, StepDiscontinuity only).
    /// @return slashed Stake taken.
    function proveFault(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        FaultKind kind,
        LeafProof calldata a,
        LeafProof calldata b
    ) external nonReentrant returns (uint256 slashed) {
        (bytes32 root,,,) = _targetWindow(jobId, round, stage);
        (uint32 steps, uint32 micro,) = market.leafLayout(jobId);
        _checkLeaf(root, a, steps, micro);
        if (kind == FaultKind.StepParamsMismatch || kind == FaultKind.StepDiscontinuity) {
            _checkLeaf(root, b, steps, micro);
            if (kind == FaultKind.StepParamsMismatch) {
                if (a.leaf.step != b.leaf.step) revert NotAFault("different steps");
                if (
                    a.leaf.paramsBefore == b.leaf.paramsBefore
                        && a.leaf.paramsAfter == b.leaf.paramsAfter
                ) revert NotAFault("same params");
            } else {
                if (b.leaf.step != a.leaf.step + 1) revert NotAFault("steps not consecutive");
                if (b.leaf.paramsBefore == a.leaf.paramsAfter) revert NotAFault("continuous");
            }
        } else {
            (bytes32 expectedStart, bytes32 committedFinal) = market.stateHashes(jobId, round, stage);
            if (kind == FaultKind.StartStateMismatch) {
                if (a.leaf.step != 0) revert NotAFault("not the first step");
                if (a.leaf.paramsBefore == expectedStart) revert NotAFault("starts right");
            } else {
                if (a.leaf.step + 1 != steps) revert NotAFault("not the last step");
                if (a.leaf.paramsAfter == committedFinal) revert NotAFault("ends right");
            }
        }
        slashed = _slashProven(jobId, round, stage);
        emit FaultProven(jobId, round, stage, kind, msg.sender, slashed);
    }

    /// @notice Proves that `stage`'s provider signed, for one boundary crossing of `round`, a
    ///         payload other than the one its own committed leaf records, and slashes its whole
    ///         job allocation at once, no committee (the prover is credited the bounty, the
    ///         slashed stake goes to the treasury). Inside the challenge window only.
    ///         The signature is the sender's EIP-191 personal_sign over keccak256(abi.encode(
    ///         chainId, jobMarket, jobId, round, stage, step, microBatch, direction,
    ///         payloadHash)), exactly as agents/protocol/attestation.py makes it; direction 0
    ///         (forward) compares `payloadHash` with the leaf's `output`, 1 (backward) with its
    ///         `gradOut`. An honest provider signs the payload it computed, which is the one its
    ///         leaf records, so only a provider that sent one payload and committed another (a
    ///         substitution in transit) can be convicted here.
    /// @param jobId Job.
    /// @param round Round of the commitment (sealed, inside its challenge window).
    /// @param stage Stage of the commitment: the SENDING stage.
    /// @param direction 0 forward (activations), 1 backward (gradients).
    /// @param sent The sender's leaf of the crossing (its step and micro-batch are signed) with
    ///        its Merkle proof against the sender's committed trace root.
    /// @param payloadHash The payload hash the signature is over.
    /// @param signature The 65-byte signature (r | s | v) the receiver holds.
    /// @return slashed Stake taken.
    function provePayloadEquivocation(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        uint8 direction,
        LeafProof calldata sent,
        bytes32 payloadHash,
        bytes calldata signature
    ) external nonReentrant returns (uint256 slashed) {
        uint256 leafIndex =
            _checkEquivocation(jobId, round, stage, direction, sent, payloadHash, signature);
        slashed = _slashProven(jobId, round, stage);
        emit PayloadEquivocationProven(jobId, round, stage, direction, leafIndex, msg.sender, slashed);
    }

    /// @notice Withdraws every token credited to the caller.
    /// @return amount Tokens paid.
    function withdrawCredit() external nonReentrant returns (uint256 amount) {
        amount = _credit[msg.sender];
        if (amount == 0) revert NoCredit(msg.sender);
        _credit[msg.sender] = 0;
        emit CreditWithdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice A dispute.
    /// @param disputeId Dispute.
    /// @return jobId Job.
    /// @return round Round.
    /// @return stage Stage.
    /// @return leafIndex Disputed leaf index.
    /// @return leafHash Disputed leaf hash.
    /// @return challenger Challenger.
    /// @return provider Accused provider.
    /// @return status 0 Open, 1 Voting, 2 ProviderSlashed, 3 ChallengerSlashed, 4 Void.
    /// @return responseDeadline Last second to respond.
    /// @return commitDeadline Last second to commit a vote (0 before the response).
    /// @return revealDeadline Last second to reveal (0 before the response).
    /// @return bundleCID The provider's audit bundle ("" before the response).
    function dispute(uint256 disputeId)
        external
        view
        returns (
            uint256 jobId,
            uint32 round,
            uint32 stage,
            uint256 leafIndex,
            bytes32 leafHash,
            address challenger,
            address provider,
            DisputeStatus status,
            uint64 responseDeadline,
            uint64 commitDeadline,
            uint64 revealDeadline,
            string memory bundleCID
        )
    {
        Dispute storage d = _dispute(disputeId);
        return (
            d.jobId,
            d.round,
            d.stage,
            d.leafIndex,
            d.leafHash,
            d.challenger,
            d.provider,
            d.status,
            d.responseDeadline,
            d.commitDeadline,
            d.revealDeadline,
            d.bundleCID
        );
    }

    /// @notice Vote tallies of the dispute's current committee.
    /// @param disputeId Dispute.
    /// @return commits Members that committed.
    /// @return reveals Seats revealed.
    /// @return guiltyVotes Seats revealed guilty.
    /// @return bond Challenger's bond.
    /// @return attempt Committee attempt (0 = first draw).
    /// @return stakeDecided What the vote decides (and what a non-reveal costs).
    function tally(uint256 disputeId)
        external
        view
        returns (
            uint16 commits,
            uint16 reveals,
            uint16 guiltyVotes,
            uint256 bond,
            uint8 attempt,
            uint256 stakeDecided
        )
    {
        Dispute storage d = _dispute(disputeId);
        return (d.commits, d.revealedSeats, d.guiltySeats, d.bond, d.attempt, d.stakeDecided);
    }

    /// @notice Distinct members of the dispute's current committee (empty before the response).
    /// @param disputeId Dispute.
    /// @return The members.
    function committee(uint256 disputeId) external view returns (address[] memory) {
        return _members[disputeId];
    }

    /// @notice Seats `member` holds on the dispute's current committee.
    /// @param disputeId Dispute.
    /// @param member Validator.
    /// @return Seats.
    function seatsOf(uint256 disputeId, address member) external view returns (uint256) {
        return _seats[disputeId][_disputes[disputeId].attempt][member];
    }

    /// @notice Seats that must reveal for a decision: a majority of `committeeSize`.
    /// @return The quorum.
    function quorum() public view returns (uint256) {
        return uint256(committeeSize) / 2 + 1;
    }

    /// @notice Longest time from a challenge to its end: response, then every committee's
    ///         commit and reveal windows.
    /// @param response Response window.
    /// @param commitVote Commit window.
    /// @param reveal Reveal window.
    /// @return Seconds.
    function disputeSpan(uint64 response, uint64 commitVote, uint64 reveal)
        public
        pure
        returns (uint256)
    {
        return uint256(response) + uint256(MAX_REDRAWS + 1) * (uint256(commitVote) + reveal);
    }

    /// @inheritdoc IAuditCourt
    function openDisputes(uint256 jobId, uint32 round) external view returns (uint256) {
        return _openDisputes[jobId][round];
    }

    /// @notice Number of disputes ever opened (the last dispute id).
    /// @return The count.
    function disputeCount() external view returns (uint256) {
        return _disputeCount;
    }

    /// @notice Whether `account` is an active registered validator.
    /// @param account Account.
    /// @return True when registered.
    function isValidator(address account) external view returns (bool) {
        return registry.isValidator(account);
    }

    /// @notice Tokens credited to `account`, withdrawable with `withdrawCredit`.
    /// @param account Account.
    /// @return Credit.
    function credit(address account) external view returns (uint256) {
        return _credit[account];
    }

    /// @notice Trace leaf v2 hash: keccak256(abi.encode(step, microBatch, paramsBefore, input,
    ///         output, gradIn, gradOut, paramsAfter, dataRef, inputAttestation,
    ///         gradInAttestation)), as agents/training/traces.py computes it.
    /// @param leaf The leaf fields.
    /// @return The leaf hash.
    function leafHash(TraceLeaf calldata leaf) public pure returns (bytes32) {
        return keccak256(abi.encode(leaf));
    }

    /// @notice The Merkle tree node of a trace leaf:
    ///         keccak256(bytes.concat(keccak256(abi.encode(leafIndex, leafHash)))).
    /// @param leafIndex Leaf index.
    /// @param leafHash_ Leaf hash.
    /// @return The node.
    function leafNode(uint256 leafIndex, bytes32 leafHash_) public pure returns (bytes32) {
        // Double hashing keeps a 64-byte leaf preimage from colliding with an inner node.
        return keccak256(bytes.concat(keccak256(abi.encode(leafIndex, leafHash_))));
    }

    /// @notice Whether `proof` shows leaf (`leafIndex`, `leafHash`) is in the tree of `root`.
    /// @param root Committed trace root.
    /// @param leafIndex Leaf position.
    /// @param leafHash_ Leaf hash.
    /// @param proof Sibling hashes, OpenZeppelin sorted-pair order.
    /// @return True when the proof verifies.
    function provesLeaf(bytes32 root, uint256 leafIndex, bytes32 leafHash_, bytes32[] calldata proof)
        public
        pure
        returns (bool)
    {
        return MerkleProof.verifyCalldata(proof, root, leafNode(leafIndex, leafHash_));
    }

    /// @notice The sealed vote a committee member commits.
    /// @param disputeId Dispute.
    /// @param voter Committee member.
    /// @param guilty The vote.
    /// @param salt Secret salt.
    /// @return keccak256(abi.encode(disputeId, voter, guilty, salt)).
    function voteHash(uint256 disputeId, address voter, bool guilty, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(disputeId, voter, guilty, salt));
    }

    // ------------------------------------------------------------------ internals

    function _targetWindow(uint256 jobId, uint32 round, uint32 stage)
        private
        view
        returns (bytes32 root, address provider, uint64 sealBlock, bool ok)
    {
        bool slashed;
        uint64 start;
        uint64 end;
        (root, provider, slashed, start, end, sealBlock) = market.auditTarget(jobId, round, stage);
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (end == 0 || nowTime < start || nowTime > end) {
            revert OutsideChallengeWindow(start, end, nowTime);
        }
        if (root == bytes32(0) || slashed) revert NothingToChallenge(jobId, round, stage);
        ok = true;
    }

    /// @dev Window, commitment, leaf range and self-challenge checks of a new dispute.
    function _target(uint256 jobId, uint32 round, uint32 stage, uint256 leafIndex)
        private
        view
        returns (address provider, bytes32 root, uint64 sealBlock)
    {
        (root, provider, sealBlock,) = _targetWindow(jobId, round, stage);
        if (msg.sender == provider) revert SelfChallenge(provider);
        (uint32 steps, uint32 micro,) = market.leafLayout(jobId);
        uint256 leafCount = uint256(steps) * micro;
        if (leafIndex >= leafCount) revert LeafIndexOutOfRange(leafIndex, leafCount);
    }

    function _open(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        uint256 leafIndex,
        bytes32 leafHash_,
        address provider,
        uint64 sealBlock
    ) private returns (uint256 disputeId) {
        bytes32 key = keccak256(abi.encode(jobId, round, stage, leafIndex, msg.sender));
        if (_disputeBy[key] != 0) revert LeafAlreadyDisputed(_disputeBy[key]);
        uint256 pool = registry.snapshotSize(sealBlock);
        if (pool < committeeSize) revert NoCourt(jobId, round, pool);
        if (market.recordAuditSeed(jobId, round) == bytes32(0)) {
            revert AuditSeedNotReady(jobId, round);
        }
        (,, uint256 minStake) = market.leafLayout(jobId);
        uint256 providerStake = (minStake * providerSlashBps) / _BPS;

        disputeId = ++_disputeCount;
        _disputeBy[key] = disputeId;
        ++_openDisputes[jobId][round];
        Dispute storage d = _disputes[disputeId];
        d.jobId = jobId;
        d.round = round;
        d.stage = stage;
        // solhint-disable-next-line not-rely-on-time
        d.responseDeadline = uint64(block.timestamp) + responseWindow;
        d.snapshotBlock = sealBlock;
        d.challenger = msg.sender;
        d.provider = provider;
        d.leafIndex = leafIndex;
        d.leafHash = leafHash_;
        d.bond = challengeBond;
        d.stakeDecided = providerStake > challengeBond ? providerStake : challengeBond;
        emit ChallengeOpened(disputeId, jobId, round, stage, leafIndex, msg.sender);
        token.safeTransferFrom(msg.sender, address(this), challengeBond);
    }

    function _answerable(uint256 disputeId) private view returns (Dispute storage d) {
        d = _dispute(disputeId);
        if (d.status != DisputeStatus.Open) revert WrongDisputeStatus(disputeId, d.status);
        if (msg.sender != d.provider) revert NotAccused(disputeId, msg.sender, d.provider);
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (nowTime > d.responseDeadline) {
            revert DeadlinePassed(disputeId, d.responseDeadline, nowTime);
        }
    }

    function _answer(Dispute storage d, uint256 disputeId, string calldata bundleCID) private {
        if (bytes(bundleCID).length == 0) revert EmptyBundle(disputeId);
        d.status = DisputeStatus.Voting;
        d.bundleCID = bundleCID;
        emit ChallengeAnswered(disputeId, bundleCID);
        _drawCommittee(d, disputeId);
    }

    /// @dev No quorum: a new committee (MAX_REDRAWS times), then void with the bond back.
    function _noQuorum(Dispute storage d, uint256 disputeId, uint8 attempt) private {
        if (attempt < MAX_REDRAWS) {
            d.attempt = attempt + 1;
            d.commits = 0;
            d.revealedMembers = 0;
            d.revealedSeats = 0;
            d.guiltySeats = 0;
            delete _members[disputeId];
            emit CommitteeRedrawn(disputeId, attempt + 1);
            _drawCommittee(d, disputeId);
        } else {
            _close(d);
            d.status = DisputeStatus.Void;
            _addCredit(d.challenger, d.bond);
            emit DisputeVoided(disputeId);
        }
    }

    /// @dev Draws the committee of the dispute's current attempt from the seal-block snapshot.
    ///      A first draw that cannot seat a quorum voids the dispute and pays the bond to the
    ///      provider (a challenge the court cannot hear is not free); a redraw that cannot
    ///      voids it and returns the bond (the shortfall is the absent validators' doing).
    function _drawCommittee(Dispute storage d, uint256 disputeId) private {
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        uint8 attempt = d.attempt;
        bytes32 seed = keccak256(abi.encode(market.auditSeed(d.jobId, d.round), disputeId, attempt));
        address[] memory seats = registry.draw(
            seed, d.snapshotBlock, d.stakeDecided, d.challenger, d.provider, committeeSize
        );
        if (seats.length < quorum()) {
            _close(d);
            d.status = DisputeStatus.Void;
            _addCredit(attempt == 0 ? d.provider : d.challenger, d.bond);
            emit DisputeVoided(disputeId);
            return;
        }
        d.commitDeadline = nowTime + commitVoteWindow;
        d.revealDeadline = nowTime + commitVoteWindow + revealWindow;
        address[] storage members = _members[disputeId];
        for (uint256 i = 0; i < seats.length; ++i) {
            address m = seats[i];
            if (_seats[disputeId][attempt][m] == 0) members.push(m);
            ++_seats[disputeId][attempt][m];
        }
        registry.enterCommittee(members);
        emit CommitteeDrawn(disputeId, seats);
    }

    function _checkLeaf(bytes32 root, LeafProof calldata lp, uint32 steps, uint32 micro)
        private
        pure
    {
        TraceLeaf calldata leaf = lp.leaf;
        if (leaf.step >= steps || leaf.microBatch >= micro) revert NotAFault("leaf out of range");
        uint256 index = leaf.step * micro + leaf.microBatch;
        bytes32 h = leafHash(leaf);
        if (!MerkleProof.verifyCalldata(lp.proof, root, leafNode(index, h))) {
            revert LeafNotInRoot(root, leafNode(index, h));
        }
    }

    /// @dev The payout of a fault proven outright (no committee, no bond): the whole job
    ///      allocation is slashed, the job's bounty goes to the prover, the slashed stake to
    ///      the treasury. Returns the stake taken.
    function _slashProven(uint256 jobId, uint32 round, uint32 stage) private returns (uint256 slashed) {
        uint256 bounty;
        (, slashed, bounty) = market.slashCommitment(jobId, round, stage, _BPS);
        _addCredit(msg.sender, bounty);
        _addCredit(treasury, slashed);
    }

    /// @dev Reverts unless `signature` is the commitment's provider's over `payloadHash` for
    ///      the crossing of leaf `sent` (proven in the committed root) and `payloadHash` is not
    ///      what that leaf records; returns the leaf index.
    function _checkEquivocation(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        uint8 direction,
        LeafProof calldata sent,
        bytes32 payloadHash,
        bytes calldata signature
    ) private view returns (uint256 leafIndex) {
        if (direction > 1) revert NotAFault("no such direction");
        (bytes32 root, address provider,,) = _targetWindow(jobId, round, stage);
        {
            (uint32 steps, uint32 micro,) = market.leafLayout(jobId);
            _checkLeaf(root, sent, steps, micro);
            leafIndex = sent.leaf.step * micro + sent.leaf.microBatch;
        }
        bytes32 recorded = direction == 0 ? sent.leaf.output : sent.leaf.gradOut;
        if (payloadHash == recorded) revert NotAFault("signed what it recorded");
        address signer = ECDSA.recover(
            _payloadDigest(jobId, round, stage, direction, sent.leaf, payloadHash), signature
        );
        if (signer != provider) revert NotProviderSignature(signer, provider);
    }

    /// @dev The EIP-191 message hash of a payload signature (attestation.py `payload_digest`,
    ///      then personal_sign's prefix). `step` and `microBatch` are below the job's uint32
    ///      layout (checked by `_checkLeaf`), so the casts keep them.
    function _payloadDigest(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        uint8 direction,
        TraceLeaf calldata leaf,
        bytes32 payloadHash
    ) private view returns (bytes32) {
        bytes32 digest = keccak256(
            abi.encode(
                block.chainid,
                address(market),
                jobId,
                round,
                stage,
                uint32(leaf.step),
                uint32(leaf.microBatch),
                direction,
                payloadHash
            )
        );
        return MessageHashUtils.toEthSignedMessageHash(digest);
    }

    function _dispute(uint256 disputeId) private view returns (Dispute storage d) {
        if (disputeId == 0 || disputeId > _disputeCount) revert UnknownDispute(disputeId);
        d = _disputes[disputeId];
    }

    function _close(Dispute storage d) private {
        --_openDisputes[d.jobId][d.round];
    }

    /// @dev Slashes `penalty` from each non-zero entry of `absent`; returns the total taken.
    function _slashAbsent(uint256 disputeId, address[] memory absent, uint256 penalty)
        private
        returns (uint256 total)
    {
        for (uint256 i = 0; i < absent.length; ++i) {
            if (absent[i] == address(0)) continue;
            uint256 taken = registry.slash(absent[i], penalty, address(this));
            total += taken;
            emit NonRevealSlashed(disputeId, absent[i], taken);
        }
    }

    /// @dev Splits `amount` among `to` by `weights`; the remainder (or all of it when every
    ///      weight is zero) goes to the treasury.
    function _share(uint256 amount, address[] memory to, uint256[] memory weights) private {
        if (amount == 0) return;
        uint256 total = 0;
        for (uint256 i = 0; i < weights.length; ++i) {
            total += weights[i];
        }
        if (total == 0) {
            _addCredit(treasury, amount);
            return;
        }
        uint256 paid = 0;
        for (uint256 i = 0; i < to.length; ++i) {
            if (weights[i] == 0) continue;
            uint256 part = (amount * weights[i]) / total;
            paid += part;
            _addCredit(to[i], part);
        }
        _addCredit(treasury, amount - paid);
    }

    function _addCredit(address account, uint256 amount) private {
        if (amount == 0) return;
        _credit[account] += amount;
        emit Credited(account, amount);
    }
}
