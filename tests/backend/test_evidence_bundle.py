"""Evidence bundles on eth-tester: canonical form, the chain-only verifier, single-byte flips,
forged bundles (scenario 5) and bundles checked again after the chain moved on."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backend.config import Settings
from backend.db import make_engine, migrate, session_factory
from backend.delivery.agent import DeliveryAgent
from backend.evidence import canonical
from backend.evidence.bundle import Built, build_bundle
from backend.evidence.chainview import ChainView
from backend.evidence.derive import derive_opening
from backend.evidence.errors import BundleFormatError
from backend.evidence.schema import ReleaseSection, to_json
from backend.evidence.verify import Checklist, verify_bundle
from backend.keys import next_order_key, public_key_bytes
from backend.release import Release
from backend.release_store import get_release
from bench.world import World, make_world
from contracts.chain import Chain, embedded_chain
from tests.backend.engine_delivery import Bought, buy
from tests.backend.engine_helpers import engine_settings, stock_listing
from tests.backend.evidence_helpers import edit

#: Order B's unit price in the reseller's shop (the listing's is 10**15, its reseller price
#: 8 * 10**14).
SHOP_PRICE = 12 * 10**14


@dataclass
class Env:
    """One chain with two delivered orders (A: 3 codes; B: 2 codes, bought in a reseller's shop)
    and their releases."""

    chain: Chain
    world: World
    view: ChainView
    a: Bought
    b: Bought
    release_a: Release
    release_b: Release
    settings: Settings

    def bundle(self, *, secret: bool = True, order: str = "a") -> Built:
        bought, release = (self.a, self.release_a) if order == "a" else (self.b, self.release_b)
        return build_bundle(
            self.view,
            bought.oid,
            release=release,
            buyer_secret=bytes(bought.key) if secret else None,
        )

    def verify(self, data: bytes) -> Checklist:
        return verify_bundle(data, self.chain)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    chain = embedded_chain()
    world = make_world(chain)
    url = f"sqlite:///{tmp_path_factory.mktemp('evidence')}/kameng.db"
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    settings = engine_settings()
    stocked = stock_listing(world, sessions, settings, count=10)
    a = buy(world.escrow, world.buyers[0], stocked.listing_id, 3)
    shop = world.buyers[2]
    world.escrow.set_reseller_price(world.supplier, stocked.listing_id, 8 * 10**14)
    world.escrow.set_shop_price(shop, stocked.listing_id, SHOP_PRICE)
    key, _ = next_order_key(world.escrow, world.buyers[1])
    oid, order, _ = world.escrow.buy(
        world.buyers[1],
        stocked.listing_id,
        2,
        max_unit_price=SHOP_PRICE,
        buyer_pubkey=public_key_bytes(key),
        reseller=shop.address,
    )
    b = Bought(oid, order, world.buyers[1], key)
    DeliveryAgent(settings, sessions, world.escrow, world.delivery_key).drain()
    with sessions() as session:
        release_a, release_b = get_release(session, a.oid), get_release(session, b.oid)
    yield Env(
        chain, world, ChainView(chain, world.escrow.address), a, b, release_a, release_b, settings
    )
    engine.dispose()


def failed(checklist: Checklist) -> set[str]:
    return {c.name for c in checklist.failed()}


# ---------------------------------------------------------------- canonical form


def test_canonical_json_sorts_keys_and_refuses_floats_duplicates_and_big_numbers() -> None:
    assert (
        canonical.dumps({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()
    )
    for bad in (b'{"a":1.5}', b'{"a":1,"a":2}', b'{"a":NaN}', b"\xff"):
        with pytest.raises(BundleFormatError):
            canonical.loads(bad)
    with pytest.raises(BundleFormatError):
        canonical.dumps({"a": 2**53})


def test_multihash_is_keccak_base58_and_self_hash_leaves_itself_out() -> None:
    digest = bytes(range(32))
    text = canonical.multihash(digest)
    assert canonical.digest_of(text) == digest
    assert canonical.b58decode(canonical.b58encode(b"\0\0abc")) == b"\0\0abc"
    doc = {"x": 1}
    assert canonical.self_hash(doc) == canonical.self_hash({**doc, "selfHash": "anything"})


# ---------------------------------------------------------------- honest bundles


def test_honest_bundle_with_the_buyers_secret_passes_every_claim(env: Env) -> None:
    built = env.bundle()
    checklist = env.verify(built.data)
    assert checklist.ok, checklist.failed()
    assert all(c.status == "pass" for c in checklist.claims)
    names = {c.name for c in checklist.claims}
    assert {
        "selfHash",
        "chain.asOf",
        "escrow.bytecode",
        "listing",
        "batches",
        "order",
        "order.storage",
        "events",
        "transactions",
        "delivery",
        "release.digest",
        "release.opening",
        "additions.buyer",
        "release.code[0]",
        "release.code[2]",
    } <= names
    assert checklist.bundle_hash == built.bundle_hash
    assert canonical.digest_of(built.self_hash) == built.bundle_hash
    kinds = [f.kind for f in checklist.findings]
    assert "codes-match" in kinds and kinds.count("code") == 3
    bundle = built.bundle
    assert bundle.order.indexes == [0, 1, 2]
    assert bundle.file_uri is not None and bundle.file_uri.startswith("data:")
    assert bundle.opening is not None and all(c.matches_commitment for c in bundle.opening.codes)
    assert {t.hash for t in bundle.transactions} >= {
        bundle.listing.created.tx,
        bundle.order.paid.tx,
        bundle.batches[0].event.tx,
    }


def test_a_shop_orders_bundle_carries_the_reseller_and_its_cut(env: Env) -> None:
    """The order struct names the reseller and its cut (an amount, a decimal string like every
    amount); both are bound by the order's stored hash, so a bundle that changes either fails."""
    built = env.bundle(order="b")
    assert env.verify(built.data).ok
    struct = built.bundle.order.struct
    shop = env.world.buyers[2].address
    assert (struct.reseller, struct.reseller_cut) == (shop, str((SHOP_PRICE - 8 * 10**14) * 2))
    assert struct.amount == str(2 * SHOP_PRICE)
    doc = canonical.loads(built.data)
    assert doc["order"]["struct"]["resellerCut"] == "800000000000000"
    assert "referrer" not in doc["order"]["struct"] and "referralBps" not in doc["listing"]
    plain = env.bundle().bundle.order.struct
    assert (plain.reseller, plain.reseller_cut) == ("0x" + "00" * 20, "0")

    def bigger_cut(doc: dict) -> None:
        doc["order"]["struct"]["resellerCut"] = "800000000000001"

    def other_shop(doc: dict) -> None:
        doc["order"]["struct"]["reseller"] = env.world.buyers[0].address

    for forge in (bigger_cut, other_shop):
        assert "order" in failed(env.verify(edit(built.data, forge))), forge.__name__


def test_without_the_buyers_secret_the_key_hash_binds_the_release(env: Env) -> None:
    checklist = env.verify(env.bundle(secret=False).data)
    assert checklist.ok
    assert checklist.claim("release.digest").status == "pass"
    assert "key hash" in checklist.claim("release.digest").detail


def test_without_key_hash_or_secret_the_release_binding_is_skipped_not_failed(env: Env) -> None:
    def drop_key_hash(doc: dict) -> None:
        doc["release"].pop("keyHash", None)
        doc["release"].pop("key_hash", None)

    data = edit(env.bundle(secret=False).data, drop_key_hash)
    checklist = env.verify(data)
    assert checklist.claim("release.digest").status == "skip"
    assert "buyer's secret" in checklist.claim("release.digest").detail


# ---------------------------------------------------------------- single-byte flips


def test_flipping_any_single_byte_fails_verification(env: Env) -> None:
    data = env.bundle().data
    rng = random.Random(5)
    positions = sorted(
        set(range(0, len(data), max(1, len(data) // 60))) | set(rng.sample(range(len(data)), 40))
    )
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= 0x01
        checklist = env.verify(bytes(flipped))
        assert not checklist.ok, f"byte {pos} ({data[pos : pos + 1]!r}) flipped and still verified"
        assert checklist.failed()[0].name


def test_flips_fail_on_a_named_claim_even_when_the_forger_recomputes_self_hash(env: Env) -> None:
    data = env.bundle().data
    rng = random.Random(7)
    tried = 0
    for pos in rng.sample(range(len(data)), 120):
        flipped = bytearray(data)
        flipped[pos] ^= 0x01
        try:
            doc = canonical.loads(bytes(flipped))
            doc.pop("selfHash", None)
            forged = canonical.seal(doc)
        except (BundleFormatError, AttributeError, TypeError):
            continue  # not JSON any more: covered by the test above
        if forged == data:
            continue  # the flip was inside selfHash, which the forger recomputed
        tried += 1
        names = failed(env.verify(forged))
        assert names - {"selfHash", "canonical"}, f"byte {pos}: only {names} failed"
    assert tried >= 60


# ---------------------------------------------------------------- forged bundles (scenario 5)


def test_swapped_merkle_proof_is_rejected_naming_the_code(env: Env) -> None:
    def swap(doc: dict) -> None:
        codes = doc["release"]["codes"]
        codes[0]["proof"], codes[1]["proof"] = codes[1]["proof"], codes[0]["proof"]

    checklist = env.verify(edit(env.bundle(secret=False).data, swap))
    assert {"release.code[0]", "release.code[1]"} <= failed(checklist)
    assert "on-chain root" in checklist.claim("release.code[0]").detail


@pytest.mark.parametrize(
    ("path", "claim"),
    [
        (("delivery", "deliveredAt"), "delivery"),
        (("asOf", "timestamp"), "chain.asOf"),
        (("transactions", 0, "timestamp"), "transactions"),
        (("delivery", "disputeDeadline"), "delivery"),
    ],
)
def test_edited_timestamp_is_rejected(env: Env, path: tuple, claim: str) -> None:
    def shift(doc: dict) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] += 3600

    checklist = env.verify(edit(env.bundle().data, shift))
    assert claim in failed(checklist)
    assert not checklist.ok


def test_another_orders_release_is_rejected(env: Env) -> None:
    """B's sealed release in A's bundle, with A's secret and every derived field made
    consistent by the forger: the release does not bind to A's on-chain digest."""
    a, b = env.a, env.release_b

    def transplant(doc: dict) -> None:
        doc["fileURI"] = (
            "data:application/octet-stream;base64," + base64.b64encode(b.sealed).decode()
        )
        doc["fileHash"] = canonical.keccak_multihash(b.sealed)
        release = ReleaseSection.model_validate(doc["release"])
        opening = derive_opening(
            chain_id=env.chain.chain_id,
            escrow=env.world.escrow.address,
            order_id=a.oid,
            quantity=3,
            onchain_digest=bytes.fromhex(doc["delivery"]["releaseDigest"][2:]),
            sealed=b.sealed,
            secret=bytes(a.key),
            release=release,
        )
        doc["opening"] = to_json(opening)

    checklist = env.verify(edit(env.bundle().data, transplant))
    assert "release.digest" in failed(checklist)
    assert "do not give the on-chain digest" in checklist.claim("release.digest").detail


def test_another_orders_secret_is_rejected(env: Env) -> None:
    def other_secret(doc: dict) -> None:
        doc["additions"]["buyer"]["orderSecret"] = "0x" + bytes(env.b.key).hex()

    assert "additions.buyer" in failed(env.verify(edit(env.bundle().data, other_secret)))


def test_dropped_event_and_invented_dispute_are_rejected(env: Env) -> None:
    def drop(doc: dict) -> None:
        doc["events"] = doc["events"][:1]

    assert "events" in failed(env.verify(edit(env.bundle().data, drop)))

    def invent(doc: dict) -> None:
        doc["dispute"] = {
            "openedAt": 1,
            "arbitrationDeadline": 2,
            "evidenceURI": "x",
            "evidenceHash": "0x" + "00" * 32,
            "event": doc["delivery"]["event"],
        }

    assert "dispute" in failed(env.verify(edit(env.bundle().data, invent)))


def test_a_bundle_checked_on_another_chain_fails_naming_the_chain(env: Env) -> None:
    data = env.bundle().data
    assert failed(verify_bundle(data, embedded_chain())) == {"chain.asOf"}

    def other_id(doc: dict) -> None:
        doc["chainId"] = 1

    assert failed(env.verify(edit(data, other_id))) == {"chain.id"}


# ---------------------------------------------------------------- later, on a finished chain


def test_old_bundle_still_verifies_after_the_order_finished(env: Env, tmp_path: Path) -> None:
    """A bundle pinned to an older block verifies after the order was confirmed and the chain
    moved on (state read at the bundle's block); a fresh bundle shows the finished order."""
    old = env.bundle(order="b")
    path = tmp_path / "b.json"
    path.write_bytes(old.data)
    order = old.bundle.order
    from backend.evidence.arbiter import order_from_struct

    env.world.escrow.confirm(env.b.buyer, env.b.oid, order_from_struct(order.struct))
    env.chain.mine(30)
    assert env.verify(path.read_bytes()).ok
    fresh = env.bundle(order="b")
    checklist = env.verify(fresh.data)
    assert checklist.ok, checklist.failed()
    assert fresh.bundle.order.struct.state == 4
    assert fresh.bundle.order.stored_hash == "0x" + "00" * 32
    assert [e.name for e in fresh.bundle.events][-1] == "OrderConfirmed"
