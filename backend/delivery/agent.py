"""The delivery agent: every paid order gets its codes sealed, stored and its digest on-chain.

Public API (stable):

- `DeliveryAgent(settings, session_factory, escrow, delivery_account, *, source=None)`
  with `recover()`, `run_once() -> list[int]`, `run_forever(stop)` and `drain()`.
- `python -m backend.delivery.agent` runs one agent from `Settings` (used by the SIGKILL test).

State machine and crash safety (each arrow is one database transaction):

    paid order --(seal, store)--> Release prepared
    prepared --(sign deliver tx, store tx + mark sent)--> sent --(broadcast)--> ...
    sent --(receipt with OrderDelivered(digest))--> confirmed
    sent --(tx waits in the pool for `delivery_bump_blocks`)--> sent, in a replacement tx:
        the same call, the same nonce, a higher gas price (stored before it is broadcast)
    sent --(stored tx refused on re-send, e.g. evicted by a base-fee rise)--> dropped, as below
    sent --(tx reverted / dropped)--> ask the chain about each order:
        OrderDelivered with our digest -> confirmed
        OrderDelivered with another digest -> superseded
        still Paid (hash unchanged) -> prepared again (the SAME sealed bytes are re-posted)
        closed without delivery -> abandoned

A release is sealed exactly once (its row is the idempotency key) and the signed transaction is
stored before it is broadcast, so a process killed at any point restarts into one of these
states, re-sends stored bytes, and never seals or delivers an order twice. At most one delivery
transaction is in flight, so batches go out about once per block.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from backend.chaintx import (
    CONNECTION_ERRORS,
    SignedTx,
    account_lock,
    broadcast,
    get_logs,
    is_known,
    mined_nonce,
    pending_nonce,
    receipt_or_none,
    rpc_guard,
    sign_call,
)
from backend.db import bind_escrow
from backend.delivery.sources import (
    AutoOrderSource,
    ChainLogOrderSource,
    MirrorOrderSource,
    PaidOrder,
    PaidOrderSource,
    decode_order,
    encode_order,
)
from backend.errors import ChainUnavailable, DeliveryError
from backend.evidence.retention import purge_final_orders
from backend.models import Code, DeliveryTx, Release, Upload
from backend.release import CodeToSeal, seal_release
from backend.vault.crypto import CodeCipher, EncryptedRecord
from contracts.encoding import Order, OrderState
from contracts.errors import ChainError, ContractRevertError, KamengError
from contracts.merkle import MerkleTree

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session

    from backend.config import Settings
    from contracts.client import EscrowClient

log = logging.getLogger(__name__)

IN_FLIGHT = ("signed", "broadcast")
#: Failures of a pass that are outages, not bugs: retried with a growing pause.
RETRYABLE: tuple[type[BaseException], ...] = (ChainUnavailable, SQLAlchemyError, *CONNECTION_ERRORS)
#: Errors whose first argument is the order that broke a whole batch.
ORDER_ERRORS = frozenset({"EscrowUnknownOrder", "EscrowWrongState", "EscrowDeadlinePassed"})


def make_source(settings: Settings, escrow: EscrowClient) -> PaidOrderSource:
    """The order source that `settings.order_source` names."""
    chain = ChainLogOrderSource(
        escrow,
        start_block=settings.chain_start_block,
        log_range=settings.chain_log_range,
        reorg_depth=settings.reorg_depth,
    )
    if settings.order_source == "mirror":
        return MirrorOrderSource()
    if settings.order_source == "chain":
        return chain
    return AutoOrderSource(escrow, chain)


class DeliveryAgent:
    """Delivers paid orders; safe to kill at any point and restart.

    Only one agent may use a delivery key at a time (it manages the key's nonces).

    Attributes:
        crash_hook: Testing aid: called with the name of each crash point (``prepared``,
            ``tx-stored``, ``broadcast``, ``reconciled``, ``bump-stored``); raising from it
            simulates a crash there.
    """

    def __init__(
        self,
        settings: Settings,
        session_factory: Callable[[], Session],
        escrow: EscrowClient,
        delivery_account: LocalAccount,
        *,
        source: PaidOrderSource | None = None,
    ) -> None:
        """Bind the agent.

        Args:
            settings: Batch size, deadline margin, poll interval, master key.
            session_factory: Makes database sessions.
            escrow: The escrow.
            delivery_account: The delivery key the suppliers named (never their owner key).
            source: Where paid orders come from; by default `settings.order_source`.
        """
        self.settings = settings
        self.session_factory = session_factory
        self.escrow = escrow
        self.w3 = escrow.w3
        self.account = delivery_account
        self.source = source or make_source(settings, escrow)
        self.cipher = CodeCipher(settings.master_key_bytes)
        self.crash_hook: Callable[[str], None] | None = None
        self.chain_id = escrow.chain.chain_id
        self._trees: OrderedDict[int, MerkleTree] = OrderedDict()
        self._allowed: dict[str, tuple[bool, float]] = {}
        self._missing_logged: set[int] = set()
        #: What was already reported as waiting for the gas price to fall under the cap.
        self._cap_warned: set[str] = set()
        #: Orders left alone in the last pass (codes missing, or not our supplier's key).
        self._skipped: set[int] = set()
        self._recovered = False
        #: Pending uploads first seen by this agent (upload id -> monotonic time).
        self._pending_seen: dict[int, float] = {}
        self._uploads_checked = 0.0
        self._retention_swept = float("-inf")

    # ------------------------------------------------------------ public

    def recover(self) -> None:
        """Bind the database to the escrow and settle every in-flight transaction with the chain.

        Raises:
            ChainUnavailable: the node did not answer.
        """
        with self.session_factory() as session, rpc_guard("recovering deliveries"):
            bind_escrow(session, self.chain_id, self.escrow.address)
            session.commit()
            self._reconcile_in_flight(session)
        self._recovered = True

    def run_once(self) -> list[int]:
        """One pass: reconcile in-flight transactions, seal new paid orders, post a batch.

        Returns:
            The order ids whose sealed releases were stored in this pass (the API serves each
            once its delivery is on-chain).

        Raises:
            ChainUnavailable: the node did not answer (nothing is lost; call again).
        """
        if not self._recovered:
            self.recover()
        with self.session_factory() as session, rpc_guard("delivering"):
            self._reconcile_in_flight(session)
            self._finish_stale_uploads(session)
            self.source.poll(session)
            now = int(self.w3.eth.get_block("latest")["timestamp"])
            prepared = self._prepare(session, now)
            self._post(session, now)
            self._sweep_retention(session, now)
        return prepared

    def drain(self, max_passes: int = 100) -> list[int]:
        """Run passes until nothing is left to seal, post or confirm (for tests and the demo
        on a chain that mines on demand).

        Returns:
            Every order id sealed during the drain.

        Raises:
            DeliveryError: still busy after `max_passes`.
        """
        sealed: list[int] = []
        for _ in range(max_passes):
            sealed.extend(self.run_once())
            if not self.busy():
                return sealed
        raise DeliveryError(f"deliveries still in progress after {max_passes} passes")

    def busy(self) -> bool:
        """Whether releases wait to be posted or confirmed, or new orders wait to be sealed."""
        with self.session_factory() as session:
            waiting = session.execute(
                select(Release.order_id).where(Release.state.in_(("prepared", "sent"))).limit(1)
            ).first()
            if waiting is not None:
                return True
            now = int(self.w3.eth.get_block("latest")["timestamp"])
            fresh = self.source.candidates(
                session, min_deadline=now + self.settings.delivery_deadline_margin, limit=20
            )
            return any(p.order_id not in self._skipped for p in fresh)

    def run_forever(self, stop: threading.Event) -> None:
        """Run passes until `stop` is set, idling briefly when there is nothing to do.

        A node or database outage is logged and retried with a growing pause; an error the
        chain or the vault raises on purpose is logged and retried after a second. Nothing is
        lost either way: the next pass starts from what the database holds.
        """
        backoff = self.settings.delivery_poll_seconds
        while not stop.is_set():
            try:
                sealed = self.run_once()
                backoff = self.settings.delivery_poll_seconds
            except RETRYABLE as exc:
                log.warning("delivery pass failed, retrying in %.1fs: %s", backoff, exc)
                stop.wait(backoff)
                backoff = min(backoff * 2 + 0.1, 10.0)
                continue
            except KamengError as exc:  # the chain or the vault said no; keep serving the rest
                log.error("delivery pass failed: %s", exc)
                stop.wait(1.0)
                continue
            if not sealed:
                stop.wait(self.settings.delivery_poll_seconds)

    def _sweep_retention(self, session: Session, now: int) -> None:
        """Every `retention_sweep_seconds`, erase what final orders no longer need."""
        clock = time.monotonic()
        if clock - self._retention_swept < self.settings.retention_sweep_seconds:
            return
        self._retention_swept = clock
        purge_final_orders(session, now=now, grace_s=self.settings.retention_grace_seconds)

    # ------------------------------------------------------------ uploads

    def _finish_stale_uploads(self, session: Session) -> None:
        """Finish uploads left ``pending`` (a crash, or a slow block) once they have been pending
        longer than an upload waits by itself, so their stock becomes deliverable. Without the
        supplier's key it can only confirm or abandon them (`recover_pending`)."""
        now = time.monotonic()
        if now - self._uploads_checked < min(5.0, self.settings.commit_wait_seconds):
            return
        self._uploads_checked = now
        pending = set(session.execute(select(Upload.id).where(Upload.state == "pending")).scalars())
        self._pending_seen = {uid: self._pending_seen.get(uid, now) for uid in pending}
        stale = [
            uid
            for uid, seen in self._pending_seen.items()
            if now - seen >= self.settings.commit_wait_seconds
        ]
        if stale:
            from backend.vault.service import recover_pending

            for result in recover_pending(session, self.escrow, self.settings, upload_ids=stale):
                log.info("finished pending upload %s: %s", result.upload_id, result.state)

    # ------------------------------------------------------------ crash points

    def _crash(self, point: str) -> None:
        if self.crash_hook is not None:
            self.crash_hook(point)

    # ------------------------------------------------------------ sealing

    def _may_deliver_for(self, supplier: str) -> bool:
        """Whether our key may deliver `supplier`'s orders (cached for a minute)."""
        if supplier == self.account.address:
            return True
        cached = self._allowed.get(supplier)
        if cached is not None and time.monotonic() - cached[1] < 60:
            return cached[0]
        allowed = bool(self.escrow.call("isDeliveryKey", supplier, self.account.address))
        if not allowed and self.escrow.call(
            "isProposedDeliveryKey", supplier, self.account.address
        ):
            # The supplier proposed our key: accepting is our consent to deliver for it (the
            # contract refuses the acceptance if our key holds the arbiter role).
            self._accept_proposal(supplier)
            allowed = bool(self.escrow.call("isDeliveryKey", supplier, self.account.address))
        self._allowed[supplier] = (allowed, time.monotonic())
        if not allowed:
            log.warning(
                "supplier %s has not named %s as a delivery key; its orders are skipped",
                supplier,
                self.account.address,
            )
        return allowed

    def _accept_proposal(self, supplier: str) -> None:
        """Accept `supplier`'s proposal of our key; a refusal is logged, not raised."""
        with account_lock(self.account.address):
            try:
                res = self.escrow.accept_delivery_key(self.account, supplier)
                log.info(
                    "accepted supplier %s's delivery-key proposal (tx %s)", supplier, res.tx_hash
                )
            except KamengError as exc:
                log.warning(
                    "could not accept supplier %s's delivery-key proposal: %s", supplier, exc
                )
            finally:
                self.escrow.tx.reset_nonce(self.account.address)

    def _tree(self, session: Session, upload_id: int) -> MerkleTree:
        tree = self._trees.get(upload_id)
        if tree is None:
            upload = session.get(Upload, upload_id)
            assert upload is not None
            commitments = session.execute(
                select(Code.code_index, Code.commitment)
                .where(Code.upload_id == upload_id)
                .order_by(Code.code_index)
            ).all()
            from contracts.encoding import leaf

            tree = MerkleTree([leaf(int(i), bytes(c)) for i, c in commitments])
            if tree.root != upload.root:
                raise DeliveryError(
                    f"upload {upload_id}'s stored commitments do not rebuild its root; the vault "
                    "was altered"
                )
            self._trees[upload_id] = tree
            while len(self._trees) > 64:
                self._trees.popitem(last=False)
        else:
            self._trees.move_to_end(upload_id)
        return tree

    def _codes_for(self, session: Session, paid: PaidOrder) -> list[CodeToSeal] | None:
        """Decrypt the order's codes with their proofs; None if the vault lacks some."""
        q = paid.order.quantity
        rows = session.execute(
            select(Code, Upload)
            .join(Upload, Upload.id == Code.upload_id)
            .where(
                Code.listing_id == paid.listing_id,
                Code.code_index >= paid.first_index,
                Code.code_index < paid.first_index + q,
                Upload.state == "committed",
            )
            .order_by(Code.code_index)
        ).all()
        if len(rows) != q:
            if paid.order_id not in self._missing_logged:
                self._missing_logged.add(paid.order_id)
                log.error(
                    "order %s needs %d codes at %d.. of listing %s; the vault has %d of them",
                    paid.order_id,
                    q,
                    paid.first_index,
                    paid.listing_id,
                    len(rows),
                )
            return None
        out = []
        for code_row, upload in rows:
            index = int(code_row.code_index)
            salt, code = self.cipher.decrypt(
                paid.listing_id,
                index,
                EncryptedRecord(
                    code_row.ciphertext, code_row.nonce, code_row.wrapped_key, code_row.key_id
                ),
            )
            tree = self._tree(session, upload.id)
            expires: datetime | None = code_row.expires_at
            assert upload.batch_index is not None
            out.append(
                CodeToSeal(
                    index=index,
                    code=code,
                    salt=salt,
                    commitment=bytes(code_row.commitment),
                    batch_index=upload.batch_index,
                    batch_root=upload.root,
                    proof=tree.proof(index - upload.first_index),
                    expires_at=int(expires.timestamp()) if expires is not None else 0,
                )
            )
        return out

    def _prepare(self, session: Session, now: int) -> list[int]:
        """Seal every new paid order and store the releases in one transaction."""
        candidates = self.source.candidates(
            session,
            min_deadline=now + self.settings.delivery_deadline_margin,
            limit=self.settings.delivery_batch_size * 2,
        )
        sealed: list[int] = []
        for paid in candidates:
            if paid.order_id in self._missing_logged:
                continue
            if not self._may_deliver_for(paid.order.supplier):
                self._skipped.add(paid.order_id)
                continue
            codes = self._codes_for(session, paid)
            if codes is None:
                self._skipped.add(paid.order_id)
                continue
            self._skipped.discard(paid.order_id)
            built = seal_release(
                chain_id=self.chain_id,
                escrow=self.escrow.address,
                order_id=paid.order_id,
                buyer_pubkey=paid.buyer_pubkey,
                codes=codes,
            )
            session.add(
                Release(
                    order_id=paid.order_id,
                    listing_id=paid.listing_id,
                    first_index=paid.first_index,
                    quantity=paid.order.quantity,
                    buyer=paid.order.buyer,
                    supplier=paid.order.supplier,
                    buyer_pubkey=paid.buyer_pubkey,
                    order_abi=encode_order(paid.order),
                    paid_block=paid.paid_block,
                    sealed=built.sealed,
                    digest="0x" + built.digest.hex(),
                    manifest=built.manifest,
                    state="prepared",
                )
            )
            session.execute(
                update(Code)
                .where(
                    Code.listing_id == paid.listing_id,
                    Code.code_index >= paid.first_index,
                    Code.code_index < paid.first_index + paid.order.quantity,
                )
                .values(state="released")
            )
            sealed.append(paid.order_id)
        if sealed:
            session.commit()
            log.info("sealed %d releases", len(sealed))
            self._crash("prepared")
        return sealed

    # ------------------------------------------------------------ posting

    def _post(self, session: Session, now: int) -> None:
        """Sign, store and broadcast one deliver transaction, unless one is in flight."""
        in_flight = session.execute(
            select(DeliveryTx.id).where(DeliveryTx.state.in_(IN_FLIGHT)).limit(1)
        ).first()
        if in_flight is not None:
            return
        releases = list(
            session.execute(
                select(Release)
                .where(Release.state == "prepared")
                .order_by(Release.paid_block, Release.order_id)
                .limit(self.settings.delivery_batch_size)
            ).scalars()
        )
        if not releases:
            return
        margin = self.settings.delivery_deadline_margin
        batch: list[tuple[Release, Order]] = []
        for rel in releases:
            order = decode_order(rel.order_abi)
            if order.deadline <= now + margin:
                self._reconcile_release(rel, late=True)
            elif self._may_deliver_for(order.supplier):
                batch.append((rel, order))
        signed = self._sign_batch(batch)
        if signed is None:
            session.commit()
            return
        tx, posted = signed
        row = DeliveryTx(
            sender=self.account.address,
            nonce=tx.nonce,
            tx_hash=tx.tx_hash,
            raw_tx=tx.raw,
            state="signed",
            order_count=len(posted),
            gas_price=tx.gas_price,
        )
        session.add(row)
        session.flush()
        for rel in posted:
            rel.state = "sent"
            rel.delivery_tx_id = row.id
        session.commit()
        self._crash("tx-stored")
        outcome = broadcast(self.w3, tx)
        self._crash("broadcast")
        if outcome != "dead":
            row.state = "broadcast"
            row.sent_block = int(self.w3.eth.block_number)
            session.commit()
        log.info("posted %d deliveries in %s (%s)", len(posted), tx.tx_hash, outcome)

    def _sign_batch(
        self, batch: list[tuple[Release, Order]]
    ) -> tuple[SignedTx, list[Release]] | None:
        """Sign `deliver` for the batch; orders the chain rejects are reconciled and dropped.

        Returns None (the releases wait) while the gas price is above the configured cap.
        """
        price = self.escrow.tx.gas_price() if batch else 0
        if self._over_cap(price, "new deliveries"):
            return None
        self._cap_warned.discard("new deliveries")
        while batch:
            try:
                tx = self._sign_deliver(
                    batch, nonce=pending_nonce(self.w3, self.account.address), gas_price=price
                )
                return tx, [rel for rel, _ in batch]
            except ContractRevertError as exc:
                culprit = self._culprit(exc, [rel for rel, _ in batch])
                if culprit is None:
                    raise DeliveryError(
                        f"deliver would revert with {exc.name}{exc.args_!r} for a batch of "
                        f"{len(batch)}; check the delivery key and the escrow"
                    ) from exc
                log.warning("order %s rejected by the chain (%s)", culprit.order_id, exc.name)
                self._reconcile_release(culprit)
                batch = [(r, o) for r, o in batch if r is not culprit]
        return None

    def _sign_deliver(
        self, batch: Sequence[tuple[Release, Order]], *, nonce: int, gas_price: int
    ) -> SignedTx:
        """Sign one `deliver` of the batch's releases (see `sign_call` for what it raises)."""
        return sign_call(
            self.escrow,
            self.account,
            "deliver",
            [
                [rel.order_id for rel, _ in batch],
                [order.as_tuple() for _, order in batch],
                [bytes.fromhex(rel.digest[2:]) for rel, _ in batch],
            ],
            nonce=nonce,
            gas_price=gas_price,
            chain_id=self.chain_id,
        )

    def _over_cap(self, price: int, what: str) -> bool:
        """Whether `price` is above `delivery_max_gas_price`; says so once per `what`."""
        cap = self.settings.delivery_max_gas_price
        if cap is None or price <= cap:
            return False
        if what not in self._cap_warned:
            self._cap_warned.add(what)
            log.warning(
                "%s would need %d wei/gas, above KAMENG_DELIVERY_MAX_GAS_PRICE (%d): waiting",
                what,
                price,
                cap,
            )
        return True

    def _culprit(self, exc: ContractRevertError, batch: Sequence[Release]) -> Release | None:
        if exc.name in ORDER_ERRORS and exc.args_:
            oid = int(exc.args_[0])  # type: ignore[call-overload]
            for rel in batch:
                if rel.order_id == oid:
                    return rel
        if exc.name == "EscrowWrongCaller":
            self._allowed.clear()
            for rel in batch:
                if not self._may_deliver_for(rel.supplier):
                    return rel
        return None

    # ------------------------------------------------------------ reconciling

    def _reconcile_in_flight(self, session: Session) -> None:
        """Settle every stored delivery transaction with the chain."""
        txs = list(
            session.execute(
                select(DeliveryTx).where(DeliveryTx.state.in_(IN_FLIGHT)).order_by(DeliveryTx.id)
            ).scalars()
        )
        for tx in txs:
            receipt = receipt_or_none(self.w3, tx.tx_hash)
            if receipt is not None:
                self._apply_receipt(session, tx, receipt)
            elif is_known(self.w3, tx.tx_hash):
                head = int(self.w3.eth.block_number)
                if tx.state == "signed" or tx.sent_block is None:
                    tx.state = "broadcast"
                    tx.sent_block = head
                elif head - tx.sent_block >= self.settings.delivery_bump_blocks:
                    session.commit()
                    self._bump(session, tx, head)
            elif mined_nonce(self.w3, tx.sender) <= tx.nonce:
                head = int(self.w3.eth.block_number)
                try:
                    outcome = broadcast(
                        self.w3, SignedTx(tx.raw_tx, tx.tx_hash, tx.nonce, tx.sender)
                    )
                except ChainError as exc:
                    # The base fee rose past its gas price and the pool evicted it: its orders go
                    # back to `prepared` and out again in a new transaction at today's price
                    # (same nonce, so if the old one ever mines the new one cannot, and the
                    # orders are found delivered with the same digest). Any other refusal (no
                    # funds for gas, say) is raised as before: re-signing would not help.
                    latest = self.w3.eth.get_block("latest")
                    base_fee = int(latest.get("baseFeePerGas", 0) or 0)
                    if tx.gas_price is None or tx.gas_price >= base_fee:
                        raise
                    self._drop(session, tx, f"priced out by the base fee ({exc})")
                    session.commit()
                    continue
                log.info("re-sent stored delivery tx %s (%s)", tx.tx_hash, outcome)
                if outcome == "dead":
                    self._drop(session, tx)
                else:
                    tx.state = "broadcast"
                    tx.sent_block = head
            else:
                self._drop(session, tx)
            session.commit()
            self._crash("reconciled")

    def _bump(self, session: Session, tx: DeliveryTx, head: int) -> None:
        """Replace a delivery transaction stuck in the pool by the same call at a higher gas price.

        The replacement has the same nonce, so at most one of the two mines; it is stored (and
        takes over the releases) before it is broadcast. Whichever mines, the releases are
        settled from the chain: the replacement's receipt, or, if the original mined instead,
        the replacement is dropped and each order is found delivered with our digest.
        """
        releases = self._releases_of(session, tx)
        if not releases:
            return
        current = self.escrow.tx.gas_price()
        old_price = tx.gas_price or current  # rows stored before prices were recorded
        bumped = old_price * (100 + self.settings.delivery_bump_percent) // 100 + 1
        price = max(bumped, current)
        if self._over_cap(price, f"replacing delivery tx {tx.tx_hash}"):
            tx.sent_block = head
            session.commit()
            return
        batch = [(rel, decode_order(rel.order_abi)) for rel in releases]
        try:
            signed = self._sign_deliver(batch, nonce=tx.nonce, gas_price=price)
        except (ContractRevertError, ChainError) as exc:
            # The call would no longer succeed (an order moved on); the waiting tx will revert
            # or be dropped, and its orders are reconciled then.
            log.warning("not replacing delivery tx %s: %s", tx.tx_hash, exc)
            tx.sent_block = head
            session.commit()
            return
        row = DeliveryTx(
            sender=tx.sender,
            nonce=tx.nonce,
            tx_hash=signed.tx_hash,
            raw_tx=signed.raw,
            state="signed",
            order_count=len(releases),
            gas_price=price,
            replaces_id=tx.id,
        )
        session.add(row)
        session.flush()
        for rel in releases:
            rel.delivery_tx_id = row.id
        tx.state = "replaced"
        session.commit()
        self._crash("bump-stored")
        try:
            outcome = broadcast(self.w3, signed)
        except ChainError as exc:
            # The node refused the replacement: give the releases back to the waiting tx.
            log.warning("the node refused replacement %s of %s: %s", row.tx_hash, tx.tx_hash, exc)
            for rel in releases:
                rel.delivery_tx_id = tx.id
            tx.state = "broadcast"
            tx.sent_block = head
            session.delete(row)
            session.commit()
            return
        if outcome != "dead":
            row.state = "broadcast"
            row.sent_block = head
        session.commit()
        log.info(
            "delivery tx %s waited %d blocks at %d wei/gas; replaced by %s at %d (%s)",
            tx.tx_hash,
            head - (tx.sent_block or head),
            old_price,
            row.tx_hash,
            price,
            outcome,
        )

    def _apply_receipt(self, session: Session, tx: DeliveryTx, receipt: dict[str, Any]) -> None:
        releases = self._releases_of(session, tx)
        tx.block_number = int(receipt["blockNumber"])
        if receipt["status"] != 1:
            tx.state = "reverted"
            log.warning("delivery tx %s reverted; reconciling its orders", tx.tx_hash)
            for rel in releases:
                self._reconcile_release(rel)
            return
        tx.state = "mined"
        delivered = {
            int(ev.args["orderId"]): "0x" + bytes(ev.args["releaseDigest"]).hex()
            for ev in self.escrow.result(receipt).all("OrderDelivered")
        }
        for rel in releases:
            if delivered.get(rel.order_id) == rel.digest:
                rel.state = "confirmed"
                rel.tx_hash = tx.tx_hash
                rel.block_number = tx.block_number
            else:
                self._reconcile_release(rel)

    def _drop(self, session: Session, tx: DeliveryTx, why: str = "it can never mine") -> None:
        tx.state = "dropped"
        log.warning("delivery tx %s dropped: %s; reconciling its orders", tx.tx_hash, why)
        for rel in self._releases_of(session, tx):
            self._reconcile_release(rel)

    def _releases_of(self, session: Session, tx: DeliveryTx) -> list[Release]:
        return list(
            session.execute(
                select(Release).where(Release.delivery_tx_id == tx.id, Release.state == "sent")
            ).scalars()
        )

    def _reconcile_release(self, rel: Release, *, late: bool = False) -> None:
        """Ask the chain what became of one order and move its release accordingly."""
        codec = self.escrow.codec
        logs = get_logs(
            self.escrow,
            rel.paid_block,
            "latest",
            [
                "0x" + codec.topic("OrderDelivered").hex(),
                "0x" + rel.order_id.to_bytes(32, "big").hex(),
            ],
        )
        events = [e for e in (codec.decode_log(raw) for raw in logs) if e is not None]
        if events:
            ev = events[0]
            digest = "0x" + bytes(ev.args["releaseDigest"]).hex()
            if digest == rel.digest:
                rel.state = "confirmed"
                rel.tx_hash = ev.tx_hash
                rel.block_number = ev.block_number
            else:
                rel.state = "superseded"
                rel.error = f"delivered on-chain with another digest {digest} in {ev.tx_hash}"
                log.error("order %s was delivered by someone else", rel.order_id)
            return
        order = decode_order(rel.order_abi)
        still_paid = self.escrow.order_hash(rel.order_id) == order.hash()
        if still_paid and not late:
            rel.state = "prepared"
            rel.delivery_tx_id = None
            return
        rel.state = "abandoned"
        rel.delivery_tx_id = None
        rel.error = (
            "its delivery deadline is too close or passed; the buyer can reclaim the payment"
            if still_paid
            else f"the order left the {OrderState.PAID.name} state without a delivery"
        )
        log.warning("order %s abandoned: %s", rel.order_id, rel.error)


def main() -> None:  # pragma: no cover - exercised by tests/integration as a subprocess
    """Run one agent from the environment (``KAMENG_*``) until SIGTERM or SIGINT."""
    import signal
    import sys

    from backend.config import Settings
    from backend.db import make_engine, session_factory
    from contracts.chain import rpc_chain
    from contracts.client import EscrowClient

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = Settings()
    if settings.rpc_url is None or settings.escrow_address is None:
        raise SystemExit("set KAMENG_RPC_URL and KAMENG_ESCROW_ADDRESS")
    chain = rpc_chain(settings.rpc_url)
    escrow = EscrowClient(chain, settings.escrow_address)
    engine = make_engine(settings.database_url)
    agent = DeliveryAgent(settings, session_factory(engine), escrow, settings.delivery_account())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    agent.recover()
    print("agent ready", flush=True)
    agent.run_forever(stop)


if __name__ == "__main__":
    main()
