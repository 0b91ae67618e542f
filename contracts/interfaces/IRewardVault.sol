// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IRewardVault
/// @notice Rewards and shares credited by the JobMarket at finalization, claimed by each party
///         itself (pull): no code of a payee ever runs inside a round's finalization.
interface IRewardVault {
    /// @notice Only the JobMarket may call; `caller` is not it.
    error NotMarket(address caller);
    /// @notice Nothing credited to `account` to claim.
    error NothingToClaim(uint256 jobId, address account);

    /// @notice `account` claimed `amount` of rewards.
    event RewardsClaimed(address indexed account, uint256 amount);
    /// @notice `account` claimed `shares` of `jobId`, minted to `to`.
    event SharesClaimed(
        uint256 indexed jobId, address indexed account, address indexed to, uint256 shares
    );

    /// @notice Credits `reward` tokens (already transferred here) and `sharesEach` shares of
    ///         `jobId` to each non-zero entry of `payees`, and `ownerShares` to `owner`.
    function credit(
        uint256 jobId,
        address[] calldata payees,
        uint256 reward,
        uint256 sharesEach,
        address owner,
        uint256 ownerShares
    ) external;
    /// @notice Pays the caller every reward credited to it, over all jobs.
    function claimRewards() external returns (uint256 amount);
    /// @notice Mints to `to` every share of `jobId` credited to the caller.
    function claimShares(uint256 jobId, address to) external returns (uint256 amount);
    /// @notice Rewards credited to `account`, unclaimed.
    function rewardsOwed(address account) external view returns (uint256);
    /// @notice Sum of every unclaimed reward (this contract's token balance).
    function totalRewardsOwed() external view returns (uint256);
    /// @notice Shares of `jobId` credited to `account`, unclaimed.
    function sharesOwed(uint256 jobId, address account) external view returns (uint256);
}
