"""Evidence bundles: ``GET /evidence/orders/{id}`` for the arbiter and both parties, the parties'
additions, and a verification of any bundle against this server's chain.

The bundle is returned as its exact canonical text (``document``): write it to a file as is;
its ``selfHash`` covers every byte. The server's checklist (``POST /evidence/verify``) is a
convenience; anyone can check a bundle without this server with ``kameng verify``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from pydantic import ConfigDict, Field

from backend.api.deps import AppContext, ContextDep, CurrentWallet, OrderIdPath, SessionDep
from backend.api.errors import ApiError, Forbidden, NotFound
from backend.evidence.chainview import ChainView, FactMissing, LogIndex
from backend.evidence.derive import SupplierClaim
from backend.evidence.errors import (
    AdditionRejected,
    BundleBuildError,
    FreshSignatureRequired,
    MirrorBehind,
    NotAParty,
    NotDisputed,
    UnknownOrder,
)
from backend.evidence.service import (
    add_buyer_secret,
    add_supplier_codes,
    bundle_for,
    mirror_view,
    parties,
    was_disputed,
)
from backend.evidence.store import (
    AdditionsStore,
    added_parties,
    disclosures,
    record_disclosure,
    vault_disclosed,
)
from backend.evidence.verify import verify_bundle
from backend.limits import check_json_depth
from backend.schemas import ApiModel, ErrorPublic

router = APIRouter(prefix="/evidence", tags=["evidence"])

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorPublic, "description": "Not signed in."},
    403: {"model": ErrorPublic, "description": "Not a party to the order, nor an arbiter."},
    404: {"model": ErrorPublic, "description": "No such order in the escrow's mirror."},
    429: {"model": ErrorPublic, "description": "Over the rate limit; see `Retry-After`."},
    503: {
        "model": ErrorPublic,
        "description": "The database or the node is down, the mirror is behind the chain, or "
        "the node lacks a receipt, block or state the order's logs cite (`Retry-After`).",
    },
}


class BundlePublic(ApiModel):
    """An order's evidence bundle."""

    order_id: str = Field(description="The order id (decimal).")
    self_hash: str = Field(description="ERC-1497 selfHash: keccak-256 multihash, base58btc.")
    bundle_hash: str = Field(
        description="keccak256 of the bundle without selfHash, 0x hex: what a ruling cites."
    )
    document: str = Field(description="The bundle's canonical JSON text; save it byte for byte.")
    with_buyer_secret: bool = Field(description="Whether the buyer's secret is included.")
    with_supplier_codes: bool = Field(description="Whether the supplier's codes are included.")
    additions_withheld: list[str] = Field(
        default_factory=list,
        description="Parties whose additions exist but are not in this bundle: they carry "
        "plaintext, so only arbiters see them, and only for an order that was disputed.",
    )


class DisclosurePublic(ApiModel):
    """One disclosure of an order's plaintext."""

    kind: str = Field(
        description="`buyer-secret`, `supplier-codes`, `vault-codes` (the supplier had this "
        "backend's vault release the order's codes) or `arbiter-read` (an arbiter received "
        "a bundle carrying them)."
    )
    actor: str = Field(description="The wallet that disclosed or read.")
    codes: int = Field(description="How many codes it concerned (0 for the buyer's secret).")
    at: str = Field(description="When, RFC 3339 UTC.")


class BuyerSecretCreate(ApiModel):
    """The buyer's per-order X25519 secret: it opens this order's release and nothing else."""

    order_secret: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")


class SupplierCodeCreate(ApiModel):
    """A code the supplier says it sent."""

    index: int = Field(ge=0, lt=2**32, strict=True)
    salt: str = Field(pattern=r"^0x[0-9a-fA-F]{64}$")
    code: str = Field(
        description="The code's bytes, base64 (standard alphabet, padded).",
        max_length=400,
        pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
    )


