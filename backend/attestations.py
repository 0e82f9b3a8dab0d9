"""Attestation documents: the rights holder's paper behind a supplier's licence (issue 14).

A licence on the escrow is ``authorize(supplier, sku, attestationHash)``: the chain keeps only
the keccak256 of the rights holder's document. This module keeps the document itself, so that
the public store can show it and a buyer can check it:

- Anyone may publish a document, with no sign-in, because it authenticates itself: it is
  accepted only when its bytes hash to the hash in the request, and a licence cites that hash
  (in the mirror, or, just after the grant, on-chain for the `supplier` and `sku` given).
  Nobody can plant a document under a hash the escrow does not cite, and a kept document is
  never replaced (the hash fixes its bytes).
- It is served as a download (``Content-Disposition: attachment``, ``nosniff``, a sandboxing
  CSP) in one of a few plain media types, so a hostile document cannot run in the store's origin.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from eth_utils import keccak
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.errors import BackendError
from backend.models import AttestationDocument
from indexer import models as m

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

#: Media types served as themselves; anything else is kept and served as octet-stream.
SERVED_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/webp", "text/plain"})
OCTET_STREAM = "application/octet-stream"
#: Longest file name kept (characters).
MAX_NAME = 200
ZERO_HASH = "0x" + "00" * 32
_HASH = re.compile(r"^0x[0-9a-f]{64}$")


class AttestationError(BackendError):
    """An attestation document was refused."""


class AttestationMismatch(AttestationError):
    """The document's bytes do not hash to the hash it was published under."""

    status_code: ClassVar[int] = 422

    def __init__(self, claimed: str, actual: str) -> None:
        super().__init__(
            f"the document's keccak256 is {actual}, not {claimed}: send the very file whose hash "
            "the licence records, unchanged"
        )


class AttestationNotCited(AttestationError):
    """No licence on the escrow cites the hash."""

    status_code: ClassVar[int] = 409

    def __init__(self, digest: str) -> None:
        if digest == ZERO_HASH:
            super().__init__(
                "the zero hash is how a licence is revoked; it cites no document: publish the "
                "document under the keccak256 the licence records"
            )
            return
        super().__init__(
            f"no licence on this escrow cites attestation {digest}: grant the licence with this "
            "document first (kameng admin licence grant, or the operator's console), then "
            "publish it; just after a grant, name its supplier and sku so the chain is asked"
        )


class AttestationNotKept(AttestationError):
    """No document is kept for the hash."""

    status_code: ClassVar[int] = 404

    def __init__(self, digest: str) -> None:
        super().__init__(
            f"no document is kept for attestation {digest}: the rights holder or the operator "
            "has not published it here"
        )


@dataclass(frozen=True)
class AttestationInfo:
    """What is known of a kept document, without its bytes."""

    hash: str
    name: str
    media_type: str
    size: int
    supplier: str
    sku: str
    kept_at: datetime


def normal_hash(value: str) -> str:
    """`value` as 0x-prefixed lowercase hex of 32 bytes.

    Raises:
        ValueError: it is not 32 bytes of hex.
    """
    digest = value.strip().lower()
    if not _HASH.match(digest):
        raise ValueError(f"{value!r} is not a 32-byte hash (0x and 64 hex digits)")
    return digest


def clean_name(name: str | None) -> str:
    """A file name safe to keep and to offer as a download: no folders, no control characters,
    at most `MAX_NAME` characters; ``attestation`` when nothing is left."""
    base = re.split(r"[\\/]", name or "")[-1]
    kept = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip(" .")
    return kept[:MAX_NAME] or "attestation"


def served_type(media_type: str | None) -> str:
    """The media type a document is kept and served as."""
    kind = (media_type or "").split(";")[0].strip().lower()
    return kind if kind in SERVED_TYPES else OCTET_STREAM


def _info(row: AttestationDocument) -> AttestationInfo:
    return AttestationInfo(
        hash=row.hash,
        name=row.name,
        media_type=row.media_type,
        size=int(row.size),
        supplier=row.supplier,
        sku=row.sku,
        # SQLite hands back naive datetimes; every time we keep is UTC.
        kept_at=row.kept_at if row.kept_at.tzinfo else row.kept_at.replace(tzinfo=UTC),
    )


def cited_in_mirror(session: Session, digest: str) -> tuple[str, str] | None:
    """A (supplier, sku) whose licence in the mirror cites `digest`, if any."""
    if digest == ZERO_HASH:  # a revoked licence's; it names no document
        return None
    row = session.execute(
        select(m.Authorization.supplier, m.Authorization.sku)
        .where(m.Authorization.attestation_hash == digest)
        .limit(1)
    ).first()
    return (str(row[0]), str(row[1])) if row else None


def publish(
    session: Session,
    digest: str,
    content: bytes,
    *,
    name: str | None,
    media_type: str | None,
    on_chain: Callable[[], tuple[str, str] | None],
) -> tuple[AttestationInfo, bool]:
    """Keep `content` as the document of attestation `digest`.

    Args:
        session: The backend's database.
        digest: The hash it is published under (`normal_hash` form).
        content: The document's bytes.
        name: Its file name (cleaned with `clean_name`).
        media_type: Its media type (kept if one of `SERVED_TYPES`).
        on_chain: Asked only when the mirror has no licence citing `digest`: the (supplier,
            sku) whose licence on-chain cites it now, or None.

    Returns:
        What is kept, and whether this call kept it (False: it was kept already).

    Raises:
        AttestationNotCited: no licence cites `digest` (checked first, so that a hash nobody
            cites is one answer whatever the bytes).
        AttestationMismatch: `content` does not hash to `digest`.
    """
    actual = "0x" + keccak(content).hex()
    kept = session.get(AttestationDocument, digest)
    cited = None
    if kept is None:
        cited = None if digest == ZERO_HASH else cited_in_mirror(session, digest) or on_chain()
        if cited is None:
            raise AttestationNotCited(digest)
    if actual != digest:
        raise AttestationMismatch(digest, actual)
    if kept is not None:
        return _info(kept), False
    assert cited is not None
    row = AttestationDocument(
        hash=digest,
        name=clean_name(name),
        media_type=served_type(media_type),
        size=len(content),
        content=content,
        supplier=cited[0],
        sku=cited[1],
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # the same document, published at the same moment by someone else
        session.rollback()
        same = session.get(AttestationDocument, digest)
        if same is None:
            raise
        return _info(same), False
    return _info(row), True


def info(session: Session, digest: str) -> AttestationInfo:
    """What is kept for `digest`.

    Raises:
        AttestationNotKept: nothing is.
    """
    row = session.get(AttestationDocument, digest)
    if row is None:
        raise AttestationNotKept(digest)
    return _info(row)


def content(session: Session, digest: str) -> tuple[AttestationInfo, bytes]:
    """The kept document of `digest` with its bytes.

    Raises:
        AttestationNotKept: nothing is.
    """
    row = session.get(AttestationDocument, digest)
    if row is None:
        raise AttestationNotKept(digest)
    return _info(row), bytes(row.content)
