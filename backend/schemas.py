"""The API's pydantic models, in families per resource (`XBase`, `XPublic`, `XCreate`).

Amounts are uint256 values that do not fit in a JavaScript number, so they travel as decimal
strings (`Wei`). Hashes and byte strings are 0x-prefixed lowercase hex; sealed releases and
salts are hex too, so that a client needs nothing but a hex decoder.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from backend.release import Release

#: A uint256 amount in the token's smallest unit, as a decimal string on the wire.
Wei = Annotated[
    int,
    PlainSerializer(lambda v: str(v), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]+$", "description": "uint256, decimal"}),
]
#: An order id (``listingId << 32 | firstIndex``): a uint256, as a decimal string on the wire.
OrderId = Wei
#: A checksummed address.
Address = Annotated[str, Field(pattern="^0x[0-9a-fA-F]{40}$", examples=["0x" + "ab" * 20])]
#: 0x-prefixed hex of 32 bytes.
Bytes32 = Annotated[str, Field(pattern="^0x[0-9a-f]{64}$")]
#: 0x-prefixed hex of any length.
HexBytes = Annotated[str, Field(pattern="^0x([0-9a-f]{2})*$")]


class ApiModel(BaseModel):
    """Base of every API model."""

    model_config = ConfigDict(from_attributes=True)


# ---------------------------------------------------------------- errors


class ErrorPublic(ApiModel):
    """Every 4xx and 5xx answer: what went wrong and what to do about it."""

    detail: str = Field(description="What went wrong and what to do.")
    code: str | None = Field(
        default=None,
        description="A stable machine code (`unknown_listing`, `contract.EscrowWrongState`, "
        "`invalid_request`, `http_404`, ...) for clients that word the error themselves.",
    )


class LineError(ApiModel):
    """One offending line of an uploaded CSV (0 = the whole file)."""

    line: int
    reason: str


class UploadErrorPublic(ErrorPublic):
    """A rejected upload: nothing was stored; the offending lines are listed."""

    errors: list[LineError]
    total: int = Field(description="How many problems were found (the list may be cut short).")


# ---------------------------------------------------------------- health and chain


class LogoutPublic(ApiModel):
    """A signed-out session."""

    address: Address
    everywhere: bool = Field(description="Whether every session of the wallet was revoked.")


class ChainInfoPublic(ApiModel):
    """What a client needs to talk to the chain this API serves."""

    chain_id: int
    escrow: Address
    rpc_url: str | None = Field(
        None,
        description="A JSON-RPC URL for the chain, when this server exposes one (embedded chain).",
    )
    embedded: bool = Field(description="Whether the chain is the in-process eth-tester chain.")
    domain: str = Field(
        "",
        description="This server's domain (host[:port]): what SIWE messages and signed "
        "requests name.",
    )
    settle_batch: int = Field(
        50,
        description="Orders per `settle` transaction, as this server's keeper sends them; "
        'the web\'s "Settle due orders now" uses the same size.',
    )


class HealthPublic(ApiModel):
    """Liveness of the parts the API depends on."""

    status: str = Field(
        description="`ok` when the database and the node answer and every worker runs; "
        "`degraded` (with 503) when a worker has died."
    )
    chain_id: int
    escrow: Address
    head_block: int
    indexed_block: int | None = Field(description="The mirror's checkpoint, if the indexer ran.")
    lag_blocks: int | None
    workers: dict[str, str] = Field(
        default_factory=dict,
        description="Each background worker (`indexer`, `agent`, and under `kameng serve`'s "
        "supervisor `api`): `running`, or `dead: <reason>` (an exception's type, an exit "
        "code or a signal).",
        examples=[{"indexer": "running", "agent": "dead: OperationalError", "api": "running"}],
    )
    api_restarts: int | None = Field(
        None,
        description="How often `kameng serve`'s supervisor restarted the API worker after it "
        "died; null when the API runs in the same process as the workers.",
    )


class HealthDownPublic(HealthPublic):
    """``GET /health`` when a worker has died (503): the same fields, and which worker."""

    detail: str = Field(description="Which workers are dead.")


# ---------------------------------------------------------------- auth


class NoncePublic(ApiModel):
    """A fresh SIWE nonce and the fields the signed message must carry."""

    nonce: str = Field(description="128 random bits as 32 hex digits; single use.")
    issued_at: int
    expires_at: int = Field(description="Unix time after which the nonce is refused.")
    domain: str = Field(description="The `domain` the EIP-4361 message must name.")
    chain_id: int = Field(description="The `Chain ID` the message must name.")
    statement: str


class SiweVerify(ApiModel):
    """A signed EIP-4361 message."""

    message: str = Field(
        max_length=4096,
        description="The EIP-4361 text that was signed: at most 24 lines of at most 160 "
        "characters each (401 otherwise).",
    )
    signature: HexBytes = Field(max_length=1024, description="The EIP-191 signature, 0x-hex.")


class SessionPublic(ApiModel):
    """A session: send `Authorization: Bearer <token>`."""

    token: str
    token_type: str = "bearer"
    address: Address
    expires_at: int


class WalletPublic(ApiModel):
    """The signed-in wallet and what it is on this platform."""

    address: Address
    expires_at: int
    is_arbiter: bool
    listings: int = Field(description="Listings this wallet supplies.")


# ---------------------------------------------------------------- catalog


class SupplierRecord(ApiModel):
    """A supplier's on-chain track record, from the mirror."""

    supplier: Address
    orders_completed: int
    orders_refunded: int = Field(description="Orders refunded after a missed delivery deadline.")
    disputes_total: int
    disputes_lost: int = Field(
        description="Ruled disputes where the buyer got more than half or the bond was slashed."
    )


