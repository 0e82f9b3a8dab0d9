"""The escrow's order rules in pure Python: what each way of ending an order pays whom, and what
each order event does to the order. No chain access: plain integers in, plain integers out.

Every rule is CodeEscrow.sol's, with its integer arithmetic (divisions round down):

- buy: ``amount = unitPrice * quantity`` (at most 2**96 - 1), ``bond = amount * bondBps / 10000``
  moves from the supplier's free bond to its reserved bond; its ``feeBps`` is the listing's.
  Bought in a reseller's shop, ``unitPrice`` is the shop's price and the order's
  ``resellerCut = (shopPrice - resellerPrice) * quantity``; without a reseller it is 0.
- proceeds of a gross amount (the amount, or what a ruling leaves the sellers):
  ``fee = gross * feeBps / 10000`` to the platform; the cut scaled as gross is,
  ``cut = resellerCut * gross / amount``, less its share of the fee,
  ``commission = cut - cut * feeBps / 10000``, to the reseller; the rest to the supplier.
- confirm and settle: the whole amount is proceeds; the whole bond returns to the free bond.
- refund: the buyer is credited the amount; the whole bond returns.
- rule(buyerBps, slashBps): ``buyerAmount = amount * buyerBps / 10000`` to the buyer, the rest is
  proceeds; ``slashed = bond * slashBps / 10000`` of the bond to the buyer, the rest returns.
- resolveTimedOut: rule(5000, 0). proveBadCode: rule(10000, 10000).

Who uses them: the indexer credits its mirror's balances with them, the client and the indexer
advance orders with `order_changes`, and ``tests/contracts/test_order_rules.py`` checks them
against the deployed contract on random orders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contracts.encoding import OrderState

if TYPE_CHECKING:
    from contracts.encoding import Order

#: Basis points in a whole (``_BPS``).
BPS = 10_000
#: Most of a payment the platform's fee may take (``_MAX_FEES_BPS``).
MAX_FEES_BPS = 5_000
#: Most one order may cost: every payout is credited to a 96-bit ledger balance.
MAX_AMOUNT = 2**96 - 1
#: Most codes one order may hold once its listing requires on-chain delivery
#: (``MAX_ON_CHAIN_QUANTITY``; ``buy`` reverts ``EscrowQuantityTooLarge`` above it).
MAX_ON_CHAIN_QUANTITY = 32
#: The buyer's share when arbitration times out (``resolveTimedOut``).
TIMEOUT_BUYER_BPS = BPS // 2
#: The wraparound of the uint40 deadlines the contract computes unchecked.
_UINT40 = 2**40

#: Order state after each order event (EvidenceAdded leaves the order Disputed).
STATE_AFTER: dict[str, OrderState] = {
    "OrderPaid": OrderState.PAID,
    "OrderDelivered": OrderState.DELIVERED,
    "OrderConfirmed": OrderState.COMPLETED,
    "OrderSettled": OrderState.COMPLETED,
    "OrderRefunded": OrderState.REFUNDED,
    "DisputeOpened": OrderState.DISPUTED,
    "EvidenceAdded": OrderState.DISPUTED,
    "DisputeRuled": OrderState.RESOLVED,
}
#: Events about one order (they carry its ``orderId``).
ORDER_EVENTS = frozenset(STATE_AFTER)
#: Events that end an order and pay out (see `payout_for_event`).
ENDING_EVENTS = frozenset({"OrderConfirmed", "OrderSettled", "OrderRefunded", "DisputeRuled"})
#: Order events that move money: the purchase and the endings.
MONEY_EVENTS = ENDING_EVENTS | {"OrderPaid"}


@dataclass(frozen=True)
class Terms:
    """The parts of an order its payouts depend on.

    Attributes:
        amount: What the buyer paid.
        bond: The supplier's bond reserved for the order.
        fee_bps: The platform's fee on proceeds.
        reseller_cut: The reseller's margin in the amount (0 without a reseller).
    """

    amount: int
    bond: int
    fee_bps: int
    reseller_cut: int

    @classmethod
    def of(cls, order: Order) -> Terms:
        """The terms of an Order."""
        return cls(order.amount, order.bond, order.fee_bps, order.reseller_cut)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Terms:
        """The terms of an order held as a mapping with the Order's field names."""
        return cls(
            int(row["amount"]), int(row["bond"]), int(row["fee_bps"]), int(row["reseller_cut"])
        )


