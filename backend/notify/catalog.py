"""The notification types: what happened, who must know, and what the message says.

Recipients are roles of an order (``buyer``, ``supplier``; of a listing or a licence,
``supplier``) or ``arbiters`` (every endpoint whose owner subscribed as an arbiter). A message's
``data`` carries ids, amounts, deadlines and a link, never a code, a salt, a key or a release.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """One notification type.

    Attributes:
        name: The ``type`` of the message, e.g. ``order.paid``.
        recipients: Who is told: ``buyer``, ``supplier``, ``arbiters``.
        subject: The email subject (``{order}`` and the like are filled from ``data``).
        text: One sentence saying what happened and what to do.
    """

    name: str
    recipients: tuple[str, ...]
    subject: str
    text: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "order.paid",
            ("supplier",),
            "Order {order_id} paid",
            "Order {order_id} was paid ({quantity} code(s)); deliver before {deadline_utc}.",
        ),
        Kind(
            "order.delivered",
            ("buyer",),
            "Your codes for order {order_id} are ready",
            "The codes of order {order_id} were delivered: open them now; if one does not "
            "work, dispute before {dispute_deadline_utc}.",
        ),
        Kind(
            "order.dispute_window_closing",
            ("buyer",),
            "Order {order_id}: the dispute window closes soon",
            "The dispute window of order {order_id} closes at {dispute_deadline_utc} (in about "
            "{hours_left} h); after that the supplier is paid.",
        ),
        Kind(
            "order.delivery_deadline_close",
            ("supplier",),
            "Order {order_id}: deliver before {deadline_utc}",
            "Order {order_id} is not delivered yet and its deadline is {deadline_utc}; after "
            "it the buyer can reclaim the payment.",
        ),
        Kind(
            "order.disputed",
            ("supplier", "arbiters"),
            "Order {order_id} disputed",
            "The buyer disputed order {order_id}; the arbitration deadline is "
            "{arbitration_deadline_utc}.",
        ),
        Kind(
            "order.evidence_added",
            ("supplier", "arbiters"),
            "Order {order_id}: new evidence",
            "New evidence was added to the dispute of order {order_id}.",
        ),
        Kind(
            "order.arbitration_deadline_close",
            ("arbiters",),
            "Order {order_id}: rule before {arbitration_deadline_utc}",
            "The dispute of order {order_id} must be ruled before {arbitration_deadline_utc}; "
            "after that it splits 50/50.",
        ),
        Kind(
            "order.completed",
            ("buyer", "supplier"),
            "Order {order_id} completed",
            "Order {order_id} is complete: the supplier is paid.",
        ),
        Kind(
            "order.refunded",
            ("buyer", "supplier"),
            "Order {order_id} refunded",
            "Order {order_id} was refunded to the buyer.",
        ),
        Kind(
            "order.ruled",
            ("buyer", "supplier"),
            "Order {order_id}: the dispute is decided",
            "The dispute of order {order_id} was decided: {buyer_bps_pct}% to the buyer, "
            "{slash_bps_pct}% of the bond slashed.",
        ),
        Kind(
            "listing.low_stock",
            ("supplier",),
            "Listing {listing_id}: {stock} code(s) left",
            "Listing {listing_id} has {stock} code(s) left (threshold {threshold}); upload "
            "more before it sells out.",
        ),
        Kind(
            "licence.revoked",
            ("supplier",),
            "Licence revoked: {sku_label}",
            "The rights holder's authorization to sell {sku_label} was revoked in block "
            "{block}: your listings of it ({listing_ids}) leave the storefront and can take no "
            "new codes; orders already paid must still be delivered.",
        ),
        Kind(
            "endpoint.test",
            (),
            "kameng test message",
            "This is a test message from kameng: this endpoint works.",
        ),
    )
}

#: The mirror's order events and the notification each becomes.
FROM_EVENT = {
    "OrderPaid": "order.paid",
    "OrderDelivered": "order.delivered",
    "DisputeOpened": "order.disputed",
    "EvidenceAdded": "order.evidence_added",
    "OrderConfirmed": "order.completed",
    "OrderSettled": "order.completed",
    "OrderRefunded": "order.refunded",
    "DisputeRuled": "order.ruled",
}


class _Blank(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


def render(kind: str, data: dict[str, object]) -> tuple[str, str]:
    """The subject and text of a message of `kind` with `data` (unknown fields show ``?``)."""
    spec = KINDS[kind]
    values = _Blank(data)
    return spec.subject.format_map(values), spec.text.format_map(values)


__all__ = ["FROM_EVENT", "KINDS", "Kind", "render"]
