"""Sealed releases as the vault stores them: a row of ``vault_releases`` read back as the
public `backend.release.Release` (the format and the verification live there, free of the
database, so that clients can import them)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from backend.errors import ReleaseNotFound
from backend.models import Release as ReleaseRow
from backend.models import VaultMeta
from backend.release import LIVE_STATES, CodeProof, Release

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def release_from_row(row: ReleaseRow, chain_id: int, escrow: str) -> Release:
    """Build the public `Release` from its stored row."""
    manifest = json.loads(row.manifest)
    return Release(
        order_id=row.order_id,
        chain_id=chain_id,
        escrow=escrow,
        buyer=row.buyer,
        listing_id=row.listing_id,
        first_index=row.first_index,
        quantity=row.quantity,
        sealed=row.sealed,
        digest=bytes.fromhex(row.digest[2:]),
        element_root=manifest["element_root"],
        key_hash=manifest.get("key_hash"),
        codes=[CodeProof.model_validate(c) for c in manifest["codes"]],
        state=row.state,
        tx_hash=row.tx_hash,
    )


def get_release(session: Session, order_id: int) -> Release:
    """Load the sealed release of an order.

    It is returned from the moment it is stored (state ``prepared``): the bytes never change
    afterwards, because a re-post after a crash re-sends the same bytes. Until the state is
    ``confirmed`` the buyer's verification will not find the digest on-chain yet. The API hands
    it to the buyer only once its delivery is on-chain (`backend.api.queries.servable_releases`):
    codes in the buyer's hands before then could come with a refund (audit finding 10).

    Raises:
        ReleaseNotFound: none is stored (yet) for that order, or the order can no longer be
            delivered by this backend.
    """
    row = session.get(ReleaseRow, order_id)
    if row is None:
        raise ReleaseNotFound(
            f"no release for order {order_id} yet: the order is unknown, not paid, or still "
            "being sealed; retry in a second"
        )
    if row.state not in LIVE_STATES:
        raise ReleaseNotFound(
            f"order {order_id} will not be delivered by this backend ({row.state}: "
            f"{row.error or 'no detail'}); the buyer can reclaim the payment after the deadline"
        )
    meta = session.get(VaultMeta, 1)
    if meta is None:
        raise ReleaseNotFound("the vault is not bound to an escrow yet")
    return release_from_row(row, meta.chain_id, meta.escrow)


__all__ = ["get_release", "release_from_row"]