class VolumeTier(ApiModel):
    """A volume tier (批发价): from `min_quantity` units an order pays `discount_bps` basis points
    less a unit (the contract's `setTiers`)."""

    min_quantity: int = Field(description="The order quantity from which the tier applies.")
    discount_bps: int = Field(
        description="The discount off the unit price, in basis points (500 is 5%)."
    )


class ListingBase(ApiModel):
    """A listing's on-chain terms."""

    listing_id: int
    supplier: Address
    sku: Bytes32
    token: Address = Field(description="Payment token; the zero address is the native coin.")
    unit_price: Wei
    delivery_window: int = Field(description="Seconds the supplier has to deliver.")
    dispute_window: int = Field(description="Seconds the buyer has to dispute after delivery.")
    bond_bps: int
    fee_bps: int
    metadata_uri: str
    active: bool
    reseller_price: Wei = Field(
        0,
        description="The contract's `resellerPrice`: 0 while the listing is closed to resellers "
        "(分站); else what its supplier receives a unit from a sale in a reseller's shop, which "
        "prices it at least this high (`GET /shops/{address}`).",
    )
    tiers: list[VolumeTier] = Field(
        default_factory=list,
        description="The listing's volume tiers, smallest quantity first (at most 3; empty for "
        "none). An order of `quantity` pays the unit price (the listing's, or a shop's) less the "
        "discount of the largest tier it reaches, `price - price * discount_bps // 10000`, and "
        "a shop's sale discounts the supplier's reseller price alike.",
    )
    on_chain_from: int = Field(
        0,
        description="The contract's `onChainFrom`: 0 while the listing delivers off-chain; once "
        "the supplier called `requireOnChainRelease`, 1 + the first code index whose orders are "
        "delivered on-chain (their sealed release published in the delivery transaction). "
        "It never goes back to 0.",
    )


class ListingPublic(ListingBase):
    """A listing in the catalog, with live stock and the supplier's record."""

    committed: int = Field(description="Codes committed on-chain.")
    sold: int
    stock: int = Field(description="Codes left to sell: committed - sold.")
    licensed: bool = Field(
        description="Whether the rights holder's authorization of this supplier for this sku is "
        "still in force. A revoked one hides the listing from the storefront; the escrow still "
        "takes payments until the supplier or an admin closes it."
    )
    supplier_record: SupplierRecord
    on_chain_release: bool = Field(
        False,
        description="Whether new orders are delivered on-chain (`on_chain_from` is set): the "
        "buyer can read the sealed release from the chain even if this platform is gone.",
    )
    max_quantity_per_order: int | None = Field(
        None,
        description="Most codes one order may hold: 32 when `on_chain_release` (`buy` reverts "
        "`EscrowQuantityTooLarge` above it), null when only stock limits it.",
    )


