// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ICodeEscrow} from "../src/interfaces/ICodeEscrow.sol";
import {EscrowHandler, IEscrow} from "./EscrowHandler.sol";
import {FuzzAttacker} from "./FuzzAttacker.sol";
import {FuzzToken} from "./FuzzToken.sol";
import {VM} from "./Vm.sol";

/// @title CodeEscrowInvariants
/// @notice Stateful invariant fuzzing of CodeEscrow (run by scripts/fuzz). Foundry calls random
///         entry points of EscrowHandler with random arguments. After every call that changed the
///         escrow (a refused call or a time jump cannot break them), the handler checks:
///         - conservation: per token (native, 6 and 18 decimals), the escrow holds exactly the
///           ledger balances, the bonds (free and reserved), the open orders' payments and the
///           fees; each supplier's reserved bond is its open orders' bonds; every call that
///           finishes orders credits the parties and the fees exactly what the orders paid plus
///           the bond slashed to the buyer;
///         - resellers: every order bought through a shop holds the shop's price as the calls
///           set it and the cut (shop price - reseller price) * quantity, never above its amount
///           (none for a plain order); its completion or ruling credits the reseller exactly the
///           cut, scaled as a ruling scales the payment, less the fee's share of it; reseller and
///           shop prices are as the calls left them;
///         - coupons: every order bought with a coupon holds the price its terms give (its
///           percentage off the unit price and the reseller price after any tier, then its amount
///           off the unit price and, in a shop, off the reseller price), so conservation and the
///           order checks hold for it; every coupon-use counter word a call touched holds, counter
///           by counter, the uses the calls counted (coupons with a use limit) or 2^32 - 1 for a
///           revoked id;
///         - stock: no code index sold twice, sold <= committed, every order inside its stock;
///         - orders: every open order is stored as the hash of the struct its legal history gives
///           (Paid -> Delivered -> Completed | Disputed -> Resolved, Delivered -> Resolved,
///           Paid -> Refunded), so no other transition happened; finished orders are deleted;
///         - parties: nobody is a supplier's delivery key without accepting, an arbiter never;
///           no re-entrant call passed the guard (an arbiter may be a reseller; it is then a
///           party to the orders it sold and cannot rule on them);
///         - liveness: from the current state, with every deadline passed, anyone can finish
///           every open order (refund, settle in a batch holding finished orders, timeout), a
///           non-party arbiter can rule, the buyer can confirm, and then every balance, bond and
///           fee can be withdrawn until the escrow holds nothing: no payout is blocked by another
///           party (simulated in a call that reverts, so the run goes on undisturbed);
///         - bond cap: free + reserved bond never above 2^80 - 1;
///         - on-chain delivery: a listing's onChainFrom is 0 until its supplier's first
///           requireOnChainRelease sets it to sold + 1, and never changes after; every order of
///           such a listing from index onChainFrom - 1 on that reached Delivered was delivered by
///           deliverOnChain, whose ReleasePublished carries a release hashing to the order's digest
///           (plain deliver of it reverts EscrowReleaseRequired, a mismatching release
///           EscrowReleaseMismatch, a purchase above 32 codes EscrowQuantityTooLarge);
///         - reader: `extsload` returns the stored words (`vm.load`) of the escrow's first 20 slots
///           and of a sample of the slots the handler reads state from (through EscrowReader,
///           which decodes the words by the artifact's storage layout, and coupon counter words);
///         and during each call, whether the escrow accepted or refused it as its rules say and
///         moved exactly the amounts they give. `invariant_escrow`, run by Foundry after every
///         call, fails with every violation recorded at the first call that broke something.
contract CodeEscrowInvariants {
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    EscrowHandler internal handler;
    IEscrow internal escrow;

    address internal constant ADMIN = address(0xA0);
    address internal constant ADMIN2 = address(0xA1);

    function setUp() public {
        VM.warp(1_750_000_000);
        FuzzToken usd6 = new FuzzToken("USD6", 6);
        FuzzToken tok18 = new FuzzToken("TKN18", 18);
        ICodeEscrow.Config memory cfg = ICodeEscrow.Config({
            feeRecipient: ADMIN,
            feeBps: 250,
            minBondBps: 1_000,
            arbitrationWindow: 7 days,
            minDeliveryWindow: 1 days,
            maxDeliveryWindow: 14 days,
            minDisputeWindow: 1 days,
            maxDisputeWindow: 14 days
        });
        // The committed artifact, not a compile of our own: the bytes kameng deploys are the bytes
        // fuzzed (scripts/fuzz checks the artifacts are current with the sources).
        escrow = IEscrow(VM.deployCode("contracts/artifacts/CodeEscrow.json", abi.encode(ADMIN, cfg)));
        address[] memory tokens = new address[](3);
        (tokens[0], tokens[1], tokens[2]) = (address(0), address(usd6), address(tok18));
        FuzzAttacker attacker = new FuzzAttacker(escrow, tokens);
        handler = new EscrowHandler(escrow, attacker, tokens);

        // Suppliers are made from private keys (vm.addr), so that the handler can sign their coupons.
        address[] memory suppliers = _people("supplier", 0x5000, 3, address(attacker), true);
        address[] memory buyers = _people("buyer", 0xB000, 3, address(attacker), false);
        address[] memory keys = _people("key", 0xC000, 3, address(0), false);
        address[] memory arbiters = _people("arbiter", 0xD000, 2, address(0), false);
        address[] memory resellers = _people("reseller", 0xE000, 2, address(0), false);
        address[] memory others = new address[](3);
        (others[0], others[1], others[2]) = (ADMIN, ADMIN2, address(0xF000));
        handler.name(ADMIN, "admin");
        handler.name(ADMIN2, "admin2");
        handler.name(address(0xF000), "stranger");
        handler.name(address(attacker), "attacker");
        handler.addActors(suppliers, buyers, keys, arbiters, resellers, others);

        bytes32 arbiterRole = escrow.ARBITER_ROLE();
        for (uint256 i; i < arbiters.length; ++i) {
            VM.prank(ADMIN);
            escrow.grantRole(arbiterRole, arbiters[i]);
        }
        for (uint256 t = 1; t < 3; ++t) {
            VM.prank(ADMIN);
            escrow.setTokenAllowed(tokens[t], true);
            handler.noteAllowed(tokens[t]);
        }
        for (uint256 i; i < suppliers.length; ++i) {
            for (uint256 k; k < 3; ++k) {
                bytes32 sku = handler.sku(k);
                VM.prank(ADMIN); // set right before the call: an external call in the arguments would take it
                escrow.authorize(suppliers[i], sku, keccak256(abi.encode("attestation", i, k)));
            }
            // A bond in every token: 1,000 coins, 100,000 USD6, 100,000 TKN18.
            VM.deal(suppliers[i], 1_000 ether);
            VM.prank(suppliers[i]);
            escrow.depositBond{value: 1_000 ether}(address(0), 1_000 ether);
            usd6.mint(suppliers[i], 100_000e6);
            VM.prank(suppliers[i]);
            escrow.depositBond(address(usd6), 100_000e6);
            tok18.mint(suppliers[i], 100_000e18);
            VM.prank(suppliers[i]);
            escrow.depositBond(address(tok18), 100_000e18);
        }
        // One listing per token, each with 48 committed codes, so orders come from the first call.
        handler.seedListing(suppliers[0], 0, 0, 0.05 ether, 2_000);
        handler.seedListing(suppliers[1], 1, 1, 25e6, 1_000);
        handler.seedListing(suppliers[2], 2, 2, 3e18, 5_000);
        handler.seedListing(address(attacker), 0, 0, 0.01 ether, 1_000);
        // Three listings open to resellers, in shops from the first call: resellers' shops above
        // the reseller price, a buyer's own shop at it, the supplier's own shop, the attacker's.
        handler.seedResellerPrice(1, 0.04 ether);
        handler.seedResellerPrice(2, 20e6);
        handler.seedResellerPrice(4, 0.008 ether);
        handler.seedShop(resellers[0], 1, 0.06 ether);
        handler.seedShop(resellers[1], 1, 0.045 ether);
        handler.seedShop(buyers[0], 1, 0.04 ether);
        handler.seedShop(suppliers[1], 2, 27e6);
        handler.seedShop(resellers[1], 2, 20e6 + 1);
        handler.seedShop(address(attacker), 4, 0.0125 ether);
    }

    /// @dev `n` actors named role-0, role-1, ...: the addresses base, base + 1, ..., or, if
    ///      `keyed`, those of the private keys base, base + 1, ... (noted in the handler), then `extra`.
    function _people(string memory role, uint256 base, uint256 n, address extra, bool keyed)
        internal
        returns (address[] memory out)
    {
        out = new address[](extra == address(0) ? n : n + 1);
        for (uint256 i; i < n; ++i) {
            out[i] = keyed ? VM.addr(base + i) : address(uint160(base + i));
            if (keyed) handler.addSigningKey(base + i);
            string memory label = string.concat(role, "-", string(abi.encodePacked(bytes1(uint8(48 + i)))));
            handler.name(out[i], label);
            VM.label(out[i], label);
        }
        if (extra != address(0)) out[n] = extra;
    }

    /// @notice Foundry: fuzz only the handler.
    function targetContracts() public view returns (address[] memory out) {
        out = new address[](1);
        out[0] = address(handler);
    }

    /// @notice Foundry: the handler's entry points (not its setup and check functions).
    function targetSelectors() public view returns (FuzzSelector[] memory out) {
        bytes4[] memory s = new bytes4[](44);
        s[0] = EscrowHandler.warp.selector;
        s[1] = EscrowHandler.warpAgain.selector;
        s[2] = EscrowHandler.setAttackerMode.selector;
        s[3] = EscrowHandler.depositBond.selector;
        s[4] = EscrowHandler.withdrawBond.selector;
        s[5] = EscrowHandler.setDeliveryKey.selector;
        s[6] = EscrowHandler.acceptDeliveryKey.selector;
        s[7] = EscrowHandler.resignDeliveryKey.selector;
        s[8] = EscrowHandler.createListing.selector;
        s[9] = EscrowHandler.updateListing.selector;
        s[10] = EscrowHandler.setResellerPrice.selector;
        s[11] = EscrowHandler.commitBatch.selector;
        s[12] = EscrowHandler.buy.selector;
        s[13] = EscrowHandler.buyMore.selector;
        s[14] = EscrowHandler.buyWholesale.selector;
        s[15] = EscrowHandler.deliver.selector;
        s[16] = EscrowHandler.deliverMore.selector;
        s[17] = EscrowHandler.confirm.selector;
        s[18] = EscrowHandler.refund.selector;
        s[19] = EscrowHandler.dispute.selector;
        s[20] = EscrowHandler.disputeAgain.selector;
        s[21] = EscrowHandler.addEvidence.selector;
        s[22] = EscrowHandler.settle.selector;
        s[23] = EscrowHandler.rule.selector;
        s[24] = EscrowHandler.resolveTimedOut.selector;
        s[25] = EscrowHandler.proveBadCode.selector;
        s[26] = EscrowHandler.proveBadCodeAgain.selector;
        s[27] = EscrowHandler.withdraw.selector;
        s[28] = EscrowHandler.withdrawFees.selector;
        s[29] = EscrowHandler.setConfig.selector;
        s[30] = EscrowHandler.setTokenAllowed.selector;
        s[31] = EscrowHandler.authorize.selector;
        s[32] = EscrowHandler.closeListing.selector;
        s[33] = EscrowHandler.pause.selector;
        s[34] = EscrowHandler.unpause.selector;
        s[35] = EscrowHandler.roles.selector;
        s[36] = EscrowHandler.adminTransfer.selector;
        s[37] = EscrowHandler.requireOnChainRelease.selector;
        s[38] = EscrowHandler.deliverOnChain.selector;
        s[39] = EscrowHandler.setShopPrice.selector;
        s[40] = EscrowHandler.setTiers.selector;
        s[41] = EscrowHandler.buyWithCoupon.selector;
        s[42] = EscrowHandler.buyWithCouponAgain.selector;
        s[43] = EscrowHandler.revokeCoupon.selector;
        out = new FuzzSelector[](1);
        out[0] = FuzzSelector({addr: address(handler), selectors: s});
    }

    /// @notice Every invariant, after every call (see the contract's notice). The handler checks
    ///         the state invariants and liveness right after each call that changed the escrow
    ///         and records what broke; a call that changed nothing cannot break them.
    function invariant_escrow() external view {
        string memory bad = handler.recorded();
        if (bytes(bad).length != 0) revert(bad);
        if (handler.calls() == 0) {
            bad = handler.checkAll(); // the state right after setUp
            if (bytes(bad).length != 0) revert(bad);
        }
    }
}
