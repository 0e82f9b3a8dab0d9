"""The vault's service API: upload codes, commit their batch on-chain, recover a crash.

Public API (stable):

- `upload_codes(session, escrow, supplier, listing_id, csv_bytes, settings, progress=None)
  -> UploadResult`, raising `UploadRejected` (with ``problems``: (line, reason) pairs) and the
  other `VaultError` subclasses.
- `recover_pending(session, escrow, settings, supplier=None, *, listing_id=None)
  -> list[UploadResult]`
- `submit_signed(session, escrow, supplier, upload_id, tx_hash, settings) -> UploadResult` and
  `settle_signed_uploads(session, escrow) -> list[UploadResult]`: uploads the supplier commits
  with its own wallet (the backend holds no supplier key; issue 14).
- `list_uploads(session, *, supplier=None, listing_id=None) -> list[UploadResult]`
- `stock_counts(session, listing_id) -> dict[str, int]`

A supplier that keeps its own key uploads the same way, but the backend signs nothing: the
upload is stored ``awaiting`` (codes ``staged``, never for sale) and the answer carries the exact
``commitBatch`` call for the supplier's wallet to sign and send. The upload becomes ``committed``
when that call's batch is on-chain at the upload's first index, found from the transaction the
supplier reports (`submit_signed`) or from the chain alone (`settle_signed_uploads`, which the
delivery agent runs), so a crash or a closed browser between signing and reporting loses
nothing. A listing has at most one upload awaiting: a second one is refused (409) until the
first is signed, because both would name the same code indexes and the vault must hold whichever
batch lands. A rejected signature leaves the upload awaiting (sign it later from the uploads
list); its codes are never sold unless its batch lands, and are deleted only once the chain makes
that impossible (another batch took its indexes).

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
from hexbytes import HexBytes
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from backend.chaintx import (
    SignedTx,
    account_lock,
    broadcast,
    encode_call,
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
    UnknownUpload,
    UploadInProgress,
    UploadRejected,
)
from backend.models import Code, Upload
from backend.vault.crypto import CodeCipher, fingerprint
from backend.vault.csv import ParsedCode, parse_codes
from backend.vault.master import require_master_key
from contracts.client import REVERTS, decode_revert
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
    #: For an ``awaiting`` upload: the commitBatch call data for the supplier's wallet.
    commit_data: bytes | None = None
    #: Why it was abandoned or misplaced.
    error: str | None = None


#: The state of an upload the supplier commits itself, until its batch is found on-chain.
SIGNED_BY_SUPPLIER = ("awaiting",)


def commit_data(upload: Upload) -> bytes:
    """The ``commitBatch`` calldata that commits `upload` at its first index."""
    return encode_call(
        "commitBatch", [upload.listing_id, upload.root, upload.count, upload.first_index]
    )


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
        commit_data=commit_data(upload) if upload.state == "awaiting" else None,
        error=upload.error,
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
    session: Session,
    escrow: EscrowClient,
    upload: Upload,
    receipt: dict[str, Any],
    *,
    quiet: bool = False,
) -> None:
    """Mark an upload committed (or misplaced/abandoned) from its mined transaction; with
    `quiet`, a transaction holding no batch of the upload changes nothing (a supplier's report
    of a hash is a hint, not proof)."""
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
    if not quiet:
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


def _commit_if_found(session: Session, escrow: EscrowClient, upload: Upload) -> bool:
    """Mark `upload` committed if its batch is on-chain (whatever transaction put it there)."""
    found = _find_batch(escrow, upload)
    if found is None:
        return False
    batch_index, first = found
    _mark_committed(
        session,
        upload,
        batch_index=batch_index,
        first_index=first,
        block_number=int(escrow.w3.eth.block_number),
        tx_hash=None,
    )
    return True


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
    supplier: LocalAccount | str,
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

    With `supplier` an address (the backend holds no key for it), step 2 stores the upload
    ``awaiting`` with no transaction and step 3 is the supplier's: the result's
    ``commit_data`` is the call to sign (see the module's docstring).

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
    address = supplier if isinstance(supplier, str) else supplier.address
    _reject_stock_duplicates(session, address, parsed, fps)
    # One upload per supplier at a time in this process: the listing's first free index and
    # the supplier's nonce must not change between reading them and the batch mining.
    with account_lock(address):
        return _upload_locked(
            session, escrow, supplier, listing_id, settings, progress, parsed, fps
        )


def _upload_locked(
    session: Session,
    escrow: EscrowClient,
    supplier: LocalAccount | str,
    listing_id: int,
    settings: Settings,
    progress: Progress | None,
    parsed: list[ParsedCode],
    fps: list[bytes],
) -> UploadResult:
    total = len(parsed)
    w3 = escrow.w3
    address = supplier if isinstance(supplier, str) else supplier.address
    with rpc_guard("reading the listing"):
        chain_id = escrow.chain.chain_id
        bind_escrow(session, chain_id, escrow.address)
        listing = read_listing(escrow, listing_id)
        if not listing.exists:
            raise UnknownListing(f"listing {listing_id} does not exist on {escrow.address}")
        if to_checksum_address(listing.supplier) != address:
            raise NotListingOwner(
                f"listing {listing_id} belongs to {listing.supplier}, not {address}"
            )
        for waiting in settle_signed_uploads(session, escrow, listing_id=listing_id):
            if waiting.state == "awaiting":
                raise UploadInProgress(
                    f"upload {waiting.upload_id} to listing {listing_id} is waiting for your "
                    "wallet to sign its commitBatch (see your uploads): sign it first, so that "
                    "the vault holds whichever batch lands at those code indexes"
                )
            listing = read_listing(escrow, listing_id)
        if _pending_for_listing(session, listing_id):
            recover_pending(
                session,
                escrow,
                settings,
                None if isinstance(supplier, str) else supplier,
                listing_id=listing_id,
            )
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

    signed: SignedTx | None = None
    with rpc_guard("preparing the commitBatch transaction"):
        try:
            if isinstance(supplier, str):
                _simulate_commit(escrow, supplier, [listing_id, tree.root, total, first_index])
            else:
                signed = sign_call(
                    escrow,
                    supplier,
                    "commitBatch",
                    [listing_id, tree.root, total, first_index],
                    nonce=pending_nonce(w3, supplier.address),
                    chain_id=chain_id,
                )
        except ContractRevertError as exc:
            session.rollback()
            raise _commit_failed(exc) from exc

    upload = Upload(
        supplier=address,
        listing_id=listing_id,
        first_index=first_index,
        count=total,
        root=tree.root,
        state="pending" if signed is not None else "awaiting",
        tx_nonce=signed.nonce if signed is not None else None,
        tx_hash=signed.tx_hash if signed is not None else None,
        raw_tx=signed.raw if signed is not None else None,
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
                "supplier": address,
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
        _reject_stock_duplicates(session, address, parsed, fps)
        raise UploadInProgress(
            f"another upload to listing {listing_id} took the same indexes at the same time; retry"
        ) from exc
    if progress is not None:
        progress(total, total)
    if signed is None:
        log.info(
            "upload %s: %d codes for listing %s stored, awaiting the supplier's commitBatch",
            upload.id,
            total,
            listing_id,
        )
        return _result(upload)
    log.info(
        "upload %s: %d codes for listing %s stored, commitBatch %s signed",
        upload.id,
        total,
        listing_id,
        signed.tx_hash,
    )

    _send_and_finish(session, escrow, upload, signed, settings)
    escrow.tx.reset_nonce(address)
    return _result(upload)


def _simulate_commit(escrow: EscrowClient, supplier: str, args: list[Any]) -> None:
    """Dry-run the supplier's ``commitBatch`` (from its address, nothing signed).

    Raises:
        ContractRevertError: the chain would refuse it.
    """
    try:
        escrow.w3.eth.call(
            {
                "from": to_checksum_address(supplier),
                "to": to_checksum_address(escrow.address),
                "data": HexBytes(encode_call("commitBatch", args)),
            }
        )
    except REVERTS as exc:
        decoded = decode_revert(exc)
        if isinstance(decoded, ContractRevertError):
            raise decoded from exc
        raise


def submit_signed(
    session: Session,
    escrow: EscrowClient,
    supplier: str,
    upload_id: int,
    tx_hash: str | None,
    settings: Settings,
) -> UploadResult:
    """Record the supplier's own commitBatch for an upload and finish it once mined.

    Waits up to ``commit_wait_seconds`` for the receipt; an upload whose transaction is not
    mined yet stays ``awaiting`` (call again, or let `settle_signed_uploads` finish it).

    Raises:
        UnknownUpload: no upload `upload_id` of this supplier.
        ChainUnavailable: the node did not answer (nothing changed).
    """
    upload = session.get(Upload, upload_id)
    if upload is None or upload.supplier != to_checksum_address(supplier):
        raise UnknownUpload(f"no upload {upload_id} of {supplier}")
    if upload.state not in SIGNED_BY_SUPPLIER:
        return _result(upload)
    with rpc_guard("reading the commitBatch transaction"):
        if tx_hash is not None:
            receipt = wait_receipt(escrow.w3, tx_hash, settings.commit_wait_seconds)
            if receipt is not None and receipt["status"] == 1:
                _finish_from_receipt(session, escrow, upload, receipt, quiet=True)
        if upload.state in SIGNED_BY_SUPPLIER:
            _settle_signed(session, escrow, upload)
        session.commit()
    return _result(upload)


def settle_signed_uploads(
    session: Session, escrow: EscrowClient, *, listing_id: int | None = None
) -> list[UploadResult]:
    """Finish uploads the supplier commits itself from the chain alone: ``committed`` where
    their batch landed at their first index; their codes deleted where another batch took
    those indexes; left as they are while both are still possible. Commits the session.

    Raises:
        ChainUnavailable: the node did not answer (nothing changed).
    """
    query = select(Upload).where(Upload.state.in_(SIGNED_BY_SUPPLIER)).order_by(Upload.id)
    if listing_id is not None:
        query = query.where(Upload.listing_id == listing_id)
    out: list[UploadResult] = []
    with rpc_guard("checking uploads the suppliers commit"):
        for upload in session.execute(query).scalars().all():
            _settle_signed(session, escrow, upload)
            out.append(_result(upload))
        session.commit()
    return out


def _settle_signed(session: Session, escrow: EscrowClient, upload: Upload) -> None:
    listing = read_listing(escrow, upload.listing_id)
    if listing.committed <= upload.first_index:
        return  # nothing took its indexes yet: its call may still land
    if _commit_if_found(session, escrow, upload):
        return
    _abandon(
        session,
        upload,
        "another batch was committed at this upload's code indexes before its commitBatch was "
        "signed and mined; its codes were never on sale, upload them again",
    )


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
    if _commit_if_found(session, escrow, upload):
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