@dataclass(frozen=True)
class Purchase:
    """What ``buy`` stores in a new order.

    Attributes:
        amount: The price paid, ``unitPrice * quantity``.
        bond: The supplier's bond reserved for the order.
        reseller_cut: The reseller's margin, ``(unitPrice - resellerPrice) * quantity`` (0
            without a reseller).
    """

    amount: int
    bond: int
    reseller_cut: int


@dataclass(frozen=True)
class Split:
    """A gross amount split into the supplier's part, the platform fee and the commission."""

    to_supplier: int
    fee: int
    commission: int


@dataclass(frozen=True)
class Payout:
    """The credits and bond moves with which an order ends.

    Attributes:
        buyer_amount: The buyer's share of the payment (the whole amount on a refund; on a
            ruling, ``DisputeRuled.buyerAmount``).
        slashed: Bond taken from the supplier and credited to the buyer.
        to_supplier: Credited to the supplier (``DisputeRuled.supplierAmount`` on a ruling).
        fee: Added to the platform's fees.
        commission: Credited to the reseller.
        bond_unreserved: Taken off the supplier's reserved bond (the order's whole bond).
        bond_refreed: Returned to the supplier's free bond (the bond less what was slashed).
    """

    buyer_amount: int
    slashed: int
    to_supplier: int
    fee: int
    commission: int
    bond_unreserved: int
    bond_refreed: int

    @property
    def buyer_credit(self) -> int:
        """Credited to the buyer in all: its share of the payment plus the slashed bond."""
        return self.buyer_amount + self.slashed


def _check_bps(name: str, bps: int) -> None:
    if not 0 <= bps <= BPS:
        raise ValueError(f"{name} must be 0 to {BPS} basis points, not {bps}")


#: Most volume-tier breaks a listing carries (``MAX_TIERS``; four tiers with its base price).
MAX_TIERS = 3


def tier_price(price: int, tiers: Sequence[tuple[int, int]], quantity: int) -> int:
    """A unit price (the listing's, a shop's, or the supplier's reseller price) for an order of
    `quantity`, less the discount of the largest ``(min_quantity, discount_bps)`` tier it
    reaches, as ``buy`` computes it: ``price - price * bps // 10000``."""
    off = 0
    for minimum, bps in tiers:
        if quantity >= minimum:
            off = bps
    return price - price * off // BPS


def coupon_prices(
    unit_price: int, reseller_price: int | None, discount_bps: int, amount_off: int
) -> tuple[int, int | None]:
    """The (unit price, reseller price) a coupon leaves, after any tier, as ``buy`` computes
    them: its percentage off both (``p - p * bps // 10000``), then its amount off both; the
    reseller price is None outside a shop.

    Raises:
        ValueError: the amount off is not below the price it comes out of (the reseller price
            in a shop, else the unit price): ``EscrowCouponTooLarge``.
    """
    unit = unit_price - unit_price * discount_bps // BPS
    resale = (
        None if reseller_price is None else reseller_price - reseller_price * discount_bps // BPS
    )
    base = unit if resale is None else resale
    if amount_off and amount_off >= base:
        raise ValueError(f"the coupon takes {amount_off} off a price of {base}: it must be less")
    return unit - amount_off, None if resale is None else resale - amount_off


