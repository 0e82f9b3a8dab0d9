"""Evidence for orders delivered with ``deliverOnChain`` (issue 16): the bundle takes the sealed
release from the ReleasePublished log, not from the backend's database, so it can be built and
checked from a node alone; a bundle whose release is not the log's fails ``release.source``.

One served backend on eth-tester (its API exposes the chain at ``/rpc``) without a delivery
agent: the supplier commits its own batch and delivers two orders itself, one on-chain, one with
plain ``deliver``. The backend never stores a release row for either.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from backend.cli import app
from backend.evidence import canonical
from backend.evidence.schema import EvidenceBundle
from backend.evidence.verify import Checklist, verify_bundle
from backend.keys import public_key_bytes
from backend.release import CodeToSeal, published_from_manifest, seal_release
from bench.world import demo_codes
from contracts.encoding import PublishedRelease, commitment, split_order_id
from tests.backend.api_helpers import Bought, Served, serve
from tests.backend.evidence_helpers import Committed, commit_own_batch, deliver_own, edit

runner = CliRunner()


@dataclass
class Stage:
    """The served backend, the on-chain delivered order and the off-chain one."""

    served: Served
    on_chain: Bought
    published: PublishedRelease
    delivery_tx: str
    off_chain: Bought
    tmp: Path

    @property
    def rpc(self) -> str:
        return self.served.url + "/rpc"

    def kameng(self, *args: str, expect: int = 0) -> Result:
        result = runner.invoke(app, list(args))
        assert result.exit_code == expect, (args, result.output, result.exception)
        return result

    def from_chain(self, bought: Bought, out: Path, *extra: str, expect: int = 0) -> Result:
        """`kameng evidence ORDER --escrow ... --rpc-url ...`: no backend involved."""
        escrow = self.served.escrow.address
        return self.kameng(
            "evidence",
            str(bought.order_id),
            "--escrow",
            escrow,
            "--rpc-url",
            self.rpc,
            "--out",
            str(out),
            *extra,
            expect=expect,
        )

    def verify(self, data: bytes) -> Checklist:
        return verify_bundle(data, self.served.runtime.chain)


def deliver_on_chain_own(served: Served, batch: Committed, bought: Bought) -> tuple[str, bytes]:
    """Seal the order's committed codes as the agent would and deliver them with
    ``deliverOnChain``; returns the transaction and the published release's sealed bytes."""
    escrow, supplier = served.escrow, served.dev.supplier
    _, first = split_order_id(bought.order_id)
    items = []
    for j in range(bought.order.quantity):
        pos = first + j - batch.first_index
        items.append(
            CodeToSeal(
                index=first + j,
                code=batch.codes[pos],
                salt=batch.salts[pos],
                commitment=commitment(batch.salts[pos], batch.codes[pos]),
                batch_index=batch.batch_index,
                batch_root=batch.tree.root,
                proof=batch.tree.proof(pos),
            )
        )
    built = seal_release(
        chain_id=escrow.chain.chain_id,
        escrow=escrow.address,
        order_id=bought.order_id,
        buyer_pubkey=public_key_bytes(bought.key),
        codes=items,
    )
    published = published_from_manifest(built.sealed, built.manifest)
    assert published.digest() == built.digest
    escrow.tx.reset_nonce(supplier.address)
    _, res = escrow.deliver_on_chain(
        supplier, [(bought.order_id, bought.order, built.digest, published)]
    )
    return res.tx_hash.lower(), built.sealed


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    tmp = tmp_path_factory.mktemp("onchain")
    with serve(buyers=2, agent=False) as served:
        dev, escrow = served.dev, served.escrow
        escrow.tx.reset_nonce(dev.supplier.address)
        listing, _ = escrow.create_listing(
            dev.supplier, sku=dev.sku, unit_price=10**16, metadata_uri="kameng:dev/onchain"
        )
        batch = commit_own_batch(escrow, dev.supplier, listing, demo_codes(5, 700))
        on_chain = served.buy(dev.buyers[0], 3, listing_id=listing)
        off_chain = served.buy(dev.buyers[1], 2, listing_id=listing)
        tx, _ = deliver_on_chain_own(served, batch, on_chain)
        published = escrow.published_releases([on_chain.order_id])[on_chain.order_id]
        escrow.tx.reset_nonce(dev.supplier.address)
        deliver_own(
            escrow,
            dev.supplier,
            batch,
            off_chain.order_id,
            off_chain.order,
            public_key_bytes(off_chain.key),
        )
        served.wait_indexed()
        from backend.models import Release as ReleaseRow

        with served.runtime.sessions() as session:
            assert session.get(ReleaseRow, on_chain.order_id) is None
            assert session.get(ReleaseRow, off_chain.order_id) is None
        yield Stage(served, on_chain, published, tx, off_chain, tmp)


def bundle_of(path: Path) -> EvidenceBundle:
    return EvidenceBundle.model_validate(canonical.loads(path.read_bytes()))


def sealed_of(bundle: EvidenceBundle) -> bytes:
    assert bundle.file_uri is not None
    return base64.b64decode(bundle.file_uri.split(",", 1)[1])


