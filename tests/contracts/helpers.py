"""Helpers for the escrow tests: a prepared environment, exact timing, state capture, reverts."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from bench.world import World, demo_codes, make_world, open_listing
from contracts.artifacts import load
from contracts.client import (
    REVERTS,
    EscrowClient,
    EscrowConfig,
    Transactor,
    decode_revert,
    deploy_contract,
    error_codec,
)
from contracts.encoding import (
    ZERO_ADDRESS,
    Order,
    OrderState,
    commitment,
    element_leaf,
    keystream_xor,
    leaf,
    release_digest_v2,
    sku_id,
)
from contracts.errors import ChainError, ContractRevertError
from contracts.layout import escrow_struct
from contracts.merkle import MerkleTree
from contracts.order_rules import tier_price

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.contract import Contract

    from contracts.chain import Chain

ETH = ZERO_ADDRESS
ZERO32 = b"\0" * 32
PUBKEY = keccak(b"buyer x25519 public key")
DIGEST = keccak(b"sealed release")
EVIDENCE_HASH = keccak(b"evidence bundle")
USDC = 10**6
ETH_PRICE = 10**16
ETH_BOND = 10**18
ETH_BOND_BPS = 1_000
USDC_PRICE = 5 * USDC
USDC_BOND = 1_000 * USDC
USDC_BOND_BPS = 2_000
STOCK = 20
FEE_BPS = 200
BPS = 10_000
#: Both listings are open to resellers (分站): the supplier receives its reseller price a unit
#: from a reseller's sale (less the fee on it), and the environment's reseller sells them in its
#: shop at a price of its own. The ETH shop sells above the listing's price, the USDC shop below.
ETH_RESELLER_PRICE = 8 * 10**15
ETH_SHOP_PRICE = 11 * 10**15
USDC_RESELLER_PRICE = 4 * USDC
USDC_SHOP_PRICE = 4_500_000
#: Gas limit for transactions sent without estimation, so that they are mined even if they revert.
FIXED_GAS = 2_000_000
#: Words of the supplier's coupon counters every state check reads (coupon ids below 8 x this).
COUPON_WORDS = 4


@dataclass
class Env:
    """A deployed escrow with an ETH listing and a 6-decimal USDC listing, both bonded and stocked.

    Attributes:
        chain: The embedded chain.
        world: Escrow, roles, supplier (with a delivery key) and three buyers.
        usdc: The 6-decimal TestToken, allowed, minted to everyone and approved to the escrow.
        eth_listing: A native-coin listing: price ETH_PRICE, bond ETH_BOND at ETH_BOND_BPS.
        usdc_listing: A USDC listing: price USDC_PRICE, bond USDC_BOND at USDC_BOND_BPS.
        reseller: An account with a shop: it sells both listings at ETH_SHOP_PRICE and
            USDC_SHOP_PRICE.
        outsider: An account with no role and no part in any order.
        extra_accounts: Further accounts whose ledger entries the state checks include.
        extra_tokens: Further tokens whose ledgers the state checks include.
    """

    chain: Chain
    world: World
    usdc: Contract
    eth_listing: int
    usdc_listing: int
    reseller: LocalAccount
    outsider: LocalAccount
    extra_accounts: list[str] = field(default_factory=list)
    extra_tokens: list[str] = field(default_factory=list)
    ledger_slot: int | None = None

    # ------------------------------------------------------------ shortcuts

    @property
    def escrow(self) -> EscrowClient:
        """The escrow client."""
        return self.world.escrow

    @property
    def supplier(self) -> LocalAccount:
        """The authorized supplier."""
        return self.world.supplier

    @property
    def buyer(self) -> LocalAccount:
        """The first buyer."""
        return self.world.buyers[0]

    @property
    def admin(self) -> LocalAccount:
        """Holder of every role."""
        return self.world.admin

    @property
    def arbiter(self) -> LocalAccount:
        """Holder of ARBITER_ROLE only."""
        return self.world.arbiter

    @property
    def tx(self) -> Transactor:
        """The one transactor every test transaction goes through (it caches nonces)."""
        return self.escrow.tx

    def reset(self) -> None:
        """Forget cached nonces and fixed gas (after a chain revert) and extra accounts."""
        self.escrow.tx = Transactor(self.chain)
        self.chain.transactor = self.escrow.tx  # deploy_contract and clients share it
        self.extra_accounts = []
        self.extra_tokens = []

    @property
    def accounts(self) -> list[str]:
        """Every account the environment knows."""
        w = self.world
        named = [w.admin, w.arbiter, w.supplier, w.delivery_key, w.fee_recipient, *w.buyers]
        named += [self.reseller, self.outsider]
        return [a.address for a in named] + self.extra_accounts

    @property
    def tokens(self) -> list[str]:
        """The native coin, USDC and any extra tokens."""
        return [ETH, self.usdc.address, *self.extra_tokens]

    # ------------------------------------------------------------ tokens

    def token(self, address: str) -> Contract:
        """A TestToken-compatible contract object at `address`."""
        abi = load("BlocklistToken").abi
        return self.chain.w3.eth.contract(address=to_checksum_address(address), abi=abi)

    def send(self, account: LocalAccount, call: Any, value: int = 0) -> dict[str, Any]:
        """Send a non-escrow contract call; returns the receipt."""
        receipt = self.tx.send(account, call, value=value)
        assert isinstance(receipt, dict)
        return receipt

    def held(self, token: str, address: str | None = None) -> int:
        """The amount of `token` that `address` (default: the escrow) holds on-chain."""
        who = to_checksum_address(address or self.escrow.address)
        if token == ETH:
            return int(self.chain.w3.eth.get_balance(who))
        return int(self.token(token).functions.balanceOf(who).call())

    def fund_token(self, token: str, accounts: Iterable[LocalAccount], amount: int) -> None:
        """Mint `amount` of a test token to each account and approve the escrow for all of it."""
        contract = self.token(token)
        for account in accounts:
            self.send(account, contract.functions.mint(account.address, amount))
            self.send(account, contract.functions.approve(self.escrow.address, 2**256 - 1))

    def deploy_token(self, name: str, *args: Any) -> str:
        """Deploy a test token (TestToken, FeeOnTransferToken, BlocklistToken) and allow it."""
        address, _ = deploy_contract(self.chain, self.admin, name, *args)
        # deploy_contract signs with a transactor of its own: forget the admin's cached nonce.
        self.tx.reset_nonce(self.admin.address)
        self.escrow.set_token_allowed(self.admin, address, True)
        self.extra_tokens.append(to_checksum_address(address))
        return to_checksum_address(address)

    # ------------------------------------------------------------ orders

    def price(self, listing_id: int, reseller: str = ETH, quantity: int = 1) -> int:
        """A listing's current unit price for an order of `quantity`: its own, or in
        `reseller`'s shop (0: not in it), less the volume tier the quantity reaches."""
        if reseller != ETH:
            price = int(self.escrow.call("shopPrice", reseller, listing_id))
        else:
            price = int(self.escrow.listing(listing_id)["unit_price"])
        return tier_price(price, self.escrow.storage.tiers(listing_id), quantity)

    def listing_token(self, listing_id: int) -> str:
        """A listing's payment token."""
        return to_checksum_address(self.escrow.listing(listing_id)["token"])

    def buy(
        self,
        listing_id: int | None = None,
        buyer: LocalAccount | None = None,
        quantity: int = 1,
        reseller: str = ETH,
    ) -> tuple[int, Order]:
        """Buy at the current price, paying in the listing's token; returns id and stored order.

        With a `reseller`, the order is bought in its shop, at the shop's current price.
        """
        lid = self.eth_listing if listing_id is None else listing_id
        price = self.price(lid, reseller, quantity)
        value = price * quantity if self.listing_token(lid) == ETH else 0
        oid, order, _ = self.escrow.buy(
            buyer or self.buyer,
            lid,
            quantity,
            max_unit_price=price,
            buyer_pubkey=PUBKEY,
            reseller=reseller,
            value=value,
        )
        return oid, order

    def deliver(self, oid: int, order: Order, digest: bytes = DIGEST) -> Order:
        """Deliver one order as the supplier; returns the order as now stored."""
        (delivered,), _ = self.escrow.deliver(self.supplier, [(oid, order, digest)])
        return delivered

    def dispute(self, oid: int, order: Order, buyer: LocalAccount | None = None) -> Order:
        """Open a dispute as the buyer; returns the order as now stored."""
        disputed, _ = self.escrow.dispute(
            buyer or self.buyer, oid, order, "ipfs://evidence", EVIDENCE_HASH
        )
        return disputed

    def delivered_order(self, listing_id: int | None = None, **kw: Any) -> tuple[int, Order]:
        """A freshly bought and delivered order."""
        oid, order = self.buy(listing_id, **kw)
        return oid, self.deliver(oid, order)

    def disputed_order(self, listing_id: int | None = None, **kw: Any) -> tuple[int, Order]:
        """A freshly bought, delivered and disputed order."""
        buyer = kw.get("buyer")
        oid, order = self.delivered_order(listing_id, **kw)
        return oid, self.dispute(oid, order, buyer)

    def withdraw_fees(self, token: str, to: str) -> dict[str, Any]:
        """withdrawFees as the admin (the client has no method for it)."""
        return self.send(self.admin, self.escrow.contract.functions.withdrawFees(token, to))

    def add_supplier(self, name: str = "second-sku") -> tuple[LocalAccount, bytes]:
        """A second authorized supplier with an ETH bond; returns it and its sku."""
        supplier = self.chain.new_account(ether=10_000)
        sku = sku_id(name)
        self.escrow.authorize(self.admin, supplier.address, sku, keccak(text=f"licence {name}"))
        self.escrow.deposit_bond(supplier, ETH_BOND)
        self.extra_accounts.append(supplier.address)
        return supplier, sku

    # ------------------------------------------------------------ state

    def state(
        self, orders: Iterable[int] = (), listings: Iterable[int] | None = None
    ) -> dict[tuple[object, ...], object]:
        """Everything a failed call must leave unchanged: ledgers, bonds, fees, holdings,
        the given orders' hashes, the listings, their reseller prices and every known account's
        shop prices for them, the listing count and the pause flag."""
        escrow = self.escrow
        out: dict[tuple[object, ...], object] = {}
        for token in self.tokens:
            out[("fees", token)] = escrow.call("feesOf", token)
            out[("held", token)] = self.held(token)
            for account in self.accounts:
                out[("ledger", account, token)] = self.ledger(account, token)
        for oid in orders:
            out[("order", oid)] = escrow.order_hash(oid)
        count = int(escrow.call("listingCount"))
        lids = range(1, count + 1) if listings is None else listings
        for lid in lids:
            out[("listing", lid)] = tuple(escrow.call("getListing", lid))
        out.update(self.distribution(lids))
        out[("listingCount",)] = count
        out[("paused",)] = escrow.call("paused")
        return out

    def distribution(self, listings: Iterable[int]) -> dict[tuple[object, ...], int]:
        """The listings' reseller prices, packed volume tiers and every known account's shop
        prices for them, and the supplier's first coupon counters, read from storage in one
        ``extsload``: ``("resellerPrice", listing)``, ``("tiers", listing)``,
        ``("shopPrice", account, listing)`` and ``("couponUses", word)``."""
        storage = self.escrow.storage
        keys: list[tuple[object, ...]] = []
        locations = []
        for lid in listings:
            keys.append(("resellerPrice", lid))
            locations.append(storage.layout.locate("_resellerPrices", lid))
            keys.append(("tiers", lid))
            locations.append(storage.layout.locate("_tiers", lid))
            for account in self.accounts:
                keys.append(("shopPrice", account, lid))
                locations.append(storage.layout.locate("_shopPrices", account, lid))
        for word in range(COUPON_WORDS):  # the supplier's first coupon counters
            keys.append(("couponUses", word))
            locations.append(storage.layout.locate("_couponUses", self.supplier.address, word))
        values = storage.layout.read(storage.read_words, *locations)
        return {key: int(v) for key, v in zip(keys, values, strict=True)}

    def ledger(self, account: str, token: str) -> tuple[int, int, int]:
        """(balance, free bond, reserved bond) of `account` in `token`, read from storage.

        The same values as balanceOf and bondOf, from one storage read instead of two calls
        (which is what makes checking every account's ledger after every revert affordable).
        The mapping's slot is found, and checked against the views, by `locate_ledgers`.
        """
        assert self.ledger_slot is not None, "call locate_ledgers first"
        inner = keccak(encode(["address", "uint256"], [account, self.ledger_slot]))
        slot = keccak(encode(["address"], [token]) + inner)
        word = int.from_bytes(
            self.chain.w3.eth.get_storage_at(self.escrow.address, int.from_bytes(slot, "big"))
        )
        return word & (2**96 - 1), (word >> 96) & (2**80 - 1), word >> 176

    def locate_ledgers(self) -> None:
        """Find the storage slot of the escrow's ledger mapping, checking it against the views."""
        probes = [(a, t) for a in self.accounts for t in self.tokens]
        wanted = [(self.escrow.balance_of(a, t), *self.escrow.bond_of(a, t)) for a, t in probes]
        assert any(any(w) for w in wanted), "no ledger entry to locate the mapping by"
        for slot in range(64):
            self.ledger_slot = slot
            if [self.ledger(a, t) for a, t in probes] == wanted:
                return
        self.ledger_slot = None
        raise AssertionError("the ledger mapping is not where Ledger's layout says it is")

    def liabilities(self, token: str, open_orders: Iterable[tuple[int, Order]]) -> int:
        """What the escrow owes in `token`: balances, bonds, fees and the open orders' amounts.

        Every order passed must still be open and stored exactly as given.
        """
        escrow = self.escrow
        total = int(escrow.call("feesOf", token))
        for account in self.accounts:
            free, reserved = escrow.bond_of(account, token)
            total += escrow.balance_of(account, token) + free + reserved
        for oid, order in open_orders:
            assert escrow.order_matches(oid, order), f"order {oid:#x} is not open as given"
            if order.token == token:
                total += order.amount
        return total


