// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IStakeManager
/// @notice Bonded stake of providers and validators. The protocol's contracts do not lock an
///         account's stake as one number: each takes an ALLOCATION of it under an id of its own
///         (JobMarket: one per job; ValidatorRegistry: one per registration), EigenLayer-style.
///         An allocation can only be slashed by the contract that made it, and never by more
///         than it holds, so a fault in one job can never reach the collateral of another.
interface IStakeManager {
    /// @notice `amount` is below the minimum accepted (zero).
    error ZeroAmount();
    /// @notice `account` asked for `needed` free (unallocated, bonded) stake but has only
    ///         `available`.
    error InsufficientFreeStake(address account, uint256 available, uint256 needed);
    /// @notice `account` has nothing unbonding.
    error NothingUnbonding(address account);
    /// @notice Unbonding funds of `account` are released only at `releaseTime` (now `nowTime`).
    error StillUnbonding(address account, uint64 releaseTime, uint64 nowTime);

    /// @notice `account` bonded `amount`.
    event Staked(address indexed account, uint256 amount);
    /// @notice `account` moved `amount` from bonded stake to unbonding, released at `releaseTime`.
    event UnstakeRequested(address indexed account, uint256 amount, uint64 releaseTime);
    /// @notice `account` withdrew `amount` of unbonded tokens.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice `allocator` allocated `amount` of the stake of `account` under `id`.
    event Allocated(
        address indexed account, address indexed allocator, bytes32 indexed id, uint256 amount
    );
    /// @notice `allocator` released the allocation `id` (`amount` left in it) of `account`.
    event Released(
        address indexed account, address indexed allocator, bytes32 indexed id, uint256 amount
    );
    /// @notice `amount` of allocation `id` of `account` went to `beneficiary` by order of
    ///         `allocator`.
    event Slashed(
        address indexed account,
        address indexed allocator,
        bytes32 indexed id,
        address beneficiary,
        uint256 amount
    );

    /// @notice Bonds `amount` tokens (pulled with transferFrom) to the caller's stake.
    /// @param amount Tokens to bond, > 0.
    function stake(uint256 amount) external;

    /// @notice Starts unbonding `amount` of the caller's free stake; restarts the unbonding clock.
    /// @param amount Free (unallocated) stake to unbond, > 0.
    function requestUnstake(uint256 amount) external;

    /// @notice Withdraws everything unbonding once its release time has passed.
    function withdraw() external;

    /// @notice Protocol only: adds `amount` of `account`'s free stake to the caller's
    ///         allocation `id`.
    /// @param account Staker.
    /// @param id Allocation id, in the caller's own namespace.
    /// @param amount Stake to allocate (must be free).
    function allocate(address account, bytes32 id, uint256 amount) external;

    /// @notice Protocol only: releases the caller's whole allocation `id` of `account`.
    /// @param account Staker.
    /// @param id Allocation id.
    /// @return amount What the allocation held.
    function release(address account, bytes32 id) external returns (uint256 amount);

    /// @notice Protocol only: takes min(`amount`, allocation) from the caller's allocation `id`
    ///         of `account` and sends it to `beneficiary`.
    /// @param account Staker.
    /// @param id Allocation id.
    /// @param amount Tokens to take at most.
    /// @param beneficiary Receiver.
    /// @return slashed Tokens taken.
    function slashAllocation(address account, bytes32 id, uint256 amount, address beneficiary)
        external
        returns (uint256 slashed);

    /// @notice Bonded stake of `account` (allocated or not; not unbonding).
    function stakeOf(address account) external view returns (uint256);

    /// @notice Sum of the allocations of `account`.
    function lockedOf(address account) external view returns (uint256);

    /// @notice Bonded stake of `account` not allocated.
    function freeStakeOf(address account) external view returns (uint256);

    /// @notice The allocation `id` that `allocator` holds of `account`.
    function allocationOf(address account, address allocator, bytes32 id)
        external
        view
        returns (uint256);

    /// @notice Unbonding amount of `account` and when it can be withdrawn.
    function unbondingOf(address account) external view returns (uint256 amount, uint64 releaseTime);

    /// @notice Seconds between `requestUnstake` and the earliest `withdraw`.
    function unbondingPeriod() external view returns (uint64);
}
