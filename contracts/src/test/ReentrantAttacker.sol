// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ICodeEscrow} from "../interfaces/ICodeEscrow.sol";

/// @title ReentrantAttacker
/// @notice Receives native coin from the escrow and tries to re-enter it. Tests only.
contract ReentrantAttacker {
    enum Mode {
        None,
        Withdraw,
        Settle
    }

    ICodeEscrow public immutable escrow;
    Mode public mode;
    uint256 public settleId;
    ICodeEscrow.Order private _settleOrder;
    bool public reentered;
    bytes public lastError;

    /// @notice Deploy against an escrow.
    constructor(ICodeEscrow escrow_) {
        escrow = escrow_;
    }

    /// @notice Choose what to try when paid.
    /// @param mode_ The re-entry to attempt.
    function setMode(Mode mode_) external {
        mode = mode_;
    }

    /// @notice Set the order the attacker tries to settle from inside its receive hook.
    /// @param orderId The order.
    /// @param order The order as stored.
    function setSettleTarget(uint256 orderId, ICodeEscrow.Order calldata order) external {
        settleId = orderId;
        _settleOrder = order;
    }

    /// @notice Buy from a listing as this contract.
    /// @param listingId The listing.
    /// @param pubKey The buyer key.
    function buy(uint256 listingId, bytes32 pubKey) external payable returns (uint256) {
        return escrow.buy{value: msg.value}(listingId, 1, msg.value, address(0), pubKey);
    }

    /// @notice Confirm an order as this contract.
    function confirm(uint256 orderId, ICodeEscrow.Order calldata order) external {
        escrow.confirm(orderId, order);
    }

    /// @notice Withdraw this contract's native balance from the escrow.
    function withdraw() external {
        escrow.withdraw(address(0), address(this));
    }

    receive() external payable {
        if (mode == Mode.Withdraw) {
            try escrow.withdraw(address(0), address(this)) {
                reentered = true;
            } catch (bytes memory err) {
                lastError = err;
            }
        } else if (mode == Mode.Settle) {
            uint256[] memory ids = new uint256[](1);
            ids[0] = settleId;
            ICodeEscrow.Order[] memory orders = new ICodeEscrow.Order[](1);
            orders[0] = _settleOrder;
            try escrow.settle(ids, orders) {
                reentered = true;
            } catch (bytes memory err) {
                lastError = err;
            }
        }
    }
}
