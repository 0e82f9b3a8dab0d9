// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title PlainEscrow
/// @notice The gas benchmark's baseline: one struct per order; buy, deliver a hash, confirm.
///         No bond, fees, referrals or Merkle batches. Benchmarks only.
contract PlainEscrow {
    error PlainWrongState();
    error PlainWrongCaller();
    error PlainWrongValue();

    struct Deal {
        address buyer;
        address seller;
        uint256 price;
        bytes32 deliveryHash;
        uint8 state;
    }

    event Bought(uint256 indexed id, address indexed buyer, address indexed seller, uint256 price);
    event Delivered(uint256 indexed id, bytes32 deliveryHash);
    event Confirmed(uint256 indexed id);

    uint256 public count;
    mapping(uint256 id => Deal) public deals;

    /// @notice Pay `price` to `seller` into escrow.
    /// @param seller The seller.
    /// @param price The price, sent as value.
    /// @return id The deal id.
    function buy(address seller, uint256 price) external payable returns (uint256 id) {
        if (msg.value != price) revert PlainWrongValue();
        id = ++count;
        deals[id] = Deal(msg.sender, seller, price, bytes32(0), 1);
        emit Bought(id, msg.sender, seller, price);
    }

    /// @notice Post the hash of the delivery.
    /// @param id The deal.
    /// @param deliveryHash The hash.
    function deliver(uint256 id, bytes32 deliveryHash) external {
        Deal storage d = deals[id];
        if (d.state != 1) revert PlainWrongState();
        if (msg.sender != d.seller) revert PlainWrongCaller();
        d.deliveryHash = deliveryHash;
        d.state = 2;
        emit Delivered(id, deliveryHash);
    }

    /// @notice Confirm and pay the seller.
    /// @param id The deal.
    function confirm(uint256 id) external {
        Deal storage d = deals[id];
        if (d.state != 2) revert PlainWrongState();
        if (msg.sender != d.buyer) revert PlainWrongCaller();
        d.state = 3;
        emit Confirmed(id);
        (bool ok,) = d.seller.call{value: d.price}("");
        if (!ok) revert PlainWrongCaller();
    }
}
