"""The vault's service API: upload codes, commit their batch on-chain, recover a crash.

Public API (stable):

- `upload_codes(session, escrow, supplier, listing_id, csv_bytes, settings, progress=None)
  -> UploadResult`, raising `UploadRejected` (with ``problems``: (line, reason) pairs) and the
  other `VaultError` subclasses.
- `recover_pending(session, escrow, settings, supplier=None, *, listing_id=None)
  -> list[UploadResult]`
- `list_uploads(session, *, supplier=None, listing_id=None) -> list[UploadResult]`
- `stock_counts(session, listing_id) -> dict[str, int]`

Crash recovery between the database write and the chain transaction: the upload is stored as
``pending`` together with the SIGNED commitBatch bytes before anything is broadcast, so after a
crash `recover_pending` can tell every case apart by asking the chain (see its docstring). A
transaction with a given nonce mines at most once, so re-sending the stored bytes can never
commit a batch twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from backend.chaintx import (
    SignedTx,
    account_lock,
    broadcast,
    is_known,
    mined_nonce,
    pending_nonce,
    read_listing,
    receipt_or_none,
    rpc_guard,
    sign_call,
    wait_receipt,
)
from backend.db import bind_escrow
from backend.errors import (
    CommitFailed,
    NotListingOwner,
    UnknownListing,
    UploadInProgress,
    UploadRejected,
)
from backend.models import Code, Upload
from backend.vault.crypto import CodeCipher, fingerprint
from backend.vault.csv import ParsedCode, parse_codes
from backend.vault.master import require_master_key
from contracts.encoding import commitment, leaf
from contracts.errors import ContractRevertError
from contracts.merkle import MerkleTree

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session

    from backend.config import Settings
    from contracts.client import EscrowClient

log = logging.getLogger(__name__)
PROGRESS_EVERY = 250
INSERT_CHUNK = 1000

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


def _result(upload: Upload) -> UploadResult:
    return UploadResult(
        upload_id=upload.id,
        listing_id=upload.listing_id,
        supplier=upload.supplier,
        first_index=upload.first_index,
        count=upload.count,
        root=upload.root,
        state=upload.state,
        batch_index=upload.batch_index,
        tx_hash=upload.tx_hash,
        block_number=upload.block_number,
    )


def _chunks(items: Sequence[bytes], size: int) -> Iterator[Sequence[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _stock_duplicates(session: Session, supplier: str, fingerprints: Sequence[bytes]) -> set[bytes]:
    """Fingerprints among `fingerprints` that the supplier's stock already holds."""
    found: set[bytes] = set()
    for chunk in _chunks(fingerprints, 500):
        rows = session.execute(
            select(Code.fingerprint).where(
                Code.supplier == supplier, Code.fingerprint.in_(list(chunk))
            )
        )
        found.update(bytes(fp) for (fp,) in rows)
    return found


def _reject_stock_duplicates(
    session: Session, supplier: str, parsed: Sequence[ParsedCode], fps: Sequence[bytes]
) -> None:
    dupes = _stock_duplicates(session, supplier, fps)
    if dupes:
        raise UploadRejected(
            [
                (p.line, "duplicate code: already in your stock from an earlier upload")
                for p, fp in zip(parsed, fps, strict=True)
                if fp in dupes
            ]
        )


def _commit_failed(exc: ContractRevertError) -> CommitFailed:
    hints = {
        "EscrowNotAuthorized": "the listing's sku is not authorized for this supplier; ask the "
        "rights admin to authorize it",
        "EnforcedPause": "the escrow is paused; retry when it is unpaused",
        "EscrowWrongCaller": "only the listing's supplier may commit batches",
        "EscrowUnknownListing": "the listing does not exist",
    }
    hint = hints.get(exc.name, "see the contract error")
    return CommitFailed(f"the chain refused the batch ({exc.name}): {hint}; nothing was stored")


