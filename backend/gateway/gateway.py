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
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.exc import IntegrityError
from web3.exceptions import BlockNotFound

from backend.chaintx import CONNECTION_ERRORS, account_lock, is_known, receipt_or_none, rpc_guard
from backend.gateway.models import IN_FLIGHT, ChainTx, TxState
from contracts.client import REVERTS, decode_revert, eip1559_fees
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
    gas_estimate: int | None = None,
) -> ChainTx:
    """Queue an intent unless one with `key` exists; return the row (not committed: the
    caller commits it with the state that caused it).

    `gas_estimate` is the caller's ``eth_estimateGas`` of this very call, made just before:
    the gateway then signs with it (plus its margin) instead of running the call a second time.
    A caller that already ran the call to pick what goes into it (the delivery agent's dry run
    of ``deliver``) passes it, so the call is executed once on the way to the pool, not twice.
    """
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
        gas_limit=None if gas_estimate is None else gas_with_margin(gas_estimate),
    )
    session.add(row)
    session.flush()
    return row


def gas_with_margin(estimate: int) -> int:
    """The gas limit signed for a call estimated at `estimate`."""
    return estimate * 6 // 5 + 20_000


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
        follow: Senders whose stored transactions it broadcasts and follows without holding
            their keys (it cannot sign, replace or re-sign them): a crash recovery of a key
            that is not here, such as the vault's for an upload signed before a restart.
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
        follow: Sequence[str] = (),
    ) -> None:
        """Bind the gateway."""
        self.session_factory = session_factory
        self.chain = chain
        self.w3 = chain.w3
        self.accounts: dict[str, LocalAccount] = {str(a.address): a for a in accounts}
        #: Every sender whose rows this gateway follows: the keys it holds and `follow`.
        self.senders: list[str] = sorted({*self.accounts, *follow})
        self.bump_blocks = bump_blocks
        self.bump_percent = max(bump_percent, 11)
        self.max_fee_cap = max_fee_cap
        self.reorg_depth = reorg_depth
        #: Testing aid: called with ``signed`` (a queued intent's bytes stored), ``replaced`` (a
        #: replacement's bytes stored) or ``sent`` (broadcast, recorded); raising from it
        #: simulates a crash there.
        self.crash_hook: Callable[[str], None] | None = None
        #: The head (number, hash) whose chain the mined rows were last checked against. While
        #: it is still on the chain, nothing mined at or below it can have left.
        self._checked_head: tuple[int, bytes] | None = None
        #: Receipts this gateway read when it found its rows mined (tx hash -> receipt), newest
        #: last, so a caller reads the outcome without asking the node again (`receipt`).
        self._receipts: OrderedDict[str, dict[str, Any]] = OrderedDict()
        #: The rows the current pass is limited to (`run_once`'s `only`).
        self._only: set[int] | None = None

    # ------------------------------------------------------------ fees and nonces

    def _fees(self) -> tuple[int, int]:
        """(max fee, priority fee) per gas for a new transaction, under the cap."""
        return eip1559_fees(self.w3, self.max_fee_cap)

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

    def _ours(self) -> ColumnElement[bool]:
        """The rows this gateway follows (of `senders`, and of `only` when a pass is limited)."""
        ours: ColumnElement[bool] = ChainTx.sender.in_(self.senders)
        if self._only is not None:
            ours = ours & ChainTx.id.in_(sorted(self._only))
        return ours

    def run_once(self, only: Collection[int] | None = None) -> int:
        """One pass: reconcile what was sent, broadcast what is signed, sign what is queued.
        Returns how many intents ended (mined, reverted, failed or dropped) in this pass.

        Args:
            only: Follow only these rows (ids) in this pass: a caller that waits for its own
                intent (the vault's upload) leaves the others to whoever queued them.
        """
        ended = 0
        self._only = None if only is None else set(only)
        try:
            with self.session_factory() as session, rpc_guard("sending transactions"):
                latest = self.w3.eth.get_block("latest")
                head = int(latest["number"])
                ended += self._reconcile(
                    session, head, bytes(latest["hash"]), bytes(latest["parentHash"])
                )
                for row in session.scalars(
                    select(ChainTx)
                    .where(ChainTx.state == TxState.SIGNED, self._ours())
                    .order_by(ChainTx.id)
                ).all():
                    self._broadcast(session, row, head)
                queued = session.scalars(
                    select(ChainTx)
                    .where(
                        ChainTx.state == TxState.QUEUED,
                        ChainTx.sender.in_(list(self.accounts)),
                        self._ours(),
                    )
                    .order_by(ChainTx.id)
                    .limit(50)
                ).all()
                for row in queued:
                    ended += self._sign(session, row, head)
        finally:
            self._only = None
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
            if row.gas_limit is not None:  # the caller estimated this call as it queued it
                gas = int(row.gas_limit)
            else:
                gas = gas_with_margin(int(self.w3.eth.estimate_gas(call)))  # type: ignore[arg-type]
        except CONNECTION_ERRORS:
            raise
        except REVERTS as exc:
            row.state, row.error = TxState.FAILED, _reason(exc)
            session.commit()
            log.warning("%s %s would revert: %s", row.intent, row.key, row.error)
            return 1
        with account_lock(row.sender):
            session.refresh(row)
            if row.state != TxState.QUEUED:  # another gateway of this key signed it meanwhile
                return 0
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

    def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt of a transaction: the one this gateway read when it found the row mined,
        else the node's (None while not mined)."""
        found = self._receipts.get(tx_hash)
        return found if found is not None else receipt_or_none(self.w3, tx_hash)

    def _remember(self, tx_hash: str, receipt: dict[str, Any]) -> None:
        self._receipts[tx_hash] = receipt
        while len(self._receipts) > 64:
            self._receipts.popitem(last=False)

    def _mined_or_taken(self, row: ChainTx) -> tuple[dict[str, Any] | None, bool]:
        """(the receipt of whichever of the row's hashes mined, whether its nonce was used by a
        transaction that is none of its own). The nonce is read before the receipts are looked
        at again, so one of ours mining in between is found, not taken for someone else's."""
        receipt = self._receipt(row)
        if receipt is not None or row.nonce is None:
            return receipt, False
        mined = int(self.w3.eth.get_transaction_count(row.sender, "latest"))  # type: ignore[arg-type]
        if mined <= int(row.nonce):
            return None, False
        receipt = self._receipt(row)
        return receipt, receipt is None

    def _reconcile(self, session: Session, head: int, head_hash: bytes, parent: bytes) -> int:
        ended = 0
        rows = session.scalars(
            select(ChainTx).where(ChainTx.state == TxState.SENT, self._ours()).order_by(ChainTx.id)
        ).all()
        just_mined: set[int] = set()
        for row in rows:
            receipt, taken = self._mined_or_taken(row)
            if taken:
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
                self._remember(row.tx_hash, receipt)
                just_mined.add(row.id)
                ended += 1
                continue
            if row.sent_block is not None and head - row.sent_block >= self.bump_blocks:
                self._replace(session, row, head)
        self._check_reorg(session, head, head_hash, parent, just_mined)
        return ended

    def _still_on_chain(self, number: int, block_hash: bytes, head: int, parent: bytes) -> bool:
        """Whether block `number` with `block_hash` is still an ancestor of the head (`parent`
        is the head's parent hash: no request when the head is its child)."""
        if number == head - 1:
            return parent == block_hash
        if number >= head:
            return False
        try:
            found = self.w3.eth.get_block(number)
        except BlockNotFound:
            return False
        return bytes(found["hash"]) == block_hash

    def _check_reorg(
        self, session: Session, head: int, head_hash: bytes, parent: bytes, just_mined: set[int]
    ) -> None:
        """Send again a mined row that a reorganisation took off the chain.

        Once per new head, and only for the rows the last check did not cover: while the head
        it checked is still an ancestor of the new head, everything mined at or below it is
        still on the chain, so only rows mined above it are looked up (none of those whose
        receipt this pass just read). A new head is the moment a delivery was just mined, so
        this check is on the path to the next one: one receipt per recent row per block cost
        the delivery agent about a block per delivery under load.
        """
        checked = self._checked_head
        if checked is not None and checked[1] == head_hash:
            return
        covered = -1
        if checked is not None and self._still_on_chain(*checked, head, parent):
            covered = checked[0]
        recent = session.scalars(
            select(ChainTx).where(
                ChainTx.state == TxState.MINED,
                ChainTx.block_number >= max(head - self.reorg_depth, covered + 1),
                self._ours(),
            )
        ).all()
        for row in recent:
            if row.id in just_mined:
                continue
            if row.tx_hash and receipt_or_none(self.w3, row.tx_hash) is None:
                log.warning(
                    "%s %s left the chain in a reorganisation: sending it again",
                    row.intent,
                    row.key,
                )
                self._receipts.pop(row.tx_hash, None)
                row.state = TxState.SIGNED
                session.commit()
                self._broadcast(session, row, head)
        self._checked_head = (head, head_hash)

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


__all__ = ["Gateway", "busy_subjects", "enqueue", "gas_with_margin", "outcome"]
