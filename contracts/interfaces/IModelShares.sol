// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IModelShares
/// @notice Revenue side of the ERC-1155 model shares (token id = model id = job id).
interface IModelShares {
    /// @notice Revenue cannot be deposited for `modelId` while no share of it exists.
    error NoSharesOutstanding(uint256 modelId);
    /// @notice `amount` must be > 0.
    error ZeroAmount();
    /// @notice `holder` has nothing to claim on `modelId`.
    error NothingToClaim(uint256 modelId, address holder);

    /// @notice `payer` deposited `amount` of revenue for the holders of `modelId`.
    event RevenueDeposited(uint256 indexed modelId, address indexed payer, uint256 amount);
    /// @notice `holder` claimed `amount` of the revenue of `modelId`.
    event RevenueClaimed(uint256 indexed modelId, address indexed holder, uint256 amount);

    /// @notice Mints `amount` shares of `modelId` to `to` (MINTER_ROLE).
    /// @param to Receiver (contracts must accept ERC-1155).
    /// @param modelId Model id (= job id).
    /// @param amount Shares to mint.
    function mint(address to, uint256 modelId, uint256 amount) external;

    /// @notice Pulls `amount` tokens from the caller and shares them pro rata among the current
    ///         holders of `modelId`.
    /// @param modelId Model whose holders earn the revenue.
    /// @param amount Tokens to deposit, > 0.
    function depositRevenue(uint256 modelId, uint256 amount) external;

    /// @notice Pays the caller everything it has accrued on `modelId`.
    /// @param modelId Model id.
    /// @return amount Tokens paid.
    function claim(uint256 modelId) external returns (uint256 amount);

    /// @notice Revenue of `modelId` that `holder` can claim now.
    /// @param modelId Model id.
    /// @param holder Account.
    /// @return Claimable tokens.
    function claimable(uint256 modelId, address holder) external view returns (uint256);

    /// @notice Shares of `modelId` in existence.
    /// @param modelId Model id.
    /// @return Total supply.
    function totalSupply(uint256 modelId) external view returns (uint256);
}
