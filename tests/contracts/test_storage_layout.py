"""The storage decoder (contracts/storage.py) reads the escrow's state right, through its
``extsload`` and through ``eth_getStorageAt`` alike.

The escrow is driven into a state where every field of Listing, Batch, Config and the packed
Ledger (balance, bondFree, bondReserved, and the `_overflow` beside it) is non-zero somewhere
and most are distinctive, with active, proposed and resigned delivery keys, granted and revoked
authorizations, open and ended orders and fees in two tokens. The decoded values are checked
against what the transactions that made the state wrote (the eleven single-purpose views these
reads replaced were the oracle until the escrow dropped them; the decoder was proven equal to
them on every key below before they went). Then each read is made for many keys, unknown and
zero ones included, through the client (``extsload``, one ``eth_call``) and through raw
``eth_getStorageAt`` words, and the two must agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from eth_utils import keccak, to_checksum_address

from contracts.artifacts import load, read_artifact
from contracts.client import EscrowConfig, deploy_contract
from contracts.compiler import ARTIFACTS_DIR
from contracts.encoding import ORDER_LAYOUT, Order, OrderState, sku_id
from contracts.errors import StaleArtifactsError
from contracts.storage import (
    KEY_ACTIVE,
    KEY_PROPOSED,
    EscrowStorage,
    ReadWords,
    StorageLayout,
    StorageLayoutError,
    decode_tiers,
    decode_value,
    encode_key,
    escrow_layout,
    web3_storage_reader,
)
from tests.contracts.helpers import ETH, PUBKEY, ZERO32, Env, config, next_tx_at

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

MAX96 = 2**96 - 1
#: The rich listing's reseller price, and its price in the environment's reseller's shop and in
#: the outsider's (distinct from each other and from the listing's own price, 7,654,321).
RICH_RESELLER_PRICE = 7_000_001
RICH_SHOP_PRICE = 7_777_777
OUTSIDER_SHOP_PRICE = 8_123_457
#: The rich listing's volume tiers: all three, the last at the widest quantity and discount (the
#: rich state's shop order, of 3, is below them all).
RICH_TIERS = [(4, 250), (70_000, 700), (2**32 - 1, 9_999)]
#: Platform settings with no two fields alike (and none zero), within the contract's bounds.
DISTINCT_CONFIG = {
    "fee_bps": 123,
    "min_bond_bps": 789,
    "arbitration_window": 2 * 86_400 + 17,
    "min_delivery_window": 61,
    "max_delivery_window": 29 * 86_400 + 3,
    "min_dispute_window": 3_601,
    "max_dispute_window": 89 * 86_400 + 5,
}


@dataclass
class Rich:
    """The escrow in a state where every stored field is non-zero somewhere.

    Attributes:
        env: The environment.
        reader: The escrow's storage words (`web3_storage_reader`).
        storage: The decoder over `reader`, counting its calls in `calls`.
        calls: The number of slots of each call `storage` made for words.
        suppliers: Suppliers (and non-suppliers) to ask about: keys, authorizations.
        keys: Delivery keys: active, proposed, resigned, and others.
        skus: Skus authorized, revoked, and never seen.
        accounts: Accounts to ask ledgers about, the zero address included.
        tokens: ETH, USDC and a token the escrow never saw.
        orders: Order ids: open, ended and unknown.
        listing: The listing with every field non-zero.
        proposed: A key the supplier proposed that has not accepted.
        resigned: A key that accepted and then resigned.
    """

    env: Env
    reader: ReadWords
    storage: EscrowStorage
    calls: list[int]
    suppliers: list[str]
    keys: list[str]
    skus: list[bytes]
    accounts: list[str]
    tokens: list[str]
    orders: list[int]
    listing: int
    proposed: str
    resigned: str


def counting(read_words: ReadWords, calls: list[int]) -> ReadWords:
    """`read_words`, recording the number of slots of each call in `calls`."""

    def counted(slots: list[bytes]) -> list[bytes]:
        calls.append(len(slots))
        return read_words(slots)

    return counted


def _overflow_a_balance(env: Env, reseller: LocalAccount) -> int:
    """Make the reseller's USDC balance spill over the 96-bit ledger into `_overflow`.

    The reseller buys an order as large as the ledger takes from an unbonded listing and is
    refunded (filling its balance to MAX96 - 1); then an order bought in its shop is
    confirmed, and its commission does not fit. Returns the listing of the large order.
    """
    escrow, token = env.escrow, env.usdc.address
    oid, order = env.delivered_order(env.usdc_listing, reseller=reseller.address)
    escrow.set_config(env.admin, config(env, min_bond_bps=0))
    huge = MAX96 - 1
    lid, _ = escrow.create_listing(
        env.supplier, sku=env.world.sku, unit_price=huge, token=token, bond_bps=0
    )
    escrow.commit_batch(env.supplier, lid, keccak(b"huge"), 1)
    env.fund_token(token, [reseller], huge)
    big_oid, big, _ = escrow.buy(
        reseller, lid, 1, max_unit_price=huge, buyer_pubkey=PUBKEY, value=0
    )
    next_tx_at(env.chain, big.deadline + 1)
    escrow.refund(reseller, big_oid, big)
    escrow.confirm(env.buyer, oid, order)
    return lid


@pytest.fixture(scope="module")
def rich_state(base_env: Env) -> Iterator[Rich]:
    """Drive the module's escrow into the rich state (about 40 transactions)."""
    env = base_env
    escrow, supplier, admin = env.escrow, env.supplier, env.admin
    usdc = env.usdc.address
    huge_listing = _overflow_a_balance(env, env.reseller)
    escrow.close_listing(admin, huge_listing)

    # Distinct settings, then a USDC listing created under them with every field non-zero.
    escrow.set_config(admin, EscrowConfig(fee_recipient=env.outsider.address, **DISTINCT_CONFIG))
    lid, _ = escrow.create_listing(
        supplier,
        sku=env.world.sku,
        unit_price=7_654_321,
        token=usdc,
        delivery_window=5_003,
        dispute_window=7_207,
        bond_bps=1_234,
    )
    # Open to resellers, in two shops; the ETH listing's shop is emptied again (a zero written).
    escrow.set_reseller_price(supplier, lid, RICH_RESELLER_PRICE)
    escrow.set_shop_price(env.reseller, lid, RICH_SHOP_PRICE)
    escrow.set_shop_price(env.outsider, lid, OUTSIDER_SHOP_PRICE)
    escrow.set_shop_price(env.reseller, env.eth_listing, 0)
    # Volume tiers on it (all three), and on the ETH listing set and removed again.
    escrow.set_tiers(supplier, lid, RICH_TIERS)
    escrow.set_tiers(supplier, env.eth_listing, [(5, 100)])
    escrow.set_tiers(supplier, env.eth_listing, [])
    escrow.commit_batch(supplier, lid, keccak(b"first batch"), 5, 0)
    escrow.commit_batch(supplier, lid, keccak(b"second batch"), 7, 5)
    open_usdc, _ = env.buy(lid, quantity=3, reseller=env.reseller.address)
    escrow.require_on_chain_release(supplier, lid)

    # Orders: open in ETH and USDC, one confirmed (its hash cleared), fees in both tokens.
    open_eth, _ = env.buy(env.eth_listing, buyer=env.world.buyers[1], quantity=2)
    done_oid, done = env.delivered_order(env.eth_listing, buyer=env.world.buyers[2])
    escrow.confirm(env.world.buyers[2], done_oid, done)

    # Authorizations: a second supplier with its own sku, and a revoked one.
    second, second_sku = env.add_supplier("storage-second-sku")
    revoked_sku = sku_id("storage-revoked-sku")
    escrow.authorize(admin, second.address, revoked_sku, keccak(b"licence, later revoked"))
    escrow.authorize(admin, second.address, revoked_sku, ZERO32)

    # Delivery keys: the world's key is active; one proposed; one accepted and resigned.
    proposed = env.chain.new_account(ether=1)
    resigned = env.chain.new_account(ether=1)
    escrow.set_delivery_key(supplier, proposed.address)
    escrow.name_delivery_key(second, resigned)
    escrow.resign_delivery_key(resigned, second.address)
    escrow.set_delivery_key(second, env.world.delivery_key.address)

    stranger = to_checksum_address(keccak(b"a token the escrow never saw")[:20])
    calls: list[int] = []
    reader = web3_storage_reader(env.chain.w3, escrow.address)
    count = int(escrow.call("listingCount"))
    yield Rich(
        env=env,
        reader=reader,
        storage=EscrowStorage(counting(reader, calls)),
        calls=calls,
        suppliers=[supplier.address, second.address, env.outsider.address, ETH],
        keys=[
            env.world.delivery_key.address,
            proposed.address,
            resigned.address,
            supplier.address,
            ETH,
        ],
        skus=[env.world.sku, second_sku, revoked_sku, ZERO32, keccak(b"never authorized")],
        accounts=[*env.accounts, ETH],  # the second supplier is among env.accounts
        tokens=[ETH, usdc, stranger],
        orders=[open_usdc, open_eth, done_oid, open_usdc + 1, (count + 5) << 32, 0],
        listing=lid,
        proposed=proposed.address,
        resigned=resigned.address,
    )


