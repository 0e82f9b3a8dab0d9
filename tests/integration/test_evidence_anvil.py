"""Scenario 1 on anvil, through its JSON-RPC URL: a swapped code is proven by the bundle, the
arbiter refunds and slashes citing the bundle, a second swap is won with proveBadCode, and the
bundles still verify with `kameng verify --rpc-url` after the chain moved on by days."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from nacl.public import PrivateKey
from typer.testing import CliRunner

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from backend.cli import app  # noqa: E402
from backend.evidence import canonical  # noqa: E402
from backend.evidence.arbiter import find_bad_code, prove_bad_code, rule_on_bundle  # noqa: E402
from backend.evidence.bundle import build_bundle  # noqa: E402
from backend.evidence.chainview import ChainView  # noqa: E402
from backend.evidence.verify import verify_bundle  # noqa: E402
from backend.keys import next_order_key, public_key_bytes  # noqa: E402
from bench.world import demo_codes, make_world  # noqa: E402
from contracts.chain import AnvilNode, rpc_chain  # noqa: E402
from tests.backend.evidence_helpers import Sealed, commit_own_batch, deliver_own  # noqa: E402

pytestmark = pytest.mark.anvil


def test_swapped_code_on_anvil_bundle_ruling_proof_and_late_verification(
    anvil_node: AnvilNode, tmp_path: Path
) -> None:
    chain = rpc_chain(anvil_node.url)
    world = make_world(chain, buyers=2)
    escrow = world.escrow
    listing_id, _ = escrow.create_listing(world.supplier, sku=world.sku, unit_price=10**16)
    escrow.deposit_bond(world.supplier, 10**18)
    batch = commit_own_batch(escrow, world.supplier, listing_id, demo_codes(6))

    def cheat(
        buyer_no: int, quantity: int, swap: dict[int, bytes]
    ) -> tuple[LocalAccount, PrivateKey, int, Sealed]:
        buyer = world.buyers[buyer_no]
        key, _ = next_order_key(escrow, buyer)
        escrow.tx.reset_nonce(buyer.address)
        oid, order, _ = escrow.buy(
            buyer, listing_id, quantity, max_unit_price=10**16, buyer_pubkey=public_key_bytes(key)
        )
        sealed = deliver_own(
            escrow, world.delivery_key, batch, oid, order, public_key_bytes(key), swap=swap
        )
        return buyer, key, oid, sealed

    # The arbiter's path: the bundle proves the swap; the ruling refunds, slashes, cites it.
    buyer, key, oid, sealed = cheat(0, 2, {1: b"KMG-SWAPPED-ON-ANVIL"})
    view = ChainView(chain, escrow.address)
    disputed, _ = escrow.dispute(buyer, oid, sealed.order, "kameng:statement", b"\x01" * 32)
    built = build_bundle(view, oid, release=sealed.release, buyer_secret=bytes(key))
    checklist = verify_bundle(built.data, anvil_node.url)
    assert checklist.ok, checklist.failed()
    assert [f.kind for f in checklist.findings].count("bad-code") == 1
    path = tmp_path / "bundle.json"
    path.write_bytes(built.data)
    result = CliRunner().invoke(app, ["verify", str(path), "--rpc-url", anvil_node.url])
    assert result.exit_code == 0, result.output
    assert "does not match the commitment" in result.output

    outcome = rule_on_bundle(
        escrow, world.arbiter, built.data, buyer_bps=10_000, slash_bps=10_000, reason="bad-code"
    )
    ruled = outcome.tx.event("DisputeRuled").args
    assert bytes(ruled["bundleHash"]) == built.bundle_hash
    assert outcome.buyer_amount == disputed.amount and outcome.slashed == disputed.bond

    # Without a judge: proveBadCode from the opened release.
    buyer2, key2, oid2, sealed2 = cheat(1, 3, {2: b"KMG-ALSO-SWAPPED"})
    proof = find_bad_code(sealed2.release, key2)
    assert proof is not None and proof.index == sealed2.release.first_index + 2
    won = prove_bad_code(escrow, buyer2, oid2, sealed2.order, proof)
    assert won.buyer_amount == sealed2.order.amount and won.slashed == sealed2.order.bond

    # Weeks later, on the finished chain: the bundles verify against the node alone.
    chain.travel_to(chain.timestamp() + 30 * 86_400)
    chain.mine(50)
    late = tmp_path / "late.json"
    later = build_bundle(view, oid2, release=sealed2.release, buyer_secret=bytes(key2))
    late.write_bytes(later.data)
    for file in (path, late):
        result = CliRunner().invoke(app, ["verify", str(file), "--rpc-url", anvil_node.url])
        assert result.exit_code == 0, result.output
    assert later.bundle.ruling is not None and later.bundle.ruling.kind == "bad-code-proven"
    forged = bytearray(later.data)
    forged[len(forged) // 2] ^= 0x01
    late.write_bytes(bytes(forged))
    result = CliRunner().invoke(app, ["verify", str(late), "--rpc-url", anvil_node.url])
    assert result.exit_code == 1 and "FAIL" in result.output
    assert canonical.digest_of(built.self_hash) == built.bundle_hash