def test_bundle_of_an_order_delivered_on_chain_comes_from_a_node_alone(stage: Stage) -> None:
    # No backend, no secret: the release is the ReleasePublished log's, and keyHash (on-chain)
    # ties it to the digest.
    plain = stage.tmp / "plain.json"
    out = stage.from_chain(stage.on_chain, plain).output
    assert "published on-chain" in out and "every claim checks against the chain" in out
    bundle = bundle_of(plain)
    release = bundle.release
    assert release is not None and release.source == "chain" and release.published is not None
    assert release.published.tx == stage.delivery_tx == bundle.delivery.event.tx  # type: ignore[union-attr]
    assert sealed_of(bundle) == stage.published.sealed_release
    assert release.key_hash == "0x" + stage.published.key_hash.hex()
    assert [c.index for c in release.codes] == bundle.order.indexes
    checklist = stage.verify(plain.read_bytes())
    assert checklist.ok, checklist.failed()
    assert checklist.claim("release.source").status == "pass"
    assert checklist.claim("release.digest").status == "pass"
    assert "published" in [f.kind for f in checklist.findings]

    # The arbiter holding the buyer's secret (a file) opens the chain's release.
    secret_file = stage.tmp / "secret.hex"
    secret_file.write_text("0x" + bytes(stage.on_chain.key).hex() + "\n")
    opened = stage.tmp / "opened.json"
    out = stage.from_chain(stage.on_chain, opened, "--order-secret-file", str(secret_file)).output
    assert "the release opens to the committed codes" in out
    assert bundle_of(opened).opening is not None
    assert stage.verify(opened.read_bytes()).claim("release.opening").status == "pass"

    # Bad secrets: one line each, nothing saved.
    refused = stage.tmp / "refused.json"
    secret_file.write_text("0x1234")
    out = stage.from_chain(
        stage.on_chain, refused, "--order-secret-file", str(secret_file), expect=2
    ).output
    assert "must hold the order's 32-byte secret" in out and "1234" not in out
    secret_file.write_text("0x" + os.urandom(32).hex())
    out = stage.from_chain(
        stage.on_chain, refused, "--order-secret-file", str(secret_file), expect=2
    ).output
    assert "is not the key of order" in out and not refused.exists()

    # The backend's own bundle (no release row in its database) carries the chain's release.
    buyer_key = stage.tmp / "buyer0.key"
    buyer_key.write_text("0x" + bytes(stage.on_chain.buyer.key).hex())
    served = stage.tmp / "served.json"
    args = ["evidence", str(stage.on_chain.order_id), "--out", str(served)]
    stage.kameng(*args, "--api", stage.served.url, "--key-file", str(buyer_key))
    from_api = bundle_of(served)
    assert from_api.release == release and sealed_of(from_api) == sealed_of(bundle)

    # An order delivered off-chain, with no backend: no release to carry, still verifies.
    off = stage.tmp / "off.json"
    out = stage.from_chain(stage.off_chain, off).output
    assert "delivered off-chain" in out and bundle_of(off).release is None


def test_a_release_that_is_not_the_logs_fails_release_source(stage: Stage) -> None:
    plain = stage.tmp / "plain.json"
    if not plain.exists():
        stage.from_chain(stage.on_chain, plain)
    data = plain.read_bytes()

    def other_bytes(doc: dict[str, Any]) -> None:
        # A forger swaps in other sealed bytes and recomputes fileHash and selfHash.
        sealed = bytearray(base64.b64decode(doc["fileURI"].split(",", 1)[1]))
        sealed[40] ^= 1
        doc["fileURI"] = "data:application/octet-stream;base64," + base64.b64encode(
            bytes(sealed)
        ).decode("ascii")
        doc["fileHash"] = canonical.keccak_multihash(bytes(sealed))

    checklist = stage.verify(edit(data, other_bytes))
    failed = {c.name: c.detail for c in checklist.failed()}
    assert set(failed) == {"release.source", "release.digest"}, failed
    assert "are not the ReleasePublished log's at " + stage.delivery_tx in failed["release.source"]

    def other_commitment(doc: dict[str, Any]) -> None:
        doc["release"]["codes"][1]["commitment"] = "0x" + "ab" * 32

    failed = {c.name: c.detail for c in stage.verify(edit(data, other_commitment)).failed()}
    assert "release.codes[1].commitment: bundle says '0xabab" in failed["release.source"]

    def other_log(doc: dict[str, Any]) -> None:
        doc["release"]["published"]["logIndex"] -= 1  # the OrderDelivered before it

    failed = {c.name: c.detail for c in stage.verify(edit(data, other_log)).failed()}
    assert set(failed) == {"release.source"}
    assert "the bundle cites" in failed["release.source"]

    # An off-chain release dressed up as the chain's.
    off = stage.tmp / "off.json"
    if not off.exists():
        stage.from_chain(stage.off_chain, off)

    def dressed(doc: dict[str, Any]) -> None:
        other = canonical.loads(data)
        for key in ("fileURI", "fileHash", "fileTypeExtension", "release"):
            doc[key] = other[key]

    failed = {c.name: c.detail for c in stage.verify(edit(off.read_bytes(), dressed)).failed()}
    assert "has no ReleasePublished log" in failed["release.source"]

    # kameng verify says so, and exits 1.
    forged = stage.tmp / "forged.json"
    forged.write_bytes(edit(data, other_bytes))
    out = stage.kameng("verify", str(forged), "--rpc-url", stage.rpc, expect=1).output
    assert "release.source" in out and "claim(s) failed" in out
