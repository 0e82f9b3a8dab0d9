"""The catalog: ``GET /catalog/listings`` with live stock, price and the supplier's record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api import queries
from backend.api.convert import listing_public
from backend.api.deps import SessionDep
from backend.api.errors import NotFound
from backend.api.schemas import ErrorPublic, ListingPublic, SupplierRecord
from backend.api.validate import address_or_none, bytes32_or_none, checksum

router = APIRouter(prefix="/catalog", tags=["catalog"])


@router.get(
    "/listings",
    response_model=list[ListingPublic],
    responses={422: {"model": ErrorPublic}, 503: {"model": ErrorPublic}},
)
def list_listings(
    session: SessionDep,
    supplier: Annotated[str | None, Query(description="Only this supplier's listings.")] = None,
    sku: Annotated[
        str | None,
        Query(
            description="Only this product (bytes32, 0x-hex): "
            "compare suppliers of the same product."
        ),
    ] = None,
    active: Annotated[bool | None, Query(description="Only open (true) or closed (false).")] = True,
    in_stock: Annotated[bool, Query(description="Only listings with codes left.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ListingPublic]:
    """Listings, newest first, with stock left (committed - sold), price and terms, and the
    supplier's on-chain record (orders completed, disputes lost). Read from the mirror."""
    rows = queries.list_listings(
        session,
        supplier=address_or_none(supplier, "supplier"),
        sku=bytes32_or_none(sku, "sku"),
        active=active,
        in_stock=in_stock,
        limit=limit,
        offset=offset,
    )
    records = queries.supplier_records(session, suppliers={r.supplier for r in rows})
    return [listing_public(r, records[r.supplier]) for r in rows]


@router.get(
    "/listings/{listing_id}", response_model=ListingPublic, responses={404: {"model": ErrorPublic}}
)
def get_listing(listing_id: int, session: SessionDep) -> ListingPublic:
    """One listing with live stock and the supplier's record."""
    row = queries.get_listing(session, listing_id=listing_id)
    if row is None:
        raise NotFound(
            f"no listing {listing_id} in the mirror: check the id, or wait a block if it was "
            "created just now"
        )
    records = queries.supplier_records(session, suppliers=[row.supplier])
    return listing_public(row, records[row.supplier])


@router.get(
    "/suppliers/{address}", response_model=SupplierRecord, responses={422: {"model": ErrorPublic}}
)
def supplier_record(address: str, session: SessionDep) -> SupplierRecord:
    """A supplier's on-chain record: orders completed and refunded, disputes total and lost."""
    supplier = checksum(address, "address")
    record = queries.supplier_records(session, suppliers=[supplier])[supplier]
    return SupplierRecord(supplier=supplier, **record)
