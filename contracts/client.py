"""The Python client of the CodeEscrow contract: deploy, transact, read, decode.

Transactions are signed locally with the caller's key and nonces are tracked here, which is
several times faster than letting the node sign. A revert raises `ContractRevertError` with
the custom error's name and arguments, decoded from the estimate before anything is sent.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from eth_tester.exceptions import TransactionFailed
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from contracts.artifacts import load
from contracts.compiler import CONTRACTS
from contracts.encoding import (
    ORDER_LAYOUT,
    ZERO_ADDRESS,
    ZERO_DIGEST,
    Order,
    OrderState,
    PublishedRelease,
    order_id,
)
from contracts.errors import ChainError
from contracts.events import DecodedLog, EventCodec
from contracts.layout import escrow_struct
from contracts.order_rules import order_changes
from contracts.storage import VIEWS, EscrowStorage, extsload_reader

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.types import BlockIdentifier

    from contracts.chain import Chain
    from contracts.coupons import Coupon

#: What a revert looks like on the way out of web3 (nodes) or eth-tester (embedded chain).
REVERTS = (ContractCustomError, ContractLogicError, ContractPanicError, TransactionFailed)


@cache
def error_codec() -> EventCodec:
    """A codec that knows the errors and events of every contract we build."""
    merged: list[dict[str, Any]] = []
    for name in CONTRACTS:
        merged.extend(load(name).abi)
    return EventCodec(merged)


@cache
def escrow_codec() -> EventCodec:
    """The codec of the CodeEscrow ABI."""
    return EventCodec(load("CodeEscrow").abi)


@dataclass(frozen=True)
class EscrowConfig:
    """The contract's Config struct (fields in the ABI's order, checked at import)."""

    fee_recipient: str
    fee_bps: int = 200
    min_bond_bps: int = 1000
    arbitration_window: int = 7 * 24 * 3600
    min_delivery_window: int = 60
    max_delivery_window: int = 30 * 24 * 3600
    min_dispute_window: int = 3600
    max_dispute_window: int = 90 * 24 * 3600

    def as_tuple(self) -> tuple[object, ...]:
        """As the ABI takes it."""
        return astuple(self)


escrow_struct("Config").check_dataclass(EscrowConfig)


#: The slice of the ERC-20 interface the escrow's users need.
ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "function",
        "name": "symbol",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
    {
        "type": "function",
        "name": "decimals",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
]


@dataclass(frozen=True)
class TxResult:
    """A mined transaction and its decoded escrow events."""

    tx_hash: str
    block_number: int
    gas_used: int
    events: list[DecodedLog]

    def event(self, name: str) -> DecodedLog:
        """The first event called `name`.

        Raises:
            KeyError: there is none.
        """
        for e in self.events:
            if e.name == name:
                return e
        raise KeyError(f"no {name} event in {self.tx_hash}")

    def all(self, name: str) -> list[DecodedLog]:
        """Every event called `name`."""
        return [e for e in self.events if e.name == name]


def _revert_data(exc: BaseException) -> bytes | None:
    """Find revert data in the many shapes web3, eth-tester and nodes give it."""
    cause = exc.__cause__
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, bytes) and len(arg) >= 4:
            return arg
        if isinstance(arg, str) and "b'" in arg or isinstance(arg, str) and 'b"' in arg:
            start = arg.find("b'") if "b'" in arg else arg.find('b"')
            try:
                value = ast.literal_eval(arg[start:])
            except (ValueError, SyntaxError):
                value = None
            if isinstance(value, bytes):
                return value
    for linked in (cause, exc.__context__):
        if linked is not None and linked is not exc:
            found = _revert_data(linked)
            if found is not None:
                return found
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    if isinstance(data, bytes | HexBytes):
        return bytes(data)
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, str) and arg.startswith("0x") and len(arg) >= 10:
            try:
                return bytes.fromhex(arg[2:])
            except ValueError:
                continue
    return None


def decode_revert(exc: BaseException) -> BaseException:
    """Turn a web3 revert into a `ContractRevertError` when the error is one of ours."""
    data = _revert_data(exc)
    if data is not None:
        decoded = error_codec().decode_error(data)
        if decoded is not None:
            return decoded
    return exc


#: The tip (priority fee per gas) every kameng transaction offers.
PRIORITY_FEE = 1_000_000_000


def eip1559_fees(w3: Any, cap: int | None = None) -> tuple[int, int]:
    """(max fee, priority fee) per gas for a new EIP-1559 transaction: twice the latest base fee
    plus a 1 gwei tip (room for the base fee to double before the transaction is priced out),
    at most `cap`."""
    block = w3.eth.get_block("latest")
    base = int(block.get("baseFeePerGas", 0) or 0)
    max_fee = 2 * base + PRIORITY_FEE
    if cap is not None:
        max_fee = min(max_fee, cap)
    return max_fee, min(PRIORITY_FEE, max_fee)


class Transactor:
    """Signs and sends a client's own transactions (a CLI user's wallet, a test's accounts):
    EIP-1559, nonces tracked per account. The backend's services send through the chain gateway
    (`backend.gateway`) instead, which stores what it signs before broadcasting it."""

    def __init__(self, chain: Chain) -> None:
        """Bind to a chain."""
        self.chain = chain
        self.w3 = chain.w3
        self._nonces: dict[str, int] = {}
        self._chain_id = chain.chain_id
        #: When set, transactions skip gas estimation and use this limit. Tests set it to send
        #: a transaction at an exact timestamp, where estimating against the latest block would
        #: see a different time than the transaction's own block.
        self.fixed_gas: int | None = None
        self._lock = threading.RLock()

    def _nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = self.w3.eth.get_transaction_count(address, "pending")  # type: ignore[arg-type]
        return self._nonces[address]

    def reset_nonce(self, address: str) -> None:
        """Forget the cached nonce of `address` (after a failed send)."""
        self._nonces.pop(address, None)

    def gas_price(self) -> int:
        """A legacy gas price that covers the current base fee with room to spare (for callers
        that sign legacy transactions themselves, such as the benchmarks' load generators)."""
        block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0)
        return max(2 * base + 1_000_000_000, 1_000_000_000)

    def send(
        self,
        account: LocalAccount,
        call: Any,
        *,
        value: int = 0,
        gas: int | None = None,
        wait: bool = True,
    ) -> str | dict[str, Any]:
        """Estimate, sign and send a contract call; return the receipt, or the hash if not waiting.

        Raises:
            ContractRevertError: the call would revert with a known custom error.
            ChainError: the node refused it, or it reverted when mined.
        """
        tx: dict[str, Any] = {"from": account.address, "value": value, "chainId": self._chain_id}
        if gas is None:
            gas = self.fixed_gas
        if gas is None:
            try:
                gas = int(call.estimate_gas(tx)) * 6 // 5 + 10_000
            except REVERTS as exc:
                raise decode_revert(exc) from exc
        with self._lock:  # one nonce per transaction, even with several threads per account
            max_fee, tip = eip1559_fees(self.w3)
            tx.update(
                {
                    "gas": gas,
                    "nonce": self._nonce(account.address),
                    "maxFeePerGas": max_fee,
                    "maxPriorityFeePerGas": tip,
                }
            )
            built = call.build_transaction(tx)
            signed = account.sign_transaction(built)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except REVERTS as exc:
                self.reset_nonce(account.address)
                raise decode_revert(exc) from exc
            except ValueError as exc:
                self.reset_nonce(account.address)
                raise ChainError(f"node refused the transaction: {exc}") from exc
            self._nonces[account.address] += 1
        if not wait:
            return "0x" + bytes(tx_hash).hex()
        return self.wait(tx_hash)

    def wait(self, tx_hash: Any, timeout: float = 120) -> dict[str, Any]:
        """Wait for a receipt; raise if the transaction reverted.

        Raises:
            ChainError: it reverted or never mined.
        """
        receipt = self.w3.eth.wait_for_transaction_receipt(
            tx_hash, timeout=timeout, poll_latency=0.02
        )
        if receipt["status"] != 1:
            raise self._mined_revert(tx_hash, int(receipt["blockNumber"]))
        return dict(receipt)

    def _mined_revert(self, tx_hash: Any, block_number: int) -> BaseException:
        """Replay a transaction that reverted when mined, to name its error."""
        plain = ChainError(f"transaction {HexBytes(tx_hash).hex()} reverted when mined")
        try:
            tx = self.w3.eth.get_transaction(tx_hash)
            call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"]}
            self.w3.eth.call(call, block_identifier=max(block_number - 1, 0))  # type: ignore[arg-type]
        except REVERTS as exc:
            decoded = decode_revert(exc)
            return decoded if decoded is not exc else plain
        except Exception:  # noqa: BLE001 - the replay is best effort; the plain error stands
            return plain
        return plain


