// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IStakeManager} from "./interfaces/IStakeManager.sol";
import {IValidatorRegistry} from "./interfaces/IValidatorRegistry.sol";

/// @title ValidatorRegistry
/// @notice Validators allocate stake here (their draw weight). The registry is APPEND-ONLY: each
///         registration is an entry with its registration block, exit block and the cumulative
///         weight of every entry before it. The committee pool of a round is therefore the prefix
///         of entries registered by the round's seal block, found by binary search: nothing done
///         after the seal (registering throw-away validators, exiting) changes any draw of it.
/// @dev A draw picks distinct members, each pick weighted by stake (a validator with twice the
///      stake is twice as likely to be picked), rejecting entries that exited by the snapshot,
///      that cannot cover the dispute's stakes, that are a party to the dispute or already
///      picked. Each member holds one seat (one vote).
contract ValidatorRegistry is IValidatorRegistry, AccessControl {
    /// @notice Most sampling attempts in one draw; bounds its gas.
    uint256 public constant MAX_DRAW_STEPS = 96;

    struct Entry {
        address account;
        uint64 registeredBlock;
        uint64 exitBlock;
        uint128 cumWeight;
        uint64 exitTime;
        bool released;
    }

    /// @notice The stake registry.
    IStakeManager public immutable stakes;
    /// @notice Least stake a validator allocates to register.
    uint256 public immutable minValidatorStake;
    /// @notice Seconds an exiting validator stays allocated (drawable for rounds sealed before
    ///         its exit, slashable for not revealing) after it asked to exit.
    uint64 public immutable override exitDelay;
    /// @notice The AuditCourt, set once.
    address public court;

    Entry[] private _entries;
    /// @dev entry index + 1 of the registration an account holds (0 = none).
    mapping(address account => uint256) private _entryOf;
    mapping(address account => uint32) private _activeCommittees;

    modifier onlyCourt() {
        if (msg.sender != court) revert NotCourt(msg.sender);
        _;
    }

    /// @param stakes_ StakeManager (this contract needs its PROTOCOL_ROLE).
    /// @param minValidatorStake_ Least stake per registration.
    /// @param exitDelay_ Seconds between `deregisterValidator` and `releaseValidatorStake`.
    /// @param admin Account that wires the court (renounced after wiring).
    constructor(IStakeManager stakes_, uint256 minValidatorStake_, uint64 exitDelay_, address admin) {
        stakes = stakes_;
        minValidatorStake = minValidatorStake_ == 0 ? 1 : minValidatorStake_;
        exitDelay = exitDelay_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @notice Wires the AuditCourt; once, by the admin.
    /// @param court_ The court.
    function setCourt(address court_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (court != address(0) || court_ == address(0)) revert CourtAlreadySet(court);
        court = court_;
        emit CourtSet(court_);
    }

    /// @notice Registers the caller, allocating `amount` (>= minValidatorStake) of its free
    ///         stake; the amount is its draw weight. It sits on committees of rounds sealed from
    ///         this block on.
    /// @param amount Stake to allocate.
    function registerValidator(uint256 amount) external {
        if (amount < minValidatorStake) revert StakeTooLow(amount, minValidatorStake);
        if (_entryOf[msg.sender] != 0) revert AlreadyValidator(msg.sender);
        uint256 index = _entries.length;
        uint128 before = index == 0 ? 0 : _entries[index - 1].cumWeight;
        _entries.push(
            Entry({
                account: msg.sender,
                registeredBlock: uint64(block.number),
                exitBlock: 0,
                cumWeight: before + uint128(amount),
                exitTime: 0,
                released: false
            })
        );
        _entryOf[msg.sender] = index + 1;
        emit ValidatorRegistered(msg.sender, index, amount);
        stakes.allocate(msg.sender, bytes32(index), amount);
    }

    /// @notice Asks to exit. The caller leaves the pool of rounds sealed after this block, stays
    ///         in the pool (and slashable) for rounds sealed before, and gets its stake back with
    ///         `releaseValidatorStake` after `exitDelay`.
    function deregisterValidator() external {
        uint256 e = _entryOf[msg.sender];
        if (e == 0) revert NotValidator(msg.sender);
        Entry storage entry = _entries[e - 1];
        if (entry.exitBlock != 0) revert AlreadyExiting(msg.sender);
        entry.exitBlock = uint64(block.number);
        // solhint-disable-next-line not-rely-on-time
        entry.exitTime = uint64(block.timestamp);
        // solhint-disable-next-line not-rely-on-time
        emit ValidatorExiting(msg.sender, e - 1, uint64(block.timestamp) + exitDelay);
    }

    /// @notice Releases the caller's validator stake once its exit delay passed and it sits on
    ///         no undecided committee.
    function releaseValidatorStake() external {
        uint256 e = _entryOf[msg.sender];
        if (e == 0) revert NotValidator(msg.sender);
        Entry storage entry = _entries[e - 1];
        uint64 due = entry.exitTime + exitDelay;
        // solhint-disable-next-line not-rely-on-time
        if (entry.exitBlock == 0 || block.timestamp <= due) revert ExitNotDue(msg.sender, due);
        uint32 active = _activeCommittees[msg.sender];
        if (active != 0) revert OnActiveCommittee(msg.sender, active);
        entry.released = true;
        delete _entryOf[msg.sender];
        uint256 amount = stakes.release(msg.sender, bytes32(e - 1));
        emit ValidatorReleased(msg.sender, e - 1, amount);
    }

    /// @inheritdoc IValidatorRegistry
    function enterCommittee(address[] calldata members) external onlyCourt {
        for (uint256 i = 0; i < members.length; ++i) {
            ++_activeCommittees[members[i]];
        }
    }

    /// @inheritdoc IValidatorRegistry
    function leaveCommittee(address member) external onlyCourt {
        --_activeCommittees[member];
    }

    /// @inheritdoc IValidatorRegistry
    function slash(address member, uint256 amount, address beneficiary)
        external
        onlyCourt
        returns (uint256 slashed)
    {
        uint256 e = _entryOf[member];
        if (e == 0) return 0;
        return stakes.slashAllocation(member, bytes32(e - 1), amount, beneficiary);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IValidatorRegistry
    function draw(
        bytes32 seed,
        uint64 snapshotBlock,
        uint256 minAllocation,
        address a,
        address b,
        uint256 seats
    ) external view returns (address[] memory members) {
        members = new address[](seats);
        uint256 n = snapshotSize(snapshotBlock);
        if (n == 0 || seats == 0) return _truncate(members, 0);
        uint256 total = _entries[n - 1].cumWeight;
        uint256 count = 0;
        for (uint256 i = 0; i < MAX_DRAW_STEPS && count < seats; ++i) {
            uint256 point = uint256(keccak256(abi.encode(seed, i))) % total;
            Entry memory entry = _entries[_find(point, n)];
            address v = entry.account;
            if (v == a || v == b || entry.released) continue;
            if (entry.exitBlock != 0 && entry.exitBlock <= snapshotBlock) continue;
            uint256 e = _entryOf[v];
            if (e == 0 || _entries[e - 1].registeredBlock != entry.registeredBlock) continue;
            if (_chosen(members, count, v)) continue;
            if (stakes.allocationOf(v, address(this), bytes32(e - 1)) < minAllocation) continue;
            members[count++] = v;
        }
        return _truncate(members, count);
    }

    /// @inheritdoc IValidatorRegistry
    function snapshotSize(uint64 blockNumber) public view returns (uint256) {
        // Entries are appended in block order: the first entry registered after `blockNumber`.
        uint256 lo = 0;
        uint256 hi = _entries.length;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (_entries[mid].registeredBlock <= blockNumber) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// @inheritdoc IValidatorRegistry
    function isValidator(address account) external view returns (bool) {
        uint256 e = _entryOf[account];
        return e != 0 && _entries[e - 1].exitBlock == 0;
    }

    /// @notice Number of registry entries ever made.
    /// @return The count.
    function entryCount() external view returns (uint256) {
        return _entries.length;
    }

    /// @notice A registry entry.
    /// @param index Entry index.
    /// @return account Validator.
    /// @return registeredBlock Block of registration.
    /// @return exitBlock Block of the exit request (0 = active).
    /// @return weight Stake allocated at registration.
    /// @return released Whether its stake was released.
    function entry(uint256 index)
        external
        view
        returns (address account, uint64 registeredBlock, uint64 exitBlock, uint256 weight, bool released)
    {
        Entry memory e = _entries[index];
        uint256 before = index == 0 ? 0 : _entries[index - 1].cumWeight;
        return (e.account, e.registeredBlock, e.exitBlock, e.cumWeight - before, e.released);
    }

    /// @notice Stake `account` has allocated as a validator now (0 if none).
    /// @param account Validator.
    /// @return The allocation.
    function validatorStakeOf(address account) external view returns (uint256) {
        uint256 e = _entryOf[account];
        if (e == 0) return 0;
        return stakes.allocationOf(account, address(this), bytes32(e - 1));
    }

    /// @notice Number of undecided committees `account` sits on.
    /// @param account Validator.
    /// @return The count.
    function activeCommittees(address account) external view returns (uint256) {
        return _activeCommittees[account];
    }

    /// @dev Index of the first entry in [0, n) whose cumulative weight exceeds `point`.
    function _find(uint256 point, uint256 n) private view returns (uint256) {
        uint256 lo = 0;
        uint256 hi = n - 1;
        while (lo < hi) {
            uint256 mid = (lo + hi) / 2;
            if (_entries[mid].cumWeight > point) hi = mid;
            else lo = mid + 1;
        }
        return lo;
    }

    function _chosen(address[] memory members, uint256 count, address v) private pure returns (bool) {
        for (uint256 k = 0; k < count; ++k) {
            if (members[k] == v) return true;
        }
        return false;
    }

    function _truncate(address[] memory arr, uint256 len) private pure returns (address[] memory) {
        assembly ("memory-safe") {
            mstore(arr, len)
        }
        return arr;
    }
}
