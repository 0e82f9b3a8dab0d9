// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title ICodeEscrow
/// @notice The on-chain half of kameng: supplier bonds, licensed listings with committed code
///         batches, escrowed orders over contiguous code ranges, delivery digests, settlement,
///         disputes with ERC-1497 events, and a pull-payment ledger.
/// @dev Orders are stored as one hash each. Every call after `buy` passes the full `Order` back
///      in calldata and the contract checks it against the stored hash. Every event carries the
///      fields it changed, so an indexer can rebuild each order from events alone.
///      Encodings are in docs/PROTOCOL.md.
interface ICodeEscrow {
    // ------------------------------------------------------------------ types

    /// @notice Lifecycle of an order. `None` means no order exists under that id.
    enum OrderState {
        None,
        Paid,
        Delivered,
        Disputed,
        Completed,
        Refunded,
        Resolved
    }

    /// @notice Everything about an order. Only `keccak256(abi.encode(order))` is stored.
    /// @dev `deadline` means: delivery deadline while Paid, end of the dispute window while
    ///      Delivered, arbitration deadline while Disputed. The listing id and the first code
    ///      index are packed into the order id: `orderId = listingId << 32 | firstIndex`.
    struct Order {
        address buyer;
        address supplier;
        address token;
        address reseller;
        uint128 amount;
        uint128 bond;
        uint32 quantity;
        uint16 feeBps;
        uint128 resellerCut;
        uint32 disputeWindow;
        uint40 deadline;
        OrderState state;
        bytes32 releaseDigest;
    }

    /// @notice A listing: one supplier selling one sku for one payment token.
    /// @dev Storage layout, four slots:
    ///      slot 0: supplier (160) | committed (32) | sold (32) | bondBps (16) | active (8)
    ///      slot 1: token (160) | unitPrice (96)
    ///      slot 2: deliveryWindow (32) | disputeWindow (32) | batchCount (32) | feeBps (16) |
    ///              arbitrationWindow (32) | onChainFrom (32)
    ///      slot 3: sku
    ///      `onChainFrom` is 0 while the listing delivers off-chain; once the supplier calls
    ///      `requireOnChainRelease` it is (the next code index to be sold) + 1, and every order
    ///      from that index on must be delivered with `deliverOnChain` and holds at most
    ///      MAX_ON_CHAIN_QUANTITY codes. It never goes back to 0.
    ///      `feeBps` is the platform's at creation, refreshed by `updateListing`.
    ///      `arbitrationWindow` is the platform's at creation and never changes,
    ///      so no setting changes the terms of an order already placed.
    struct Listing {
        address supplier;
        uint32 committed;
        uint32 sold;
        uint16 bondBps;
        bool active;
        address token;
        uint96 unitPrice;
        uint32 deliveryWindow;
        uint32 disputeWindow;
        uint32 batchCount;
        uint16 feeBps;
        uint32 arbitrationWindow;
        uint32 onChainFrom;
        bool tiered;
        bytes32 sku;
    }

    /// @notice A coupon: a discount the listing's supplier signs (EIP-712, docs/PROTOCOL.md,
    ///         "Coupons") and a buyer presents to `buyWithCoupon`.
    /// @param listingId The listing it is good for, or 0 for any of the signer's listings of `sku`.
    /// @param sku The product it is good for when `listingId` is 0 (ignored otherwise).
    /// @param buyer The one buyer who may use it, or address 0 for anyone.
    /// @param discountBps Basis points off the unit price and the reseller price alike (< 10,000).
    /// @param amountOff Token units off each code, out of the supplier's part: off the unit price
    ///        and the reseller price alike, so a shop's margin stays; below the price it comes
    ///        out of.
    /// @param maxUses How many purchases may use it, or 0 for no limit (until it expires).
    /// @param expiry The last timestamp it may be used at.
    /// @param id The supplier's number for it: uses are counted per (supplier, id), and
    ///        `revokeCoupon(id)` ends every coupon of that id.
    struct Coupon {
        uint256 listingId;
        bytes32 sku;
        address buyer;
        uint16 discountBps;
        uint96 amountOff;
        uint32 maxUses;
        uint40 expiry;
        uint64 id;
    }

    /// @notice A batch of committed codes: a Merkle root over leaves for indexes
    ///         `[firstIndex, firstIndex + count)`.
    struct Batch {
        bytes32 root;
        uint32 firstIndex;
        uint32 count;
    }

