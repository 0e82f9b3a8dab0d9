"""The catalog: ``GET /catalog/listings`` with live stock, price and the supplier's record, and
the resellers' shops (分站): ``GET /shops/{address}``, the listings a reseller sells at its own
prices. `router` holds both (``/catalog`` and ``/shops``), so the app mounts one router."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from backend.api import queries
from backend.api.convert import listing_public, shop_listing_public, state_name
from backend.api.deps import CatalogLimit, ListingIdPath, Offset, SessionDep
from backend.api.errors import NotFound
from backend.api.validate import (
    ADDRESS_PATTERN,
    BYTES32_PATTERN,
    address_or_none,
    bytes32_or_none,
    checksum,
)
from backend.schemas import (
    Address,
    ErrorPublic,
    ListingPublic,
    ShopListingPublic,
    ShopSalePublic,
    SupplierRecord,
)
from indexer import models as m

catalog = APIRouter(prefix="/catalog", tags=["catalog"])
shops = APIRouter(prefix="/shops", tags=["catalog"])
#: What a shop's routes answer besides 200: a malformed address or paging (422, as every path
#: and query value of the API), no mirror yet (503).
SHOP_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorPublic} for code in (422, 503)
}


@catalog.get(
    "/listings",
    response_model=list[ListingPublic],
    responses={422: {"model": ErrorPublic}, 503: {"model": ErrorPublic}},
)
def list_listings(
    session: SessionDep,
    supplier: Annotated[
        str | None,
        Query(
            description="Only this supplier's listings.",
            json_schema_extra={"pattern": ADDRESS_PATTERN},
        ),
    ] = None,
    sku: Annotated[
        str | None,
        Query(
            description="Only this product (bytes32, 0x-hex): "
            "compare suppliers of the same product.",
            json_schema_extra={"pattern": BYTES32_PATTERN},
        ),
    ] = None,
    active: Annotated[bool | None, Query(description="Only open (true) or closed (false).")] = True,
    in_stock: Annotated[bool, Query(description="Only listings with codes left.")] = False,
    licence: Annotated[
        Literal["in-force", "revoked", "any"],
        Query(
            description="Listings whose supplier's authorization for the sku (the rights "
            "holder's licence) is in force (the default), revoked, or any."
        ),
    ] = "in-force",
    limit: CatalogLimit = 100,
    offset: Offset = 0,
) -> list[ListingPublic]:
    """Listings, newest first, with stock left (committed - sold), price and terms, and the
    supplier's on-chain record (orders completed, disputes lost). Read from the mirror. By
    default only listings whose licence (the rights holder's authorization) is in force."""
    rows = queries.list_listings(
        session,
        supplier=address_or_none(supplier, "supplier"),
        sku=bytes32_or_none(sku, "sku"),
        active=active,
        in_stock=in_stock,
        licensed={"in-force": True, "revoked": False, "any": None}[licence],
        limit=limit,
        offset=offset,
    )
    records = queries.supplier_records(session, suppliers={r.supplier for r in rows})
    ok = queries.licensed_pairs(session, listings=rows)
    return [listing_public(r, records[r.supplier], (r.supplier, r.sku) in ok) for r in rows]


@catalog.get(
    "/listings/{listing_id}",
    response_model=ListingPublic,
    responses={404: {"model": ErrorPublic}, 422: {"model": ErrorPublic}},
)
def get_listing(listing_id: ListingIdPath, session: SessionDep) -> ListingPublic:
    """One listing with live stock and the supplier's record."""
    row = queries.get_listing(session, listing_id=listing_id)
    if row is None:
        raise NotFound(
            f"no listing {listing_id} in the mirror: check the id, or wait a block if it was "
            "created just now"
        )
    records = queries.supplier_records(session, suppliers=[row.supplier])
    ok = queries.licensed_pairs(session, listings=[row])
    return listing_public(row, records[row.supplier], (row.supplier, row.sku) in ok)


@catalog.get(
    "/suppliers/{address}", response_model=SupplierRecord, responses={422: {"model": ErrorPublic}}
)
def supplier_record(
    address: Annotated[str, Path(json_schema_extra={"pattern": ADDRESS_PATTERN})],
    session: SessionDep,
) -> SupplierRecord:
    """A supplier's on-chain record: orders completed and refunded, disputes total and lost."""
    supplier = checksum(address, "address")
    record = queries.supplier_records(session, suppliers=[supplier])[supplier]
    return SupplierRecord(supplier=supplier, **record)


@catalog.get(
    "/tokens",
    response_model=list[Address],
    responses={503: {"model": ErrorPublic, "description": "The database is down."}},
)
def allowed_tokens(session: SessionDep) -> list[str]:
    """The ERC-20 tokens the escrow accepts now (besides the chain's own coin), from the mirror:
    what a supplier may price a listing and hold a bond in."""
    return list(
        session.scalars(
            select(m.AllowedToken.token)
            .where(m.AllowedToken.allowed.is_(True))
            .order_by(m.AllowedToken.token)
        )
    )


#: A reseller's address in a shop's path: checked by `checksum`, so that a malformed one is a
#: 422 ``bad_value`` that names it.
ResellerPath = Annotated[
    str,
    Path(
        description="The reseller's address (any case).",
        json_schema_extra={"pattern": ADDRESS_PATTERN},
    ),
]


@shops.get(
    "/{address}",
    response_model=list[ShopListingPublic],
    responses=SHOP_ERRORS,
)
def shop_listings(
    address: ResellerPath,
    session: SessionDep,
    limit: CatalogLimit = 100,
    offset: Offset = 0,
) -> list[ShopListingPublic]:
    """The listings in a reseller's shop (分站), by listing id: each listing's fields (as in
    ``GET /catalog/listings``) with the shop's unit price and whether a purchase through the
    shop would be accepted now. Listings the reseller took out (price 0) are not listed; an
    address without a shop has an empty list. Read from the mirror."""
    reseller = checksum(address, "address")
    rows = queries.shop_listings(session, reseller=reseller, limit=limit, offset=offset)
    listings = [listing for _, listing in rows]
    records = queries.supplier_records(session, suppliers={r.supplier for r in listings})
    ok = queries.licensed_pairs(session, listings=listings)
    return [
        shop_listing_public(shop, r, records[r.supplier], (r.supplier, r.sku) in ok)
        for shop, r in rows
    ]


@shops.get(
    "/{address}/sales",
    response_model=list[ShopSalePublic],
    responses=SHOP_ERRORS,
)
def shop_sales(
    address: ResellerPath,
    session: SessionDep,
    limit: CatalogLimit = 100,
    offset: Offset = 0,
) -> list[ShopSalePublic]:
    """The orders bought in a reseller's shop, newest first, with the margin fixed in each and
    what the escrow credited the reseller once it ended. Public, as the chain is: every field
    is in the order's events. Read from the mirror."""
    reseller = checksum(address, "address")
    return [
        ShopSalePublic(
            order_id=int(o.order_id),
            listing_id=int(o.listing_id),
            token=o.token,
            quantity=int(o.quantity),
            amount=int(o.amount),
            reseller_cut=int(o.reseller_cut),
            commission=commission,
            state=int(o.state),
            state_name=state_name(int(o.state)),
            paid_at=int(o.paid_at),
            paid_tx=o.paid_tx,
        )
        for o, commission in queries.shop_sales(
            session, reseller=reseller, limit=limit, offset=offset
        )
    ]


#: What the app mounts: the catalog and the shops.
router = APIRouter()
router.include_router(catalog)
router.include_router(shops)
