// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title Timelock
/// @notice OpenZeppelin's TimelockController, compiled with the project so the deployment can
///         hand every DEFAULT_ADMIN_ROLE to it. Its delay is checked at deploy to exceed the
///         StakeManager's unbonding period, so anyone can leave before an admin action lands.
contract Timelock is TimelockController {
    /// @param minDelay Seconds every operation waits.
    /// @param proposers Accounts that may schedule.
    /// @param executors Accounts that may execute (empty = anyone).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors)
        TimelockController(minDelay, proposers, executors, address(0))
    {}
}