    /// @notice A sealed release carried in the delivery transaction itself (`deliverOnChain`), so
    ///         that the buyer can recover it from the chain alone.
    /// @dev `keccak256(abi.encode(keccak256(sealed), elementRoot, keyHash))` must equal the
    ///      order's release digest (release v2, docs/PROTOCOL.md). `proofs` is public and not
    ///      bound by the digest: for each code, its Merkle proof under its batch root, which a
    ///      reader checks against the root on-chain (encoding in docs/PROTOCOL.md).
    struct PublishedRelease {
        bytes sealedRelease;
        bytes32 elementRoot;
        bytes32 keyHash;
        bytes proofs;
    }

    /// @notice A buyer's on-chain proof that a released code does not match its commitment.
    /// @dev Release v2 encoding (docs/PROTOCOL.md, "Proof of a bad code"):
    ///      element leaf  = keccak256(keccak256(abi.encode(index, salt, keccak256(ciphertext))))
    ///      releaseDigest = keccak256(abi.encode(sealedHash, elementRoot, keccak256(abi.encode(key))))
    ///      code          = ciphertext XOR keystream, block b = keccak256(abi.encode(key, index, b))
    struct BadCodeProof {
        bytes32 sealedHash;
        bytes32 key;
        uint256 index;
        bytes32 salt;
        bytes ciphertext;
        bytes32[] elementProof;
        uint256 batchIndex;
        bytes32 committed;
        bytes32[] leafProof;
    }

    /// @notice A supplier's bond in one token (stored packed: free and reserved fit in 80 bits).
    struct Bond {
        uint128 free;
        uint128 reserved;
    }

    /// @notice Platform settings, packed into two slots.
    /// @dev slot 0: feeRecipient (160) | feeBps (16) | minBondBps (16) | arbitrationWindow (32);
    ///      slot 1: minDeliveryWindow | maxDeliveryWindow | minDisputeWindow | maxDisputeWindow
    ///      (32 each). `feeRecipient` is informational; fees are withdrawn by the admin. The windows
    ///      bound what a listing may choose and are themselves bounded by the contract (see
    ///      `setConfig`).
    struct Config {
        address feeRecipient;
        uint16 feeBps;
        uint16 minBondBps;
        uint32 arbitrationWindow;
        uint32 minDeliveryWindow;
        uint32 maxDeliveryWindow;
        uint32 minDisputeWindow;
        uint32 maxDisputeWindow;
    }

    // ------------------------------------------------------------------ errors

