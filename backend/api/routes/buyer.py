"""A buyer's orders and sealed releases.

An order's detail and list need the buyer (or its supplier, or an arbiter) signed in. Its sealed
release does not: it is encrypted to the buyer's per-order key, and for a listing delivered
on-chain it is published on the chain anyway, so anyone may fetch it and only the buyer can
open it (docs/API.md). A first-time buyer's browser thus opens its codes with no sign-in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

from backend.api import queries
from backend.api.convert import event_public, order_fields, state_name
from backend.api.deps import (
    AppContext,
    ContextDep,
    CurrentWallet,
    Offset,
    OrderIdPath,
    OrderStates,
    PageLimit,
    SessionDep,
)
from backend.api.errors import Forbidden, NotFound, NotReady
from backend.errors import ReleaseNotFound
from backend.release_store import get_release
from backend.schemas import ErrorPublic, OrderDetailPublic, OrderPublic, ReleasePublic
from contracts.encoding import OrderState

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

    from indexer import models as m

router = APIRouter(prefix="/buyer", tags=["buyer"])

#: The mirror's release digest of an order not delivered (yet).
_NO_DIGEST = "0x" + "00" * 32

_AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorPublic, "description": "Not signed in, or the signature is invalid."},
    503: {"model": ErrorPublic, "description": "The database is down; retry later."},
}


def ready_ids(session: SessionDep, order_ids: list[int]) -> set[int]:
    """Which of these orders have a release the buyer can fetch: stored here and delivered
    on-chain with its digest (`queries.servable_releases`)."""
    return set(queries.servable_releases(session, order_ids=order_ids))


def settle_fields(row: m.Order, now: int | None) -> dict[str, Any]:
    """When a Delivered order settles by itself (`settles_at`, its deadline) and whether that
    is already past at chain time `now` (`settle_due`); null and False in other states."""
    if int(row.state) != OrderState.DELIVERED:
        return {"settles_at": None, "settle_due": False}
    deadline = int(row.deadline)
    return {"settles_at": deadline, "settle_due": now is not None and deadline < now}


def orders_public(ctx: AppContext, session: Session, rows: Sequence[m.Order]) -> list[OrderPublic]:
    """Mirror rows as `OrderPublic`s: whether each release is ready, and when each Delivered
    order settles by itself at the mirror's chain time."""
    ready = ready_ids(session, [int(r.order_id) for r in rows])
    now = queries.chain_time(session, chain_id=ctx.auth.chain_id) if rows else None
    return [
        OrderPublic(
            **order_fields(r), release_ready=int(r.order_id) in ready, **settle_fields(r, now)
        )
        for r in rows
    ]


@router.get("/orders", response_model=list[OrderPublic], responses=_AUTH_ERRORS)
def my_orders(
    ctx: ContextDep,
    session: SessionDep,
    wallet: CurrentWallet,
    state: OrderStates = None,
    limit: PageLimit = 100,
    offset: Offset = 0,
) -> list[OrderPublic]:
    """The signed-in wallet's orders, newest first, from the mirror. A Delivered order says
    when it settles by itself (`settles_at`) and whether that time has come (`settle_due`)."""
    rows = queries.list_orders(
        session, buyer=wallet.address, states=state, limit=limit, offset=offset
    )
    return orders_public(ctx, session, rows)


def _unknown(order_id: int) -> NotFound:
    listing, first = order_id >> 32, order_id & 0xFFFFFFFF
    return NotFound(
        f"unknown order {order_id} (listing {listing}, first index {first}): no such order in "
        "the mirror; check the id, or retry in a few seconds if you paid just now"
    )


