// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IModelShares} from "./interfaces/IModelShares.sol";
import {IRewardVault} from "./interfaces/IRewardVault.sol";

/// @title RewardVault
/// @notice Rewards and model shares earned in finalized rounds. The JobMarket (its creator)
///         credits them in storage and transfers the reward tokens here; each party claims its
///         own (pull), so a payee's code (an ERC-1155 receiver hook) can only ever delay its own
///         claim, never a round's finalization.
/// @dev Money in this contract: `totalRewardsOwed`. This contract holds MINTER_ROLE on
///      ModelShares.
contract RewardVault is IRewardVault, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Token of the rewards.
    IERC20 public immutable token;
    /// @notice ERC-1155 model shares (this contract mints them on claim).
    IModelShares public immutable shares;
    /// @notice The JobMarket, the only one that credits.
    address public immutable market;

    uint256 private _totalRewardsOwed;
    mapping(address account => uint256) private _rewardsOwed;
    mapping(uint256 jobId => mapping(address account => uint256)) private _sharesOwed;

    /// @param token_ Reward token.
    /// @param shares_ ModelShares.
    /// @param market_ The JobMarket (the creator).
    constructor(IERC20 token_, IModelShares shares_, address market_) {
        token = token_;
        shares = shares_;
        market = market_;
    }

    /// @notice Market only: credits `reward` tokens and `sharesEach` shares of `jobId` to each
    ///         non-zero entry of `payees` (listed twice: credited twice), and `ownerShares` to
    ///         `owner`. The market transferred `reward` tokens per non-zero payee here first.
    ///         Storage only.
    /// @param jobId Job.
    /// @param payees Accounts paid for a round.
    /// @param reward Tokens each.
    /// @param sharesEach Shares each.
    /// @param owner Job owner.
    /// @param ownerShares The owner's shares.
    function credit(
        uint256 jobId,
        address[] calldata payees,
        uint256 reward,
        uint256 sharesEach,
        address owner,
        uint256 ownerShares
    ) external {
        if (msg.sender != market) revert NotMarket(msg.sender);
        uint256 paid = 0;
        for (uint256 i = 0; i < payees.length; ++i) {
            address payee = payees[i];
            if (payee == address(0)) continue;
            _rewardsOwed[payee] += reward;
            _sharesOwed[jobId][payee] += sharesEach;
            ++paid;
        }
        _totalRewardsOwed += paid * reward;
        if (ownerShares != 0) _sharesOwed[jobId][owner] += ownerShares;
    }

    /// @notice Pays the caller every reward credited to it, over all jobs.
    /// @return amount Tokens paid.
    function claimRewards() external nonReentrant returns (uint256 amount) {
        amount = _rewardsOwed[msg.sender];
        if (amount == 0) revert NothingToClaim(0, msg.sender);
        delete _rewardsOwed[msg.sender];
        _totalRewardsOwed -= amount;
        emit RewardsClaimed(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Mints to `to` every share of `jobId` credited to the caller. Only the caller's own
    ///         ERC-1155 hook (or `to`'s) runs, so a hook can delay only its owner's shares.
    /// @param jobId Job (= model id).
    /// @param to Receiver of the shares.
    /// @return amount Shares minted.
    function claimShares(uint256 jobId, address to) external nonReentrant returns (uint256 amount) {
        amount = _sharesOwed[jobId][msg.sender];
        if (amount == 0) revert NothingToClaim(jobId, msg.sender);
        delete _sharesOwed[jobId][msg.sender];
        emit SharesClaimed(jobId, msg.sender, to, amount);
        shares.mint(to, jobId, amount);
    }

    /// @notice Rewards credited to `account` and not yet claimed.
    /// @param account Account.
    /// @return Tokens.
    function rewardsOwed(address account) external view returns (uint256) {
        return _rewardsOwed[account];
    }

    /// @notice Sum of every unclaimed reward: this contract's token balance.
    /// @return Tokens.
    function totalRewardsOwed() external view returns (uint256) {
        return _totalRewardsOwed;
    }

    /// @notice Shares of `jobId` credited to `account` and not yet claimed.
    /// @param jobId Job.
    /// @param account Account.
    /// @return Shares.
    function sharesOwed(uint256 jobId, address account) external view returns (uint256) {
        return _sharesOwed[jobId][account];
    }
}