class SupplierCodesCreate(ApiModel):
    """The codes the supplier says it sent: listed, or read from this backend's vault."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["codes"], "properties": {"codes": {"type": "array", "minItems": 1}}},
                {"required": ["from_vault"], "properties": {"from_vault": {"const": True}}},
            ]
        }
    )

    codes: list[SupplierCodeCreate] | None = Field(default=None, max_length=10_000)
    from_vault: bool = Field(
        default=False, strict=True, description="Attach the vault's codes instead."
    )


class AdditionPublic(ApiModel):
    """An accepted addition."""

    order_id: str
    party: str = Field(description="`buyer` or `supplier`.")
    codes: int = Field(description="Codes attached (0 for the buyer's secret).")


class ClaimPublic(ApiModel):
    """One line of the verifier's checklist."""

    name: str
    status: str = Field(description="`pass`, `fail` or `skip`.")
    detail: str


class FindingPublic(ApiModel):
    """A fact the verified bundle establishes."""

    kind: str
    detail: str
    against: str | None = None


class ChecklistPublic(ApiModel):
    """The verifier's checklist for a bundle, run against this server's chain."""

    ok: bool
    order_id: str | None
    self_hash: str | None
    claims: list[ClaimPublic]
    findings: list[FindingPublic]


class BundleVerify(ApiModel):
    """A bundle to verify."""

    document: str = Field(max_length=32 * 1024 * 1024)


def _store(ctx: ContextDep) -> AdditionsStore:
    return AdditionsStore(ctx.settings.master_key_bytes)


def _limit(ctx: AppContext, request: Request, wallet: str | None = None) -> None:
    """Take one token per wallet, when signed in, and one per client address (429 if out)."""
    if wallet is not None:
        ctx.limiter.check("evidence-wallet", wallet, f"evidence requests by {wallet}")
    ctx.limiter.check_client("evidence-address", request, "evidence requests from here")


def _view(ctx: AppContext, session: SessionDep) -> ChainView:
    """The chain, read where the mirror says an order's logs are (503 if it is behind)."""
    try:
        return mirror_view(session, ctx.chain, ctx.escrow.address)
    except MirrorBehind as exc:
        raise ApiError(str(exc), status=503, headers={"Retry-After": str(exc.retry_after)}) from exc


def _refused(exc: AdditionRejected) -> ApiError:
    if isinstance(exc, UnknownOrder):
        return NotFound(str(exc))
    if isinstance(exc, (NotAParty, FreshSignatureRequired)):
        return Forbidden(str(exc))
    if isinstance(exc, NotDisputed):
        return ApiError(str(exc), status=409)
    return ApiError(str(exc), status=400)