@router.get(
    "/orders/{order_id}",
    response_model=OrderDetailPublic,
    responses={**_AUTH_ERRORS, 403: {"model": ErrorPublic}, 404: {"model": ErrorPublic}},
)
def order_detail(
    order_id: OrderIdPath, ctx: ContextDep, session: SessionDep, wallet: CurrentWallet
) -> OrderDetailPublic:
    """One order with its on-chain history. Its buyer, its supplier, or an arbiter.

    A Delivered order says when it settles by itself unless its buyer disputes (`settles_at`,
    chain time) and whether that time has passed (`settle_due`)."""
    row = queries.get_order(session, order_id=order_id)
    if row is None:
        raise _unknown(order_id)
    if wallet.address not in (row.buyer, row.supplier) and not ctx.is_arbiter(wallet.address):
        raise Forbidden(f"order {order_id} is not yours: sign in as its buyer or supplier")
    events = queries.order_events(session, order_id=order_id)
    now = queries.chain_time(session, chain_id=ctx.auth.chain_id)
    return OrderDetailPublic(
        **order_fields(row),
        release_ready=bool(ready_ids(session, [order_id])),
        **settle_fields(row, now),
        events=[event_public(e) for e in events],
    )


@router.get(
    "/orders/{order_id}/release",
    response_model=ReleasePublic,
    responses={
        404: {"model": ErrorPublic, "description": "Unknown order, or it will never have one."},
        409: {
            "model": ErrorPublic,
            "description": "Not sealed yet, or sealed but its delivery is not on-chain yet "
            "(not mined, or not indexed); retry after Retry-After.",
        },
        503: {"model": ErrorPublic, "description": "The database is down; retry later."},
    },
)
def fetch_release(order_id: OrderIdPath, session: SessionDep) -> ReleasePublic:
    """The order's sealed release with, per code, its commitment, batch root and Merkle proof.

    Needs no sign-in: the release is sealed to the buyer's per-order key (an X25519 key only the
    buyer's wallet can re-derive), so to anyone else it is ciphertext, and for a listing
    delivered on-chain the same bytes are on the chain (`ReleasePublished`). It is served once
    its delivery is on-chain: the indexer's mirror shows the order delivered with this release's
    digest (until then 409, even though it is sealed). Open and check it with
    ``kameng buyer verify``. Like the catalog it has no rate limit: it reads three rows.
    """
    row = queries.get_order(session, order_id=order_id)
    try:
        release = get_release(session, order_id)
    except ReleaseNotFound:
        release = None
    buyer = row.buyer if row is not None else (release.buyer if release is not None else None)
    if buyer is None:
        raise _unknown(order_id)
    state = int(row.state) if row is not None else int(OrderState.PAID)
    if release is None:
        if state == OrderState.PAID:
            raise NotReady(
                f"order {order_id} is paid and its release is being sealed; retry in a second"
            )
        raise NotFound(
            f"order {order_id} is {state_name(state)} and this backend holds no release for it"
        )
    if order_id not in queries.servable_releases(session, order_ids=[order_id]):
        # Sealed, but not the delivered release on-chain (audit finding 10).
        if row is None or state == OrderState.PAID:
            raise NotReady(
                f"order {order_id}'s release is sealed but its delivery is not on-chain yet "
                "(the deliver transaction is not mined, or the indexer has not reached its "
                "block); it is served once it is; retry in a second"
            )
        delivered = row.release_digest != _NO_DIGEST
        raise NotFound(
            f"order {order_id} is {state_name(state)} on-chain "
            + (
                f"with another release (digest {row.release_digest})"
                if delivered
                else "and was never delivered"
            )
            + "; this backend's sealed release is not the delivered one and is not served"
        )
    # The order row read above may predate the delivery the check just saw (each statement reads
    # the latest commit; the indexer can land the block in between): read the state again so the
    # answer never pairs a served release with "paid".
    # expire_all: without it the session's identity map hands back the row loaded above, stale.
    session.expire_all()
    fresh = queries.get_order(session, order_id=order_id)
    if fresh is not None:
        state = int(fresh.state)
    return ReleasePublic(**release.model_dump(), order_state=state_name(state))
