// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IModelShares} from "./interfaces/IModelShares.sol";

/// @title InferencePayments
/// @notice Pay before serve. A client pays for one inference request (a model, a request id
///         it chose, a number of tokens) before any stage computes; each stage holder reads
///         the payment here and serves at most the tokens paid for, to the payer only. The
///         fee goes to the model's shareholders in the same transaction through
///         `ModelShares.depositRevenue`, exactly as a direct deposit would.
/// @dev Accounting: the contract never holds a balance between transactions: it pulls the
///      fee from the payer and deposits all of it as revenue. Request ids are single use, so
///      one payment buys one request.
contract InferencePayments is Ownable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    struct Payment {
        address payer;
        uint64 modelId;
        uint32 tokens;
        uint128 fee;
    }

    IERC20 public immutable token;
    IModelShares public immutable shares;
    /// @notice Price per generated token where a model has no price of its own.
    uint256 public defaultPricePerToken;

    mapping(uint256 modelId => uint256 price) private _price;
    mapping(bytes32 requestId => Payment) private _payments;

    /// @notice A request was paid and its fee deposited as the model's revenue.
    event InferencePaid(
        bytes32 indexed requestId, uint256 indexed modelId, address indexed payer, uint256 tokens, uint256 fee
    );
    /// @notice The price of a model (or the default, modelId = type(uint256).max) changed.
    event PriceSet(uint256 indexed modelId, uint256 price);

    /// @notice The request id was paid for already.
    error RequestAlreadyPaid(bytes32 requestId);
    /// @notice A request must buy at least one token.
    error ZeroTokens();
    /// @notice The model id does not fit the payment record.
    error ModelIdTooLarge(uint256 modelId);
    /// @notice The price rose past what the client agreed to pay (e.g. a price change
    ///         mined just before the payment).
    error FeeAboveMax(uint256 fee, uint256 maxFee);

    constructor(IERC20 token_, IModelShares shares_, uint256 defaultPrice, address admin) Ownable(admin) {
        token = token_;
        shares = shares_;
        defaultPricePerToken = defaultPrice;
    }

    /// @notice Set the price per token of one model.
    /// @param modelId The model (= job id).
    /// @param price Price per generated token in TSR wei (0: use the default).
    function setPrice(uint256 modelId, uint256 price) external onlyOwner {
        _price[modelId] = price;
        emit PriceSet(modelId, price);
    }

    /// @notice Set the price per token of models without their own.
    /// @param price Price per generated token in TSR wei.
    function setDefaultPrice(uint256 price) external onlyOwner {
        defaultPricePerToken = price;
        emit PriceSet(type(uint256).max, price);
    }

    /// @notice Price per generated token of `modelId`.
    /// @param modelId The model.
    /// @return The price in TSR wei.
    function priceOf(uint256 modelId) public view returns (uint256) {
        uint256 p = _price[modelId];
        return p == 0 ? defaultPricePerToken : p;
    }

    /// @notice Pay for a request of `tokens` generated tokens of `modelId`.
    /// @dev Pulls tokens * priceOf(modelId) from the caller (approve this contract first) and
    ///      deposits it at once as the model's revenue; reverts if the model has no shares.
    /// @param modelId The model (= job id).
    /// @param requestId The client's id for this request (single use).
    /// @param tokens How many tokens the stages may generate for it.
    /// @param maxFee The most the client pays (the fee it saw quoted): a price raised
    ///        between quote and payment reverts instead of charging more.
    /// @return fee What was charged.
    function pay(uint256 modelId, bytes32 requestId, uint32 tokens, uint256 maxFee)
        external
        nonReentrant
        returns (uint256 fee)
    {
        if (tokens == 0) revert ZeroTokens();
        if (modelId > type(uint64).max) revert ModelIdTooLarge(modelId);
        if (_payments[requestId].payer != address(0)) revert RequestAlreadyPaid(requestId);
        fee = uint256(tokens) * priceOf(modelId);
        if (fee > maxFee) revert FeeAboveMax(fee, maxFee);
        _payments[requestId] = Payment(msg.sender, uint64(modelId), tokens, uint128(fee));
        emit InferencePaid(requestId, modelId, msg.sender, tokens, fee);
        if (fee != 0) {
            token.safeTransferFrom(msg.sender, address(this), fee);
            token.forceApprove(address(shares), fee);
            shares.depositRevenue(modelId, fee);
        }
    }

    /// @notice The payment of a request (payer zero when unpaid).
    /// @param requestId The request.
    /// @return payer Who paid.
    /// @return modelId For which model.
    /// @return tokens How many tokens were bought.
    /// @return fee What was charged.
    function paymentOf(bytes32 requestId)
        external
        view
        returns (address payer, uint256 modelId, uint256 tokens, uint256 fee)
    {
        Payment storage p = _payments[requestId];
        return (p.payer, p.modelId, p.tokens, p.fee);
    }
}
