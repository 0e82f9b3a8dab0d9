"""Release v2: sealing, the buyer's verification, every tampering it must catch, and the
on-chain proof of a bad code built from a fetched release."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from eth_utils import keccak
from nacl.public import PrivateKey

from backend.errors import ReleaseInvalid
from backend.release import (
    BuiltRelease,
    CodeToSeal,
    Release,
    bad_code_proof,
    decode_payload,
    open_release,
    seal_release,
    verify_release,
)
from backend.release_store import release_from_row
from bench.world import World, demo_codes
from contracts.encoding import commitment, leaf, order_id
from contracts.merkle import MerkleTree

CHAIN_ID = 31337
ESCROW = "0x" + "12" * 20


@dataclass
class Case:
    """A listing's batch and a sealed order over part of it."""

    key: PrivateKey
    codes: list[bytes]
    salts: list[bytes]
    tree: MerkleTree
    oid: int
    quantity: int
    built: BuiltRelease
    release: Release

    @property
    def batches(self) -> dict[int, tuple[bytes, int, int]]:
        return {0: (self.tree.root, 0, len(self.codes))}

    def verify(self, **overrides: object) -> object:
        kwargs: dict[str, object] = {
            "chain_id": CHAIN_ID,
            "escrow": ESCROW,
            "onchain_digest": self.built.digest,
            "quantity": self.quantity,
            "batches": self.batches,
        }
        kwargs.update(overrides)
        release = kwargs.pop("release", self.release)
        key = kwargs.pop("key", self.key)
        return verify_release(release, key, **kwargs)  # type: ignore[arg-type]


def make_case(
    *, first: int = 2, quantity: int = 3, swap: int | None = None, listing_id: int = 1
) -> Case:
    codes = demo_codes(8)
    salts = [os.urandom(32) for _ in codes]
    commitments = [commitment(s, c) for s, c in zip(salts, codes, strict=True)]
    tree = MerkleTree([leaf(i, c) for i, c in enumerate(commitments)])
    key = PrivateKey.generate()
    to_seal = []
    for i in range(first, first + quantity):
        code = b"KMG-SWAPPED-CODE" if i == swap else codes[i]
        to_seal.append(
            CodeToSeal(i, code, salts[i], commitments[i], 0, tree.root, tree.proof(i), 1900000000)
        )
    oid = order_id(listing_id, first)
    built = seal_release(
        chain_id=CHAIN_ID,
        escrow=ESCROW,
        order_id=oid,
        buyer_pubkey=bytes(key.public_key),
        codes=to_seal,
    )
    release = Release(
        order_id=oid,
        chain_id=CHAIN_ID,
        escrow=ESCROW,
        buyer="0x" + "34" * 20,
        listing_id=listing_id,
        first_index=first,
        quantity=quantity,
        sealed=built.sealed,
        digest=built.digest,
        element_root=built.element_root,
        codes=[
            {
                "index": c.index,
                "commitment": c.commitment,
                "batch_index": 0,
                "batch_root": tree.root,
                "proof": c.proof,
            }
            for c in to_seal
        ],
        state="confirmed",
    )
    return Case(key, codes, salts, tree, oid, quantity, built, release)


def test_buyer_opens_and_verifies_every_code() -> None:
    case = make_case()
    verified = case.verify()
    assert [c.index for c in verified.codes] == [2, 3, 4]  # type: ignore[attr-defined]
    assert [c.code for c in verified.codes] == case.codes[2:5]  # type: ignore[attr-defined]
    assert verified.codes[0].expires_at == 1900000000  # type: ignore[attr-defined]


def test_release_survives_json_and_nothing_secret_is_outside_the_box() -> None:
    case = make_case()
    again = Release.model_validate_json(case.release.model_dump_json())
    assert again == case.release
    text = case.release.model_dump_json()
    for i in range(2, 5):
        assert case.codes[i].decode() not in text
        assert case.salts[i].hex() not in text
    assert '"sealed":"0x' in text


def test_seal_is_randomized_but_the_payload_is_canonical() -> None:
    a, b = make_case(), make_case()
    assert a.built.sealed != b.built.sealed
    tag, chain, escrow, oid, key, items = decode_payload(open_release(a.release, a.key))
    assert (tag, chain, escrow.lower(), oid) == ("kameng.release.v2", CHAIN_ID, ESCROW, a.oid)
    assert len(key) == 32 and [i for i, *_ in items] == [2, 3, 4]


def test_redacted_reprs() -> None:
    case = make_case()
    verified = case.verify()
    text = repr(verified)
    assert all(c.decode() not in text for c in case.codes)
    assert "KMG" not in repr(CodeToSeal(0, b"KMG-1", b"s" * 32, b"c" * 32, 0, b"r" * 32, []))