@router.get(
    "/orders/{order_id}",
    response_model=BundlePublic,
    responses=_ERRORS,
)
def get_bundle(
    order_id: OrderIdPath,
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    wallet: CurrentWallet,
    with_additions: Annotated[
        bool, Query(description="Include the parties' additions (the buyer's secret, codes).")
    ] = True,
) -> BundlePublic:
    """The order's evidence bundle, built now from the chain, the stored sealed release and the
    parties' additions. For the order's buyer and supplier, and for arbiters.

    The additions carry plaintext (the buyer's secret opens the release; the supplier's codes
    are codes), so an arbiter gets them only for an order that is or was disputed, and each
    such answer is recorded as a disclosure (``GET .../disclosures``); each party gets its own
    addition back, except codes the vault released, which only arbiters see. What is left out
    is named in ``additions_withheld``. Rate limited per
    wallet and per client address (429 with ``Retry-After``)."""
    _limit(ctx, request, wallet.address)
    try:
        buyer, supplier = parties(session, order_id)
    except UnknownOrder as exc:
        raise NotFound(str(exc)) from exc
    arbiter = ctx.is_arbiter(wallet.address)
    if wallet.address not in (buyer, supplier) and not arbiter:
        raise Forbidden(
            f"order {order_id}'s evidence is for its buyer, its supplier and arbiters; sign in "
            "with one of those wallets"
        )
    added = added_parties(session, order_id)
    shown: tuple[str, ...] = ()
    if with_additions and added:
        if arbiter and was_disputed(session, order_id):
            shown = tuple(added)
        elif wallet.address == buyer:
            shown = tuple(p for p in added if p == "buyer")
        elif wallet.address == supplier and not vault_disclosed(session, order_id):
            shown = tuple(p for p in added if p == "supplier")
    try:
        built = bundle_for(
            session,
            _view(ctx, session),
            order_id,
            store=_store(ctx),
            with_additions=bool(shown),
            parties_shown=shown,
            cache=ctx.bundles,
        )
    except BundleBuildError as exc:
        raise NotFound(str(exc)) from exc
    except FactMissing as exc:
        # The node's own logs cite it, so the node is behind or reorganising, or it is not an
        # archive node: a condition of the node, not of the order or the request.
        raise ApiError(
            f"the node cannot give every fact order {order_id}'s bundle cites ({exc}); "
            "retry shortly, or point the backend at an archive node",
            status=503,
            headers={"Retry-After": "5"},
        ) from exc
    if shown and wallet.address not in (buyer, supplier):
        codes = built.bundle.additions.supplier
        record_disclosure(
            session,
            order_id=order_id,
            kind="arbiter-read",
            actor=wallet.address,
            codes=len(codes.codes) if codes is not None else 0,
        )
        session.commit()
    return BundlePublic(
        order_id=str(order_id),
        self_hash=built.self_hash,
        bundle_hash="0x" + built.bundle_hash.hex(),
        document=built.data.decode("utf-8"),
        with_buyer_secret=built.bundle.additions.buyer is not None,
        with_supplier_codes=built.bundle.additions.supplier is not None,
        additions_withheld=[p for p in added if p not in shown],
    )


