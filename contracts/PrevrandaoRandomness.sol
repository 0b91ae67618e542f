// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IRandomnessSource} from "./interfaces/IRandomnessSource.sol";

/// @title PrevrandaoRandomness
/// @notice Default randomness source: `block.prevrandao` as read by a transaction IN the anchor
///         block (the EVM cannot read it for a past block). Nobody knows it when the anchor is
///         fixed; the beacon-chain proposer of the slot before the anchor can only withhold its
///         block (one re-roll, at the cost of its block reward), and a builder of the anchor
///         block can only leave out the transaction that records it (the seed then re-anchors
///         on a later block: withholding, never choosing). A block hash, by contrast, can be
///         ground by its builder over header variants. See docs/economics.md.
/// @dev On a dev chain (anvil) prevrandao is whatever the node puts there; the seed stays
///      unpredictable enough for tests but carries no security there.
contract PrevrandaoRandomness is IRandomnessSource {
    /// @notice Blocks between the event and its anchor.
    uint64 public immutable override delay;

    /// @param delay_ Blocks between the event and its anchor (>= 1).
    constructor(uint64 delay_) {
        delay = delay_ == 0 ? 1 : delay_;
    }

    /// @inheritdoc IRandomnessSource
    function randomness(uint64 anchor) external view returns (bytes32 value, bool expired) {
        if (block.number < anchor) return (bytes32(0), false);
        if (block.number > anchor) return (bytes32(0), true);
        value = bytes32(block.prevrandao);
        // A zero mix (some dev nodes) would read as "not available": map it to a constant.
        if (value == bytes32(0)) value = keccak256(abi.encode(anchor));
    }
}
