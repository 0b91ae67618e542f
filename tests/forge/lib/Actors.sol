// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1155Receiver} from "@openzeppelin/contracts/token/ERC1155/IERC1155Receiver.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";

/// @notice A provider account whose ERC-1155 receive hook burns every unit of gas it is given
///         (finding H-1), unless its operator switched it to accept.
contract GasBurner is IERC1155Receiver {
    address private immutable _operator;
    bool public burning = true;

    constructor() {
        _operator = msg.sender;
    }

    function setBurning(bool on) external {
        require(msg.sender == _operator, "operator");
        burning = on;
    }

    /// @notice Makes this account call `target`, bubbling up a revert.
    function execute(address target, bytes calldata data) external returns (bytes memory result) {
        require(msg.sender == _operator, "operator");
        bool ok;
        (ok, result) = target.call(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 32), mload(result))
            }
        }
    }

    function onERC1155Received(address, address, uint256, uint256, bytes calldata)
        external
        view
        returns (bytes4)
    {
        _burn();
        return IERC1155Receiver.onERC1155Received.selector;
    }

    function onERC1155BatchReceived(address, address, uint256[] calldata, uint256[] calldata, bytes calldata)
        external
        view
        returns (bytes4)
    {
        _burn();
        return IERC1155Receiver.onERC1155BatchReceived.selector;
    }

    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == type(IERC1155Receiver).interfaceId || interfaceId == type(IERC165).interfaceId;
    }

    function _burn() private view {
        if (!burning) return;
        uint256 x;
        while (gasleft() > 0) {
            x = uint256(keccak256(abi.encode(x)));
        }
    }
}
