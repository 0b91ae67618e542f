// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1155Receiver} from "@openzeppelin/contracts/token/ERC1155/IERC1155Receiver.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";

/// @title HookedAccount
/// @notice TEST ONLY. A contract account whose ERC-1155 receive hook accepts, reverts, or
///         re-enters an arbitrary call: the attacker in the contract attack tests.
contract HookedAccount is IERC1155Receiver {
    /// @notice How the receive hook behaves.
    enum Mode {
        Accept,
        Revert,
        Reenter,
        BurnGas
    }

    /// @notice The hook refused the tokens on purpose.
    error HookRefused();
    /// @notice Only the deployer drives this account.
    error NotOperator(address caller);

    /// @notice The re-entrant call made from the hook returned `ok` with `data`.
    event Reentered(bool ok, bytes data);

    /// @notice Deployer, the only account allowed to drive this one.
    address public immutable operator;
    /// @notice Current hook behaviour.
    Mode public mode;
    /// @notice Target of the re-entrant call.
    address public reenterTarget;
    /// @notice Calldata of the re-entrant call.
    bytes public reenterData;
    /// @notice Number of re-entrant calls that succeeded.
    uint256 public reentrySuccesses;
    /// @notice Number of re-entrant calls that reverted.
    uint256 public reentryFailures;

    constructor() {
        operator = msg.sender;
    }

    /// @notice Sets the hook behaviour.
    /// @param mode_ Behaviour.
    /// @param target Target of the re-entrant call (Reenter mode).
    /// @param data Calldata of the re-entrant call (Reenter mode).
    function setMode(Mode mode_, address target, bytes calldata data) external {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        mode = mode_;
        reenterTarget = target;
        reenterData = data;
    }

    /// @notice Makes this account call `target` with `data`, bubbling up reverts.
    /// @param target Callee.
    /// @param data Calldata.
    /// @return result Return data.
    function execute(address target, bytes calldata data) external returns (bytes memory result) {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        bool ok;
        // solhint-disable-next-line avoid-low-level-calls
        (ok, result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
    }

    /// @notice ERC-1155 single receive hook.
    /// @return The acceptance selector unless the mode is Revert.
    function onERC1155Received(address, address, uint256, uint256, bytes calldata)
        external
        returns (bytes4)
    {
        _hook();
        return IERC1155Receiver.onERC1155Received.selector;
    }

    /// @notice ERC-1155 batch receive hook.
    /// @return The acceptance selector unless the mode is Revert.
    function onERC1155BatchReceived(
        address,
        address,
        uint256[] calldata,
        uint256[] calldata,
        bytes calldata
    ) external returns (bytes4) {
        _hook();
        return IERC1155Receiver.onERC1155BatchReceived.selector;
    }

    /// @notice ERC-165.
    /// @param interfaceId Interface id.
    /// @return True for ERC-1155 receiver and ERC-165.
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == type(IERC1155Receiver).interfaceId
            || interfaceId == type(IERC165).interfaceId;
    }

    function _hook() private {
        if (mode == Mode.Revert) revert HookRefused();
        if (mode == Mode.BurnGas) {
            // Burns every unit of gas it is given (the H-1 attacker).
            uint256 sink = 0;
            while (gasleft() > 0) {
                ++sink;
            }
        }
        if (mode == Mode.Reenter) {
            // solhint-disable-next-line avoid-low-level-calls
            (bool ok, bytes memory data) = reenterTarget.call(reenterData);
            if (ok) ++reentrySuccesses;
            else ++reentryFailures;
            emit Reentered(ok, data);
        }
    }
}
