"""Supplier dashboard data and CSV uploads. Suppliers sign in with SIWE."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import func, select

from backend import models as vault_models
from backend.api import queries
from backend.api.convert import state_name
from backend.api.deps import (
    SQL_BIGINT_MAX,
    AppContext,
    ContextDep,
    CurrentWallet,
    ListingIdPath,
    Offset,
    OrderStates,
    PageLimit,
    SessionDep,
    UploadIdPath,
    int_range,
    read_body_capped,
)
from backend.api.errors import ApiError, describe
from backend.api.routes.buyer import orders_public
from backend.schemas import (
    BondPublic,
    CommitCallPublic,
    ErrorPublic,
    ListingStockPublic,
    OrderPublic,
    SettlementPublic,
    SettlementSummaryPublic,
    SubmittedUpload,
    SupplierDashboardPublic,
    TokenAmount,
    UploadErrorPublic,
    UploadPublic,
)
from backend.vault.service import (
    Progress,
    UploadResult,
    list_uploads,
    submit_signed,
    upload_codes,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

router = APIRouter(prefix="/supplier", tags=["supplier"])

#: Content types accepted for a CSV body.
CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/octet-stream")
NDJSON = "application/x-ndjson"

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "Not signed in."},
    503: {"model": ErrorPublic, "description": "The database or the node is down; retry later."},
}


@router.get("/dashboard", response_model=SupplierDashboardPublic, responses=_AUTH_ERRORS)
def dashboard(
    ctx: ContextDep, session: SessionDep, wallet: CurrentWallet
) -> SupplierDashboardPublic:
    """Orders by state, recent settlements, bond (free and reserved), payments held in escrow,
    withdrawable balance, and stock left per listing with low-stock flags. From the mirror.

    `settlement` gives per token what Completed orders paid the supplier, what Delivered orders
    past their dispute window owe it now (anyone may settle them; `GET /supplier/orders/due`
    lists them), what those still in their window will owe, and when the next one becomes due,
    all at the mirror's chain time (`chain_time`)."""
    me = wallet.address
    now = queries.chain_time(session, chain_id=ctx.auth.chain_id)
    listings = queries.list_listings(session, supplier=me, limit=10_000)
    vault = dict(
        session.execute(
            select(vault_models.Code.listing_id, func.count())
            .where(vault_models.Code.supplier == me, vault_models.Code.state == "stock")
            .group_by(vault_models.Code.listing_id)
        ).all()
    )
    threshold = ctx.low_stock_threshold
    stock_rows = []
    for row in listings:
        left = max(0, int(row.committed) - int(row.sold))
        stock_rows.append(
            ListingStockPublic(
                listing_id=int(row.listing_id),
                sku=row.sku,
                unit_price=int(row.unit_price),
                active=bool(row.active),
                committed=int(row.committed),
                sold=int(row.sold),
                stock=left,
                low_stock=bool(row.active) and left <= threshold,
                vault_codes=int(vault.get(int(row.listing_id), 0)),
                on_chain_from=int(row.on_chain_from),
                on_chain_release=int(row.on_chain_from) != 0,
            )
        )
    return SupplierDashboardPublic(
        supplier=me,
        bonds=[
            BondPublic(token=b.token, free=int(b.free), reserved=int(b.reserved))
            for b in queries.bonds(session, supplier=me)
        ],
        in_escrow=[
            TokenAmount(token=t, amount=a)
            for t, a in sorted(queries.in_escrow(session, supplier=me).items())
        ],
        balances=[
            TokenAmount(token=b.token, amount=int(b.amount))
            for b in queries.balances(session, account=me)
        ],
        earned=[
            TokenAmount(token=t, amount=a)
            for t, a in sorted(queries.earned(session, supplier=me).items())
        ],
        orders_by_state={
            state_name(s): n
            for s, n in sorted(queries.orders_by_state(session, supplier=me).items())
        },
        listings=stock_rows,
        recent_settlements=[
            SettlementPublic(
                order_id=int(p.order_id),
                token=p.token,
                amount=int(p.amount),
                kind=p.kind,
                block_number=int(p.block_number),
                tx_hash=p.tx_hash,
                timestamp=int(p.timestamp),
            )
            for p in queries.settlements(session, supplier=me)
        ],
        low_stock_threshold=threshold,
        settlement=[
            SettlementSummaryPublic(token=token, **asdict(totals))
            for token, totals in sorted(
                queries.settlement_totals(session, supplier=me, now=now).items()
            )
        ],
        chain_time=now,
    )


