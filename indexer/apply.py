"""Decoded escrow events to rows: the raw log, the history tables and the latest-value tables.

One call of `Applier.apply` handles a batch of consecutive block ranges inside the caller's
transaction:

1. decode every log once with `contracts.events.EventCodec` (eth_abi against precomputed types);
2. load, in a few bulk SELECTs, the latest-value rows the batch will touch: each handler is
   registered with `on` next to its code, declaring what it reads (`Reads`), in the spirit of
   Ponder's ``ponder.on`` or a subgraph's mappings, so no list elsewhere must predict it;
3. run each event's handler (`HANDLERS`) in chain order, in memory;
4. write: raw events, history rows and blocks with COPY/executemany, latest-value rows with one
   upsert per table, and (for blocks that are not final yet) the undo journal.

Row ids of the history tables are derived from the log's position,
``block_number << 24 | log_index << 4 | k``, so a re-run, a restart after a kill and a
re-application after a reorg all give the same ids, on SQLite as on PostgreSQL.

Money and order states follow the contract through `contracts.order_rules` (which a property
test checks against the deployed contract): on OrderConfirmed and OrderSettled the platform's
fee (credited to the escrow's own address), the reseller's commission (its cut less its share
of the fee) and the supplier's rest, and the order's bond reservation is freed; a refund returns
the payment; a ruling splits the payment by its shares, pays the slashed bond to the buyer and
charges fee and commission (the cut scaled to the sellers' share) on the sellers' gross share.

Resellers (分站): ResellerPriceSet keeps a listing's reseller price on its row and ShopPriceSet a
reseller's price for a listing in ``shop_prices``; a price set to 0 stays as a row with price 0,
as in the contract's mappings (readers show only nonzero prices).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from contracts import order_rules as rules
from contracts.client import escrow_codec
from contracts.encoding import ZERO_ADDRESS, OrderState
from contracts.layout import escrow_struct
from contracts.storage import encode_tiers
from indexer.bulk import BulkWriter, RowFormat
from indexer.decode import LogDecoder
from indexer.errors import IndexerError
from indexer.state import LATEST_TABLES, TABLES, RowCache, WorkingSet, Write

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.engine import Connection

    from indexer.fetch import FetchedRange
    from indexer.source import Header

log = logging.getLogger("kameng.indexer")

MAX_LOG_INDEX = 1 << 20
ZERO32 = "0x" + "00" * 32

#: Events about one order.
ORDER_EVENTS = rules.ORDER_EVENTS
#: Order events that move money (they need the order's parties' bonds and balances).
MONEY_EVENTS = rules.MONEY_EVENTS


def row_id(block_number: int, log_index: int, k: int = 0) -> int:
    """The deterministic id of the `k`-th row derived from one log.

    Raises:
        IndexerError: the log index does not fit (more than a million logs in a block).
    """
    if log_index >= MAX_LOG_INDEX:
        raise IndexerError(f"log index {log_index} in block {block_number} is beyond 2**20")
    return (block_number << 24) | (log_index << 4) | k


class Event:
    """One decoded log, with where it came from."""

    __slots__ = ("args", "block", "id", "log_index", "name", "ts", "tx")

    def __init__(
        self, name: str, args: dict[str, Any], block: int, tx: str, log_index: int, ts: int
    ) -> None:
        self.name = name
        self.args = args
        self.block = block
        self.tx = tx
        self.log_index = log_index
        self.ts = ts
        self.id = row_id(block, log_index)

    def ref(self) -> dict[str, Any]:
        """The LogRef columns citing this log."""
        return {"block_number": self.block, "tx_hash": self.tx, "log_index": self.log_index}


@dataclass
class Prepared:
    """One batch, applied in memory, with its writes ready to execute.

    Attributes:
        events: Logs applied.
        writes: The bulk writes, as tuples in the database's stored form.
        working_set: The latest-value rows the batch read and changed.
        rows: Rows written, once `Applier.write` ran.
    """

    events: int
    writes: list[Write]
    working_set: WorkingSet
    rows: int = 0

    def publish(self, cache: RowCache) -> None:
        """Hand the batch's rows to the cache (once committed, or when pipelining writes)."""
        self.working_set.publish(cache)


