// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";
import {ERC1155Supply} from "@openzeppelin/contracts/token/ERC1155/extensions/ERC1155Supply.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IModelShares} from "./interfaces/IModelShares.sol";

/// @title ModelShares
/// @notice ERC-1155 shares of trained models (token id = model id = job id) and the revenue
///         they earn. Revenue is spread with a cumulative revenue-per-share index: a deposit
///         raises the index, and every mint, burn and transfer first settles what the sender
///         and receiver accrued at the old balances. So claims are O(1) whatever the number of
///         holders, a buyer earns nothing of revenue that landed before the purchase, and a
///         seller keeps what accrued while it held.
/// @dev Rounding: the index is scaled by 1e36 and always rounded down, so every holder loses
///      less than 1 wei per settlement and the contract never owes more than was deposited.
contract ModelShares is IModelShares, ERC1155Supply, AccessControl, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice Role allowed to mint shares (granted to the JobMarket at deployment).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    /// @notice Fixed-point scale of the revenue-per-share index.
    uint256 public constant INDEX_SCALE = 1e36;

    /// @notice Token revenue is paid in (TesseraToken).
    IERC20 public immutable token;

    /// @dev Both totals in one slot: a claim then updates a slot the deposits already made
    ///      non-zero (5k gas rather than 20k for the first claim of a model).
    struct Totals {
        uint128 deposited;
        uint128 claimed;
    }

    mapping(uint256 modelId => uint256) private _revenuePerShare;
    /// @dev Index at the holder's last settlement PLUS ONE (0 = never settled). The offset makes
    ///      every settlement after the first a non-zero to non-zero write, which keeps `claim`
    ///      cheap; every holder with a balance has been settled when it received the shares.
    mapping(uint256 modelId => mapping(address holder => uint256)) private _settledIndexPlusOne;
    mapping(uint256 modelId => mapping(address holder => uint256)) private _owed;
    mapping(uint256 modelId => Totals) private _totals;

    /// @param token_ Revenue token.
    /// @param admin Account holding DEFAULT_ADMIN_ROLE (grants MINTER_ROLE).
    /// @param uri_ ERC-1155 metadata URI template.
    constructor(IERC20 token_, address admin, string memory uri_) ERC1155(uri_) {
        token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc IModelShares
    function mint(address to, uint256 modelId, uint256 amount) external onlyRole(MINTER_ROLE) {
        if (amount == 0) revert ZeroAmount();
        _mint(to, modelId, amount, "");
    }

    /// @notice Burns `amount` of the caller's shares of `modelId`; revenue already accrued stays
    ///         claimable.
    /// @param modelId Model id.
    /// @param amount Shares to burn.
    function burn(uint256 modelId, uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        _burn(msg.sender, modelId, amount);
    }

    /// @inheritdoc IModelShares
    function depositRevenue(uint256 modelId, uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint256 supply = totalSupply(modelId);
        if (supply == 0) revert NoSharesOutstanding(modelId);
        // Rounded down: the remainder (< supply / 1e36 wei) stays in the contract as dust.
        _revenuePerShare[modelId] += Math.mulDiv(amount, INDEX_SCALE, supply);
        _totals[modelId].deposited += SafeCast.toUint128(amount);
        emit RevenueDeposited(modelId, msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IModelShares
    function claim(uint256 modelId) external nonReentrant returns (uint256 amount) {
        uint256 index = _revenuePerShare[modelId];
        amount = _owed[modelId][msg.sender] + _pending(modelId, msg.sender, index);
        if (amount == 0) revert NothingToClaim(modelId, msg.sender);
        _settledIndexPlusOne[modelId][msg.sender] = index + 1;
        if (_owed[modelId][msg.sender] != 0) _owed[modelId][msg.sender] = 0;
        // Cannot overflow: claimed <= deposited, which fits in uint128.
        _totals[modelId].claimed += uint128(amount);
        emit RevenueClaimed(modelId, msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @inheritdoc IModelShares
    function claimable(uint256 modelId, address holder) external view returns (uint256) {
        return _owed[modelId][holder] + _pending(modelId, holder, _revenuePerShare[modelId]);
    }

    /// @notice Cumulative revenue per share of `modelId`, scaled by INDEX_SCALE.
    /// @param modelId Model id.
    /// @return The index.
    function revenuePerShare(uint256 modelId) external view returns (uint256) {
        return _revenuePerShare[modelId];
    }

    /// @notice Revenue ever deposited for `modelId`.
    /// @param modelId Model id.
    /// @return Tokens deposited.
    function totalDeposited(uint256 modelId) external view returns (uint256) {
        return _totals[modelId].deposited;
    }

    /// @notice Revenue ever claimed from `modelId`.
    /// @param modelId Model id.
    /// @return Tokens claimed.
    function totalClaimed(uint256 modelId) external view returns (uint256) {
        return _totals[modelId].claimed;
    }

    /// @inheritdoc IModelShares
    function totalSupply(uint256 modelId)
        public
        view
        override(IModelShares, ERC1155Supply)
        returns (uint256)
    {
        return super.totalSupply(modelId);
    }

    /// @notice ERC-165 support of ERC-1155, its metadata and AccessControl.
    /// @param interfaceId Interface id.
    /// @return True when supported.
    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC1155, AccessControl)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    /// @dev Settles sender and receiver at their old balances before any balance moves (mint,
    ///      burn, transfer, batch). The ERC-1155 receiver hook runs after this, on settled state.
    function _update(address from, address to, uint256[] memory ids, uint256[] memory values)
        internal
        override
    {
        for (uint256 i = 0; i < ids.length; ++i) {
            if (from != address(0)) _settle(ids[i], from);
            if (to != address(0)) _settle(ids[i], to);
        }
        super._update(from, to, ids, values);
    }

    function _settle(uint256 modelId, address holder) private {
        uint256 index = _revenuePerShare[modelId];
        uint256 pending = _pending(modelId, holder, index);
        if (pending != 0) _owed[modelId][holder] += pending;
        if (_settledIndexPlusOne[modelId][holder] != index + 1) {
            _settledIndexPlusOne[modelId][holder] = index + 1;
        }
    }

    function _pending(uint256 modelId, address holder, uint256 index)
        private
        view
        returns (uint256)
    {
        uint256 balance = balanceOf(holder, modelId);
        if (balance == 0) return 0;
        // balance > 0 implies a settlement happened, so the stored value is >= 1.
        uint256 settled = _settledIndexPlusOne[modelId][holder] - 1;
        return Math.mulDiv(balance, index - settled, INDEX_SCALE);
    }
}