class ShopListingPublic(ListingPublic):
    """A listing in a reseller's shop (分站): the listing's fields and the shop's price."""

    reseller: Address
    shop_price: Wei = Field(
        description="The unit price the shop's buyers pay: `buy` with this reseller charges it "
        "instead of `unit_price`."
    )
    buyable: bool = Field(
        description="Whether `buy` through this shop would be accepted now as far as the mirror "
        "knows: the listing is active, open to resellers (`reseller_price` not 0) and the shop's "
        "price is at least its reseller price. Stock is `stock`."
    )


class ShopSalePublic(ApiModel):
    """An order bought in a reseller's shop, as its reseller's dashboard lists it."""

    order_id: OrderId
    listing_id: int
    token: Address
    quantity: int
    amount: Wei = Field(description="What the buyer paid: the shop's price * quantity.")
    reseller_cut: Wei = Field(description="The shop's margin fixed in the order.")
    commission: Wei = Field(
        description="What the escrow credited the reseller when the order ended (its cut, scaled "
        "by a ruling, less its share of the fee); 0 while the order is open or after a refund."
    )
    state: int
    state_name: str
    paid_at: int
    paid_tx: Bytes32


class ShopNamePublic(ApiModel):
    """A reseller's shop name: its link is ``/#/s/NAME``; the shop itself is the address."""

    name: str = Field(
        description="3 to 32 of a-z, 0-9 and '-', starting and ending with a letter or digit."
    )
    reseller: Address


# ---------------------------------------------------------------- orders


class OrderBase(ApiModel):
    """Every field of the contract's Order struct (only its hash is on-chain)."""

    order_id: OrderId
    buyer: Address
    supplier: Address
    token: Address
    reseller: Address = Field(
        description="The reseller whose shop the order was bought in, or the zero address "
        "(bought at the listing's price)."
    )
    amount: Wei
    bond: Wei
    quantity: int
    fee_bps: int
    reseller_cut: Wei = Field(
        description="The reseller's margin in `amount`, (shop price - reseller price) * "
        "quantity; 0 without a reseller. Its commission is this less its share of the fee."
    )
    dispute_window: int
    deadline: int
    state: int = Field(
        description="OrderState: Paid 1, Delivered 2, Disputed 3, Completed 4, "
        "Refunded 5, Resolved 6."
    )
    release_digest: Bytes32


class OrderPublic(OrderBase):
    """An order as the mirror holds it."""

    listing_id: int
    first_index: int
    state_name: str
    buyer_pubkey: Bytes32
    paid_block: int
    paid_tx: Bytes32
    paid_at: int
    updated_at: int
    release_ready: bool = Field(
        description="Whether its sealed release can be fetched: stored by this backend and "
        "delivered on-chain with that digest (as far as the mirror has indexed)."
    )
    release_on_chain: bool = Field(
        False,
        description="Whether its sealed release was published on-chain (`deliverOnChain`): it "
        "is in the ReleasePublished log of the delivery transaction (the order's "
        "`ReleasePublished` event gives its block, transaction and log index), readable without "
        "this backend.",
    )
    settles_at: int | None = Field(
        None,
        description="For a Delivered order, the end of its dispute window (its `deadline`, Unix "
        "seconds in chain time): unless the buyer confirms or disputes first, anyone (the "
        "platform's keeper, the supplier) may settle it, paying the supplier, once chain time "
        "is past it. Null in every other state.",
    )
    settle_due: bool = Field(
        False,
        description="Whether a Delivered order's dispute window has closed by the chain time the "
        "mirror has reached (`settles_at` is before it), so that it may be settled now.",
    )


class OrderEventPublic(ApiModel):
    """One event of an order's history, citing its log."""

    name: str
    state_after: int
    block_number: int
    tx_hash: Bytes32
    log_index: int
    timestamp: int


class OrderDetailPublic(OrderPublic):
    """An order with its full on-chain history."""

    events: list[OrderEventPublic]


# ---------------------------------------------------------------- releases


