// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title TesseraToken
/// @notice The protocol's ERC-20: stake, job escrow, challenge bonds and
///         inference fees are all denominated in it. Supports EIP-2612 permit.
/// @dev On development networks the owner acts as a faucet through `mint`.
contract TesseraToken is ERC20, ERC20Permit, Ownable {
    /// @param initialOwner Account allowed to mint.
    constructor(address initialOwner)
        ERC20("Tessera", "TSR")
        ERC20Permit("Tessera")
        Ownable(initialOwner)
    {}

    /// @notice Mints `amount` tokens to `to`.
    /// @dev Only the owner; reverts with `OwnableUnauthorizedAccount` otherwise.
    /// @param to Recipient of the new tokens.
    /// @param amount Amount in wei (18 decimals).
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
