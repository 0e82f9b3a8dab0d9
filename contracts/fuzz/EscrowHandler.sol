// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IAccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/IAccessControlDefaultAdminRules.sol";

import {ICodeEscrow} from "../src/interfaces/ICodeEscrow.sol";
import {Codes} from "./Codes.sol";
import {EscrowReader} from "./EscrowReader.sol";
import {FuzzAttacker} from "./FuzzAttacker.sol";
import {FuzzToken} from "./FuzzToken.sol";
import {VM, Vm} from "./Vm.sol";

/// @notice CodeEscrow's whole external surface, as the harness sees it.
interface IEscrow is ICodeEscrow, IAccessControlDefaultAdminRules {
    function RIGHTS_ADMIN_ROLE() external view returns (bytes32);
    function ARBITER_ROLE() external view returns (bytes32);
    function PAUSER_ROLE() external view returns (bytes32);
    function paused() external view returns (bool);
}

/// @title EscrowHandler
/// @notice The target of the invariant fuzzer: every external function of CodeEscrow, called
///         by bounded random actors with bounded random arguments, plus time jumps. Each call
///         goes through `prank` and `try`, so a refused call never stops the run; instead the
///         handler knows, from ICodeEscrow's NatSpec and docs/PROTOCOL.md, whether each
///         money-moving call must succeed or must be refused, and records a violation when the
///         escrow disagrees. It keeps every open order's full struct (the escrow stores only its
///         hash) and ghost copies of stock, keys, reseller and shop prices and balances for the
///         invariants.
contract EscrowHandler {
    /// @dev The escrow's state is read through its one reader, `extsload`: EscrowReader answers
    ///      what the views it replaced answered (`escrow.getListing(id)`, `escrow.bondOf(s, t)`,
    ///      ...) from the storage words, at the positions of the committed artifact's layout.
    using EscrowReader for IEscrow;

    Vm private constant vm = VM;

    uint256 private constant _BPS = 10_000;
    uint256 private constant _MAX_BOND = type(uint80).max;
    uint256 private constant _MAX_AMOUNT = type(uint96).max;
    /// @dev CodeEscrow.MAX_ON_CHAIN_QUANTITY: codes an order of an on-chain-delivery listing may hold.
    uint256 private constant _MAX_ON_CHAIN = 32;
    /// @dev Orders kept open at once; `buy` does nothing beyond this, to bound the checks' cost.
    uint256 private constant _MAX_OPEN = 32;
    uint256 private constant _FINISHED_KEPT = 16;
    /// @dev Listings created at most (each is checked after every call).
    uint256 private constant _MAX_LISTINGS = 24;
    /// @dev An EOA outside every role, used as a neutral caller and withdrawal recipient.
    address public constant SINK = address(0x5151);
    /// @dev CodeEscrow's `_couponUses` slot in the committed artifact's layout (contracts.storage
    ///      has no view of it, so neither has EscrowReader; tests/contracts/test_fuzz_runner.py
    ///      checks the number against the layout). Counters are read from it with `vm.load`.
    uint256 private constant _COUPON_USES_SLOT = 19;
    /// @dev A revoked coupon id's use count.
    uint256 private constant _REVOKED = type(uint32).max;
    /// @dev The coupon's EIP-712 type and domain type, as ICodeEscrow documents them.
    bytes32 private constant _COUPON_TYPEHASH = keccak256(
        "Coupon(uint256 listingId,bytes32 sku,address buyer,uint16 discountBps,uint96 amountOff,uint32 maxUses,uint40 expiry,uint64 id)"
    );
    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// @dev secp256k1's group order: a signature's s is given in its lower half (EIP-2098).
    uint256 private constant _SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    /// @dev A key no actor was made from: coupons "signed by someone else".
    uint256 private constant _STRANGER_KEY = 0xBAD5EED;

    IEscrow public immutable escrow;
    FuzzAttacker public immutable attacker;
    address[] public tokens;
    address[] public actors;
    address[] private _suppliers;
    address[] private _buyers;
    address[] private _keys;
    address[] private _arbiters;
    address[] private _resellers;
    mapping(address account => uint256) private _actorIndex; // 1-based
    /// @notice Actor names, for messages.
    mapping(address account => string) public names;
    bytes32[3] private _skus;

    // ---------------------------------------------------------------- orders
    uint256[] private _open;
    mapping(uint256 orderId => uint256) private _openPos; // 1-based
    mapping(uint256 orderId => ICodeEscrow.Order) private _orders;
    uint256[] private _finished;
    uint256 private _finishedNext;
    /// @notice The release each delivered order carries (0: a digest that is no release).
    mapping(uint256 orderId => uint256) public releaseSeedOf;
    mapping(uint256 from => mapping(uint256 to => uint256)) public transitions;
    /// @notice How each order was delivered: 1 by `deliver`, 2 by `deliverOnChain`.
    mapping(uint256 orderId => uint256) public deliveredBy;
    /// @notice For an order delivered by `deliverOnChain`: the digest its ReleasePublished
    ///         event (the release as the chain published it) hashes to.
    mapping(uint256 orderId => bytes32) public publishedDigest;

    // ---------------------------------------------------------------- ghosts
    mapping(uint256 listingId => uint256) public ghostSold;
    mapping(uint256 listingId => uint256) public ghostCommitted;
    mapping(uint256 listingId => uint256) public ghostBatches;
    mapping(uint256 listingId => mapping(uint256 index => bool)) private _indexSold;
    mapping(uint256 listingId => mapping(uint256 batchIndex => bool)) private _realRoot;
    mapping(address token => bool) public ghostAllowed;
    /// @notice onChainFrom as the first successful `requireOnChainRelease` set it (0: never).
    mapping(uint256 listingId => uint256) public ghostOnChainFrom;
    /// @dev (supplier, key): the key accepted (active) / was proposed and has not answered.
    mapping(address supplier => mapping(address key => bool)) public accepted;
    mapping(address supplier => mapping(address key => bool)) public proposed;
    address[] private _pairSupplier;
    address[] private _pairKey;
    mapping(address supplier => mapping(address key => bool)) private _pairSeen;

    // ---------------------------------------------------------------- findings
    uint256 public calls;
    uint256 public violations;
    string public firstViolation;
    uint256 private _firstViolationCall;
    mapping(bytes32 op => uint256) public successes;
    /// @notice Calls refused with exactly the revert data the rules give, by error (coverage).
    mapping(bytes4 selector => uint256) public refusedWith;
    /// @notice Orders that had to be delivered on-chain and were (coverage).
    uint256 public requiredOnChainDeliveries;

    // ---------------------------------------------------------------- resellers
    /// @notice A listing's reseller price as the last successful `setResellerPrice` left it (0:
    ///         not open to resellers).
    mapping(uint256 listingId => uint256) public ghostResellerPrice;
    /// @notice A shop's price for a listing as the last successful `setShopPrice` left it (0: not
    ///         in the shop).
    mapping(address reseller => mapping(uint256 listingId => uint256)) public ghostShopPrice;
    /// @dev Every (shop, listing) a successful `setShopPrice` touched, for the checks and buys.
    address[] private _shopOwner;
    uint256[] private _shopListing;
    mapping(address reseller => mapping(uint256 listingId => bool)) private _shopSeen;
    /// @notice Orders bought through a shop; of them, through the buyer's own shop (coverage).
    uint256 public shopOrders;

    // ---------------------------------------------------------------- volume tiers
    /// @notice A listing's volume tiers as the last successful `setTiers` left them, packed as
    ///         the escrow documents (tier i in bits [48i, 48i + 48): minimum quantity above the
    ///         discount in basis points).
    mapping(uint256 listingId => uint256) public ghostTiers;
    /// @notice Orders that paid a tier's discount (coverage).
    uint256 public tieredOrders;
    uint256 public ownShopOrders;
    /// @notice Nonzero commissions credited to resellers, and how many of them by a ruling
    ///         (scaled cut) (coverage).
    uint256 public commissionsPaid;
    uint256 public scaledCommissionsPaid;

    // ---------------------------------------------------------------- coupons
    /// @notice A supplier's use count of each coupon id as the successful calls left it: one more
    ///         for each purchase with a coupon of that id that has a use limit, 2^32 - 1 once the
    ///         supplier revoked the id.
    mapping(address supplier => mapping(uint256 id => uint256)) public ghostCouponUses;
    /// @dev Every (supplier, counter word) a coupon call touched, for `checkCoupons`.
    address[] private _couponSupplier;
    uint256[] private _couponWord;
    mapping(address supplier => mapping(uint256 word => bool)) private _couponWordSeen;
    /// @dev The private key of each actor made from one (`addSigningKey`: the suppliers), which
    ///      signs that actor's coupons.
    mapping(address account => uint256) private _signingKey;
    uint256[] private _signingKeys;
    /// @dev Per supplier, 1 + the coupon id it last revoked or a purchase last counted a use of
    ///      (0: none), which coupons pick often so that revoked and used-up ids are met.
    mapping(address supplier => uint256) private _recentCouponId;
    /// @notice Orders bought with a coupon, by kind (coverage): "all", "percent", "amount",
    ///         "both", "sku-wide", "buyer-bound", "limited", "shop", "tiered".
    mapping(bytes32 kind => uint256) public couponOrders;
    /// @notice Coupon ids revoked (coverage).
    uint256 public couponsRevoked;

    /// @dev Ledger balances, free and reserved bonds of the actors in `mask` (by actor index),
    ///      and the platform's fees.
    struct Books {
        bool[] mask;
        uint256[] bal;
        uint256[] free;
        uint256[] res;
        uint256[] fees;
    }

    /// @dev What a call must move, as Books: per account and token (`com`: the part of `bal`
    ///      that is commission to the account as a reseller, for messages); for a call that
    ///      finishes orders (`finishing`), `paid`: the amounts those orders paid, per token.
    struct Expect {
        bool[] mask;
        int256[] bal;
        int256[] free;
        int256[] res;
        int256[] fees;
        int256[] com;
        int256[] paid;
        bool finishing;
        bool unknownAccount;
    }

    /// @dev Set when a call changed the escrow; the liveness check then runs once the handler's
    ///      own books are up to date (a refused call or a time jump cannot change its outcome:
    ///      the check jumps past every deadline anyway).
    bool private _mutated;

    modifier counted() {
        ++calls;
        _;
        if (_mutated) {
            _mutated = false;
            _checkState();
            _checkLiveness();
        }
    }

    constructor(IEscrow escrow_, FuzzAttacker attacker_, address[] memory tokens_) {
        escrow = escrow_;
        attacker = attacker_;
        tokens = tokens_;
        ghostAllowed[address(0)] = true;
        _skus = [bytes32("sku-a"), bytes32("sku-b"), bytes32("sku-c")];
    }

    // ================================================================== setup (by the test)

    /// @notice Register the actors (called once by the test's setUp).
    function addActors(
        address[] memory suppliers,
        address[] memory buyers,
        address[] memory keys,
        address[] memory arbiters,
        address[] memory resellers,
        address[] memory others
    ) external {
        require(actors.length == 0, "actors already set");
        _addAll(_suppliers, suppliers);
        _addAll(_buyers, buyers);
        _addAll(_keys, keys);
        _addAll(_arbiters, arbiters);
        _addAll(_resellers, resellers);
        for (uint256 i; i < others.length; ++i) {
            _addActor(others[i]);
        }
        for (uint256 i; i < actors.length; ++i) {
            for (uint256 t = 1; t < tokens.length; ++t) {
                vm.prank(actors[i]);
                FuzzToken(tokens[t]).approve(address(escrow), type(uint256).max);
            }
        }
    }

    /// @notice Name an actor in violation messages.
    function name(address account, string calldata label) external {
        names[account] = label;
    }

    /// @notice Note the private key an actor was made from (`vm.addr`), to sign its coupons.
    function addSigningKey(uint256 privateKey) external {
        _signingKey[vm.addr(privateKey)] = privateKey;
        _signingKeys.push(privateKey);
    }

    /// @notice Note a token the test allowed at setup.
    function noteAllowed(address token) external {
        ghostAllowed[token] = true;
    }

    /// @notice The skus the harness lists.
    function sku(uint256 i) external view returns (bytes32) {
        return _skus[i % 3];
    }

    /// @notice Record a listing and batch the test created at setup through the handler.
    function seedListing(address supplier, uint256 skuIndex, uint256 tokenIndex, uint96 unitPrice, uint16 bondBps)
        external
        returns (uint256 listingId)
    {
        ICodeEscrow.Config memory cfg = escrow.config();
        vm.prank(supplier);
        listingId = escrow.createListing(
            _skus[skuIndex % 3],
            tokens[tokenIndex],
            unitPrice,
            cfg.minDeliveryWindow,
            cfg.minDisputeWindow,
            bondBps,
            "ipfs://seed"
        );
        _commit(supplier, listingId, 48, true);
    }

    /// @notice Open a listing to resellers at setup, as its supplier, recorded as a fuzzed call's.
    function seedResellerPrice(uint256 listingId, uint96 price) external {
        address supplier = escrow.getListing(listingId).supplier;
        vm.prank(supplier);
        escrow.setResellerPrice(listingId, price);
        ghostResellerPrice[listingId] = price;
    }

    /// @notice Put a listing in a shop at setup, recorded as a fuzzed call's.
    function seedShop(address reseller, uint256 listingId, uint96 price) external {
        vm.prank(reseller);
        escrow.setShopPrice(listingId, price);
        _noteShop(reseller, listingId, price);
    }

    function _addAll(address[] storage pool, address[] memory list) private {
        for (uint256 i; i < list.length; ++i) {
            pool.push(list[i]);
            _addActor(list[i]);
        }
    }

    function _addActor(address a) private {
        if (_actorIndex[a] != 0) return;
        actors.push(a);
        _actorIndex[a] = actors.length;
    }

    // ================================================================== time and attacker

    /// @notice Jump forward in time: to exactly an open order's deadline or one second past it,
    ///         or by minutes, days or up to a year.
    function warp(uint256 seed) external counted {
        _warp(seed);
    }

    /// @notice The same as `warp` (weight).
    function warpAgain(uint256 seed) external counted {
        _warp(seed);
    }

    function _warp(uint256 seed) private {
        uint256 t = _now();
        uint256 m = seed % 8;
        uint256 target;
        if (m < 2 && _open.length != 0) {
            target = uint256(_orders[_open[(seed >> 8) % _open.length]].deadline) + m;
        } else if (m < 5) {
            target = t + _bound(seed >> 8, 1, 1 hours);
        } else if (m < 7) {
            target = t + _bound(seed >> 8, 1 hours, 3 days);
        } else if ((seed >> 8) % 8 != 0) {
            target = t + _bound(seed >> 16, 3 days, 40 days);
        } else {
            target = t + _bound(seed >> 16, 40 days, 400 days);
        }
        if (target <= t) target = t + 1;
        vm.warp(target);
    }

    /// @notice What the attacker contract does when paid: accept, refuse, or try to re-enter.
    function setAttackerMode(uint256 seed) external counted {
        attacker.setMode(FuzzAttacker.Mode(seed % 3));
    }

    // ================================================================== bonds and keys

    function depositBond(uint256 who, uint256 tokenSeed, uint256 amountSeed) external counted {
        address s = _supplier(who);
        uint256 ti = tokenSeed % 3;
        address t = tokens[ti];
        ICodeEscrow.Bond memory b = escrow.bondOf(s, t);
        uint256 used = uint256(b.free) + b.reserved;
        uint256 m = amountSeed % 8;
        uint256 amount;
        if (m == 0) {
            amount = used < _MAX_BOND ? _MAX_BOND - used : 1; // fill to the cap exactly
        } else if (m == 1) {
            amount = b.free < _MAX_BOND ? _MAX_BOND - b.free : 1; // free to 2^80-1 (over the cap if reserved)
        } else if (m == 2) {
            amount = used <= _MAX_BOND ? _MAX_BOND - used + 1 : 1; // one over the cap
        } else {
            amount = _bound(amountSeed >> 8, 1, 10_000 * _unit(ti));
        }
        _fund(s, t, amount);
        bool expected = ghostAllowed[t] && used + amount <= _MAX_BOND;
        Books memory before = _books(_mask(s));
        vm.prank(s);
        try escrow.depositBond{value: ti == 0 ? amount : 0}(t, amount) {
            _outcome("depositBond", true, expected, "");
            Expect memory e = _expect(before);
            _addFree(e, s, ti, int256(amount));
            _checkBooks("depositBond", before, e);
        } catch (bytes memory err) {
            _outcome("depositBond", false, expected, err);
        }
    }

    function withdrawBond(uint256 who, uint256 tokenSeed, uint256 amountSeed, uint256 toSeed) external counted {
        address s = _supplier(who);
        uint256 ti = tokenSeed % 3;
        address t = tokens[ti];
        uint256 free = escrow.bondOf(s, t).free;
        uint256 m = amountSeed % 4;
        uint256 amount = m == 0 ? free : m == 1 ? free + 1 : _bound(amountSeed >> 8, 1, free == 0 ? 1 : free);
        if (amount == 0) amount = 1;
        address to = _recipient(toSeed);
        bool expected = amount <= free && to != address(0) && _receives(to, ti);
        Books memory before = _books(_mask(s));
        uint256 toBefore = _external(to, ti);
        vm.prank(s);
        try escrow.withdrawBond(t, amount, to) {
            _outcome("withdrawBond", true, expected, "");
            Expect memory e = _expect(before);
            _addFree(e, s, ti, -int256(amount));
            _checkBooks("withdrawBond", before, e);
            if (to != address(escrow) && _external(to, ti) != toBefore + amount) {
                _fail("withdrawBond: the recipient did not receive the amount");
            }
        } catch (bytes memory err) {
            _outcome("withdrawBond", false, expected, err);
        }
    }

    function setDeliveryKey(uint256 who, uint256 keySeed, uint256 enableSeed) external counted {
        bool enabled = enableSeed % 4 != 0; // mostly proposals, sometimes removals
        address s = _supplier(who);
        address k = _keyCandidate(keySeed);
        bool expected = k != address(0) && k != s;
        vm.prank(s);
        try escrow.setDeliveryKey(k, enabled) {
            _outcome("setDeliveryKey", true, expected, "");
            _notePair(s, k);
            if (enabled) {
                if (!accepted[s][k]) proposed[s][k] = true;
            } else {
                accepted[s][k] = false;
                proposed[s][k] = false;
            }
        } catch (bytes memory err) {
            _outcome("setDeliveryKey", false, expected, err);
        }
    }

    function acceptDeliveryKey(uint256 keySeed, uint256 who) external counted {
        address k = _keyCandidate(keySeed);
        address s = _supplier(who);
        if (who % 4 != 0) {
            (bool found, address ps, address pk) = _pair(keySeed >> 128);
            if (found) (s, k) = (ps, pk);
        }
        bool isArbiter = escrow.hasRole(escrow.ARBITER_ROLE(), k);
        bool expected = proposed[s][k] && !isArbiter;
        vm.prank(k);
        try escrow.acceptDeliveryKey(s) {
            _outcome("acceptDeliveryKey", true, expected, "");
            if (isArbiter) _fail("parties: an arbiter accepted to become a delivery key");
            _notePair(s, k);
            accepted[s][k] = true;
            proposed[s][k] = false;
        } catch (bytes memory err) {
            _outcome("acceptDeliveryKey", false, expected, err);
        }
    }

    function resignDeliveryKey(uint256 keySeed, uint256 who) external counted {
        address k = _keyCandidate(keySeed);
        address s = _supplier(who);
        if (who % 2 != 0) {
            (bool found, address ps, address pk) = _pair(keySeed >> 128);
            if (found) (s, k) = (ps, pk);
        }
        bool expected = proposed[s][k] || accepted[s][k];
        vm.prank(k);
        try escrow.resignDeliveryKey(s) {
            _outcome("resignDeliveryKey", true, expected, "");
            accepted[s][k] = false;
            proposed[s][k] = false;
        } catch (bytes memory err) {
            _outcome("resignDeliveryKey", false, expected, err);
        }
    }

    // ================================================================== listings

    function createListing(uint256 who, uint256 seed) external counted {
        if (escrow.listingCount() >= _MAX_LISTINGS) return;
        address s = _supplier(who);
        bytes32 sku_ = _skus[_r(seed, 1) % 3];
        uint256 ti = _r(seed, 2) % 3;
        address t = tokens[ti];
        ICodeEscrow.Config memory cfg = escrow.config();
        uint96 price = _price(ti, _r(seed, 3));
        uint32 dw = _window(_r(seed, 4), cfg.minDeliveryWindow, cfg.maxDeliveryWindow, true);
        uint32 xw = _window(_r(seed, 5), cfg.minDisputeWindow, cfg.maxDisputeWindow, true);
        uint16 bondBps;
        {
            uint256 bs = _r(seed, 6);
            if (bs % 16 == 0) bondBps = uint16(_BPS + 1);
            else if (bs % 4 == 0) bondBps = 0;
            else bondBps = uint16(_bound(bs >> 8, cfg.minBondBps, uint256(cfg.minBondBps) + 3000));
            if (bondBps > _BPS && bs % 16 != 0) bondBps = uint16(_BPS);
        }
        bool expected = !escrow.paused() && escrow.authorization(s, sku_) != bytes32(0) && ghostAllowed[t] && price != 0
            && dw >= cfg.minDeliveryWindow && dw <= cfg.maxDeliveryWindow && xw >= cfg.minDisputeWindow
            && xw <= cfg.maxDisputeWindow && bondBps >= cfg.minBondBps && bondBps <= _BPS;
        uint256 countBefore = escrow.listingCount();
        vm.prank(s);
        try escrow.createListing(sku_, t, price, dw, xw, bondBps, "ipfs://listing") returns (uint256 id) {
            _outcome("createListing", true, expected, "");
            ICodeEscrow.Listing memory l = escrow.getListing(id);
            if (
                id != countBefore + 1 || l.supplier != s || l.committed != 0 || l.sold != 0 || l.bondBps != bondBps
                    || !l.active || l.token != t || l.unitPrice != price || l.deliveryWindow != dw
                    || l.disputeWindow != xw || l.batchCount != 0 || l.feeBps != cfg.feeBps
                    || l.arbitrationWindow != cfg.arbitrationWindow || l.sku != sku_ || l.onChainFrom != 0
            ) _fail("createListing: the stored listing is not the one asked for");
            if (escrow.resellerPrice(id) != 0) _fail("createListing: a new listing is open to resellers");
        } catch (bytes memory err) {
            _outcome("createListing", false, expected, err);
        }
    }

    function updateListing(uint256 listingSeed, uint256 seed) external counted {
        uint256 id = _listing(listingSeed);
        ICodeEscrow.Listing memory l = escrow.getListing(id);
        address caller = _r(seed, 1) % 8 == 0 ? _any(seed) : l.supplier;
        uint96 price = _r(seed, 2) % 16 == 0 ? 0 : _price(_tokenIndex(l.token), _r(seed, 3));
        bool active = _r(seed, 4) % 4 != 0;
        ICodeEscrow.Config memory cfg = escrow.config();
        bool expected = l.supplier != address(0) && caller == l.supplier && price != 0
            && (!active || (!escrow.paused() && escrow.authorization(l.supplier, l.sku) != bytes32(0)));
        vm.prank(caller);
        try escrow.updateListing(id, price, active) {
            _outcome("updateListing", true, expected, "");
            ICodeEscrow.Listing memory n = escrow.getListing(id);
            if (n.unitPrice != price || n.active != active || n.feeBps != cfg.feeBps) {
                _fail("updateListing: the listing's price, activity or fee are not as specified");
            }
            if (escrow.resellerPrice(id) != ghostResellerPrice[id]) {
                _fail("updateListing: changed the listing's reseller price");
            }
            if (
                n.sold != l.sold || n.committed != l.committed || n.arbitrationWindow != l.arbitrationWindow
                    || n.onChainFrom != l.onChainFrom
            ) {
                _fail("updateListing: changed stock, the arbitration window or onChainFrom");
            }
        } catch (bytes memory err) {
            _outcome("updateListing", false, expected, err);
        }
    }

    // ================================================================== resellers

    /// @notice The supplier (one call in eight, anyone: EscrowWrongCaller) opens a listing to
    ///         resellers, changes its reseller price, or closes it (zero). The price is mostly
    ///         below the listing's own, sometimes equal to it, above it, 1 or 2^96 - 1.
    function setResellerPrice(uint256 listingSeed, uint256 seed) external counted {
        uint256 id = _listing(listingSeed);
        ICodeEscrow.Listing memory l = escrow.getListing(id);
        address caller = _r(seed, 1) % 8 == 0 ? _any(seed) : l.supplier;
        uint96 price = _resellerPriceFor(l.unitPrice, _r(seed, 2));
        bytes memory want;
        if (l.supplier == address(0)) want = abi.encodeWithSelector(ICodeEscrow.EscrowUnknownListing.selector, id);
        else if (caller != l.supplier) want = abi.encodeWithSelector(ICodeEscrow.EscrowWrongCaller.selector, caller);
        vm.recordLogs();
        vm.prank(caller);
        try escrow.setResellerPrice(id, price) {
            _exact("setResellerPrice", true, want, "");
            bytes32[] memory topics = new bytes32[](2);
            (topics[0], topics[1]) = (ICodeEscrow.ResellerPriceSet.selector, bytes32(id));
            _expectOneLog("setResellerPrice: not one ResellerPriceSet naming the listing and price", topics, price);
            ghostResellerPrice[id] = price;
        } catch (bytes memory err) {
            _exact("setResellerPrice", false, want, err);
        }
    }

    /// @notice A shop puts a listing in, reprices it or takes it out (zero). The shop is mostly a
    ///         reseller, else a buyer (to buy from its own shop), the listing's supplier, an
    ///         arbiter (then a party to the orders it sells) or anyone; the listing mostly one open
    ///         to resellers. The price is mostly above the reseller price, sometimes exactly it, one
    ///         below it (EscrowBelowResellerPrice) or 2^96 - 1; on a listing not open to resellers
    ///         a nonzero price is EscrowNotDistributable, on an unknown one EscrowUnknownListing.
    function setShopPrice(uint256 who, uint256 listingSeed, uint256 seed) external counted {
        uint256 id = listingSeed % 4 == 0 ? _listing(listingSeed >> 8) : _distributable(listingSeed >> 8);
        ICodeEscrow.Listing memory l = escrow.getListing(id);
        address shop = _shopKeeper(who, l.supplier);
        uint256 rp = ghostResellerPrice[id];
        uint96 price = _shopPriceFor(rp, l.unitPrice, _r(seed, 1));
        bytes memory want;
        if (l.supplier == address(0)) {
            want = abi.encodeWithSelector(ICodeEscrow.EscrowUnknownListing.selector, id);
        } else if (price != 0 && rp == 0) {
            want = abi.encodeWithSelector(ICodeEscrow.EscrowNotDistributable.selector, id);
        } else if (price != 0 && price < rp) {
            want = abi.encodeWithSelector(ICodeEscrow.EscrowBelowResellerPrice.selector, id, uint256(price), rp);
        }
        vm.recordLogs();
        vm.prank(shop);
        try escrow.setShopPrice(id, price) {
            _exact("setShopPrice", true, want, "");
            bytes32[] memory topics = new bytes32[](3);
            (topics[0], topics[1], topics[2]) =
                (ICodeEscrow.ShopPriceSet.selector, bytes32(uint256(uint160(shop))), bytes32(id));
            _expectOneLog("setShopPrice: not one ShopPriceSet naming the shop, listing and price", topics, price);
            _noteShop(shop, id, price);
        } catch (bytes memory err) {
            _exact("setShopPrice", false, want, err);
        }
    }

    /// @notice The supplier (one call in eight, anyone: EscrowWrongCaller) sets a listing's
    ///         volume tiers: 0 to 4 breaks (4 is EscrowBadTiers(3)), small enough that orders
    ///         reach them; one list in sixteen has lists of different lengths, and about one in
    ///         five has an entry made bad (a break of 0 or 1 or not above the last, a discount of
    ///         0, not above the last or 100% and more): EscrowBadTiers names the first entry at
    ///         fault, as the rules below find it.
    function setTiers(uint256 listingSeed, uint256 seed) external counted {
        uint256 id = _listing(listingSeed);
        ICodeEscrow.Listing memory l = escrow.getListing(id);
        address caller = _r(seed, 1) % 8 == 0 ? _any(seed) : l.supplier;
        uint256 n = _r(seed, 2) % 5;
        uint32[] memory q = new uint32[](n);
        uint16[] memory d = new uint16[](_r(seed, 3) % 16 == 0 ? (n == 0 ? 1 : n - 1) : n);
        uint256 last = 1;
        for (uint256 i; i < q.length; ++i) {
            last += 1 + _r(seed, 10 + i) % 8;
            q[i] = uint32(last);
        }
        last = 0;
        for (uint256 i; i < d.length; ++i) {
            last += 1 + _r(seed, 20 + i) % 2_000;
            d[i] = uint16(last);
        }
        uint256 c = _r(seed, 4) % 16;
        if (c < 3 && q.length != 0) {
            uint256 k = _r(seed, 5) % q.length;
            q[k] = k == 0 ? uint32(c % 2) : q[k - 1];
        } else if (c < 6 && d.length != 0) {
            uint256 k = _r(seed, 5) % d.length;
            d[k] = c == 5 ? uint16(_BPS + _r(seed, 6) % 100) : k == 0 ? 0 : d[k - 1];
        }
        bytes memory want;
        uint256 packed;
        if (l.supplier == address(0)) want = abi.encodeWithSelector(ICodeEscrow.EscrowUnknownListing.selector, id);
        else if (caller != l.supplier) want = abi.encodeWithSelector(ICodeEscrow.EscrowWrongCaller.selector, caller);
        else (want, packed) = _tierRules(q, d);
        vm.recordLogs();
        vm.prank(caller);
        try escrow.setTiers(id, q, d) {
            _exact("setTiers", true, want, "");
            Vm.Log[] memory logs = vm.getRecordedLogs();
            uint256 seen;
            for (uint256 k; k < logs.length; ++k) {
                Vm.Log memory g = logs[k];
                if (g.emitter != address(escrow) || g.topics[0] != ICodeEscrow.TiersSet.selector) continue;
                ++seen;
                if (g.topics.length != 2 || g.topics[1] != bytes32(id) || keccak256(g.data) != keccak256(abi.encode(q, d))) {
                    seen = 2;
                }
            }
            if (seen != 1) _fail("setTiers: not one TiersSet naming the listing and its lists");
            ghostTiers[id] = packed;
        } catch (bytes memory err) {
            _exact("setTiers", false, want, err);
        }
    }

    /// @dev What the rules say of a tier list: at most 3 breaks and as many discounts, each
    ///      break above the last (the first above 1), each discount above the last (the first
    ///      above 0) and under 10,000; the revert data for the first entry at fault (index 3 for
    ///      the lengths), or the packed word the escrow stores.
    function _tierRules(uint32[] memory q, uint16[] memory d) private pure returns (bytes memory, uint256 packed) {
        if (q.length > 3 || d.length != q.length) {
            return (abi.encodeWithSelector(ICodeEscrow.EscrowBadTiers.selector, uint256(3)), 0);
        }
        uint256 lastQ = 1;
        uint256 lastD;
        for (uint256 i; i < q.length; ++i) {
            if (q[i] <= lastQ || d[i] <= lastD || d[i] >= _BPS) {
                return (abi.encodeWithSelector(ICodeEscrow.EscrowBadTiers.selector, i), 0);
            }
            packed |= ((uint256(q[i]) << 16) | d[i]) << (48 * i);
            (lastQ, lastD) = (q[i], d[i]);
        }
        return ("", packed);
    }

    /// @dev The discount in basis points the calls' tiers give an order of `quantity`.
    function _ghostDiscount(uint256 listingId, uint256 quantity) private view returns (uint256 off) {
        uint256 packed = ghostTiers[listingId];
        for (uint256 i; i < 3; ++i) {
            uint256 minimum = uint32(packed >> (48 * i + 16));
            if (minimum == 0 || quantity < minimum) break;
            off = uint16(packed >> (48 * i));
        }
    }

    /// @dev Exactly one of the recorded logs the escrow emitted has `topics[0]`, and it has these
    ///      topics and the one word `value` as data.
    function _expectOneLog(string memory why, bytes32[] memory topics, uint256 value) private {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 seen;
        for (uint256 k; k < logs.length; ++k) {
            Vm.Log memory g = logs[k];
            if (g.emitter != address(escrow) || g.topics.length == 0 || g.topics[0] != topics[0]) continue;
            ++seen;
            if (keccak256(abi.encode(g.topics)) != keccak256(abi.encode(topics))) seen = 2;
            if (keccak256(g.data) != keccak256(abi.encode(value))) seen = 2;
        }
        if (seen != 1) _fail(why);
    }

    /// @dev Record a successful shop price (and the pair, once).
    function _noteShop(address shop, uint256 listingId, uint256 price) private {
        ghostShopPrice[shop][listingId] = price;
        if (_shopSeen[shop][listingId]) return;
        _shopSeen[shop][listingId] = true;
        _shopOwner.push(shop);
        _shopListing.push(listingId);
    }

    /// @dev A reseller price for a listing of unit price `unit`: mostly below it, sometimes zero
    ///      (closed), equal, above, 1 or 2^96 - 1.
    function _resellerPriceFor(uint256 unit, uint256 seed) private pure returns (uint96) {
        uint256 m = seed % 16;
        if (unit == 0) unit = 1;
        if (m < 2) return 0;
        if (m == 2) return uint96(unit);
        if (m == 3) return uint96(_bound(seed >> 8, unit, unit * 2 > _MAX_AMOUNT ? _MAX_AMOUNT : unit * 2));
        if (m == 4) return 1;
        if (m == 5) return uint96(_MAX_AMOUNT);
        return uint96(_bound(seed >> 8, unit / 2 == 0 ? 1 : unit / 2, unit));
    }

    /// @dev A shop price over reseller price `rp` (listing price `unit`): mostly a margin above
    ///      `rp`, sometimes zero, `rp` itself, one below it, the listing's price or 2^96 - 1; on
    ///      a listing not open to resellers (rp = 0) around the listing's price.
    function _shopPriceFor(uint256 rp, uint256 unit, uint256 seed) private pure returns (uint96) {
        uint256 m = seed % 16;
        uint256 base = rp != 0 ? rp : unit != 0 ? unit : 1;
        if (m == 0) return 0;
        if (m == 1) return uint96(base);
        if (m == 2) return uint96(base - 1);
        if (m == 3) return uint96(_MAX_AMOUNT);
        if (m == 4 && unit != 0) return uint96(unit);
        uint256 top = base + base / 2 + 1;
        return uint96(_bound(seed >> 8, base, top > _MAX_AMOUNT ? _MAX_AMOUNT : top));
    }

    /// @dev A listing open to resellers, if there is one, else any listing.
    function _distributable(uint256 seed) private view returns (uint256) {
        uint256 count = escrow.listingCount();
        for (uint256 i; i < count; ++i) {
            uint256 id = 1 + (seed % count + i) % count;
            if (ghostResellerPrice[id] != 0) return id;
        }
        return _listing(seed);
    }

    /// @dev Who keeps a shop: mostly a reseller, else a buyer, the supplier, an arbiter or anyone.
    function _shopKeeper(uint256 seed, address supplier) private view returns (address) {
        uint256 m = seed % 8;
        if (m < 3) return _resellers[(seed >> 8) % _resellers.length];
        if (m < 5) return _buyers[(seed >> 8) % _buyers.length];
        if (m == 5 && supplier != address(0)) return supplier;
        if (m == 6) return _arbiters[(seed >> 8) % _arbiters.length];
        return _any(seed >> 8);
    }

    /// @notice The supplier (or, one call in five, anyone: EscrowWrongCaller unless it is the
    ///         supplier) requires on-chain delivery for a listing's later orders, mostly one being
    ///         bought from; a second call changes nothing. One way, so three calls in eight do
    ///         nothing, to keep listings of both kinds.
    function requireOnChainRelease(uint256 listingSeed, uint256 seed) external counted {
        uint256 m = seed % 8;
        if (m >= 5) return;
        uint256 id = (listingSeed >> 64) % 2 == 0 ? _listing(listingSeed) : _buyable(listingSeed >> 8);
        if (m == 1) id = _requiredListing(listingSeed >> 128, id);
        ICodeEscrow.Listing memory l = escrow.getListing(id);
        address caller = m == 0 ? _any(seed >> 8) : l.supplier;
        bytes memory want;
        if (l.supplier == address(0)) want = abi.encodeWithSelector(ICodeEscrow.EscrowUnknownListing.selector, id);
        else if (caller != l.supplier) want = abi.encodeWithSelector(ICodeEscrow.EscrowWrongCaller.selector, caller);
        vm.recordLogs();
        vm.prank(caller);
        try escrow.requireOnChainRelease(id) {
            _exact("requireOnChainRelease", true, want, "");
            uint256 from = ghostOnChainFrom[id] == 0 ? uint256(l.sold) + 1 : ghostOnChainFrom[id];
            if (escrow.getListing(id).onChainFrom != from) {
                _fail("requireOnChainRelease: onChainFrom is not sold + 1 at the first call, unchanged after");
            }
            Vm.Log[] memory logs = vm.getRecordedLogs();
            uint256 events;
            for (uint256 k; k < logs.length; ++k) {
                if (
                    logs[k].emitter != address(escrow) || logs[k].topics.length != 2
                        || logs[k].topics[0] != ICodeEscrow.OnChainReleaseRequired.selector
                ) {
                    continue;
                }
                ++events;
                if (uint256(logs[k].topics[1]) != id || abi.decode(logs[k].data, (uint32)) != from) {
                    _fail("requireOnChainRelease: OnChainReleaseRequired does not name the listing and onChainFrom");
                }
            }
            if (events != (ghostOnChainFrom[id] == 0 ? 1 : 0)) {
                _fail("requireOnChainRelease: not one OnChainReleaseRequired at the first call and none after");
            }
            ghostOnChainFrom[id] = from;
        } catch (bytes memory err) {
            _exact("requireOnChainRelease", false, want, err);
        }
    }

    /// @dev A listing that requires on-chain delivery, if any, else `fallbackId`.
    function _requiredListing(uint256 seed, uint256 fallbackId) private view returns (uint256) {
        uint256 count = escrow.listingCount();
        for (uint256 i; i < count; ++i) {
            uint256 id = 1 + (seed % count + i) % count;
            if (ghostOnChainFrom[id] != 0) return id;
        }
        return fallbackId;
    }

    function commitBatch(uint256 listingSeed, uint256 seed) external counted {
        uint256 id = _listing(listingSeed);
        ICodeEscrow.Listing memory l = escrow.getListing(id);
        address caller = _r(seed, 1) % 8 == 0 ? _any(seed) : l.supplier;
        _commitAs(caller, id, _r(seed, 2) % 10 == 0 ? 0 : _bound(_r(seed, 3), 1, 32), _r(seed, 4));
    }

    function _commit(address caller, uint256 id, uint256 count, bool real) private {
        _commitAs(caller, id, count, real ? 1 : 0);
    }

    /// @dev mode: 0 junk root; 1..: real root; a few wrong first indexes and zero roots.
    function _commitAs(address caller, uint256 id, uint256 count, uint256 mode) private {
        ICodeEscrow.Listing memory l = escrow.getListing(id);
        uint256 first = l.committed;
        uint256 m = mode % 16;
        if (m == 15) first = first + 1;
        else if (m == 14 && first != 0) first = first - 1;
        bool real = m != 0 && count != 0;
        bytes32 root = real ? Codes.root(Codes.batchLeaves(id, first, count)) : keccak256(abi.encode("junk", mode));
        if (m == 13) root = bytes32(0);
        bool expected = !escrow.paused() && l.supplier != address(0) && caller == l.supplier
            && escrow.authorization(l.supplier, l.sku) != bytes32(0) && root != bytes32(0) && count != 0
            && first == l.committed && first + count <= type(uint32).max;
        vm.prank(caller);
        try escrow.commitBatch(id, root, uint32(count), uint32(first)) returns (uint256 batchIndex) {
            _outcome("commitBatch", true, expected, "");
            ICodeEscrow.Batch memory b = escrow.getBatch(id, batchIndex);
            if (batchIndex != ghostBatches[id] || b.root != root || b.firstIndex != first || b.count != count) {
                _fail("commitBatch: the stored batch is not the one committed");
            }
            _realRoot[id][batchIndex] = real;
            ghostBatches[id] = batchIndex + 1;
            ghostCommitted[id] = first + count;
        } catch (bytes memory err) {
            _outcome("commitBatch", false, expected, err);
        }
    }

    // ================================================================== buying

    struct Purchase {
        address buyer;
        uint256 listingId;
        ICodeEscrow.Listing listing;
        uint32 quantity;
        address reseller; // zero: at the listing's price; else through this shop
        uint256 unitPrice; // what the buyer pays a unit: the listing's or the shop's price, discounted
        uint256 supplierUnit; // a shop sale's reseller price, discounted as the unit price is
        uint256 cut; // the reseller's margin, (shop price - reseller price) * quantity
        uint256 maxUnitPrice;
        bytes32 pubKey;
        uint256 ti;
        uint256 amount;
        uint256 bond;
        uint256 value;
        uint256 couponBps; // a coupon's percentage off (basis points), 0 without one
        uint256 couponOff; // a coupon's amount off a unit, 0 without one
        bool expected;
        bytes shopWant; // the shop's refusal (EscrowNotInShop, ...), else empty
        bytes couponWant; // a coupon's amount off not below its base (EscrowCouponTooLarge), else empty
        bytes want; // the exact revert data where the rules fix it (see `_purchase`), else empty
    }

    function buy(uint256 who, uint256 listingSeed, uint256 seed) external counted {
        _buy(who, listingSeed, seed);
    }

    /// @notice The same as `buy`: a second and third entry point make orders as frequent as
    ///         the calls that act on them (the fuzzer picks entry points uniformly).
    function buyMore(uint256 who, uint256 listingSeed, uint256 seed) external counted {
        _buy(who, listingSeed, seed);
    }

    function buyWholesale(uint256 who, uint256 listingSeed, uint256 seed) external counted {
        _buy(who, listingSeed, seed);
    }

    function _buy(uint256 who, uint256 listingSeed, uint256 seed) private {
        if (_open.length >= _MAX_OPEN) return;
        Purchase memory p = _purchase(who, listingSeed, seed);
        Books memory before = _books(_mask(p.listing.supplier));
        vm.recordLogs();
        vm.prank(p.buyer);
        try escrow.buy{value: p.value}(p.listingId, p.quantity, p.maxUnitPrice, p.reseller, p.pubKey) returns (
            uint256 orderId
        ) {
            _outcome("buy", true, p.expected, "");
            _bought("buy", orderId, p, before);
        } catch (bytes memory err) {
            _refused("buy", p, err);
        }
    }

    /// @dev A purchase that succeeded: its order recorded and checked (`_afterBuy`), and the
    ///      supplier's bond moved from free to reserved by exactly the order's bond, nothing else.
    function _bought(string memory op, uint256 orderId, Purchase memory p, Books memory before) private {
        _afterBuy(op, orderId, p);
        Expect memory e = _expect(before);
        _addFree(e, p.listing.supplier, p.ti, -int256(p.bond));
        _addReserved(e, p.listing.supplier, p.ti, int256(p.bond));
        _checkBooks(op, before, e);
    }

    /// @dev A purchase that was refused: it had to be, with `p.want` exactly where the rules fix it.
    function _refused(string memory op, Purchase memory p, bytes memory err) private {
        _outcome(op, false, p.expected, err);
        if (p.want.length == 0) return;
        if (keccak256(err) != keccak256(p.want)) {
            _fail(string.concat(op, ": reverted with ", _hex(err), " where the rules say ", _hex(p.want)));
        } else {
            ++refusedWith[bytes4(p.want)];
        }
    }

    /// @dev A purchase and what the rules say of it. Plain, it pays the listing's price; through
    ///      a shop (`_resellerCandidate`), the shop's price as the calls set it,
    ///      of which (shop price - reseller price) * quantity is the reseller's cut. `want`: once
    ///      the checks before them pass (not paused, a known and active listing, a quantity in
    ///      stock, a public key), the escrow refuses, in this order, a quantity above the on-chain
    ///      cap, a shop that does not sell the listing (EscrowNotInShop), a listing closed to
    ///      resellers (EscrowNotDistributable), a shop price below the reseller price
    ///      (EscrowBelowResellerPrice), a coupon's amount off not below the price it comes out of
    ///      (EscrowCouponTooLarge, `_applyCoupon`), a unit price above the buyer's maximum, an
    ///      amount above 2^96 - 1.
    function _purchase(uint256 who, uint256 listingSeed, uint256 seed) private returns (Purchase memory p) {
        _pick(p, who, listingSeed, seed);
        _listPrice(p);
        _pay(p, seed);
    }

    /// @dev The buyer, the listing, the shop (`_resellerCandidate`) and the quantity: mostly in
    ///      stock, sometimes zero, one above the stock, above or at the on-chain cap.
    function _pick(Purchase memory p, uint256 who, uint256 listingSeed, uint256 seed) private view {
        p.buyer = _buyer(who);
        p.listingId = listingSeed % 8 == 0 ? _listing(listingSeed >> 8) : _buyable(listingSeed >> 8);
        (p.buyer, p.reseller, p.listingId) = _resellerCandidate(_r(seed, 3), p.buyer, p.listingId);
        p.listing = escrow.getListing(p.listingId);
        ICodeEscrow.Listing memory l = p.listing;
        uint256 available = uint256(l.committed) - l.sold;
        uint256 qm = _r(seed, 1) % 16;
        if (qm == 0) p.quantity = 0;
        else if (qm == 1) p.quantity = uint32(available + 1);
        else if (qm < 4 && available > _MAX_ON_CHAIN && (qm == 2 || l.onChainFrom != 0)) {
            p.quantity = uint32(_bound(_r(seed, 7), _MAX_ON_CHAIN + 1, available < 48 ? available : 48)); // over the cap
        } else if (qm < 6 && available >= _MAX_ON_CHAIN && l.onChainFrom != 0) {
            p.quantity = uint32(_MAX_ON_CHAIN); // the cap exactly
        } else p.quantity = uint32(_bound(_r(seed, 2), 1, available == 0 ? 1 : available < 12 ? available : 12));
    }

    /// @dev The unit price and, in a shop, the reseller price before any coupon: the listing's
    ///      price, or the shop's price of which the supplier receives the reseller price (the
    ///      shop's refusal in `shopWant`), both less the volume tier the quantity reaches.
    function _listPrice(Purchase memory p) private view {
        p.unitPrice = p.listing.unitPrice;
        if (p.reseller != address(0)) {
            uint256 shopPrice = ghostShopPrice[p.reseller][p.listingId];
            uint256 rp = ghostResellerPrice[p.listingId];
            if (shopPrice == 0) {
                p.shopWant = abi.encodeWithSelector(ICodeEscrow.EscrowNotInShop.selector, p.reseller, p.listingId);
            } else if (rp == 0) {
                p.shopWant = abi.encodeWithSelector(ICodeEscrow.EscrowNotDistributable.selector, p.listingId);
            } else if (shopPrice < rp) {
                p.shopWant = abi.encodeWithSelector(
                    ICodeEscrow.EscrowBelowResellerPrice.selector, p.listingId, shopPrice, rp
                );
            }
            p.unitPrice = shopPrice;
            p.supplierUnit = rp;
        }
        uint256 off = _ghostDiscount(p.listingId, p.quantity);
        if (off != 0) {
            p.unitPrice -= (p.unitPrice * off) / _BPS;
            p.supplierUnit -= (p.supplierUnit * off) / _BPS;
        }
    }

    /// @dev A coupon's discounts (`p.couponBps`, `p.couponOff`) on the prices `_listPrice` gave,
    ///      as ICodeEscrow's `buyWithCoupon` gives them: its percentage off the unit price and the
    ///      reseller price alike (as a tier's, after it), then its amount off the unit price and,
    ///      in a shop, off the reseller price too (out of the supplier's part: the shop's margin
    ///      stays). The amount off must be below the price it comes out of (the reseller price in
    ///      a shop, else the unit price): else `couponWant` is EscrowCouponTooLarge(off, price).
    ///      Nothing to price where a shop's refusal or a bad percentage comes first.
    function _applyCoupon(Purchase memory p) private pure {
        if (p.shopWant.length != 0 || p.couponBps >= _BPS) return;
        p.unitPrice = _lessBps(p.unitPrice, p.couponBps);
        p.supplierUnit = _lessBps(p.supplierUnit, p.couponBps);
        uint256 base = p.reseller == address(0) ? p.unitPrice : p.supplierUnit;
        if (p.couponOff >= base) {
            p.couponWant = abi.encodeWithSelector(ICodeEscrow.EscrowCouponTooLarge.selector, p.couponOff, base);
            return;
        }
        p.unitPrice -= p.couponOff;
        if (p.reseller != address(0)) p.supplierUnit -= p.couponOff;
    }

    /// @dev `x` less `bps` basis points of it, rounded as the escrow rounds a discount.
    function _lessBps(uint256 x, uint256 bps) private pure returns (uint256) {
        return x - (x * bps) / _BPS;
    }

    /// @dev The rest of a purchase once its unit price is known: the reseller's cut, the
    ///      buyer's maximum, key, payment (funded), and what the rules say of it (`_purchase`).
    function _pay(Purchase memory p, uint256 seed) private {
        ICodeEscrow.Listing memory l = p.listing;
        if (p.reseller != address(0) && p.shopWant.length == 0 && p.couponWant.length == 0) {
            p.cut = (p.unitPrice - p.supplierUnit) * p.quantity;
        }
        uint256 pm = _r(seed, 4) % 16;
        p.maxUnitPrice = p.unitPrice;
        if (pm == 0 && p.unitPrice != 0) p.maxUnitPrice = p.unitPrice - 1;
        else if (pm == 1 && p.reseller != address(0)) p.maxUnitPrice = l.unitPrice; // expecting the listing's price
        p.pubKey = _r(seed, 5) % 32 == 0 ? bytes32(0) : keccak256(abi.encode("pub", seed));
        p.ti = _tokenIndex(l.token);
        p.amount = p.unitPrice * p.quantity;
        p.bond = (p.amount * l.bondBps) / _BPS;
        p.value = p.ti == 0 ? (_r(seed, 6) % 16 == 0 ? p.amount + 1 : p.amount) : 0;
        if (p.ti == 0) vm.deal(p.buyer, p.buyer.balance + p.value);
        else FuzzToken(l.token).mint(p.buyer, p.amount);
        bool pre = l.supplier != address(0) && l.active && !escrow.paused() && p.quantity != 0
            && p.quantity <= uint256(l.committed) - l.sold && p.pubKey != bytes32(0);
        if (pre) {
            if (l.onChainFrom != 0 && p.quantity > _MAX_ON_CHAIN) {
                p.want = abi.encodeWithSelector(ICodeEscrow.EscrowQuantityTooLarge.selector, p.quantity, _MAX_ON_CHAIN);
            } else if (p.shopWant.length != 0) {
                p.want = p.shopWant;
            } else if (p.couponWant.length != 0) {
                p.want = p.couponWant;
            } else if (p.unitPrice > p.maxUnitPrice) {
                p.want = abi.encodeWithSelector(ICodeEscrow.EscrowPriceAboveMax.selector, p.unitPrice, p.maxUnitPrice);
            } else if (p.amount > _MAX_AMOUNT) {
                p.want = abi.encodeWithSelector(ICodeEscrow.EscrowAmountTooLarge.selector, p.amount, _MAX_AMOUNT);
            }
        }
        p.expected = pre && p.want.length == 0 && p.bond <= escrow.bondOf(l.supplier, l.token).free
            && p.value == (p.ti == 0 ? p.amount : 0);
    }

    /// @dev The buyer, the shop a purchase names and the listing: plain (no shop) six times in
    ///      sixteen; five times a shop that sells a listing with stock, and that listing; once the
    ///      keeper of such a shop buying from it; else, for the listing picked, the buyer itself,
    ///      the supplier, a reseller, an arbiter or anyone, whether or not it keeps a shop.
    function _resellerCandidate(uint256 seed, address buyer, uint256 listingId)
        private
        view
        returns (address, address, uint256)
    {
        uint256 m = seed % 16;
        if (m < 6) return (buyer, address(0), listingId);
        if (m < 12) {
            (address shop, uint256 id) = _liveShop(seed >> 8);
            if (shop != address(0)) return (m == 11 ? shop : buyer, shop, id);
            m = 14;
        }
        if (m == 12) return (buyer, buyer, listingId);
        if (m == 13) {
            address supplier = escrow.getListing(listingId).supplier;
            return (buyer, supplier == address(0) ? buyer : supplier, listingId);
        }
        if (m == 14) return (buyer, _resellers[(seed >> 8) % _resellers.length], listingId);
        if ((seed >> 8) % 2 == 0) return (buyer, _arbiters[(seed >> 16) % _arbiters.length], listingId);
        return (buyer, _any(seed >> 16), listingId);
    }

    /// @dev A shop that sells (a nonzero shop price) an active listing with stock, from a random
    ///      start, and the listing; or zero.
    function _liveShop(uint256 seed) private view returns (address, uint256) {
        uint256 n = _shopOwner.length;
        for (uint256 j; j < n; ++j) {
            uint256 i = (seed % n + j) % n;
            (address shop, uint256 id) = (_shopOwner[i], _shopListing[i]);
            if (ghostShopPrice[shop][id] == 0) continue;
            ICodeEscrow.Listing memory l = escrow.getListing(id);
            if (l.active && l.committed > l.sold) return (shop, id);
        }
        return (address(0), 0);
    }

    function _afterBuy(string memory op, uint256 orderId, Purchase memory p) private {
        uint256 id = p.listingId;
        ICodeEscrow.Listing memory l = p.listing;
        uint32 q = p.quantity;
        if (orderId != (id << 32 | l.sold)) _fail("stock: the order id is not listingId << 32 | first index");
        if (uint256(l.sold) + q > l.committed) _fail("stock: an order took indexes beyond committed stock");
        for (uint256 i = l.sold; i < uint256(l.sold) + q; ++i) {
            if (_indexSold[id][i]) _fail("stock: a code index was sold twice");
            _indexSold[id][i] = true;
        }
        ghostSold[id] = uint256(l.sold) + q;
        // Every state's deadline is bounded: the order can always be finished within a year.
        if (l.deliveryWindow > 365 days || l.disputeWindow > 365 days || l.arbitrationWindow > 90 days) {
            _fail("windows: an order was placed under a window beyond the contract's bounds");
        }
        ICodeEscrow.Order memory o = ICodeEscrow.Order({
            buyer: p.buyer,
            supplier: l.supplier,
            token: l.token,
            reseller: p.reseller,
            amount: uint128(p.amount),
            bond: uint128(p.bond),
            quantity: q,
            feeBps: l.feeBps,
            resellerCut: uint128(p.cut),
            disputeWindow: l.disputeWindow,
            deadline: uint40(_now() + l.deliveryWindow),
            state: ICodeEscrow.OrderState.Paid,
            releaseDigest: bytes32(0)
        });
        if (escrow.orderHash(orderId) != keccak256(abi.encode(o))) {
            _fail("orders: the stored order is not the one OrderPaid's rules describe");
        }
        _checkOrderPaid(op, orderId, o);
        if (p.reseller != address(0)) {
            ++shopOrders;
            if (p.reseller == p.buyer) ++ownShopOrders;
        }
        if (_ghostDiscount(p.listingId, p.quantity) != 0) ++tieredOrders;
        if (_openPos[orderId] != 0) _fail("stock: an order id was issued twice");
        _orders[orderId] = o;
        _open.push(orderId);
        _openPos[orderId] = _open.length;
        ++transitions[0][uint256(ICodeEscrow.OrderState.Paid)];
    }

    /// @dev OrderPaid's data (its fields after the indexed orderId and buyer).
    struct OrderPaidData {
        bytes32 buyerPubKey;
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
    }

    /// @dev One OrderPaid, for the order, naming its buyer, reseller, amount and reseller's cut
    ///      (what the indexer reads the order from).
    function _checkOrderPaid(string memory op, uint256 orderId, ICodeEscrow.Order memory o) private {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 seen;
        for (uint256 k; k < logs.length; ++k) {
            Vm.Log memory g = logs[k];
            if (g.emitter != address(escrow) || g.topics.length == 0) continue;
            if (g.topics[0] != ICodeEscrow.OrderPaid.selector) continue;
            ++seen;
            OrderPaidData memory d = abi.decode(g.data, (OrderPaidData));
            if (
                g.topics.length != 3 || uint256(g.topics[1]) != orderId
                    || address(uint160(uint256(g.topics[2]))) != o.buyer || d.reseller != o.reseller
                    || d.amount != o.amount || d.resellerCut != o.resellerCut
            ) {
                _fail(string.concat(op, ": OrderPaid does not name the order's buyer, reseller, amount and cut"));
            }
        }
        if (seen != 1) _fail(string.concat(op, ": not one OrderPaid"));
    }

    // ================================================================== coupons

    /// @dev A coupon as presented, and what the rules say of it before `buy` runs.
    struct CouponCall {
        ICodeEscrow.Coupon coupon;
        bytes32 r;
        bytes32 vs;
        uint256 key; // the key it was signed with
        bool genuine; // signed by the listing's supplier over exactly these terms
        bytes want; // its refusal before `buy` runs (`_couponRules`), else empty
    }

    /// @notice `buyWithCoupon`: a purchase picked as `buy`'s, with a coupon (`_couponFor`) of
    ///         every kind: percentage, amount off or both, for the listing or its sku, for anyone
    ///         or one buyer, limited or not; sometimes expired, foreign, another buyer's, signed by
    ///         someone else or changed after signing, 100% or more, an amount off too large, used
    ///         up or revoked. It must be refused exactly as `_couponRules` says, else priced as
    ///         `buy` prices, then `_applyCoupon`; a success counts the use of a limited coupon.
    ///         The supplier's counter word is checked against the calls' after every call.
    function buyWithCoupon(uint256 who, uint256 listingSeed, uint256 seed) external counted {
        _buyWithCoupon(who, listingSeed, seed);
    }

    /// @notice The same as `buyWithCoupon` (weight).
    function buyWithCouponAgain(uint256 who, uint256 listingSeed, uint256 seed) external counted {
        _buyWithCoupon(who, listingSeed, seed);
    }

    function _buyWithCoupon(uint256 who, uint256 listingSeed, uint256 seed) private {
        if (_open.length >= _MAX_OPEN) return;
        Purchase memory p;
        _pick(p, who, listingSeed, seed);
        _listPrice(p);
        CouponCall memory c = _couponFor(p, seed);
        p.couponBps = c.coupon.discountBps;
        p.couponOff = c.coupon.amountOff;
        _applyCoupon(p);
        _pay(p, seed);
        if (c.want.length != 0) (p.want, p.expected) = (c.want, false);
        address s = p.listing.supplier;
        uint256 word = c.coupon.id >> 3;
        _noteCouponWord(s, word);
        _noteCouponWord(vm.addr(c.key), word);
        Books memory before = _books(_mask(s));
        vm.recordLogs();
        vm.prank(p.buyer);
        try escrow.buyWithCoupon{value: p.value}(
            p.listingId, p.quantity, p.maxUnitPrice, p.reseller, p.pubKey, c.coupon, c.r, c.vs
        ) returns (uint256 orderId) {
            _outcome("buyWithCoupon", true, p.expected, "");
            _bought("buyWithCoupon", orderId, p, before);
            if (c.coupon.maxUses != 0) {
                ++ghostCouponUses[s][c.coupon.id];
                _recentCouponId[s] = uint256(c.coupon.id) + 1;
            }
            _countCouponOrder(p, c.coupon);
        } catch (bytes memory err) {
            _refused("buyWithCoupon", p, err);
        }
        _checkCouponWord("buyWithCoupon", s, word);
    }

    /// @notice A supplier (one call in eight, any actor: anyone may revoke its own ids) revokes
    ///         a coupon id, one of those coupons are made with (`_couponId`); never refused. The
    ///         counter must read 2^32 - 1 after, its word's other counters unchanged, with one
    ///         CouponRevoked naming the caller and the id. Half the calls do nothing, so that
    ///         coupons keep ids to use.
    function revokeCoupon(uint256 who, uint256 idSeed) external counted {
        if (idSeed % 2 == 0) return;
        address s = _supplier(who);
        uint64 id = _couponId(idSeed >> 8);
        _noteCouponWord(s, id >> 3);
        vm.recordLogs();
        vm.prank(s);
        try escrow.revokeCoupon(id) {
            _exact("revokeCoupon", true, "", "");
            Vm.Log[] memory logs = vm.getRecordedLogs();
            uint256 seen;
            for (uint256 k; k < logs.length; ++k) {
                Vm.Log memory g = logs[k];
                if (g.emitter != address(escrow) || g.topics.length == 0) continue;
                if (g.topics[0] != ICodeEscrow.CouponRevoked.selector) continue;
                ++seen;
                if (
                    g.topics.length != 3 || g.topics[1] != bytes32(uint256(uint160(s)))
                        || g.topics[2] != bytes32(uint256(id)) || g.data.length != 0
                ) seen = 2;
            }
            if (seen != 1) _fail("revokeCoupon: not one CouponRevoked naming the supplier and the id");
            ghostCouponUses[s][id] = _REVOKED;
            _recentCouponId[s] = uint256(id) + 1;
            ++couponsRevoked;
        } catch (bytes memory err) {
            _exact("revokeCoupon", false, "", err);
        }
        _checkCouponWord("revokeCoupon", s, id >> 3);
    }

    /// @dev A coupon for purchase `p` (its prices before the coupon from `_listPrice`), signed.
    function _couponFor(Purchase memory p, uint256 seed) private view returns (CouponCall memory c) {
        _couponScope(p, c.coupon, seed);
        _couponDiscounts(p, c.coupon, seed);
        _couponLimits(p, c.coupon, seed);
        _couponSign(p, c, seed);
        c.want = _couponRules(p, c);
    }

    /// @dev What it is good for: mostly the listing bought (its sku, which is then ignored, set
    ///      or not) or every listing of the listing's sku (listingId 0); one time in 32 each,
    ///      another listing, another sku, or neither (listingId 0 and sku 0): foreign. For
    ///      anyone, the buyer, or one time in sixteen another actor.
    function _couponScope(Purchase memory p, ICodeEscrow.Coupon memory k, uint256 seed) private view {
        bytes32 own = p.listing.sku;
        bytes32 other = _skus[_r(seed, 31) % 3];
        if (other == own) other = _skus[(_r(seed, 31) + 1) % 3];
        uint256 m = _r(seed, 30) % 32;
        if (m < 16) {
            k.listingId = p.listingId;
            k.sku = m % 2 == 0 ? own : other;
        } else if (m < 29) {
            k.sku = own == bytes32(0) ? other : own;
        } else if (m == 29) {
            k.listingId = p.listingId + 1 + _r(seed, 32) % 3;
            k.sku = own;
        } else if (m == 30) {
            k.sku = other;
        }
        m = _r(seed, 33) % 16;
        if (m == 15) k.buyer = _any(_r(seed, 34));
        else if (m >= 8) k.buyer = p.buyer;
    }

    /// @dev Its discounts: a percentage (none, mostly up to 50%, up to 99.99%, one time in 32
    ///      each 100% or more: EscrowBadBps), and an amount off measured against the price it
    ///      comes out of after the percentage (none, mostly below it, one below it, 1, one time
    ///      in 32 each exactly it or above it: EscrowCouponTooLarge).
    function _couponDiscounts(Purchase memory p, ICodeEscrow.Coupon memory k, uint256 seed) private pure {
        uint256 m = _r(seed, 35) % 32;
        if (m < 10) k.discountBps = 0;
        else if (m < 24) k.discountBps = uint16(_bound(_r(seed, 36), 1, 5_000));
        else if (m < 26) k.discountBps = uint16(_BPS - 1);
        else if (m < 30) k.discountBps = uint16(_bound(_r(seed, 36), 5_001, _BPS - 2));
        else if (m == 30) k.discountBps = uint16(_BPS);
        else k.discountBps = uint16(_bound(_r(seed, 36), _BPS + 1, type(uint16).max));
        uint256 bps = k.discountBps < _BPS ? k.discountBps : 0;
        uint256 base = _lessBps(p.reseller == address(0) ? p.unitPrice : p.supplierUnit, bps);
        uint256 off;
        m = _r(seed, 37) % 32;
        if (m == 30) off = base;
        else if (m == 31) off = base + 1 + (base == 0 ? 0 : _r(seed, 38) % base);
        else if (m < 10 || base < 2) off = 0;
        else if (m < 24) off = _bound(_r(seed, 38), 1, base - 1);
        else if (m < 27) off = base - 1;
        else off = 1;
        k.amountOff = uint96(off > _MAX_AMOUNT ? _MAX_AMOUNT : off);
    }

    /// @dev Its id (one time in four the one the supplier last revoked or had a use counted of,
    ///      if any, else `_couponId`), use limit (none; 1 to 3; exactly one more than used;
    ///      exactly as many as used: used up; 2^32 - 1) and expiry (mostly ahead; now, the last
    ///      second it is good; the largest; one time in 32 past: EscrowCouponExpired).
    function _couponLimits(Purchase memory p, ICodeEscrow.Coupon memory k, uint256 seed) private view {
        uint256 recent = _recentCouponId[p.listing.supplier];
        k.id = recent != 0 && _r(seed, 39) % 4 == 0 ? uint64(recent - 1) : _couponId(_r(seed, 39) >> 8);
        uint256 used = ghostCouponUses[p.listing.supplier][k.id];
        uint256 m = _r(seed, 40) % 8;
        if (m < 3) k.maxUses = 0;
        else if (m < 5) k.maxUses = uint32(_bound(_r(seed, 41), 1, 3));
        else if (m == 5) k.maxUses = uint32(used >= _REVOKED - 1 ? _REVOKED : used + 1);
        else if (m == 6) k.maxUses = uint32(used == _REVOKED ? 1 : used);
        else k.maxUses = type(uint32).max;
        uint256 t = _now();
        m = _r(seed, 42) % 32;
        if (m == 0) k.expiry = uint40(t - 1 - _r(seed, 43) % 1 days);
        else if (m < 3) k.expiry = uint40(t);
        else if (m == 3) k.expiry = type(uint40).max;
        else k.expiry = uint40(t + _bound(_r(seed, 43), 1, 30 days));
    }

    /// @dev A coupon id: mostly one of 20 small ids (three counter words), sometimes one of the
    ///      largest (the last word, the last counter of it) or one in the middle of the range.
    function _couponId(uint256 seed) private pure returns (uint64) {
        uint256 m = seed % 16;
        if (m == 0) return type(uint64).max;
        if (m == 1) return uint64((1 << 63) | ((seed >> 8) % 16));
        return uint64((seed >> 8) % 20);
    }

    /// @dev Signs it: mostly with the listing's supplier's key; one time in 32 each with a
    ///      stranger's key, another supplier's (its own, if it picks the same), then changed in
    ///      one field (use limit, id, amount off, percentage, sku), or with its signature spoiled
    ///      (v's parity flipped, or r zero). A listing whose supplier has no key (the attacker,
    ///      or an actor that became a supplier) gets a stranger's or a supplier's signature.
    function _couponSign(Purchase memory p, CouponCall memory c, uint256 seed) private view {
        ICodeEscrow.Coupon memory k = c.coupon;
        uint256 own = _signingKey[p.listing.supplier];
        uint256 m = _r(seed, 44) % 32;
        if (m == 1 || (own == 0 && m % 2 == 1)) c.key = _signingKeys[_r(seed, 45) % _signingKeys.length];
        else if (m == 0 || own == 0) c.key = _STRANGER_KEY;
        else c.key = own;
        (c.r, c.vs) = _sign(c.key, _couponDigest(k));
        c.genuine = vm.addr(c.key) == p.listing.supplier;
        if (m == 2) {
            uint256 t = _r(seed, 46) % 5;
            if (t == 0) k.maxUses ^= 1;
            else if (t == 1) k.id ^= 8;
            else if (t == 2) k.amountOff ^= 1;
            else if (t == 3) k.discountBps = k.discountBps == 0 ? 1 : k.discountBps - 1;
            else k.sku ^= bytes32(uint256(1));
            c.genuine = false;
        } else if (m == 3) {
            if (_r(seed, 46) % 2 == 0) c.vs ^= bytes32(uint256(1) << 255);
            else c.r = bytes32(0);
            c.genuine = false;
        }
    }

    /// @dev The coupon's EIP-712 digest for this escrow on this chain.
    function _couponDigest(ICodeEscrow.Coupon memory k) private view returns (bytes32) {
        bytes32 domain = keccak256(
            abi.encode(_DOMAIN_TYPEHASH, keccak256("kameng"), keccak256("1"), block.chainid, address(escrow))
        );
        // Every field is static: the struct's ABI encoding is its EIP-712 encodeData.
        return keccak256(abi.encodePacked("\x19\x01", domain, keccak256(abi.encode(_COUPON_TYPEHASH, k))));
    }

    /// @dev `digest` signed with `key`, in EIP-2098's compact form (r, s with v's parity on top).
    function _sign(uint256 key, bytes32 digest) private pure returns (bytes32 r, bytes32 vs) {
        (uint8 v, bytes32 r_, bytes32 s_) = vm.sign(key, digest);
        uint256 s = uint256(s_);
        if (s > _SECP256K1_N / 2) (s, v) = (_SECP256K1_N - s, v == 27 ? 28 : 27);
        return (r_, bytes32(s | (uint256(v - 27) << 255)));
    }

    /// @dev What `buyWithCoupon` refuses before `buy` runs, in its order: an expired coupon
    ///      (now after its expiry), one for another listing that is not for every listing of this
    ///      one's sku (EscrowCouponForeign), one for another buyer (EscrowCouponNotYours(caller)),
    ///      a percentage of 100% or more (EscrowBadBps), an unknown listing, a coupon not signed
    ///      by the listing's supplier over exactly its terms (EscrowBadSignature), an id revoked
    ///      or used `maxUses` times when limited (EscrowCouponUsedUp(id, maxUses)).
    function _couponRules(Purchase memory p, CouponCall memory c) private view returns (bytes memory) {
        ICodeEscrow.Coupon memory k = c.coupon;
        ICodeEscrow.Listing memory l = p.listing;
        if (_now() > k.expiry) return abi.encodeWithSelector(ICodeEscrow.EscrowCouponExpired.selector, uint256(k.expiry));
        if (k.listingId != p.listingId && (k.listingId != 0 || k.sku != l.sku)) {
            return abi.encodeWithSelector(ICodeEscrow.EscrowCouponForeign.selector, p.listingId);
        }
        if (k.buyer != address(0) && k.buyer != p.buyer) {
            return abi.encodeWithSelector(ICodeEscrow.EscrowCouponNotYours.selector, p.buyer);
        }
        if (k.discountBps >= _BPS) return abi.encodeWithSelector(ICodeEscrow.EscrowBadBps.selector, uint256(k.discountBps));
        if (l.supplier == address(0)) return abi.encodeWithSelector(ICodeEscrow.EscrowUnknownListing.selector, p.listingId);
        if (!c.genuine) return abi.encodeWithSelector(ICodeEscrow.EscrowBadSignature.selector);
        uint256 used = ghostCouponUses[l.supplier][k.id];
        if (used == _REVOKED || (k.maxUses != 0 && used >= k.maxUses)) {
            return abi.encodeWithSelector(ICodeEscrow.EscrowCouponUsedUp.selector, uint256(k.id), uint256(k.maxUses));
        }
        return "";
    }

    function _countCouponOrder(Purchase memory p, ICodeEscrow.Coupon memory k) private {
        ++couponOrders["all"];
        if (k.discountBps != 0 && k.amountOff != 0) ++couponOrders["both"];
        else if (k.discountBps != 0) ++couponOrders["percent"];
        else if (k.amountOff != 0) ++couponOrders["amount"];
        if (k.listingId == 0) ++couponOrders["sku-wide"];
        if (k.buyer != address(0)) ++couponOrders["buyer-bound"];
        if (k.maxUses != 0) ++couponOrders["limited"];
        if (p.reseller != address(0)) ++couponOrders["shop"];
        if (_ghostDiscount(p.listingId, p.quantity) != 0) ++couponOrders["tiered"];
    }

    /// @dev Remember a (supplier, counter word) for `checkCoupons`.
    function _noteCouponWord(address s, uint256 word) private {
        if (s == address(0) || _couponWordSeen[s][word]) return;
        _couponWordSeen[s][word] = true;
        _couponSupplier.push(s);
        _couponWord.push(word);
    }

    /// @dev The storage slot of a supplier's counter word: `_couponUses[s][word]`.
    function _couponSlot(address s, uint256 word) private pure returns (bytes32) {
        return keccak256(abi.encode(word, keccak256(abi.encode(s, _COUPON_USES_SLOT))));
    }

    /// @dev A supplier's counter word as the calls left it: coupon id 8 word + j's count in bits
    ///      [32 j, 32 j + 32).
    function _ghostCouponWord(address s, uint256 word) private view returns (uint256 w) {
        for (uint256 j; j < 8; ++j) {
            w |= ghostCouponUses[s][word * 8 + j] << (32 * j);
        }
    }

    /// @dev The stored counter word of `s` disagrees with the calls: the message, else "".
    function _couponWordBad(address s, uint256 word) private view returns (string memory) {
        uint256 stored = uint256(vm.load(address(escrow), _couponSlot(s, word)));
        uint256 ghost = _ghostCouponWord(s, word);
        if (stored == ghost) return "";
        return string.concat(
            "coupons: the use counters of ",
            names[s],
            " in word ",
            _u(word),
            " are ",
            _hex(abi.encode(stored)),
            " where the calls left ",
            _hex(abi.encode(ghost))
        );
    }

    /// @dev After a coupon call, refused or not: the counter word it touched is as the calls left it.
    function _checkCouponWord(string memory op, address s, uint256 word) private {
        if (s == address(0)) return;
        string memory bad = _couponWordBad(s, word);
        if (bytes(bad).length != 0) _fail(string.concat(op, ": ", bad));
    }

    // ================================================================== delivery

    uint256 private constant _PLAIN = 0; // `deliver`
    uint256 private constant _BY_RULE = 1; // `deliverOnChain` where the listing requires it, else `deliver`
    uint256 private constant _ON_CHAIN = 2; // `deliverOnChain`

    /// @dev A delivery batch as sent, and what the rules say of it.
    struct Delivery {
        uint256[] ids;
        ICodeEscrow.Order[] os;
        bytes32[] digests;
        uint256[] seeds;
        ICodeEscrow.PublishedRelease[] rels;
        bool[] mismatch;
        address caller;
        bool onChain;
        uint256 open;
        bytes want; // the revert data the rules give, or empty for success
    }

    /// @notice `deliver` (off-chain release). One call in four takes an order of a listing that
    ///         requires on-chain delivery, if there is one: EscrowReleaseRequired.
    function deliver(uint256 pickSeed, uint256 seed) external counted {
        _deliverVia(pickSeed, seed, _PLAIN);
    }

    /// @notice A delivery as the delivery agent makes it: `deliverOnChain` for an order of a
    ///         listing that requires it, `deliver` otherwise.
    function deliverMore(uint256 pickSeed, uint256 seed) external counted {
        _deliverVia(pickSeed, seed, _BY_RULE);
    }

    /// @notice `deliverOnChain` of any paid orders (allowed whether or not the listing requires
    ///         it), each with a release that hashes to its digest; one call in six with one
    ///         release that does not (EscrowReleaseMismatch, nothing changes), rarely with one
    ///         release too many (EscrowLengthMismatch).
    function deliverOnChain(uint256 pickSeed, uint256 seed) external counted {
        _deliverVia(pickSeed, seed, _ON_CHAIN);
    }

    function _deliverVia(uint256 pickSeed, uint256 seed, uint256 mode) private {
        if (_open.length == 0) return;
        uint256 timing = pickSeed % 8 == 0 ? ANY_TIME : BY_DEADLINE;
        uint256 base = _pickOpen(pickSeed, ICodeEscrow.OrderState.Paid, timing);
        Delivery memory d;
        d.onChain = mode == _ON_CHAIN || (mode == _BY_RULE && _required(base));
        // A plain delivery mostly takes orders it may deliver; one `deliver` in eight does not.
        // `deliver` takes, one call in four, an order it may not deliver, if there is one.
        bool avoid = !d.onChain && (mode == _BY_RULE || _r(seed, 10) % 4 != 0);
        if (!d.onChain && !avoid) base = _pickPaid(pickSeed, timing, base, true);
        else if (avoid && _required(base)) base = _pickPaid(pickSeed, timing, base, false);
        d.ids = _batchOf(base, _orders[base].supplier, seed, avoid);
        uint256 n = d.ids.length;
        d.os = new ICodeEscrow.Order[](n);
        d.digests = new bytes32[](n);
        d.seeds = new uint256[](n);
        d.mismatch = new bool[](n);
        d.caller = _deliverer(_orders[base].supplier, _r(seed, 7));
        for (uint256 i; i < n; ++i) {
            d.os[i] = _orders[d.ids[i]];
        }
        if (d.onChain) _releases(d, seed);
        else _plainDigests(d, seed);
        d.want = _deliveryError(d);
        uint256 extra = d.onChain && _r(seed, 11) % 64 == 0 ? 1 : 0;
        if (extra != 0) {
            // One release too many: refused before anything else.
            ICodeEscrow.PublishedRelease[] memory more = new ICodeEscrow.PublishedRelease[](n + 1);
            for (uint256 i; i < n; ++i) {
                more[i] = d.rels[i];
            }
            more[n] = d.rels[0];
            d.rels = more;
            d.want = abi.encodeWithSelector(ICodeEscrow.EscrowLengthMismatch.selector);
        }
        bytes32[] memory hashes = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            hashes[i] = escrow.orderHash(d.ids[i]);
        }
        Books memory before = _books(_maskOrders(d.os));
        vm.recordLogs();
        vm.prank(d.caller);
        if (d.onChain) {
            try escrow.deliverOnChain(d.ids, d.os, d.digests, d.rels) returns (uint256 delivered) {
                _exact("deliverOnChain", true, d.want, "");
                _delivered(d, delivered);
            } catch (bytes memory err) {
                _exact("deliverOnChain", false, d.want, err);
                _unchanged(d, hashes);
            }
        } else {
            try escrow.deliver(d.ids, d.os, d.digests) returns (uint256 delivered) {
                _exact("deliver", true, d.want, "");
                _delivered(d, delivered);
            } catch (bytes memory err) {
                _exact("deliver", false, d.want, err);
            }
        }
        // Delivery moves no money, on either path.
        _checkBooks(d.onChain ? "deliverOnChain" : "deliver", before, _expect(before));
    }

    /// @dev Digests for `deliver`: mostly a release's, sometimes zero or a digest no release hashes to.
    function _plainDigests(Delivery memory d, uint256 seed) private view {
        for (uint256 i; i < d.ids.length; ++i) {
            uint256 dm = _r(seed, 100 + i) % 32;
            if (dm == 0) {
                d.digests[i] = bytes32(0);
            } else if (dm == 1) {
                d.digests[i] = keccak256(abi.encode("junk digest", seed, i)); // no release behind it
            } else if (_openPos[d.ids[i]] != 0) {
                d.seeds[i] = _r(seed, 200 + i) | (1 << 255); // nonzero: a release
                d.digests[i] =
                    Codes.digest(d.seeds[i], d.ids[i] >> 32, d.ids[i] & type(uint32).max, d.os[i].quantity);
            } else {
                d.digests[i] = keccak256(abi.encode("skipped", seed, i));
            }
        }
    }

    /// @dev Releases for `deliverOnChain` and the digests they hash to: an open order's is mostly
    ///      a real release (provable if bad), sometimes bytes that hash to the digest but are no
    ///      release; a skipped order's is junk that hashes to its digest. Then, one call in six,
    ///      one release is spoiled: its digest zero or unrelated, or its sealed bytes, element root
    ///      or key hash changed.
    function _releases(Delivery memory d, uint256 seed) private view {
        uint256 n = d.ids.length;
        d.rels = new ICodeEscrow.PublishedRelease[](n);
        for (uint256 i; i < n; ++i) {
            uint256 id = d.ids[i];
            ICodeEscrow.PublishedRelease memory rel;
            if (_openPos[id] != 0 && _r(seed, 100 + i) % 32 != 1) {
                d.seeds[i] = _r(seed, 200 + i) | (1 << 255);
                rel = Codes.published(d.seeds[i], id >> 32, id & type(uint32).max, d.os[i].quantity);
            } else {
                rel.sealedRelease = abi.encode("junk release", seed, i);
                rel.elementRoot = keccak256(abi.encode("junk root", seed, i));
                rel.keyHash = keccak256(abi.encode("junk key", seed, i));
            }
            uint256 pm = _r(seed, 300 + i) % 3;
            if (pm == 1) rel.proofs = abi.encode("proofs", seed, i);
            else if (pm == 2) rel.proofs = new bytes(1 + _r(seed, 301 + i) % 200);
            d.digests[i] = Codes.digestOf(rel);
            d.rels[i] = rel;
        }
        if (_r(seed, 12) % 6 != 0) return;
        uint256 j = _r(seed, 13) % n;
        uint256 how = _r(seed, 14) % 5;
        ICodeEscrow.PublishedRelease memory bad = d.rels[j];
        if (how == 0) d.digests[j] = bytes32(0);
        else if (how == 1) d.digests[j] = keccak256(abi.encode("other digest", seed));
        else if (how == 2) bad.sealedRelease = bytes.concat(bad.sealedRelease, hex"00");
        else if (how == 3) bad.elementRoot = bad.elementRoot ^ bytes32(uint256(1));
        else bad.keyHash = bad.keyHash ^ bytes32(uint256(1) << 255);
        d.mismatch[j] = true;
    }

    /// @dev The revert data the rules give for a delivery batch, or empty if it must succeed;
    ///      sets `d.open`. The escrow checks the orders in turn: on-chain, first that the release
    ///      hashes to the digest (even for an order it then skips); then skips a finished or
    ///      unknown order; else the order's state, its caller (once per supplier), for `deliver`
    ///      that the listing does not require on-chain delivery from this order's first index,
    ///      the deadline, a nonzero digest. A batch of skipped orders only reverts EscrowUnknownOrder.
    function _deliveryError(Delivery memory d) private view returns (bytes memory) {
        address allowed;
        for (uint256 i; i < d.ids.length; ++i) {
            uint256 id = d.ids[i];
            if (d.onChain && d.mismatch[i]) {
                return abi.encodeWithSelector(ICodeEscrow.EscrowReleaseMismatch.selector, id);
            }
            if (_openPos[id] == 0) continue;
            ICodeEscrow.Order memory o = d.os[i];
            if (o.state != ICodeEscrow.OrderState.Paid) {
                return abi.encodeWithSelector(ICodeEscrow.EscrowWrongState.selector, id, o.state);
            }
            if (o.supplier != allowed) {
                if (d.caller != o.supplier && !accepted[o.supplier][d.caller]) {
                    return abi.encodeWithSelector(ICodeEscrow.EscrowWrongCaller.selector, d.caller);
                }
                allowed = o.supplier;
            }
            if (!d.onChain && _required(id)) {
                return abi.encodeWithSelector(ICodeEscrow.EscrowReleaseRequired.selector, id);
            }
            if (_now() > o.deadline) {
                return abi.encodeWithSelector(ICodeEscrow.EscrowDeadlinePassed.selector, id, uint256(o.deadline));
            }
            if (d.digests[i] == bytes32(0)) {
                return abi.encodeWithSelector(ICodeEscrow.EscrowBadArgument.selector, "releaseDigest");
            }
            ++d.open;
        }
        if (d.open == 0) return abi.encodeWithSelector(ICodeEscrow.EscrowUnknownOrder.selector, d.ids[0]);
        return "";
    }

    /// @dev After a delivery succeeded: the events say exactly what was delivered (on-chain, each
    ///      OrderDelivered followed by the ReleasePublished of the release sent, which hashes to
    ///      the digest; plain, no ReleasePublished), and the books follow.
    function _delivered(Delivery memory d, uint256 delivered) private {
        string memory op = d.onChain ? "deliverOnChain" : "deliver";
        if (delivered != d.open) _fail(string.concat(op, ": the count returned is not the number of open orders"));
        _checkDeliveryLogs(d, op);
        for (uint256 i; i < d.ids.length; ++i) {
            uint256 id = d.ids[i];
            if (_openPos[id] == 0) {
                if (escrow.orderHash(id) != bytes32(0)) _fail(string.concat(op, ": a skipped order came back"));
                continue;
            }
            ICodeEscrow.Order storage o = _orders[id];
            _move(id, ICodeEscrow.OrderState.Delivered);
            o.deadline = uint40(_now() + o.disputeWindow);
            o.releaseDigest = d.digests[i];
            releaseSeedOf[id] = d.seeds[i];
            deliveredBy[id] = d.onChain ? 2 : 1;
            if (d.onChain && _required(id)) ++requiredOnChainDeliveries;
        }
    }

    function _checkDeliveryLogs(Delivery memory d, string memory op) private {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 seen;
        for (uint256 k; k < logs.length; ++k) {
            Vm.Log memory g = logs[k];
            if (g.emitter != address(escrow) || g.topics.length == 0) continue;
            if (g.topics[0] == ICodeEscrow.ReleasePublished.selector) {
                _fail(string.concat(op, ": ReleasePublished without the OrderDelivered right before it"));
                return;
            }
            if (g.topics[0] != ICodeEscrow.OrderDelivered.selector) continue;
            uint256 id = uint256(g.topics[1]);
            uint256 i;
            while (i < d.ids.length && (d.ids[i] != id || _openPos[id] == 0)) ++i;
            if (i == d.ids.length || abi.decode(g.data, (bytes32)) != d.digests[i]) {
                _fail(string.concat(op, ": OrderDelivered for an order or digest not in the batch"));
                return;
            }
            ++seen;
            if (!d.onChain) continue;
            if (
                k + 1 == logs.length || logs[k + 1].emitter != address(escrow) || logs[k + 1].topics.length != 2
                    || logs[k + 1].topics[0] != ICodeEscrow.ReleasePublished.selector
                    || uint256(logs[k + 1].topics[1]) != id
            ) {
                _fail(string.concat(op, ": an order was delivered without its ReleasePublished"));
                return;
            }
            ++k;
            (bytes memory sealedBytes, bytes32 root, bytes32 keyHash, bytes memory proofs) =
                abi.decode(logs[k].data, (bytes, bytes32, bytes32, bytes));
            bytes32 h = Codes.digestOf(keccak256(sealedBytes), root, keyHash);
            if (h != d.digests[i]) {
                _fail(string.concat(op, ": the release published does not hash to the order's digest"));
            }
            if (
                keccak256(sealedBytes) != keccak256(d.rels[i].sealedRelease)
                    || keccak256(proofs) != keccak256(d.rels[i].proofs)
            ) {
                _fail(string.concat(op, ": the release published is not the one sent"));
            }
            publishedDigest[id] = h;
        }
        if (seen != d.open) _fail(string.concat(op, ": not one OrderDelivered per delivered order"));
    }

    /// @dev A refused delivery changed no order.
    function _unchanged(Delivery memory d, bytes32[] memory hashes) private {
        for (uint256 i; i < d.ids.length; ++i) {
            if (escrow.orderHash(d.ids[i]) != hashes[i]) {
                _fail("deliverOnChain: a refused delivery changed an order");
                return;
            }
        }
    }

    /// @dev Whether the order must be delivered on-chain: its listing requires it and its first
    ///      index is at least onChainFrom - 1.
    function _required(uint256 id) private view returns (bool) {
        uint256 from = ghostOnChainFrom[id >> 32];
        return from != 0 && (id & type(uint32).max) >= from - 1;
    }

    /// @dev A paid order that must (or need not) be delivered on-chain, on the wanted side of its
    ///         deadline if there is one, else `fallbackId`.
    function _pickPaid(uint256 seed, uint256 timing, uint256 fallbackId, bool required)
        private
        view
        returns (uint256)
    {
        uint256 n = _open.length;
        uint256 start = seed % n;
        uint256 inState = fallbackId;
        for (uint256 i; i < n; ++i) {
            uint256 id = _open[(start + i) % n];
            ICodeEscrow.Order storage o = _orders[id];
            if (o.state != ICodeEscrow.OrderState.Paid || _required(id) != required) continue;
            if (timing == ANY_TIME || (timing == BY_DEADLINE) == (_now() <= o.deadline)) return id;
            if (inState == fallbackId) inState = id;
        }
        return inState;
    }

    /// @dev A batch for a delivery: `base`, more open orders of the same supplier, sometimes a
    ///      finished order, an order id that never existed, or an order of another supplier.
    function _batchOf(uint256 base, address s, uint256 seed, bool avoidRequired)
        private
        view
        returns (uint256[] memory ids)
    {
        uint256[] memory buf = new uint256[](10);
        uint256 n;
        buf[n++] = base;
        uint256 want = _r(seed, 1) % 5;
        uint256 start = _r(seed, 2);
        for (uint256 i; i < _open.length && want != 0; ++i) {
            uint256 id = _open[(start % _open.length + i) % _open.length];
            if (id == base) continue;
            if (_orders[id].supplier != s && _r(seed, 3) % 8 != 0) continue;
            if (avoidRequired && _required(id)) continue;
            bool live = _orders[id].state == ICodeEscrow.OrderState.Paid && _now() <= _orders[id].deadline;
            if (!live && _r(seed, 4) % 8 != 0) continue;
            buf[n++] = id;
            --want;
        }
        if (_finished.length != 0 && _r(seed, 5) % 3 == 0) buf[n++] = _finished[_r(seed, 6) % _finished.length];
        if (_r(seed, 8) % 6 == 0) buf[n++] = ((escrow.listingCount() + 7) << 32) | (seed & 0xff); // never placed
        ids = new uint256[](n);
        // Shuffle a little: the finished and unknown ids are not always last.
        uint256 rot = _r(seed, 9) % n;
        for (uint256 i; i < n; ++i) {
            ids[i] = buf[(i + rot) % n];
        }
    }

    // ================================================================== buyer actions

    function confirm(uint256 pickSeed, uint256 callerSeed) external counted {
        (uint256 id, ICodeEscrow.Order memory o) = _target(pickSeed, ICodeEscrow.OrderState.Delivered, ANY_TIME);
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : o.buyer;
        bool expected = _openPos[id] != 0 && o.state == ICodeEscrow.OrderState.Delivered && caller == o.buyer;
        Books memory before = _books(_maskOrder(o));
        vm.prank(caller);
        try escrow.confirm(id, o) {
            _outcome("confirm", true, expected, "");
            Expect memory e = _expect(before);
            _expectComplete(e, o);
            _finish(id, ICodeEscrow.OrderState.Completed);
            _checkBooks("confirm", before, e);
        } catch (bytes memory err) {
            _outcome("confirm", false, expected, err);
        }
    }

    function refund(uint256 pickSeed, uint256 callerSeed) external counted {
        (uint256 id, ICodeEscrow.Order memory o) = _target(pickSeed, ICodeEscrow.OrderState.Paid, PAST_DEADLINE);
        address caller = _anyOrSink(callerSeed);
        bool expected = _openPos[id] != 0 && o.state == ICodeEscrow.OrderState.Paid && _now() > o.deadline;
        Books memory before = _books(_maskOrder(o));
        vm.prank(caller);
        try escrow.refund(id, o) {
            _outcome("refund", true, expected, "");
            Expect memory e = _expect(before);
            _expectRefund(e, o);
            _finish(id, ICodeEscrow.OrderState.Refunded);
            _checkBooks("refund", before, e);
        } catch (bytes memory err) {
            _outcome("refund", false, expected, err);
        }
    }

    function dispute(uint256 pickSeed, uint256 callerSeed) external counted {
        _dispute(pickSeed, callerSeed);
    }

    /// @notice The same as `dispute` (weight).
    function disputeAgain(uint256 pickSeed, uint256 callerSeed) external counted {
        _dispute(pickSeed, callerSeed);
    }

    function _dispute(uint256 pickSeed, uint256 callerSeed) private {
        (uint256 id, ICodeEscrow.Order memory o) = _target(pickSeed, ICodeEscrow.OrderState.Delivered, BY_DEADLINE);
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : o.buyer;
        bool expected = _openPos[id] != 0 && o.state == ICodeEscrow.OrderState.Delivered && caller == o.buyer
            && _now() <= o.deadline;
        uint256 window = escrow.getListing(id >> 32).arbitrationWindow;
        vm.prank(caller);
        try escrow.dispute(id, o, "ipfs://evidence", keccak256("evidence")) {
            _outcome("dispute", true, expected, "");
            if (window < 1 hours || window > 90 days) _fail("dispute: arbitration window outside 1 hour..90 days");
            _move(id, ICodeEscrow.OrderState.Disputed);
            _orders[id].deadline = uint40(_now() + window);
        } catch (bytes memory err) {
            _outcome("dispute", false, expected, err);
        }
    }

    function addEvidence(uint256 pickSeed, uint256 callerSeed) external counted {
        (uint256 id, ICodeEscrow.Order memory o) = _target(pickSeed, ICodeEscrow.OrderState.Disputed, ANY_TIME);
        uint256 m = callerSeed % 4;
        address caller = m == 0 ? o.buyer : m == 1 ? o.supplier : _keyCandidate(callerSeed >> 8);
        bool expected = _openPos[id] != 0 && o.state == ICodeEscrow.OrderState.Disputed
            && (caller == o.buyer || caller == o.supplier || accepted[o.supplier][caller]);
        bytes32 h = escrow.orderHash(id);
        vm.prank(caller);
        try escrow.addEvidence(id, o, "ipfs://more", keccak256("more")) {
            _outcome("addEvidence", true, expected, "");
            if (escrow.orderHash(id) != h) _fail("addEvidence: changed the order");
        } catch (bytes memory err) {
            _outcome("addEvidence", false, expected, err);
        }
    }

    // ================================================================== settlement and arbitration

    function settle(uint256 pickSeed, uint256 seed) external counted {
        uint256[] memory buf = new uint256[](12);
        uint256 n;
        uint256 start = pickSeed;
        bool expected = true;
        uint256 open;
        for (uint256 i; i < _open.length && n < 6; ++i) {
            uint256 id = _open[(start % _open.length + i) % _open.length];
            ICodeEscrow.Order storage o = _orders[id];
            bool ready = o.state == ICodeEscrow.OrderState.Delivered && _now() > o.deadline;
            if (!ready && _r(seed, i) % 16 != 0) continue;
            if (!ready) expected = false;
            buf[n++] = id;
            ++open;
        }
        // Orders already finished (confirmed, settled, resolved, refunded) and unknown ids are skipped.
        for (uint256 k; k < _r(seed, 50) % 3 && _finished.length != 0; ++k) {
            buf[n++] = _finished[_r(seed, 51 + k) % _finished.length];
        }
        if (_r(seed, 60) % 8 == 0) buf[n++] = (escrow.listingCount() + 9) << 32;
        if (n == 0) return;
        uint256[] memory ids = new uint256[](n);
        ICodeEscrow.Order[] memory os = new ICodeEscrow.Order[](n);
        uint256 rot = _r(seed, 61) % n;
        for (uint256 i; i < n; ++i) {
            ids[i] = buf[(i + rot) % n];
            os[i] = _orders[ids[i]];
        }
        address caller = _anyOrSink(_r(seed, 62));
        Books memory before = _books(_maskOrders(os));
        vm.prank(caller);
        try escrow.settle(ids, os) returns (uint256 settled) {
            // A batch of finished orders only has nothing to do; whether it reverts is the
            // escrow's choice. With one open order in it, it must settle.
            if (open != 0) _outcome("settle", true, expected, "");
            if (settled != open) _fail("settle: the count returned is not the number of open orders");
            Expect memory e = _expect(before);
            for (uint256 i; i < n; ++i) {
                if (_openPos[ids[i]] == 0) continue;
                _expectComplete(e, os[i]);
                _finish(ids[i], ICodeEscrow.OrderState.Completed);
            }
            _checkBooks("settle", before, e);
        } catch (bytes memory err) {
            if (open != 0) _outcome("settle", false, expected, err);
        }
    }

    function rule(uint256 pickSeed, uint256 callerSeed, uint256 bpsSeed) external counted {
        (uint256 id, ICodeEscrow.Order memory o) = _target(pickSeed, ICodeEscrow.OrderState.Disputed, ANY_TIME);
        address caller = callerSeed % 4 == 0 ? _any(callerSeed >> 8) : _holder(escrow.ARBITER_ROLE(), callerSeed >> 8);
        uint16 buyerBps = uint16(_r(bpsSeed, 1) % 16 == 0 ? _BPS + 1 : _bound(_r(bpsSeed, 2), 0, _BPS));
        uint16 slashBps = uint16(_r(bpsSeed, 3) % 16 == 0 ? _BPS + 1 : _bound(_r(bpsSeed, 4), 0, _BPS));
        bool party = _isParty(o, caller);
        bool expected = _openPos[id] != 0 && o.state == ICodeEscrow.OrderState.Disputed
            && escrow.hasRole(escrow.ARBITER_ROLE(), caller) && !party && buyerBps <= _BPS && slashBps <= _BPS;
        Books memory before = _books(_maskOrder(o));
        vm.prank(caller);
        try escrow.rule(id, o, buyerBps, slashBps, keccak256("bundle"), "fuzz") {
            _outcome("rule", true, expected, "");
            if (party) _fail("parties: a party to the order ruled on it");
            Expect memory e = _expect(before);
            _expectResolve(e, o, buyerBps, slashBps);
            _finish(id, ICodeEscrow.OrderState.Resolved);
            _checkBooks("rule", before, e);
        } catch (bytes memory err) {
            _outcome("rule", false, expected, err);
        }
    }

    function resolveTimedOut(uint256 pickSeed, uint256 callerSeed) external counted {
        (uint256 id, ICodeEscrow.Order memory o) = _target(pickSeed, ICodeEscrow.OrderState.Disputed, PAST_DEADLINE);
        address caller = _anyOrSink(callerSeed);
        bool expected = _openPos[id] != 0 && o.state == ICodeEscrow.OrderState.Disputed && _now() > o.deadline;
        Books memory before = _books(_maskOrder(o));
        vm.prank(caller);
        try escrow.resolveTimedOut(id, o) {
            _outcome("resolveTimedOut", true, expected, "");
            Expect memory e = _expect(before);
            _expectResolve(e, o, _BPS / 2, 0);
            _finish(id, ICodeEscrow.OrderState.Resolved);
            _checkBooks("resolveTimedOut", before, e);
        } catch (bytes memory err) {
            _outcome("resolveTimedOut", false, expected, err);
        }
    }

    function proveBadCode(uint256 pickSeed, uint256 seed) external counted {
        _proveBadCode(pickSeed, seed);
    }

    /// @notice The same as `proveBadCode` (weight).
    function proveBadCodeAgain(uint256 pickSeed, uint256 seed) external counted {
        _proveBadCode(pickSeed, seed);
    }

    function _proveBadCode(uint256 pickSeed, uint256 seed) private {
        (uint256 id, ICodeEscrow.Order memory o) = _target(
            pickSeed,
            seed % 3 == 0 ? ICodeEscrow.OrderState.Disputed : ICodeEscrow.OrderState.Delivered,
            seed % 3 == 0 ? ANY_TIME : BY_DEADLINE
        );
        if (o.quantity == 0) return;
        (ICodeEscrow.BadCodeProof memory proof, bool provable) = _proof(id, o, seed);
        address caller = _r(seed, 9) % 8 == 0 ? _any(seed) : o.buyer;
        bool stateOk = (o.state == ICodeEscrow.OrderState.Delivered && _now() <= o.deadline)
            || o.state == ICodeEscrow.OrderState.Disputed;
        bool expected = _openPos[id] != 0 && stateOk && caller == o.buyer && provable;
        Books memory before = _books(_maskOrder(o));
        vm.prank(caller);
        try escrow.proveBadCode(id, o, proof) {
            _outcome("proveBadCode", true, expected, "");
            Expect memory e = _expect(before);
            _expectResolve(e, o, _BPS, _BPS);
            _finish(id, ICodeEscrow.OrderState.Resolved);
            _checkBooks("proveBadCode", before, e);
        } catch (bytes memory err) {
            _outcome("proveBadCode", false, expected, err);
        }
    }

    /// @dev A proof for one code of the order's release, and whether it must win: the element is
    ///      not a code (EMPTY, LONG), or it is WRONG and the proof cites its batch, whose root is real.
    function _proof(uint256 id, ICodeEscrow.Order memory o, uint256 seed)
        private
        view
        returns (ICodeEscrow.BadCodeProof memory proof, bool provable)
    {
        uint256 release = releaseSeedOf[id];
        uint256 listingId = id >> 32;
        uint256 first = id & type(uint32).max;
        uint256 j = _r(seed, 1) % o.quantity;
        proof.index = first + j;
        proof.sealedHash = Codes.sealedHash(release);
        proof.key = Codes.releaseKey(release);
        (proof.salt, proof.ciphertext) = Codes.element(release, listingId, first, j);
        proof.elementProof = Codes.proof(Codes.elementLeaves(release, listingId, first, o.quantity), j);
        uint256 batches = ghostBatches[listingId];
        uint256 bi;
        for (; bi < batches; ++bi) {
            ICodeEscrow.Batch memory b = escrow.getBatch(listingId, bi);
            if (proof.index >= b.firstIndex && proof.index < uint256(b.firstIndex) + b.count) break;
        }
        bool rightBatch = bi < batches && _r(seed, 2) % 8 != 0;
        proof.batchIndex = rightBatch ? bi : bi + 1;
        proof.committed = Codes.commitment(listingId, proof.index);
        if (bi < batches) {
            ICodeEscrow.Batch memory b = escrow.getBatch(listingId, bi);
            proof.leafProof =
                Codes.proof(Codes.batchLeaves(listingId, b.firstIndex, b.count), proof.index - b.firstIndex);
        }
        uint256 kind = Codes.elementKind(release, j);
        provable = release != 0
            && (kind == Codes.EMPTY || kind == Codes.LONG || (kind == Codes.WRONG && rightBatch && _realRoot[listingId][bi]));
    }

    // ================================================================== balances

    function withdraw(uint256 who, uint256 tokenSeed, uint256 toSeed) external counted {
        uint256 ti = tokenSeed % 3;
        address t = tokens[ti];
        address a = who % 8 == 0 ? _any(who >> 8) : _holderOf(t, who >> 8);
        uint256 amount = escrow.balanceOf(a, t);
        address to = _recipient(toSeed);
        bool expected = amount != 0 && to != address(0) && _receives(to, ti);
        Books memory before = _books(_mask(a));
        uint256 toBefore = _external(to, ti);
        vm.prank(a);
        try escrow.withdraw(t, to) {
            _outcome("withdraw", true, expected, "");
            Expect memory e = _expect(before);
            _addBalance(e, a, ti, -int256(amount));
            _checkBooks("withdraw", before, e);
            if (to != address(escrow) && _external(to, ti) != toBefore + amount) {
                _fail("withdraw: the recipient did not receive the whole balance");
            }
        } catch (bytes memory err) {
            _outcome("withdraw", false, expected, err);
        }
    }

    function withdrawFees(uint256 tokenSeed, uint256 toSeed, uint256 callerSeed) external counted {
        uint256 ti = tokenSeed % 3;
        address t = tokens[ti];
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : escrow.defaultAdmin();
        uint256 amount = escrow.feesOf(t);
        address to = _recipient(toSeed);
        bool expected = escrow.hasRole(bytes32(0), caller) && amount != 0 && to != address(0) && _receives(to, ti);
        Books memory before = _books(new bool[](actors.length));
        uint256 toBefore = _external(to, ti);
        vm.prank(caller);
        try escrow.withdrawFees(t, to) {
            _outcome("withdrawFees", true, expected, "");
            Expect memory e = _expect(before);
            e.fees[ti] -= int256(amount);
            _checkBooks("withdrawFees", before, e);
            if (to != address(escrow) && _external(to, ti) != toBefore + amount) {
                _fail("withdrawFees: the recipient did not receive the fees");
            }
        } catch (bytes memory err) {
            _outcome("withdrawFees", false, expected, err);
        }
    }

    // ================================================================== admin

    function setConfig(uint256 seed, uint256 callerSeed) external counted {
        ICodeEscrow.Config memory c;
        c.feeRecipient = _r(seed, 1) % 32 == 0 ? address(0) : _any(seed);
        c.feeBps = uint16(_bound(_r(seed, 2), 0, 1_500));
        uint256 extreme = _r(seed, 4) % 16;
        if (extreme == 0) c.feeBps = 5_000; // the most; listings keep their fee terms until updated
        else if (extreme == 1) c.feeBps = 0;
        else if (extreme == 2) c.feeBps = uint16(5_001 + _r(seed, 3) % 5_000); // above the cap
        c.minBondBps = uint16(_r(seed, 5) % 3 == 0 ? 0 : _bound(_r(seed, 6), 0, 2_000));
        bool edgy = _r(seed, 14) % 4 == 0; // one config in four tries edges and invalid windows
        c.arbitrationWindow = _window(_r(seed, 7), 1 hours, 90 days, edgy);
        c.minDeliveryWindow = _window(_r(seed, 8), 1 minutes, 3 days, edgy);
        c.maxDeliveryWindow = _window(_r(seed, 9), c.minDeliveryWindow, 30 days, edgy);
        c.minDisputeWindow = _window(_r(seed, 10), 1 hours, 3 days, edgy);
        c.maxDisputeWindow = _window(_r(seed, 11), c.minDisputeWindow, 30 days, edgy);
        if (edgy && _r(seed, 12) % 4 == 0) c.maxDeliveryWindow = 365 days;
        if (edgy && _r(seed, 13) % 4 == 0) c.maxDisputeWindow = 365 days + 1;
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : escrow.defaultAdmin();
        bool expected = escrow.hasRole(bytes32(0), caller) && c.feeRecipient != address(0)
            && c.feeBps <= 5_000 && c.minBondBps <= _BPS && c.arbitrationWindow >= 1 hours
            && c.arbitrationWindow <= 90 days && c.minDeliveryWindow >= 1 minutes
            && c.maxDeliveryWindow >= c.minDeliveryWindow && c.maxDeliveryWindow <= 365 days
            && c.minDisputeWindow >= 1 hours && c.maxDisputeWindow >= c.minDisputeWindow
            && c.maxDisputeWindow <= 365 days;
        vm.prank(caller);
        try escrow.setConfig(c) {
            _outcome("setConfig", true, expected, "");
            if (keccak256(abi.encode(escrow.config())) != keccak256(abi.encode(c))) _fail("setConfig: not stored");
        } catch (bytes memory err) {
            _outcome("setConfig", false, expected, err);
        }
    }

    function setTokenAllowed(uint256 tokenSeed, uint256 allowSeed, uint256 callerSeed) external counted {
        bool allowed = allowSeed % 4 != 0;
        uint256 ti = tokenSeed % 8 == 0 ? 0 : 1 + tokenSeed % 2;
        address t = tokens[ti];
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : escrow.defaultAdmin();
        bool expected = escrow.hasRole(bytes32(0), caller) && t != address(0);
        vm.prank(caller);
        try escrow.setTokenAllowed(t, allowed) {
            _outcome("setTokenAllowed", true, expected, "");
            ghostAllowed[t] = allowed;
        } catch (bytes memory err) {
            _outcome("setTokenAllowed", false, expected, err);
        }
    }

    function authorize(uint256 who, uint256 skuSeed, uint256 callerSeed) external counted {
        address s = _supplier(who);
        bytes32 sku_ = skuSeed % 32 == 0 ? bytes32(0) : _skus[skuSeed % 3];
        bytes32 attestation = (skuSeed >> 8) % 6 == 0 ? bytes32(0) : keccak256(abi.encode("attestation", skuSeed));
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : _holder(escrow.RIGHTS_ADMIN_ROLE(), callerSeed);
        bool expected = escrow.hasRole(escrow.RIGHTS_ADMIN_ROLE(), caller) && sku_ != bytes32(0);
        vm.prank(caller);
        try escrow.authorize(s, sku_, attestation) {
            _outcome("authorize", true, expected, "");
            if (escrow.authorization(s, sku_) != attestation) _fail("authorize: not stored");
        } catch (bytes memory err) {
            _outcome("authorize", false, expected, err);
        }
    }

    function closeListing(uint256 listingSeed, uint256 callerSeed) external counted {
        if ((callerSeed >> 128) % 4 != 0) return; // keep most listings open
        uint256 id = _listing(listingSeed);
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : _holder(escrow.RIGHTS_ADMIN_ROLE(), callerSeed);
        bool expected = escrow.hasRole(escrow.RIGHTS_ADMIN_ROLE(), caller) && id != 0 && id <= escrow.listingCount();
        vm.prank(caller);
        try escrow.closeListing(id) {
            _outcome("closeListing", true, expected, "");
            if (escrow.getListing(id).active) _fail("closeListing: still active");
        } catch (bytes memory err) {
            _outcome("closeListing", false, expected, err);
        }
    }

    function pause(uint256 callerSeed) external counted {
        if (_r(callerSeed, 0) % 8 != 0) return; // a pause stops most business: keep it rare (hashed: the fuzzer favours 0)
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : _holder(escrow.PAUSER_ROLE(), callerSeed);
        bool expected = escrow.hasRole(escrow.PAUSER_ROLE(), caller) && !escrow.paused();
        vm.prank(caller);
        try escrow.pause() {
            _outcome("pause", true, expected, "");
        } catch (bytes memory err) {
            _outcome("pause", false, expected, err);
        }
    }

    function unpause(uint256 callerSeed) external counted {
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : _holder(escrow.PAUSER_ROLE(), callerSeed);
        bool expected = escrow.hasRole(escrow.PAUSER_ROLE(), caller) && escrow.paused();
        vm.prank(caller);
        try escrow.unpause() {
            _outcome("unpause", true, expected, "");
        } catch (bytes memory err) {
            _outcome("unpause", false, expected, err);
        }
    }

    /// @notice grantRole / revokeRole / renounceRole of the arbiter, pauser and rights-admin roles
    ///         (and attempts on the default admin role, which only moves in two steps).
    function roles(uint256 roleSeed, uint256 accountSeed, uint256 callerSeed) external counted {
        bytes32[4] memory all =
            [escrow.ARBITER_ROLE(), escrow.PAUSER_ROLE(), escrow.RIGHTS_ADMIN_ROLE(), bytes32(0)];
        uint256 ri = roleSeed % 16 == 0 ? 3 : roleSeed % 3;
        bytes32 role = all[ri];
        // Arbiters mostly among the arbiters and delivery keys (keys may never accept once arbiters).
        address account = ri == 0 && accountSeed % 4 != 0 ? _keyCandidate(accountSeed >> 8) : _any(accountSeed);
        if (account == address(0)) account = _any(accountSeed);
        uint256 op = (roleSeed >> 8) % 3;
        address admin = escrow.defaultAdmin();
        address caller = callerSeed % 8 == 0 ? _any(callerSeed >> 8) : admin;
        if (op == 2) caller = account;
        bool isAdmin = caller == admin && admin != address(0);
        vm.prank(caller);
        if (op == 0) {
            try escrow.grantRole(role, account) {
                _outcome("grantRole", true, isAdmin && ri != 3, "");
            } catch (bytes memory err) {
                _outcome("grantRole", false, isAdmin && ri != 3, err);
            }
        } else if (op == 1) {
            try escrow.revokeRole(role, account) {
                _outcome("revokeRole", true, isAdmin && ri != 3, "");
            } catch (bytes memory err) {
                _outcome("revokeRole", false, isAdmin && ri != 3, err);
            }
        } else {
            // Renouncing the default admin role needs a scheduled transfer to zero, never made
            // here; for anyone but the admin it is a no-op, like any role one does not hold.
            bool expected = ri != 3 || account != admin;
            try escrow.renounceRole(role, account) {
                _outcome("renounceRole", true, expected, "");
            } catch (bytes memory err) {
                _outcome("renounceRole", false, expected, err);
            }
        }
    }

    /// @notice The default admin's two-step transfer and delay (AccessControlDefaultAdminRules).
    function adminTransfer(uint256 opSeed, uint256 seed) external counted {
        address admin = escrow.defaultAdmin();
        (address pending, uint48 schedule) = escrow.pendingDefaultAdmin();
        uint256 op = opSeed % 5;
        if (op == 0) {
            address candidate = _any(seed);
            address caller = seed % 8 == 0 ? _any(seed >> 8) : admin;
            vm.prank(caller);
            try escrow.beginDefaultAdminTransfer(candidate) {
                _outcome("beginDefaultAdminTransfer", true, caller == admin, "");
            } catch (bytes memory err) {
                _outcome("beginDefaultAdminTransfer", false, caller == admin, err);
            }
        } else if (op == 1) {
            address caller = seed % 4 == 0 ? _any(seed >> 8) : pending;
            bool expected = caller == pending && pending != address(0) && schedule != 0 && schedule < _now();
            vm.prank(caller);
            try escrow.acceptDefaultAdminTransfer() {
                _outcome("acceptDefaultAdminTransfer", true, expected, "");
                if (escrow.defaultAdmin() != pending) _fail("acceptDefaultAdminTransfer: admin did not move");
            } catch (bytes memory err) {
                _outcome("acceptDefaultAdminTransfer", false, expected, err);
            }
        } else if (op == 2) {
            address caller = seed % 8 == 0 ? _any(seed >> 8) : admin;
            vm.prank(caller);
            try escrow.cancelDefaultAdminTransfer() {
                _outcome("cancelDefaultAdminTransfer", true, caller == admin, "");
            } catch (bytes memory err) {
                _outcome("cancelDefaultAdminTransfer", false, caller == admin, err);
            }
        } else if (op == 3) {
            address caller = seed % 8 == 0 ? _any(seed >> 8) : admin;
            vm.prank(caller);
            try escrow.changeDefaultAdminDelay(uint48(_bound(seed >> 16, 0, 5 days))) {
                _outcome("changeDefaultAdminDelay", true, caller == admin, "");
            } catch (bytes memory err) {
                _outcome("changeDefaultAdminDelay", false, caller == admin, err);
            }
        } else {
            address caller = seed % 8 == 0 ? _any(seed >> 8) : admin;
            vm.prank(caller);
            try escrow.rollbackDefaultAdminDelay() {
                _outcome("rollbackDefaultAdminDelay", true, caller == admin, "");
            } catch (bytes memory err) {
                _outcome("rollbackDefaultAdminDelay", false, caller == admin, err);
            }
        }
    }

    // ================================================================== invariants (views)

    /// @notice Conservation, per token: the escrow holds exactly every ledger balance (what fits
    ///         the packed ledger plus the overflow, `balanceOf`; resellers' commissions included:
    ///         every order's reseller is an actor, `checkOrders`), every bond (free and reserved),
    ///         every open order's payment and the platform's fees. Also:
    ///         each supplier's reserved bond is the sum of its open orders' bonds, and (second
    ///         result) no bond, free + reserved, is above 2^80 - 1, the cap that keeps returns
    ///         from overflowing.
    function checkConservation() public view returns (string memory bad, string memory capBad) {
        uint256 slots = actors.length * 3;
        uint256[] memory reserved = new uint256[](slots);
        uint256[] memory owed = new uint256[](3);
        for (uint256 k; k < _open.length; ++k) {
            ICodeEscrow.Order storage o = _orders[_open[k]];
            uint256 ti = _tokenIndex(o.token);
            owed[ti] += o.amount;
            uint256 i = _actorIndex[o.supplier];
            if (i != 0) reserved[(i - 1) * 3 + ti] += o.bond;
        }
        for (uint256 ti; ti < 3; ++ti) {
            address t = tokens[ti];
            uint256 sum = owed[ti] + escrow.feesOf(t);
            for (uint256 i; i < actors.length; ++i) {
                ICodeEscrow.Bond memory b = escrow.bondOf(actors[i], t);
                sum += escrow.balanceOf(actors[i], t) + b.free + b.reserved;
                if (reserved[i * 3 + ti] != b.reserved && bytes(bad).length == 0) {
                    bad = string.concat(
                        "conservation: reserved bond of ",
                        names[actors[i]],
                        " in token ",
                        _u(ti),
                        " is ",
                        _u(b.reserved),
                        ", its open orders reserve ",
                        _u(reserved[i * 3 + ti])
                    );
                }
                if (uint256(b.free) + b.reserved > _MAX_BOND && bytes(capBad).length == 0) {
                    capBad = string.concat("bond cap: ", names[actors[i]], " holds free + reserved bond above 2^80-1");
                }
            }
            uint256 held = _external(address(escrow), ti);
            if (held != sum && bytes(bad).length == 0) {
                bad = string.concat("conservation: escrow holds ", _u(held), " of token ", _u(ti), " but owes ", _u(sum));
            }
        }
    }

    /// @notice Stock: sold <= committed for every listing, both equal to the ghosts, and every open
    ///         order's code range inside the sold part of its listing.
    function checkStock() public view returns (string memory) {
        uint256 count = escrow.listingCount();
        for (uint256 id = 1; id <= count; ++id) {
            ICodeEscrow.Listing memory l = escrow.getListing(id);
            if (l.sold > l.committed) return string.concat("stock: listing ", _u(id), " sold more than committed");
            if (l.sold != ghostSold[id] || l.committed != ghostCommitted[id] || l.batchCount != ghostBatches[id]) {
                return string.concat("stock: listing ", _u(id), " sold/committed/batches differ from the calls made");
            }
            if (l.onChainFrom != ghostOnChainFrom[id]) {
                return string.concat(
                    "on-chain: onChainFrom of listing ", _u(id), " is not as the first requireOnChainRelease set it"
                );
            }
        }
        for (uint256 k; k < _open.length; ++k) {
            uint256 id = _open[k];
            ICodeEscrow.Listing memory l = escrow.getListing(id >> 32);
            if ((id & type(uint32).max) + _orders[id].quantity > l.sold) {
                return string.concat("stock: order ", _u(id), " lies outside its listing's sold range");
            }
        }
        return "";
    }

    /// @notice Every open order is stored as the hash of the struct its legal history gives, and
    ///         every finished order is deleted. Of that stored order: its reseller's cut never
    ///         exceeds its amount, a plain order (no reseller) has none, and its reseller is one
    ///         of the actors, whose balances conservation counts.
    function checkOrders() public view returns (string memory) {
        for (uint256 k; k < _open.length; ++k) {
            uint256 id = _open[k];
            ICodeEscrow.Order storage o = _orders[id];
            if (o.resellerCut > o.amount) {
                return string.concat("resellers: order ", _u(id), "'s resellerCut exceeds its amount");
            }
            if (o.reseller == address(0) ? o.resellerCut != 0 : _actorIndex[o.reseller] == 0) {
                return string.concat("resellers: order ", _u(id), " has a cut without a reseller, or a reseller no actor");
            }
            if (escrow.orderHash(id) != keccak256(abi.encode(_orders[id]))) {
                return string.concat(
                    "orders: order ",
                    _u(id),
                    " (state ",
                    _u(uint256(_orders[id].state)),
                    ") is not stored as its legal history says"
                );
            }
        }
        for (uint256 k; k < _finished.length; ++k) {
            if (escrow.orderHash(_finished[k]) != bytes32(0)) {
                return string.concat("orders: finished order ", _u(_finished[k]), " is still stored");
            }
        }
        return "";
    }

    /// @notice Every order that reached Delivered (open in Delivered or Disputed, or finished
    ///         Completed or Resolved) of a listing that requires on-chain delivery from its first
    ///         index (firstIndex >= onChainFrom - 1) was delivered by `deliverOnChain`, and the
    ///         release its ReleasePublished event carries hashes to the digest the order holds;
    ///         so does that of any order delivered on-chain. (onChainFrom itself: `checkStock`.)
    function checkOnChain() public view returns (string memory) {
        uint256 n = _open.length;
        for (uint256 k; k < n + _finished.length; ++k) {
            uint256 id = k < n ? _open[k] : _finished[k - n];
            ICodeEscrow.Order storage o = _orders[id];
            if (o.state == ICodeEscrow.OrderState.Paid || o.state == ICodeEscrow.OrderState.Refunded) continue;
            uint256 by = deliveredBy[id];
            if (by == 0) return string.concat("on-chain: order ", _u(id), " reached Delivered by no delivery call");
            if (_required(id) && by != 2) {
                return string.concat(
                    "on-chain: order ", _u(id), " of a listing that requires on-chain delivery was delivered without it"
                );
            }
            if (by == 2 && publishedDigest[id] != o.releaseDigest) {
                return string.concat("on-chain: the release published for order ", _u(id), " does not hash to its digest");
            }
        }
        return "";
    }

    /// @notice Every listing's reseller price and every shop price a call set are as the calls
    ///         left them (`setResellerPrice`, `setShopPrice`; nothing else changes them).
    function checkShops() public view returns (string memory) {
        uint256 count = escrow.listingCount();
        for (uint256 id = 1; id <= count + 1; ++id) {
            if (escrow.resellerPrice(id) != ghostResellerPrice[id]) {
                return string.concat("resellers: the reseller price of listing ", _u(id), " is not as the calls left it");
            }
            if (escrow.tiers(id) != ghostTiers[id] || escrow.getListing(id).tiered != (ghostTiers[id] != 0)) {
                return string.concat("tiers: the volume tiers of listing ", _u(id), " are not as the calls left them");
            }
        }
        for (uint256 i; i < _shopOwner.length; ++i) {
            address shop = _shopOwner[i];
            uint256 id = _shopListing[i];
            if (escrow.shopPrice(shop, id) != ghostShopPrice[shop][id]) {
                return string.concat(
                    "resellers: the price of listing ", _u(id), " in the shop of ", names[shop], " is not as the calls left it"
                );
            }
        }
        return "";
    }

    /// @notice Every coupon counter word a call touched holds, counter by counter, the use counts
    ///         the calls left (`ghostCouponUses`: limited uses counted, revoked ids 2^32 - 1).
    function checkCoupons() public view returns (string memory) {
        for (uint256 i; i < _couponSupplier.length; ++i) {
            string memory bad = _couponWordBad(_couponSupplier[i], _couponWord[i]);
            if (bytes(bad).length != 0) return bad;
        }
        return "";
    }

    /// @notice Nobody is a delivery key (a party) of a supplier unless it accepted; proposals are as
    ///         the calls left them.
    function checkParties() public view returns (string memory) {
        for (uint256 i; i < _pairSupplier.length; ++i) {
            address s = _pairSupplier[i];
            address k = _pairKey[i];
            if (escrow.isDeliveryKey(s, k) != accepted[s][k]) {
                string memory why = "the key never accepted";
                if (accepted[s][k]) why = "the key accepted and was not removed";
                else if (escrow.hasRole(escrow.ARBITER_ROLE(), k)) why = "the key, an arbiter, never accepted";
                return string.concat(
                    "parties: isDeliveryKey(", names[s], ", ", names[k], ") disagrees with the calls made: ", why
                );
            }
            if (escrow.isProposedDeliveryKey(s, k) != proposed[s][k]) {
                return string.concat("parties: a delivery-key proposal is not as the calls left it");
            }
        }
        if (attacker.guardBypassed()) return "reentrancy: a re-entrant call got past the guard";
        return "";
    }

    /// @notice One `extsload` call answers with the words the escrow's storage holds (`vm.load`)
    ///         for its first 20 slots (every top-level state variable) and for the slots
    ///         EscrowReader reads of: the settings, the listing count, and, picked anew at each
    ///         check, one listing, its reseller price and one of its batches, one actor's ledger and
    ///         overflow and the fees in every token, one open and one finished order, one
    ///         delivery-key pair met, one authorization of a supplier and one shop price set; and
    ///         one coupon counter word a call touched.
    ///         (A sample keeps the check cheap; over a campaign it reaches every one.)
    function checkReader() public view returns (string memory) {
        bytes32[] memory slots = new bytes32[](64);
        uint256 n;
        for (; n < 20; ++n) {
            slots[n] = bytes32(n);
        }
        n = _append(slots, n, EscrowReader.configSlots());
        n = _append(slots, n, EscrowReader.listingCountSlots());
        uint256 count = escrow.listingCount();
        if (count != 0) {
            uint256 id = 1 + _r(calls, 1) % count;
            n = _append(slots, n, EscrowReader.getListingSlots(id));
            n = _append(slots, n, EscrowReader.resellerPriceSlots(id));
            n = _append(slots, n, EscrowReader.tiersSlots(id));
            if (ghostBatches[id] != 0) {
                n = _append(slots, n, EscrowReader.getBatchSlots(id, _r(calls, 2) % ghostBatches[id]));
            }
        }
        address a = actors[_r(calls, 3) % actors.length];
        for (uint256 ti; ti < 3; ++ti) {
            n = _append(slots, n, EscrowReader.balanceOfSlots(a, tokens[ti]));
            n = _append(slots, n, EscrowReader.feesOfSlots(tokens[ti]));
        }
        if (_open.length != 0) {
            n = _append(slots, n, EscrowReader.orderHashSlots(_open[_r(calls, 4) % _open.length]));
        }
        if (_finished.length != 0) {
            n = _append(slots, n, EscrowReader.orderHashSlots(_finished[_r(calls, 5) % _finished.length]));
        }
        if (_pairSupplier.length != 0) {
            uint256 i = _r(calls, 6) % _pairSupplier.length;
            n = _append(slots, n, EscrowReader.isDeliveryKeySlots(_pairSupplier[i], _pairKey[i]));
        }
        address s = _suppliers[_r(calls, 7) % _suppliers.length];
        n = _append(slots, n, EscrowReader.authorizationSlots(s, _skus[_r(calls, 8) % 3]));
        if (_shopOwner.length != 0) {
            uint256 i = _r(calls, 9) % _shopOwner.length;
            n = _append(slots, n, EscrowReader.shopPriceSlots(_shopOwner[i], _shopListing[i]));
        }
        if (_couponSupplier.length != 0) {
            uint256 i = _r(calls, 10) % _couponSupplier.length;
            slots[n++] = _couponSlot(_couponSupplier[i], _couponWord[i]);
        }
        assembly ("memory-safe") {
            mstore(slots, n) // only the first n are asked for
        }
        bytes32[] memory words = escrow.extsload(slots);
        if (words.length != n) {
            return string.concat("reader: extsload of ", _u(n), " slots returned ", _u(words.length), " words");
        }
        for (uint256 i; i < n; ++i) {
            if (words[i] != vm.load(address(escrow), slots[i])) {
                return string.concat("reader: extsload of slot ", _u(uint256(slots[i])), " differs from the storage");
            }
        }
        return "";
    }

    /// @dev Copies `more` into `slots` from index `n` on; returns the new count.
    function _append(bytes32[] memory slots, uint256 n, bytes32[] memory more) private pure returns (uint256) {
        for (uint256 i; i < more.length; ++i) {
            slots[n + i] = more[i];
        }
        return n + more.length;
    }

    /// @notice Every state invariant, now. Empty if all hold, else each broken one's message.
    function checkAll() public view returns (string memory bad) {
        string memory capBad;
        (bad, capBad) = checkConservation();
        bad = _and(bad, checkStock());
        bad = _and(bad, checkOrders());
        bad = _and(bad, checkShops());
        bad = _and(bad, checkCoupons());
        bad = _and(bad, checkOnChain());
        bad = _and(bad, checkParties());
        bad = _and(bad, checkReader());
        bad = _and(bad, capBad);
    }

    /// @dev After a call that changed the escrow: a call that changed nothing (refused, or a time
    ///      jump) cannot break a state invariant, so checking here is checking after every call.
    function _checkState() private {
        string memory bad = checkAll();
        if (bytes(bad).length != 0) _fail(bad);
    }

    function _and(string memory a, string memory b) private pure returns (string memory) {
        if (bytes(b).length == 0) return a;
        if (bytes(a).length == 0) return b;
        return string.concat(a, " | ", b);
    }

    /// @notice The first violation the handler recorded during calls, or "".
    function recorded() external view returns (string memory) {
        return violations == 0 ? "" : string.concat(firstViolation, " [", _u(violations), " in all]");
    }

    function openCount() external view returns (uint256) {
        return _open.length;
    }

    // ================================================================== liveness (simulated)

    /// @notice Finish every open order and drain the escrow, then revert so that nothing of it
    ///         stays. Reverts with "SIM:" followed by the first failure, or "SIM:" alone.
    /// @dev From each non-terminal state some party finishes the order within its window:
    ///      a disputed order by a non-party arbiter (when there is one) or by anyone after the
    ///      arbitration deadline; a delivered one by its buyer's confirmation or by anyone's
    ///      settlement after the dispute window (in one batch that also holds finished orders); a
    ///      paid one by anyone's refund after the delivery deadline. Then every balance, bond and
    ///      fee is withdrawn to a plain address, and the escrow must be left holding nothing.
    function simulateFinishAll() external {
        require(msg.sender == address(this), "simulateFinishAll: handler only");
        revert(string.concat("SIM:", _finishAll()));
    }

    /// @dev Runs the simulation, restores the clock (a revert undoes state, not the block's
    ///      timestamp) and records a violation if some order could not be finished or some
    ///      money not withdrawn.
    function _checkLiveness() private {
        uint256 t = _now();
        string memory why;
        try this.simulateFinishAll() {
            why = "liveness: the simulation did not revert";
        } catch Error(string memory r) {
            bytes memory b = bytes(r);
            if (b.length >= 4 && b[0] == "S" && b[1] == "I" && b[2] == "M" && b[3] == ":") {
                bytes memory rest = new bytes(b.length - 4);
                for (uint256 i; i < rest.length; ++i) {
                    rest[i] = b[i + 4];
                }
                why = string(rest);
            } else {
                why = string.concat("liveness: the simulation failed: ", r);
            }
        } catch (bytes memory err) {
            why = string.concat("liveness: the simulation crashed: ", _hex(err));
        }
        vm.warp(t);
        if (bytes(why).length != 0) _fail(why);
    }

    function _finishAll() private returns (string memory) {
        uint256 latest = _now();
        address[] memory arbiters = _roleHolders(escrow.ARBITER_ROLE());
        // Before any deadline: rulings and confirmations.
        for (uint256 k = _open.length; k > 0; --k) {
            uint256 id = _open[k - 1];
            ICodeEscrow.Order memory o = _orders[id];
            if (o.deadline > latest) latest = o.deadline;
            if (o.state == ICodeEscrow.OrderState.Disputed && id % 2 == 0) {
                address arbiter = _nonParty(o, arbiters);
                if (arbiter == address(0)) continue;
                vm.prank(arbiter);
                try escrow.rule(id, o, 2_500, 5_000, bytes32(0), "sim") {
                    _finish(id, ICodeEscrow.OrderState.Resolved);
                } catch (bytes memory err) {
                    return string.concat("liveness: a non-party arbiter cannot rule on order ", _u(id), ": ", _hex(err));
                }
            } else if (o.state == ICodeEscrow.OrderState.Delivered && id % 3 == 0) {
                vm.prank(o.buyer);
                try escrow.confirm(id, o) {
                    _finish(id, ICodeEscrow.OrderState.Completed);
                } catch (bytes memory err) {
                    return string.concat("liveness: the buyer cannot confirm order ", _u(id), ": ", _hex(err));
                }
            }
        }
        // After every deadline: refunds, one settlement batch, timeouts; all by a stranger.
        vm.warp(latest + 1);
        uint256[] memory toSettle = new uint256[](_open.length + 2);
        uint256 n;
        for (uint256 k = _open.length; k > 0; --k) {
            uint256 id = _open[k - 1];
            ICodeEscrow.Order memory o = _orders[id];
            if (o.state == ICodeEscrow.OrderState.Paid) {
                vm.prank(SINK);
                try escrow.refund(id, o) {
                    _finish(id, ICodeEscrow.OrderState.Refunded);
                } catch (bytes memory err) {
                    return string.concat("liveness: order ", _u(id), " cannot be refunded after its deadline: ", _hex(err));
                }
            } else if (o.state == ICodeEscrow.OrderState.Disputed) {
                vm.prank(SINK);
                try escrow.resolveTimedOut(id, o) {
                    _finish(id, ICodeEscrow.OrderState.Resolved);
                } catch (bytes memory err) {
                    return string.concat("liveness: order ", _u(id), " cannot be resolved after its timeout: ", _hex(err));
                }
            } else {
                toSettle[n++] = id;
            }
        }
        // A finished order in the batch must be skipped, not revert it.
        if (n != 0 && _finished.length != 0) toSettle[n++] = _finished[0];
        if (n != 0) {
            uint256[] memory ids = new uint256[](n);
            ICodeEscrow.Order[] memory os = new ICodeEscrow.Order[](n);
            uint256 open;
            for (uint256 i; i < n; ++i) {
                ids[i] = toSettle[i];
                os[i] = _orders[ids[i]];
                if (_openPos[ids[i]] != 0) ++open;
            }
            vm.prank(SINK);
            try escrow.settle(ids, os) returns (uint256 settled) {
                if (settled != open) return "liveness: settle did not settle every delivered order";
                for (uint256 i; i < n; ++i) {
                    if (_openPos[ids[i]] != 0) _finish(ids[i], ICodeEscrow.OrderState.Completed);
                }
            } catch (bytes memory err) {
                return string.concat("liveness: delivered orders cannot be settled after their windows: ", _hex(err));
            }
        }
        return _drain();
    }

    function _drain() private returns (string memory) {
        for (uint256 ti; ti < tokens.length; ++ti) {
            address t = tokens[ti];
            for (uint256 i; i < actors.length; ++i) {
                address a = actors[i];
                ICodeEscrow.Bond memory b = escrow.bondOf(a, t);
                if (b.reserved != 0) return "liveness: bond still reserved after every order finished";
                if (escrow.balanceOf(a, t) != 0) {
                    vm.prank(a);
                    try escrow.withdraw(t, SINK) {}
                    catch (bytes memory err) {
                        return string.concat("liveness: ", names[a], " cannot withdraw its balance: ", _hex(err));
                    }
                }
                if (b.free != 0) {
                    vm.prank(a);
                    try escrow.withdrawBond(t, b.free, SINK) {}
                    catch (bytes memory err) {
                        return string.concat("liveness: ", names[a], " cannot withdraw its bond: ", _hex(err));
                    }
                }
            }
            if (escrow.feesOf(t) != 0) {
                vm.prank(escrow.defaultAdmin());
                try escrow.withdrawFees(t, SINK) {}
                catch (bytes memory err) {
                    return string.concat("liveness: fees cannot be withdrawn: ", _hex(err));
                }
            }
            uint256 left = _external(address(escrow), ti);
            if (left != 0) {
                return string.concat("conservation: escrow keeps ", _u(left), " of token ", _u(ti), " after a full drain");
            }
        }
        return "";
    }

    function _nonParty(ICodeEscrow.Order memory o, address[] memory arbiters) private view returns (address) {
        for (uint256 i; i < arbiters.length; ++i) {
            if (!_isParty(o, arbiters[i])) return arbiters[i];
        }
        return address(0);
    }

    // ================================================================== bookkeeping

    function _isParty(ICodeEscrow.Order memory o, address a) private view returns (bool) {
        return a == o.buyer || a == o.supplier || (a == o.reseller && a != address(0)) || accepted[o.supplier][a];
    }

    function _move(uint256 id, ICodeEscrow.OrderState to) private {
        ICodeEscrow.OrderState from = _orders[id].state;
        bool legal = (from == ICodeEscrow.OrderState.Paid
                && (to == ICodeEscrow.OrderState.Delivered || to == ICodeEscrow.OrderState.Refunded))
            || (from == ICodeEscrow.OrderState.Delivered
                && (to == ICodeEscrow.OrderState.Completed || to == ICodeEscrow.OrderState.Disputed
                    || to == ICodeEscrow.OrderState.Resolved))
            || (from == ICodeEscrow.OrderState.Disputed && to == ICodeEscrow.OrderState.Resolved);
        if (!legal) {
            _fail(string.concat("transitions: illegal move of order ", _u(id), " from ", _u(uint256(from)), " to ", _u(uint256(to))));
        }
        ++transitions[uint256(from)][uint256(to)];
        _orders[id].state = to;
    }

    function _finish(uint256 id, ICodeEscrow.OrderState to) private {
        _move(id, to);
        uint256 pos = _openPos[id];
        uint256 last = _open[_open.length - 1];
        _open[pos - 1] = last;
        _openPos[last] = pos;
        _open.pop();
        delete _openPos[id];
        if (_finished.length < _FINISHED_KEPT) {
            _finished.push(id);
        } else {
            _finished[_finishedNext] = id;
            _finishedNext = (_finishedNext + 1) % _FINISHED_KEPT;
        }
        if (escrow.orderHash(id) != bytes32(0)) _fail("orders: a finished order is still stored");
    }

    function _notePair(address s, address k) private {
        if (_pairSeen[s][k]) return;
        _pairSeen[s][k] = true;
        _pairSupplier.push(s);
        _pairKey.push(k);
    }

    function _outcome(string memory op, bool ok, bool expected, bytes memory err) private {
        if (ok) {
            ++successes[keccak256(bytes(op))];
            _mutated = true;
        }
        if (ok == expected) return;
        if (ok) _fail(string.concat(op, ": succeeded where the rules say it must revert"));
        else _fail(string.concat(op, ": reverted where the rules say it must succeed: ", _hex(err)));
    }

    /// @dev `_outcome` where the rules give the exact revert data `want` (empty: must succeed).
    function _exact(string memory op, bool ok, bytes memory want, bytes memory err) private {
        _outcome(op, ok, want.length == 0, err);
        if (ok || want.length == 0) return;
        if (keccak256(err) != keccak256(want)) {
            _fail(string.concat(op, ": reverted with ", _hex(err), " where the rules say ", _hex(want)));
        } else {
            ++refusedWith[bytes4(want)];
        }
    }

    /// @dev Keeps every violation of the first call that broke something (several invariants
    ///      may break at once), and counts the rest.
    function _fail(string memory what) private {
        if (violations == 0) {
            _firstViolationCall = calls;
            firstViolation = string.concat(what, " (at handler call ", _u(calls), ")");
        } else if (calls == _firstViolationCall) {
            firstViolation = string.concat(firstViolation, " || ", what);
        }
        ++violations;
    }

    // ---------------------------------------------------------------- money books

    function _mask(address a) private view returns (bool[] memory m) {
        m = new bool[](actors.length);
        _maskAdd(m, a);
    }

    function _maskAdd(bool[] memory m, address a) private view {
        uint256 i = _actorIndex[a];
        if (i != 0) m[i - 1] = true;
    }

    /// @dev The accounts a finished order may credit: its buyer, supplier and reseller.
    function _maskOrder(ICodeEscrow.Order memory o) private view returns (bool[] memory m) {
        m = _mask(o.buyer);
        _maskAdd(m, o.supplier);
        _maskAdd(m, o.reseller);
    }

    function _maskOrders(ICodeEscrow.Order[] memory os) private view returns (bool[] memory m) {
        m = new bool[](actors.length);
        for (uint256 i; i < os.length; ++i) {
            _maskAdd(m, os[i].buyer);
            _maskAdd(m, os[i].supplier);
            _maskAdd(m, os[i].reseller);
        }
    }

    function _books(bool[] memory mask) private view returns (Books memory b) {
        b.mask = mask;
        uint256 n = actors.length * 3;
        b.bal = new uint256[](n);
        b.free = new uint256[](n);
        b.res = new uint256[](n);
        b.fees = new uint256[](3);
        for (uint256 ti; ti < 3; ++ti) {
            b.fees[ti] = escrow.feesOf(tokens[ti]);
            for (uint256 i; i < actors.length; ++i) {
                if (!mask[i]) continue;
                ICodeEscrow.Bond memory bond = escrow.bondOf(actors[i], tokens[ti]);
                b.bal[i * 3 + ti] = escrow.balanceOf(actors[i], tokens[ti]);
                b.free[i * 3 + ti] = bond.free;
                b.res[i * 3 + ti] = bond.reserved;
            }
        }
    }

    function _expect(Books memory before) private view returns (Expect memory e) {
        e.mask = before.mask;
        uint256 n = actors.length * 3;
        e.bal = new int256[](n);
        e.free = new int256[](n);
        e.res = new int256[](n);
        e.fees = new int256[](3);
        e.com = new int256[](n);
        e.paid = new int256[](3);
    }

    function _slot(Expect memory e, address a, uint256 ti) private view returns (uint256, bool) {
        uint256 i = _actorIndex[a];
        if (i == 0 || !e.mask[i - 1]) {
            e.unknownAccount = true;
            return (0, false);
        }
        return ((i - 1) * 3 + ti, true);
    }

    function _addBalance(Expect memory e, address a, uint256 ti, int256 d) private view {
        if (d == 0) return;
        (uint256 s, bool ok) = _slot(e, a, ti);
        if (ok) e.bal[s] += d;
    }

    function _addFree(Expect memory e, address a, uint256 ti, int256 d) private view {
        if (d == 0) return;
        (uint256 s, bool ok) = _slot(e, a, ti);
        if (ok) e.free[s] += d;
    }

    function _addReserved(Expect memory e, address a, uint256 ti, int256 d) private view {
        if (d == 0) return;
        (uint256 s, bool ok) = _slot(e, a, ti);
        if (ok) e.res[s] += d;
    }

    /// @dev How `gross` of an order's payment (all of it, or what a ruling leaves the sellers)
    ///      is split by the rules (ICodeEscrow's OrderConfirmed; docs/DISTRIBUTION.md): the
    ///      platform's fee, gross * feeBps / 10000; the reseller's commission, its cut scaled as
    ///      gross is scaled from the amount (resellerCut * gross / amount: the whole cut when gross
    ///      is the amount) less the fee's share of that cut (cut * feeBps / 10000); the supplier the
    ///      rest. Records a violation if the order's terms let the commission exceed its cut or
    ///      the fee and commission exceed gross (the supplier's part would be negative).
    function _split(ICodeEscrow.Order memory o, uint256 gross)
        private
        returns (uint256 toSupplier, uint256 fee, uint256 commission)
    {
        fee = (gross * o.feeBps) / _BPS;
        uint256 cut = o.amount == 0 ? 0 : (uint256(o.resellerCut) * gross) / o.amount;
        commission = cut - (cut * o.feeBps) / _BPS;
        if (commission > o.resellerCut || fee + commission > gross) {
            _fail("resellers: an order's commission exceeds its cut, or fee and commission its proceeds");
            return (0, fee, commission);
        }
        toSupplier = gross - fee - commission;
        if (commission != 0) {
            ++commissionsPaid;
            if (gross != o.amount) ++scaledCommissionsPaid;
        }
    }

    /// @dev The commission to an order's reseller, credited to its balance (with whatever else
    ///      the account receives as buyer or supplier of the same call's orders).
    function _addCommission(Expect memory e, ICodeEscrow.Order memory o, uint256 ti, uint256 commission) private view {
        if (commission == 0) return;
        if (o.reseller == address(0)) {
            e.unknownAccount = true; // a commission without a reseller: the rules give none
            return;
        }
        _addBalance(e, o.reseller, ti, int256(commission));
        (uint256 s, bool ok) = _slot(e, o.reseller, ti);
        if (ok) e.com[s] += int256(commission);
    }

    /// @dev Confirmation or settlement: the whole amount split (`_split`): the supplier's part
    ///      and the commission credited, the fee to the platform, the reservation back to free bond.
    function _expectComplete(Expect memory e, ICodeEscrow.Order memory o) private {
        uint256 ti = _tokenIndex(o.token);
        (uint256 toSupplier, uint256 fee, uint256 commission) = _split(o, o.amount);
        _addBalance(e, o.supplier, ti, int256(toSupplier));
        _addCommission(e, o, ti, commission);
        e.fees[ti] += int256(fee);
        _addReserved(e, o.supplier, ti, -int256(uint256(o.bond)));
        _addFree(e, o.supplier, ti, int256(uint256(o.bond)));
        e.finishing = true;
        e.paid[ti] += int256(uint256(o.amount));
    }

    function _expectRefund(Expect memory e, ICodeEscrow.Order memory o) private view {
        uint256 ti = _tokenIndex(o.token);
        _addBalance(e, o.buyer, ti, int256(uint256(o.amount)));
        _addReserved(e, o.supplier, ti, -int256(uint256(o.bond)));
        _addFree(e, o.supplier, ti, int256(uint256(o.bond)));
        e.finishing = true;
        e.paid[ti] += int256(uint256(o.amount));
    }

    /// @dev A ruling: amount * buyerBps / 10000 and the slashed bond to the buyer, the rest of
    ///      the amount split (`_split`, the cut scaled down with it), the unslashed bond freed.
    function _expectResolve(Expect memory e, ICodeEscrow.Order memory o, uint256 buyerBps, uint256 slashBps) private {
        uint256 ti = _tokenIndex(o.token);
        uint256 buyerAmount = (uint256(o.amount) * buyerBps) / _BPS;
        (uint256 toSupplier, uint256 fee, uint256 commission) = _split(o, o.amount - buyerAmount);
        uint256 slashed = (uint256(o.bond) * slashBps) / _BPS;
        _addBalance(e, o.buyer, ti, int256(buyerAmount + slashed));
        _addBalance(e, o.supplier, ti, int256(toSupplier));
        _addCommission(e, o, ti, commission);
        e.fees[ti] += int256(fee);
        _addReserved(e, o.supplier, ti, -int256(uint256(o.bond)));
        _addFree(e, o.supplier, ti, int256(uint256(o.bond) - slashed));
        e.finishing = true;
        e.paid[ti] += int256(uint256(o.amount));
    }

    /// @dev The books after the call moved exactly as `e` says, account by account; and, for a
    ///      call that finished orders, whatever the split: per token, what the parties' balances
    ///      and the fees gained is what the orders paid plus the bond taken from the supplier
    ///      (slashed to the buyer), so no order's payment was lost or credited twice.
    function _checkBooks(string memory op, Books memory before, Expect memory e) private {
        if (e.unknownAccount) {
            _fail(string.concat(op, ": the rules credit an account outside the call's parties (harness)"));
            return;
        }
        Books memory nowB = _books(before.mask);
        for (uint256 ti; ti < 3; ++ti) {
            if (int256(nowB.fees[ti]) != int256(before.fees[ti]) + e.fees[ti]) {
                _fail(string.concat(op, ": platform fees in token ", _u(ti), " moved by the wrong amount"));
                return;
            }
        }
        // Resellers' balances first: a wrong commission is named as such.
        for (uint256 k; k < 2 * nowB.bal.length; ++k) {
            uint256 s = k % nowB.bal.length;
            if ((k < nowB.bal.length) != (e.com[s] != 0)) continue;
            int256 moved = int256(nowB.bal[s]) - int256(before.bal[s]);
            if (moved != e.bal[s]) {
                _fail(
                    string.concat(
                        e.com[s] != 0 ? "resellers: " : "",
                        op,
                        ": balance of ",
                        names[actors[s / 3]],
                        " in token ",
                        _u(s % 3),
                        " moved by ",
                        _i(moved),
                        " where the rules say ",
                        _i(e.bal[s]),
                        e.com[s] != 0 ? string.concat(", of which commission ", _i(e.com[s])) : ""
                    )
                );
                return;
            }
            if (int256(nowB.free[s]) != int256(before.free[s]) + e.free[s]) {
                _fail(string.concat(op, ": free bond of ", names[actors[s / 3]], " in token ", _u(s % 3), " moved by the wrong amount"));
                return;
            }
            if (int256(nowB.res[s]) != int256(before.res[s]) + e.res[s]) {
                _fail(string.concat(op, ": reserved bond of ", names[actors[s / 3]], " in token ", _u(s % 3), " moved by the wrong amount"));
                return;
            }
        }
        if (!e.finishing) return;
        for (uint256 ti; ti < 3; ++ti) {
            int256 credited = int256(nowB.fees[ti]) - int256(before.fees[ti]);
            int256 slashed;
            for (uint256 s = ti; s < nowB.bal.length; s += 3) {
                credited += int256(nowB.bal[s]) - int256(before.bal[s]);
                slashed -= int256(nowB.free[s] + nowB.res[s]) - int256(before.free[s] + before.res[s]);
            }
            if (credited != e.paid[ti] + slashed) {
                _fail(
                    string.concat(
                        op,
                        ": credits and fees in token ",
                        _u(ti),
                        " were ",
                        _i(credited),
                        ", not the amount paid plus the bond slashed, ",
                        _i(e.paid[ti] + slashed)
                    )
                );
                return;
            }
        }
    }

    // ---------------------------------------------------------------- choices

    function _now() private view returns (uint256) {
        return vm.getBlockTimestamp();
    }

    function _r(uint256 seed, uint256 k) private pure returns (uint256) {
        return uint256(keccak256(abi.encode(seed, k)));
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) private pure returns (uint256) {
        if (hi <= lo) return lo;
        return lo + (x % (hi - lo + 1));
    }

    function _unit(uint256 ti) private view returns (uint256) {
        return ti == 0 ? 1e18 : 10 ** FuzzToken(tokens[ti]).decimals();
    }

    function _tokenIndex(address t) private view returns (uint256) {
        for (uint256 i; i < tokens.length; ++i) {
            if (tokens[i] == t) return i;
        }
        return 0;
    }

    /// @dev Mostly a supplier; one time in eight any actor (buyers, arbiters, keys... as suppliers).
    function _supplier(uint256 seed) private view returns (address) {
        return seed % 8 == 0 ? _any(seed >> 8) : _suppliers[(seed >> 8) % _suppliers.length];
    }

    function _buyer(uint256 seed) private view returns (address) {
        return seed % 8 == 0 ? _any(seed >> 8) : _buyers[(seed >> 8) % _buyers.length];
    }

    function _any(uint256 seed) private view returns (address) {
        return actors[seed % actors.length];
    }

    function _anyOrSink(uint256 seed) private view returns (address) {
        return seed % 4 == 0 ? SINK : _any(seed >> 8);
    }

    /// @dev Keys, arbiters (which must never become keys), anyone, or address zero.
    function _keyCandidate(uint256 seed) private view returns (address) {
        uint256 m = seed % 16;
        if (m == 0) return address(0);
        if (m < 7) return _keys[(seed >> 8) % _keys.length];
        if (m < 11) return _arbiters[(seed >> 8) % _arbiters.length];
        return _any(seed >> 8);
    }

    /// @dev Withdrawal recipients: the sink, an actor, the attacker (which may refuse), or zero.
    function _recipient(uint256 seed) private view returns (address) {
        uint256 m = seed % 16;
        if (m == 0) return address(0);
        if (m < 4) return address(attacker);
        if (m < 8) return SINK;
        return _any(seed >> 8);
    }

    function _receives(address to, uint256 ti) private view returns (bool) {
        return ti != 0 || to != address(attacker) || attacker.mode() != FuzzAttacker.Mode.Reject;
    }

    /// @dev Who delivers for supplier s: s, one of its accepted keys, or anyone.
    function _deliverer(address s, uint256 seed) private view returns (address) {
        uint256 m = seed % 8;
        if (m == 0) return _any(seed >> 8);
        if (m < 4) {
            for (uint256 i; i < actors.length; ++i) {
                address k = actors[((seed >> 8) + i) % actors.length];
                if (accepted[s][k]) return k;
            }
        }
        return s;
    }

    function _holder(bytes32 role, uint256 seed) private view returns (address) {
        for (uint256 i; i < actors.length; ++i) {
            address a = actors[(seed % actors.length + i) % actors.length];
            if (escrow.hasRole(role, a)) return a;
        }
        return _any(seed);
    }

    function _roleHolders(bytes32 role) private view returns (address[] memory out) {
        address[] memory buf = new address[](actors.length);
        uint256 n;
        for (uint256 i; i < actors.length; ++i) {
            if (escrow.hasRole(role, actors[i])) buf[n++] = actors[i];
        }
        out = new address[](n);
        for (uint256 i; i < n; ++i) {
            out[i] = buf[i];
        }
    }

    /// @dev An open listing with stock, if there is one.
    function _buyable(uint256 seed) private view returns (uint256) {
        uint256 count = escrow.listingCount();
        for (uint256 i; i < count; ++i) {
            uint256 id = 1 + (seed % count + i) % count;
            ICodeEscrow.Listing memory l = escrow.getListing(id);
            if (l.active && l.committed > l.sold) return id;
        }
        return _listing(seed);
    }

    /// @dev A (supplier, key) pair the calls touched, preferably a pending proposal, if any.
    function _pair(uint256 seed) private view returns (bool found, address s, address k) {
        uint256 n = _pairSupplier.length;
        if (n == 0) return (false, address(0), address(0));
        uint256 start = seed % n;
        for (uint256 j; j < n; ++j) {
            uint256 i = (start + j) % n;
            if (proposed[_pairSupplier[i]][_pairKey[i]]) return (true, _pairSupplier[i], _pairKey[i]);
        }
        return (true, _pairSupplier[start], _pairKey[start]);
    }

    /// @dev An actor with a balance in `token`, if any.
    function _holderOf(address token, uint256 seed) private view returns (address) {
        uint256 n = actors.length;
        for (uint256 j; j < n; ++j) {
            address a = actors[(seed % n + j) % n];
            if (escrow.balanceOf(a, token) != 0) return a;
        }
        return actors[seed % n];
    }

    /// @dev A listing id: mostly an existing one, sometimes one that does not exist.
    function _listing(uint256 seed) private view returns (uint256) {
        uint256 count = escrow.listingCount();
        if (count == 0 || seed % 32 == 0) return count + 1;
        return 1 + (seed >> 8) % count;
    }

    /// @dev An order to act on: an open one in `want` state if any (from a random start), else an
    ///      open one in another state; sometimes a finished one.
    function _target(uint256 seed, ICodeEscrow.OrderState want, uint256 timing)
        private
        view
        returns (uint256 id, ICodeEscrow.Order memory o)
    {
        if (_open.length == 0 || (seed % 16 == 0 && _finished.length != 0)) {
            if (_finished.length == 0) return (1 << 32, o);
            id = _finished[(seed >> 8) % _finished.length];
            return (id, _orders[id]);
        }
        // One time in eight, ignore the timing the call wants (the call may then be refused).
        id = _pickOpen(seed >> 8, want, (seed >> 4) % 8 == 0 ? ANY_TIME : timing);
        o = _orders[id];
    }

    uint256 private constant ANY_TIME = 0;
    uint256 private constant BY_DEADLINE = 1;
    uint256 private constant PAST_DEADLINE = 2;

    /// @dev An open order in state `want` and on the wanted side of its deadline, else one in
    ///      state `want`, else any (each search from a random start).
    function _pickOpen(uint256 seed, ICodeEscrow.OrderState want, uint256 timing) private view returns (uint256) {
        uint256 n = _open.length;
        uint256 start = seed % n;
        uint256 inState = type(uint256).max;
        for (uint256 i; i < n; ++i) {
            uint256 id = _open[(start + i) % n];
            ICodeEscrow.Order storage o = _orders[id];
            if (o.state != want) continue;
            if (timing == ANY_TIME || (timing == BY_DEADLINE) == (_now() <= o.deadline)) return id;
            if (inState == type(uint256).max) inState = id;
        }
        return inState != type(uint256).max ? inState : _open[start];
    }

    function _price(uint256 ti, uint256 seed) private view returns (uint96) {
        uint256 m = seed % 16;
        if (m == 0) return uint96(2 ** 95 + (seed >> 8) % 2 ** 90); // a single code near the 96-bit limit
        if (m == 1) return 1;
        return uint96(_bound(seed >> 8, 1, 100 * _unit(ti)));
    }

    /// @dev Inside [lo, min(hi, lo + 30 days)]; if edgy, sometimes at the edges or just outside.
    function _window(uint256 seed, uint256 lo, uint256 hi, bool edgy) private pure returns (uint32) {
        uint256 m = edgy ? seed % 16 : 4;
        if (m == 0) return uint32(lo == 0 ? 0 : lo - 1);
        if (m == 1) return uint32(hi + 1);
        if (m == 2) return uint32(lo);
        if (m == 3) return uint32(hi);
        return uint32(_bound(seed >> 8, lo, hi < lo + 30 days ? hi : lo + 30 days));
    }

    function _fund(address who, address token, uint256 amount) private {
        if (token == address(0)) vm.deal(who, who.balance + amount);
        else FuzzToken(token).mint(who, amount);
    }

    function _external(address who, uint256 ti) private view returns (uint256) {
        return ti == 0 ? who.balance : FuzzToken(tokens[ti]).balanceOf(who);
    }

    // ---------------------------------------------------------------- strings

    function _u(uint256 v) private pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b = new bytes(78);
        uint256 n;
        while (v != 0) {
            b[77 - n++] = bytes1(uint8(48 + (v % 10)));
            v /= 10;
        }
        bytes memory out = new bytes(n);
        for (uint256 i; i < n; ++i) {
            out[i] = b[78 - n + i];
        }
        return string(out);
    }

    function _i(int256 v) private pure returns (string memory) {
        return v < 0 ? string.concat("-", _u(uint256(-v))) : _u(uint256(v));
    }

    function _hex(bytes memory data) private pure returns (string memory) {
        uint256 n = data.length < 68 ? data.length : 68;
        bytes memory out = new bytes(2 + 2 * n);
        out[0] = "0";
        out[1] = "x";
        bytes16 digits = "0123456789abcdef";
        for (uint256 i; i < n; ++i) {
            out[2 + 2 * i] = digits[uint8(data[i]) >> 4];
            out[3 + 2 * i] = digits[uint8(data[i]) & 0x0f];
        }
        return string(out);
    }
}
