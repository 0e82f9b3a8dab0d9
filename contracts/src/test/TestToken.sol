// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice A 6-decimal stablecoin stand-in that anyone may mint. Tests only.
contract TestToken is ERC20 {
    /// @notice Deploy with a name and symbol.
    constructor(string memory name_, string memory symbol_) ERC20(name_, symbol_) {}

    /// @notice Mint `amount` to `to`.
    /// @param to The recipient.
    /// @param amount The amount.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @inheritdoc ERC20
    function decimals() public pure override returns (uint8) {
        return 6;
    }
}

/// @title FeeOnTransferToken
/// @notice Burns 1% of every transfer, so the recipient gets less than was sent. Tests only.
contract FeeOnTransferToken is TestToken {
    /// @notice Deploy.
    constructor() TestToken("Fee Token", "FEE") {}

    function _update(address from, address to, uint256 value) internal override {
        if (from != address(0) && to != address(0)) {
            uint256 fee = value / 100;
            super._update(from, address(0), fee);
            super._update(from, to, value - fee);
        } else {
            super._update(from, to, value);
        }
    }
}

/// @title BlocklistToken
/// @notice A token whose owner can block accounts from receiving (as USDC can). Tests only.
contract BlocklistToken is TestToken {
    /// @notice Transfers to a blocked account revert with this.
    error Blocked(address account);

    mapping(address account => bool) public blocked;

    /// @notice Deploy.
    constructor() TestToken("Block Token", "BLK") {}

    /// @notice Block or unblock an account.
    /// @param account The account.
    /// @param isBlocked Whether it is blocked.
    function setBlocked(address account, bool isBlocked) external {
        blocked[account] = isBlocked;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (blocked[to]) revert Blocked(to);
        super._update(from, to, value);
    }
}
