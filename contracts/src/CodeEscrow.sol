// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";

import {BadCodeVerifier} from "./BadCodeVerifier.sol";
import {ICodeEscrow} from "./interfaces/ICodeEscrow.sol";

/// @title CodeEscrow
/// @notice One shared escrow for every kameng trade. See ICodeEscrow and docs/PROTOCOL.md.
contract CodeEscrow is ICodeEscrow, AccessControlDefaultAdminRules, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice May grant and revoke licensed-product authorizations and close listings.
    bytes32 public constant RIGHTS_ADMIN_ROLE = keccak256("RIGHTS_ADMIN_ROLE");
    /// @notice May rule on disputes.
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");
    /// @notice May pause and unpause.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice Most codes in one order of a listing that delivers on-chain: keeps a release
    ///         (at most about 300 bytes a code) well inside one transaction.
    uint256 public constant MAX_ON_CHAIN_QUANTITY = 32;
    /// @notice The most volume-tier breaks a listing carries (with its base price, four tiers).
    uint256 public constant MAX_TIERS = 3;

    /// @notice EIP-712 type hash of a `Coupon` (domain: name "kameng", version "1", this chain,
    ///         this contract).
    bytes32 public constant COUPON_TYPEHASH = keccak256(
        "Coupon(uint256 listingId,bytes32 sku,address buyer,uint16 discountBps,uint96 amountOff,uint32 maxUses,uint40 expiry,uint64 id)"
    );
    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// @dev A revoked coupon id's use count.
    uint256 private constant _REVOKED = type(uint32).max;

    uint256 private constant _BPS = 10_000;
    /// @dev Bit offsets in a Listing's first storage word (supplier at 0) and third
    ///      (deliveryWindow at 0), which `buy` reads once each; tests/contracts/test_storage_layout.py
    ///      checks them against the compiler's storageLayout.
    uint256 private constant _COMMITTED_SHIFT = 160;
    uint256 private constant _SOLD_SHIFT = 192;
    uint256 private constant _BOND_BPS_SHIFT = 224;
    uint256 private constant _ACTIVE_SHIFT = 240;
    uint256 private constant _DISPUTE_WINDOW_SHIFT = 32;
    uint256 private constant _FEE_BPS_SHIFT = 96;
    uint256 private constant _ON_CHAIN_FROM_SHIFT = 144;
    uint256 private constant _TIERED_SHIFT = 176;
    /// @dev Bounds on the bounds: no configuration can make a window shorter or longer than these.
    /// @dev Delay before a new default admin can accept the role (two-step transfer).
    uint48 private constant _ADMIN_TRANSFER_DELAY = 2 days;
    /// @dev Free + reserved bond never exceeds this, so a reservation returned to free always fits.
    uint256 private constant _MAX_BOND = type(uint80).max;
    /// @dev Delivery-key status per (supplier, key).
    uint8 private constant _KEY_PROPOSED = 1;
    uint8 private constant _KEY_ACTIVE = 2;

    /// @dev One slot per (account, token): the withdrawable balance and, for suppliers, the bond.
    ///      slot: balance (96) | bondFree (80) | bondReserved (80). Packing them lets a settlement
    ///      pay the supplier and free its bond with one storage write. A credit that would not fit
    ///      the 96-bit balance goes to `_overflow` instead (credits never revert, so no party can
    ///      block another's payout); `depositBond` keeps free + reserved within 80 bits, so
    ///      moving bond between free and reserved never overflows.
    struct Ledger {
        uint96 balance;
        uint80 bondFree;
        uint80 bondReserved;
    }

    /// @dev Checks bad-code proofs (deployed by the constructor; pure, stateless). Kept in storage
    ///      rather than as an immutable so that the runtime code is exactly the artifact's
    ///      deployedBytecode, which evidence bundles check byte for byte; only proveBadCode reads it.
    BadCodeVerifier private _verifier;

    Config private _config;
    uint64 private _listingCount;

    mapping(uint256 listingId => Listing) private _listings;
    mapping(uint256 listingId => mapping(uint256 batchIndex => Batch)) private _batches;
    mapping(uint256 orderId => bytes32 orderHash) private _orderHashes;
    mapping(address account => mapping(address token => Ledger)) private _ledgers;
    mapping(address supplier => mapping(bytes32 sku => bytes32 attestationHash)) private _authorizations;
    mapping(address supplier => mapping(address key => uint8 status)) private _deliveryKeys;
    mapping(address account => mapping(address token => uint256)) private _overflow;
    mapping(address token => bool) private _tokenAllowed;
    mapping(address token => uint256) private _fees;
    mapping(uint256 listingId => uint256 resellerPrice) private _resellerPrices;
    mapping(address reseller => mapping(uint256 listingId => uint256 price)) private _shopPrices;
    /// @dev Tier i in bits [48i, 48i + 48): the minimum quantity (32 bits) above the discount in
    ///      basis points (16 bits); a zero minimum ends the list. Read only if `Listing.tiered`.
    mapping(uint256 listingId => uint256 packed) private _tiers;
    /// @dev Coupon uses: eight 32-bit counters a word, coupon id i in word i >> 3 at bits
    ///      [32 (i & 7), 32 (i & 7) + 32); `_REVOKED` marks a revoked id.
    mapping(address supplier => mapping(uint256 word => uint256 packed)) private _couponUses;
    /// @dev A checked coupon's discounts (amountOff << 16 | discountBps) from `buyWithCoupon` to
    ///      the `buy` it runs; `buy` clears it.
    uint256 private transient _couponTerms;

    /// @notice Deploy with an admin and the first platform settings.
    /// @param admin Holder of every role at deployment; it may hand them on.
    /// @param initialConfig The platform settings.
    ///      The default admin role moves only in two steps with a delay
    ///      (AccessControlDefaultAdminRules: beginDefaultAdminTransfer, then acceptDefaultAdminTransfer).
    constructor(address admin, Config memory initialConfig)
        AccessControlDefaultAdminRules(_ADMIN_TRANSFER_DELAY, admin)
    {
        _verifier = new BadCodeVerifier();
        _grantRole(RIGHTS_ADMIN_ROLE, admin);
        _grantRole(ARBITER_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        _setConfig(initialConfig);
    }

    // ================================================================== admin

    /// @inheritdoc ICodeEscrow
    function setConfig(Config calldata newConfig) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setConfig(newConfig);
    }

    /// @inheritdoc ICodeEscrow
    function setTokenAllowed(address token, bool allowed) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (token == address(0)) revert EscrowBadArgument("token");
        _tokenAllowed[token] = allowed;
        emit TokenAllowed(token, allowed);
    }

    /// @inheritdoc ICodeEscrow
    function authorize(address supplier, bytes32 sku, bytes32 attestationHash)
        external
        onlyRole(RIGHTS_ADMIN_ROLE)
    {
        if (supplier == address(0)) revert EscrowBadArgument("supplier");
        if (sku == bytes32(0)) revert EscrowBadArgument("sku");
        _authorizations[supplier][sku] = attestationHash;
        emit SkuAuthorized(supplier, sku, attestationHash);
    }

    /// @inheritdoc ICodeEscrow
    function closeListing(uint256 listingId) external onlyRole(RIGHTS_ADMIN_ROLE) {
        Listing storage listing = _existingListing(listingId);
        listing.active = false;
        emit ListingUpdated(listingId, listing.unitPrice, false, listing.feeBps);
    }

    /// @inheritdoc ICodeEscrow
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc ICodeEscrow
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ================================================================== supplier

    /// @inheritdoc ICodeEscrow
    function depositBond(address token, uint256 amount) external payable nonReentrant {
        if (amount == 0) revert EscrowBadArgument("amount");
        if (token != address(0) && !_tokenAllowed[token]) revert EscrowTokenNotAllowed(token);
        Ledger storage ledger = _ledgers[msg.sender][token];
        uint256 total = uint256(ledger.bondFree) + ledger.bondReserved + amount;
        if (total > _MAX_BOND) revert EscrowAmountTooLarge(total, _MAX_BOND);
        _pullPayment(token, amount);
        ledger.bondFree = uint80(ledger.bondFree + amount);
        emit BondDeposited(msg.sender, token, amount, ledger.bondFree, ledger.bondReserved);
    }

    /// @inheritdoc ICodeEscrow
    function withdrawBond(address token, uint256 amount, address to) external nonReentrant {
        if (amount == 0) revert EscrowBadArgument("amount");
        if (to == address(0)) revert EscrowBadArgument("to");
        Ledger storage ledger = _ledgers[msg.sender][token];
        uint256 free = ledger.bondFree;
        if (free < amount) revert EscrowBondShort(msg.sender, token, amount, free);
        ledger.bondFree = uint80(free - amount);
        emit BondWithdrawn(msg.sender, token, amount, to, free - amount, ledger.bondReserved);
        _pushPayment(token, to, amount);
    }

    /// @inheritdoc ICodeEscrow
    function setDeliveryKey(address key, bool enabled) external {
        if (key == address(0) || key == msg.sender) revert EscrowBadArgument("key");
        if (enabled) {
            if (_deliveryKeys[msg.sender][key] == _KEY_ACTIVE) return;
            _deliveryKeys[msg.sender][key] = _KEY_PROPOSED;
            emit DeliveryKeyProposed(msg.sender, key);
        } else {
            _removeDeliveryKey(msg.sender, key);
        }
    }

    /// @inheritdoc ICodeEscrow
    function acceptDeliveryKey(address supplier) external {
        if (_deliveryKeys[supplier][msg.sender] != _KEY_PROPOSED) revert EscrowNotProposed(supplier, msg.sender);
        if (hasRole(ARBITER_ROLE, msg.sender)) revert EscrowKeyIsArbiter(msg.sender);
        _deliveryKeys[supplier][msg.sender] = _KEY_ACTIVE;
        emit DeliveryKeySet(supplier, msg.sender, true);
    }

    /// @inheritdoc ICodeEscrow
    function resignDeliveryKey(address supplier) external {
        if (_deliveryKeys[supplier][msg.sender] == 0) revert EscrowNotProposed(supplier, msg.sender);
        _removeDeliveryKey(supplier, msg.sender);
    }

    /// @inheritdoc ICodeEscrow
    function createListing(
        bytes32 sku,
        address token,
        uint96 unitPrice,
        uint32 deliveryWindow,
        uint32 disputeWindow,
        uint16 bondBps,
        string calldata metadataURI
    ) external whenNotPaused returns (uint256 listingId) {
        if (_authorizations[msg.sender][sku] == bytes32(0)) revert EscrowNotAuthorized(msg.sender, sku);
        if (token != address(0) && !_tokenAllowed[token]) revert EscrowTokenNotAllowed(token);
        if (unitPrice == 0) revert EscrowBadArgument("unitPrice");
        Config memory cfg = _config;
        _checkWindow("deliveryWindow", deliveryWindow, cfg.minDeliveryWindow, cfg.maxDeliveryWindow);
        _checkWindow("disputeWindow", disputeWindow, cfg.minDisputeWindow, cfg.maxDisputeWindow);
        if (bondBps < cfg.minBondBps || bondBps > _BPS) revert EscrowBadBps(bondBps);

        listingId = ++_listingCount;
        _listings[listingId] = Listing({
            supplier: msg.sender,
            committed: 0,
            sold: 0,
            bondBps: bondBps,
            active: true,
            token: token,
            unitPrice: unitPrice,
            deliveryWindow: deliveryWindow,
            disputeWindow: disputeWindow,
            batchCount: 0,
            feeBps: cfg.feeBps,
            arbitrationWindow: cfg.arbitrationWindow,
            onChainFrom: 0,
            tiered: false,
            sku: sku
        });
        emit ListingCreated(
            listingId,
            msg.sender,
            sku,
            token,
            unitPrice,
            deliveryWindow,
            disputeWindow,
            bondBps,
            cfg.feeBps,
            cfg.arbitrationWindow,
            metadataURI
        );
        emit MetaEvidence(listingId, metadataURI);
    }

    /// @inheritdoc ICodeEscrow
    function updateListing(uint256 listingId, uint96 unitPrice, bool active) external {
        Listing storage listing = _existingListing(listingId);
        if (listing.supplier != msg.sender) revert EscrowWrongCaller(msg.sender);
        if (unitPrice == 0) revert EscrowBadArgument("unitPrice");
        if (active) {
            if (paused()) revert EnforcedPause();
            if (_authorizations[msg.sender][listing.sku] == bytes32(0)) {
                revert EscrowNotAuthorized(msg.sender, listing.sku);
            }
        }
        listing.unitPrice = unitPrice;
        listing.active = active;
        // Re-pricing a listing also moves it onto the platform's current fee.
        uint16 feeBps = _config.feeBps;
        listing.feeBps = feeBps;
        emit ListingUpdated(listingId, unitPrice, active, feeBps);
    }

    /// @inheritdoc ICodeEscrow
    function setResellerPrice(uint256 listingId, uint96 resellerPrice) external {
        if (_existingListing(listingId).supplier != msg.sender) revert EscrowWrongCaller(msg.sender);
        _resellerPrices[listingId] = resellerPrice;
        emit ResellerPriceSet(listingId, resellerPrice);
    }

    /// @inheritdoc ICodeEscrow
    function setShopPrice(uint256 listingId, uint96 price) external {
        _existingListing(listingId);
        if (price != 0) {
            uint256 resellerPrice = _resellerPrices[listingId];
            if (resellerPrice == 0) revert EscrowNotDistributable(listingId);
            if (price < resellerPrice) revert EscrowBelowResellerPrice(listingId, price, resellerPrice);
        }
        _shopPrices[msg.sender][listingId] = price;
        emit ShopPriceSet(msg.sender, listingId, price);
    }

    /// @inheritdoc ICodeEscrow
    function setTiers(uint256 listingId, uint32[] calldata minQuantities, uint16[] calldata discountsBps) external {
        Listing storage listing = _existingListing(listingId);
        if (listing.supplier != msg.sender) revert EscrowWrongCaller(msg.sender);
        uint256 n = minQuantities.length;
        if (n > MAX_TIERS || discountsBps.length != n) revert EscrowBadTiers(MAX_TIERS);
        uint256 packed = 0;
        uint256 lastQuantity = 1;
        uint256 lastDiscount = 0;
        for (uint256 i; i < n; ++i) {
            uint256 q = minQuantities[i];
            uint256 d = discountsBps[i];
            if (q <= lastQuantity || d <= lastDiscount || d >= _BPS) revert EscrowBadTiers(i);
            packed |= ((q << 16) | d) << (48 * i);
            (lastQuantity, lastDiscount) = (q, d);
        }
        _tiers[listingId] = packed;
        listing.tiered = n != 0;
        emit TiersSet(listingId, minQuantities, discountsBps);
    }

    /// @inheritdoc ICodeEscrow
    function requireOnChainRelease(uint256 listingId) external {
        Listing storage listing = _existingListing(listingId);
        if (listing.supplier != msg.sender) revert EscrowWrongCaller(msg.sender);
        if (listing.onChainFrom != 0) return;
        uint32 from = listing.sold + 1; // sold < committed <= 2^32 - 1 whenever it can grow
        listing.onChainFrom = from;
        emit OnChainReleaseRequired(listingId, from);
    }

    /// @inheritdoc ICodeEscrow
    function commitBatch(uint256 listingId, bytes32 root, uint32 count, uint32 firstIndex)
        external
        whenNotPaused
        returns (uint256 batchIndex)
    {
        Listing storage listing = _existingListing(listingId);
        if (listing.supplier != msg.sender) revert EscrowWrongCaller(msg.sender);
        if (_authorizations[msg.sender][listing.sku] == bytes32(0)) {
            revert EscrowNotAuthorized(msg.sender, listing.sku);
        }
        if (root == bytes32(0)) revert EscrowBadArgument("root");
        if (count == 0) revert EscrowBadArgument("count");

        if (listing.committed != firstIndex) {
            revert EscrowBatchOutOfOrder(listingId, firstIndex, listing.committed);
        }
        batchIndex = listing.batchCount;
        _batches[listingId][batchIndex] = Batch({root: root, firstIndex: firstIndex, count: count});
        listing.committed = firstIndex + count;
        listing.batchCount = uint32(batchIndex + 1);
        emit BatchCommitted(listingId, batchIndex, root, firstIndex, count, firstIndex + count);
    }

    // ================================================================== buyer

    /// @inheritdoc ICodeEscrow
    function buy(
        uint256 listingId,
        uint32 quantity,
        uint256 maxUnitPrice,
        address reseller,
        bytes32 buyerPubKey
    ) external payable nonReentrant whenNotPaused returns (uint256 orderId) {
        if (quantity == 0) revert EscrowZeroQuantity();
        if (buyerPubKey == bytes32(0)) revert EscrowBadArgument("buyerPubKey");
        Listing storage listing = _listings[listingId];
        // The listing's first word (supplier, committed, sold, bond, active), read once.
        uint256 head;
        assembly ("memory-safe") {
            head := sload(listing.slot)
        }
        address supplier = address(uint160(head));
        if (supplier == address(0)) revert EscrowUnknownListing(listingId);
        if (uint8(head >> _ACTIVE_SHIFT) == 0) revert EscrowListingInactive(listingId);
        uint32 firstIndex = uint32(head >> _SOLD_SHIFT);
        uint256 available;
        unchecked {
            available = uint256(uint32(head >> _COMMITTED_SHIFT)) - firstIndex; // sold <= committed, always
        }
        if (quantity > available) revert EscrowStockShort(listingId, quantity, available);
        // The listing's third word (its windows, fee, on-chain promise and tiers flag), read once.
        uint256 terms;
        assembly ("memory-safe") {
            terms := sload(add(listing.slot, 2))
        }
        if (uint32(terms >> _ON_CHAIN_FROM_SHIFT) != 0 && quantity > MAX_ON_CHAIN_QUANTITY) {
            revert EscrowQuantityTooLarge(quantity, MAX_ON_CHAIN_QUANTITY);
        }
        uint256 unitPrice = listing.unitPrice;
        uint256 resellerPrice;
        if (reseller != address(0)) {
            // The shop's price, of which the supplier receives its reseller price as it is now.
            unitPrice = _shopPrices[reseller][listingId];
            if (unitPrice == 0) revert EscrowNotInShop(reseller, listingId);
            resellerPrice = _resellerPrices[listingId];
            if (resellerPrice == 0) revert EscrowNotDistributable(listingId);
            if (unitPrice < resellerPrice) revert EscrowBelowResellerPrice(listingId, unitPrice, resellerPrice);
        }
        if (uint8(terms >> _TIERED_SHIFT) != 0) {
            uint256 off = _tierDiscount(listingId, quantity);
            unchecked {
                // x - floor(x * off / 10^4) with off < 10^4: at least 1 for x >= 1, and it never
                // decreases as x grows, so the shop's price stays at or above the reseller's.
                unitPrice -= (unitPrice * off) / _BPS;
                resellerPrice -= (resellerPrice * off) / _BPS;
            }
        }
        uint256 couponTerms = _couponTerms;
        if (couponTerms != 0) {
            _couponTerms = 0;
            uint256 couponBps = uint16(couponTerms);
            uint256 couponOff = couponTerms >> 16;
            unchecked {
                // couponBps < 10^4, checked by buyWithCoupon: as for a tier.
                unitPrice -= (unitPrice * couponBps) / _BPS;
                resellerPrice -= (resellerPrice * couponBps) / _BPS;
            }
            // Out of the supplier's part: off the reseller price in a shop, so the margin stays.
            uint256 base = reseller == address(0) ? unitPrice : resellerPrice;
            if (couponOff >= base) revert EscrowCouponTooLarge(couponOff, base);
            unchecked {
                unitPrice -= couponOff; // unitPrice >= base > couponOff
                if (reseller != address(0)) resellerPrice -= couponOff;
            }
        }
        uint256 cut;
        if (reseller != address(0)) {
            unchecked {
                cut = (unitPrice - resellerPrice) * quantity; // < 2^96 * 2^32, and <= amount
            }
        }
        if (unitPrice > maxUnitPrice) revert EscrowPriceAboveMax(unitPrice, maxUnitPrice);
        address token = listing.token;
        uint256 amount;
        uint256 bondAmount;
        unchecked {
            amount = unitPrice * quantity; // < 2^96 * 2^32
        }
        // Every payout of an order is credited to a 96-bit ledger balance; refuse what could not be.
        if (amount > type(uint96).max) revert EscrowAmountTooLarge(amount, type(uint96).max);
        unchecked {
            bondAmount = (amount * uint16(head >> _BOND_BPS_SHIFT)) / _BPS; // < 2^96 * 2^16, and <= amount
        }

        Ledger storage ledger = _ledgers[supplier][token];
        uint256 free = ledger.bondFree;
        if (free < bondAmount) revert EscrowBondShort(supplier, token, bondAmount, free);
        unchecked {
            // free >= bondAmount (above); free + reserved <= _MAX_BOND (depositBond), so moving
            // bond between them cannot overflow; quantity <= available, so sold <= committed.
            ledger.bondFree = uint80(free - bondAmount);
            ledger.bondReserved = uint80(ledger.bondReserved + bondAmount);
        }
        assembly ("memory-safe") {
            // sold += quantity: sold + quantity <= committed < 2^32, so nothing carries out of it.
            sstore(listing.slot, add(head, shl(_SOLD_SHIFT, quantity)))
        }

        Order memory order = Order({
            buyer: msg.sender,
            supplier: supplier,
            token: token,
            reseller: reseller,
            amount: uint128(amount),
            bond: uint128(bondAmount),
            quantity: quantity,
            feeBps: uint16(terms >> _FEE_BPS_SHIFT),
            resellerCut: uint128(cut),
            disputeWindow: uint32(terms >> _DISPUTE_WINDOW_SHIFT),
            deadline: uint40(block.timestamp + uint32(terms)),
            state: OrderState.Paid,
            releaseDigest: bytes32(0)
        });
        orderId = (listingId << 32) | firstIndex;
        bytes32 h;
        assembly ("memory-safe") {
            // A memory struct of static fields is laid out as its ABI encoding: 13 words.
            h := keccak256(order, 0x1a0)
        }
        _orderHashes[orderId] = h;
        emit OrderPaid(
            orderId,
            msg.sender,
            buyerPubKey,
            supplier,
            token,
            reseller,
            order.amount,
            order.bond,
            quantity,
            order.feeBps,
            order.resellerCut,
            order.disputeWindow,
            order.deadline
        );

        _pullPayment(token, amount);
    }

    /// @inheritdoc ICodeEscrow
    function buyWithCoupon(
        uint256 listingId,
        uint32 quantity,
        uint256 maxUnitPrice,
        address reseller,
        bytes32 buyerPubKey,
        Coupon calldata coupon,
        bytes32 r,
        bytes32 vs
    ) external payable returns (uint256 orderId) {
        if (block.timestamp > coupon.expiry) revert EscrowCouponExpired(coupon.expiry);
        if (coupon.listingId != listingId && (coupon.listingId != 0 || coupon.sku != _listings[listingId].sku)) {
            revert EscrowCouponForeign(listingId);
        }
        if (coupon.buyer != address(0) && coupon.buyer != msg.sender) revert EscrowCouponNotYours(msg.sender);
        if (coupon.discountBps >= _BPS) revert EscrowBadBps(coupon.discountBps);
        bytes32 domain = keccak256(
            abi.encode(_DOMAIN_TYPEHASH, keccak256("kameng"), keccak256("1"), block.chainid, address(this))
        );
        bytes32 structHash = COUPON_TYPEHASH;
        assembly ("memory-safe") {
            // hashStruct(coupon): the type hash, then the eight static fields as the ABI laid them
            // out (each field was range-checked when read above or is read as a full word).
            let p := mload(0x40)
            mstore(p, structHash)
            calldatacopy(add(p, 0x20), coupon, 0x100)
            structHash := keccak256(p, 0x120)
        }
        bytes32 digest = MessageHashUtils.toTypedDataHash(domain, structHash);
        // EIP-2098: v's parity in the top bit of vs. A failed recovery gives address 0.
        address signer = ecrecover(
            digest, uint8(27 + (uint256(vs) >> 255)), r, vs & bytes32(uint256(type(uint256).max >> 1))
        );
        address supplier = _listings[listingId].supplier;
        if (supplier == address(0)) revert EscrowUnknownListing(listingId);
        // A failed recovery gives address 0, which is no listing's supplier.
        if (signer != supplier) revert EscrowBadSignature();
        uint256 shift = uint256(coupon.id & 7) << 5;
        mapping(uint256 => uint256) storage uses = _couponUses[supplier];
        uint256 packed = uses[coupon.id >> 3];
        uint256 used = uint32(packed >> shift);
        uint256 limit = coupon.maxUses;
        if (used == _REVOKED || (limit != 0 && used >= limit)) revert EscrowCouponUsedUp(coupon.id, limit);
        // used < limit <= 2^32 - 1: the count stays inside its 32 bits.
        if (limit != 0) uses[coupon.id >> 3] = packed + (1 << shift);
        // `buy` itself, in this call's context (same sender and value), with the discounts held
        // for it in transient storage: one body for every purchase. `buy` takes the reentrancy
        // lock and the pause check, and clears the discounts as it reads them.
        _couponTerms = (uint256(coupon.amountOff) << 16) | coupon.discountBps;
        bytes4 selector = this.buy.selector;
        assembly ("memory-safe") {
            // buy(listingId, quantity, maxUnitPrice, reseller, buyerPubKey): the selector, then this
            // call's first five argument words as they came (`buy` decodes and checks them).
            let p := mload(0x40)
            mstore(p, selector)
            calldatacopy(add(p, 4), 4, 0xa0)
            if iszero(delegatecall(gas(), address(), p, 0xa4, 0, 0x20)) {
                returndatacopy(0, 0, returndatasize())
                revert(0, returndatasize())
            }
            orderId := mload(0)
        }
    }

    /// @inheritdoc ICodeEscrow
    function revokeCoupon(uint64 id) external {
        uint256 shift = uint256(id & 7) << 5;
        _couponUses[msg.sender][id >> 3] |= _REVOKED << shift;
        emit CouponRevoked(msg.sender, id);
    }

    /// @inheritdoc ICodeEscrow
    function confirm(uint256 orderId, Order calldata order) external nonReentrant {
        _checkOrder(orderId, order, OrderState.Delivered);
        if (msg.sender != order.buyer) revert EscrowWrongCaller(msg.sender);
        delete _orderHashes[orderId];
        (uint256 toSupplier, uint256 fee, uint256 commission) = _splitProceeds(order, order.amount);
        _paySupplier(order.supplier, order.token, toSupplier, order.bond, order.bond);
        _fees[order.token] += fee;
        if (commission != 0) _credit(order.reseller, order.token, commission);
        emit OrderConfirmed(orderId);
    }

    /// @inheritdoc ICodeEscrow
    function refund(uint256 orderId, Order calldata order) external nonReentrant {
        _checkOrder(orderId, order, OrderState.Paid);
        if (block.timestamp <= order.deadline) revert EscrowDeadlineNotReached(orderId, order.deadline);
        delete _orderHashes[orderId];
        _credit(order.buyer, order.token, order.amount);
        _paySupplier(order.supplier, order.token, 0, order.bond, order.bond);
        emit OrderRefunded(orderId, order.amount);
    }

    /// @inheritdoc ICodeEscrow
    function dispute(
        uint256 orderId,
        Order calldata order,
        string calldata evidenceURI,
        bytes32 evidenceHash
    ) external {
        _checkOrder(orderId, order, OrderState.Delivered);
        if (msg.sender != order.buyer) revert EscrowWrongCaller(msg.sender);
        if (block.timestamp > order.deadline) revert EscrowDeadlinePassed(orderId, order.deadline);
        // The listing's window, fixed when the listing was created: the order's terms never move.
        uint40 arbitrationDeadline = uint40(block.timestamp + _listings[orderId >> 32].arbitrationWindow);
        _orderHashes[orderId] =
            _hashCalldata(order, uint256(OrderState.Disputed), arbitrationDeadline, bytes32(0));
        emit DisputeOpened(orderId, arbitrationDeadline, evidenceURI, evidenceHash);
        emit Dispute(address(this), orderId, orderId >> 32, orderId);
        emit Evidence(address(this), orderId, msg.sender, evidenceURI);
    }

    /// @inheritdoc ICodeEscrow
    function addEvidence(
        uint256 orderId,
        Order calldata order,
        string calldata evidenceURI,
        bytes32 evidenceHash
    ) external {
        _checkOrder(orderId, order, OrderState.Disputed);
        if (
            msg.sender != order.buyer && msg.sender != order.supplier
                && _deliveryKeys[order.supplier][msg.sender] != _KEY_ACTIVE
        ) revert EscrowWrongCaller(msg.sender);
        emit EvidenceAdded(orderId, msg.sender, evidenceURI, evidenceHash);
        emit Evidence(address(this), orderId, msg.sender, evidenceURI);
    }

    // ================================================================== delivery and settlement

    /// @inheritdoc ICodeEscrow
    function deliver(
        uint256[] calldata orderIds,
        Order[] calldata orders,
        bytes32[] calldata releaseDigests
    ) external returns (uint256 delivered) {
        uint256 n = _checkLengths(orderIds.length, orders.length, releaseDigests.length);
        address allowedSupplier;
        bool done;
        // A batch is mostly one listing: read its onChainFrom once per run of the same listing.
        uint256 listingId;
        uint256 onChainFrom;
        for (uint256 i; i < n; ++i) {
            uint256 orderId = orderIds[i];
            if (orderId >> 32 != listingId) {
                listingId = orderId >> 32;
                onChainFrom = _listings[listingId].onChainFrom;
            }
            (done, allowedSupplier) =
                _deliverOne(orderId, orders[i], releaseDigests[i], allowedSupplier, onChainFrom);
            if (done) {
                unchecked {
                    ++delivered;
                }
            }
        }
        // Nothing left to deliver: the caller is told, as for a single finished order.
        if (delivered == 0) revert EscrowUnknownOrder(orderIds[0]);
    }

    /// @inheritdoc ICodeEscrow
    function deliverOnChain(
        uint256[] calldata orderIds,
        Order[] calldata orders,
        bytes32[] calldata releaseDigests,
        PublishedRelease[] calldata releases
    ) external returns (uint256 delivered) {
        uint256 n = _checkLengths(orderIds.length, orders.length, releaseDigests.length);
        if (releases.length != n) revert EscrowLengthMismatch();
        address allowedSupplier;
        bool done;
        for (uint256 i; i < n; ++i) {
            uint256 orderId = orderIds[i];
            PublishedRelease calldata release = releases[i];
            bytes32 digest = releaseDigests[i];
            if (keccak256(abi.encode(keccak256(release.sealedRelease), release.elementRoot, release.keyHash)) != digest)
            {
                revert EscrowReleaseMismatch(orderId);
            }
            (done, allowedSupplier) = _deliverOne(orderId, orders[i], digest, allowedSupplier, 0);
            if (done) {
                emit ReleasePublished(
                    orderId, release.sealedRelease, release.elementRoot, release.keyHash, release.proofs
                );
                unchecked {
                    ++delivered;
                }
            }
        }
        if (delivered == 0) revert EscrowUnknownOrder(orderIds[0]);
    }

    /// @inheritdoc ICodeEscrow
    function settle(uint256[] calldata orderIds, Order[] calldata orders)
        external
        nonReentrant
        returns (uint256 settled)
    {
        uint256 n = orderIds.length;
        if (n == 0) revert EscrowBadArgument("orderIds");
        if (orders.length != n) revert EscrowLengthMismatch();
        // Credits to the same (supplier, token) are summed in memory and written once.
        address supplier;
        address token;
        uint256 supplierSum;
        uint256 feeSum;
        uint256 bondSum;
        for (uint256 i; i < n; ++i) {
            uint256 orderId = orderIds[i];
            Order calldata order = orders[i];
            bytes32 stored = _orderHashes[orderId];
            if (stored == bytes32(0)) {
                // Finished (confirmed, settled, resolved) or never placed: skip it, settle the rest.
                emit SettlementSkipped(orderId);
                continue;
            }
            _checkStored(orderId, stored, order, OrderState.Delivered);
            if (block.timestamp <= order.deadline) revert EscrowDeadlineNotReached(orderId, order.deadline);
            delete _orderHashes[orderId];
            (uint256 toSupplier, uint256 fee, uint256 commission) = _splitProceeds(order, order.amount);
            if (order.supplier != supplier || order.token != token) {
                _flushSettlement(supplier, token, supplierSum, feeSum, bondSum);
                (supplier, token, supplierSum, feeSum, bondSum) = (order.supplier, order.token, 0, 0, 0);
            }
            unchecked {
                // Each term is < 2^128 and a batch has far fewer than 2^100 orders.
                supplierSum += toSupplier;
                feeSum += fee;
                bondSum += order.bond;
                ++settled;
            }
            if (commission != 0) _credit(order.reseller, order.token, commission);
            emit OrderSettled(orderId);
        }
        // Nothing left to settle: the caller is told, as for a single finished order.
        if (settled == 0) revert EscrowUnknownOrder(orderIds[0]);
        _flushSettlement(supplier, token, supplierSum, feeSum, bondSum);
    }

    // ================================================================== arbitration

    /// @inheritdoc ICodeEscrow
    function rule(
        uint256 orderId,
        Order calldata order,
        uint16 buyerBps,
        uint16 slashBps,
        bytes32 bundleHash,
        bytes32 reason
    ) external nonReentrant onlyRole(ARBITER_ROLE) {
        _checkOrder(orderId, order, OrderState.Disputed);
        if (
            msg.sender == order.buyer || msg.sender == order.supplier || msg.sender == order.reseller
                || _deliveryKeys[order.supplier][msg.sender] == _KEY_ACTIVE
        ) revert EscrowArbiterIsParty(msg.sender);
        if (buyerBps > _BPS) revert EscrowBadBps(buyerBps);
        if (slashBps > _BPS) revert EscrowBadBps(slashBps);
        _resolve(orderId, order, msg.sender, buyerBps, slashBps, bundleHash, reason);
    }

    /// @inheritdoc ICodeEscrow
    function proveBadCode(uint256 orderId, Order calldata order, BadCodeProof calldata proof)
        external
        nonReentrant
    {
        bytes32 stored = _orderHashes[orderId];
        if (stored == bytes32(0) || stored != _hashCalldata(order, 0, 0, bytes32(0))) {
            revert EscrowUnknownOrder(orderId);
        }
        if (order.state == OrderState.Delivered) {
            if (block.timestamp > order.deadline) revert EscrowDeadlinePassed(orderId, order.deadline);
        } else if (order.state != OrderState.Disputed) {
            revert EscrowWrongState(orderId, order.state);
        }
        if (msg.sender != order.buyer) revert EscrowWrongCaller(msg.sender);
        Batch memory batch = _batches[orderId >> 32][proof.batchIndex];
        (bytes32 reason, bytes32 bundleHash) =
            _verifier.verify(orderId, order.quantity, order.releaseDigest, batch, proof);
        _resolve(orderId, order, address(this), uint16(_BPS), uint16(_BPS), bundleHash, reason);
    }

    /// @inheritdoc ICodeEscrow
    function resolveTimedOut(uint256 orderId, Order calldata order) external nonReentrant {
        _checkOrder(orderId, order, OrderState.Disputed);
        if (block.timestamp <= order.deadline) revert EscrowDeadlineNotReached(orderId, order.deadline);
        _resolve(orderId, order, address(0), uint16(_BPS / 2), 0, bytes32(0), "arbitration-timeout");
    }

    // ================================================================== balances

    /// @inheritdoc ICodeEscrow
    function withdraw(address token, address to) external nonReentrant {
        if (to == address(0)) revert EscrowBadArgument("to");
        Ledger storage ledger = _ledgers[msg.sender][token];
        uint256 spilled = _overflow[msg.sender][token];
        uint256 amount = ledger.balance + spilled;
        if (amount == 0) revert EscrowNothingToWithdraw(msg.sender, token);
        ledger.balance = 0;
        if (spilled != 0) _overflow[msg.sender][token] = 0;
        emit Withdrawn(msg.sender, token, to, amount);
        _pushPayment(token, to, amount);
    }

    /// @inheritdoc ICodeEscrow
    function withdrawFees(address token, address to) external nonReentrant onlyRole(DEFAULT_ADMIN_ROLE) {
        if (to == address(0)) revert EscrowBadArgument("to");
        uint256 amount = _fees[token];
        if (amount == 0) revert EscrowNothingToWithdraw(address(this), token);
        _fees[token] = 0;
        emit FeesWithdrawn(token, to, amount);
        _pushPayment(token, to, amount);
    }

    // ================================================================== views

    /// @inheritdoc ICodeEscrow
    function extsload(bytes32[] calldata slots) external view returns (bytes32[] memory words) {
        words = new bytes32[](slots.length);
        for (uint256 i; i < slots.length; ++i) {
            bytes32 slot = slots[i];
            bytes32 word;
            assembly ("memory-safe") {
                word := sload(slot)
            }
            words[i] = word;
        }
    }

    /// @inheritdoc ICodeEscrow
    function hashOrder(Order calldata order) external pure returns (bytes32) {
        // The bytes as they came: what `_checkOrder` compares, dirty high bits included.
        return _hashCalldata(order, 0, 0, bytes32(0));
    }

    // ================================================================== internal

    function _setConfig(Config memory newConfig) private {
        // The bounds are checked by the verifier (a pure call that reverts with this contract's
        // errors), which keeps their revert data out of the runtime code (EIP-170).
        _verifier.checkConfig(newConfig);
        _config = newConfig;
        emit ConfigUpdated(newConfig);
    }

    function _checkWindow(string memory name, uint256 value, uint256 min, uint256 max) private pure {
        if (value < min || value > max) revert EscrowBadWindow(name, value, min, max);
    }

    function _removeDeliveryKey(address supplier, address key) private {
        uint8 status = _deliveryKeys[supplier][key];
        if (status == 0) return;
        delete _deliveryKeys[supplier][key];
        if (status == _KEY_ACTIVE) emit DeliveryKeySet(supplier, key, false);
    }

    function _checkLengths(uint256 n, uint256 orders, uint256 digests) private pure returns (uint256) {
        if (n == 0) revert EscrowBadArgument("orderIds");
        if (orders != n || digests != n) revert EscrowLengthMismatch();
        return n;
    }

    /// @dev Deliver one order of a batch: skip it when finished, else check it, its caller and
    ///      its deadline and post its digest. `allowedSupplier` caches the supplier whose caller
    ///      check passed. `onChainFrom` is the listing's for a plain `deliver` (an order from
    ///      index onChainFrom - 1 on must be published) and 0 for `deliverOnChain`.
    function _deliverOne(
        uint256 orderId,
        Order calldata order,
        bytes32 digest,
        address allowedSupplier,
        uint256 onChainFrom
    ) private returns (bool, address) {
        bytes32 stored = _orderHashes[orderId];
        if (stored == bytes32(0)) {
            // Finished (refunded) or never placed: skip it, deliver the rest.
            emit DeliverySkipped(orderId);
            return (false, allowedSupplier);
        }
        _checkStored(orderId, stored, order, OrderState.Paid);
        if (order.supplier != allowedSupplier) {
            if (msg.sender != order.supplier && _deliveryKeys[order.supplier][msg.sender] != _KEY_ACTIVE) {
                revert EscrowWrongCaller(msg.sender);
            }
            allowedSupplier = order.supplier;
        }
        // firstIndex = the low 32 bits of the id.
        if (onChainFrom != 0 && uint32(orderId) >= onChainFrom - 1) revert EscrowReleaseRequired(orderId);
        if (block.timestamp > order.deadline) revert EscrowDeadlinePassed(orderId, order.deadline);
        if (digest == bytes32(0)) revert EscrowBadArgument("releaseDigest");
        uint40 disputeDeadline;
        unchecked {
            disputeDeadline = uint40(block.timestamp + order.disputeWindow); // 2^32 s window
        }
        _orderHashes[orderId] = _hashCalldata(order, uint256(OrderState.Delivered), disputeDeadline, digest);
        emit OrderDelivered(orderId, digest);
        return (true, allowedSupplier);
    }

    /// @dev The discount in basis points of the largest tier `quantity` reaches (zero if none).
    function _tierDiscount(uint256 listingId, uint256 quantity) private view returns (uint256 off) {
        uint256 packed = _tiers[listingId];
        for (uint256 i; i < MAX_TIERS; ++i) {
            uint256 tier = packed >> (48 * i);
            uint256 minQuantity = uint32(tier >> 16);
            if (minQuantity == 0 || quantity < minQuantity) break;
            off = uint16(tier);
        }
    }

    function _existingListing(uint256 listingId) private view returns (Listing storage listing) {
        listing = _listings[listingId];
        if (listing.supplier == address(0)) revert EscrowUnknownListing(listingId);
    }

    /// @dev Reverts unless `order` hashes to the stored hash and is in `expected` state.
    function _checkOrder(uint256 orderId, Order calldata order, OrderState expected) private view {
        _checkStored(orderId, _orderHashes[orderId], order, expected);
    }

    /// @dev `_checkOrder` against a stored hash the caller has already read.
    function _checkStored(uint256 orderId, bytes32 stored, Order calldata order, OrderState expected)
        private
        pure
    {
        if (stored == bytes32(0) || stored != _hashCalldata(order, 0, 0, bytes32(0))) {
            revert EscrowUnknownOrder(orderId);
        }
        if (order.state != expected) revert EscrowWrongState(orderId, order.state);
    }

    /// @dev keccak256(abi.encode(order)) straight from calldata. `Order` is a static struct, so its
    ///      calldata bytes are its ABI encoding; a non-canonical encoding (dirty high bits) hashes
    ///      differently and is refused by `_checkOrder`. With `state` nonzero, the hash is of the
    ///      order moved to `state` with the given deadline and, if nonzero, release digest.
    function _hashCalldata(Order calldata order, uint256 state, uint256 deadline, bytes32 digest)
        private
        pure
        returns (bytes32 h)
    {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, order, 0x1a0)
            if state {
                mstore(add(ptr, 0x140), deadline)
                mstore(add(ptr, 0x160), state)
                if digest { mstore(add(ptr, 0x180), digest) }
            }
            h := keccak256(ptr, 0x1a0)
        }
    }

    /// @dev Splits `gross` (the whole payment, or what a ruling leaves the sellers) into the
    ///      supplier's part, the platform fee and the reseller's commission: the reseller's cut,
    ///      scaled as `gross` is scaled from the payment, less its share of the fee. The supplier
    ///      takes the remainder, so the three always sum to `gross`.
    function _splitProceeds(Order calldata order, uint256 gross)
        private
        pure
        returns (uint256 toSupplier, uint256 fee, uint256 commission)
    {
        unchecked {
            // gross <= amount < 2^128, resellerCut <= amount and feeBps <= 5,000 (setConfig), so
            // every product fits 256 bits, commission <= gross - fee and nothing underflows.
            fee = (gross * order.feeBps) / _BPS;
            uint256 cut = order.resellerCut;
            if (cut != 0) {
                if (gross != order.amount) cut = (cut * gross) / order.amount;
                commission = cut - (cut * order.feeBps) / _BPS;
            }
            toSupplier = gross - fee - commission;
        }
    }

    function _resolve(
        uint256 orderId,
        Order calldata order,
        address arbiter,
        uint16 buyerBps,
        uint16 slashBps,
        bytes32 bundleHash,
        bytes32 reason
    ) private {
        delete _orderHashes[orderId];
        uint256 buyerAmount = (uint256(order.amount) * buyerBps) / _BPS;
        uint256 supplierGross = order.amount - buyerAmount;
        (uint256 toSupplier, uint256 fee, uint256 commission) = _splitProceeds(order, supplierGross);
        uint256 slashed = (uint256(order.bond) * slashBps) / _BPS;

        _credit(order.buyer, order.token, buyerAmount + slashed);
        _paySupplier(order.supplier, order.token, toSupplier, order.bond, order.bond - slashed);
        _fees[order.token] += fee;
        if (commission != 0) _credit(order.reseller, order.token, commission);

        emit DisputeRuled(
            orderId, arbiter, buyerBps, slashBps, buyerAmount, toSupplier, slashed, bundleHash, reason
        );
        emit Ruling(address(this), orderId, buyerBps);
    }

    function _flushSettlement(
        address supplier,
        address token,
        uint256 supplierSum,
        uint256 feeSum,
        uint256 bondSum
    ) private {
        if (supplier == address(0)) return;
        _paySupplier(supplier, token, supplierSum, bondSum, bondSum);
        _fees[token] += feeSum;
    }

    function _credit(address account, address token, uint256 amount) private {
        if (amount == 0) return;
        Ledger storage ledger = _ledgers[account][token];
        ledger.balance = _fit(account, token, uint256(ledger.balance) + amount);
    }

    /// @dev What of `balance` fits the 96-bit ledger slot; the rest is kept in `_overflow`.
    function _fit(address account, address token, uint256 balance) private returns (uint96) {
        if (balance <= type(uint96).max) return uint96(balance);
        _overflow[account][token] += balance - type(uint96).max;
        return type(uint96).max;
    }

    /// @dev Credits a supplier, takes `unreserve` off its reserved bond and returns `refree` of
    ///      it to its free bond (the rest was slashed), in one storage write.
    function _paySupplier(address supplier, address token, uint256 credit, uint256 unreserve, uint256 refree)
        private
    {
        Ledger storage ledger = _ledgers[supplier][token];
        Ledger memory next = ledger;
        next.balance = _fit(supplier, token, uint256(next.balance) + credit);
        next.bondReserved -= uint80(unreserve);
        // refree <= unreserve and free + reserved <= _MAX_BOND, so this fits.
        next.bondFree += uint80(refree);
        _ledgers[supplier][token] = next;
    }

    /// @dev Takes `amount` from the caller: as msg.value for the native coin, else by transferFrom,
    ///      refusing tokens that deliver less than the amount sent.
    function _pullPayment(address token, uint256 amount) private {
        if (token == address(0)) {
            if (msg.value != amount) revert EscrowWrongValue(msg.value, amount);
            return;
        }
        if (msg.value != 0) revert EscrowWrongValue(msg.value, 0);
        IERC20 erc20 = IERC20(token);
        uint256 before = erc20.balanceOf(address(this));
        erc20.safeTransferFrom(msg.sender, address(this), amount);
        uint256 received = erc20.balanceOf(address(this)) - before;
        if (received != amount) revert EscrowTokenShortfall(token, amount, received);
    }

    function _pushPayment(address token, address to, uint256 amount) private {
        if (token == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert EscrowTransferFailed(to, amount);
        } else {
            IERC20(token).safeTransfer(to, amount);
        }
    }
}