    /// @notice The order id has no order, or the order passed does not hash to the stored one.
    error EscrowUnknownOrder(uint256 orderId);
    /// @notice The order is not in the state this step needs.
    error EscrowWrongState(uint256 orderId, OrderState state);
    /// @notice The listing id has no listing.
    error EscrowUnknownListing(uint256 listingId);
    /// @notice The listing is closed to new orders.
    error EscrowListingInactive(uint256 listingId);
    /// @notice The caller may not perform this step.
    error EscrowWrongCaller(address caller);
    /// @notice A quantity of zero was asked for.
    error EscrowZeroQuantity();
    /// @notice Fewer committed codes remain than the quantity asked for.
    error EscrowStockShort(uint256 listingId, uint256 requested, uint256 available);
    /// @notice The listing's price is above the buyer's maximum.
    error EscrowPriceAboveMax(uint256 unitPrice, uint256 maxUnitPrice);
    /// @notice The value sent does not match the amount due.
    error EscrowWrongValue(uint256 sent, uint256 expected);
    /// @notice The token delivered less than the amount transferred (fee-on-transfer tokens).
    error EscrowTokenShortfall(address token, uint256 expected, uint256 received);
    /// @notice The token is not on the platform's allow-list.
    error EscrowTokenNotAllowed(address token);
    /// @notice The supplier's free bond does not cover the reservation.
    error EscrowBondShort(address supplier, address token, uint256 required, uint256 free);
    /// @notice The (supplier, sku) pair has no licensed-product authorization.
    error EscrowNotAuthorized(address supplier, bytes32 sku);
    /// @notice The deadline of this step has passed.
    error EscrowDeadlinePassed(uint256 orderId, uint256 deadline);
    /// @notice The deadline this step waits for has not passed yet.
    error EscrowDeadlineNotReached(uint256 orderId, uint256 deadline);
    /// @notice A basis-point value is above its limit.
    error EscrowBadBps(uint256 bps);
    /// @notice A required argument is zero or malformed.
    error EscrowBadArgument(string name);
    /// @notice Array arguments differ in length.
    error EscrowLengthMismatch();
    /// @notice There is nothing to withdraw.
    error EscrowNothingToWithdraw(address account, address token);
    /// @notice A native-coin transfer failed.
    error EscrowTransferFailed(address to, uint256 amount);
    /// @notice The listing is not open to resellers (its supplier set no reseller price).
    error EscrowNotDistributable(uint256 listingId);
    /// @notice A reseller's price is below the supplier's reseller price for the listing.
    error EscrowBelowResellerPrice(uint256 listingId, uint256 price, uint256 resellerPrice);
    /// @notice The reseller's shop does not sell this listing.
    error EscrowNotInShop(address reseller, uint256 listingId);
    /// @notice A volume tier list is not valid: more than `MAX_TIERS` breaks, lists of different
    ///         lengths, a break below 2 units, or breaks and discounts that do not both strictly
    ///         increase, or a discount of 100% or more (`index` is the first entry at fault).
    error EscrowBadTiers(uint256 index);
    /// @notice The coupon's expiry has passed.
    error EscrowCouponExpired(uint256 expiry);
    /// @notice The coupon has been used `maxUses` times, or its supplier revoked its id.
    error EscrowCouponUsedUp(uint256 id, uint256 maxUses);
    /// @notice The coupon is for another listing or product.
    error EscrowCouponForeign(uint256 listingId);
    /// @notice The coupon is bound to another buyer.
    error EscrowCouponNotYours(address buyer);
    /// @notice The coupon was not signed by the listing's supplier, or was changed after it was.
    error EscrowBadSignature();
    /// @notice The coupon's amount off is not below the price it comes out of.
    error EscrowCouponTooLarge(uint256 amountOff, uint256 price);
    /// @notice The arbiter is a party to the order (buyer, supplier, a delivery key the supplier
    ///         named and that accepted, or the reseller).
    error EscrowArbiterIsParty(address arbiter);
    /// @notice A window (delivery, dispute or arbitration) is outside its bounds.
    error EscrowBadWindow(string name, uint256 value, uint256 min, uint256 max);
    /// @notice The caller was not proposed as a delivery key by this supplier.
    error EscrowNotProposed(address supplier, address key);
    /// @notice An arbiter may not become a delivery key (it would become a party to disputes).
    error EscrowKeyIsArbiter(address key);
    /// @notice A batch was built for other indexes than the listing's next ones.
    error EscrowBatchOutOfOrder(uint256 listingId, uint256 firstIndex, uint256 committed);
    /// @notice An order's amount would not fit the 96-bit ledger that pays it out.
    error EscrowAmountTooLarge(uint256 amount, uint256 max);
    /// @notice A bad-code proof failed at the named step (element, index, batch, leaf).
    error EscrowBadProof(uint256 orderId, string step);
    /// @notice The released code matches its commitment: there is no misbehaviour to prove.
    error EscrowCodeMatches(uint256 orderId, uint256 index);
    /// @notice The order's listing requires on-chain delivery: use deliverOnChain.
    error EscrowReleaseRequired(uint256 orderId);
    /// @notice The published release does not hash to the digest posted for the order.
    error EscrowReleaseMismatch(uint256 orderId);
    /// @notice An order of an on-chain-delivery listing may hold at most `max` codes.
    error EscrowQuantityTooLarge(uint256 quantity, uint256 max);

    // ------------------------------------------------------------------ events: ERC-1497

    /// @notice ERC-1497: the listing's terms (`metaEvidenceID` is the listing id).
    event MetaEvidence(uint256 indexed _metaEvidenceID, string _evidence);
    /// @notice ERC-1497: a dispute was raised (`disputeID` and `evidenceGroupID` are the order id).
    event Dispute(
        address indexed _arbitrator,
        uint256 indexed _disputeID,
        uint256 _metaEvidenceID,
        uint256 _evidenceGroupID
    );
    /// @notice ERC-1497: evidence was submitted for an order.
    event Evidence(
        address indexed _arbitrator,
        uint256 indexed _evidenceGroupID,
        address indexed _party,
        string _evidence
    );
    /// @notice ERC-792/1497: a ruling was given. `_ruling` is the buyer's share in basis points.
    event Ruling(address indexed _arbitrator, uint256 indexed _disputeID, uint256 _ruling);