def make_env(chain: Chain) -> Env:
    """Deploy and prepare the shared environment (about 40 transactions)."""
    world = make_world(chain, buyers=3)
    reseller = chain.new_account()
    outsider = chain.new_account()
    usdc_address, _ = deploy_contract(chain, world.admin, "TestToken", "USD Coin", "USDC")
    world.escrow.tx.reset_nonce(world.admin.address)
    usdc = chain.w3.eth.contract(
        address=to_checksum_address(usdc_address), abi=load("TestToken").abi
    )
    env = Env(
        chain=chain,
        world=world,
        usdc=usdc,
        eth_listing=0,
        usdc_listing=0,
        reseller=reseller,
        outsider=outsider,
    )
    world.escrow.set_token_allowed(world.admin, usdc.address, True)
    env.fund_token(usdc.address, [world.supplier, *world.buyers], 100_000 * USDC)
    env.eth_listing = open_listing(
        world,
        stock=STOCK,
        unit_price=ETH_PRICE,
        bond=ETH_BOND,
        bond_bps=ETH_BOND_BPS,
        reseller_price=ETH_RESELLER_PRICE,
    )
    env.usdc_listing = open_listing(
        world,
        stock=STOCK,
        unit_price=USDC_PRICE,
        token=usdc.address,
        bond=USDC_BOND,
        bond_bps=USDC_BOND_BPS,
        reseller_price=USDC_RESELLER_PRICE,
    )
    world.escrow.set_shop_price(reseller, env.eth_listing, ETH_SHOP_PRICE)
    world.escrow.set_shop_price(reseller, env.usdc_listing, USDC_SHOP_PRICE)
    env.locate_ledgers()
    return env


