// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";

/// @title StakeManager
/// @notice Holds bonded stake. Locks (taken by JobMarket while a provider holds a stage and by
///         AuditCourt while a validator is registered) keep stake from being unbonded; slashes
///         take bonded stake first, then unbonding stake, so unbonding never dodges a slash.
/// @dev Token balance of this contract == sum(stake) + sum(unbonding) at all times.
contract StakeManager is IStakeManager, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Role of the protocol contracts allowed to lock, unlock and slash.
    bytes32 public constant PROTOCOL_ROLE = keccak256("PROTOCOL_ROLE");

    struct Unbonding {
        uint256 amount;
        uint64 releaseTime;
    }

    /// @notice The staked token.
    IERC20 public immutable token;
    /// @notice Seconds between `requestUnstake` and the earliest `withdraw`.
    uint64 public immutable unbondingPeriod;

    mapping(address account => uint256) private _stake;
    mapping(address account => uint256) private _locked;
    mapping(address account => Unbonding) private _unbonding;

    /// @param token_ Token staked (TesseraToken).
    /// @param unbondingPeriod_ Seconds an unstake waits before it can be withdrawn.
    /// @param admin Account that grants PROTOCOL_ROLE.
    constructor(IERC20 token_, uint64 unbondingPeriod_, address admin) {
        token = token_;
        unbondingPeriod = unbondingPeriod_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IStakeManager
    function stake(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        _stake[msg.sender] += amount;
        emit Staked(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IStakeManager
    function requestUnstake(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        uint256 free = _free(msg.sender);
        if (amount > free) revert InsufficientFreeStake(msg.sender, free, amount);
        _stake[msg.sender] -= amount;
        Unbonding storage u = _unbonding[msg.sender];
        u.amount += amount;
        // One clock per account: a new request restarts it for the whole unbonding amount, so a
        // slash can always reach freshly unbonded stake for a full period.
        // solhint-disable-next-line not-rely-on-time
        uint64 releaseTime = uint64(block.timestamp) + unbondingPeriod;
        u.releaseTime = releaseTime;
        emit UnstakeRequested(msg.sender, amount, releaseTime);
    }

    /// @inheritdoc IStakeManager
    function withdraw() external nonReentrant {
        Unbonding memory u = _unbonding[msg.sender];
        if (u.amount == 0) revert NothingUnbonding(msg.sender);
        // solhint-disable-next-line not-rely-on-time
        if (block.timestamp < u.releaseTime) {
            // solhint-disable-next-line not-rely-on-time
            revert StillUnbonding(msg.sender, u.releaseTime, uint64(block.timestamp));
        }
        delete _unbonding[msg.sender];
        emit Withdrawn(msg.sender, u.amount);
        token.safeTransfer(msg.sender, u.amount);
    }

    /// @inheritdoc IStakeManager
    function lock(address account, uint256 amount) external onlyRole(PROTOCOL_ROLE) {
        uint256 free = _free(account);
        if (amount > free) revert InsufficientFreeStake(account, free, amount);
        _locked[account] += amount;
        emit StakeLocked(account, msg.sender, amount);
    }

    /// @inheritdoc IStakeManager
    function unlock(address account, uint256 amount) external onlyRole(PROTOCOL_ROLE) {
        uint256 locked = _locked[account];
        if (amount > locked) revert UnlockExceedsLocked(account, locked, amount);
        unchecked {
            // amount <= locked was checked just above.
            _locked[account] = locked - amount;
        }
        emit StakeUnlocked(account, msg.sender, amount);
    }

    /// @inheritdoc IStakeManager
    function slash(address account, uint256 amount, address beneficiary)
        external
        onlyRole(PROTOCOL_ROLE)
        nonReentrant
        returns (uint256 slashed)
    {
        uint256 bonded = _stake[account];
        uint256 fromBonded = amount < bonded ? amount : bonded;
        uint256 rest = amount - fromBonded;
        uint256 fromUnbonding = 0;
        if (rest != 0) {
            uint256 unbonding = _unbonding[account].amount;
            fromUnbonding = rest < unbonding ? rest : unbonding;
            _unbonding[account].amount = unbonding - fromUnbonding;
        }
        _stake[account] = bonded - fromBonded;
        // Locks are left as they are: they are claims of the lockers, released by them; free
        // stake is computed as stake minus locks, floored at zero.
        slashed = fromBonded + fromUnbonding;
        emit Slashed(account, beneficiary, msg.sender, slashed);
        if (slashed != 0) token.safeTransfer(beneficiary, slashed);
    }

    /// @inheritdoc IStakeManager
    function stakeOf(address account) external view returns (uint256) {
        return _stake[account];
    }

    /// @inheritdoc IStakeManager
    function lockedOf(address account) external view returns (uint256) {
        return _locked[account];
    }

    /// @inheritdoc IStakeManager
    function freeStakeOf(address account) external view returns (uint256) {
        return _free(account);
    }

    /// @inheritdoc IStakeManager
    function unbondingOf(address account)
        external
        view
        returns (uint256 amount, uint64 releaseTime)
    {
        Unbonding memory u = _unbonding[account];
        return (u.amount, u.releaseTime);
    }

    function _free(address account) private view returns (uint256) {
        uint256 bonded = _stake[account];
        uint256 locked = _locked[account];
        return bonded > locked ? bonded - locked : 0;
    }
}