    // ------------------------------------------------------------------ events: kameng

    /// @notice Platform settings changed.
    event ConfigUpdated(Config config);
    /// @notice A payment token was allowed or disallowed.
    event TokenAllowed(address indexed token, bool allowed);
    /// @notice A licensed-product authorization was granted (nonzero attestation) or revoked.
    event SkuAuthorized(address indexed supplier, bytes32 indexed sku, bytes32 attestationHash);
    /// @notice A delivery key became active (it accepted the supplier's proposal) or was removed
    ///         (by the supplier or by the key itself).
    event DeliveryKeySet(address indexed supplier, address indexed key, bool enabled);
    /// @notice A supplier proposed a delivery key; it becomes active when the key accepts.
    event DeliveryKeyProposed(address indexed supplier, address indexed key);
    /// @notice A supplier's bond changed by a deposit.
    event BondDeposited(
        address indexed supplier, address indexed token, uint256 amount, uint256 free, uint256 reserved
    );
    /// @notice A supplier withdrew free bond.
    event BondWithdrawn(
        address indexed supplier,
        address indexed token,
        uint256 amount,
        address to,
        uint256 free,
        uint256 reserved
    );
    /// @notice A listing was created.
    event ListingCreated(
        uint256 indexed listingId,
        address indexed supplier,
        bytes32 indexed sku,
        address token,
        uint256 unitPrice,
        uint32 deliveryWindow,
        uint32 disputeWindow,
        uint16 bondBps,
        uint16 feeBps,
        uint32 arbitrationWindow,
        string metadataURI
    );
    /// @notice A listing's price, activity or fee terms changed.
    event ListingUpdated(uint256 indexed listingId, uint256 unitPrice, bool active, uint16 feeBps);
    /// @notice A supplier opened a listing to resellers at `resellerPrice` a unit (what it receives
    ///         before the platform fee), or closed it to them (zero).
    event ResellerPriceSet(uint256 indexed listingId, uint256 resellerPrice);
    /// @notice A reseller put a listing in its shop at `price` a unit, or took it out (zero).
    event ShopPriceSet(address indexed reseller, uint256 indexed listingId, uint256 price);
    /// @notice A listing's volume tiers (批发价) changed: from `minQuantities[i]` units an order
    ///         pays `discountsBps[i]` basis points less a unit. Empty lists remove the tiers.
    event TiersSet(uint256 indexed listingId, uint32[] minQuantities, uint16[] discountsBps);
    /// @notice A supplier ended every coupon numbered `id`.
    event CouponRevoked(address indexed supplier, uint64 indexed id);
    /// @notice A batch of code commitments was appended to a listing.
    event BatchCommitted(
        uint256 indexed listingId,
        uint256 indexed batchIndex,
        bytes32 root,
        uint32 firstIndex,
        uint32 count,
        uint32 committed
    );
    /// @notice An order was paid into escrow. With `state = Paid` and `releaseDigest = 0` its
    ///         fields are the stored Order. The listing id and the first code index are
    ///         `orderId >> 32` and `orderId & 0xffffffff`.
    event OrderPaid(
        uint256 indexed orderId,
        address indexed buyer,
        bytes32 buyerPubKey,
        address supplier,
        address token,
        address reseller,
        uint128 amount,
        uint128 bond,
        uint32 quantity,
        uint16 feeBps,
        uint128 resellerCut,
        uint32 disputeWindow,
        uint40 deadline
    );
    /// @notice An order was delivered: `releaseDigest` binds the sealed release sent off-chain.
    ///         The dispute window now ends at this block's timestamp + the order's disputeWindow.
    event OrderDelivered(uint256 indexed orderId, bytes32 releaseDigest);
    /// @notice The sealed release of an order delivered with `deliverOnChain`, emitted right after
    ///         its OrderDelivered; it hashes to that event's digest.
    event ReleasePublished(
        uint256 indexed orderId, bytes sealedRelease, bytes32 elementRoot, bytes32 keyHash, bytes proofs
    );
    /// @notice From now on every order of the listing is delivered on-chain (orders from code
    ///         index `onChainFrom - 1` on); this never changes back.
    event OnChainReleaseRequired(uint256 indexed listingId, uint32 onChainFrom);
    /// @notice The buyer confirmed an order: it is complete. The platform's fees grew by
    ///         fee = amount * feeBps / 10000, the reseller's balance by its cut net of its share
    ///         of the fee (commission = resellerCut - resellerCut * feeBps / 10000) and the
    ///         supplier's by the rest, amount - fee - commission; the order's bond reservation was
    ///         freed.
    event OrderConfirmed(uint256 indexed orderId);
    /// @notice An order was settled after its dispute window passed: the same payouts as
    ///         OrderConfirmed.
    event OrderSettled(uint256 indexed orderId);
    /// @notice A `deliver` batch skipped an order that had already finished (refunded) or never
    ///         existed; the rest of the batch went on.
    event DeliverySkipped(uint256 indexed orderId);
    /// @notice A `settle` batch skipped an order that had already finished (confirmed, settled
    ///         or resolved) or never existed; the rest of the batch went on.
    event SettlementSkipped(uint256 indexed orderId);
    /// @notice An undelivered order was refunded in full after its delivery deadline.
    event OrderRefunded(uint256 indexed orderId, uint256 amount);
    /// @notice The buyer opened a dispute.
    event DisputeOpened(
        uint256 indexed orderId, uint40 arbitrationDeadline, string evidenceURI, bytes32 evidenceHash
    );
    /// @notice A party added evidence to a dispute.
    event EvidenceAdded(uint256 indexed orderId, address indexed party, string uri, bytes32 evidenceHash);
    /// @notice A dispute was resolved, by an arbiter or by the timeout fallback (arbiter zero).
    event DisputeRuled(
        uint256 indexed orderId,
        address indexed arbiter,
        uint16 buyerBps,
        uint16 slashBps,
        uint256 buyerAmount,
        uint256 supplierAmount,
        uint256 slashed,
        bytes32 bundleHash,
        bytes32 reason
    );
    /// @notice The platform's fees in a token were withdrawn.
    event FeesWithdrawn(address indexed token, address to, uint256 amount);
    /// @notice An account withdrew its balance.
    event Withdrawn(address indexed account, address indexed token, address to, uint256 amount);