def _finish_from_receipt(
    session: Session, escrow: EscrowClient, upload: Upload, receipt: dict[str, Any]
) -> None:
    """Mark an upload committed (or misplaced/abandoned) from its mined transaction."""
    if receipt["status"] != 1:
        _abandon(
            session,
            upload,
            "the commitBatch transaction reverted when mined (most often another batch was "
            "committed to the listing first, so these leaves' indexes were taken: "
            "EscrowBatchOutOfOrder); nothing of it is on-chain, upload the codes again",
        )
        return
    for ev in escrow.result(receipt).all("BatchCommitted"):
        if int(ev.args["listingId"]) == upload.listing_id and bytes(ev.args["root"]) == upload.root:
            _mark_committed(
                session,
                upload,
                batch_index=int(ev.args["batchIndex"]),
                first_index=int(ev.args["firstIndex"]),
                block_number=int(receipt["blockNumber"]),
                tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            )
            return
    _abandon(session, upload, "the mined transaction holds no BatchCommitted for this root")


def _mark_committed(
    session: Session,
    upload: Upload,
    *,
    batch_index: int,
    first_index: int,
    block_number: int,
    tx_hash: str | None,
) -> None:
    if first_index != upload.first_index:
        # The leaves bind the intended indexes; at other indexes no code can ever verify.
        upload.state = "misplaced"
        upload.batch_index = batch_index
        upload.block_number = block_number
        upload.error = (
            f"the batch landed at first index {first_index}, not {upload.first_index}, because "
            "another batch was committed to the listing meanwhile; its codes cannot be delivered. "
            "Close the listing (updateListing active=false) and re-upload to a new one"
        )
        session.execute(delete(Code).where(Code.upload_id == upload.id))
        log.error("upload %s misplaced on listing %s", upload.id, upload.listing_id)
        return
    upload.state = "committed"
    upload.batch_index = batch_index
    upload.block_number = block_number
    if tx_hash:
        upload.tx_hash = tx_hash
    upload.raw_tx = None
    session.execute(
        update(Code)
        .where(Code.upload_id == upload.id, Code.state == "staged")
        .values(state="stock")
    )


def _abandon(session: Session, upload: Upload, reason: str) -> None:
    """Give up an upload whose batch can never be committed: its codes are deleted (so they can
    be uploaded again) and the reason is kept."""
    upload.state = "abandoned"
    upload.error = reason[:500]
    upload.raw_tx = None
    session.execute(delete(Code).where(Code.upload_id == upload.id))
    log.warning("upload %s abandoned: %s", upload.id, reason)


