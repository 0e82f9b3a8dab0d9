// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ICodeEscrow} from "../src/interfaces/ICodeEscrow.sol";

/// @title FuzzAttacker
/// @notice An actor that is a contract: the handler uses it as buyer, supplier, reseller and
///         withdrawal recipient (calls are made as it with `prank`). When the escrow pays it
///         native coin it either accepts, refuses (its own withdrawals then fail, nobody
///         else's may), or tries to re-enter every value-moving entry point of the escrow and
///         records whether the reentrancy guard stopped it. Fuzzing only.
contract FuzzAttacker {
    enum Mode {
        Accept,
        Reject,
        Reenter
    }

    /// @dev OpenZeppelin ReentrancyGuardTransient's error.
    bytes4 private constant _REENTRANT = bytes4(keccak256("ReentrancyGuardReentrantCall()"));

    ICodeEscrow public immutable escrow;
    address[] private _tokens;
    Mode public mode;
    /// @notice Set when a re-entrant call was not refused by the reentrancy guard.
    bool public guardBypassed;
    /// @notice The revert data (or empty on success) of the first re-entry that got past the guard.
    bytes public bypassData;
    /// @notice How many payments it re-entered on (all refused).
    uint256 public reentries;

    constructor(ICodeEscrow escrow_, address[] memory tokens_) {
        escrow = escrow_;
        _tokens = tokens_;
    }

    /// @notice Choose what happens when it is paid.
    function setMode(Mode mode_) external {
        mode = mode_;
    }

    receive() external payable {
        if (mode == Mode.Reject) revert("FuzzAttacker: no thanks");
        if (mode != Mode.Reenter) return;
        ++reentries;
        for (uint256 i; i < _tokens.length; ++i) {
            _expectGuard(abi.encodeCall(ICodeEscrow.withdraw, (_tokens[i], address(this))));
            _expectGuard(abi.encodeCall(ICodeEscrow.withdrawBond, (_tokens[i], 1, address(this))));
        }
        uint256[] memory ids = new uint256[](1);
        ICodeEscrow.Order[] memory orders = new ICodeEscrow.Order[](1);
        _expectGuard(abi.encodeCall(ICodeEscrow.settle, (ids, orders)));
        _expectGuard(abi.encodeCall(ICodeEscrow.depositBond, (address(0), 1)));
    }

    function _expectGuard(bytes memory data) private {
        (bool ok, bytes memory ret) = address(escrow).call(data);
        if (ok || ret.length < 4 || bytes4(ret) != _REENTRANT) {
            if (!guardBypassed) {
                guardBypassed = true;
                bypassData = ok ? bytes("") : ret;
            }
        }
    }
}