class Applier:
    """Turns one escrow's logs into rows. Stateless between batches; one per indexer."""

    def __init__(self, chain_id: int, escrow: str) -> None:
        """Bind to a chain and an escrow address.

        Args:
            chain_id: The chain id stored with raw events and blocks.
            escrow: The escrow contract's address.
        """
        self.chain_id = chain_id
        self.escrow = to_checksum_address(escrow)
        self.decoder = LogDecoder(escrow_codec())

    def decode(self, ranges: Sequence[FetchedRange]) -> tuple[list[Event], list[tuple[Any, ...]]]:
        """Decode a batch's logs into events and raw-event rows (in `RAW_COLUMNS` order).

        Raises:
            IndexerError: a log of the escrow carries an unknown event.
        """
        events: list[Event] = []
        raw: list[tuple[Any, ...]] = []
        decode = self.decoder.decode
        chain_id = self.chain_id
        address = self.escrow
        for fetched in ranges:
            headers = fetched.headers
            for entry in fetched.logs:
                topics: list[str] = entry["topics"]
                data: str = entry["data"]
                block = int(entry["blockNumber"], 16)
                log_index = int(entry["logIndex"], 16)
                tx = entry["transactionHash"].lower()
                decoded = decode(topics, data)
                if decoded is None:
                    raise IndexerError(
                        f"log {log_index} of block {block} from the escrow has an unknown event "
                        f"(topic {topics[0] if topics else None}); is the ABI current?"
                    )
                name, args = decoded
                ev = Event(name, args, block, tx, log_index, headers[block].timestamp)
                events.append(ev)
                raw.append(
                    (
                        ev.id,
                        chain_id,
                        block,
                        entry["blockHash"].lower(),
                        log_index,
                        tx,
                        address,
                        name,
                        ",".join(topics).lower(),
                        bytes.fromhex(data[2:]),
                    )
                )
        return events, raw

    def apply(
        self,
        conn: Connection,
        ranges: Sequence[FetchedRange],
        *,
        journal: bool,
        extra_headers: Sequence[Header] = (),
        cache: RowCache | None = None,
    ) -> Prepared:
        """Apply a batch of consecutive ranges inside the caller's transaction.

        Args:
            conn: The connection, in a transaction the caller commits with the checkpoint.
            ranges: Consecutive fetched ranges, in order.
            journal: Keep undo pre-images (the blocks may still be reorganised away).
            extra_headers: Headers to store besides those of the ranges (blocks not final).
            cache: Latest-value rows as last committed; after the caller commits, it must call
                `Prepared.publish` (or clear the cache if the commit failed).

        Returns:
            The batch, written.
        """
        writer = BulkWriter(conn)
        prepared = self.prepare(
            conn, ranges, journal=journal, extra_headers=extra_headers, cache=cache, fmt=writer
        )
        self.write(writer, prepared)
        return prepared

    def prepare(
        self,
        conn: Connection,
        ranges: Sequence[FetchedRange],
        *,
        journal: bool,
        fmt: RowFormat,
        extra_headers: Sequence[Header] = (),
        cache: RowCache | None = None,
    ) -> Prepared:
        """Decode and apply a batch in memory; return its writes as tuples, ready to execute.

        Args:
            conn: A connection to read latest-value rows the cache does not hold.
            ranges: Consecutive fetched ranges, in order.
            journal: Keep undo pre-images (the blocks may still be reorganised away).
            fmt: The database's row format.
            extra_headers: Headers to store besides those of the ranges.
            cache: Latest-value rows as of the previous batch.

        Returns:
            The prepared batch.
        """
        events, raw = self.decode(ranges)
        ws = WorkingSet(conn, journal=journal, cache=cache)
        batch = _Batch(self, ws, fmt.uint_format)
        batch.prefetch(events)
        for ev in events:
            handler = HANDLERS.get(ev.name)
            if handler is not None:
                handler.apply(batch, ev)
        writes: list[Write] = [("insert", TABLES["raw_events"], RAW_COLUMNS, raw)]
        for name, table_rows in batch.history.items():
            if table_rows:
                writes.append(("insert", TABLES[name], HISTORY_COLUMNS[name], table_rows))
        writes += ws.collect(fmt)
        writes.append(
            (
                "insert",
                TABLES["blocks"],
                BLOCK_COLUMNS,
                self.block_rows(ranges, events, extra_headers),
            )
        )
        return Prepared(events=len(events), writes=writes, working_set=ws)

    @staticmethod
    def write(writer: BulkWriter, prepared: Prepared) -> None:
        """Execute a prepared batch's writes on the writer's connection (in its transaction)."""
        for kind, table, columns, tuples in prepared.writes:
            if not tuples:
                continue
            if kind == "insert":
                writer.insert_tuples(table, columns, tuples)
            else:
                writer.upsert_tuples(table, columns, tuples)
            prepared.rows += len(tuples)

    def block_rows(
        self, ranges: Sequence[FetchedRange], events: Sequence[Event], extra: Sequence[Header]
    ) -> list[tuple[Any, ...]]:
        """Rows of the headers of the blocks with events, of each range's end and of `extra`."""
        with_events = {ev.block for ev in events}
        headers: dict[int, Header] = {}
        for fetched in ranges:
            headers.update(fetched.headers)
        for h in extra:
            headers[h.number] = h
        return [
            (self.chain_id, n, h.hash, h.parent_hash, h.timestamp, n in with_events)
            for n, h in sorted(headers.items())
        ]