class ReleasePublic(Release):
    """A sealed release as the buyer fetches it (`backend.release.Release`), with the order's
    state in the mirror. It is served only once the mirror shows the order delivered with this
    release's digest. Salts travel inside the sealed box with the codes (docs/RELEASE.md); the
    public per-code fields are the commitment, the batch and the Merkle proof."""

    order_state: str = Field(description="The order's state in the mirror, e.g. `delivered`.")


# ---------------------------------------------------------------- supplier


class BondPublic(ApiModel):
    """A supplier's bond in one token."""

    token: Address
    free: Wei
    reserved: Wei


class TokenAmount(ApiModel):
    """An amount of one token."""

    token: Address
    amount: Wei


class SettlementPublic(ApiModel):
    """A credit to the supplier's balance from a finished order, citing its log."""

    order_id: OrderId
    token: Address
    amount: Wei
    kind: str
    block_number: int
    tx_hash: Bytes32
    timestamp: int


class ListingStockPublic(ApiModel):
    """Stock of one of the supplier's listings."""

    listing_id: int
    sku: Bytes32
    unit_price: Wei
    active: bool
    committed: int
    sold: int
    stock: int
    low_stock: bool = Field(description="Stock at or below the low-stock threshold.")
    vault_codes: int | None = Field(None, description="Codes held in this backend's vault.")
    on_chain_from: int = Field(0, description="As `ListingPublic.on_chain_from`.")
    on_chain_release: bool = Field(
        False, description="Whether new orders are delivered on-chain (at most 32 codes each)."
    )


class SettlementSummaryPublic(ApiModel):
    """A supplier's money from delivered orders in one token: settled, due now, and still in
    the dispute window. Each amount is what the supplier is paid: the payments less the
    platform's fee and the reseller's commission."""

    token: Address
    settled: Wei = Field(
        description="Paid to the supplier for Completed orders (confirmed by the buyer, or "
        "settled after the dispute window)."
    )
    settled_orders: int
    due: Wei = Field(
        description="Owed for Delivered orders whose dispute window has closed (deadline before "
        "the chain time): anyone, the supplier or the platform's keeper, may settle them now."
    )
    due_orders: int
    in_window: Wei = Field(
        description="Owed for Delivered orders still in their dispute window (the buyer may "
        "still confirm or dispute)."
    )
    in_window_orders: int
    next_due_at: int | None = Field(
        description="The earliest deadline among the orders in their window (Unix seconds, chain "
        "time): that order becomes due once chain time passes it. Null when none is waiting."
    )


class SupplierDashboardPublic(ApiModel):
    """Everything a supplier's dashboard shows, from the mirror."""

    supplier: Address
    bonds: list[BondPublic]
    in_escrow: list[TokenAmount] = Field(description="Payments held for open orders, per token.")
    balances: list[TokenAmount] = Field(description="Withdrawable balance, per token.")
    earned: list[TokenAmount] = Field(description="All settlements credited, per token.")
    orders_by_state: dict[str, int]
    listings: list[ListingStockPublic]
    recent_settlements: list[SettlementPublic]
    low_stock_threshold: int
    settlement: list[SettlementSummaryPublic] = Field(
        description="Per token: settled, due now, and in the dispute window (amounts, counts, "
        "the next order to become due). Settle the due ones with `settle` on-chain; "
        "`GET /supplier/orders/due` gives their Order structs.",
    )
    chain_time: int | None = Field(
        description="The chain time the due amounts are reckoned at: the timestamp of the newest "
        "block the mirror has applied (null before the first).",
    )


class CommitCallPublic(ApiModel):
    """The exact ``commitBatch`` transaction a supplier's wallet signs and sends."""

    chain_id: int
    from_address: Address = Field(description="The supplier: the only account it works from.")
    to: Address = Field(description="The escrow.")
    data: HexBytes = Field(description="commitBatch(listingId, root, count, firstIndex).")


