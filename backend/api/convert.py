"""Mirror rows to API models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.schemas import (
    ListingPublic,
    OrderEventPublic,
    OrderPublic,
    ShopListingPublic,
    SupplierRecord,
    VolumeTier,
)
from contracts.encoding import OrderState
from contracts.order_rules import MAX_ON_CHAIN_QUANTITY
from contracts.storage import decode_tiers

if TYPE_CHECKING:
    from collections.abc import Iterable

    from indexer import models as m


def state_name(state: int) -> str:
    """The lowercase name of an OrderState value."""
    try:
        return OrderState(state).name.lower()
    except ValueError:
        return f"unknown({state})"


def on_chain_fields(row: m.Listing) -> dict[str, Any]:
    """A listing's delivery mode: `on_chain_from` as the contract holds it, whether new orders
    are delivered on-chain, and the most codes an order may then hold (None otherwise)."""
    start = int(row.on_chain_from)
    return {
        "on_chain_from": start,
        "on_chain_release": start != 0,
        "max_quantity_per_order": MAX_ON_CHAIN_QUANTITY if start else None,
    }


def listing_public(row: m.Listing, record: dict[str, int], licensed: bool) -> ListingPublic:
    """A catalog entry from a mirror row, its supplier's record and whether it is licensed."""
    committed, sold = int(row.committed), int(row.sold)
    return ListingPublic(
        listing_id=int(row.listing_id),
        supplier=row.supplier,
        sku=row.sku,
        token=row.token,
        unit_price=int(row.unit_price),
        delivery_window=int(row.delivery_window),
        dispute_window=int(row.dispute_window),
        bond_bps=row.bond_bps,
        fee_bps=row.fee_bps,
        reseller_price=int(row.reseller_price),
        tiers=[VolumeTier(min_quantity=q, discount_bps=d) for q, d in decode_tiers(int(row.tiers))],
        metadata_uri=row.metadata_uri,
        active=bool(row.active),
        committed=committed,
        sold=sold,
        stock=max(0, committed - sold),
        licensed=licensed,
        supplier_record=SupplierRecord(supplier=row.supplier, **record),
        **on_chain_fields(row),
    )


def shop_listing_public(
    shop: m.ShopPrice, row: m.Listing, record: dict[str, int], licensed: bool
) -> ShopListingPublic:
    """A listing in a reseller's shop: the catalog entry (`listing_public`) with the shop's
    price, and whether a purchase through the shop would be accepted now."""
    listing = listing_public(row, record, licensed)
    price, floor = int(shop.price), int(row.reseller_price)
    return ShopListingPublic(
        **listing.model_dump(),
        reseller=shop.reseller,
        shop_price=price,
        buyable=bool(row.active) and floor != 0 and price >= floor,
    )


def order_public(row: m.Order, ready: Iterable[int] = ()) -> OrderPublic:
    """An order from a mirror row; `ready` holds the ids whose release can be fetched."""
    return OrderPublic(**order_fields(row), release_ready=int(row.order_id) in set(ready))


def order_fields(row: m.Order) -> dict[str, Any]:
    """The fields of `OrderPublic` except `release_ready`."""
    return {
        "order_id": int(row.order_id),
        "buyer": row.buyer,
        "supplier": row.supplier,
        "token": row.token,
        "reseller": row.reseller,
        "amount": int(row.amount),
        "bond": int(row.bond),
        "quantity": int(row.quantity),
        "fee_bps": row.fee_bps,
        "reseller_cut": int(row.reseller_cut),
        "dispute_window": int(row.dispute_window),
        "deadline": int(row.deadline),
        "state": int(row.state),
        "release_digest": row.release_digest,
        "release_on_chain": bool(row.release_on_chain),
        "listing_id": int(row.listing_id),
        "first_index": int(row.first_index),
        "state_name": state_name(int(row.state)),
        "buyer_pubkey": row.buyer_pubkey,
        "paid_block": int(row.paid_block),
        "paid_tx": row.paid_tx,
        "paid_at": int(row.paid_at),
        "updated_at": int(row.updated_at),
    }


def event_public(row: m.OrderEvent) -> OrderEventPublic:
    """One order event."""
    return OrderEventPublic(
        name=row.name,
        state_after=row.state_after,
        block_number=int(row.block_number),
        tx_hash=row.tx_hash,
        log_index=row.log_index,
        timestamp=int(row.timestamp),
    )
