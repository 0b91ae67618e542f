// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IRandomnessSource
/// @notice Where audit seeds come from. A consumer fixes an anchor block `delay()` blocks after
///         the event that needs randomness (a round's seal), then asks `randomness(anchor)` in a
///         later transaction. A deployment can point at a beacon (drand relay, VRF) by
///         implementing this; the default reads `block.prevrandao` of the anchor block itself.
interface IRandomnessSource {
    /// @notice Blocks between the event and its anchor block.
    function delay() external view returns (uint64);

    /// @notice The randomness of `anchor`.
    /// @param anchor Anchor block.
    /// @return value Non-zero once available.
    /// @return expired True when it can never become available: the consumer re-anchors.
    function randomness(uint64 anchor) external view returns (bytes32 value, bool expired);
}
