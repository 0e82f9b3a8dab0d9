"""The delivery agent: every paid order gets its codes sealed, stored and its digest on-chain.

Public API (stable):

- `DeliveryAgent(settings, session_factory, escrow, delivery_account, *, source=None)`
  with `recover()`, `run_once() -> list[int]`, `run_forever(stop)` and `drain()`.
- `python -m backend.delivery.agent` runs one agent from `Settings` (used by the SIGKILL test).

The agent decides WHAT to deliver; the chain gateway (`backend.gateway`) sends it. State machine
(each arrow is one database transaction):

    paid order --(seal, store)--> Release prepared
    prepared --(dry run, queue a ``deliver`` intent + mark sent)--> sent
    the gateway: queued -> signed (bytes stored) -> sent -> mined | reverted, replacing a
        transaction stuck in the pool by the same call with the same nonce at higher fees, and
        sending it again after a reorg
    sent --(intent mined, receipt has OrderDelivered(orderId, our digest))--> confirmed
    sent --(intent reverted, failed, dropped, or mined without our event)--> ask the chain:
        OrderDelivered with our digest -> confirmed
        OrderDelivered with another digest -> superseded
        still Paid (hash unchanged) -> prepared again (the SAME sealed bytes are re-posted)
        closed without delivery -> abandoned

A release is sealed exactly once (its row is the idempotency key), and the intent is queued in
the same transaction that marks its releases sent; the gateway stores signed bytes before it
broadcasts them. A process killed at any point restarts into one of these states, re-sends
stored bytes, and never seals or delivers an order twice. At most one ``deliver`` intent is
unfinished at a time, so batches go out about once per block.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from backend.chaintx import (
    CONNECTION_ERRORS,
    encode_call,
    read_listing,
    rpc_guard,
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
from backend.gateway.gateway import Gateway, enqueue
from backend.gateway.models import FINAL, ChainTx, TxState
from backend.models import Code, Release, Upload
from backend.release import CodeToSeal, published_from_manifest, seal_release
from backend.vault.crypto import CodeCipher, EncryptedRecord
from contracts.client import REVERTS, decode_revert
from contracts.encoding import Order, OrderState
from contracts.errors import ContractRevertError, KamengError
from contracts.merkle import MerkleTree

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session

    from backend.config import Settings
    from contracts.client import EscrowClient

log = logging.getLogger(__name__)

#: The gateway's intents the agent queues.
DELIVER = "deliver"
ACCEPT_KEY = "accept-delivery-key"
#: States of an intent that is not over yet.
UNFINISHED = (TxState.QUEUED, TxState.SIGNED, TxState.SENT)
#: The gateway's crash points, under the names the agent's crash points had before it sent
#: through the gateway (tests hold or kill the agent at them).
GATEWAY_POINTS = {"signed": "tx-stored", "sent": "broadcast", "replaced": "bump-stored"}
#: Failures of a pass that are outages, not bugs: retried with a growing pause.
RETRYABLE: tuple[type[BaseException], ...] = (ChainUnavailable, SQLAlchemyError, *CONNECTION_ERRORS)
#: Errors whose first argument is the order that broke a whole batch.
ORDER_ERRORS = frozenset({"EscrowUnknownOrder", "EscrowWrongState", "EscrowDeadlinePassed"})
#: Most bytes of sealed releases and proofs one ``deliverOnChain`` carries (its calldata stays
#: far under the 128 KiB a node's transaction pool accepts; one order of 32 codes of 256 bytes
#: with deep proofs is about 40 KiB, and a batch always takes at least one order).
ON_CHAIN_BATCH_BYTES = 64 * 1024
#: How long a listing read as delivering off-chain is believed before it is read again (a
#: stale answer costs nothing: the dry run's EscrowReleaseRequired makes the agent read again).
ON_CHAIN_RECHECK_SECONDS = 30.0


def _fresh_key(session: Session, prefix: str) -> str:
    """An idempotency key no intent has yet: `prefix`, then ``prefix:1``, ``prefix:2``... (a
    batch whose intent failed goes out again under a new key)."""
    key, n = f"{prefix}:0", 0
    while session.scalar(select(ChainTx.id).where(ChainTx.key == key)) is not None:
        n += 1
        key = f"{prefix}:{n}"
    return key


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

    It sends through its own `Gateway`, which holds the delivery key and is the only thing that
    signs with it. Only one agent may use a delivery key at a time.

    Attributes:
        gateway: The chain gateway that sends the agent's intents.
        crash_hook: Testing aid: called with the name of each crash point, raising from it
            simulates a crash there. The agent's own: ``prepared`` (releases sealed and
            stored), ``enqueued`` (a ``deliver`` intent queued, its releases sent),
            ``reconciled`` (an intent's outcome applied to its releases). The gateway's, under
            the agent's names: ``tx-stored`` (signed bytes stored, not broadcast),
            ``broadcast`` (broadcast and recorded), ``bump-stored`` (a replacement's bytes
            stored, not broadcast).
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
        self.gateway = Gateway(
            session_factory,
            escrow.chain,
            [delivery_account],
            bump_blocks=settings.delivery_bump_blocks,
            bump_percent=settings.delivery_bump_percent,
            max_fee_cap=settings.delivery_max_gas_price,
            # The embedded chain never reorganises: no mined intent needs re-checking there.
            reorg_depth=0 if escrow.chain.kind == "embedded" else settings.reorg_depth,
        )
        self.gateway.crash_hook = self._gateway_crash
        self._trees: OrderedDict[int, MerkleTree] = OrderedDict()
        self._allowed: dict[str, tuple[bool, float]] = {}
        self._missing_logged: set[int] = set()
        #: Whether the wait for the base fee to fall under the cap was already reported.
        self._cap_warned = False
        #: Orders left alone in the last pass (codes missing, or not our supplier's key).
        self._skipped: set[int] = set()
        self._recovered = False
        #: Pending uploads first seen by this agent (upload id -> monotonic time).
        self._pending_seen: dict[int, float] = {}
        self._uploads_checked = 0.0
        self._retention_swept = float("-inf")
        #: Per listing: its onChainFrom, and when a 0 was read (monotonic) or None once set.
        self._on_chain_from: dict[int, tuple[int, float | None]] = {}

    # ------------------------------------------------------------ public

    def recover(self) -> None:
        """Bind the database to the escrow, let the gateway re-send what was signed and follow
        what was sent, and apply every finished intent to its releases.

        A ``deliver`` intent queued before a crash and never signed loses the gas estimate of
        its dry run: the chain may have moved on since, so the gateway estimates it again (and
        marks it failed, its orders reconciled, if it would now revert) instead of signing a
        transaction that would revert on-chain.

        Raises:
            ChainUnavailable: the node did not answer.
        """
        with self.session_factory() as session, rpc_guard("recovering deliveries"):
            bind_escrow(session, self.chain_id, self.escrow.address)
            session.execute(
                update(ChainTx)
                .where(
                    ChainTx.intent == DELIVER,
                    ChainTx.sender == self.account.address,
                    ChainTx.state == TxState.QUEUED,
                )
                .values(gas_limit=None)
            )
            session.commit()
        self.gateway.run_once()
        with self.session_factory() as session, rpc_guard("recovering deliveries"):
            self._apply_outcomes(session)
        self._recovered = True

    def run_once(self) -> list[int]:
        """One pass: follow what was sent, seal new paid orders, queue a batch and send it.

        Returns:
            The order ids whose sealed releases were stored in this pass (the API serves each
            once its delivery is on-chain).

        Raises:
            ChainUnavailable: the node did not answer (nothing is lost; call again).
        """
        if not self._recovered:
            self.recover()
        self.gateway.run_once()
        with self.session_factory() as session, rpc_guard("delivering"):
            self._apply_outcomes(session)
            self._finish_stale_uploads(session)
            self.source.poll(session)
            latest = self.w3.eth.get_block("latest")
            now = int(latest["timestamp"])
            prepared = self._prepare(session, now)
            queued = self._post(session, now, int(latest.get("baseFeePerGas", 0) or 0))
            self._sweep_retention(session, now)
        if queued:
            self.gateway.run_once()  # sign and broadcast it now, not a pass later
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
        """Finish uploads the chain has decided, so their stock becomes deliverable (at most
        once per ``min(5 s, commit_wait_seconds)``; may commit `session`).

        - ``awaiting`` uploads, whose commitBatch the supplier signs with its own wallet: marked
          committed once their batch is on-chain, or abandoned once another batch took their
          indexes (`settle_signed_uploads`). The supplier reporting its transaction is not
          needed: a browser closed after signing still puts the codes on sale.
        - ``pending`` uploads (a crash, or a slow block), once they have been pending longer
          than an upload waits by itself. Without the supplier's key it can only confirm or
          abandon them (`recover_pending`).
        """
        now = time.monotonic()
        if now - self._uploads_checked < min(5.0, self.settings.commit_wait_seconds):
            return
        self._uploads_checked = now
        from backend.vault.service import SIGNED_BY_SUPPLIER, settle_signed_uploads

        awaiting = session.execute(
            select(Upload.id).where(Upload.state.in_(SIGNED_BY_SUPPLIER)).limit(1)
        ).first()
        if awaiting is not None:
            for result in settle_signed_uploads(session, self.escrow):
                if result.state not in SIGNED_BY_SUPPLIER:
                    log.info("upload %s signed by its supplier: %s", result.upload_id, result.state)
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

    def _gateway_crash(self, point: str) -> None:
        self._crash(GATEWAY_POINTS.get(point, point))

    # ------------------------------------------------------------ sealing

    def _may_deliver_for(self, session: Session, supplier: str) -> bool:
        """Whether our key may deliver `supplier`'s orders (cached for a minute). May commit
        `session` (accepting a proposal of our key goes through the gateway)."""
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
            allowed = self._accept_proposal(session, supplier)
            if not allowed and self._accepting(session, supplier):
                return False  # not mined yet: asked again next pass
        self._allowed[supplier] = (allowed, time.monotonic())
        if not allowed:
            log.warning(
                "supplier %s has not named %s as a delivery key; its orders are skipped",
                supplier,
                self.account.address,
            )
        return allowed

    def _accept_key_prefix(self, supplier: str) -> str:
        return f"{ACCEPT_KEY}:{supplier}:{self.account.address}"

    def _accepting(self, session: Session, supplier: str) -> bool:
        """Whether an acceptance of `supplier`'s proposal is queued or in flight."""
        found = session.scalar(
            select(ChainTx.id)
            .where(
                ChainTx.key.startswith(self._accept_key_prefix(supplier) + ":"),
                ChainTx.state.in_(UNFINISHED),
            )
            .limit(1)
        )
        return found is not None

    def _accept_proposal(self, session: Session, supplier: str) -> bool:
        """Accept `supplier`'s proposal of our key through the gateway (queued unless one is
        under way, then sent); whether our key is the supplier's delivery key now. A refusal
        is logged, not raised."""
        session.commit()  # keep what this pass did; the gateway works in its own sessions
        prefix = self._accept_key_prefix(supplier)
        if not self._accepting(session, supplier):
            key = _fresh_key(session, prefix)
            enqueue(
                session,
                intent=ACCEPT_KEY,
                key=key,
                sender=self.account.address,
                to=self.escrow.address,
                data=encode_call("acceptDeliveryKey", [supplier]),
            )
            session.commit()
            log.info("accepting supplier %s's delivery-key proposal (%s)", supplier, key)
        self.gateway.run_once()
        if self.escrow.call("isDeliveryKey", supplier, self.account.address):
            log.info("accepted supplier %s's delivery-key proposal", supplier)
            return True
        session.expire_all()
        last = session.scalar(
            select(ChainTx)
            .where(ChainTx.key.startswith(prefix + ":"))
            .order_by(ChainTx.id.desc())
            .limit(1)
        )
        if last is not None and last.state in FINAL:
            log.warning(
                "could not accept supplier %s's delivery-key proposal: %s",
                supplier,
                last.error or last.state,
            )
        return False

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

    @staticmethod
    def _ranges(orders: Sequence[PaidOrder]) -> dict[int, list[tuple[int, int]]]:
        """The code indexes `orders` take, per listing, as merged half-open ranges (orders of
        a listing are paid for consecutive indexes, so a pass's orders make few ranges)."""
        spans: dict[int, list[tuple[int, int]]] = {}
        for paid in orders:
            spans.setdefault(paid.listing_id, []).append(
                (paid.first_index, paid.first_index + paid.order.quantity)
            )
        merged: dict[int, list[tuple[int, int]]] = {}
        for listing, pairs in spans.items():
            out: list[tuple[int, int]] = []
            for lo, hi in sorted(pairs):
                if out and lo <= out[-1][1]:
                    out[-1] = (out[-1][0], max(out[-1][1], hi))
                else:
                    out.append((lo, hi))
            merged[listing] = out
        return merged

    @staticmethod
    def _in_ranges(listing: int, ranges: list[tuple[int, int]]) -> Any:
        """The SQL condition: a code of `listing` whose index is in one of `ranges`."""
        return and_(
            Code.listing_id == listing,
            or_(*(and_(Code.code_index >= lo, Code.code_index < hi) for lo, hi in ranges)),
        )

    def _codes_for(
        self, session: Session, orders: Sequence[PaidOrder]
    ) -> dict[int, list[CodeToSeal] | None]:
        """Decrypt each order's codes with their proofs (one query per listing for all of
        them); None for an order whose codes the vault lacks."""
        rows_by_index: dict[tuple[int, int], tuple[Code, Upload]] = {}
        for listing, ranges in self._ranges(orders).items():
            for code_row, upload in session.execute(
                select(Code, Upload)
                .join(Upload, Upload.id == Code.upload_id)
                .where(self._in_ranges(listing, ranges), Upload.state == "committed")
            ).all():
                rows_by_index[(listing, int(code_row.code_index))] = (code_row, upload)
        found: dict[int, list[CodeToSeal] | None] = {}
        for paid in orders:
            q = paid.order.quantity
            indexes = range(paid.first_index, paid.first_index + q)
            rows = [
                rows_by_index[(paid.listing_id, i)]
                for i in indexes
                if (paid.listing_id, i) in rows_by_index
            ]
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
                found[paid.order_id] = None
                continue
            found[paid.order_id] = [self._to_seal(session, paid, c, u) for c, u in rows]
        return found

    def _to_seal(
        self, session: Session, paid: PaidOrder, code_row: Code, upload: Upload
    ) -> CodeToSeal:
        """One stored code, decrypted, with its proof."""
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
        return CodeToSeal(
            index=index,
            code=code,
            salt=salt,
            commitment=bytes(code_row.commitment),
            batch_index=upload.batch_index,
            batch_root=upload.root,
            proof=tree.proof(index - upload.first_index),
            expires_at=int(expires.timestamp()) if expires is not None else 0,
        )

    def _prepare(self, session: Session, now: int) -> list[int]:
        """Seal every new paid order and store the releases in one transaction."""
        candidates = self.source.candidates(
            session,
            min_deadline=now + self.settings.delivery_deadline_margin,
            limit=self.settings.delivery_batch_size * 2,
        )
        sealed: list[PaidOrder] = []
        ours: list[PaidOrder] = []
        for paid in candidates:
            if paid.order_id in self._missing_logged:
                continue
            if not self._may_deliver_for(session, paid.order.supplier):
                self._skipped.add(paid.order_id)
                continue
            ours.append(paid)
        found = self._codes_for(session, ours) if ours else {}
        for paid in ours:
            codes = found[paid.order_id]
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
            sealed.append(paid)
        # The sealed orders' codes are released in the same transaction, a statement per
        # listing, not one per order.
        for listing, ranges in self._ranges(sealed).items():
            session.execute(
                update(Code).where(self._in_ranges(listing, ranges)).values(state="released")
            )
        if sealed:
            session.commit()
            log.info("sealed %d releases", len(sealed))
            self._crash("prepared")
        return [paid.order_id for paid in sealed]

    # ------------------------------------------------------------ posting

    def _in_flight(self, session: Session) -> ChainTx | None:
        """Our unfinished ``deliver`` intent, if any."""
        return session.scalar(
            select(ChainTx)
            .where(
                ChainTx.intent == DELIVER,
                ChainTx.sender == self.account.address,
                ChainTx.state.in_(UNFINISHED),
            )
            .limit(1)
        )

    def _post(self, session: Session, now: int, base_fee: int) -> bool:
        """Queue one ``deliver`` intent for the oldest prepared releases, unless one is
        unfinished; whether one was queued."""
        if self._in_flight(session) is not None:
            self._over_cap(base_fee)  # says why an in-flight delivery may wait
            return False
        releases = list(
            session.execute(
                select(Release)
                .where(Release.state == "prepared")
                .order_by(Release.paid_block, Release.order_id)
                .limit(self.settings.delivery_batch_size)
            ).scalars()
        )
        if not releases:
            return False
        margin = self.settings.delivery_deadline_margin
        suppliers = {rel.supplier for rel in releases}
        allowed = {s for s in suppliers if self._may_deliver_for(session, s)}
        batch: list[tuple[Release, Order]] = []
        for rel in releases:
            order = decode_order(rel.order_abi)
            if order.deadline <= now + margin:
                self._reconcile_release(rel, late=True)
            elif rel.supplier in allowed:
                batch.append((rel, order))
        if batch and self._over_cap(base_fee):
            batch = []  # they wait, prepared, for the base fee to fall under the cap
        batch = self._one_mode(batch)
        batch, gas = self._acceptable(session, batch)
        if not batch:
            session.commit()
            return False
        ids = [rel.order_id for rel, _ in batch]
        digest = hashlib.sha256(
            ",".join(f"{rel.order_id}:{rel.digest}" for rel, _ in batch).encode()
        ).hexdigest()[:32]
        row = enqueue(
            session,
            intent=DELIVER,
            key=_fresh_key(session, f"{DELIVER}:{digest}"),
            sender=self.account.address,
            to=self.escrow.address,
            data=self._deliver_data(batch, self._publishes(batch[0][0])),
            subjects=ids,
            gas_estimate=gas,
        )
        for rel, _ in batch:
            rel.state = "sent"
            rel.chain_tx_id = row.id
        session.commit()
        self._crash("enqueued")
        log.info("queued %d deliveries (%s)", len(batch), row.key)
        return True

    def _publishes(self, rel: Release) -> bool:
        """Whether the order's listing requires its release on-chain (``deliverOnChain``): its
        first index is at or past the listing's ``onChainFrom - 1``. A set ``onChainFrom``
        never changes, so it is read once; a 0 is read again after ON_CHAIN_RECHECK_SECONDS."""
        start, read_at = self._on_chain_from.get(rel.listing_id, (0, None))
        if start == 0 and (
            read_at is None or time.monotonic() - read_at > ON_CHAIN_RECHECK_SECONDS
        ):
            start = read_listing(self.escrow, rel.listing_id).on_chain_from
            self._on_chain_from[rel.listing_id] = (start, None if start else time.monotonic())
        return start != 0 and rel.first_index >= start - 1

    def _one_mode(self, batch: list[tuple[Release, Order]]) -> list[tuple[Release, Order]]:
        """The batch's releases that go out the way its oldest goes (``deliver`` or
        ``deliverOnChain``: one transaction cannot mix them); an on-chain batch is cut at
        ON_CHAIN_BATCH_BYTES. The rest wait, prepared, for the next pass."""
        if not batch:
            return batch
        on_chain = self._publishes(batch[0][0])
        same = [(rel, order) for rel, order in batch if self._publishes(rel) == on_chain]
        if not on_chain:
            return same
        out: list[tuple[Release, Order]] = []
        size = 0
        for rel, order in same:
            size += len(rel.sealed) + len(rel.manifest)
            if out and size > ON_CHAIN_BATCH_BYTES:
                break
            out.append((rel, order))
        return out

    @staticmethod
    def _deliver_data(batch: Sequence[tuple[Release, Order]], on_chain: bool) -> bytes:
        """The calldata of one ``deliver`` (or ``deliverOnChain``, with each sealed release
        and its proofs) of the batch's releases."""
        args: list[Any] = [
            [rel.order_id for rel, _ in batch],
            [order.as_tuple() for _, order in batch],
            [bytes.fromhex(rel.digest[2:]) for rel, _ in batch],
        ]
        if not on_chain:
            return encode_call("deliver", args)
        published = [published_from_manifest(rel.sealed, rel.manifest) for rel, _ in batch]
        return encode_call("deliverOnChain", [*args, [p.as_tuple() for p in published]])

    def _acceptable(
        self, session: Session, batch: list[tuple[Release, Order]]
    ) -> tuple[list[tuple[Release, Order]], int]:
        """The batch less the orders the chain would reject, found by a dry run of ``deliver``
        (each such order is reconciled with the chain), and the gas the dry run estimated.

        The dry run is ``eth_estimateGas``, which reverts as ``eth_call`` does; the gateway
        signs with its estimate rather than running the same call again (a delivery of a full
        batch is the most expensive call the agent makes, and it is on the path from one block
        to the next delivery).

        Raises:
            DeliveryError: the call would revert for a reason no single order explains.
        """
        while batch:
            call: Any = {
                "from": self.account.address,
                "to": self.escrow.address,
                "data": "0x" + self._deliver_data(batch, self._publishes(batch[0][0])).hex(),
            }
            try:
                return batch, int(self.w3.eth.estimate_gas(call))
            except CONNECTION_ERRORS:
                raise
            except REVERTS as raw:
                exc = decode_revert(raw)
                if isinstance(exc, ContractRevertError) and exc.name == "EscrowReleaseRequired":
                    # The listing turned on-chain since it was last read: read it again next
                    # pass; its orders wait, prepared, and go out with deliverOnChain.
                    listing = int(exc.args_[0]) >> 32  # type: ignore[call-overload]
                    self._on_chain_from.pop(listing, None)
                    batch = [(r, o) for r, o in batch if r.listing_id != listing]
                    continue
                culprit = (
                    self._culprit(session, exc, [rel for rel, _ in batch])
                    if isinstance(exc, ContractRevertError)
                    else None
                )
                if culprit is None:
                    raise DeliveryError(
                        f"deliver would revert ({exc}) for a batch of {len(batch)}; check the "
                        "delivery key and the escrow"
                    ) from raw
                assert isinstance(exc, ContractRevertError)
                log.warning("order %s rejected by the chain (%s)", culprit.order_id, exc.name)
                self._reconcile_release(culprit)
                batch = [(r, o) for r, o in batch if r is not culprit]
        return batch, 0

    def _over_cap(self, base_fee: int) -> bool:
        """Whether the base fee is at or above `delivery_max_gas_price`, so that no delivery
        the gateway may sign can mine; says so once until it falls under again."""
        cap = self.settings.delivery_max_gas_price
        if cap is None or base_fee < cap:
            self._cap_warned = False
            return False
        if not self._cap_warned:
            self._cap_warned = True
            log.warning(
                "deliveries wait: the base fee is %d wei/gas, at or above "
                "KAMENG_DELIVERY_MAX_GAS_PRICE (%d)",
                base_fee,
                cap,
            )
        return True

    def _culprit(
        self, session: Session, exc: ContractRevertError, batch: Sequence[Release]
    ) -> Release | None:
        if exc.name in ORDER_ERRORS and exc.args_:
            oid = int(exc.args_[0])  # type: ignore[call-overload]
            for rel in batch:
                if rel.order_id == oid:
                    return rel
        if exc.name == "EscrowWrongCaller":
            self._allowed.clear()
            for rel in batch:
                if not self._may_deliver_for(session, rel.supplier):
                    return rel
        return None

    # ------------------------------------------------------------ reconciling

    def _apply_outcomes(self, session: Session) -> None:
        """Settle the releases of every finished ``deliver`` intent from its outcome."""
        rows = session.scalars(
            select(ChainTx)
            .where(
                ChainTx.id.in_(
                    select(Release.chain_tx_id).where(Release.state == "sent").distinct()
                ),
                ChainTx.state.in_(FINAL),
            )
            .order_by(ChainTx.id)
        ).all()
        for row in rows:
            releases = list(
                session.scalars(
                    select(Release).where(Release.chain_tx_id == row.id, Release.state == "sent")
                )
            )
            delivered: dict[int, str] = {}
            if row.state == TxState.MINED:
                assert row.tx_hash is not None
                receipt = self.gateway.receipt(row.tx_hash)
                if receipt is None:
                    continue  # a reorganisation took it out: the gateway sends it again
                delivered = {
                    int(ev.args["orderId"]): "0x" + bytes(ev.args["releaseDigest"]).hex()
                    for ev in self.escrow.result(receipt).all("OrderDelivered")
                }
            else:
                log.warning(
                    "delivery %s %s (%s); reconciling its orders",
                    row.key,
                    row.state,
                    row.error or "no reason given",
                )
            for rel in releases:
                if delivered.get(rel.order_id) == rel.digest:
                    rel.state = "confirmed"
                    rel.tx_hash = row.tx_hash
                    rel.block_number = row.block_number
                else:
                    self._reconcile_release(rel)
            session.commit()
            self._crash("reconciled")

    def _reconcile_release(self, rel: Release, *, late: bool = False) -> None:
        """Ask the chain what became of one order and move its release accordingly."""
        codec = self.escrow.codec
        logs = self.escrow.logs(
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
            rel.chain_tx_id = None
            return
        rel.state = "abandoned"
        rel.chain_tx_id = None
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
