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

Crash recovery between the database write and the chain transaction: a backend that holds the
supplier's key (development: ``--supplier-key-file``) stores the upload as ``pending`` and, in
the same database transaction, queues its ``commitBatch`` with the chain gateway
(`backend.gateway`, intent ``commit``, key ``upload:<id>``), which signs it, stores the signed
bytes before anything is broadcast, and follows it to the end. After a crash `recover_pending`
asks the gateway's row and the chain (see its docstring). A transaction with a given nonce mines
at most once, so re-sending the stored bytes can never commit a batch twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from backend.chaintx import (
    account_lock,
    encode_call,
    read_listing,
    rpc_guard,
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
from backend.gateway.gateway import Gateway, enqueue
from backend.gateway.models import ChainTx, TxState
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
#: The chain gateway's intent for an upload's commitBatch.
COMMIT_INTENT = "commit"
#: Pause between the gateway's passes while an upload waits for its commitBatch.
COMMIT_POLL_S = 0.1
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

    with rpc_guard("checking the commitBatch call"):
        try:
            _simulate_commit(escrow, address, [listing_id, tree.root, total, first_index])
        except ContractRevertError as exc:
            session.rollback()
            raise _commit_failed(exc) from exc
    holds_key = not isinstance(supplier, str)

    upload = Upload(
        supplier=address,
        listing_id=listing_id,
        first_index=first_index,
        count=total,
        root=tree.root,
        state="pending" if holds_key else "awaiting",
    )
    session.add(upload)
    session.flush()
    if holds_key:
        # Queued in the same database transaction as the codes: the gateway signs and sends it.
        upload.chain_tx_id = _queue_commit(session, escrow, upload, attempt=0).id
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
    if not holds_key:
        log.info(
            "upload %s: %d codes for listing %s stored, awaiting the supplier's commitBatch",
            upload.id,
            total,
            listing_id,
        )
        return _result(upload)
    log.info(
        "upload %s: %d codes for listing %s stored, commitBatch queued",
        upload.id,
        total,
        listing_id,
    )
    assert not isinstance(supplier, str)
    _drive(session, escrow, upload, settings, supplier)
    escrow.tx.reset_nonce(address)  # the gateway used the key: a client of it must re-read
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


def _queue_commit(session: Session, escrow: EscrowClient, upload: Upload, attempt: int) -> ChainTx:
    """Queue `upload`'s commitBatch with the chain gateway (not committed: the caller commits it
    together with the state that caused it). `attempt` counts re-queues after a dropped one."""
    return enqueue(
        session,
        intent=COMMIT_INTENT,
        key=f"upload:{upload.id}" + (f":{attempt}" if attempt else ""),
        sender=upload.supplier,
        to=escrow.address,
        data=commit_data(upload),
        subjects=[upload.id],
    )


def _gateway(
    session: Session,
    escrow: EscrowClient,
    settings: Settings,
    supplier: LocalAccount | None,
    sender: str,
) -> Gateway:
    """A gateway following `sender`'s rows: it signs with `supplier` when that is the sender's
    key, and otherwise only re-sends the stored bytes and follows them."""
    held = [supplier] if supplier is not None and supplier.address == sender else []
    return Gateway(
        sessionmaker(bind=session.get_bind()),
        escrow.chain,
        held,
        follow=[sender],
        bump_blocks=settings.delivery_bump_blocks,
        bump_percent=settings.delivery_bump_percent,
        max_fee_cap=settings.delivery_max_gas_price,
        reorg_depth=0 if escrow.chain.kind == "embedded" else settings.reorg_depth,
    )


def _drive(
    session: Session,
    escrow: EscrowClient,
    upload: Upload,
    settings: Settings,
    supplier: LocalAccount | None,
    *,
    wait_s: float | None = None,
) -> None:
    """Run the gateway on `upload`'s commitBatch until the upload is decided or `wait_s`
    (default ``commit_wait_seconds``) has passed; commits the session. An upload still
    undecided stays ``pending`` (finished later by `recover_pending`)."""
    gateway = _gateway(session, escrow, settings, supplier, upload.supplier)
    deadline = time.monotonic() + (settings.commit_wait_seconds if wait_s is None else wait_s)
    passes = 0
    while True:
        assert upload.chain_tx_id is not None
        gateway.run_once(only={upload.chain_tx_id})
        passes += 1
        _follow(session, escrow, upload, gateway, supplier)
        session.commit()
        # Two passes at least: one that sends, one that finds the receipt.
        if upload.state != "pending" or (passes >= 2 and time.monotonic() >= deadline):
            return
        if passes >= 2:
            time.sleep(COMMIT_POLL_S)


def _follow(
    session: Session,
    escrow: EscrowClient,
    upload: Upload,
    gateway: Gateway,
    supplier: LocalAccount | None,
) -> None:
    """Bring a pending upload up to date with its gateway row (not committed)."""
    row = session.get(ChainTx, upload.chain_tx_id)
    assert row is not None, f"upload {upload.id} names no chain_txs row"
    session.refresh(row)
    if row.tx_hash:
        upload.tx_hash = row.tx_hash
    if row.state in (TxState.MINED, TxState.REVERTED):
        assert row.tx_hash is not None
        receipt = gateway.receipt(row.tx_hash)
        if receipt is not None:
            _finish_from_receipt(session, escrow, upload, receipt)
        return
    if row.state not in (TxState.FAILED, TxState.DROPPED):
        return  # queued, signed or sent: still on its way
    # It can never mine: the gateway found the call would revert, or its nonce went to another
    # transaction of the supplier. A batch of ours may be on-chain all the same.
    if _commit_if_found(session, escrow, upload):
        return
    listing = read_listing(escrow, upload.listing_id)
    if (
        row.state == TxState.DROPPED
        and supplier is not None
        and supplier.address == upload.supplier
    ) and listing.committed == upload.first_index:
        attempt = len(
            session.scalars(
                select(ChainTx.id).where(
                    ChainTx.intent == COMMIT_INTENT, ChainTx.subjects == str(upload.id)
                )
            ).all()
        )
        upload.chain_tx_id = _queue_commit(session, escrow, upload, attempt).id
        log.info("upload %s: its commitBatch was dropped; queued again", upload.id)
        return
    if row.state == TxState.FAILED:
        _abandon(
            session, upload, f"the chain refused the batch ({row.error}); upload the codes again"
        )
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
    """Finish every pending upload after a crash, through its chain gateway row.

    For each ``pending`` upload (optionally of one listing), the gateway follows its queued
    commitBatch: a row not signed yet is signed (with `supplier`'s key); stored bytes are sent
    again (a node that has them says so); a mined one marks the upload ``committed`` from its
    BatchCommitted event, or ``abandoned`` if it reverted. A row that can never mine (its nonce
    went to another transaction of the supplier, or the call would revert) ends the upload
    ``committed`` if its batch is on-chain anyway, is queued again if `supplier` is given and
    the listing's stock still ends at the upload's first index, and is ``abandoned`` otherwise
    (codes deleted, so the same file can be uploaded again).

    With `supplier` it waits up to ``commit_wait_seconds`` per upload, as an upload does;
    without (the delivery agent's sweep), it makes two passes and leaves an undecided upload
    ``pending`` for the next sweep.

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
            if upload.chain_tx_id is None:  # queued by no one: cannot happen after migration 0010
                if not _commit_if_found(session, escrow, upload):
                    _abandon(session, upload, "no commitBatch was ever queued for it")
            else:
                _drive(
                    session, escrow, upload, settings, supplier,
                    wait_s=None if supplier is not None else 0.0,
                )  # fmt: skip
            session.commit()
            log.info("recovered upload %s: %s", upload.id, upload.state)
            out.append(_result(upload))
        if supplier is not None:
            escrow.tx.reset_nonce(supplier.address)
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
