"""The vault's service API: upload codes, commit their batch on-chain, recover a crash.

Public API (stable):

- `upload_codes(session, escrow, supplier, listing_id, csv_bytes, settings, progress=None)
  -> UploadResult`, raising `UploadRejected` (with ``problems``: (line, reason) pairs) and the
  other `VaultError` subclasses.
- `recover_pending(session, escrow, settings, supplier=None) -> list[UploadResult]`
- `list_uploads(session, *, supplier=None, listing_id=None) -> list[UploadResult]`
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session

    from backend.config import Settings
    from contracts.client import EscrowClient

#: Called as progress(done, total) while an upload is processed.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class UploadResult:
    """The outcome of an upload.

    Attributes:
        upload_id: The vault's id for it.
        listing_id: The listing.
        supplier: The supplier's address.
        first_index: The first code index of the batch.
        count: Number of codes.
        root: The batch's Merkle root.
        state: ``committed``, ``pending`` (recover later), ``abandoned`` or ``misplaced``.
        batch_index: The on-chain batch index once committed.
        tx_hash: The commitBatch transaction.
        block_number: Its block once mined.
    """

    upload_id: int
    listing_id: int
    supplier: str
    first_index: int
    count: int
    root: bytes
    state: str
    batch_index: int | None
    tx_hash: str | None
    block_number: int | None


def upload_codes(
    session: Session,
    escrow: EscrowClient,
    supplier: LocalAccount,
    listing_id: int,
    csv_bytes: bytes,
    settings: Settings,
    progress: Progress | None = None,
) -> UploadResult:
    """Validate a CSV, store its codes encrypted, and commit their batch root on-chain.

    The session is committed by this function (twice: codes with the signed transaction, then
    the confirmation).

    Raises:
        UploadTooLarge: over the size cap; nothing stored.
        UploadRejected: validation failed (``problems`` lists the lines); nothing stored.
        UnknownListing: the listing does not exist; nothing stored.
        NotListingOwner: `supplier` does not own it; nothing stored.
        UploadInProgress: another upload to this listing is still pending on-chain.
        CommitFailed: the chain refused the commitment; nothing stored.
        ChainUnavailable: the node did not answer; nothing stored, or (if it went away after
            the write) the upload stays pending for `recover_pending`.
    """
    raise NotImplementedError


def recover_pending(
    session: Session,
    escrow: EscrowClient,
    settings: Settings,
    supplier: LocalAccount | None = None,
) -> list[UploadResult]:
    """Finish every pending upload after a crash, matching it against the chain.

    Raises:
        ChainUnavailable: the node did not answer.
    """
    raise NotImplementedError
