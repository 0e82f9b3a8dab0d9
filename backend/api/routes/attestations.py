"""Attestation documents (`backend.attestations`): publish the rights holder's document behind a
licence, and read it back, with no sign-in: a document authenticates itself by its keccak256,
which a licence on the escrow cites."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from backend import attestations
from backend.api.deps import ContextDep, SessionDep, read_body_capped
from backend.api.errors import ApiError
from backend.errors import UploadTooLarge
from backend.schemas import AttestationPublic, ErrorPublic

router = APIRouter(prefix="/attestations", tags=["licences"])

#: A file name: any characters but control ones, bidirectional overrides and isolates, slashes
#: and U+FFFD (what a byte that is not UTF-8 decodes to).
NAME_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f\\u202a-\\u202e\\u2066-\\u2069/\\\\\\ufffd]+$"
HashPath = Annotated[
    str,
    Path(
        description="The attestation hash a licence cites (keccak256 of the document).",
        pattern="^0x[0-9a-fA-F]{64}$",
    ),
]


def _hash(value: str) -> str:
    try:
        return attestations.normal_hash(value)
    except ValueError as exc:
        raise ApiError(str(exc), status=422, code="bad_attestation_hash") from exc


def _public(info: attestations.AttestationInfo) -> AttestationPublic:
    return AttestationPublic.model_validate(info)


@router.put(
    "/{digest}",
    response_model=AttestationPublic,
    status_code=201,
    responses={
        200: {"model": AttestationPublic, "description": "Already kept; nothing changed."},
        409: {"model": ErrorPublic, "description": "No licence cites this hash."},
        413: {"model": ErrorPublic, "description": "Over the size cap."},
        422: {"model": ErrorPublic, "description": "The bytes do not hash to the path's hash."},
        429: {"model": ErrorPublic, "description": "Too many from this address."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The document itself; its Content-Type is kept if it is one of "
            "application/pdf, image/png, image/jpeg, image/webp, text/plain.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def publish(
    digest: HashPath,
    request: Request,
    response: Response,
    ctx: ContextDep,
    name: Annotated[
        str | None,
        Query(
            max_length=attestations.MAX_NAME,
            description="The file's name: no control or direction characters, no slashes.",
            pattern=NAME_PATTERN,
        ),
    ] = None,
    supplier: Annotated[
        str | None,
        Query(
            description="A supplier whose licence cites the hash; with `sku`, the chain is "
            "asked when the mirror has not seen the grant yet.",
            pattern="^0x[0-9a-fA-F]{40}$",
        ),
    ] = None,
    sku: Annotated[
        str | None, Query(description="That licence's product.", pattern="^0x[0-9a-fA-F]{64}$")
    ] = None,
) -> AttestationPublic:
    """Keep the document of an attestation a licence cites, so that buyers can read and check it.

    Needs no sign-in: the body must hash (keccak256) to the path's hash, and a licence on the
    escrow must cite that hash, so nothing else can be published. A document already kept is
    answered 200 and left as it is. Rate limited per client address (429 with ``Retry-After``).
    """
    ctx.limiter.check_client("attestation-address", request, "attestations from here")
    wanted = _hash(digest)
    cap = int(ctx.settings.max_attestation_bytes)
    try:
        body = await read_body_capped(request, cap)
    except UploadTooLarge as exc:
        raise ApiError(
            f"the document is {exc.size} bytes, over the {cap}-byte limit for attestation "
            "documents (max_attestation_bytes); publish a smaller copy, such as a PDF",
            status=413,
            code="attestation_too_large",
        ) from exc
    if supplier is not None and not is_address(supplier):
        raise ApiError(f"supplier {supplier!r} is not an address", status=422)

    def on_chain() -> tuple[str, str] | None:
        if supplier is None or sku is None or int(sku, 16) == 0:
            return None
        who = to_checksum_address(supplier)
        cited = "0x" + bytes(ctx.escrow.call("authorization", who, bytes.fromhex(sku[2:]))).hex()
        return (who, sku.lower()) if cited == wanted else None

    def work() -> tuple[attestations.AttestationInfo, bool]:
        with ctx.session_factory() as session:
            return attestations.publish(
                session,
                wanted,
                body,
                name=name,
                media_type=request.headers.get("content-type"),
                on_chain=on_chain,
            )

    kept, created = await run_in_threadpool(work)
    response.status_code = 201 if created else 200
    return _public(kept)


@router.get(
    "/{digest}/info",
    response_model=AttestationPublic,
    responses={404: {"model": ErrorPublic, "description": "No document kept for this hash."}},
)
def describe(digest: HashPath, session: SessionDep) -> AttestationPublic:
    """What is kept for an attestation hash: its name, type and size."""
    return _public(attestations.info(session, _hash(digest)))


@router.get(
    "/{digest}",
    response_class=Response,
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
            "description": "The document.",
        },
        404: {"model": ErrorPublic, "description": "No document kept for this hash."},
    },
)
def document(digest: HashPath, session: SessionDep) -> Any:
    """The document itself, as a download. Its keccak256 is the path's hash: check it."""
    kept, content = attestations.content(session, _hash(digest))
    return Response(
        content,
        media_type=kept.media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(kept.name)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            # The hash fixes the bytes: cache it for ever.
            "Cache-Control": "public, max-age=31536000, immutable",
        },
    )