    // ------------------------------------------------------------------ admin

    /// @notice Set the platform fee, minimum bond, arbitration window and the bounds of listing
    ///         windows. Applies to listings created (fees: updated) from now on; an order keeps
    ///         the terms it was placed under.
    /// @param config The new settings; feeBps is at most 5,000 and minBondBps at most 10,000;
    ///        1 hour <= arbitrationWindow <= 90 days; 1 minute <= minDeliveryWindow <=
    ///        maxDeliveryWindow <= 365 days; 1 hour <= minDisputeWindow <= maxDisputeWindow <= 365 days.
    function setConfig(Config calldata config) external;

    /// @notice Allow or disallow an ERC-20 payment token. The native coin (address 0) is always allowed.
    /// @param token The token.
    /// @param allowed Whether new listings may use it.
    function setTokenAllowed(address token, bool allowed) external;

    /// @notice Grant or revoke the licensed-product authorization for (supplier, sku).
    /// @param supplier The supplier.
    /// @param sku The product id.
    /// @param attestationHash Hash of the rights holder's attestation; zero revokes.
    function authorize(address supplier, bytes32 sku, bytes32 attestationHash) external;

    /// @notice Close a listing whose authorization was revoked. Rights admin only.
    /// @param listingId The listing.
    function closeListing(uint256 listingId) external;

    /// @notice Stop new listings, batches and orders. Withdrawals and settlement go on.
    function pause() external;

    /// @notice Lift a pause.
    function unpause() external;

    // ------------------------------------------------------------------ supplier

    /// @notice Deposit bond in `token` (address 0 for the native coin, sent as value). Free plus
    ///         reserved bond may not exceed 2^80 - 1, so that no returned reservation can overflow.
    /// @param token The bond token; it must match the token of the listings it backs.
    /// @param amount The amount; must equal msg.value for the native coin.
    function depositBond(address token, uint256 amount) external payable;

    /// @notice Withdraw free (unreserved) bond.
    /// @param token The bond token.
    /// @param amount The amount to withdraw.
    /// @param to The recipient.
    function withdrawBond(address token, uint256 amount, address to) external;

    /// @notice Propose (`enabled`) or remove a key that may deliver the caller's orders. A
    ///         proposed key acts only after it accepts with `acceptDeliveryKey`, so nobody is made
    ///         a party to a supplier's orders without its consent. Removal is immediate.
    /// @param key The delivery key's address.
    /// @param enabled True to propose it, false to remove it (active or proposed).
    function setDeliveryKey(address key, bool enabled) external;

