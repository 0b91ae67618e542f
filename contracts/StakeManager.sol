// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";

/// @title StakeManager
/// @notice Holds bonded stake. Protocol contracts allocate parts of an account's free stake
///         under ids of their own (a job, a validator registration) and can slash only their own
///         allocation, at most what it holds. Allocated stake cannot start unbonding.
/// @dev Invariants: token balance == sum(stake) + sum(unbonding); for every account
///      stake >= locked == sum of its allocations (a slash takes from both at once).
contract StakeManager is IStakeManager, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Role of the protocol contracts allowed to allocate, release and slash.
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
    /// @dev keccak256(allocator, id) => allocation.
    mapping(address account => mapping(bytes32 key => uint256)) private _allocations;

    /// @param token_ Token staked (TesseraToken).
    /// @param unbondingPeriod_ Seconds an unstake waits before it can be withdrawn.
    /// @param admin Account that grants PROTOCOL_ROLE (renounced after wiring).
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
        // One clock per account: a new request restarts it for the whole unbonding amount.
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
    function allocate(address account, bytes32 id, uint256 amount)
        external
        onlyRole(PROTOCOL_ROLE)
    {
        if (amount == 0) revert ZeroAmount();
        uint256 free = _free(account);
        if (amount > free) revert InsufficientFreeStake(account, free, amount);
        _allocations[account][_key(msg.sender, id)] += amount;
        _locked[account] += amount;
        emit Allocated(account, msg.sender, id, amount);
    }

    /// @inheritdoc IStakeManager
    function release(address account, bytes32 id)
        external
        onlyRole(PROTOCOL_ROLE)
        returns (uint256 amount)
    {
        bytes32 key = _key(msg.sender, id);
        amount = _allocations[account][key];
        if (amount == 0) return 0;
        delete _allocations[account][key];
        _locked[account] -= amount;
        emit Released(account, msg.sender, id, amount);
    }

    /// @inheritdoc IStakeManager
    function slashAllocation(address account, bytes32 id, uint256 amount, address beneficiary)
        external
        onlyRole(PROTOCOL_ROLE)
        nonReentrant
        returns (uint256 slashed)
    {
        bytes32 key = _key(msg.sender, id);
        uint256 held = _allocations[account][key];
        slashed = amount < held ? amount : held;
        if (slashed == 0) return 0;
        // stake >= locked >= held >= slashed: none of these can underflow.
        _allocations[account][key] = held - slashed;
        _locked[account] -= slashed;
        _stake[account] -= slashed;
        emit Slashed(account, msg.sender, id, beneficiary, slashed);
        token.safeTransfer(beneficiary, slashed);
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
    function allocationOf(address account, address allocator, bytes32 id)
        external
        view
        returns (uint256)
    {
        return _allocations[account][_key(allocator, id)];
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
        return _stake[account] - _locked[account];
    }

    function _key(address allocator, bytes32 id) private pure returns (bytes32) {
        return keccak256(abi.encode(allocator, id));
    }
}