@dataclass
class Stock:
    """A listing's committed codes, when they are real (for bad-code proofs)."""

    codes: list[bytes]
    salts: list[bytes]
    tree: MerkleTree


def commit_stock(env: Env, listing_id: int, count: int) -> Stock:
    """Commit `count` real codes with random salts as the listing's first batch (from index 0)."""
    codes = demo_codes(count)
    salts = [os.urandom(32) for _ in codes]
    pairs = enumerate(zip(salts, codes, strict=True))
    tree = MerkleTree([leaf(i, commitment(salt, code)) for i, (salt, code) in pairs])
    env.escrow.commit_batch(env.supplier, listing_id, tree.root, count, 0)
    return Stock(codes, salts, tree)


def bad_code_proof(env: Env, oid: int, order: Order, stock: Stock) -> tuple[Order, Any]:
    """Deliver a v2 release of an order from index 0 of `stock` whose first code is not the
    committed one; return the delivered order and a proof of it, built by field name from the
    ABI's BadCodeProof."""
    key, sealed_hash = os.urandom(32), keccak(b"sealed box")
    sent = [b"KMG-NOT-THE-COMMITTED-CODE", *stock.codes[1 : order.quantity]]
    cts = [keystream_xor(key, i, c) for i, c in enumerate(sent)]
    elements = MerkleTree([element_leaf(i, stock.salts[i], ct) for i, ct in enumerate(cts)])
    digest = release_digest_v2(sealed_hash, elements.root, key)
    (delivered,), _ = env.escrow.deliver(env.supplier, [(oid, order, digest)])
    proof = escrow_struct("BadCodeProof").as_tuple(
        {
            "sealed_hash": sealed_hash,
            "key": key,
            "index": 0,
            "salt": stock.salts[0],
            "ciphertext": cts[0],
            "element_proof": elements.proof(0),
            "batch_index": 0,
            "committed": commitment(stock.salts[0], stock.codes[0]),
            "leaf_proof": stock.tree.proof(0),
        }
    )
    return delivered, proof