RAW_COLUMNS = (
    "id",
    "chain_id",
    "block_number",
    "block_hash",
    "log_index",
    "tx_hash",
    "address",
    "name",
    "topics",
    "data",
)
BLOCK_COLUMNS = ("chain_id", "number", "hash", "parent_hash", "timestamp", "has_events")
_REF = ("block_number", "tx_hash", "log_index")
#: Column order of the history rows the handlers build as tuples.
HISTORY_COLUMNS = {
    "order_events": ("id", "order_id", "name", "state_after", "timestamp", *_REF),
    "payouts": ("id", "order_id", "account", "token", "amount", "kind", "timestamp", *_REF),
    "deliveries": ("order_id", "release_digest", "timestamp", "dispute_deadline", *_REF),
    "evidence": ("id", "order_id", "party", "uri", "evidence_hash", *_REF),
    "withdrawals": ("id", "account", "token", "to", "amount", "kind", "timestamp", *_REF),
    "batches": ("listing_id", "batch_index", "root", "first_index", "count", *_REF),
}


# ---------------------------------------------------------------- handlers and what they read


class Reads:
    """The latest-value rows a batch's handlers will read, gathered before any of them runs so
    that they are loaded in a few bulk SELECTs. Rows the batch itself creates (a listing created,
    an order paid in the batch) are not asked for."""

    def __init__(self, escrow: str) -> None:
        """Start empty, for the escrow at `escrow`."""
        self.escrow = escrow
        self.keys: dict[str, set[tuple[Any, ...]]] = {table: set() for table in LATEST_TABLES}
        #: OrderPaid events of the batch, by order id: their orders are created, not read.
        self.paid: dict[int, Event] = {}
        self.created_listings: set[int] = set()

    def order(self, order_id: int) -> None:
        """The order's row (unless the batch pays it)."""
        if order_id not in self.paid:
            self.keys["orders"].add((order_id,))

    def listing(self, listing_id: int) -> None:
        """The listing's row (unless the batch creates it)."""
        if listing_id not in self.created_listings:
            self.keys["listings"].add((listing_id,))

    def dispute(self, order_id: int) -> None:
        """The order's dispute."""
        self.keys["disputes"].add((order_id,))

    def bond(self, supplier: str, token: str) -> None:
        """A supplier's bond in a token."""
        self.keys["bonds"].add((supplier, token))

    def balance(self, account: str, token: str) -> None:
        """An account's withdrawable balance in a token."""
        self.keys["balances"].add((account, token))

    def row(self, table: str, key: tuple[Any, ...]) -> None:
        """Any other latest-value row (the platform's tables)."""
        self.keys[table].add(key)


@dataclass(frozen=True)
class Handler:
    """One event's handler and the rows it reads.

    Attributes:
        apply: Turns the event into rows (a `_Batch` method).
        reads: Declares what it reads, from the event alone.
        parties: Declares what it reads of the order's parties once the batch's orders are
            loaded (their bonds and balances), given the order's row (None if the batch pays
            the order; the OrderPaid event is then in `Reads.paid`).
    """

    apply: Callable[[_Batch, Event], None]
    reads: Callable[[Reads, Event], None]
    parties: Callable[[Reads, Event, dict[str, Any] | None], None] | None = None


#: Tables read in the second round: the order's parties' bonds and balances.
SECOND_ROUND = ("bonds", "balances")
#: Every handled event's handler, by event name (filled by `on`).
HANDLERS: dict[str, Handler] = {}
#: The escrow's events kept only in ``raw_events``: roles and admin transfers, pauses, the
#: ERC-792/1497 arbitration standard's copies of what the mirror takes from the escrow's own
#: events, skipped items of a batch, proposed delivery keys (acting only once accepted) and
#: coupon revocations (a coupon's order is an OrderPaid like any other; the escrow keeps the use
#: counts). A test checks every event of the ABI is handled or named here.
UNMIRRORED = frozenset(
    {
        "CouponRevoked",
        "DefaultAdminDelayChangeCanceled",
        "DefaultAdminDelayChangeScheduled",
        "DefaultAdminTransferCanceled",
        "DefaultAdminTransferScheduled",
        "DeliveryKeyProposed",
        "DeliverySkipped",
        "Dispute",
        "Evidence",
        "MetaEvidence",
        "Paused",
        "RoleAdminChanged",
        "RoleGranted",
        "RoleRevoked",
        "Ruling",
        "SettlementSkipped",
        "Unpaused",
    }
)


def _nothing(_reads: Reads, _ev: Event) -> None:
    return None


def on(
    *names: str,
    reads: Callable[[Reads, Event], None] = _nothing,
    parties: Callable[[Reads, Event, dict[str, Any] | None], None] | None = None,
) -> Callable[[Callable[[_Batch, Event], None]], Callable[[_Batch, Event], None]]:
    """Register a `_Batch` method as the handler of the events `names`, with what it reads."""

    def register(fn: Callable[[_Batch, Event], None]) -> Callable[[_Batch, Event], None]:
        for name in names:
            if name in HANDLERS:
                raise ValueError(f"{name} has two handlers")
            HANDLERS[name] = Handler(fn, reads, parties)
        return fn

    return register