@pytest.fixture()
def rich(rich_state: Rich) -> Rich:
    """The rich state, with no storage reads counted yet."""
    rich_state.calls.clear()
    return rich_state


def one_read(rich: Rich, answer: object) -> object:
    """`answer`, checking that computing it made exactly one call for storage words."""
    assert len(rich.calls) == 1, f"expected one read of storage words, got {rich.calls}"
    rich.calls.clear()
    return answer


def test_the_state_has_every_field_non_zero(rich: Rich) -> None:
    """The comparisons below could catch a wrong offset or width only if the fields are set;
    each is what the transactions of the `rich_state` fixture wrote."""
    escrow, env = rich.env.escrow, rich.env
    listing = escrow.listing(rich.listing)
    assert all(listing.values()), listing
    assert listing == {
        "supplier": env.supplier.address,
        "committed": 5 + 7,
        "sold": 3,
        "bond_bps": 1_234,
        "active": True,
        "token": env.usdc.address,
        "unit_price": 7_654_321,
        "delivery_window": 5_003,
        "dispute_window": 7_207,
        "batch_count": 2,
        "fee_bps": DISTINCT_CONFIG["fee_bps"],
        "arbitration_window": DISTINCT_CONFIG["arbitration_window"],
        "on_chain_from": 3 + 1,  # the next code to sell, plus one
        "tiered": True,
        "sku": env.world.sku,
    }
    assert escrow.batch(rich.listing, 0) == (keccak(b"first batch"), 0, 5)
    # 3 codes sold in the reseller's shop at 7,777,777 with a 12.34% bond: the reserve, rounded
    # down.
    reserved = 3 * RICH_SHOP_PRICE * 1_234 // 10_000
    assert escrow.bond_of(env.supplier.address, env.usdc.address)[1] == reserved
    assert escrow.call("config")[0] == env.outsider.address
    assert escrow.batch(rich.listing, 1) == (keccak(b"second batch"), 5, 7)
    assert tuple(escrow.call("config"))[1:] == tuple(DISTINCT_CONFIG.values())
    usdc = rich.env.usdc.address
    assert all(escrow.bond_of(rich.env.supplier.address, usdc))
    assert escrow.balance_of(rich.env.reseller.address, usdc) > MAX96
    assert escrow.call("resellerPrice", rich.listing) == RICH_RESELLER_PRICE
    assert escrow.call("shopPrice", env.reseller.address, rich.listing) == RICH_SHOP_PRICE
    assert escrow.call("shopPrice", env.outsider.address, rich.listing) == OUTSIDER_SHOP_PRICE
    assert escrow.balance_of(rich.env.supplier.address, usdc) > 0
    assert all(escrow.call("feesOf", token) for token in rich.tokens[:2])


