// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Hashes} from "@openzeppelin/contracts/utils/cryptography/Hashes.sol";

/// @notice Merkle trees of trace leaves exactly as the court checks them: node =
///         keccak256(bytes.concat(keccak256(abi.encode(index, leafHash)))), sorted-pair inner
///         nodes; an odd node at the end of a level is carried up unchanged.
library TraceTree {
    function leafNode(uint256 index, bytes32 leafHash) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(index, leafHash))));
    }

    function root(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 n = leaves.length;
        bytes32[] memory level = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) level[i] = leafNode(i, leaves[i]);
        while (n > 1) {
            uint256 m = (n + 1) / 2;
            for (uint256 i = 0; i < m; ++i) {
                level[i] = 2 * i + 1 < n
                    ? Hashes.commutativeKeccak256(level[2 * i], level[2 * i + 1])
                    : level[2 * i];
            }
            n = m;
        }
        return level[0];
    }

    function proof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory p) {
        uint256 n = leaves.length;
        bytes32[] memory level = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) level[i] = leafNode(i, leaves[i]);
        p = new bytes32[](64);
        uint256 len = 0;
        uint256 pos = index;
        while (n > 1) {
            uint256 sibling = pos ^ 1;
            if (sibling < n) p[len++] = level[sibling];
            uint256 m = (n + 1) / 2;
            for (uint256 i = 0; i < m; ++i) {
                level[i] = 2 * i + 1 < n
                    ? Hashes.commutativeKeccak256(level[2 * i], level[2 * i + 1])
                    : level[2 * i];
            }
            n = m;
            pos /= 2;
        }
        assembly ("memory-safe") {
            mstore(p, len)
        }
    }
}
