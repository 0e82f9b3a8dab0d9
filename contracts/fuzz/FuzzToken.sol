// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FuzzToken
/// @notice A plain ERC-20 with chosen decimals that anyone may mint. Fuzzing only (the test
///         token in contracts/src/test has 6 decimals fixed).
contract FuzzToken is ERC20 {
    uint8 private immutable _decimals;

    /// @notice Deploy with a symbol and a number of decimals.
    constructor(string memory symbol_, uint8 decimals_) ERC20(symbol_, symbol_) {
        _decimals = decimals_;
    }

    /// @notice Mint `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @inheritdoc ERC20
    function decimals() public view override returns (uint8) {
        return _decimals;
    }
}
