"""Notifications: a wallet's webhook and email endpoints, test messages, dead letters, and the
low-stock threshold of a supplier's listings (`backend.notify`)."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path
from fastapi.concurrency import run_in_threadpool
from pydantic import Field
from sqlalchemy import select

from backend.api.deps import ContextDep, CurrentWallet, ListingIdPath, SessionDep, int_range
from backend.api.errors import ApiError, Forbidden, NotFound
from backend.notify.catalog import KINDS
from backend.notify.channels import Message
from backend.notify.endpoints import (
    EndpointRejected,
    SecretBox,
    check_email,
    check_tls,
    check_webhook_url,
    new_secret,
)
from backend.notify.models import DEAD, Endpoint, OutboxMessage, StockFlag
from backend.notify.producer import DEFAULT_STOCK_THRESHOLD
from backend.notify.service import dispatcher_for
from backend.schemas import ApiModel, ErrorPublic

router = APIRouter(prefix="/notifications", tags=["notifications"])

#: Most endpoints one wallet may have.
MAX_ENDPOINTS = 10
#: Types a subscription may name (the test message goes to everyone who asks for it).
SUBSCRIBABLE = sorted(k for k in KINDS if k != "endpoint.test")

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorPublic, "description": "Not signed in."},
    404: {"model": ErrorPublic, "description": "No such endpoint of this wallet."},
}

#: Largest endpoint or message id (SQL BIGINT).
_ID_MAX = 2**63 - 1
EndpointIdPath = Annotated[
    int,
    Path(description="The endpoint's id.", json_schema_extra={"minimum": 1, "maximum": _ID_MAX}),
    int_range(1, _ID_MAX),
]
MessageIdPath = Annotated[
    int,
    Path(
        description="The message's id (`msg_<id>`).",
        json_schema_extra={"minimum": 1, "maximum": _ID_MAX},
    ),
    int_range(1, _ID_MAX),
]


class KindPublic(ApiModel):
    """A notification type."""

    name: str
    recipients: list[str] = Field(description="`buyer`, `supplier`, `arbiters`.")
    text: str = Field(description="What the message says (fields in braces are filled in).")


class EndpointCreate(ApiModel):
    """A new endpoint."""

    kind: Literal["webhook", "email"]
    target: str = Field(
        min_length=3, max_length=2048, description="The https URL, or the email address."
    )
    events: list[str] | None = Field(
        default=None, max_length=len(KINDS), description="Types to receive; all if omitted."
    )


class EndpointPublic(ApiModel):
    """An endpoint (never its secret)."""

    id: int
    kind: str
    target: str
    events: list[str] = Field(description='The types it receives; `["*"]` for all.')
    as_arbiter: bool = Field(description="Whether it receives the arbiters' messages.")
    active: bool


class EndpointCreatedPublic(EndpointPublic):
    """A new endpoint, with its signing secret: shown this once."""

    secret: str | None = Field(
        description="The Standard Webhooks secret (`whsec_...`) to verify signatures with; "
        "shown only now. None for email."
    )
    warning: str | None = Field(default=None, description="Accepted, but worth a look.")


class SecretPublic(ApiModel):
    """A rotated signing secret: shown this once."""

    id: int
    secret: str


class TestResultPublic(ApiModel):
    """The outcome of a test message."""

    delivered: bool
    error: str | None = None


class DeadPublic(ApiModel):
    """A message that did not get through within the retry budget."""

    id: int
    endpoint_id: int
    type: str
    attempts: int
    last_error: str | None


class ThresholdUpdate(ApiModel):
    """A listing's low-stock threshold."""

    threshold: int = Field(ge=0, le=1_000_000)


class ThresholdPublic(ApiModel):
    """A listing's low-stock threshold."""

    listing_id: int
    threshold: int


def _public(e: Endpoint) -> EndpointPublic:
    return EndpointPublic(
        id=e.id,
        kind=e.kind,
        target=e.target,
        events=e.events.split(","),
        as_arbiter=e.as_arbiter,
        active=e.active,
    )


def _own(session: SessionDep, wallet: CurrentWallet, endpoint_id: int) -> Endpoint:
    endpoint = session.get(Endpoint, endpoint_id)
    if endpoint is None or endpoint.owner != wallet.address or not endpoint.active:
        raise NotFound(f"no endpoint {endpoint_id} of {wallet.address}")
    return endpoint