def split(order: Order, gross: int | None = None) -> tuple[int, int, int]:
    """(to supplier, fee, commission) of `gross` (default: the order's whole amount), as
    ICodeEscrow documents the split: the fee is ``gross * feeBps / 10000``; the reseller's cut,
    scaled as `gross` is from the amount (``resellerCut * gross / amount``), less its share of the
    fee (``cut * feeBps / 10000``), is its commission; the supplier takes the rest. Every
    division rounds down."""
    gross = order.amount if gross is None else gross
    fee = gross * order.fee_bps // BPS
    cut = order.reseller_cut * gross // order.amount
    commission = cut - cut * order.fee_bps // BPS
    return gross - fee - commission, fee, commission


def config(env: Env, **changes: int) -> EscrowConfig:
    """The platform settings the environment was deployed with, with some changed."""
    return EscrowConfig(fee_recipient=env.world.fee_recipient.address, **changes)


# ---------------------------------------------------------------- time


def pending_timestamp(chain: Chain) -> int:
    """The timestamp the next transaction will carry (eth-tester mines one block per tx)."""
    return int(chain.w3.eth.get_block("pending")["timestamp"])


def next_tx_at(chain: Chain, timestamp: int) -> None:
    """Arrange that the next transaction (and gas estimates before it) run at exactly `timestamp`.

    eth-tester estimates gas against the pending block, so a revert decoded from the estimate is
    the revert the transaction would meet at `timestamp`.
    """
    if timestamp - 1 > pending_timestamp(chain):
        # On eth-tester, travel_to(t) leaves the pending block at t, not t + 1 as documented
        # (see test_escrow_client.py); aiming one second early and then mining an empty block
        # when needed works either way.
        chain.travel_to(timestamp - 1)
    if pending_timestamp(chain) == timestamp - 1:
        chain.mine()
    actual = pending_timestamp(chain)
    if actual != timestamp:
        raise AssertionError(f"cannot make the next tx land at {timestamp}: pending is {actual}")