def _find_batch(escrow: EscrowClient, upload: Upload) -> tuple[int, int] | None:
    """Search the listing's on-chain batches, newest first, for the upload's root.

    Returns:
        (batch index, first index) or None.
    """
    listing = read_listing(escrow, upload.listing_id)
    for batch_index in range(listing.batch_count - 1, -1, -1):
        root, first, _count = escrow.batch(upload.listing_id, batch_index)
        if root == upload.root:
            return batch_index, first
        if first < upload.first_index:
            break
    return None


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

    The steps, and what a crash at each leaves behind (see `recover_pending`):

    1. Parse and validate; check duplicates against the supplier's stock; read the listing;
       simulate ``commitBatch``. Nothing is written; any failure raises with nothing stored.
    2. Check that the configured master key is the vault's (`backend.vault.master`), sign
       ``commitBatch`` (not sent yet), and in ONE database transaction store the upload as
       ``pending`` with the root, the intended first index, the signed bytes and the codes
       (each note sealed with its code, `backend.vault.notes`).
    3. Broadcast the stored bytes, wait for the receipt, and mark the upload ``committed``.

    The session is committed by this function (after steps 2 and 3).

    Raises:
        UploadTooLarge: over the size cap; nothing stored.
        UploadRejected: validation failed (``problems`` lists the lines); nothing stored.
        UnknownListing: the listing does not exist; nothing stored.
        NotListingOwner: `supplier` does not own it; nothing stored.
        UploadInProgress: another upload to this listing is still pending on-chain.
        MasterKeyMismatch: the configured master key is not the vault's; nothing stored.
        CommitFailed: the chain refused the commitment; nothing stored.
        ChainUnavailable: the node did not answer; nothing stored, or (if it went away after
            the write) the upload stays pending for `recover_pending`.
    """
    parsed = parse_codes(
        csv_bytes,
        max_bytes=settings.max_upload_bytes,
        max_code_bytes=settings.max_code_bytes,
        max_note_chars=settings.max_note_chars,
        max_codes=settings.max_codes_per_upload,
    )
    fp_key = settings.fingerprint_key_bytes
    fps = [fingerprint(fp_key, p.code) for p in parsed]
    _reject_stock_duplicates(session, supplier.address, parsed, fps)
    # One upload per supplier at a time in this process: the listing's first free index and
    # the supplier's nonce must not change between reading them and the batch mining.
    with account_lock(supplier.address):
        return _upload_locked(
            session, escrow, supplier, listing_id, settings, progress, parsed, fps
        )


def _upload_locked(
    session: Session,
    escrow: EscrowClient,
    supplier: LocalAccount,
    listing_id: int,
    settings: Settings,
    progress: Progress | None,
    parsed: list[ParsedCode],
    fps: list[bytes],
) -> UploadResult:
    total = len(parsed)
    w3 = escrow.w3
    with rpc_guard("reading the listing"):
        chain_id = escrow.chain.chain_id
        bind_escrow(session, chain_id, escrow.address)
        listing = read_listing(escrow, listing_id)
        if not listing.exists:
            raise UnknownListing(f"listing {listing_id} does not exist on {escrow.address}")
        if to_checksum_address(listing.supplier) != supplier.address:
            raise NotListingOwner(
                f"listing {listing_id} belongs to {listing.supplier}, not {supplier.address}"
            )
        if _pending_for_listing(session, listing_id):
            recover_pending(session, escrow, settings, supplier, listing_id=listing_id)
            if _pending_for_listing(session, listing_id):
                raise UploadInProgress(
                    f"an earlier upload to listing {listing_id} is still waiting for its "
                    "commitBatch transaction to mine; retry when it has"
                )
            listing = read_listing(escrow, listing_id)
        first_index = listing.committed

    cipher = CodeCipher(settings.master_key_bytes)
    # Write under the vault's own key only; the shared lock (PostgreSQL) keeps a rotation from
    # committing between this check and the commit below.
    require_master_key(session, settings.master_key_bytes, lock=True)
    salts = [os.urandom(32) for _ in parsed]
    commitments = [commitment(s, p.code) for s, p in zip(salts, parsed, strict=True)]
    tree = MerkleTree([leaf(first_index + j, c) for j, c in enumerate(commitments)])

    with rpc_guard("preparing the commitBatch transaction"):
        nonce = pending_nonce(w3, supplier.address)
        try:
            signed = sign_call(
                escrow,
                supplier,
                "commitBatch",
                [listing_id, tree.root, total, first_index],
                nonce=nonce,
                chain_id=chain_id,
            )
        except ContractRevertError as exc:
            session.rollback()
            raise _commit_failed(exc) from exc

    upload = Upload(
        supplier=supplier.address,
        listing_id=listing_id,
        first_index=first_index,
        count=total,
        root=tree.root,
        state="pending",
        tx_nonce=signed.nonce,
        tx_hash=signed.tx_hash,
        raw_tx=signed.raw,
    )
    session.add(upload)
    session.flush()
    rows: list[dict[str, Any]] = []
    for j, (p, salt, com, fp) in enumerate(zip(parsed, salts, commitments, fps, strict=True)):
        index = first_index + j
        record = cipher.encrypt(listing_id, index, salt, p.code, p.note)
        rows.append(
            {
                "upload_id": upload.id,
                "supplier": supplier.address,
                "listing_id": listing_id,
                "code_index": index,
                "commitment": com,
                "fingerprint": fp,
                "ciphertext": record.ciphertext,
                "nonce": record.nonce,
                "wrapped_key": record.wrapped_key,
                "key_id": record.key_id,
                "expires_at": p.expires_at,
                "note_sealed": record.sealed_note,
                "state": "staged",
            }
        )
        if progress is not None and (j + 1) % PROGRESS_EVERY == 0:
            progress(j + 1, total)
    try:
        for start in range(0, len(rows), INSERT_CHUNK):
            session.execute(insert(Code), rows[start : start + INSERT_CHUNK])
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        _reject_stock_duplicates(session, supplier.address, parsed, fps)
        raise UploadInProgress(
            f"another upload to listing {listing_id} took the same indexes at the same time; retry"
        ) from exc
    if progress is not None:
        progress(total, total)
    log.info(
        "upload %s: %d codes for listing %s stored, commitBatch %s signed",
        upload.id,
        total,
        listing_id,
        signed.tx_hash,
    )

    _send_and_finish(session, escrow, upload, signed, settings)
    escrow.tx.reset_nonce(supplier.address)
    return _result(upload)


def _pending_for_listing(session: Session, listing_id: int) -> bool:
    return (
        session.execute(
            select(Upload.id).where(Upload.listing_id == listing_id, Upload.state == "pending")
        ).first()
        is not None
    )


def _send_and_finish(
    session: Session, escrow: EscrowClient, upload: Upload, signed: SignedTx, settings: Settings
) -> None:
    """Broadcast a stored commitBatch, wait for it, record the outcome, commit."""
    outcome = broadcast(escrow.w3, signed)
    if outcome == "dead":
        # Its nonce went to another transaction: it will never mine. Did ours mine before?
        _reconcile_without_receipt(session, escrow, upload, None, settings)
        session.commit()
        return
    receipt = wait_receipt(escrow.w3, signed.tx_hash, settings.commit_wait_seconds)
    if receipt is None:
        log.warning("upload %s: commitBatch %s not mined yet", upload.id, signed.tx_hash)
        return
    _finish_from_receipt(session, escrow, upload, receipt)
    session.commit()


def _reconcile_without_receipt(
    session: Session,
    escrow: EscrowClient,
    upload: Upload,
    supplier: LocalAccount | None,
    settings: Settings,
) -> None:
    """An upload whose transaction has no receipt: find its batch on-chain, re-send the stored
    bytes, re-sign with a fresh nonce, or give up, in that order of preference."""
    found = _find_batch(escrow, upload)
    if found is not None:
        batch_index, first = found
        _mark_committed(
            session,
            upload,
            batch_index=batch_index,
            first_index=first,
            block_number=escrow.w3.eth.block_number,
            tx_hash=None,
        )
        return
    w3 = escrow.w3
    if upload.tx_hash and is_known(w3, upload.tx_hash):
        return  # in the node's pool: still pending
    if upload.raw_tx is not None and upload.tx_nonce is not None and upload.tx_hash:
        stored = SignedTx(upload.raw_tx, upload.tx_hash, upload.tx_nonce, upload.supplier)
        if mined_nonce(w3, upload.supplier) <= upload.tx_nonce:
            outcome = broadcast(w3, stored)
            if outcome != "dead":
                receipt = wait_receipt(w3, stored.tx_hash, settings.commit_wait_seconds)
                if receipt is not None:
                    _finish_from_receipt(session, escrow, upload, receipt)
                return
    # The stored transaction can never mine. Commit afresh if nothing moved the listing.
    listing = read_listing(escrow, upload.listing_id)
    if (
        supplier is not None
        and supplier.address == upload.supplier
        and listing.committed == upload.first_index
    ):
        with account_lock(supplier.address):
            try:
                signed = sign_call(
                    escrow,
                    supplier,
                    "commitBatch",
                    [upload.listing_id, upload.root, upload.count, upload.first_index],
                    nonce=pending_nonce(w3, supplier.address),
                )
            except ContractRevertError as exc:
                _abandon(session, upload, f"the chain refused the batch on recovery ({exc.name})")
                return
            upload.tx_nonce, upload.tx_hash = signed.nonce, signed.tx_hash
            upload.raw_tx = signed.raw
            session.commit()  # store the new bytes before they leave
            if broadcast(w3, signed) != "dead":
                receipt = wait_receipt(w3, signed.tx_hash, settings.commit_wait_seconds)
                if receipt is not None:
                    _finish_from_receipt(session, escrow, upload, receipt)
            escrow.tx.reset_nonce(supplier.address)
        return
    _abandon(
        session,
        upload,
        "its commitBatch transaction never mined and the listing moved on (or no supplier key "
        "was given to re-send it); upload the codes again",
    )


def recover_pending(
    session: Session,
    escrow: EscrowClient,
    settings: Settings,
    supplier: LocalAccount | None = None,
    *,
    listing_id: int | None = None,
    upload_ids: Collection[int] | None = None,
) -> list[UploadResult]:
    """Finish every pending upload after a crash, matching it against the chain.

    For each ``pending`` upload (optionally of one listing):

    - its transaction mined: mark it ``committed`` from the BatchCommitted event (or
      ``abandoned`` if it reverted);
    - no receipt, but a batch with its root is on-chain (a replacement mined): ``committed``;
    - the transaction waits in the node's pool: leave it ``pending``;
    - the node lost it and its nonce is unused: broadcast the stored bytes again (commit if
      absent);
    - its nonce went to another transaction: sign a new commitBatch if `supplier` is given and
      the listing's stock still ends at the upload's first index; otherwise ``abandoned``
      (codes deleted, so the same file can be uploaded again).

    Args:
        session: A session; committed by this function.
        escrow: The escrow.
        settings: The settings.
        supplier: The supplier's account, to re-sign transactions that can no longer mine.
        listing_id: Only this listing's uploads.
        upload_ids: Only these uploads.

    Returns:
        The uploads it looked at, as they are now.

    Raises:
        ChainUnavailable: the node did not answer (nothing is lost; call again later).
    """
    query = select(Upload).where(Upload.state == "pending").order_by(Upload.id)
    if listing_id is not None:
        query = query.where(Upload.listing_id == listing_id)
    if upload_ids is not None:
        query = query.where(Upload.id.in_(list(upload_ids)))
    out: list[UploadResult] = []
    with rpc_guard("recovering pending uploads"):
        bind_escrow(session, escrow.chain.chain_id, escrow.address)
        for upload in session.execute(query).scalars().all():
            receipt = receipt_or_none(escrow.w3, upload.tx_hash) if upload.tx_hash else None
            if receipt is not None:
                _finish_from_receipt(session, escrow, upload, receipt)
            else:
                _reconcile_without_receipt(session, escrow, upload, supplier, settings)
            session.commit()
            log.info("recovered upload %s: %s", upload.id, upload.state)
            out.append(_result(upload))
    return out


def list_uploads(
    session: Session, *, supplier: str | None = None, listing_id: int | None = None
) -> list[UploadResult]:
    """Uploads, newest first, optionally of one supplier or listing."""
    query = select(Upload).order_by(Upload.id.desc())
    if supplier is not None:
        query = query.where(Upload.supplier == to_checksum_address(supplier))
    if listing_id is not None:
        query = query.where(Upload.listing_id == listing_id)
    return [_result(u) for u in session.execute(query).scalars()]


def stock_counts(session: Session, listing_id: int) -> dict[str, int]:
    """How many codes of a listing are in each state (``staged``, ``stock``, ``released``)."""
    rows = session.execute(
        select(Code.state, func.count()).where(Code.listing_id == listing_id).group_by(Code.state)
    )
    return {state: int(n) for state, n in rows}