@router.get("/orders", response_model=list[OrderPublic], responses=_AUTH_ERRORS)
def supplier_orders(
    ctx: ContextDep,
    session: SessionDep,
    wallet: CurrentWallet,
    state: OrderStates = None,
    limit: PageLimit = 100,
    offset: Offset = 0,
) -> list[OrderPublic]:
    """The signed-in supplier's orders, newest first."""
    rows = queries.list_orders(
        session, supplier=wallet.address, states=state, limit=limit, offset=offset
    )
    return orders_public(ctx, session, rows)


@router.get("/orders/due", response_model=list[OrderPublic], responses=_AUTH_ERRORS)
def due_orders(
    ctx: ContextDep, session: SessionDep, wallet: CurrentWallet, limit: PageLimit = 500
) -> list[OrderPublic]:
    """The signed-in supplier's Delivered orders whose dispute window has closed by the
    mirror's chain time, earliest deadline first: pass their Order structs to the escrow's
    ``settle(orderIds, orders)`` (in batches of about 50) to be paid now, from any wallet.

    An order confirmed, disputed or settled since the mirror last saw it no longer matches
    its stored hash: ``settle`` skips a finished one and refuses a changed one, so check
    ``orderHash`` first (the web dashboard does)."""
    now = queries.chain_time(session, chain_id=ctx.auth.chain_id)
    rows = queries.due_orders(session, supplier=wallet.address, now=now, limit=limit)
    return orders_public(ctx, session, rows)


def upload_public(ctx: AppContext, result: UploadResult) -> UploadPublic:
    """The answer to an accepted upload."""
    call = None
    if result.commit_data is not None:
        call = CommitCallPublic(
            chain_id=ctx.auth.chain_id,
            from_address=result.supplier,
            to=ctx.escrow.address,
            data="0x" + result.commit_data.hex(),
        )
    return UploadPublic(
        upload_id=result.upload_id,
        listing_id=result.listing_id,
        count=result.count,
        first_index=result.first_index,
        batch_index=result.batch_index,
        root="0x" + result.root.hex(),
        tx_hash=result.tx_hash,
        state=result.state,
        commit_call=call,
        error=result.error,
    )


def _run_upload(
    ctx: AppContext,
    supplier: LocalAccount | str,
    listing_id: int,
    body: bytes,
    progress: Progress | None = None,
) -> UploadResult:
    with ctx.session_factory() as session:
        return upload_codes(session, ctx.escrow, supplier, listing_id, body, ctx.settings, progress)