@router.get("/kinds", response_model=list[KindPublic])
def kinds() -> list[KindPublic]:
    """Every notification type, who receives it and what it says."""
    return [
        KindPublic(name=k.name, recipients=list(k.recipients), text=k.text)
        for k in KINDS.values()
        if k.name != "endpoint.test"
    ]


@router.get("/endpoints", response_model=list[EndpointPublic], responses=_ERRORS)
def list_endpoints(session: SessionDep, wallet: CurrentWallet) -> list[EndpointPublic]:
    """The signed-in wallet's endpoints."""
    rows = session.scalars(
        select(Endpoint)
        .where(Endpoint.owner == wallet.address, Endpoint.active.is_(True))
        .order_by(Endpoint.id)
    )
    return [_public(e) for e in rows]


@router.post(
    "/endpoints",
    response_model=EndpointCreatedPublic,
    responses={
        **_ERRORS,
        409: {"model": ErrorPublic, "description": "Already 10 endpoints."},
        422: {"model": ErrorPublic, "description": "Not a usable URL or address."},
    },
)
async def create_endpoint(
    body: Annotated[EndpointCreate, Body()],
    ctx: ContextDep,
    wallet: CurrentWallet,
) -> EndpointCreatedPublic:
    """Add a webhook URL or an email address to be told about the wallet's orders (and, for
    an arbiter, about disputes). A webhook must be ``https`` or ``http``, public (private and
    loopback addresses only in development), and an ``https`` one must pass a TLS handshake;
    email needs a mail server configured here. The answer holds the webhook's signing secret,
    shown this once."""
    settings = ctx.settings
    events = sorted(set(body.events)) if body.events else ["*"]
    unknown = [e for e in events if e != "*" and e not in SUBSCRIBABLE]
    if unknown:
        raise ApiError(
            f"unknown notification type(s) {', '.join(unknown)}; choose from "
            f"{', '.join(SUBSCRIBABLE)} (GET /notifications/kinds)",
            status=422,
        )
    target = body.target.strip()
    try:
        if body.kind == "webhook":
            host, port = await run_in_threadpool(
                check_webhook_url, target, allow_private=settings.notify_private_ok
            )
            if target.lower().startswith("https://"):
                await run_in_threadpool(check_tls, host, port)
        else:
            if not settings.smtp_host:
                raise EndpointRejected(
                    "this server sends no email (KAMENG_SMTP_HOST is not set); use a webhook"
                )
            check_email(target)
    except EndpointRejected as exc:
        raise ApiError(str(exc), status=422) from exc
    secret = new_secret() if body.kind == "webhook" else None

    def store() -> Endpoint:
        with ctx.session_factory() as session:
            count = len(
                session.scalars(
                    select(Endpoint.id).where(
                        Endpoint.owner == wallet.address, Endpoint.active.is_(True)
                    )
                ).all()
            )
            if count >= MAX_ENDPOINTS:
                raise ApiError(
                    f"{wallet.address} has {count} endpoints already (the most is "
                    f"{MAX_ENDPOINTS}); remove one first",
                    status=409,
                )
            endpoint = Endpoint(
                owner=wallet.address,
                kind=body.kind,
                target=target,
                events=",".join(events),
                as_arbiter=ctx.is_arbiter(wallet.address),
                secret_sealed=SecretBox(settings.master_key_bytes).seal(secret) if secret else None,
                active=True,
            )
            session.add(endpoint)
            session.commit()
            return endpoint

    endpoint = await run_in_threadpool(store)
    return EndpointCreatedPublic(**_public(endpoint).model_dump(), secret=secret)


@router.delete("/endpoints/{endpoint_id}", response_model=EndpointPublic, responses=_ERRORS)
def delete_endpoint(
    endpoint_id: EndpointIdPath, session: SessionDep, wallet: CurrentWallet
) -> EndpointPublic:
    """Stop sending to an endpoint (messages waiting for it are dropped)."""
    endpoint = _own(session, wallet, endpoint_id)
    endpoint.active = False
    session.commit()
    return _public(endpoint)


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret", response_model=SecretPublic, responses=_ERRORS
)
def rotate_secret(
    endpoint_id: EndpointIdPath, ctx: ContextDep, session: SessionDep, wallet: CurrentWallet
) -> SecretPublic:
    """A new signing secret for a webhook (shown this once); the old one stops at once."""
    endpoint = _own(session, wallet, endpoint_id)
    if endpoint.kind != "webhook":
        raise ApiError("only a webhook has a signing secret", status=422)
    secret = new_secret()
    endpoint.secret_sealed = SecretBox(ctx.settings.master_key_bytes).seal(secret)
    session.commit()
    return SecretPublic(id=endpoint.id, secret=secret)


