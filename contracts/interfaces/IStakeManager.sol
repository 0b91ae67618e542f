// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IStakeManager
/// @notice Bonded stake of providers and validators; locks and slashes come only from the
///         protocol's own contracts (JobMarket, AuditCourt).
interface IStakeManager {
    /// @notice `amount` is below the minimum accepted (zero).
    error ZeroAmount();
    /// @notice `account` asked for `needed` free (unlocked, bonded) stake but has only `available`.
    error InsufficientFreeStake(address account, uint256 available, uint256 needed);
    /// @notice An unlock of `needed` exceeds the `locked` total of `account`.
    error UnlockExceedsLocked(address account, uint256 locked, uint256 needed);
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
    /// @notice `locker` locked `amount` of the stake of `account`.
    event StakeLocked(address indexed account, address indexed locker, uint256 amount);
    /// @notice `locker` released `amount` of the stake of `account`.
    event StakeUnlocked(address indexed account, address indexed locker, uint256 amount);
    /// @notice `amount` of the stake of `account` went to `beneficiary` by order of `slasher`.
    event Slashed(
        address indexed account, address indexed beneficiary, address indexed slasher, uint256 amount
    );

    /// @notice Bonds `amount` tokens (pulled with transferFrom) to the caller's stake.
    /// @param amount Tokens to bond, > 0.
    function stake(uint256 amount) external;

    /// @notice Starts unbonding `amount` of the caller's free stake; restarts the unbonding clock.
    /// @param amount Free (unlocked) stake to unbond, > 0.
    function requestUnstake(uint256 amount) external;

    /// @notice Pays the caller's whole unbonding amount once its release time has passed.
    function withdraw() external;

    /// @notice Locks `amount` of `account`'s free stake (protocol contracts only).
    /// @param account Staker whose stake is locked.
    /// @param amount Amount to lock; must not exceed the free stake.
    function lock(address account, uint256 amount) external;

    /// @notice Releases a lock of `amount` previously taken on `account` (protocol contracts only).
    /// @param account Staker whose stake is released.
    /// @param amount Amount to release.
    function unlock(address account, uint256 amount) external;

    /// @notice Takes up to `amount` from `account`'s stake (bonded first, then unbonding) and
    ///         transfers it to `beneficiary` (protocol contracts only).
    /// @param account Staker to slash.
    /// @param amount Amount wanted; the slash is capped by what the account holds.
    /// @param beneficiary Receiver of the slashed tokens.
    /// @return slashed The amount actually taken.
    function slash(address account, uint256 amount, address beneficiary)
        external
        returns (uint256 slashed);

    /// @notice Bonded stake of `account` (locked or not; unbonding excluded).
    /// @param account Staker.
    /// @return Bonded amount.
    function stakeOf(address account) external view returns (uint256);

    /// @notice Sum of the locks held on `account`'s stake (may exceed its stake after a slash).
    /// @param account Staker.
    /// @return Locked amount.
    function lockedOf(address account) external view returns (uint256);

    /// @notice Bonded stake of `account` that no lock covers.
    /// @param account Staker.
    /// @return Free amount.
    function freeStakeOf(address account) external view returns (uint256);

    /// @notice Unbonding amount of `account` and when it can be withdrawn.
    /// @param account Staker.
    /// @return amount Tokens unbonding.
    /// @return releaseTime Timestamp from which `withdraw` pays.
    function unbondingOf(address account) external view returns (uint256 amount, uint64 releaseTime);
}
