"""The backend's side of evidence: build an order's bundle from the chain, the stored release and
the parties' additions; accept additions after checking them against the chain.

This is the adapter between the evidence package and other owners' modules: the mirror
(`indexer.models`, only for block hints and who the parties are), the sealed releases
(`backend.models.Release` through `backend.release.release_from_row`) and the vault
(`backend.models.Code`, decrypted with `backend.vault.crypto.CodeCipher`, for a supplier that
asks to attach the codes it sent). The bundle itself only ever states chain facts and the
parties' inputs; the database only says where to look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nacl.public import PrivateKey
from sqlalchemy import select

from backend.evidence.bundle import Built, Hints, build_bundle
from backend.evidence.chainview import ChainView, hex32
from backend.evidence.derive import SupplierClaim
from backend.evidence.errors import AdditionRejected, BundleBuildError
from backend.evidence.store import AdditionsStore
from contracts.encoding import split_order_id

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from backend.release import Release

#: Release rows whose sealed bytes may be the delivered ones.
USABLE_RELEASE_STATES = ("prepared", "sent", "confirmed")


def hints_for(session: Session, order_id: int) -> Hints:
    """Block hints from the mirror (the order's payment block, the listing's creation block)."""
    from indexer import models as mirror

    row = session.get(mirror.Order, order_id)
    listing = session.get(mirror.Listing, split_order_id(order_id)[0])
    return Hints(
        paid_block=int(row.paid_block) if row is not None else 0,
        listing_block=int(listing.block_number) if listing is not None else 0,
    )


def parties(session: Session, view: ChainView, order_id: int) -> tuple[str, str]:
    """The order's (buyer, supplier): from the mirror, else from its OrderPaid on-chain.

    Raises:
        BundleBuildError: the order is unknown.
    """
    from indexer import models as mirror

    row = session.get(mirror.Order, order_id)
    if row is not None:
        return row.buyer, row.supplier
    paid = view.find_logs(
        [view.topic("OrderPaid"), hex32(order_id.to_bytes(32, "big"))],
        0,
        view.head().number,
    )
    if not paid:
        raise BundleBuildError(f"unknown order {order_id}: no OrderPaid on {view.escrow}")
    from eth_utils import to_checksum_address

    return (
        to_checksum_address(paid[0].args["buyer"]),
        to_checksum_address(paid[0].args["supplier"]),
    )


def stored_release(session: Session, order_id: int) -> Release | None:
    """The sealed release the backend stored for an order, if it may be the delivered one."""
    from backend.models import Release as ReleaseRow
    from backend.models import VaultMeta
    from backend.release import release_from_row

    row = session.get(ReleaseRow, order_id)
    meta = session.get(VaultMeta, 1)
    if row is None or meta is None or row.state not in USABLE_RELEASE_STATES:
        return None
    return release_from_row(row, meta.chain_id, meta.escrow)


def bundle_for(
    session: Session,
    view: ChainView,
    order_id: int,
    *,
    store: AdditionsStore,
    with_additions: bool = True,
) -> Built:
    """Build an order's bundle from the chain, the stored release and the stored additions.

    Raises:
        BundleBuildError: the order is not on the escrow.
    """
    secret = store.buyer_secret(session, order_id) if with_additions else None
    codes = store.supplier_codes(session, order_id) if with_additions else None
    hints = hints_for(session, order_id)
    release = stored_release(session, order_id)
    if release is not None:
        delivered = view.find_logs(
            [view.topic("OrderDelivered"), hex32(order_id.to_bytes(32, "big"))],
            hints.paid_block,
            view.head().number,
        )
        if not delivered or bytes(delivered[-1].args["releaseDigest"]) != release.digest:
            release = None  # sealed but not (yet) the delivered release: nothing to bind
    return build_bundle(
        view,
        order_id,
        release=release,
        buyer_secret=secret,
        supplier_codes=codes,
        hints=hints,
    )


def add_buyer_secret(
    session: Session,
    view: ChainView,
    order_id: int,
    *,
    store: AdditionsStore,
    buyer: str,
    secret: bytes,
) -> None:
    """Store the buyer's per-order secret after checking it is the order's key.

    Raises:
        AdditionRejected: the wallet is not the buyer, or the secret does not match the order's
            ``buyerPubKey`` on-chain.
    """
    if len(secret) != 32:
        raise AdditionRejected("the order secret is a 32-byte X25519 private key")
    paid = view.find_logs(
        [view.topic("OrderPaid"), hex32(order_id.to_bytes(32, "big"))],
        hints_for(session, order_id).paid_block,
        view.head().number,
    )
    if not paid:
        raise AdditionRejected(f"unknown order {order_id}: no OrderPaid on {view.escrow}")
    args = paid[0].args
    from eth_utils import to_checksum_address

    if to_checksum_address(args["buyer"]) != buyer:
        raise AdditionRejected(f"only the buyer of order {order_id} may add its secret")
    if bytes(PrivateKey(secret).public_key) != bytes(args["buyerPubKey"]):
        raise AdditionRejected(
            f"this secret is not the key of order {order_id}: its public key differs from the "
            "buyerPubKey paid with; derive it again from the wallet (kameng evidence "
            "--with-buyer-secret does)"
        )
    store.put_buyer_secret(session, order_id=order_id, buyer=buyer, secret=secret)
    session.commit()


def codes_from_vault(
    session: Session, master_key: bytes, order_id: int, quantity: int
) -> list[SupplierClaim]:
    """The salts and codes the vault holds for an order's indexes (what an honest agent sent).

    Raises:
        AdditionRejected: the vault does not hold every code of the order.
    """
    from backend.models import Code
    from backend.vault.crypto import CodeCipher, EncryptedRecord

    listing_id, first = split_order_id(order_id)
    rows = session.scalars(
        select(Code)
        .where(
            Code.listing_id == listing_id,
            Code.code_index >= first,
            Code.code_index < first + quantity,
        )
        .order_by(Code.code_index)
    ).all()
    cipher = CodeCipher(master_key)
    out = []
    for row in rows:
        index = int(row.code_index)
        record = EncryptedRecord(row.ciphertext, row.nonce, row.wrapped_key, row.key_id)
        salt, code = cipher.decrypt(listing_id, index, record)
        out.append(SupplierClaim(index=index, salt=salt, code=code))
    return out


def add_supplier_codes(
    session: Session,
    view: ChainView,
    order_id: int,
    *,
    store: AdditionsStore,
    supplier: str,
    codes: list[SupplierClaim] | None,
    master_key: bytes | None = None,
) -> list[SupplierClaim]:
    """Store the codes the supplier says it sent (given, or read from the vault).

    Raises:
        AdditionRejected: the order is unknown, the wallet is not the order's supplier, or a
            code is outside the order.
    """
    try:
        _, owner = parties(session, view, order_id)
    except BundleBuildError as exc:  # unknown order: refused as `add_buyer_secret` refuses it
        raise AdditionRejected(str(exc)) from exc
    if owner != supplier:
        raise AdditionRejected(f"only the supplier of order {order_id} may add its codes")
    paid = view.find_logs(
        [view.topic("OrderPaid"), hex32(order_id.to_bytes(32, "big"))],
        hints_for(session, order_id).paid_block,
        view.head().number,
    )
    quantity = int(paid[0].args["quantity"]) if paid else 0
    _, first = split_order_id(order_id)
    wanted = range(first, first + quantity)
    if codes is None:
        if master_key is None:
            raise AdditionRejected("give the codes, or ask for the vault's")
        codes = codes_from_vault(session, master_key, order_id, quantity)
        if len(codes) != quantity:
            raise AdditionRejected(
                f"this backend's vault holds {len(codes)} of the order's {quantity} codes"
            )
    if not codes or any(c.index not in wanted for c in codes):
        raise AdditionRejected(
            f"codes must be at the order's indexes {first}..{first + quantity - 1}"
        )
    if any(len(c.salt) != 32 or not 0 < len(c.code) <= 256 for c in codes):
        raise AdditionRejected("each salt is 32 bytes and each code 1 to 256 bytes")
    store.put_supplier_codes(session, order_id=order_id, supplier=supplier, codes=codes)
    session.commit()
    return codes