def shared_transactor(chain: Chain) -> Transactor:
    """The one Transactor of a chain, so every client signing for an account shares its nonce."""
    if chain.transactor is None:
        chain.transactor = Transactor(chain)
    transactor: Transactor = chain.transactor
    return transactor


class EscrowClient:
    """Typed access to one deployed CodeEscrow."""

    def __init__(self, chain: Chain, address: str, transactor: Transactor | None = None) -> None:
        """Bind to a deployed escrow."""
        self.chain = chain
        self.w3 = chain.w3
        self.address = to_checksum_address(address)
        self.contract: Contract = self.w3.eth.contract(
            address=self.address, abi=load("CodeEscrow").abi
        )
        self.codec = escrow_codec()
        self.tx = transactor or shared_transactor(chain)

    # ------------------------------------------------------------ deployment

    @classmethod
    def deploy(cls, chain: Chain, admin: LocalAccount, config: EscrowConfig) -> EscrowClient:
        """Deploy a new escrow with `admin` holding every role."""
        address, _ = deploy_contract(chain, admin, "CodeEscrow", admin.address, config.as_tuple())
        return cls(chain, address)

    # ------------------------------------------------------------ plumbing

    def _send(
        self, account: LocalAccount, fn: str, *args: Any, value: int = 0, gas: int | None = None
    ) -> TxResult:
        call = getattr(self.contract.functions, fn)(*args)
        receipt = self.tx.send(account, call, value=value, gas=gas)
        assert isinstance(receipt, dict)
        return self.result(receipt)

    def result(self, receipt: dict[str, Any]) -> TxResult:
        """Decode a receipt's escrow events."""
        events = []
        for log in receipt["logs"]:
            if to_checksum_address(log["address"]) != self.address:
                continue
            decoded = self.codec.decode_log(dict(log))
            if decoded is not None:
                events.append(decoded)
        return TxResult(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            events=events,
        )

    def logs(
        self, from_block: int, to_block: int | str, topics: list[Any] | None = None
    ) -> list[dict[str, Any]]:
        """The escrow's raw logs over a block range (`contracts.chain.get_logs`)."""
        from contracts.chain import get_logs

        return get_logs(self.chain, self.address, from_block, to_block, topics)

    @cached_property
    def storage(self) -> EscrowStorage:
        """The escrow's state, decoded from its storage through ``extsload`` (at ``latest``)."""
        return EscrowStorage(extsload_reader(self.contract))

    def storage_at(self, block_identifier: BlockIdentifier) -> EscrowStorage:
        """The escrow's state as of one block (for reads that must agree with a block)."""
        return EscrowStorage(extsload_reader(self.contract, block_identifier), self.storage.layout)

    def call(self, fn: str, *args: Any) -> Any:
        """Call a view function, or answer one of the views the escrow's storage replaced
        (`contracts.storage.VIEWS`, such as ``orderHash`` or ``getListing``) from its storage,
        in the shape a call of the view returned.

        Raises:
            ContractRevertError: it reverted with one of our errors.
        """
        if fn in VIEWS:
            return self.storage.view(fn, *args)
        try:
            return getattr(self.contract.functions, fn)(*args).call()
        except REVERTS as exc:
            raise decode_revert(exc) from exc

    # ------------------------------------------------------------ admin

    def grant_role(self, admin: LocalAccount, role: str, account: str) -> TxResult:
        """Grant a role by name, such as ``ARBITER_ROLE``."""
        role_id = self.call(role)
        return self._send(admin, "grantRole", role_id, account)

    def revoke_role(self, admin: LocalAccount, role: str, account: str) -> TxResult:
        """Revoke a role by name, such as ``ARBITER_ROLE``."""
        return self._send(admin, "revokeRole", self.call(role), account)

    def has_role(self, role: str, account: str) -> bool:
        """Whether `account` holds a role, by name (``DEFAULT_ADMIN_ROLE`` too)."""
        return bool(self.call("hasRole", self.call(role), account))

    def set_config(self, admin: LocalAccount, config: EscrowConfig) -> TxResult:
        """Change the platform settings."""
        return self._send(admin, "setConfig", config.as_tuple())

    def set_token_allowed(self, admin: LocalAccount, token: str, allowed: bool) -> TxResult:
        """Allow or disallow a payment token."""
        return self._send(admin, "setTokenAllowed", token, allowed)

    def authorize(
        self, rights_admin: LocalAccount, supplier: str, sku: bytes, attestation: bytes
    ) -> TxResult:
        """Grant (or with a zero attestation, revoke) a licensed-product authorization."""
        return self._send(rights_admin, "authorize", supplier, sku, attestation)

    def withdraw_fees(self, admin: LocalAccount, token: str, to: str) -> TxResult:
        """Send the platform's fee income in `token` to `to`."""
        return self._send(admin, "withdrawFees", token, to)

    def token_info(self, token: str) -> tuple[str, int]:
        """An ERC-20's (symbol, decimals); ("ETH", 18) for the native coin (the zero address)."""
        if int(token, 16) == 0:
            return "ETH", 18
        erc20 = self.w3.eth.contract(address=to_checksum_address(token), abi=ERC20_ABI)
        return str(erc20.functions.symbol().call()), int(erc20.functions.decimals().call())

    def approve_token(self, owner: LocalAccount, token: str, amount: int) -> dict[str, Any]:
        """Let the escrow take `amount` of `owner`'s ERC-20 `token` (for a bond deposit)."""
        erc20 = self.w3.eth.contract(address=to_checksum_address(token), abi=ERC20_ABI)
        receipt = self.tx.send(owner, erc20.functions.approve(self.address, amount))
        assert isinstance(receipt, dict)
        return receipt

    def pause(self, pauser: LocalAccount) -> TxResult:
        """Pause new listings and orders."""
        return self._send(pauser, "pause")

    def unpause(self, pauser: LocalAccount) -> TxResult:
        """Lift the pause."""
        return self._send(pauser, "unpause")

    def close_listing(self, rights_admin: LocalAccount, listing_id: int) -> TxResult:
        """Close a listing (rights admin)."""
        return self._send(rights_admin, "closeListing", listing_id)

    # ------------------------------------------------------------ supplier

    def deposit_bond(
        self, supplier: LocalAccount, amount: int, token: str = ZERO_ADDRESS
    ) -> TxResult:
        """Deposit bond (native coin unless `token`; approve the token first)."""
        value = amount if token == ZERO_ADDRESS else 0
        return self._send(supplier, "depositBond", token, amount, value=value)

    def withdraw_bond(
        self, supplier: LocalAccount, amount: int, to: str | None = None, token: str = ZERO_ADDRESS
    ) -> TxResult:
        """Withdraw free bond."""
        return self._send(supplier, "withdrawBond", token, amount, to or supplier.address)

    def set_delivery_key(self, supplier: LocalAccount, key: str, enabled: bool = True) -> TxResult:
        """Propose (or remove) a delivery key; a proposed key acts once it accepts."""
        return self._send(supplier, "setDeliveryKey", key, enabled)

    def accept_delivery_key(self, key: LocalAccount, supplier: str) -> TxResult:
        """Accept a supplier's proposal, signed by the key itself."""
        return self._send(key, "acceptDeliveryKey", supplier)

    def resign_delivery_key(self, key: LocalAccount, supplier: str) -> TxResult:
        """Stop being a supplier's delivery key, signed by the key itself."""
        return self._send(key, "resignDeliveryKey", supplier)

    def name_delivery_key(
        self, supplier: LocalAccount, key: LocalAccount
    ) -> tuple[TxResult, TxResult]:
        """Both steps, when one holds both keys (development, tests): propose, then accept."""
        return (
            self.set_delivery_key(supplier, key.address),
            self.accept_delivery_key(key, supplier.address),
        )

    def set_reseller_price(
        self, supplier: LocalAccount, listing_id: int, reseller_price: int
    ) -> TxResult:
        """Open a listing to resellers at `reseller_price` a unit (0 closes it to them)."""
        return self._send(supplier, "setResellerPrice", listing_id, reseller_price)

    def set_shop_price(self, reseller: LocalAccount, listing_id: int, price: int) -> TxResult:
        """Put a listing in `reseller`'s shop at `price` a unit (0 takes it out)."""
        return self._send(reseller, "setShopPrice", listing_id, price)

    def set_tiers(
        self, supplier: LocalAccount, listing_id: int, tiers: Sequence[tuple[int, int]]
    ) -> TxResult:
        """Set a listing's volume tiers, ``(min_quantity, discount_bps)`` each, smallest first
        (none removes them)."""
        return self._send(
            supplier,
            "setTiers",
            listing_id,
            [int(q) for q, _ in tiers],
            [int(d) for _, d in tiers],
        )

    def create_listing(
        self,
        supplier: LocalAccount,
        *,
        sku: bytes,
        unit_price: int,
        token: str = ZERO_ADDRESS,
        delivery_window: int = 3600,
        dispute_window: int = 24 * 3600,
        bond_bps: int = 1000,
        metadata_uri: str = "",
    ) -> tuple[int, TxResult]:
        """Open a listing; returns its id and the transaction."""
        res = self._send(
            supplier,
            "createListing",
            sku,
            token,
            unit_price,
            delivery_window,
            dispute_window,
            bond_bps,
            metadata_uri,
        )
        return int(res.event("ListingCreated").args["listingId"]), res

    def update_listing(
        self, supplier: LocalAccount, listing_id: int, unit_price: int, active: bool
    ) -> TxResult:
        """Change price or activity."""
        return self._send(supplier, "updateListing", listing_id, unit_price, active)

    def commit_batch(
        self,
        supplier: LocalAccount,
        listing_id: int,
        root: bytes,
        count: int,
        first_index: int | None = None,
    ) -> TxResult:
        """Append a committed batch of codes whose leaves bind indexes from `first_index`.

        `first_index` defaults to the listing's committed count as read now; pass the index the
        leaves were built for, so that a batch landing after another one reverts instead.
        """
        if first_index is None:
            first_index = int(self.listing(listing_id)["committed"])
        return self._send(supplier, "commitBatch", listing_id, root, count, first_index)

    # ------------------------------------------------------------ orders

    def buy(
        self,
        buyer: LocalAccount,
        listing_id: int,
        quantity: int,
        *,
        max_unit_price: int,
        buyer_pubkey: bytes,
        reseller: str = ZERO_ADDRESS,
        value: int | None = None,
        coupon: Coupon | None = None,
    ) -> tuple[int, Order, TxResult]:
        """Pay for an order; returns its id, the stored Order and the transaction.

        With a `reseller`, the order is bought in that reseller's shop at the shop's price. With
        a signed `coupon` of the listing's supplier (`contracts.coupons`), it is bought through
        ``buyWithCoupon``, and `max_unit_price` bounds the price after the discounts.

        `value` defaults to `max_unit_price * quantity` for native-coin listings when it is the
        exact price; pass it explicitly otherwise (0 for ERC-20 listings).
        """
        if value is None:
            value = max_unit_price * quantity
        args = (listing_id, quantity, max_unit_price, reseller, buyer_pubkey)
        if coupon is None:
            res = self._send(buyer, "buy", *args, value=value)
        else:
            res = self._send(
                buyer, "buyWithCoupon", *args, coupon.as_tuple(), coupon.r, coupon.vs, value=value
            )
        ev = res.event("OrderPaid")
        return int(ev.args["orderId"]), order_from_paid_event(ev.args), res

    def revoke_coupon(self, supplier: LocalAccount, coupon_id: int) -> TxResult:
        """End every coupon `supplier` signed with number `coupon_id`."""
        return self._send(supplier, "revokeCoupon", coupon_id)

    def sign_coupon(self, supplier: LocalAccount, coupon: Coupon) -> Coupon:
        """`coupon` signed by `supplier` for this escrow on this chain."""
        from contracts import coupons

        return coupons.sign(supplier, coupon, self.chain.chain_id, self.address)

    def confirm(self, buyer: LocalAccount, oid: int, order: Order) -> TxResult:
        """Confirm receipt (buyer)."""
        return self._send(buyer, "confirm", oid, order.as_tuple())

    def refund(self, caller: LocalAccount, oid: int, order: Order) -> TxResult:
        """Refund an order whose delivery deadline passed."""
        return self._send(caller, "refund", oid, order.as_tuple())

    def dispute(
        self, buyer: LocalAccount, oid: int, order: Order, uri: str, evidence_hash: bytes
    ) -> tuple[Order, TxResult]:
        """Open a dispute (buyer); returns the order as now stored and the transaction."""
        res = self._send(buyer, "dispute", oid, order.as_tuple(), uri, evidence_hash)
        return apply_event(order, "DisputeOpened", res.event("DisputeOpened").args), res

    def add_evidence(
        self, party: LocalAccount, oid: int, order: Order, uri: str, evidence_hash: bytes
    ) -> TxResult:
        """Add evidence to an open dispute."""
        return self._send(party, "addEvidence", oid, order.as_tuple(), uri, evidence_hash)

    def deliver(
        self,
        sender: LocalAccount,
        items: Sequence[tuple[int, Order, bytes]],
        gas: int | None = None,
    ) -> tuple[list[Order], TxResult]:
        """Post release digests for paid orders: items are (order id, order, digest).

        Returns:
            The orders as now stored (Delivered, with their dispute deadlines), and the transaction.
        """
        res = self._send(
            sender,
            "deliver",
            [i[0] for i in items],
            [i[1].as_tuple() for i in items],
            [i[2] for i in items],
            gas=gas,
        )
        ts = self.block_timestamp(res.block_number)
        delivered = [
            apply_event(o, "OrderDelivered", {"releaseDigest": d}, ts) for _, o, d in items
        ]
        return delivered, res

    def deliver_on_chain(
        self,
        sender: LocalAccount,
        items: Sequence[tuple[int, Order, bytes, PublishedRelease]],
        gas: int | None = None,
    ) -> tuple[list[Order], TxResult]:
        """Deliver paid orders with their sealed releases in the transaction (`deliverOnChain`):
        items are (order id, order, digest, published release).

        Returns:
            The orders as now stored, and the transaction.
        """
        res = self._send(
            sender,
            "deliverOnChain",
            [i[0] for i in items],
            [i[1].as_tuple() for i in items],
            [i[2] for i in items],
            [i[3].as_tuple() for i in items],
            gas=gas,
        )
        ts = self.block_timestamp(res.block_number)
        delivered = [
            apply_event(o, "OrderDelivered", {"releaseDigest": d}, ts) for _, o, d, _ in items
        ]
        return delivered, res

    def require_on_chain_release(self, supplier: LocalAccount, listing_id: int) -> TxResult:
        """Promise on-chain delivery for every later order of a listing (one way)."""
        return self._send(supplier, "requireOnChainRelease", listing_id)

    def published_releases(
        self, order_ids: Sequence[int], from_block: int = 0, to_block: int | str = "latest"
    ) -> dict[int, PublishedRelease]:
        """The releases that `deliverOnChain` published for these orders, by order id, read
        from the ReleasePublished logs (an order delivered off-chain has none)."""
        if not order_ids:
            return {}
        topics: list[Any] = [
            "0x" + self.codec.topic("ReleasePublished").hex(),
            ["0x" + oid.to_bytes(32, "big").hex() for oid in order_ids],
        ]
        out: dict[int, PublishedRelease] = {}
        for raw in self.logs(from_block, to_block, topics):
            ev = self.codec.decode_log(raw)
            if ev is None or ev.name != "ReleasePublished":
                continue
            out[int(ev.args["orderId"])] = PublishedRelease(
                sealed_release=bytes(ev.args["sealedRelease"]),
                element_root=bytes(ev.args["elementRoot"]),
                key_hash=bytes(ev.args["keyHash"]),
                proofs=bytes(ev.args["proofs"]),
            )
        return out

    def block_timestamp(self, block_number: int) -> int:
        """The timestamp of a block."""
        return int(self.w3.eth.get_block(block_number)["timestamp"])

    def settle(self, caller: LocalAccount, items: Sequence[tuple[int, Order]]) -> TxResult:
        """Settle delivered orders whose dispute windows have passed."""
        return self._send(caller, "settle", [i[0] for i in items], [i[1].as_tuple() for i in items])

    def rule(
        self,
        arbiter: LocalAccount,
        oid: int,
        order: Order,
        *,
        buyer_bps: int,
        slash_bps: int = 0,
        bundle_hash: bytes = b"\0" * 32,
        reason: bytes = b"\0" * 32,
    ) -> TxResult:
        """Rule a dispute (arbiter)."""
        return self._send(
            arbiter, "rule", oid, order.as_tuple(), buyer_bps, slash_bps, bundle_hash, reason
        )

    def resolve_timed_out(self, caller: LocalAccount, oid: int, order: Order) -> TxResult:
        """Apply the arbitration-timeout fallback."""
        return self._send(caller, "resolveTimedOut", oid, order.as_tuple())

    def withdraw(
        self, account: LocalAccount, token: str = ZERO_ADDRESS, to: str | None = None
    ) -> TxResult:
        """Withdraw the whole balance of `token`."""
        return self._send(account, "withdraw", token, to or account.address)

    # ------------------------------------------------------------ views

    def order_hash(self, oid: int) -> bytes:
        """The stored hash of an order."""
        return bytes(self.call("orderHash", oid))

    def order_matches(self, oid: int, order: Order) -> bool:
        """Whether `order` is what the chain stores under `oid`."""
        return self.order_hash(oid) == order.hash()

    def listing(self, listing_id: int) -> dict[str, Any]:
        """A listing as a dict of its fields, by the snake_case names of the Listing struct's
        members (``supplier``, ``committed``, ``sold``, ``unit_price``, ..., ``sku`` as bytes)."""
        return self.storage.listing(listing_id)

    def batch(self, listing_id: int, index: int) -> tuple[bytes, int, int]:
        """A batch: (root, first index, count)."""
        root, first, count = self.call("getBatch", listing_id, index)
        return bytes(root), int(first), int(count)

    def bond_of(self, supplier: str, token: str = ZERO_ADDRESS) -> tuple[int, int]:
        """A supplier's (free, reserved) bond."""
        free, reserved = self.call("bondOf", supplier, token)
        return int(free), int(reserved)

    def balance_of(self, account: str, token: str = ZERO_ADDRESS) -> int:
        """An account's withdrawable balance."""
        return int(self.call("balanceOf", account, token))