@router.post(
    "/listings/{listing_id}/codes",
    response_model=UploadPublic,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The CSV as the body: one code per row, optional expiry and note.",
            # Any bytes: a CSV body has no JSON type (so a client cannot send a "wrong" one).
            "content": {"text/csv": {"schema": {"description": "UTF-8 CSV text."}}},
        }
    },
    responses={
        **_AUTH_ERRORS,
        200: {
            "content": {NDJSON: {"schema": {"type": "string"}}},
            "description": f"With `Accept: {NDJSON}`: progress lines, then the result.",
        },
        403: {"model": ErrorPublic, "description": "Not the listing's supplier, or no key here."},
        404: {"model": ErrorPublic, "description": "No such listing on-chain."},
        409: {
            "model": ErrorPublic,
            "description": "Another upload is pending, or the chain refused the commitment.",
        },
        413: {"model": UploadErrorPublic, "description": "Over the size cap; nothing stored."},
        415: {"model": ErrorPublic, "description": "Not a CSV body."},
        422: {
            "description": "Offending lines (with `errors` and `total`), or a malformed request "
            "field such as a signed-request header; nothing stored.",
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/UploadErrorPublic"},
                            {"$ref": "#/components/schemas/ErrorPublic"},
                        ]
                    }
                }
            },
        },
    },
)
async def upload(
    listing_id: ListingIdPath,
    request: Request,
    ctx: ContextDep,
    wallet: CurrentWallet,
) -> Any:
    """Upload codes as CSV: validated, encrypted at rest, committed on-chain as one batch.

    Either everything is stored and committed, or nothing is. A rejected file is answered 422
    with every offending line (empty file, bad encoding, over-long code, duplicate in the file
    or against anything this supplier uploaded before); a file over the cap, 413. Send
    ``Accept: application/x-ndjson`` to get progress lines while it is processed.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in CSV_TYPES:
        raise ApiError(
            f"send the CSV itself as the request body with Content-Type: text/csv "
            f"(got {kind or 'no content type'!r})",
            status=415,
        )
    # A supplier that keeps its own key (the default) signs the commitBatch itself; a
    # development backend given the key (`--supplier-key-file`) commits for it.
    supplier: LocalAccount | str = ctx.suppliers.get(wallet.address) or wallet.address
    cap = int(ctx.settings.max_upload_bytes)
    body = await read_body_capped(request, cap)
    if NDJSON not in request.headers.get("accept", ""):
        result = await run_in_threadpool(_run_upload, ctx, supplier, listing_id, body)
        return upload_public(ctx, result)
    return await _streamed_upload(ctx, supplier, listing_id, body)


@router.post(
    "/uploads/{upload_id}/submitted",
    response_model=UploadPublic,
    responses={**_AUTH_ERRORS, 404: {"model": ErrorPublic, "description": "No such upload."}},
)
async def upload_submitted(
    upload_id: UploadIdPath,
    report: SubmittedUpload,
    ctx: ContextDep,
    wallet: CurrentWallet,
) -> UploadPublic:
    """Report the commitBatch transaction the supplier's wallet sent for an `awaiting` upload.

    Waits briefly for it to mine; the upload is `committed` (its codes on sale) once its batch
    is on-chain. A hash that holds no batch of this upload changes nothing, and the chain is
    checked either way, so a lost report is harmless: the delivery agent finishes uploads from
    the chain alone.
    """

    def work() -> UploadResult:
        with ctx.session_factory() as session:
            return submit_signed(
                session, ctx.escrow, wallet.address, upload_id, report.tx_hash, ctx.settings
            )

    return upload_public(ctx, await run_in_threadpool(work))


@router.get(
    "/uploads",
    response_model=list[UploadPublic],
    responses={**_AUTH_ERRORS},
)
async def my_uploads(
    ctx: ContextDep,
    wallet: CurrentWallet,
    listing_id: Annotated[
        int | None,
        Query(
            description="Only this listing's uploads.",
            json_schema_extra={"minimum": 1, "maximum": SQL_BIGINT_MAX},
        ),
        int_range(1, SQL_BIGINT_MAX),
    ] = None,
) -> list[UploadPublic]:
    """The supplier's uploads, newest first (an `awaiting` one carries its `commit_call`)."""

    def work() -> list[UploadResult]:
        with ctx.session_factory() as session:
            return list_uploads(session, supplier=wallet.address, listing_id=listing_id)[:100]

    return [upload_public(ctx, r) for r in await run_in_threadpool(work)]


async def _streamed_upload(
    ctx: AppContext, supplier: LocalAccount | str, listing_id: int, body: bytes
) -> JSONResponse | StreamingResponse:
    """Run the upload in a thread and stream its progress as NDJSON once validation passed.

    A failure before the first progress report is answered with its own status; one after it
    arrives as a last line ``{"error": {"status": ..., "detail": ...}}``.
    """
    events: queue.Queue[tuple[str, Any]] = queue.Queue()

    last = [-1]

    def progress(done: int, total: int) -> None:
        # At most about 100 lines per upload, whatever the callback's rate.
        step = max(1, total // 100)
        if done >= total or done - last[0] >= step:
            last[0] = done
            events.put(("progress", (done, total)))

    def work() -> None:
        try:
            events.put(("result", _run_upload(ctx, supplier, listing_id, body, progress)))
        except Exception as exc:  # handed to the request, which maps or re-raises it
            events.put(("error", exc))

    threading.Thread(target=work, name="kameng-upload", daemon=True).start()
    kind, value = await run_in_threadpool(events.get)
    if kind == "error":
        raise value
    if kind == "result":
        return JSONResponse(upload_public(ctx, value).model_dump(mode="json"))

    async def lines() -> AsyncIterator[bytes]:
        item: tuple[str, Any] = (kind, value)
        while True:
            k, v = item
            if k == "progress":
                yield (json.dumps({"progress": {"done": v[0], "total": v[1]}}) + "\n").encode()
            elif k == "result":
                yield (
                    json.dumps({"result": upload_public(ctx, v).model_dump(mode="json")}) + "\n"
                ).encode()
                return
            else:
                described = describe(v)
                if described is None:
                    yield (
                        json.dumps({"error": {"status": 500, "detail": "internal error"}}) + "\n"
                    ).encode()
                    raise v
                status, payload, _ = described
                yield (json.dumps({"error": {"status": status, **payload}}) + "\n").encode()
                return
            item = await run_in_threadpool(events.get)

    return StreamingResponse(lines(), media_type=NDJSON)