class UploadPublic(ApiModel):
    """An accepted upload: stored, encrypted and committed on-chain in one batch."""

    upload_id: int
    listing_id: int
    count: int
    first_index: int
    batch_index: int | None = Field(description="The on-chain batch index once committed.")
    root: Bytes32
    tx_hash: Bytes32 | None = Field(description="The commitBatch transaction.")
    state: str = Field(
        description="`committed`; `pending` when the chain has not confirmed it yet (the vault "
        "recovers it); `awaiting` while the supplier's own wallet has to sign `commit_call` "
        "(then report it at POST /supplier/uploads/{upload_id}/submitted); `abandoned` (codes "
        "deleted, never on sale)."
    )
    commit_call: CommitCallPublic | None = Field(
        default=None,
        description="For an `awaiting` upload: the transaction to sign. Its codes go on sale "
        "once its batch is on-chain, never before.",
    )
    error: str | None = Field(default=None, description="Why an upload was abandoned.")


class SubmittedUpload(ApiModel):
    """The supplier's report of its commitBatch transaction."""

    tx_hash: Bytes32 | None = Field(
        default=None, description="The transaction its wallet sent (none: check the chain)."
    )


# ---------------------------------------------------------------- arbiter


class EvidencePublic(ApiModel):
    """Evidence submitted to a dispute, citing its log."""

    party: Address
    uri: str
    evidence_hash: Bytes32
    block_number: int
    tx_hash: Bytes32


class DisputePublic(ApiModel):
    """A dispute in the arbiter's queue."""

    order_id: OrderId
    listing_id: int
    buyer: Address
    supplier: Address
    token: Address
    amount: Wei
    bond: Wei
    opened_at: int
    arbitration_deadline: int
    seconds_left: int = Field(description="Until the arbitration deadline; negative when overdue.")
    overdue: bool
    ruled: bool
    evidence_uri: str
    evidence_hash: Bytes32
    opened_tx: Bytes32
    opened_block: int
    evidence: list[EvidencePublic]
    buyer_bps: int | None = None
    slash_bps: int | None = None
    arbiter: Address | None = None


# ---------------------------------------------------------------- operator


class TokenVolumePublic(ApiModel):
    """Orders paid in one token: all time and in the last day of chain time."""

    token: Address
    orders: int
    amount: Wei
    orders_24h: int
    amount_24h: Wei


class BondWatchPublic(ApiModel):
    """A supplier whose free bond is low against what its orders hold."""

    supplier: Address
    token: Address
    free: Wei
    reserved: Wei


class OverviewPublic(ApiModel):
    """The marketplace at a glance, for the operator."""

    chain_time: int | None
    head_block: int | None = Field(description="The node's latest block.")
    mirror_block: int | None = Field(description="The indexer's checkpoint.")
    indexer_lag_blocks: int | None
    volume: list[TokenVolumePublic]
    orders_by_state: dict[str, int]
    open_disputes: int
    oldest_dispute_age_s: int | None
    disputes_past_deadline: int = Field(
        description="Unruled disputes past their arbitration deadline (the keeper resolves them)."
    )
    undelivered_orders: int = Field(description="Paid, not delivered yet.")
    oldest_undelivered_age_s: int | None = Field(
        description="How long the oldest paid order has waited for delivery: the delivery "
        "agent's lag."
    )
    low_bonds: list[BondWatchPublic] = Field(
        description="Suppliers whose free bond is under a tenth of what their orders reserve."
    )
    dead_notifications: int
    stuck_transactions: int = Field(
        description="Transactions sent by the platform's keys and not mined for over 10 blocks."
    )
    allowed_tokens: list[Address] = Field(
        default_factory=list, description="ERC-20 tokens the escrow accepts now (from the mirror)."
    )


class AuditEntryPublic(ApiModel):
    """One operator action on the escrow, read from the mirror."""

    name: str = Field(description="The event: RoleGranted, SkuAuthorized, ConfigUpdated, ...")
    actor: Address | None = Field(description="Who sent the transaction.")
    args: dict[str, str]
    block_number: int
    timestamp: int | None
    tx_hash: Bytes32


# ---------------------------------------------------------------- licences


class AttestationPublic(ApiModel):
    """A kept attestation document, without its bytes."""

    hash: Bytes32 = Field(description="keccak256 of the document; what the licence cites.")
    name: str = Field(description="The file name it was published with.")
    media_type: str = Field(description="What it is served as.")
    size: int = Field(description="Bytes.")
    supplier: Address = Field(description="A supplier whose licence cites it.")
    sku: Bytes32 = Field(description="The product of that licence.")
    kept_at: datetime
