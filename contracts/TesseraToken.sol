// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title TesseraToken
/// @notice The protocol's ERC-20: stake, job escrow, challenge bonds and
///         inference fees are all denominated in it. Supports EIP-2612 permit.
///         The whole supply is minted at construction; the owner's faucet `mint` works only on
///         development chains (chain id 1337 or 31337), so on any public chain nobody can
///         dilute holders.
contract TesseraToken is ERC20, ERC20Permit, Ownable {
    /// @notice `mint` was called on a chain that is not a development chain.
    error FaucetDisabled(uint256 chainId);

    /// @param initialOwner Account that receives the initial supply (and the dev faucet).
    /// @param initialSupply Tokens minted to `initialOwner` now.
    constructor(address initialOwner, uint256 initialSupply)
        ERC20("Tessera", "TSR")
        ERC20Permit("Tessera")
        Ownable(initialOwner)
    {
        if (initialSupply != 0) _mint(initialOwner, initialSupply);
    }

    /// @notice Dev-chain faucet: mints `amount` tokens to `to`.
    /// @dev Only the owner, only on chain ids 1337 and 31337.
    /// @param to Recipient of the new tokens.
    /// @param amount Amount in wei (18 decimals).
    function mint(address to, uint256 amount) external onlyOwner {
        if (!faucetEnabled()) revert FaucetDisabled(block.chainid);
        _mint(to, amount);
    }

    /// @notice Whether the faucet works on this chain.
    /// @return True on chain ids 1337 and 31337.
    function faucetEnabled() public view returns (bool) {
        return block.chainid == 1337 || block.chainid == 31337;
    }
}
