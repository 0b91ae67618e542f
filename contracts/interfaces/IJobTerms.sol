// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IJobMarket} from "./IJobMarket.sol";

/// @title IJobTerms
/// @notice A job's terms and its escrow: the bounded parameters the owner posted, the initial
///         state hash of each stage, and the tokens escrowed for the job's rewards and its
///         validator pool. Written only by the JobMarket that created it.
interface IJobTerms {
    /// @notice Escrow of one job: every token held for it, and how much of that is still the
    ///         validator pool (bounties and liveness penalties).
    struct Funds {
        uint256 escrow;
        uint256 validatorPoolLeft;
    }

    /// @notice Only the JobMarket may call; `caller` is not it.
    error NotMarket(address caller);

    /// @notice Validates and stores a job's terms; returns the budget to escrow.
    function open(uint256 jobId, IJobMarket.JobParams calldata p, bytes32[] calldata initialStateHashes)
        external
        returns (uint256 budget);
    /// @notice Pays `amount` of the job's escrow to `to`.
    function pay(uint256 jobId, uint256 amount, address to) external;
    /// @notice Pays up to `max` of the job's validator pool to `to`; returns what was paid.
    function payBounty(uint256 jobId, uint256 max, address to) external returns (uint256 bounty);
    /// @notice Books `amount` (already transferred here) into the job's validator pool.
    function addToPool(uint256 jobId, uint256 amount) external;
    /// @notice Pays the job's whole remaining escrow to `to`; returns it.
    function refund(uint256 jobId, address to) external returns (uint256 amount);

    /// @notice The terms of a job.
    function params(uint256 jobId) external view returns (IJobMarket.JobParams memory);
    /// @notice The state hash `stage` starts round 0 from.
    function initialStateHash(uint256 jobId, uint32 stage) external view returns (bytes32);
    /// @notice Trace layout and stake of a job.
    function leafLayout(uint256 jobId)
        external
        view
        returns (uint32 stepsPerRound, uint32 microBatches, uint256 minStake);
    /// @notice Reward and shares per paid stage, and the owner's share of shares.
    function payTerms(uint256 jobId)
        external
        view
        returns (uint256 reward, uint256 sharesEach, uint16 ownerShareBps);
    /// @notice The job's escrow.
    function funds(uint256 jobId) external view returns (Funds memory);
    /// @notice Sum of every job's escrow (this contract's token balance).
    function totalEscrow() external view returns (uint256);
}