def tier_fault(tiers: Sequence[tuple[int, int]]) -> str | None:
    """Why ``setTiers`` would refuse these ``(min_quantity, discount_bps)`` tiers
    (``EscrowBadTiers``), in words, or None if it accepts them."""
    if len(tiers) > MAX_TIERS:
        return f"at most {MAX_TIERS} tiers over the base price, not {len(tiers)}"
    last_quantity, last_discount = 1, 0
    for i, (minimum, bps) in enumerate(tiers, 1):
        if not last_quantity < minimum < 2**32:
            return (
                f"tier {i}: its quantity ({minimum}) must be above {last_quantity} "
                "(each tier starts at a larger order than the one before, the first at 2 or more)"
            )
        if not last_discount < bps < BPS:
            return (
                f"tier {i}: its discount ({bps / 100:g}%) must be above {last_discount / 100:g}% "
                "and below 100% (a larger order gets a larger discount)"
            )
        last_quantity, last_discount = minimum, bps
    return None


def purchase(
    unit_price: int, quantity: int, bond_bps: int, reseller_price: int | None = None
) -> Purchase:
    """What ``buy`` stores for `quantity` codes of a listing.

    Args:
        unit_price: The price per code the buyer pays: the listing's, or the shop's when bought
            from a reseller.
        quantity: Codes bought.
        bond_bps: The listing's bond rate.
        reseller_price: The listing's reseller price when bought from a reseller, else None.

    Raises:
        ValueError: as ``buy`` reverts, in its order: the listing is not open to resellers
            (``EscrowNotDistributable``), the shop's price is below the reseller price
            (``EscrowBelowResellerPrice``), the amount does not fit 96 bits
            (``EscrowAmountTooLarge``); or a rate is out of range.
    """
    _check_bps("bond_bps", bond_bps)
    cut = 0
    if reseller_price is not None:
        if reseller_price == 0:
            raise ValueError("the listing is not open to resellers (EscrowNotDistributable)")
        if unit_price < reseller_price:
            raise ValueError(
                f"shop price {unit_price} is below reseller price {reseller_price}"
                " (EscrowBelowResellerPrice)"
            )
        cut = (unit_price - reseller_price) * quantity
    amount = unit_price * quantity
    if amount > MAX_AMOUNT:
        raise ValueError(f"amount {amount} exceeds {MAX_AMOUNT} (EscrowAmountTooLarge)")
    return Purchase(amount=amount, bond=amount * bond_bps // BPS, reseller_cut=cut)


def split_proceeds(gross: int, terms: Terms) -> Split:
    """Split `gross` as ``_splitProceeds`` does: the fee, the reseller's commission (its cut
    scaled as `gross` is from the amount, less its share of the fee), the rest to the supplier.

    Args:
        gross: The amount to split: the order's amount, or what a ruling leaves the sellers.
        terms: The order's terms.
    """
    fee = gross * terms.fee_bps // BPS
    commission = 0
    if terms.reseller_cut:
        cut = terms.reseller_cut
        if gross != terms.amount:
            cut = cut * gross // terms.amount
        commission = cut - cut * terms.fee_bps // BPS
    return Split(to_supplier=gross - fee - commission, fee=fee, commission=commission)


def complete(terms: Terms) -> Payout:
    """``confirm`` and ``settle``: the supplier is paid, less fee and commission; bond freed."""
    split = split_proceeds(terms.amount, terms)
    return Payout(
        buyer_amount=0,
        slashed=0,
        to_supplier=split.to_supplier,
        fee=split.fee,
        commission=split.commission,
        bond_unreserved=terms.bond,
        bond_refreed=terms.bond,
    )


def refund(terms: Terms) -> Payout:
    """``refund``: the buyer gets the whole amount back; bond freed; no fee, no commission."""
    return Payout(
        buyer_amount=terms.amount,
        slashed=0,
        to_supplier=0,
        fee=0,
        commission=0,
        bond_unreserved=terms.bond,
        bond_refreed=terms.bond,
    )


def resolve(terms: Terms, buyer_bps: int, slash_bps: int) -> Payout:
    """``rule`` (and ``_resolve`` behind every ending of a dispute).

    Args:
        terms: The order's terms.
        buyer_bps: The buyer's share of the payment.
        slash_bps: The share of the order's bond paid to the buyer.

    Raises:
        ValueError: a share is out of range (``EscrowBadBps``).
    """
    _check_bps("buyer_bps", buyer_bps)
    _check_bps("slash_bps", slash_bps)
    buyer_amount = terms.amount * buyer_bps // BPS
    split = split_proceeds(terms.amount - buyer_amount, terms)
    slashed = terms.bond * slash_bps // BPS
    return Payout(
        buyer_amount=buyer_amount,
        slashed=slashed,
        to_supplier=split.to_supplier,
        fee=split.fee,
        commission=split.commission,
        bond_unreserved=terms.bond,
        bond_refreed=terms.bond - slashed,
    )


def resolve_timed_out(terms: Terms) -> Payout:
    """``resolveTimedOut``: half the payment to each side, no slash."""
    return resolve(terms, TIMEOUT_BUYER_BPS, 0)


def prove_bad_code(terms: Terms) -> Payout:
    """``proveBadCode``: the buyer takes the whole payment and the whole bond."""
    return resolve(terms, BPS, BPS)


def payout_for_event(name: str, terms: Terms, args: Mapping[str, Any]) -> Payout | None:
    """The payout an order event records, or None for events that pay nothing out.

    Args:
        name: The event's name.
        terms: The order's terms.
        args: The event's decoded arguments (a ruling's ``buyerBps`` and ``slashBps``).
    """
    if name in ("OrderConfirmed", "OrderSettled"):
        return complete(terms)
    if name == "OrderRefunded":
        return refund(terms)
    if name == "DisputeRuled":
        return resolve(terms, int(args["buyerBps"]), int(args["slashBps"]))
    return None


def order_changes(
    name: str, args: Mapping[str, Any], block_timestamp: int | None, dispute_window: int
) -> dict[str, Any]:
    """The Order fields an event changes, as the contract changes the stored order.

    OrderDelivered sets the release digest and the dispute deadline (``block.timestamp +
    disputeWindow``); DisputeOpened sets the arbitration deadline; every order event sets the
    state (`STATE_AFTER`). The digest is returned as the event carries it (bytes or 0x hex).

    Args:
        name: The event's name.
        args: The event's decoded arguments.
        block_timestamp: The timestamp of the event's block (only OrderDelivered needs it).
        dispute_window: The order's dispute window.

    Returns:
        The changed fields by their Order names (empty for events that change no order).

    Raises:
        ValueError: OrderDelivered without a block timestamp.
    """
    state = STATE_AFTER.get(name)
    if state is None or name in ("OrderPaid", "EvidenceAdded"):
        return {}
    if name == "OrderDelivered":
        if block_timestamp is None:
            raise ValueError("OrderDelivered needs its block's timestamp")
        return {
            "state": state,
            "deadline": (block_timestamp + dispute_window) % _UINT40,
            "release_digest": args["releaseDigest"],
        }
    if name == "DisputeOpened":
        return {"state": state, "deadline": int(args["arbitrationDeadline"])}
    return {"state": state}


def is_final(state: OrderState | int) -> bool:
    """Whether an order in `state` has ended (its hash is deleted on-chain)."""
    return state in (OrderState.COMPLETED, OrderState.REFUNDED, OrderState.RESOLVED)


__all__ = [
    "BPS",
    "ENDING_EVENTS",
    "MAX_AMOUNT",
    "MAX_FEES_BPS",
    "MAX_ON_CHAIN_QUANTITY",
    "MONEY_EVENTS",
    "ORDER_EVENTS",
    "STATE_AFTER",
    "TIMEOUT_BUYER_BPS",
    "Payout",
    "Purchase",
    "Split",
    "Terms",
    "complete",
    "is_final",
    "order_changes",
    "payout_for_event",
    "prove_bad_code",
    "purchase",
    "refund",
    "resolve",
    "resolve_timed_out",
    "split_proceeds",
]
