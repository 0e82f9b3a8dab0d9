"""Shop names (分站 names): ``GET /shop-names/{name}`` finds the reseller behind a shop's link
(``/#/s/NAME``), ``GET /shop-names?reseller=ADDRESS`` the name of a shop, and
``PUT /shop-names/{name}`` lets the signed-in wallet claim a name for its own shop.

A shop is an address on-chain; its name is kept by this platform only, one per address, first
come first served. The address link (``/#/s/0x…``) works without it.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from fastapi import APIRouter, Path, Query
from sqlalchemy import select

from backend import models as bm
from backend.api.deps import CurrentWallet, SessionDep
from backend.api.errors import ApiError, NotFound
from backend.api.validate import ADDRESS_PATTERN, checksum
from backend.schemas import ErrorPublic, ShopNamePublic

router = APIRouter(prefix="/shop-names", tags=["catalog"])

#: What a shop name may be: lowercase letters, digits and hyphens, 3 to 32 of them, starting and
#: ending with a letter or a digit (it is a path segment of a link, read aloud to buyers).
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$"
_NAME = re.compile(NAME_PATTERN)


class BadShopName(ApiError):
    """A shop name that breaks the rule (422, code ``bad_shop_name``, as every malformed path
    value of the API)."""

    status_code: ClassVar[int] = 422

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name[:40]!r} is not a usable shop name: use 3 to 32 lowercase letters, digits "
            "and hyphens, starting and ending with a letter or a digit (for example "
            "'xiaoming-games')",
            code="bad_shop_name",
        )


class ShopNameTaken(ApiError):
    """The name belongs to another reseller's shop (409, code ``shop_name_taken``)."""

    status_code: ClassVar[int] = 409


#: A shop name in a path: the pattern is published for clients; `_name` checks it, so that a
#: name that breaks it is a 422 that states the rule.
NamePath = Annotated[
    str,
    Path(
        description="The shop's name.",
        max_length=64,
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
]


def _name(name: str) -> str:
    """`name` if it is a usable shop name, else a 422 that says what to fix."""
    if not _NAME.match(name):
        raise BadShopName(name)
    return name


def _public(row: bm.ShopName) -> ShopNamePublic:
    return ShopNamePublic(name=row.name, reseller=row.reseller)


@router.get(
    "",
    response_model=list[ShopNamePublic],
    responses={422: {"model": ErrorPublic}},
)
def name_of_shop(
    session: SessionDep,
    reseller: Annotated[
        str,
        Query(
            description="The reseller's address (any case).",
            json_schema_extra={"pattern": ADDRESS_PATTERN},
        ),
    ],
) -> list[ShopNamePublic]:
    """The name of a reseller's shop: a list of one, or empty when it has claimed none."""
    address = checksum(reseller, "reseller")
    row = session.scalar(select(bm.ShopName).where(bm.ShopName.reseller == address))
    return [_public(row)] if row is not None else []


@router.get(
    "/{name}",
    response_model=ShopNamePublic,
    responses={code: {"model": ErrorPublic} for code in (404, 422)},
)
def shop_by_name(name: NamePath, session: SessionDep) -> ShopNamePublic:
    """The reseller whose shop has this name (the link ``/#/s/NAME`` opens its shop)."""
    row = session.get(bm.ShopName, _name(name))
    if row is None:
        raise NotFound(f"no shop is named {name!r}", code="unknown_shop_name")
    return _public(row)


@router.put(
    "/{name}",
    response_model=ShopNamePublic,
    responses={
        401: {"model": ErrorPublic, "description": "Not signed in."},
        409: {"model": ErrorPublic, "description": "Another shop has this name."},
        422: {"model": ErrorPublic, "description": "Not a usable shop name."},
    },
)
def claim_shop_name(name: NamePath, session: SessionDep, wallet: CurrentWallet) -> ShopNamePublic:
    """Name the signed-in wallet's shop: its link becomes ``/#/s/NAME``. A wallet has one name;
    claiming another gives up the one it had. A name another shop holds is refused."""
    wanted = _name(name)
    holder = session.get(bm.ShopName, wanted)
    if holder is not None and holder.reseller != wallet.address:
        raise ShopNameTaken(
            f"the name {wanted!r} belongs to another shop: choose another", code="shop_name_taken"
        )
    if holder is None:
        old = session.scalar(select(bm.ShopName).where(bm.ShopName.reseller == wallet.address))
        if old is not None:
            session.delete(old)
            session.flush()
        holder = bm.ShopName(name=wanted, reseller=wallet.address)
        session.add(holder)
    session.commit()
    return _public(holder)