def _reads_order(r: Reads, ev: Event) -> None:
    r.order(ev.args["orderId"])


def _reads_paid(r: Reads, ev: Event) -> None:
    oid = ev.args["orderId"]
    r.paid[oid] = ev
    r.listing(oid >> 32)


def _reads_ruled(r: Reads, ev: Event) -> None:
    r.order(ev.args["orderId"])
    r.dispute(ev.args["orderId"])


def _reads_listing(r: Reads, ev: Event) -> None:
    r.listing(ev.args["listingId"])


def _reads_shop_price(r: Reads, ev: Event) -> None:
    r.row("shop_prices", (ev.args["reseller"], ev.args["listingId"]))


def _creates_listing(r: Reads, ev: Event) -> None:
    r.created_listings.add(ev.args["listingId"])


def _reads_bond(r: Reads, ev: Event) -> None:
    r.bond(ev.args["supplier"], ev.args["token"])


def _reads_balance(r: Reads, ev: Event) -> None:
    r.balance(ev.args["account"], ev.args["token"])


def _reads_fee_balance(r: Reads, ev: Event) -> None:
    r.balance(r.escrow, ev.args["token"])


def _reads_config(r: Reads, _ev: Event) -> None:
    r.row("platform_config", (r.escrow,))


def _reads_token(r: Reads, ev: Event) -> None:
    r.row("allowed_tokens", (ev.args["token"],))


def _reads_authorization(r: Reads, ev: Event) -> None:
    r.row("authorizations", (ev.args["supplier"], ev.args["sku"]))


def _reads_delivery_key(r: Reads, ev: Event) -> None:
    r.row("delivery_keys", (ev.args["supplier"], ev.args["key"]))


def _payer_bond(r: Reads, ev: Event, _order: dict[str, Any] | None) -> None:
    r.bond(ev.args["supplier"], ev.args["token"])


def _order_parties(r: Reads, ev: Event, order: dict[str, Any] | None) -> None:
    """The bonds and balances an order's ending moves: supplier, buyer, platform, reseller."""
    if order is None:
        paid = r.paid.get(ev.args["orderId"])
        if paid is None:
            return
        order = paid.args
    supplier, buyer = order["supplier"], order["buyer"]
    token, reseller = order["token"], order["reseller"]
    r.bond(supplier, token)
    for account in (supplier, buyer, r.escrow):
        r.balance(account, token)
    if reseller != ZERO_ADDRESS:
        r.balance(reseller, token)