    /// @notice Accept a supplier's proposal: the caller becomes one of its delivery keys. An
    ///         account holding the arbiter role may not accept.
    /// @param supplier The supplier that proposed the caller.
    function acceptDeliveryKey(address supplier) external;

    /// @notice Stop being a delivery key of `supplier` (active or proposed). The key itself only.
    /// @param supplier The supplier.
    function resignDeliveryKey(address supplier) external;

    /// @notice Open a listing for an authorized sku.
    /// @param sku The product id.
    /// @param token The payment token (address 0 for the native coin).
    /// @param unitPrice Price per code.
    /// @param deliveryWindow Seconds the supplier has to deliver after payment (within the
    ///        configured bounds).
    /// @param disputeWindow Seconds the buyer has to dispute after delivery (within the
    ///        configured bounds).
    /// @param bondBps Bond reserved per order, in basis points of its amount (at least the minimum).
    /// @param metadataURI Where the listing's description lives.
    /// @return listingId The new listing's id (counting from 1).
    function createListing(
        bytes32 sku,
        address token,
        uint96 unitPrice,
        uint32 deliveryWindow,
        uint32 disputeWindow,
        uint16 bondBps,
        string calldata metadataURI
    ) external returns (uint256 listingId);

    /// @notice Change a listing's price or open and close it. Open orders keep their terms.
    /// @param listingId The listing.
    /// @param unitPrice The new price.
    /// @param active Whether it takes new orders.
    function updateListing(uint256 listingId, uint96 unitPrice, bool active) external;

    /// @notice Open a listing to resellers (分站): any address may then sell it in its shop at a
    ///         price of its own, at least `resellerPrice`; the supplier's part of each such sale
    ///         is `resellerPrice` a unit and the reseller's the difference, each less its share
    ///         of the platform fee. Zero closes the listing to resellers. Open orders keep their
    ///         terms (docs/PROTOCOL.md, "Resellers").
    /// @param listingId The listing (the caller's).
    /// @param resellerPrice What the supplier receives a unit from a reseller's sale, or zero.
    function setResellerPrice(uint256 listingId, uint96 resellerPrice) external;

    /// @notice Put a listing in the caller's shop at `price` a unit, or take it out (zero). Any
    ///         address may keep a shop; the price must be at least the listing's reseller price.
    /// @param listingId A listing its supplier opened to resellers.
    /// @param price The unit price the shop's buyers pay, or zero.
    function setShopPrice(uint256 listingId, uint96 price) external;

    /// @notice Set a listing's volume tiers (批发价): an order of at least `minQuantities[i]`
    ///         units pays `discountsBps[i]` basis points less a unit, the largest break it
    ///         reaches counting. The discount applies to whatever unit price the order pays (the
    ///         listing's, or a shop's) and to the supplier's reseller price alike, so a
    ///         reseller's margin shrinks in the same proportion. At most `MAX_TIERS` breaks, each
    ///         of at least 2 units, breaks and discounts strictly increasing, discounts under
    ///         100%; empty lists remove the tiers. Open orders keep the price they paid.
    /// @param listingId The listing (the caller's).
    /// @param minQuantities The quantity from which each tier applies.
    /// @param discountsBps Each tier's discount in basis points of the unit price.
    function setTiers(uint256 listingId, uint32[] calldata minQuantities, uint16[] calldata discountsBps) external;

    /// @notice Promise on-chain delivery for every later order of a listing: from the next code
    ///         index sold, orders must be delivered with `deliverOnChain` and hold at most
    ///         MAX_ON_CHAIN_QUANTITY codes. One way: it cannot be withdrawn. Supplier only; a
    ///         second call changes nothing.
    /// @param listingId The listing.
    function requireOnChainRelease(uint256 listingId) external;

    /// @notice Append a batch of committed codes to a listing's stock.
    /// @param listingId The listing.
    /// @param root Merkle root over the batch's leaves (see docs/PROTOCOL.md).
    /// @param count Number of codes in the batch.
    /// @param firstIndex The index the batch's first leaf binds; must equal the listing's
    ///        committed count, so a batch built for other indexes can never land.
    /// @return batchIndex The batch's index within the listing.
    function commitBatch(uint256 listingId, bytes32 root, uint32 count, uint32 firstIndex)
        external
        returns (uint256 batchIndex);

    // ------------------------------------------------------------------ buyer