def test_listing_count_and_listings(rich: Rich) -> None:
    escrow, storage = rich.env.escrow, rich.storage
    count = int(escrow.call("listingCount"))
    assert one_read(rich, storage.listing_count()) == count == rich.listing
    for lid in [*range(count + 2), 2**64, 2**256 - 1]:
        assert one_read(rich, storage.listing(lid)) == escrow.listing(lid), lid


def test_batches(rich: Rich) -> None:
    escrow, storage = rich.env.escrow, rich.storage
    for lid, index in product(range(rich.listing + 2), range(3)):
        assert one_read(rich, storage.batch(lid, index)) == escrow.batch(lid, index), (lid, index)


def test_order_hashes(rich: Rich) -> None:
    escrow, storage = rich.env.escrow, rich.storage
    hashes = [escrow.order_hash(oid) for oid in rich.orders]
    assert hashes[:2] != [ZERO32, ZERO32] and hashes[2] == ZERO32
    assert [one_read(rich, storage.order_hash(oid)) for oid in rich.orders] == hashes


def test_bonds_and_balances(rich: Rich) -> None:
    """bondOf and balanceOf, the packed Ledger and the `_overflow` beside it."""
    escrow, storage = rich.env.escrow, rich.storage
    for account, token in product(rich.accounts, rich.tokens):
        assert one_read(rich, storage.bond_of(account, token)) == escrow.bond_of(account, token)
        assert one_read(rich, storage.balance_of(account, token)) == escrow.balance_of(
            account, token
        ), (account, token)
    # The overflow is really in the sum: the packed balance alone is at its 96-bit cap.
    layout, reseller, usdc = storage.layout, rich.env.reseller.address, rich.env.usdc.address
    packed, spilled = layout.read(
        rich.reader,
        layout.locate("_ledgers", reseller, usdc, "balance"),
        layout.locate("_overflow", reseller, usdc),
    )
    assert packed == MAX96 and spilled > 0


