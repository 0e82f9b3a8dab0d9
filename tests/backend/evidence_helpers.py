"""Helpers of the evidence tests: a supplier that commits codes itself and delivers what it
likes (a swapped code), and bundle surgery for forgeries.

An honest order goes through the vault and the delivery agent; a dishonest one is sealed here
with `backend.release.seal_release`, exactly as the agent would but with another code in one
place, so the release is well-formed v2 and its digest is on-chain.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_abi import encode as abi_encode
from eth_utils import keccak

from backend.evidence import canonical
from backend.release import CodeToSeal, Release, seal_release
from contracts.encoding import Order, commitment, leaf, split_order_id
from contracts.merkle import MerkleTree

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session, sessionmaker

    from contracts.client import EscrowClient


@dataclass
class Committed:
    """A batch the supplier committed itself (codes not in any vault)."""

    listing_id: int
    batch_index: int
    first_index: int
    codes: list[bytes]
    salts: list[bytes]
    tree: MerkleTree


def commit_own_batch(
    escrow: EscrowClient, supplier: LocalAccount, listing_id: int, codes: list[bytes]
) -> Committed:
    """Commit `codes` as the listing's next batch, keeping salts and tree here."""
    committed = int(escrow.call("getListing", listing_id)[1])
    salts = [os.urandom(32) for _ in codes]
    tree = MerkleTree(
        [
            leaf(committed + i, commitment(s, c))
            for i, (s, c) in enumerate(zip(salts, codes, strict=True))
        ]
    )
    res = escrow.commit_batch(supplier, listing_id, tree.root, len(codes))
    batch_index = int(res.event("BatchCommitted").args["batchIndex"])
    return Committed(listing_id, batch_index, committed, codes, salts, tree)


@dataclass
class Sealed:
    """A release sealed and delivered by a (maybe dishonest) supplier."""

    release: Release
    order: Order
    sent: list[bytes]


def deliver_own(
    escrow: EscrowClient,
    sender: LocalAccount,
    batch: Committed,
    oid: int,
    order: Order,
    buyer_pubkey: bytes,
    *,
    swap: dict[int, bytes] | None = None,
) -> Sealed:
    """Seal the order's codes from `batch` (with `swap` replacing some by position in the
    order) and post the digest with `deliver`."""
    _, first = split_order_id(oid)
    items = []
    sent = []
    for j in range(order.quantity):
        index = first + j
        pos = index - batch.first_index
        code = (swap or {}).get(j, batch.codes[pos])
        sent.append(code)
        items.append(
            CodeToSeal(
                index=index,
                code=code,
                salt=batch.salts[pos],
                commitment=commitment(batch.salts[pos], batch.codes[pos]),
                batch_index=batch.batch_index,
                batch_root=batch.tree.root,
                proof=batch.tree.proof(pos),
            )
        )
    chain_id = escrow.chain.chain_id
    built = seal_release(
        chain_id=chain_id,
        escrow=escrow.address,
        order_id=oid,
        buyer_pubkey=buyer_pubkey,
        codes=items,
    )
    (delivered,), res = escrow.deliver(sender, [(oid, order, built.digest)])
    manifest = json.loads(built.manifest)
    release = Release(
        order_id=oid,
        chain_id=chain_id,
        escrow=escrow.address,
        buyer=order.buyer,
        listing_id=batch.listing_id,
        first_index=first,
        quantity=order.quantity,
        sealed=built.sealed,
        digest=built.digest,
        element_root=manifest["element_root"],
        codes=manifest["codes"],
        state="confirmed",
        tx_hash=res.tx_hash,
    )
    return Sealed(release, delivered, sent)


def store_release(
    sessions: sessionmaker[Session], sealed: Sealed, oid: int, supplier: str, pubkey: bytes
) -> None:
    """Store a dishonest supplier's release where its backend keeps releases, so the API
    serves it to the buyer and puts it in the bundle."""
    from backend.models import Release as ReleaseRow

    r = sealed.release
    manifest = json.dumps(
        {
            "element_root": "0x" + r.element_root.hex(),
            "codes": [json.loads(c.model_dump_json()) for c in r.codes],
        }
    )
    with sessions() as session:
        session.add(
            ReleaseRow(
                order_id=oid,
                listing_id=r.listing_id,
                first_index=r.first_index,
                quantity=r.quantity,
                buyer=r.buyer,
                supplier=supplier,
                buyer_pubkey=pubkey,
                order_abi=abi_encode(["uint256"], [0]),
                paid_block=0,
                sealed=r.sealed,
                digest="0x" + r.digest.hex(),
                manifest=manifest,
                state="confirmed",
                tx_hash=r.tx_hash,
            )
        )
        session.commit()


def edit(data: bytes, change: Any, *, reseal: bool = True) -> bytes:
    """Apply `change(doc)` to a bundle's JSON and re-seal it (a forger recomputes selfHash)."""
    doc = canonical.loads(data)
    change(doc)
    if not reseal:
        return canonical.dumps(doc)
    doc.pop("selfHash", None)
    return canonical.seal(doc)


def sealed_hash(sealed: bytes) -> bytes:
    """keccak256 of sealed bytes."""
    return bytes(keccak(sealed))