class _Batch:
    """The in-memory state of one batch: the working set and the history rows to insert."""

    def __init__(self, applier: Applier, ws: WorkingSet, uint_format: Callable[[int], Any]) -> None:
        self.applier = applier
        self.ws = ws
        self.escrow = applier.escrow
        #: Uint256 values in the database's stored form (padded strings on SQLite).
        self.u = uint_format
        self.order_events: list[tuple[Any, ...]] = []
        self.deliveries: list[tuple[Any, ...]] = []
        self.batches: list[tuple[Any, ...]] = []
        self.evidence: list[tuple[Any, ...]] = []
        self.payouts: list[tuple[Any, ...]] = []
        self.withdrawals: list[tuple[Any, ...]] = []
        self.history = {
            "order_events": self.order_events,
            "deliveries": self.deliveries,
            "batches": self.batches,
            "evidence": self.evidence,
            "payouts": self.payouts,
            "withdrawals": self.withdrawals,
        }
        self._warned: set[int] = set()

    # ------------------------------------------------------------ loading

    def prefetch(self, events: Sequence[Event]) -> None:
        """Load every latest-value row the batch's handlers declare they read (`on`), in a few
        bulk SELECTs: first what the events name, then the parties of the orders they move
        money of."""
        ws = self.ws
        wanted = Reads(self.escrow)
        for ev in events:
            handler = HANDLERS.get(ev.name)
            if handler is not None:
                handler.reads(wanted, ev)
        for table, keys in wanted.keys.items():
            if table not in SECOND_ROUND:
                ws.prefetch(table, keys)
        orders = ws.tables["orders"].rows
        for ev in events:
            handler = HANDLERS.get(ev.name)
            if handler is not None and handler.parties is not None:
                handler.parties(wanted, ev, orders.get((ev.args.get("orderId"),)))
        for table in SECOND_ROUND:
            ws.prefetch(table, wanted.keys[table])

    def _order(self, ev: Event) -> dict[str, Any] | None:
        oid = ev.args["orderId"]
        row = self.ws.touch("orders", (oid,), ev.block)
        if row is None and oid not in self._warned:
            self._warned.add(oid)
            log.warning(
                "%s for order %d, which the mirror never saw paid (start block after "
                "its purchase?); only its history is recorded",
                ev.name,
                oid,
            )
        return row

    def _advance(self, ev: Event, order: dict[str, Any]) -> dict[str, Any]:
        """Apply an event's changes to the order's row (`order_rules.order_changes`)."""
        changes = rules.order_changes(ev.name, ev.args, ev.ts, order["dispute_window"])
        if "state" in changes:
            changes["state"] = int(changes["state"])
        order.update(changes, updated_block=ev.block, updated_at=ev.ts)
        return changes

    def _check_event_amounts(
        self, ev: Event, order: dict[str, Any], predicted: dict[str, int]
    ) -> None:
        """Warn when the amounts an event carries differ from what the rules predict from the
        mirror's copy of the order (the mirror holds the order wrong, or the rules are stale)."""
        differ = {k: (ev.args[k], v) for k, v in predicted.items() if ev.args[k] != v}
        if differ:
            log.warning(
                "%s for order %d: the event's amounts differ from the order rules' "
                "(event, rules): %s; the mirror's copy of the order may be wrong",
                ev.name,
                order["order_id"],
                differ,
            )

    def _order_event(self, ev: Event, state: int) -> None:
        self.order_events.append(
            (
                ev.id,
                self.u(ev.args["orderId"]),
                ev.name,
                state,
                ev.ts,
                ev.block,
                ev.tx,
                ev.log_index,
            )
        )

    # ------------------------------------------------------------ money

    def credit(
        self, ev: Event, k: int, account: str, token: str, amount: int, kind: str, order_id: int
    ) -> None:
        """Credit `amount` to `account`'s balance and record the payout (zero credits are not)."""
        if amount == 0:
            return
        self.payouts.append(
            (
                ev.id | k,
                self.u(order_id),
                account,
                token,
                self.u(amount),
                kind,
                ev.ts,
                ev.block,
                ev.tx,
                ev.log_index,
            )
        )
        key = (account, token)
        row = self.ws.touch("balances", key, ev.block)
        if row is None:
            self.ws.put(
                "balances",
                key,
                {"account": account, "token": token, "amount": amount, "updated_block": ev.block},
                ev.block,
            )
        else:
            row["amount"] += amount
            row["updated_block"] = ev.block

    def debit(self, ev: Event, account: str, token: str, amount: int) -> None:
        """Take a withdrawal off `account`'s balance."""
        key = (account, token)
        row = self.ws.touch("balances", key, ev.block)
        if row is None:
            log.warning(
                "withdrawal of %d by %s in block %d without a recorded balance",
                amount,
                account,
                ev.block,
            )
            self.ws.put(
                "balances",
                key,
                {"account": account, "token": token, "amount": 0, "updated_block": ev.block},
                ev.block,
            )
            return
        row["amount"] = max(0, row["amount"] - amount)
        row["updated_block"] = ev.block

    def release_bond(self, ev: Event, order: dict[str, Any], pay: rules.Payout) -> None:
        """Free an ended order's bond reservation, less what was slashed."""
        if pay.bond_unreserved:
            self.bond_move(
                ev,
                order["supplier"],
                order["token"],
                release=pay.bond_unreserved,
                slashed=pay.bond_unreserved - pay.bond_refreed,
            )

    def bond_move(
        self,
        ev: Event,
        supplier: str,
        token: str,
        *,
        reserve: int = 0,
        release: int = 0,
        slashed: int = 0,
    ) -> None:
        """Reserve bond for an order, or release a reservation (less what was slashed)."""
        key = (supplier, token)
        row = self.ws.touch("bonds", key, ev.block)
        if row is None:
            log.warning(
                "bond of %s in %s moved in block %d before any deposit was seen",
                supplier,
                token,
                ev.block,
            )
            return
        if reserve:
            row["free"] = max(0, row["free"] - reserve)
            row["reserved"] += reserve
        if release:
            row["reserved"] = max(0, row["reserved"] - release)
            row["free"] += release - slashed
        row["updated_block"] = ev.block

    # ------------------------------------------------------------ platform

    @on("ConfigUpdated", reads=_reads_config)
    def config_updated(self, ev: Event) -> None:
        """ConfigUpdated: the platform's settings (columns named as the Config struct's fields)."""
        self.ws.put(
            "platform_config",
            (self.escrow,),
            {
                "contract": self.escrow,
                **escrow_struct("Config").as_dict(ev.args["config"]),
                "block_number": ev.block,
            },
            ev.block,
        )

    @on("TokenAllowed", reads=_reads_token)
    def token_allowed(self, ev: Event) -> None:
        """TokenAllowed: the payment-token allow-list."""
        token = ev.args["token"]
        self.ws.put(
            "allowed_tokens",
            (token,),
            {
                "token": token,
                "allowed": ev.args["allowed"],
                "block_number": ev.block,
            },
            ev.block,
        )

    @on("SkuAuthorized", reads=_reads_authorization)
    def sku_authorized(self, ev: Event) -> None:
        """SkuAuthorized: the licensed-product whitelist."""
        supplier, sku = ev.args["supplier"], ev.args["sku"]
        self.ws.put(
            "authorizations",
            (supplier, sku),
            {
                "supplier": supplier,
                "sku": sku,
                "attestation_hash": ev.args["attestationHash"],
                **ev.ref(),
            },
            ev.block,
        )

    @on("DeliveryKeySet", reads=_reads_delivery_key)
    def delivery_key_set(self, ev: Event) -> None:
        """DeliveryKeySet: keys that may deliver a supplier's orders."""
        supplier, key = ev.args["supplier"], ev.args["key"]
        self.ws.put(
            "delivery_keys",
            (supplier, key),
            {
                "supplier": supplier,
                "key": key,
                "enabled": ev.args["enabled"],
                **ev.ref(),
            },
            ev.block,
        )

    @on("BondDeposited", "BondWithdrawn", reads=_reads_bond)
    def bond_changed(self, ev: Event) -> None:
        """BondDeposited / BondWithdrawn: the event carries the bond's new free and reserved."""
        a = ev.args
        self.ws.put(
            "bonds",
            (a["supplier"], a["token"]),
            {
                "supplier": a["supplier"],
                "token": a["token"],
                "free": a["free"],
                "reserved": a["reserved"],
                "updated_block": ev.block,
            },
            ev.block,
        )
        if ev.name == "BondWithdrawn":
            self.withdrawals.append(
                (
                    ev.id,
                    a["supplier"],
                    a["token"],
                    a["to"],
                    self.u(a["amount"]),
                    "bond",
                    ev.ts,
                    ev.block,
                    ev.tx,
                    ev.log_index,
                )
            )

    # ------------------------------------------------------------ listings

    @on("ListingCreated", reads=_creates_listing)
    def listing_created(self, ev: Event) -> None:
        """ListingCreated: a new listing with no stock yet."""
        a = ev.args
        lid = a["listingId"]
        self.ws.create(
            "listings",
            (lid,),
            {
                "listing_id": lid,
                "supplier": a["supplier"],
                "sku": a["sku"],
                "token": a["token"],
                "unit_price": a["unitPrice"],
                "delivery_window": a["deliveryWindow"],
                "dispute_window": a["disputeWindow"],
                "arbitration_window": a["arbitrationWindow"],
                "bond_bps": a["bondBps"],
                "fee_bps": a["feeBps"],
                "metadata_uri": a["metadataURI"],
                "active": True,
                "committed": 0,
                "sold": 0,
                "on_chain_from": 0,
                "reseller_price": 0,
                "tiers": 0,
                "updated_block": ev.block,
                **ev.ref(),
            },
            ev.block,
        )

    @on("ListingUpdated", reads=_reads_listing)
    def listing_updated(self, ev: Event) -> None:
        """ListingUpdated: price, activity and fee terms."""
        a = ev.args
        row = self.ws.touch("listings", (a["listingId"],), ev.block)
        if row is None:
            return
        row.update(
            unit_price=a["unitPrice"],
            active=a["active"],
            fee_bps=a["feeBps"],
            updated_block=ev.block,
        )

    @on("ResellerPriceSet", reads=_reads_listing)
    def reseller_price_set(self, ev: Event) -> None:
        """ResellerPriceSet: the listing is open to resellers at this price a unit (what its
        supplier receives from a shop's sale), or closed to them (0). Shops keep their prices."""
        a = ev.args
        row = self.ws.touch("listings", (a["listingId"],), ev.block)
        if row is not None:
            row["reseller_price"] = a["resellerPrice"]
            row["updated_block"] = ev.block

    @on("TiersSet", reads=_reads_listing)
    def tiers_set(self, ev: Event) -> None:
        """TiersSet: the listing's volume tiers, kept packed as the escrow keeps them (empty
        lists: 0, no tiers). Open orders keep the price they paid."""
        a = ev.args
        row = self.ws.touch("listings", (a["listingId"],), ev.block)
        if row is not None:
            row["tiers"] = encode_tiers(zip(a["minQuantities"], a["discountsBps"], strict=True))
            row["updated_block"] = ev.block

    @on("ShopPriceSet", reads=_reads_shop_price)
    def shop_price_set(self, ev: Event) -> None:
        """ShopPriceSet: a reseller's unit price for a listing in its shop (0: taken out, the
        row kept with price 0)."""
        a = ev.args
        reseller, lid = a["reseller"], a["listingId"]
        self.ws.put(
            "shop_prices",
            (reseller, lid),
            {
                "reseller": reseller,
                "listing_id": lid,
                "price": a["price"],
                "updated_block": ev.block,
            },
            ev.block,
        )

    @on("BatchCommitted", reads=_reads_listing)
    def batch_committed(self, ev: Event) -> None:
        """BatchCommitted: a Merkle root over a range of code indexes; the stock grows."""
        a = ev.args
        self.batches.append(
            (
                a["listingId"],
                a["batchIndex"],
                a["root"],
                a["firstIndex"],
                a["count"],
                ev.block,
                ev.tx,
                ev.log_index,
            )
        )
        row = self.ws.touch("listings", (a["listingId"],), ev.block)
        if row is not None:
            row["committed"] = a["committed"]
            row["updated_block"] = ev.block

    @on("OnChainReleaseRequired", reads=_reads_listing)
    def on_chain_release_required(self, ev: Event) -> None:
        """OnChainReleaseRequired: orders from code index ``onChainFrom - 1`` on are delivered
        on-chain, at most `contracts.order_rules.MAX_ON_CHAIN_QUANTITY` codes each (one way)."""
        a = ev.args
        row = self.ws.touch("listings", (a["listingId"],), ev.block)
        if row is not None:
            row["on_chain_from"] = a["onChainFrom"]
            row["updated_block"] = ev.block

    # ------------------------------------------------------------ orders

    @on("OrderPaid", reads=_reads_paid, parties=_payer_bond)
    def order_paid(self, ev: Event) -> None:
        """OrderPaid: the whole order; stock sold and bond reserved."""
        a = ev.args
        oid = a["orderId"]
        lid, first = oid >> 32, oid & 0xFFFFFFFF
        self.ws.create(
            "orders",
            (oid,),
            {
                "order_id": oid,
                "listing_id": lid,
                "first_index": first,
                "buyer": a["buyer"],
                "supplier": a["supplier"],
                "token": a["token"],
                "reseller": a["reseller"],
                "amount": a["amount"],
                "bond": a["bond"],
                "quantity": a["quantity"],
                "fee_bps": a["feeBps"],
                "reseller_cut": a["resellerCut"],
                "dispute_window": a["disputeWindow"],
                "deadline": a["deadline"],
                "state": int(OrderState.PAID),
                "release_digest": ZERO32,
                "release_on_chain": False,
                "buyer_pubkey": a["buyerPubKey"],
                "paid_block": ev.block,
                "paid_tx": ev.tx,
                "paid_at": ev.ts,
                "updated_block": ev.block,
                "updated_at": ev.ts,
            },
            ev.block,
        )
        listing = self.ws.touch("listings", (lid,), ev.block)
        if listing is not None:
            listing["sold"] = first + a["quantity"]
            listing["updated_block"] = ev.block
        if a["bond"]:
            self.bond_move(ev, a["supplier"], a["token"], reserve=a["bond"])
        self._order_event(ev, int(OrderState.PAID))

    @on("OrderDelivered", reads=_reads_order)
    def order_delivered(self, ev: Event) -> None:
        """OrderDelivered: the release digest; the dispute window opens."""
        order = self._order(ev)
        if order is not None:
            changes = self._advance(ev, order)
            self.deliveries.append(
                (
                    self.u(ev.args["orderId"]),
                    changes["release_digest"],
                    ev.ts,
                    changes["deadline"],
                    ev.block,
                    ev.tx,
                    ev.log_index,
                )
            )
        self._order_event(ev, int(OrderState.DELIVERED))

    @on("ReleasePublished", reads=_reads_order)
    def release_published(self, ev: Event) -> None:
        """ReleasePublished: the sealed release is in the delivery transaction's logs (right
        after its OrderDelivered), so the buyer can read it from the chain without the backend.
        The release itself is not copied: the raw log keeps it, and the chain has it."""
        order = self._order(ev)
        state = int(OrderState.DELIVERED)
        if order is not None:
            order.update(release_on_chain=True, updated_block=ev.block, updated_at=ev.ts)
            state = int(order["state"])
        self._order_event(ev, state)

    @on("OrderConfirmed", "OrderSettled", reads=_reads_order, parties=_order_parties)
    def order_completed(self, ev: Event) -> None:
        """OrderConfirmed / OrderSettled: supplier, platform and reseller paid; bond freed."""
        order = self._order(ev)
        if order is not None:
            self._advance(ev, order)
            pay = rules.complete(rules.Terms.from_row(order))
            token, oid = order["token"], order["order_id"]
            self.credit(ev, 0, order["supplier"], token, pay.to_supplier, "supplier", oid)
            self.credit(ev, 1, self.escrow, token, pay.fee, "fee", oid)
            self.credit(ev, 2, order["reseller"], token, pay.commission, "commission", oid)
            self.release_bond(ev, order, pay)
        self._order_event(ev, int(OrderState.COMPLETED))

    @on("OrderRefunded", reads=_reads_order, parties=_order_parties)
    def order_refunded(self, ev: Event) -> None:
        """OrderRefunded: the buyer gets the whole payment back; bond freed."""
        order = self._order(ev)
        if order is not None:
            self._advance(ev, order)
            pay = rules.refund(rules.Terms.from_row(order))
            self._check_event_amounts(ev, order, {"amount": pay.buyer_amount})
            token, oid = order["token"], order["order_id"]
            self.credit(ev, 3, order["buyer"], token, pay.buyer_amount, "refund", oid)
            self.release_bond(ev, order, pay)
        self._order_event(ev, int(OrderState.REFUNDED))

    # ------------------------------------------------------------ disputes

    @on("DisputeOpened", reads=_reads_order)
    def dispute_opened(self, ev: Event) -> None:
        """DisputeOpened: the arbitration deadline and the buyer's first evidence."""
        a = ev.args
        oid = a["orderId"]
        order = self._order(ev)
        evidence_hash = a["evidenceHash"]
        if order is not None:
            self._advance(ev, order)
            self.evidence.append(
                (
                    ev.id,
                    self.u(oid),
                    order["buyer"],
                    a["evidenceURI"],
                    evidence_hash,
                    ev.block,
                    ev.tx,
                    ev.log_index,
                )
            )
        self.ws.create(
            "disputes",
            (oid,),
            {
                "order_id": oid,
                "opened_at": ev.ts,
                "arbitration_deadline": a["arbitrationDeadline"],
                "evidence_uri": a["evidenceURI"],
                "evidence_hash": evidence_hash,
                "ruled": False,
                "arbiter": None,
                "buyer_bps": None,
                "slash_bps": None,
                "buyer_amount": None,
                "supplier_amount": None,
                "slashed": None,
                "bundle_hash": None,
                "reason": None,
                "ruled_block": None,
                "ruled_tx": None,
                "ruled_at": None,
                **ev.ref(),
            },
            ev.block,
        )
        self._order_event(ev, int(OrderState.DISPUTED))

    @on("EvidenceAdded", reads=_reads_order)
    def evidence_added(self, ev: Event) -> None:
        """EvidenceAdded: more evidence from a party."""
        a = ev.args
        self.evidence.append(
            (
                ev.id,
                self.u(a["orderId"]),
                a["party"],
                a["uri"],
                a["evidenceHash"],
                ev.block,
                ev.tx,
                ev.log_index,
            )
        )
        order = self.ws.get("orders", (a["orderId"],))
        state = int(order["state"]) if order is not None else int(OrderState.DISPUTED)
        self._order_event(ev, state)

    @on("DisputeRuled", reads=_reads_ruled, parties=_order_parties)
    def dispute_ruled(self, ev: Event) -> None:
        """DisputeRuled: the split, the slash and the payouts (arbiter zero: the timeout)."""
        a = ev.args
        oid = a["orderId"]
        timeout = a["arbiter"] == ZERO_ADDRESS
        dispute = self.ws.touch("disputes", (oid,), ev.block)
        if dispute is not None:
            dispute.update(
                ruled=True,
                arbiter=a["arbiter"],
                buyer_bps=a["buyerBps"],
                slash_bps=a["slashBps"],
                buyer_amount=a["buyerAmount"],
                supplier_amount=a["supplierAmount"],
                slashed=a["slashed"],
                bundle_hash=a["bundleHash"],
                reason=a["reason"],
                ruled_block=ev.block,
                ruled_tx=ev.tx,
                ruled_at=ev.ts,
            )
        order = self._order(ev)
        if order is not None:
            self._advance(ev, order)
            pay = rules.resolve(rules.Terms.from_row(order), a["buyerBps"], a["slashBps"])
            self._check_event_amounts(
                ev,
                order,
                {
                    "buyerAmount": pay.buyer_amount,
                    "supplierAmount": pay.to_supplier,
                    "slashed": pay.slashed,
                },
            )
            token = order["token"]
            side = "timeout" if timeout else "ruling"
            self.credit(ev, 0, order["supplier"], token, pay.to_supplier, f"{side}_supplier", oid)
            self.credit(ev, 1, self.escrow, token, pay.fee, "fee", oid)
            self.credit(ev, 2, order["reseller"], token, pay.commission, "commission", oid)
            self.credit(ev, 3, order["buyer"], token, pay.buyer_amount, f"{side}_buyer", oid)
            self.credit(ev, 4, order["buyer"], token, pay.slashed, "slash", oid)
            self.release_bond(ev, order, pay)
        self._order_event(ev, int(OrderState.RESOLVED))

    # ------------------------------------------------------------ withdrawals

    @on("FeesWithdrawn", reads=_reads_fee_balance)
    def fees_withdrawn(self, ev: Event) -> None:
        """FeesWithdrawn: the platform's fees (credited to the escrow's address) paid out."""
        a = ev.args
        self.debit(ev, self.escrow, a["token"], a["amount"])
        self.withdrawals.append(
            (
                ev.id,
                self.escrow,
                a["token"],
                a["to"],
                self.u(a["amount"]),
                "fees",
                ev.ts,
                ev.block,
                ev.tx,
                ev.log_index,
            )
        )

    @on("Withdrawn", reads=_reads_balance)
    def withdrawn(self, ev: Event) -> None:
        """Withdrawn: an account took its whole balance."""
        a = ev.args
        self.debit(ev, a["account"], a["token"], a["amount"])
        self.withdrawals.append(
            (
                ev.id,
                a["account"],
                a["token"],
                a["to"],
                self.u(a["amount"]),
                "balance",
                ev.ts,
                ev.block,
                ev.tx,
                ev.log_index,
            )
        )