def test_reseller_and_shop_prices(rich: Rich) -> None:
    """``resellerPrice`` and ``shopPrice``: set, emptied again (zero written) and never set."""
    escrow, storage, env = rich.env.escrow, rich.storage, rich.env
    count = int(escrow.call("listingCount"))
    listings = [*range(count + 2), 2**64, 2**256 - 1]
    seen = set()
    for lid in listings:
        want = int(escrow.call("resellerPrice", lid))
        assert one_read(rich, storage.reseller_price(lid)) == want, lid
        seen.add(want)
        for account in rich.accounts:
            want = int(escrow.call("shopPrice", account, lid))
            assert one_read(rich, storage.shop_price(account, lid)) == want, (account, lid)
            seen.add(want)
    assert {0, RICH_RESELLER_PRICE, RICH_SHOP_PRICE, OUTSIDER_SHOP_PRICE} <= seen
    # The emptied shop price reads as zero, and the other listing's shop still has its price.
    assert storage.shop_price(env.reseller.address, env.eth_listing) == 0
    assert storage.shop_price(env.reseller.address, env.usdc_listing) > 0


def test_tiers(rich: Rich) -> None:
    """``tiers``: three tiers packed in one word, removed again (zero written), never set."""
    escrow, storage, env = rich.env.escrow, rich.storage, rich.env
    count = int(escrow.call("listingCount"))
    for lid in [*range(count + 2), 2**64, 2**256 - 1]:
        want = decode_tiers(int(escrow.call("tiers", lid)))
        assert one_read(rich, storage.tiers(lid)) == want, lid
    assert storage.tiers(rich.listing) == RICH_TIERS
    assert storage.tiers(env.eth_listing) == []
    assert escrow.listing(env.eth_listing)["tiered"] is False


def test_authorizations(rich: Rich) -> None:
    escrow, storage = rich.env.escrow, rich.storage
    for supplier, sku in product(rich.suppliers, rich.skus):
        want = bytes(escrow.call("authorization", supplier, sku))
        assert one_read(rich, storage.authorization(supplier, sku)) == want, (supplier, sku)


def test_delivery_keys(rich: Rich) -> None:
    escrow, storage = rich.env.escrow, rich.storage
    seen = set()
    for supplier, key in product(rich.suppliers, rich.keys):
        active = escrow.call("isDeliveryKey", supplier, key)
        proposed = escrow.call("isProposedDeliveryKey", supplier, key)
        assert one_read(rich, storage.is_delivery_key(supplier, key)) is active
        assert one_read(rich, storage.is_proposed_delivery_key(supplier, key)) is proposed
        seen.add((active, proposed))
    assert seen == {(True, False), (False, True), (False, False)}