def test_tampered_ciphertext_is_detected() -> None:
    case = make_case()
    sealed = bytearray(case.release.sealed)
    sealed[60] ^= 0x01
    tampered = case.release.model_copy(update={"sealed": bytes(sealed)})
    with pytest.raises(ReleaseInvalid) as exc:
        case.verify(release=tampered)
    assert exc.value.reason == "cannot-open"


def test_another_key_cannot_open_it() -> None:
    case = make_case()
    with pytest.raises(ReleaseInvalid) as exc:
        case.verify(key=PrivateKey.generate())
    assert exc.value.reason == "cannot-open"


def test_a_release_other_than_the_one_on_chain_is_rejected() -> None:
    case, other = make_case(), make_case()
    with pytest.raises(ReleaseInvalid) as exc:
        case.verify(onchain_digest=other.built.digest)
    assert exc.value.reason == "digest-mismatch"
    # A box resealed to the same key (fresh release key) is also not the posted one.
    swapped = case.release.model_copy(update={"sealed": make_case().built.sealed})
    with pytest.raises(ReleaseInvalid):
        case.verify(release=swapped)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"chain_id": 1}, "wrong-order"),
        ({"escrow": "0x" + "99" * 20}, "wrong-order"),
        ({"quantity": 2}, "wrong-indexes"),
    ],
)
def test_payload_must_name_this_order(override: dict[str, object], reason: str) -> None:
    with pytest.raises(ReleaseInvalid) as exc:
        make_case().verify(**override)
    assert exc.value.reason == reason


def test_release_for_another_order_id_is_rejected() -> None:
    case = make_case()
    moved = case.release.model_copy(update={"order_id": order_id(1, 3)})
    with pytest.raises(ReleaseInvalid) as exc:
        case.verify(release=moved)
    assert exc.value.reason == "wrong-order"


def test_swapped_code_fails_its_commitment() -> None:
    case = make_case(swap=3)
    with pytest.raises(ReleaseInvalid) as exc:
        case.verify()
    assert exc.value.reason == "commitment-mismatch"
    assert "KMG-SWAPPED" not in str(exc.value)


def test_proof_against_another_root_fails() -> None:
    case = make_case()
    with pytest.raises(ReleaseInvalid) as exc:
        case.verify(batches={0: (keccak(b"other root"), 0, 8)})
    assert exc.value.reason == "proof-mismatch"
    with pytest.raises(ReleaseInvalid) as exc:
        case.verify(batches={0: (case.tree.root, 0, 3)})
    assert exc.value.reason == "batch-range"
    with pytest.raises(ReleaseInvalid) as exc:
        case.verify(batches={})
    assert exc.value.reason == "unknown-batch"


def test_bad_code_proof_from_a_release_wins_on_chain(world: World) -> None:
    """A supplier that seals a code other than the committed one loses its bond and the
    payment to the buyer's proof, built from nothing but the fetched release and the key."""
    escrow, buyer = world.escrow, world.buyers[0]
    lid, _ = escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**16)
    escrow.deposit_bond(world.supplier, 10**18)
    honest = make_case(listing_id=lid, first=0, quantity=2, swap=1)
    escrow.commit_batch(world.supplier, lid, honest.tree.root, len(honest.codes))
    oid, order, _ = escrow.buy(
        buyer, lid, 2, max_unit_price=10**16, buyer_pubkey=bytes(honest.key.public_key)
    )
    assert oid == honest.oid
    (order,), _ = escrow.deliver(world.delivery_key, [(oid, order, honest.built.digest)])
    with pytest.raises(ReleaseInvalid) as exc:
        honest.verify()
    assert exc.value.reason == "commitment-mismatch"
    proof = bad_code_proof(honest.release, honest.key, 1)
    assert "KMG" not in repr(proof)
    escrow._send(buyer, "proveBadCode", oid, order.as_tuple(), proof.as_tuple())
    assert escrow.balance_of(buyer.address) == order.amount + order.bond


def test_release_from_row_round_trips_the_manifest() -> None:
    case = make_case()

    class Row:
        order_id = case.oid
        buyer = case.release.buyer
        listing_id = 1
        first_index = 2
        quantity = 3
        sealed = case.built.sealed
        digest = "0x" + case.built.digest.hex()
        manifest = case.built.manifest
        state = "prepared"
        tx_hash = None

    release = release_from_row(Row(), CHAIN_ID, ESCROW)  # type: ignore[arg-type]
    assert release.codes == case.release.codes
    assert release.element_root == case.built.element_root
    case.verify(release=release)
