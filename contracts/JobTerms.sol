// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IJobTerms} from "./interfaces/IJobTerms.sol";

/// @title JobTerms
/// @notice Terms and escrow of every job: the bounded parameters, each stage's initial state
///         hash, and the tokens escrowed for rewards and the validator pool. Created by the
///         JobMarket in its constructor; only that JobMarket writes here, and tokens leave only
///         on its order (rewards to the RewardVault, bounties to the court, refunds to owners).
/// @dev Money in this contract: `totalEscrow` = sum over jobs of `funds(jobId).escrow`.
contract JobTerms is IJobTerms {
    using SafeERC20 for IERC20;

    /// @notice Most stages of a job; bounds every loop over stages.
    uint32 public constant MAX_STAGES = 64;
    /// @notice Most rounds of a job.
    uint32 public constant MAX_ROUNDS = 10_000;
    /// @notice Most steps per round.
    uint32 public constant MAX_STEPS_PER_ROUND = 100_000;
    /// @notice Most micro-batches per step.
    uint32 public constant MAX_MICRO_BATCHES = 1_024;
    /// @notice Most trace leaves per round (stepsPerRound * microBatches).
    uint256 public constant MAX_LEAVES = 1 << 20;
    /// @notice Most audited leaves per stage and round.
    uint16 public constant MAX_AUDIT_LEAVES = 1_024;
    /// @notice Largest token amount of any job term (reward, stake, pool): 10^12 TSR.
    uint256 public constant MAX_TOKEN_AMOUNT = 1e30;
    /// @notice Largest `sharesPerStageRound`.
    uint256 public constant MAX_SHARES_PER_STAGE_ROUND = 1e30;
    /// @notice Shortest commit window (seconds).
    uint64 public constant MIN_COMMIT_WINDOW = 10;
    /// @notice Longest commit window (seconds).
    uint64 public constant MAX_COMMIT_WINDOW = 30 days;
    /// @notice Longest challenge window (seconds); the shortest is `minChallengeWindow`.
    uint64 public constant MAX_CHALLENGE_WINDOW = 30 days;
    /// @notice Largest owner share of the minted shares.
    uint16 public constant MAX_OWNER_SHARE_BPS = 9_000;

    /// @notice Token of the escrow.
    IERC20 public immutable token;
    /// @notice The JobMarket, the only writer.
    address public immutable market;
    /// @notice Shortest challenge window a job may set (seconds): long enough for the seed,
    ///         a replay and a challenge on this chain.
    uint64 public immutable minChallengeWindow;

    uint256 private _totalEscrow;
    mapping(uint256 jobId => IJobMarket.JobParams) private _params;
    mapping(uint256 jobId => mapping(uint32 stage => bytes32)) private _initialState;
    mapping(uint256 jobId => Funds) private _funds;

    modifier onlyMarket() {
        if (msg.sender != market) revert NotMarket(msg.sender);
        _;
    }

    /// @param token_ Escrow token.
    /// @param market_ The JobMarket (the creator).
    /// @param minChallengeWindow_ Shortest challenge window of a job (seconds, > 0).
    constructor(IERC20 token_, address market_, uint64 minChallengeWindow_) {
        if (minChallengeWindow_ == 0 || minChallengeWindow_ > MAX_CHALLENGE_WINDOW) {
            revert IJobMarket.InvalidJobParameter("minChallengeWindow", minChallengeWindow_);
        }
        token = token_;
        market = market_;
        minChallengeWindow = minChallengeWindow_;
    }

    /// @notice Market only: validates `p` against every bound, stores it with the stages'
    ///         initial state hashes and books the budget `rewardPerStageRound * numStages *
    ///         rounds + validatorPool` as the job's escrow (the market transfers it here).
    /// @param jobId New job.
    /// @param p Its parameters.
    /// @param initialStateHashes One non-zero state hash per stage.
    /// @return budget Tokens to escrow.
    function open(uint256 jobId, IJobMarket.JobParams calldata p, bytes32[] calldata initialStateHashes)
        external
        onlyMarket
        returns (uint256 budget)
    {
        _validate(p);
        if (initialStateHashes.length != p.numStages) {
            revert IJobMarket.InvalidJobParameter("initialStateHashes", initialStateHashes.length);
        }
        for (uint32 s = 0; s < p.numStages; ++s) {
            if (initialStateHashes[s] == bytes32(0)) {
                revert IJobMarket.InvalidJobParameter("initialStateHashes", s);
            }
            _initialState[jobId][s] = initialStateHashes[s];
        }
        budget = p.rewardPerStageRound * p.numStages * p.rounds + p.validatorPool;
        _params[jobId] = p;
        _funds[jobId] = Funds({escrow: budget, validatorPoolLeft: p.validatorPool});
        _totalEscrow += budget;
    }

    /// @notice Market only: pays `amount` of the job's escrow (never of its validator pool's
    ///         share) to `to`.
    /// @param jobId Job.
    /// @param amount Tokens.
    /// @param to Receiver (the RewardVault for credited rewards).
    function pay(uint256 jobId, uint256 amount, address to) external onlyMarket {
        if (amount == 0) return;
        _funds[jobId].escrow -= amount;
        _totalEscrow -= amount;
        token.safeTransfer(to, amount);
    }

    /// @notice Market only: pays min(validator pool left, `max`) to `to`.
    /// @param jobId Job.
    /// @param max Most to pay.
    /// @param to Receiver (the court).
    /// @return bounty Tokens paid.
    function payBounty(uint256 jobId, uint256 max, address to) external onlyMarket returns (uint256 bounty) {
        Funds storage f = _funds[jobId];
        bounty = f.validatorPoolLeft < max ? f.validatorPoolLeft : max;
        if (bounty == 0) return 0;
        f.validatorPoolLeft -= bounty;
        f.escrow -= bounty;
        _totalEscrow -= bounty;
        token.safeTransfer(to, bounty);
    }

    /// @notice Market only: books `amount`, already transferred here (a liveness penalty), into
    ///         the job's escrow and validator pool.
    /// @param jobId Job.
    /// @param amount Tokens.
    function addToPool(uint256 jobId, uint256 amount) external onlyMarket {
        Funds storage f = _funds[jobId];
        f.escrow += amount;
        f.validatorPoolLeft += amount;
        _totalEscrow += amount;
    }

    /// @notice Market only: pays the job's whole remaining escrow to `to` (the job ended).
    /// @param jobId Job.
    /// @param to The job's owner.
    /// @return amount Tokens refunded.
    function refund(uint256 jobId, address to) external onlyMarket returns (uint256 amount) {
        amount = _funds[jobId].escrow;
        delete _funds[jobId];
        _totalEscrow -= amount;
        if (amount != 0) token.safeTransfer(to, amount);
    }

    /// @notice Parameters of a job (all zero for an unknown id).
    /// @param jobId Job.
    /// @return The JobParams it was posted with.
    function params(uint256 jobId) external view returns (IJobMarket.JobParams memory) {
        return _params[jobId];
    }

    /// @notice The state hash `stage` starts round 0 from (committed with the job).
    /// @param jobId Job.
    /// @param stage Stage.
    /// @return The hash.
    function initialStateHash(uint256 jobId, uint32 stage) external view returns (bytes32) {
        return _initialState[jobId][stage];
    }

    /// @notice Trace layout and stake of a job: leafCount = stepsPerRound * microBatches.
    /// @param jobId Job.
    /// @return stepsPerRound Steps per round.
    /// @return microBatches Micro-batches per step.
    /// @return minStake Allocation each stage holder stakes to the job.
    function leafLayout(uint256 jobId)
        external
        view
        returns (uint32 stepsPerRound, uint32 microBatches, uint256 minStake)
    {
        IJobMarket.JobParams storage p = _params[jobId];
        return (p.stepsPerRound, p.microBatches, p.minStake);
    }

    /// @notice What a finalized round pays: per paid stage `reward` tokens and `sharesEach`
    ///         shares; the owner gets `ownerShareBps` of all shares minted.
    /// @param jobId Job.
    /// @return reward rewardPerStageRound.
    /// @return sharesEach sharesPerStageRound.
    /// @return ownerShareBps ownerShareBps.
    function payTerms(uint256 jobId)
        external
        view
        returns (uint256 reward, uint256 sharesEach, uint16 ownerShareBps)
    {
        IJobMarket.JobParams storage p = _params[jobId];
        return (p.rewardPerStageRound, p.sharesPerStageRound, p.ownerShareBps);
    }

    /// @notice Escrow of a job.
    /// @param jobId Job.
    /// @return Its Funds.
    function funds(uint256 jobId) external view returns (Funds memory) {
        return _funds[jobId];
    }

    /// @notice Sum of every job's escrow: this contract's token balance.
    /// @return Tokens.
    function totalEscrow() external view returns (uint256) {
        return _totalEscrow;
    }

    function _validate(IJobMarket.JobParams calldata p) private view {
        if (bytes(p.specCID).length == 0 || bytes(p.specCID).length > 256) {
            _invalid("specCID", bytes(p.specCID).length);
        }
        if (p.numStages == 0 || p.numStages > MAX_STAGES) _invalid("numStages", p.numStages);
        if (p.rounds == 0 || p.rounds > MAX_ROUNDS) _invalid("rounds", p.rounds);
        if (p.stepsPerRound == 0 || p.stepsPerRound > MAX_STEPS_PER_ROUND) {
            _invalid("stepsPerRound", p.stepsPerRound);
        }
        if (p.microBatches == 0 || p.microBatches > MAX_MICRO_BATCHES) {
            _invalid("microBatches", p.microBatches);
        }
        uint256 leaves = uint256(p.stepsPerRound) * p.microBatches;
        if (leaves > MAX_LEAVES) _invalid("microBatches", leaves);
        if (p.rewardPerStageRound > MAX_TOKEN_AMOUNT) {
            _invalid("rewardPerStageRound", p.rewardPerStageRound);
        }
        if (p.sharesPerStageRound == 0 || p.sharesPerStageRound > MAX_SHARES_PER_STAGE_ROUND) {
            _invalid("sharesPerStageRound", p.sharesPerStageRound);
        }
        if (p.minStake == 0 || p.minStake > MAX_TOKEN_AMOUNT) _invalid("minStake", p.minStake);
        if (p.commitWindow < MIN_COMMIT_WINDOW || p.commitWindow > MAX_COMMIT_WINDOW) {
            _invalid("commitWindow", p.commitWindow);
        }
        if (p.challengeWindow < minChallengeWindow || p.challengeWindow > MAX_CHALLENGE_WINDOW) {
            _invalid("challengeWindow", p.challengeWindow);
        }
        if (p.auditLeaves == 0 || p.auditLeaves > MAX_AUDIT_LEAVES || p.auditLeaves > leaves) {
            _invalid("auditLeaves", p.auditLeaves);
        }
        if (p.ownerShareBps > MAX_OWNER_SHARE_BPS) _invalid("ownerShareBps", p.ownerShareBps);
        if (p.validatorPool > MAX_TOKEN_AMOUNT) _invalid("validatorPool", p.validatorPool);
    }

    function _invalid(bytes32 name, uint256 value) private pure {
        revert IJobMarket.InvalidJobParameter(name, value);
    }
}