    /// @notice Pay for `quantity` codes into escrow.
    /// @param listingId The listing.
    /// @param quantity Number of codes (wholesale buyers take many).
    /// @param maxUnitPrice The highest unit price the buyer accepts.
    /// @param reseller Address 0 to buy at the listing's price, or the reseller whose shop the
    ///        buyer buys from, at the shop's price; the reseller's margin is fixed in the order.
    ///        Any address may be the reseller, the buyer's own included (docs/PROTOCOL.md,
    ///        "Resellers": the supplier still receives its reseller price).
    /// @param buyerPubKey The buyer's per-order X25519 public key.
    /// @return orderId The order's id: `listingId << 32 | firstIndex`.
    function buy(
        uint256 listingId,
        uint32 quantity,
        uint256 maxUnitPrice,
        address reseller,
        bytes32 buyerPubKey
    ) external payable returns (uint256 orderId);

    /// @notice `buy` with a coupon of the listing's supplier: its percentage comes off the unit
    ///         price after any volume tier, then its amount off, and `maxUnitPrice` bounds the
    ///         price after both. The coupon's use is counted in the same transaction.
    /// @param listingId The listing.
    /// @param quantity Number of codes.
    /// @param maxUnitPrice The highest unit price the buyer accepts, after the discounts.
    /// @param reseller Address 0, or the reseller whose shop the buyer buys from (as in `buy`).
    /// @param buyerPubKey The buyer's per-order X25519 public key.
    /// @param coupon The coupon, as its supplier signed it.
    /// @param r The signature's r.
    /// @param vs The signature's s with v's parity in the top bit (EIP-2098 compact form).
    /// @return orderId The order's id.
    function buyWithCoupon(
        uint256 listingId,
        uint32 quantity,
        uint256 maxUnitPrice,
        address reseller,
        bytes32 buyerPubKey,
        Coupon calldata coupon,
        bytes32 r,
        bytes32 vs
    ) external payable returns (uint256 orderId);

    /// @notice End every coupon the caller signed with number `id`, however many uses it had
    ///         left. For a coupon that leaked; one way.
    /// @param id The coupons' number.
    function revokeCoupon(uint64 id) external;

    /// @notice Confirm receipt: the supplier, the reseller (if any) and the platform's fee are
    ///         credited their parts of the payment, and the bond reservation is freed.
    /// @param orderId The order.
    /// @param order The order as stored.
    function confirm(uint256 orderId, Order calldata order) external;

    /// @notice Reclaim the whole payment of an order not delivered by its deadline.
    /// @param orderId The order.
    /// @param order The order as stored.
    function refund(uint256 orderId, Order calldata order) external;

    /// @notice Open a dispute on a delivered order within its dispute window. Buyer only.
    /// @param orderId The order.
    /// @param order The order as stored.
    /// @param evidenceURI Where the buyer's evidence lives.
    /// @param evidenceHash Hash of that evidence.
    function dispute(
        uint256 orderId,
        Order calldata order,
        string calldata evidenceURI,
        bytes32 evidenceHash
    ) external;

    /// @notice Add evidence to an open dispute. Buyer, supplier or its delivery keys.
    /// @param orderId The order.
    /// @param order The order as stored.
    /// @param evidenceURI Where the evidence lives.
    /// @param evidenceHash Hash of that evidence.
    function addEvidence(
        uint256 orderId,
        Order calldata order,
        string calldata evidenceURI,
        bytes32 evidenceHash
    ) external;

    // ------------------------------------------------------------------ delivery and settlement

    /// @notice Post the digests of sealed releases for paid orders. Supplier or its delivery key.
    ///         An order that has already finished (refunded) is skipped with DeliverySkipped, so
    ///         a refund racing the batch cannot revert it; a batch in which every order was
    ///         skipped reverts EscrowUnknownOrder(orderIds[0]).
    /// @param orderIds The orders.
    /// @param orders The orders as stored.
    /// @param releaseDigests For each order, `keccak256` of its sealed release.
    /// @return delivered How many orders were delivered (the rest were skipped).
    function deliver(
        uint256[] calldata orderIds,
        Order[] calldata orders,
        bytes32[] calldata releaseDigests
    ) external returns (uint256 delivered);