def test_the_key_status_constants_are_the_contracts(rich: Rich) -> None:
    """KEY_PROPOSED and KEY_ACTIVE are CodeEscrow's private `_KEY_PROPOSED` and `_KEY_ACTIVE`:
    the raw status stored for a proposed, an active and a resigned key."""
    env, storage = rich.env, rich.storage
    layout, supplier = storage.layout, env.supplier.address

    def status(owner: str, key: str) -> int:
        (value,) = layout.read(rich.reader, layout.locate("_deliveryKeys", owner, key))
        return int(value)

    assert env.escrow.call("isProposedDeliveryKey", supplier, rich.proposed) is True
    assert status(supplier, rich.proposed) == KEY_PROPOSED
    assert env.escrow.call("isDeliveryKey", supplier, env.world.delivery_key.address) is True
    assert status(supplier, env.world.delivery_key.address) == KEY_ACTIVE
    assert status(rich.suppliers[1], rich.resigned) == 0


def test_config_and_fees(rich: Rich) -> None:
    escrow, storage = rich.env.escrow, rich.storage
    assert one_read(rich, storage.config()) == EscrowConfig(*escrow.call("config"))
    for token in rich.tokens:
        assert one_read(rich, storage.fees_of(token)) == int(escrow.call("feesOf", token)), token


def test_inherited_state_nested_mappings_in_structs_and_packed_slots(rich: Rich) -> None:
    """OpenZeppelin's state by the same layout: `_roles[role].hasRole[account]` (a mapping
    inside a struct inside a mapping), the default admin and its delay packed into slots with
    others, and `_verifier` packed after the `_paused` flag."""
    escrow, storage = rich.env.escrow, rich.storage
    layout, read = storage.layout, rich.reader
    arbiter_role = escrow.call("ARBITER_ROLE")
    for account in rich.accounts:
        (has,) = layout.read(read, layout.locate("_roles", arbiter_role, "hasRole", account))
        assert has is escrow.call("hasRole", arbiter_role, account), account
    admin, delay, paused, verifier = layout.read(
        read,
        layout.locate("_currentDefaultAdmin"),
        layout.locate("_currentDelay"),
        layout.locate("_paused"),
        layout.locate("_verifier"),
    )
    assert (admin, delay, paused) == (
        escrow.call("defaultAdmin"),
        escrow.call("defaultAdminDelay"),
        escrow.call("paused"),
    )
    assert delay == 2 * 86_400
    assert rich.env.chain.w3.eth.get_code(verifier), "_verifier is not a deployed contract"


def test_a_struct_with_an_enum_in_another_contract(env: Env) -> None:
    """ReentrantAttacker keeps an Order (enum state, uint40 deadline, two uint128 in a slot) and
    an enum: decoded from its own artifact's layout, they are what was stored."""
    address, _ = deploy_contract(env.chain, env.outsider, "ReentrantAttacker", env.escrow.address)
    env.tx.reset_nonce(env.outsider.address)
    attacker = env.chain.w3.eth.contract(
        address=to_checksum_address(address), abi=load("ReentrantAttacker").abi
    )
    addresses = [to_checksum_address(keccak(bytes([i]))[:20]) for i in range(4)]
    order = Order(
        *addresses,
        amount=2**127 + 5,
        bond=2**100 + 3,
        quantity=2**31 + 7,
        fee_bps=0xBEEF,
        reseller_cut=2**120 + 0x1234,
        dispute_window=2**32 - 2,
        deadline=2**39 + 11,
        state=OrderState.RESOLVED,
        release_digest=keccak(b"digest"),
    )
    env.send(env.outsider, attacker.functions.setMode(2))
    env.send(env.outsider, attacker.functions.setSettleTarget(2**200 + 1, order.as_tuple()))
    layout = StorageLayout.from_artifact(load("ReentrantAttacker"))
    mode, settle_id, stored = layout.read(
        web3_storage_reader(env.chain.w3, address),
        layout.locate("mode"),
        layout.locate("settleId"),
        layout.locate("_settleOrder"),
    )
    assert (mode, settle_id) == (2, 2**200 + 1)
    names = zip(ORDER_LAYOUT.fields, ORDER_LAYOUT.solidity_names, strict=True)
    fields = {field: stored[solidity] for field, solidity in names}
    assert Order.from_fields(fields) == order