def tx_time(env: Env, block_number: int) -> int:
    """A mined block's timestamp."""
    return env.escrow.block_timestamp(block_number)


# ---------------------------------------------------------------- reverts


def _norm(value: object) -> object:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, list | tuple):
        return tuple(_norm(v) for v in value)
    return value


def revert_args(err: ContractRevertError) -> tuple[object, ...]:
    """A decoded error's arguments, with addresses lower-cased for comparison."""
    return tuple(_norm(a) for a in err.args_)


def expect_args(*args: object) -> tuple[object, ...]:
    """Expected error arguments, normalized like `revert_args`."""
    return tuple(_norm(a) for a in args)


def _find_revert_data(exc: BaseException) -> bytes | None:
    """Revert data anywhere in an exception's cause/context chain."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        for arg in cur.args:
            if isinstance(arg, bytes) and len(arg) >= 4:
                return arg
        todo += [cur.__cause__, cur.__context__]
    return None


def catch_revert(action: Callable[[], object]) -> ContractRevertError:
    """Run `action`, which must revert, and return the decoded custom error.

    The client decodes most reverts itself. On eth-tester, web3 mistakes a custom error whose
    only argument is a string (EscrowBadArgument) for Error(string) and keeps just the text, so
    the raw data is taken from the exception's context instead (see test_escrow_client.py).
    """
    try:
        action()
    except ContractRevertError as err:
        return err
    except REVERTS as exc:
        from_client = decode_revert(exc)
        if isinstance(from_client, ContractRevertError):
            return from_client
        data = _find_revert_data(exc)
        decoded = error_codec().decode_error(data) if data is not None else None
        if decoded is None:
            raise AssertionError(f"reverted without a known custom error: {exc!r}") from exc
        return decoded
    raise AssertionError("the call did not revert")


def assert_reverts(
    env: Env,
    action: Callable[[], object],
    name: str,
    args: Sequence[object] | None = None,
    *,
    orders: Iterable[int] = (),
    mined: bool = True,
) -> ContractRevertError:
    """Assert that `action` reverts with the custom error `name` (and `args`), changing nothing.

    The revert is first decoded from the gas estimate (which runs against the pending block).
    With `mined`, the same transaction is then sent without estimation, so it is mined and
    reverts on-chain; the state before and after must be equal either way.
    """
    orders = list(orders)
    before = env.state(orders)
    err = catch_revert(action)
    assert err.name == name, f"expected {name}, got {err.name}{err.args_!r}"
    if args is not None:
        assert revert_args(err) == expect_args(*args)
    if mined:
        env.tx.fixed_gas = FIXED_GAS
        try:
            with pytest.raises((ChainError, *REVERTS)):
                action()
        finally:
            env.tx.fixed_gas = None
    assert env.state(orders) == before
    return err


def order_state(env: Env, oid: int, order: Order) -> OrderState:
    """The state of `order` if it is what the chain stores under `oid`, else NONE."""
    return order.state if env.escrow.order_matches(oid, order) else OrderState.NONE
