// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IAuditCourt} from "./interfaces/IAuditCourt.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";

/// @title AuditCourt
/// @notice Disputes over single trace leaves. A challenger posts a bond and a Merkle proof that
///         the disputed leaf is in the committed trace root. The accused provider must answer
///         with its audit bundle before a deadline or anyone can have it slashed. An answered
///         dispute goes to a committee of registered validators drawn from the round's audit
///         seed; they vote by commit-reveal and the majority decides. The loser pays: the
///         provider with `providerSlashBps` of the job's `minStake`, the challenger with its
///         bond. The winner gets `winnerRewardBps` of that, the majority voters share the rest,
///         committee members who do not reveal lose `nonRevealPenalty`.
/// @dev Every payout is a credit withdrawn with `withdrawCredit` (pull). Token balance of this
///      contract == bonds of undecided disputes + sum of credits.
contract AuditCourt is IAuditCourt, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Largest committee; bounds every loop over a committee.
    uint8 public constant MAX_COMMITTEE = 21;
    /// @notice Most registry entries examined in one committee draw.
    uint256 public constant MAX_DRAW_STEPS = 96;
    uint256 private constant _BPS = 10_000;

    struct Dispute {
        uint256 jobId;
        uint32 round;
        uint32 stage;
        DisputeStatus status;
        uint64 responseDeadline;
        uint64 commitDeadline;
        uint64 revealDeadline;
        uint8 commits;
        uint8 reveals;
        uint8 guiltyVotes;
        address challenger;
        address provider;
        uint256 leafIndex;
        bytes32 leafHash;
        uint256 bond;
        string bundleCID;
    }

    struct Ballot {
        bytes32 commitment;
        bool revealed;
        bool guilty;
    }

    struct Validator {
        uint64 registeredBlock;
        uint32 activeCommittees;
        uint32 indexPlusOne;
    }

    /// @notice Token of bonds and payouts (TesseraToken).
    IERC20 public immutable token;
    /// @notice Stake registry (this contract needs its PROTOCOL_ROLE).
    IStakeManager public immutable stakes;
    /// @notice The JobMarket whose commitments are disputed.
    IJobMarket public immutable market;
    /// @notice Receives what no winner or voter can take (rounding dust, undecided penalties).
    address public immutable treasury;

    /// @notice Bond a challenger posts (returned when the provider is found at fault).
    uint256 public immutable challengeBond;
    /// @notice Seconds the accused provider has to answer.
    uint64 public immutable responseWindow;
    /// @notice Seconds the committee has to commit votes.
    uint64 public immutable commitVoteWindow;
    /// @notice Seconds the committee has to reveal after the commit window.
    uint64 public immutable revealWindow;
    /// @notice Fraction (basis points) of the job's `minStake` slashed from a guilty provider.
    uint16 public immutable providerSlashBps;
    /// @notice Fraction (basis points) of the loser's slash paid to the winner.
    uint16 public immutable winnerRewardBps;
    /// @notice Stake slashed from a committee member that does not reveal.
    uint256 public immutable nonRevealPenalty;
    /// @notice Free stake a validator locks to register.
    uint256 public immutable minValidatorStake;
    /// @notice Target committee size (smaller when fewer validators are eligible).
    uint8 public immutable committeeSize;

    uint256 private _disputeCount;
    mapping(uint256 disputeId => Dispute) private _disputes;
    mapping(uint256 disputeId => address[]) private _committees;
    mapping(uint256 disputeId => mapping(address voter => Ballot)) private _ballots;
    mapping(uint256 disputeId => mapping(address account => bool)) private _onCommittee;
    mapping(bytes32 leafKey => uint256 disputeId) private _leafDispute;
    mapping(uint256 jobId => mapping(uint32 round => uint256)) private _openDisputes;
    mapping(address account => Validator) private _validatorInfo;
    address[] private _validators;
    mapping(address account => uint256) private _credit;

    /// @param token_ Bond and payout token.
    /// @param stakes_ StakeManager.
    /// @param market_ JobMarket.
    /// @param p Court parameters.
    /// @param treasury_ Receiver of dust and undecided penalties.
    constructor(
        IERC20 token_,
        IStakeManager stakes_,
        IJobMarket market_,
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
        if (p.winnerRewardBps > _BPS) {
            revert InvalidCourtParameter("winnerRewardBps", p.winnerRewardBps);
        }
        if (p.minValidatorStake == 0) revert InvalidCourtParameter("minValidatorStake", 0);
        if (p.committeeSize == 0 || p.committeeSize > MAX_COMMITTEE) {
            revert InvalidCourtParameter("committeeSize", p.committeeSize);
        }
        if (treasury_ == address(0)) revert InvalidCourtParameter("treasury", 0);
        token = token_;
        stakes = stakes_;
        market = market_;
        treasury = treasury_;
        challengeBond = p.challengeBond;
        responseWindow = p.responseWindow;
        commitVoteWindow = p.commitVoteWindow;
        revealWindow = p.revealWindow;
        providerSlashBps = p.providerSlashBps;
        winnerRewardBps = p.winnerRewardBps;
        nonRevealPenalty = p.nonRevealPenalty;
        minValidatorStake = p.minValidatorStake;
        committeeSize = p.committeeSize;
    }

    // ------------------------------------------------------------------ validators

    /// @notice Registers the caller as a validator, locking `minValidatorStake` of its free
    ///         stake. Only validators registered by a round's seal block sit on its committees.
    function registerValidator() external {
        Validator storage v = _validatorInfo[msg.sender];
        if (v.indexPlusOne != 0) revert AlreadyValidator(msg.sender);
        _validators.push(msg.sender);
        v.indexPlusOne = uint32(_validators.length);
        v.registeredBlock = uint64(block.number);
        emit ValidatorRegistered(msg.sender, minValidatorStake);
        stakes.lock(msg.sender, minValidatorStake);
    }

    /// @notice Deregisters the caller and releases its validator lock; not while it sits on an
    ///         undecided committee.
    function deregisterValidator() external {
        Validator storage v = _validatorInfo[msg.sender];
        uint256 indexPlusOne = v.indexPlusOne;
        if (indexPlusOne == 0) revert NotValidator(msg.sender);
        if (v.activeCommittees != 0) revert OnActiveCommittee(msg.sender, v.activeCommittees);
        // Swap-and-pop keeps the registry dense, so draws never walk over holes.
        address last = _validators[_validators.length - 1];
        _validators[indexPlusOne - 1] = last;
        _validatorInfo[last].indexPlusOne = uint32(indexPlusOne);
        _validators.pop();
        delete _validatorInfo[msg.sender];
        emit ValidatorDeregistered(msg.sender);
        stakes.unlock(msg.sender, minValidatorStake);
    }

    // ------------------------------------------------------------------ disputes

    /// @notice Disputes leaf `leafIndex` (hash `leafHash`) of `stage`'s commitment in `round`,
    ///         pulling `challengeBond`. Only inside the round's challenge window, once its audit
    ///         seed is available, with a proof that the leaf is under the committed trace root.
    /// @param jobId Job.
    /// @param round Round.
    /// @param stage Stage.
    /// @param leafIndex Index of the trace leaf.
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
        (address provider, bytes32 root) = _target(jobId, round, stage);
        if (!provesLeaf(root, leafIndex, leafHash, proof)) {
            revert LeafNotInRoot(root, leafNode(leafIndex, leafHash));
        }
        disputeId = _open(jobId, round, stage, leafIndex, leafHash, provider);
    }

    /// @notice Challenges leaf `leafIndex` of a commitment whose leaves cannot be proven (the
    ///         published round record does not match the committed root). The provider must
    ///         reveal the leaf hash with its Merkle proof (`revealLeaf`) before the response
    ///         deadline, or anyone can have it slashed; a revealed leaf then goes to the
    ///         committee like any other challenge. Pulls `challengeBond`.
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
        (address provider,) = _target(jobId, round, stage);
        disputeId = _open(jobId, round, stage, leafIndex, bytes32(0), provider);
    }

    function _open(
        uint256 jobId,
        uint32 round,
        uint32 stage,
        uint256 leafIndex,
        bytes32 leafHash,
        address provider
    ) private returns (uint256 disputeId) {
        bytes32 key = keccak256(abi.encode(jobId, round, stage, leafIndex));
        if (_leafDispute[key] != 0) revert LeafAlreadyDisputed(_leafDispute[key]);
        if (market.recordAuditSeed(jobId, round) == bytes32(0)) {
            revert AuditSeedNotReady(jobId, round);
        }

        disputeId = ++_disputeCount;
        _leafDispute[key] = disputeId;
        ++_openDisputes[jobId][round];
        Dispute storage d = _disputes[disputeId];
        d.jobId = jobId;
        d.round = round;
        d.stage = stage;
        // solhint-disable-next-line not-rely-on-time
        d.responseDeadline = uint64(block.timestamp) + responseWindow;
        d.challenger = msg.sender;
        d.provider = provider;
        d.leafIndex = leafIndex;
        d.leafHash = leafHash;
        d.bond = challengeBond;
        emit ChallengeOpened(disputeId, jobId, round, stage, leafIndex, msg.sender);
        token.safeTransferFrom(msg.sender, address(this), challengeBond);
    }

    /// @notice The accused provider answers with the CID of its audit bundle before the response
    ///         deadline; the committee is drawn and voting opens.
    /// @param disputeId Dispute (its leaf must be known: see `revealLeaf`).
    /// @param bundleCID CID of the audit bundle (non-empty).
    function respond(uint256 disputeId, string calldata bundleCID) external {
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
    ) external {
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
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        d.status = DisputeStatus.Voting;
        d.bundleCID = bundleCID;
        d.commitDeadline = nowTime + commitVoteWindow;
        d.revealDeadline = nowTime + commitVoteWindow + revealWindow;
        emit ChallengeAnswered(disputeId, bundleCID);

        (,,,,, uint64 sealBlock) = market.auditTarget(d.jobId, d.round, d.stage);
        bytes32 seed = keccak256(abi.encode(market.auditSeed(d.jobId, d.round), disputeId));
        address[] memory members = _draw(seed, sealBlock, d.challenger, d.provider);
        for (uint256 i = 0; i < members.length; ++i) {
            _committees[disputeId].push(members[i]);
            _onCommittee[disputeId][members[i]] = true;
            ++_validatorInfo[members[i]].activeCommittees;
        }
        emit CommitteeDrawn(disputeId, members);
    }

    /// @notice After the response deadline passed unanswered, slashes the provider (anyone may
    ///         call).
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
        uint256 slashed = _slashProvider(d, new address[](0));
        emit DisputeResolved(disputeId, true, slashed);
    }

    /// @notice A committee member commits its sealed vote
    ///         keccak256(abi.encode(disputeId, voter, guilty, salt)) before the commit deadline.
    /// @param disputeId Dispute.
    /// @param voteCommitment The sealed vote.
    function commitVote(uint256 disputeId, bytes32 voteCommitment) external {
        Dispute storage d = _dispute(disputeId);
        if (d.status != DisputeStatus.Voting) revert WrongDisputeStatus(disputeId, d.status);
        if (!_onCommittee[disputeId][msg.sender]) revert NotCommitteeMember(disputeId, msg.sender);
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (nowTime > d.commitDeadline) revert DeadlinePassed(disputeId, d.commitDeadline, nowTime);
        Ballot storage b = _ballots[disputeId][msg.sender];
        if (b.commitment != bytes32(0)) revert AlreadyVoted(disputeId, msg.sender);
        b.commitment = voteCommitment;
        ++d.commits;
        emit VoteCommitted(disputeId, msg.sender);
    }

    /// @notice Reveals a committed vote, after the commit deadline (or once every member
    ///         committed) and before the reveal deadline.
    /// @param disputeId Dispute.
    /// @param guilty The vote: true when the provider's leaf is wrong.
    /// @param salt The salt used in the commitment.
    function revealVote(uint256 disputeId, bool guilty, bytes32 salt) external {
        Dispute storage d = _dispute(disputeId);
        if (d.status != DisputeStatus.Voting) revert WrongDisputeStatus(disputeId, d.status);
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (nowTime <= d.commitDeadline && d.commits < _committees[disputeId].length) {
            revert DeadlineNotReached(disputeId, d.commitDeadline, nowTime);
        }
        if (nowTime > d.revealDeadline) revert DeadlinePassed(disputeId, d.revealDeadline, nowTime);
        Ballot storage b = _ballots[disputeId][msg.sender];
        if (b.commitment == bytes32(0)) revert NoCommittedVote(disputeId, msg.sender);
        if (b.revealed) revert AlreadyRevealed(disputeId, msg.sender);
        if (voteHash(disputeId, msg.sender, guilty, salt) != b.commitment) {
            revert RevealMismatch(disputeId, msg.sender);
        }
        b.revealed = true;
        b.guilty = guilty;
        ++d.reveals;
        if (guilty) ++d.guiltyVotes;
        emit VoteRevealed(disputeId, msg.sender, guilty);
    }

    /// @notice Decides a voted dispute after the reveal deadline, or early once every member
    ///         revealed (anyone may call). A strict majority of revealed votes for `guilty`
    ///         slashes the provider; otherwise the challenger loses its bond; with no revealed
    ///         vote the dispute is void and the bond returns. Non-revealing members are slashed.
    /// @param disputeId Dispute.
    function resolve(uint256 disputeId) external nonReentrant {
        Dispute storage d = _dispute(disputeId);
        if (d.status != DisputeStatus.Voting) revert WrongDisputeStatus(disputeId, d.status);
        address[] memory members = _committees[disputeId];
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (nowTime <= d.revealDeadline && d.reveals < members.length) {
            revert DeadlineNotReached(disputeId, d.revealDeadline, nowTime);
        }
        _close(d);
        uint256 reveals = d.reveals;
        bool providerLoses = 2 * uint256(d.guiltyVotes) > reveals;
        address[] memory winners = new address[](members.length);
        address[] memory absent = new address[](members.length);
        for (uint256 i = 0; i < members.length; ++i) {
            address m = members[i];
            --_validatorInfo[m].activeCommittees;
            Ballot memory b = _ballots[disputeId][m];
            if (!b.revealed) absent[i] = m;
            else if (b.guilty == providerLoses) winners[i] = m;
        }
        uint256 slashed;
        if (reveals == 0) {
            d.status = DisputeStatus.Void;
            _addCredit(d.challenger, d.bond);
            emit DisputeVoided(disputeId);
        } else if (providerLoses) {
            d.status = DisputeStatus.ProviderSlashed;
            slashed = _slashProvider(d, winners);
            emit DisputeResolved(disputeId, true, slashed);
        } else {
            d.status = DisputeStatus.ChallengerSlashed;
            slashed = d.bond;
            uint256 toWinner = (slashed * winnerRewardBps) / _BPS;
            _addCredit(d.provider, toWinner);
            _share(slashed - toWinner, winners);
            emit DisputeResolved(disputeId, false, slashed);
        }
        _slashAbsent(disputeId, absent, reveals == 0 ? new address[](0) : winners);
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

    /// @notice Vote tallies of a dispute.
    /// @param disputeId Dispute.
    /// @return commits Votes committed.
    /// @return reveals Votes revealed.
    /// @return guiltyVotes Revealed votes for guilty.
    /// @return bond Challenger's bond.
    function tally(uint256 disputeId)
        external
        view
        returns (uint8 commits, uint8 reveals, uint8 guiltyVotes, uint256 bond)
    {
        Dispute storage d = _dispute(disputeId);
        return (d.commits, d.reveals, d.guiltyVotes, d.bond);
    }

    /// @notice Committee of a dispute (empty before the response).
    /// @param disputeId Dispute.
    /// @return The members.
    function committee(uint256 disputeId) external view returns (address[] memory) {
        return _committees[disputeId];
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

    /// @notice Whether `account` is a registered validator.
    /// @param account Account.
    /// @return True when registered.
    function isValidator(address account) external view returns (bool) {
        return _validatorInfo[account].indexPlusOne != 0;
    }

    /// @notice Number of registered validators.
    /// @return The count.
    function validatorCount() external view returns (uint256) {
        return _validators.length;
    }

    /// @notice Validator at `index` of the registry (order changes on deregistration).
    /// @param index Registry index.
    /// @return The validator.
    function validatorAt(uint256 index) external view returns (address) {
        return _validators[index];
    }

    /// @notice Number of undecided committees `account` sits on.
    /// @param account Validator.
    /// @return The count.
    function activeCommittees(address account) external view returns (uint256) {
        return _validatorInfo[account].activeCommittees;
    }

    /// @notice Tokens credited to `account`, withdrawable with `withdrawCredit`.
    /// @param account Account.
    /// @return Credit.
    function credit(address account) external view returns (uint256) {
        return _credit[account];
    }

    /// @notice The Merkle tree node of a trace leaf:
    ///         keccak256(bytes.concat(keccak256(abi.encode(leafIndex, leafHash)))).
    /// @param leafIndex Leaf index.
    /// @param leafHash Leaf hash.
    /// @return The node.
    function leafNode(uint256 leafIndex, bytes32 leafHash) public pure returns (bytes32) {
        // Double hashing keeps a 64-byte leaf preimage from colliding with an inner node.
        return keccak256(bytes.concat(keccak256(abi.encode(leafIndex, leafHash))));
    }

    /// @notice Whether `proof` shows leaf (`leafIndex`, `leafHash`) is in the tree of `root`:
    ///         exactly the check `challenge` makes (validators can run it before paying a bond).
    /// @param root Committed trace root.
    /// @param leafIndex Leaf position.
    /// @param leafHash Leaf hash.
    /// @param proof Sibling hashes, OpenZeppelin sorted-pair order.
    /// @return True when the proof verifies.
    function provesLeaf(bytes32 root, uint256 leafIndex, bytes32 leafHash, bytes32[] calldata proof)
        public
        pure
        returns (bool)
    {
        return MerkleProof.verifyCalldata(proof, root, leafNode(leafIndex, leafHash));
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

    /// @dev Checks the challenge window, the commitment and the Merkle proof; returns the
    ///      accused provider.
    function _target(uint256 jobId, uint32 round, uint32 stage)
        private
        view
        returns (address provider, bytes32 root)
    {
        bool slashed;
        uint64 start;
        uint64 end;
        (root, provider, slashed, start, end,) = market.auditTarget(jobId, round, stage);
        // solhint-disable-next-line not-rely-on-time
        uint64 nowTime = uint64(block.timestamp);
        if (end == 0 || nowTime < start || nowTime > end) {
            revert OutsideChallengeWindow(start, end, nowTime);
        }
        if (root == bytes32(0) || slashed) revert NothingToChallenge(jobId, round, stage);
        if (msg.sender == provider) revert SelfChallenge(provider);
    }

    function _dispute(uint256 disputeId) private view returns (Dispute storage d) {
        if (disputeId == 0 || disputeId > _disputeCount) revert UnknownDispute(disputeId);
        d = _disputes[disputeId];
    }

    function _close(Dispute storage d) private {
        --_openDisputes[d.jobId][d.round];
    }

    /// @dev Slashes the provider through the market and the StakeManager; the challenger gets
    ///      its bond back, the bounty and `winnerRewardBps` of the slash; `voters` share the rest.
    function _slashProvider(Dispute storage d, address[] memory voters)
        private
        returns (uint256 slashed)
    {
        (address provider, uint256 stakeAtRisk, uint256 bounty) =
            market.slashCommitment(d.jobId, d.round, d.stage);
        slashed = stakes.slash(provider, (stakeAtRisk * providerSlashBps) / _BPS, address(this));
        uint256 toWinner = (slashed * winnerRewardBps) / _BPS;
        _addCredit(d.challenger, d.bond + bounty + toWinner);
        _share(slashed - toWinner, voters);
    }

    /// @dev Slashes members that did not reveal; their penalties go to `voters` (or treasury).
    function _slashAbsent(uint256 disputeId, address[] memory absent, address[] memory voters)
        private
    {
        uint256 total = 0;
        for (uint256 i = 0; i < absent.length; ++i) {
            if (absent[i] == address(0)) continue;
            uint256 taken = stakes.slash(absent[i], nonRevealPenalty, address(this));
            total += taken;
            emit NonRevealSlashed(disputeId, absent[i], taken);
        }
        _share(total, voters);
    }

    /// @dev Splits `amount` equally among the non-zero entries of `to`; the remainder (or all of
    ///      it when there is nobody) goes to the treasury.
    function _share(uint256 amount, address[] memory to) private {
        if (amount == 0) return;
        uint256 n = 0;
        for (uint256 i = 0; i < to.length; ++i) {
            if (to[i] != address(0)) ++n;
        }
        if (n == 0) {
            _addCredit(treasury, amount);
            return;
        }
        uint256 each = amount / n;
        for (uint256 i = 0; i < to.length; ++i) {
            if (to[i] != address(0)) _addCredit(to[i], each);
        }
        _addCredit(treasury, amount % n);
    }

    function _addCredit(address account, uint256 amount) private {
        if (amount == 0) return;
        _credit[account] += amount;
        emit Credited(account, amount);
    }

    /// @dev Draws up to `committeeSize` distinct eligible validators: independent seeded picks
    ///      first (so registration order cannot hand a block of sybils the whole committee),
    ///      then a scan from a seeded offset to fill what the picks missed. Eligible: registered
    ///      by the round's seal block (before the seed could be known), not a party, and still
    ///      holding `minValidatorStake`. At most MAX_DRAW_STEPS registry entries are examined.
    function _draw(bytes32 seed, uint64 sealBlock, address challenger, address provider)
        private
        view
        returns (address[] memory members)
    {
        uint256 n = _validators.length;
        uint256 target = committeeSize;
        members = new address[](target);
        uint256 count = 0;
        if (n == 0) return _truncate(members, 0);
        uint256 steps = 0;
        for (uint256 i = 0; i < 2 * target && count < target && steps < MAX_DRAW_STEPS; ++i) {
            ++steps;
            address v = _validators[uint256(keccak256(abi.encode(seed, i))) % n];
            if (_eligible(v, sealBlock, challenger, provider, members, count)) members[count++] = v;
        }
        uint256 offset = uint256(seed) % n;
        for (uint256 j = 0; j < n && count < target && steps < MAX_DRAW_STEPS; ++j) {
            ++steps;
            address v = _validators[(offset + j) % n];
            if (_eligible(v, sealBlock, challenger, provider, members, count)) members[count++] = v;
        }
        return _truncate(members, count);
    }

    function _eligible(
        address v,
        uint64 sealBlock,
        address challenger,
        address provider,
        address[] memory chosen,
        uint256 count
    ) private view returns (bool) {
        if (v == challenger || v == provider) return false;
        if (_validatorInfo[v].registeredBlock > sealBlock) return false;
        for (uint256 k = 0; k < count; ++k) {
            if (chosen[k] == v) return false;
        }
        return stakes.stakeOf(v) >= minValidatorStake;
    }

    function _truncate(address[] memory a, uint256 len) private pure returns (address[] memory) {
        // Shrinks the array in place: len <= a.length always.
        assembly ("memory-safe") {
            mstore(a, len)
        }
        return a;
    }
}