@router.get(
    "/orders/{order_id}/disclosures",
    response_model=list[DisclosurePublic],
    responses=_ERRORS,
)
def get_disclosures(
    order_id: OrderIdPath,
    request: Request,
    ctx: ContextDep,
    session: SessionDep,
    wallet: CurrentWallet,
) -> list[DisclosurePublic]:
    """Every disclosure of the order's plaintext, oldest first: who attached a secret or codes,
    whether the vault released codes, and each arbiter who read them. For the order's buyer
    and supplier, and for arbiters."""
    _limit(ctx, request, wallet.address)
    try:
        buyer, supplier = parties(session, order_id)
    except UnknownOrder as exc:
        raise NotFound(str(exc)) from exc
    if wallet.address not in (buyer, supplier) and not ctx.is_arbiter(wallet.address):
        raise Forbidden(
            f"order {order_id}'s disclosures are for its buyer, its supplier and arbiters"
        )
    return [
        DisclosurePublic(
            kind=d.kind,
            actor=d.actor,
            codes=d.codes,
            at=d.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        for d in disclosures(session, order_id)
    ]


@router.post(
    "/orders/{order_id}/buyer-secret",
    response_model=AdditionPublic,
    responses={**_ERRORS, 400: {"model": ErrorPublic, "description": "Not this order's key."}},
)
def post_buyer_secret(
    order_id: OrderIdPath,
    request: Request,
    body: Annotated[BuyerSecretCreate, Body()],
    ctx: ContextDep,
    session: SessionDep,
    wallet: CurrentWallet,
) -> AdditionPublic:
    """Add the buyer's per-order secret to the order's evidence (the buyer only). It must be the
    key of the ``buyerPubKey`` the order was paid with; it lets the arbiter open this order's
    release and check each code against its commitment, and reveals no other order."""
    _limit(ctx, request, wallet.address)
    try:
        add_buyer_secret(
            session,
            _view(ctx, session),
            order_id,
            store=_store(ctx),
            buyer=wallet.address,
            secret=bytes.fromhex(body.order_secret[2:]),
        )
    except AdditionRejected as exc:
        raise _refused(exc) from exc
    return AdditionPublic(order_id=str(order_id), party="buyer", codes=0)


@router.post(
    "/orders/{order_id}/supplier-codes",
    response_model=AdditionPublic,
    responses={
        **_ERRORS,
        400: {"model": ErrorPublic, "description": "Codes outside the order."},
        403: {
            "model": ErrorPublic,
            "description": "Not the order's supplier, or `from_vault` without a signed request.",
        },
        409: {"model": ErrorPublic, "description": "`from_vault` for an order not disputed."},
    },
)
def post_supplier_codes(
    order_id: OrderIdPath,
    request: Request,
    body: Annotated[SupplierCodesCreate, Body()],
    ctx: ContextDep,
    session: SessionDep,
    wallet: CurrentWallet,
) -> AdditionPublic:
    """Add the salts and codes the supplier says it sent (the supplier only), listed or read
    from this backend's vault. The bundle shows the arbiters whether each matches its
    commitment and, with the buyer's secret, the release.

    ``from_vault`` is refused (409) unless the order is disputed, and (403) unless this request
    is signed by the supplier's wallet itself (``X-Kameng-Signature``; a session token is not
    enough). Every addition is recorded as a disclosure."""
    _limit(ctx, request, wallet.address)
    claims = None
    if not body.from_vault:
        if not body.codes:
            raise ApiError("list the codes, or set from_vault", status=400)
        try:
            claims = [
                SupplierClaim(
                    index=c.index,
                    salt=bytes.fromhex(c.salt[2:]),
                    code=base64.b64decode(c.code, validate=True),
                )
                for c in body.codes
            ]
        except (binascii.Error, ValueError) as exc:
            raise ApiError("a code is not base64", status=400) from exc
    try:
        stored = add_supplier_codes(
            session,
            _view(ctx, session),
            order_id,
            store=_store(ctx),
            supplier=wallet.address,
            codes=claims,
            master_key=ctx.settings.master_key_bytes,
            freshly_signed=wallet.signed_request,
        )
    except AdditionRejected as exc:
        raise _refused(exc) from exc
    return AdditionPublic(order_id=str(order_id), party="supplier", codes=len(stored))


@router.post(
    "/verify",
    response_model=ChecklistPublic,
    responses={
        422: {"model": ErrorPublic, "description": "The document nests deeper than 64 levels."},
        429: {"model": ErrorPublic, "description": "Over the rate limit; see `Retry-After`."},
    },
)
def post_verify(
    body: Annotated[BundleVerify, Body()], request: Request, ctx: ContextDep, session: SessionDep
) -> ChecklistPublic:
    """Check a bundle against this server's chain: one claim per line, pass, fail or skip.
    Needs no sign-in; the same check runs offline with ``kameng verify``. A document nested
    deeper than 64 levels of arrays and objects is refused (422) unparsed. Rate limited per
    client address (429 with ``Retry-After``)."""
    ctx.limiter.check_client("verify-address", request, "verifications from here")
    check_json_depth(body.document, "the bundle (`document`)")

    def index_for(escrow: str) -> LogIndex | None:
        # This server's own escrow: read where its mirror says (503 if far behind); another
        # escrow's bundle is checked by scanning, as `kameng verify` does.
        if escrow.lower() != ctx.escrow.address.lower():
            return None
        return _view(ctx, session).index

    checklist = verify_bundle(body.document.encode("utf-8"), ctx.chain, index_for)
    return ChecklistPublic(
        ok=checklist.ok,
        order_id=str(checklist.order_id) if checklist.order_id is not None else None,
        self_hash=checklist.self_hash,
        claims=[
            ClaimPublic(name=c.name, status=c.status, detail=c.detail) for c in checklist.claims
        ],
        findings=[
            FindingPublic(kind=f.kind, detail=f.detail, against=f.against)
            for f in checklist.findings
        ],
    )