@router.post("/endpoints/{endpoint_id}/test", response_model=TestResultPublic, responses=_ERRORS)
async def send_test(
    endpoint_id: EndpointIdPath, ctx: ContextDep, session: SessionDep, wallet: CurrentWallet
) -> TestResultPublic:
    """Send a test message to the endpoint now and say whether it got through."""
    endpoint = _own(session, wallet, endpoint_id)
    dispatcher = dispatcher_for(ctx.settings, ctx.session_factory)
    message = Message(
        id=f"test_{endpoint.id}_{int(time.time() * 1000)}",
        type="endpoint.test",
        timestamp=int(time.time()),
        data={"endpoint_id": endpoint.id},
    )
    error = await run_in_threadpool(dispatcher.send_now, endpoint, message)
    return TestResultPublic(delivered=error is None, error=error)


@router.get("/dead", response_model=list[DeadPublic], responses=_ERRORS)
def dead_letters(session: SessionDep, wallet: CurrentWallet) -> list[DeadPublic]:
    """Messages to the wallet's endpoints that did not get through within the retry budget."""
    rows = session.execute(
        select(OutboxMessage)
        .join(Endpoint, Endpoint.id == OutboxMessage.endpoint_id)
        .where(Endpoint.owner == wallet.address, OutboxMessage.state == DEAD)
        .order_by(OutboxMessage.id)
        .limit(500)
    ).scalars()
    return [
        DeadPublic(
            id=r.id,
            endpoint_id=r.endpoint_id,
            type=r.event_type,
            attempts=r.attempts,
            last_error=r.last_error,
        )
        for r in rows
    ]


@router.post("/messages/{message_id}/replay", response_model=DeadPublic, responses=_ERRORS)
def replay_message(
    message_id: MessageIdPath, session: SessionDep, wallet: CurrentWallet
) -> DeadPublic:
    """Send a dead-lettered message again (with a fresh retry budget)."""
    from backend.notify.dispatcher import replay

    row = session.get(OutboxMessage, message_id)
    endpoint = session.get(Endpoint, row.endpoint_id) if row is not None else None
    if row is None or endpoint is None or endpoint.owner != wallet.address or row.state != DEAD:
        raise NotFound(f"no dead message {message_id} of {wallet.address}")
    replay(session, message_id, time.time())
    session.refresh(row)
    return DeadPublic(
        id=row.id,
        endpoint_id=row.endpoint_id,
        type=row.event_type,
        attempts=row.attempts,
        last_error=row.last_error,
    )


@router.put(
    "/listings/{listing_id}/threshold",
    response_model=ThresholdPublic,
    responses={**_ERRORS, 403: {"model": ErrorPublic, "description": "Not its supplier."}},
)
def set_threshold(
    listing_id: ListingIdPath,
    body: Annotated[ThresholdUpdate, Body()],
    session: SessionDep,
    wallet: CurrentWallet,
) -> ThresholdPublic:
    """Set the stock at or below which the listing's supplier is alerted (default 20)."""
    from indexer import models as mirror

    listing = session.get(mirror.Listing, listing_id)
    if listing is None:
        raise NotFound(f"no listing {listing_id} in the mirror")
    if listing.supplier != wallet.address:
        raise Forbidden(f"listing {listing_id} is {listing.supplier}'s, not {wallet.address}'s")
    flag = session.get(StockFlag, listing_id)
    if flag is None:
        flag = StockFlag(listing_id=listing_id, low=False, threshold=DEFAULT_STOCK_THRESHOLD)
        session.add(flag)
    flag.threshold = body.threshold
    flag.low = False  # judged afresh against the new threshold
    session.commit()
    return ThresholdPublic(listing_id=listing_id, threshold=flag.threshold)