    /// @notice Settle delivered orders whose dispute windows have passed. Anyone may call. An
    ///         order that has already finished is skipped with SettlementSkipped, so nobody can
    ///         make a batch revert by settling or confirming one of its orders first; a batch in
    ///         which every order was skipped reverts EscrowUnknownOrder(orderIds[0]).
    /// @param orderIds The orders.
    /// @param orders The orders as stored.
    /// @return settled How many orders were settled (the rest were skipped).
    function settle(uint256[] calldata orderIds, Order[] calldata orders) external returns (uint256 settled);

    /// @notice Deliver paid orders with their sealed releases in the transaction itself: each is
    ///         emitted as ReleasePublished, so any node can serve it to the buyer later, with no
    ///         kameng backend. Supplier or its delivery key; skips finished orders as `deliver`
    ///         does. Required for the orders of a listing that called `requireOnChainRelease`.
    /// @param orderIds The orders.
    /// @param orders The orders as stored.
    /// @param releaseDigests For each order, its release digest (release v2).
    /// @param releases For each order, its sealed release and the rest of the digest's preimage;
    ///        reverts EscrowReleaseMismatch(orderId) when they do not hash to the digest.
    /// @return delivered How many orders were delivered (the rest were skipped).
    function deliverOnChain(
        uint256[] calldata orderIds,
        Order[] calldata orders,
        bytes32[] calldata releaseDigests,
        PublishedRelease[] calldata releases
    ) external returns (uint256 delivered);

    // ------------------------------------------------------------------ arbitration

    /// @notice Rule on a dispute. Arbiter role; never a party to the order.
    /// @param orderId The order.
    /// @param order The order as stored.
    /// @param buyerBps The buyer's share of the payment, in basis points.
    /// @param slashBps Share of the reserved bond paid to the buyer, in basis points.
    /// @param bundleHash Hash of the evidence bundle the ruling cites.
    /// @param reason A short reason code (for example "code-already-redeemed").
    function rule(
        uint256 orderId,
        Order calldata order,
        uint16 buyerBps,
        uint16 slashBps,
        bytes32 bundleHash,
        bytes32 reason
    ) external;

    /// @notice Win without a judge: prove that a released code does not match the commitment
    ///         the supplier put on-chain for its index, or that a released element cannot be a
    ///         code at all (its ciphertext is empty or longer than 256 bytes: a commitment binds a
    ///         code of 1 to 256 bytes, docs/PROTOCOL.md). The buyer gets the whole payment and the
    ///         whole bond reservation; the order is resolved (DisputeRuled with this contract as
    ///         arbiter and reason "bad-code-proven"). Buyer only, while Delivered (within the
    ///         dispute window) or Disputed. The proof reveals that one code, which by the claim is
    ///         not the code that was sold.
    /// @param orderId The order.
    /// @param order The order as stored.
    /// @param proof The proof; see BadCodeProof.
    function proveBadCode(uint256 orderId, Order calldata order, BadCodeProof calldata proof) external;

    /// @notice Apply the fallback to a dispute nobody ruled on by its arbitration deadline:
    ///         the payment is split equally and the bond reservation is freed. Anyone may call.
    /// @param orderId The order.
    /// @param order The order as stored.
    function resolveTimedOut(uint256 orderId, Order calldata order) external;

    // ------------------------------------------------------------------ balances

    /// @notice Withdraw the caller's whole balance of `token` to `to` (including any part of it
    ///         that did not fit the packed 96-bit ledger slot).
    /// @param token The token (address 0 for the native coin).
    /// @param to The recipient.
    function withdraw(address token, address to) external;

    /// @notice Withdraw the platform's accumulated fees in `token`. Admin only.
    /// @param token The token.
    /// @param to The recipient.
    function withdrawFees(address token, address to) external;

    // ------------------------------------------------------------------ views

    /// @notice Raw storage words of this contract, for readers that decode its storage layout
    ///         (published in the compiled artifact's `storageLayout` and docs/PROTOCOL.md,
    ///         "Reading state from storage"): listings, batches, order hashes, ledgers, bonds,
    ///         authorizations, delivery keys, the settings, fees, the listing count, reseller
    ///         prices and shop prices. One call
    ///         reads any number of slots from one state.
    /// @param slots The storage slots to read.
    /// @return words The word stored in each slot, in the order asked.
    function extsload(bytes32[] calldata slots) external view returns (bytes32[] memory words);

    /// @notice Hash an order the way the contract stores it.
    /// @param order The order.
    /// @return The hash.
    function hashOrder(Order calldata order) external pure returns (bytes32);
}