def test_value_and_key_encodings() -> None:
    """Packed values are right-aligned at their offset; signed and bytesN keys and values."""
    word = bytes(20) + bytes.fromhex("ff") + bytes.fromhex("11223344") + bytes(7)
    assert decode_value("bytes4", word, 7, 4) == bytes.fromhex("11223344")
    assert decode_value("int8", word, 11, 1) == -1
    assert decode_value("uint8", word, 11, 1) == 255
    assert decode_value("bool", word, 11, 1) is True
    assert decode_value("uint56", word, 0, 7) == 0
    assert encode_key("int16", -2) == b"\xff" * 30 + b"\xff\xfe"
    assert encode_key("bytes4", b"\x01\x02") == b"\x01\x02" + bytes(30)
    assert encode_key("address", "0x" + "ab" * 20) == bytes(12) + b"\xab" * 20
    with pytest.raises(ValueError):
        encode_key("uint8", 256)
    with pytest.raises(ValueError):
        encode_key("address", 5)


def test_the_layout_refuses_what_it_cannot_locate_or_decode() -> None:
    layout = escrow_layout()
    with pytest.raises(StorageLayoutError, match="no state variable"):
        layout.locate("_nonexistent")
    with pytest.raises(StorageLayoutError, match="cannot decode"):
        layout.slots(layout.locate("_ledgers"))
    with pytest.raises(StorageLayoutError, match="no member"):
        layout.locate("_config", "nonexistent")
    with pytest.raises(ValueError):
        layout.locate("_listings", "not a listing id")
    text = StorageLayout.from_artifact(load("TestToken"))
    with pytest.raises(StorageLayoutError, match="cannot decode string"):
        text.slots(text.locate("_name"))


def test_an_artifact_without_a_storage_layout_is_a_clear_error(tmp_path: Path) -> None:
    """Artifacts built before storage layouts were recorded still load; asking for the layout
    says to recompile."""
    data = json.loads((ARTIFACTS_DIR / "CodeEscrow.json").read_text())
    del data["storageLayout"]
    old = tmp_path / "CodeEscrow.json"
    old.write_text(json.dumps(data))
    artifact = read_artifact(old)
    assert artifact.storage_layout is None
    assert artifact == replace(load("CodeEscrow"), storage_layout=None)
    with pytest.raises(StaleArtifactsError, match=r"no storageLayout.*kameng compile --force"):
        StorageLayout.from_artifact(artifact)


def test_the_listing_bit_offsets_buy_reads_are_the_compilers() -> None:
    """`buy` reads a listing's first and third words once each and takes its fields out by the
    `_*_SHIFT` constants of CodeEscrow.sol; each is the member's slot and byte offset in the
    compiler's storageLayout (a reordered struct fails here, not in a wrong price)."""
    source = (Path(__file__).parents[2] / "contracts/src/CodeEscrow.sol").read_text()
    shifts = {
        name: int(bits)
        for name, bits in re.findall(r"uint256 private constant _([A-Z_]+)_SHIFT = (\d+);", source)
    }
    layout = load("CodeEscrow").require_storage_layout()
    (listing,) = (t for k, t in layout["types"].items() if k.startswith("t_struct(Listing)"))
    members = {m["label"]: (int(m["slot"]), 8 * int(m["offset"])) for m in listing["members"]}
    want = {
        "COMMITTED": "committed",
        "SOLD": "sold",
        "BOND_BPS": "bondBps",
        "ACTIVE": "active",
        "DISPUTE_WINDOW": "disputeWindow",
        "FEE_BPS": "feeBps",
        "ON_CHAIN_FROM": "onChainFrom",
        "TIERED": "tiered",
    }
    assert set(shifts) == set(want)
    for constant, member in want.items():
        slot = 0 if constant in ("COMMITTED", "SOLD", "BOND_BPS", "ACTIVE") else 2
        assert members[member] == (slot, shifts[constant]), constant
    # The fields read at bit 0 of those words without a constant.
    assert members["supplier"] == (0, 0) and members["deliveryWindow"] == (2, 0)