def deploy_contract(
    chain: Chain, deployer: LocalAccount, name: str, *args: Any
) -> tuple[str, TxResult]:
    """Deploy any of our contracts by artifact name; returns its address and the transaction."""
    art = load(name)
    factory = chain.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    transactor = shared_transactor(chain)
    receipt = transactor.send(deployer, factory.constructor(*args))
    assert isinstance(receipt, dict)
    address = receipt["contractAddress"]
    return str(address), TxResult(
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        block_number=int(receipt["blockNumber"]),
        gas_used=int(receipt["gasUsed"]),
        events=[],
    )


def order_from_paid_event(args: dict[str, Any]) -> Order:
    """The stored Order of a fresh OrderPaid event.

    Every Order field but the state (Paid) and the release digest (zero) is the event argument
    of the same name.

    Raises:
        KeyError: the event lacks one of the Order's fields.
    """
    fields = {
        field: args[name]
        for field, name in zip(ORDER_LAYOUT.fields, ORDER_LAYOUT.solidity_names, strict=True)
        if field not in ("state", "release_digest")
    }
    return Order.from_fields({**fields, "state": OrderState.PAID, "release_digest": ZERO_DIGEST})


def apply_event(
    order: Order, name: str, args: dict[str, Any], block_timestamp: int | None = None
) -> Order:
    """Advance an order by one of its events, as the contract did (`order_rules.order_changes`).
    Used to rebuild orders.

    Args:
        order: The order before the event.
        name: The event's name.
        args: The event's decoded arguments.
        block_timestamp: The timestamp of the block that holds the event (needed for
            OrderDelivered, which starts the dispute window).
    """
    changes = order_changes(name, args, block_timestamp, order.dispute_window)
    if "release_digest" in changes:
        changes["release_digest"] = bytes(changes["release_digest"])
    return order.with_changes(**changes) if changes else order


def rebuild_orders(events: Iterable[DecodedLog], timestamps: dict[int, int]) -> dict[int, Order]:
    """Rebuild orders from their events alone, in chain order.

    Args:
        events: Decoded escrow events in chain order.
        timestamps: Block timestamps by block number.
    """
    orders: dict[int, Order] = {}
    for ev in events:
        if ev.name == "OrderPaid":
            orders[int(ev.args["orderId"])] = order_from_paid_event(ev.args)
        elif "orderId" in ev.args and int(ev.args["orderId"]) in orders:
            oid = int(ev.args["orderId"])
            orders[oid] = apply_event(orders[oid], ev.name, ev.args, timestamps[ev.block_number])
    return orders


__all__ = [
    "EscrowClient",
    "EscrowConfig",
    "Transactor",
    "TxResult",
    "deploy_contract",
    "order_id",
    "rebuild_orders",
    "apply_event",
]
