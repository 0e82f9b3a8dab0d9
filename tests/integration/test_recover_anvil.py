"""`kameng recover` on anvil (issue 16): the real backend delivers a listing's orders on-chain
(the listing called requireOnChainRelease), then the backend is stopped and its database
deleted, and `kameng recover`, run as its own process with only the node, the escrow's address
and a buyer's key file, gets back every code of every order, each checked here against the
chain. An order of a listing that delivers off-chain is reported as such; a wrong address and a
wallet with no orders each get one line and exit 1; a node that refuses long log ranges gets
shorter ones."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from nacl.public import PrivateKey
from typer.testing import CliRunner

from backend.cli import app
from backend.cli.common import order_from_chain
from backend.client import KamengClient
from backend.keys import next_order_key, public_key_bytes
from backend.release import CodeToSeal, published_from_manifest, seal_release
from bench.world import World, demo_codes, make_world
from contracts.chain import AnvilNode, Chain
from contracts.encoding import commitment, decode_release_proofs, leaf
from contracts.merkle import verify as merkle_verify
from tests.backend.api_helpers import poll
from tests.integration.serve_support import (
    ROOT,
    capped_node,
    kameng_serve,
    node_serve_args,
    node_serve_env,
)

pytestmark = pytest.mark.anvil
runner = CliRunner()
PRICE = 10**15


def _buy(world: World, buyer: LocalAccount, listing: int, quantity: int) -> int:
    key, _ = next_order_key(world.escrow, buyer)
    world.escrow.tx.reset_nonce(buyer.address)
    oid, _, _ = world.escrow.buy(
        buyer, listing, quantity, max_unit_price=PRICE, buyer_pubkey=public_key_bytes(key)
    )
    return oid


def _key_file(account: LocalAccount, tmp: Path) -> Path:
    path = tmp / f"{account.address}.key"
    path.write_text("0x" + bytes(account.key).hex())
    return path


def _recover(anvil: AnvilNode, escrow: str, key: Path, out: Path, cwd: Path) -> str:
    """Run `kameng recover` as its own process, as a buyer would; return its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", "from backend.cli import main; main()", "recover"]
        + ["--rpc-url", anvil.url, "--escrow", escrow, "--key-file", str(key), "--out", str(out)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _check_against_chain(world: World, order: dict[str, Any], sold: list[bytes]) -> None:
    """Each recovered code is the one sold at its index, matches its commitment, and that
    commitment is under its batch's root on-chain by the proof the chain published."""
    oid, listing = int(order["order_id"]), int(order["listing_id"])
    published = world.escrow.published_releases([oid])[oid]
    proofs = {i: (c, b, p) for i, c, b, p in decode_release_proofs(published.proofs)}
    codes = order["codes"]
    assert len(codes) == order["quantity"] and len(codes) == len(proofs)
    for c in codes:
        index, code = int(c["index"]), str(c["code"]).encode()
        assert code == sold[index]
        committed = commitment(bytes.fromhex(str(c["salt"])[2:]), code)
        assert "0x" + committed.hex() == c["commitment"]
        claimed, batch, proof = proofs[index]
        assert claimed == committed
        root, _, _ = world.escrow.batch(listing, batch)
        assert merkle_verify(proof, root, leaf(index, committed))


def test_recover_every_code_after_the_backend_and_its_database_are_gone(
    node: tuple[AnvilNode, Chain], tmp_path: Path
) -> None:
    anvil, chain = node
    world = make_world(chain, buyers=3)
    escrow = world.escrow
    on_chain, _ = escrow.create_listing(world.supplier, sku=world.sku, unit_price=PRICE)
    plain, _ = escrow.create_listing(world.supplier, sku=world.sku, unit_price=PRICE)
    escrow.deposit_bond(world.supplier, 10**18)
    escrow.require_on_chain_release(world.supplier, on_chain)
    sold = {on_chain: demo_codes(12), plain: demo_codes(4, 500)}
    db = tmp_path / "kameng.db"
    buyers = world.buyers[:2]
    with kameng_serve(
        node_serve_args(world, anvil.url, f"sqlite:///{db}", tmp_path),
        env=node_serve_env(world),
        cwd=tmp_path,
    ) as (url, _):
        api = KamengClient(url)
        api.sign_in(world.supplier)
        for listing, codes in sold.items():
            assert api.upload_codes(listing, b"\n".join(codes)).state == "committed"
        mine = {
            buyers[0].address: [
                _buy(world, buyers[0], on_chain, 3),
                _buy(world, buyers[0], plain, 1),
                _buy(world, buyers[0], on_chain, 1),
            ],
            buyers[1].address: [
                _buy(world, buyers[1], on_chain, 4),
                _buy(world, buyers[1], on_chain, 2),
            ],
        }
        every = [oid for ids in mine.values() for oid in ids]
        paid_on_chain = [oid for oid in every if oid >> 32 == on_chain]
        topic = "0x" + escrow.codec.topic("OrderDelivered").hex()

        def all_delivered() -> bool:
            done = {int(raw["topics"][1], 16) for raw in escrow.logs(0, "latest", [topic])}
            return set(every) <= done

        poll("every order delivered", all_delivered, timeout=60)
    assert set(escrow.published_releases(every)) == set(paid_on_chain)
    for leftover in tmp_path.glob("kameng.db*"):
        leftover.unlink()
    assert not list(tmp_path.glob("kameng.db*"))

    plain_codes = [c.decode() for c in sold[plain]]
    for buyer in buyers:
        out = tmp_path / f"recovered-{buyer.address}.json"
        key = _key_file(buyer, tmp_path)
        if buyer is buyers[0]:  # as its own process, as a buyer would run it
            stdout = _recover(anvil, escrow.address, key, out, tmp_path)
        else:  # in this process (no second start-up), through a node capping log ranges
            with capped_node(anvil.url, 4) as (capped, refused):
                result = runner.invoke(
                    app,
                    ["recover", "--rpc-url", capped, "--escrow", escrow.address]
                    + ["--key-file", str(key), "--out", str(out)],
                    env={"COLUMNS": "200"},
                )
            assert result.exit_code == 0, result.output
            assert refused and min(refused) > 4  # ranges were refused, then halved
            stdout = result.stdout
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        assert not any(c.decode() in stdout for c in sold[on_chain])  # masked without --reveal
        found = json.loads(out.read_text())
        assert [o["order_id"] for o in found["orders"]] == mine[buyer.address]
        for order in found["orders"]:
            if order["listing_id"] == on_chain:
                assert order["status"] == "recovered", order["detail"]
                _check_against_chain(world, order, sold[on_chain])
            else:
                assert order["status"] == "off-chain" and order["codes"] == []
                assert "live only with the platform" in order["detail"]
        assert not any(code in out.read_text() for code in plain_codes)
        assert ("live only with the platform" in stdout) == (buyer is buyers[0])

    # The one-line failures, in process: an address with no escrow, a wallet with no orders.
    env = {"COLUMNS": "200"}
    base = ["recover", "--rpc-url", anvil.url, "--key-file", str(_key_file(buyers[0], tmp_path))]
    wrong = world.fee_recipient.address
    result = runner.invoke(app, [*base, "--escrow", wrong], env=env)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: no kameng escrow at {wrong} on chain {chain.chain_id}: wrong chain or wrong "
        "address"
    ]
    nobody = _key_file(world.buyers[2], tmp_path)
    result = runner.invoke(
        app, [*base[:3], "--key-file", str(nobody), "--escrow", escrow.address], env=env
    )
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert f"no orders by {world.buyers[2].address} on escrow {escrow.address}" in result.output

    # --reveal prints them, on the buyer's own terminal only when asked.
    theirs = json.loads((tmp_path / f"recovered-{buyers[1].address}.json").read_text())
    result = runner.invoke(
        app,
        [*base[:3], "--key-file", str(_key_file(buyers[1], tmp_path)), "--reveal"]
        + ["--escrow", escrow.address],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert all(c["code"] in result.stdout for o in theirs["orders"] for c in o["codes"])

    # A release that does not open (sealed to another key) is reported, the command exits 1 in
    # one line, and the wallet's other orders are still recovered.
    late = _buy(world, buyers[1], on_chain, 1)
    late_order = order_from_chain(escrow, late)
    assert late_order is not None
    built = seal_release(
        chain_id=chain.chain_id,
        escrow=escrow.address,
        order_id=late,
        buyer_pubkey=bytes(PrivateKey.generate().public_key),
        codes=[
            CodeToSeal(
                late & 0xFFFFFFFF, b"KMG-NOT-FOR-YOU", os.urandom(32), bytes(32), 0, bytes(32), []
            )
        ],
    )
    published = published_from_manifest(built.sealed, built.manifest)
    escrow.tx.reset_nonce(world.delivery_key.address)  # the backend has sent with it since
    escrow.deliver_on_chain(world.delivery_key, [(late, late_order, built.digest, published)])
    result = runner.invoke(
        app,
        [*base[:3], "--key-file", str(_key_file(buyers[1], tmp_path))]
        + ["--escrow", escrow.address],
        env=env,
    )
    assert result.exit_code == 1
    lines = " ".join(result.stdout.split())
    assert (
        f"order {late} (listing {on_chain}, 1 code(s)): FAILED: release invalid (cannot-open)"
        in lines
    )
    assert lines.count(": recovered:") == len(mine[buyers[1].address])
    assert result.stderr.strip() == (
        f"error: 1 order(s) could not be recovered ({late}); each one's line above says why"
    )
