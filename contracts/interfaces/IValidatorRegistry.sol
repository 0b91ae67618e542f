// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IValidatorRegistry
/// @notice Staked validators, kept so that the set eligible for a round's committees is the set
///         registered by the round's seal block: registrations after the seal change no draw.
interface IValidatorRegistry {
    /// @notice `amount` is below `minValidatorStake`.
    error StakeTooLow(uint256 amount, uint256 minimum);
    /// @notice `account` already holds a registration (active or exiting, not yet released).
    error AlreadyValidator(address account);
    /// @notice `account` holds no registration.
    error NotValidator(address account);
    /// @notice `account` already asked to exit.
    error AlreadyExiting(address account);
    /// @notice `account` has not exited, or its exit delay ends at `releaseTime`.
    error ExitNotDue(address account, uint64 releaseTime);
    /// @notice `account` sits on `active` undecided committees.
    error OnActiveCommittee(address account, uint256 active);
    /// @notice Only the court may call; `caller` is not it.
    error NotCourt(address caller);
    /// @notice The court was already set, or is zero.
    error CourtAlreadySet(address court);

    /// @notice `account` registered entry `entry` with `stakeAllocated` (its draw weight).
    event ValidatorRegistered(address indexed account, uint256 indexed entry, uint256 stakeAllocated);
    /// @notice `account` asked to exit; it stays drawable for rounds sealed before now.
    event ValidatorExiting(address indexed account, uint256 indexed entry, uint64 releaseTime);
    /// @notice `account` got its validator stake back.
    event ValidatorReleased(address indexed account, uint256 indexed entry, uint256 amount);
    /// @notice The court was wired in.
    event CourtSet(address indexed court);

    /// @notice Draws up to `seats` distinct committee members for a dispute of a round sealed in
    ///         `snapshotBlock`, weighted by stake, among entries registered by that block and
    ///         not exited by it, holding at least `minAllocation`, excluding `a` and `b`.
    function draw(
        bytes32 seed,
        uint64 snapshotBlock,
        uint256 minAllocation,
        address a,
        address b,
        uint256 seats
    ) external view returns (address[] memory);

    /// @notice Number of registry entries registered by `blockNumber`.
    function snapshotSize(uint64 blockNumber) external view returns (uint256);

    /// @notice Court only: `members` joined an undecided committee.
    function enterCommittee(address[] calldata members) external;

    /// @notice Court only: `member` left an undecided committee.
    function leaveCommittee(address member) external;

    /// @notice Court only: slashes up to `amount` of `member`'s validator stake to `beneficiary`.
    function slash(address member, uint256 amount, address beneficiary)
        external
        returns (uint256 slashed);

    /// @notice Seconds an exiting validator stays slashable.
    function exitDelay() external view returns (uint64);

    /// @notice Whether `account` holds an active (not exiting) registration.
    function isValidator(address account) external view returns (bool);
}
