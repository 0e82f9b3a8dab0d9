"""The gateway: enqueue intents, then sign, store, broadcast, replace and reconcile them.

Crash safety: a row moves ``queued → signed`` in one commit that stores the signed bytes and the
nonce, and only then is anything broadcast; after a crash, ``signed`` and ``sent`` rows are
broadcast again byte for byte (a node that already has them says so), so an intent mines at
most once. Replacements keep the nonce and raise both fees by `bump_percent`; every hash an
intent was sent under is kept, and whichever of them mines is the outcome. A row none of whose
hashes mined while its nonce went to another transaction of the sender (someone else used the
key) is ``dropped``: it can never mine, and its caller decides what to do about it.

A gateway follows only the rows of the accounts it holds, so two gateways in one process (the
keeper's, the delivery agent's) never write the same row.

One nonce allocator: the next nonce of a sender is the larger of the node's pending count and
one past the highest nonce this table holds in flight for it, taken under a per-sender lock
(a process lock, plus a transaction-scoped advisory lock on PostgreSQL).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.exc import IntegrityError

from backend.chaintx import CONNECTION_ERRORS, account_lock, is_known, receipt_or_none, rpc_guard
from backend.gateway.models import IN_FLIGHT, ChainTx, TxState
from contracts.client import REVERTS, decode_revert
from contracts.errors import ContractRevertError

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import Session

    from contracts.chain import Chain

log = logging.getLogger(__name__)


def enqueue(
    session: Session,
    *,
    intent: str,
    key: str,
    sender: str,
    to: str,
    data: bytes,
    value: int = 0,
    subjects: Sequence[int] = (),
) -> ChainTx:
    """Queue an intent unless one with `key` exists; return the row (not committed: the
    caller commits it with the state that caused it)."""
    found = session.scalar(select(ChainTx).where(ChainTx.key == key))
    if found is not None:
        return found
    row = ChainTx(
        intent=intent,
        key=key,
        subjects=",".join(str(s) for s in subjects),
        sender=sender,
        to_address=to,
        data=data,
        value=value,
        state=TxState.QUEUED,
        hashes="",
    )
    session.add(row)
    session.flush()
    return row


def outcome(session: Session, key: str) -> ChainTx | None:
    """The row of an intent, by its key."""
    return session.scalar(select(ChainTx).where(ChainTx.key == key))


def busy_subjects(session: Session, intent: str, *, mined_after: int | None = None) -> set[int]:
    """The subjects (order ids) of an intent's rows that are not over yet.

    Args:
        session: A database session.
        intent: The intent, e.g. ``"settle"``.
        mined_after: Also count rows mined after this block: a caller that reads state from
            the mirror passes the mirror's block, so that work already done on-chain but not
            yet mirrored is not queued a second time (None: only unfinished rows).
    """
    unfinished: ColumnElement[bool] = ChainTx.state.in_([TxState.QUEUED, *IN_FLIGHT])
    if mined_after is not None:
        unfinished = or_(
            unfinished,
            (ChainTx.state == TxState.MINED) & (ChainTx.block_number > mined_after),
        )
    rows = session.scalars(select(ChainTx.subjects).where(ChainTx.intent == intent, unfinished))
    return {int(s) for row in rows for s in row.split(",") if s}


def _reason(exc: BaseException) -> str:
    decoded = decode_revert(exc)
    if isinstance(decoded, ContractRevertError):
        return f"{decoded.name}{tuple(decoded.args[1:]) if len(decoded.args) > 1 else ''}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


class Gateway:
    """Signs, sends and follows the queued intents of the accounts it holds.

    Args:
        session_factory: Makes database sessions.
        chain: The chain connection.
        accounts: The keys it signs with, by address; intents of other senders wait.
        bump_blocks: Blocks a sent transaction may wait before it is replaced.
        bump_percent: How much a replacement raises both fees (at least 10, as nodes require).
        max_fee_cap: The most it pays per gas (None: no cap).
        reorg_depth: How deep a mined transaction is re-checked for a reorganisation.
    """

    def __init__(
        self,
        session_factory: Callable[[], Session],
        chain: Chain,
        accounts: Sequence[LocalAccount],
        *,
        bump_blocks: int = 3,
        bump_percent: int = 25,
        max_fee_cap: int | None = None,
        reorg_depth: int = 12,
    ) -> None:
        """Bind the gateway."""
        self.session_factory = session_factory
        self.chain = chain
        self.w3 = chain.w3
        self.accounts: dict[str, LocalAccount] = {str(a.address): a for a in accounts}
        self.bump_blocks = bump_blocks
        self.bump_percent = max(bump_percent, 11)
        self.max_fee_cap = max_fee_cap
        self.reorg_depth = reorg_depth
        #: Testing aid: called with ``signed`` (a queued intent's bytes stored), ``replaced`` (a
        #: replacement's bytes stored) or ``sent`` (broadcast, recorded); raising from it
        #: simulates a crash there.
        self.crash_hook: Callable[[str], None] | None = None
        #: The head whose chain the mined rows were last checked against (a reorganisation
        #: changes the head's hash, so while it stands still nothing needs checking again).
        self._checked_head: bytes | None = None

    # ------------------------------------------------------------ fees and nonces

    def _fees(self) -> tuple[int, int]:
        """(max fee, priority fee) per gas for a new transaction: twice the latest base fee
        plus a 1 gwei tip, under the cap."""
        block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0)
        priority = 1_000_000_000
        cap = 2 * base + priority
        if self.max_fee_cap is not None:
            cap = min(cap, self.max_fee_cap)
        return cap, min(priority, cap)

    def _next_nonce(self, session: Session, sender: str) -> int:
        if session.get_bind().dialect.name == "postgresql":
            lock_id = int.from_bytes(hashlib.sha256(sender.lower().encode()).digest()[:7], "big")
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
        pending = int(self.w3.eth.get_transaction_count(sender, "pending"))  # type: ignore[arg-type]
        held = session.scalar(
            select(func.max(ChainTx.nonce)).where(
                ChainTx.sender == sender, ChainTx.state.in_(list(IN_FLIGHT))
            )
        )
        return max(pending, -1 if held is None else int(held) + 1)

    def _signed(
        self, account: LocalAccount, row: ChainTx, nonce: int, gas: int, max_fee: int, tip: int
    ) -> Any:
        """An EIP-1559 transaction carrying `row`, signed."""
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain.chain_id,
            "to": row.to_address,
            "data": "0x" + bytes(row.data).hex(),
            "value": int(row.value),
            "gas": gas,
            "nonce": nonce,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": tip,
        }
        return account.sign_transaction(tx)

    # ------------------------------------------------------------ a pass

    def run_once(self) -> int:
        """One pass: reconcile what was sent, broadcast what is signed, sign what is queued.
        Returns how many intents ended (mined, reverted, failed or dropped) in this pass."""
        ended = 0
        ours = ChainTx.sender.in_(list(self.accounts))
        with self.session_factory() as session, rpc_guard("sending transactions"):
            latest = self.w3.eth.get_block("latest")
            head = int(latest["number"])
            ended += self._reconcile(session, head, bytes(latest["hash"]))
            for row in session.scalars(
                select(ChainTx).where(ChainTx.state == TxState.SIGNED, ours).order_by(ChainTx.id)
            ).all():
                self._broadcast(session, row, head)
            queued = session.scalars(
                select(ChainTx)
                .where(ChainTx.state == TxState.QUEUED, ours)
                .order_by(ChainTx.id)
                .limit(50)
            ).all()
            for row in queued:
                ended += self._sign(session, row, head)
        return ended

    def _sign(self, session: Session, row: ChainTx, head: int) -> int:
        account = self.accounts[row.sender]
        call: dict[str, Any] = {
            "from": row.sender,
            "to": row.to_address,
            "data": "0x" + bytes(row.data).hex(),
            "value": int(row.value),
        }
        try:
            gas = int(self.w3.eth.estimate_gas(call)) * 6 // 5 + 20_000  # type: ignore[arg-type]
        except CONNECTION_ERRORS:
            raise
        except REVERTS as exc:
            row.state, row.error = TxState.FAILED, _reason(exc)
            session.commit()
            log.warning("%s %s would revert: %s", row.intent, row.key, row.error)
            return 1
        with account_lock(row.sender):
            max_fee, priority = self._fees()
            nonce = self._next_nonce(session, row.sender)
            signed = self._signed(account, row, nonce, gas, max_fee, priority)
            tx_hash = "0x" + bytes(signed.hash).hex()
            row.nonce, row.gas_limit, row.max_fee, row.priority_fee = nonce, gas, max_fee, priority
            row.raw_tx, row.tx_hash = bytes(signed.raw_transaction), tx_hash
            row.hashes = tx_hash
            row.state = TxState.SIGNED
            session.commit()  # stored before anything leaves
        self._crash("signed")
        self._broadcast(session, row, head)
        return 0

    def _broadcast(self, session: Session, row: ChainTx, head: int) -> None:
        assert row.raw_tx is not None
        try:
            self.w3.eth.send_raw_transaction(row.raw_tx)
        except CONNECTION_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - nodes word "already known" many ways
            if not self._known(row):
                log.warning("broadcast of %s refused: %s", row.tx_hash, exc)
        row.state, row.sent_block = TxState.SENT, head
        session.commit()
        self._crash("sent")

    def _known(self, row: ChainTx) -> bool:
        for h in row.hashes.split(","):
            if h and receipt_or_none(self.w3, h) is not None:
                return True
        return row.tx_hash is not None and is_known(self.w3, row.tx_hash)

    def _receipt(self, row: ChainTx) -> dict[str, Any] | None:
        """The receipt of whichever of the row's hashes mined, if one did."""
        return next(
            (r for h in row.hashes.split(",") if h and (r := receipt_or_none(self.w3, h))),
            None,
        )

    def _nonce_taken(self, row: ChainTx) -> bool:
        """Whether the row's nonce was used by a transaction that is none of its own (read
        before its receipts are looked at again, so one of ours mining in between is seen)."""
        if row.nonce is None:
            return False
        mined = int(self.w3.eth.get_transaction_count(row.sender, "latest"))  # type: ignore[arg-type]
        return mined > int(row.nonce) and self._receipt(row) is None

    def _reconcile(self, session: Session, head: int, head_hash: bytes) -> int:
        ended = 0
        ours = ChainTx.sender.in_(list(self.accounts))
        rows = session.scalars(
            select(ChainTx).where(ChainTx.state == TxState.SENT, ours).order_by(ChainTx.id)
        ).all()
        for row in rows:
            receipt = self._receipt(row)
            if receipt is None and self._nonce_taken(row):
                row.state = TxState.DROPPED
                row.error = f"nonce {row.nonce} was used by another transaction of the sender"
                session.commit()
                log.warning("%s %s can never mine: %s", row.intent, row.key, row.error)
                ended += 1
                continue
            if receipt is not None:
                row.tx_hash = "0x" + bytes(receipt["transactionHash"]).hex()
                row.block_number = int(receipt["blockNumber"])
                if int(receipt["status"]) == 1:
                    row.state = TxState.MINED
                else:
                    row.state, row.error = TxState.REVERTED, self._mined_reason(row)
                session.commit()
                ended += 1
                continue
            if row.sent_block is not None and head - row.sent_block >= self.bump_blocks:
                self._replace(session, row, head)
        # A reorganisation can drop a mined transaction: send it again.
        if head_hash == self._checked_head:
            return ended
        recent = session.scalars(
            select(ChainTx).where(
                ChainTx.state == TxState.MINED,
                ChainTx.block_number >= head - self.reorg_depth,
                ours,
            )
        ).all()
        for row in recent:
            if row.tx_hash and receipt_or_none(self.w3, row.tx_hash) is None:
                log.warning(
                    "%s %s left the chain in a reorganisation: sending it again",
                    row.intent,
                    row.key,
                )
                row.state = TxState.SIGNED
                session.commit()
                self._broadcast(session, row, head)
        self._checked_head = head_hash
        return ended

    def _mined_reason(self, row: ChainTx) -> str:
        call: Any = {"from": row.sender, "to": row.to_address, "data": bytes(row.data)}
        try:
            self.w3.eth.call(call, max((row.block_number or 1) - 1, 0))
        except REVERTS as exc:
            return _reason(exc)
        except Exception as exc:  # noqa: BLE001 - the replay is best effort
            return f"reverted when mined ({type(exc).__name__} on replay)"
        return "reverted when mined"

    def _replace(self, session: Session, row: ChainTx, head: int) -> None:
        account = self.accounts.get(row.sender)
        if account is None or row.nonce is None or row.max_fee is None or row.priority_fee is None:
            return
        # At least `bump_percent` above the last (nodes refuse a smaller replacement), and at
        # least what a new transaction would pay now (a base fee that jumped evicts the old one).
        fresh_fee, fresh_tip = self._fees()
        max_fee = max(int(row.max_fee) * (100 + self.bump_percent) // 100 + 1, fresh_fee)
        priority = max(int(row.priority_fee) * (100 + self.bump_percent) // 100 + 1, fresh_tip)
        if self.max_fee_cap is not None and max_fee > self.max_fee_cap:
            if int(row.max_fee) >= self.max_fee_cap:
                # Already at the cap: it waits there. Its bytes are sent again, since a node
                # that evicted or refused them (a base fee above the cap) takes them once the
                # base fee falls.
                self._broadcast(session, row, head)
                return
            max_fee = self.max_fee_cap
        assert row.gas_limit is not None
        signed = self._signed(
            account, row, row.nonce, row.gas_limit, max_fee, min(priority, max_fee)
        )
        tx_hash = "0x" + bytes(signed.hash).hex()
        row.max_fee, row.priority_fee = max_fee, min(priority, max_fee)
        row.raw_tx, row.tx_hash = bytes(signed.raw_transaction), tx_hash
        row.hashes = f"{row.hashes},{tx_hash}"
        row.state = TxState.SIGNED
        session.commit()  # stored before anything leaves
        self._crash("replaced")
        log.info(
            "%s %s stuck for %d blocks: replaced at %d wei/gas",
            row.intent,
            row.key,
            head - (head if row.sent_block is None else row.sent_block),
            max_fee,
        )
        self._broadcast(session, row, head)

    def _crash(self, point: str) -> None:
        if self.crash_hook is not None:
            self.crash_hook(point)

    def run_forever(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Run passes until `stop` is set."""
        while not stop.is_set():
            try:
                self.run_once()
            except IntegrityError:
                log.exception("gateway pass failed on the database; retrying")
            except Exception:  # the node or the database hiccuped: log, pause, go on
                log.exception("gateway pass failed; retrying")
            stop.wait(poll_s)


__all__ = ["Gateway", "busy_subjects", "enqueue", "outcome"]
