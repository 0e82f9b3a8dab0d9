"""The dispute scenarios end to end on eth-tester: a served backend (indexer, delivery agent and
API over HTTP), the `kameng` CLI as the buyer, the supplier and the arbiter use it, and the
chain-only verifier on every bundle.

1. a swapped code: the bundle proves the mismatch; the arbiter refunds and slashes, and
   proveBadCode wins the same without an arbiter;
2. "nothing came": the delivery exists and the release opens to the committed codes; the
   supplier is paid;
3. a code redeemed before the sale: the bundle fixes the code and the delivery time, and the
   ruling records the reason and cites the bundle;
4. nobody rules: the timeout fallback splits the payment.
(Forged bundles, scenario 5, are in test_evidence_bundle.py.)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from typer.testing import CliRunner, Result

from backend.cli import app
from backend.evidence import canonical
from backend.evidence.schema import EvidenceBundle
from backend.evidence.store import AdditionsStore
from backend.keys import public_key_bytes
from bench.world import demo_codes
from contracts import order_rules as rules
from contracts.client import EscrowClient
from contracts.encoding import OrderState
from tests.backend.api_helpers import Bought, Served, poll, serve
from tests.backend.evidence_helpers import commit_own_batch, deliver_own, store_release

runner = CliRunner()


@dataclass
class Stage:
    """The served backend, key files for the CLI, and a listing whose supplier cheats."""

    served: Served
    keys: dict[str, Path]
    bad_listing: int
    tmp: Path

    @property
    def escrow(self) -> EscrowClient:
        return self.served.escrow

    def kameng(self, who: str, *args: str, expect: int = 0) -> Result:
        """Run `kameng ARGS` as `who` against the served API."""
        base = list(args) + ["--api", self.served.url, "--key-file", str(self.keys[who])]
        result = runner.invoke(app, base)
        assert result.exit_code == expect, (args, result.output, result.exception)
        return result

    def verify(self, path: Path, expect: int = 0) -> Result:
        rpc = self.served.url + "/rpc"
        result = runner.invoke(app, ["verify", str(path), "--rpc-url", rpc])
        assert result.exit_code == expect, result.output
        return result

    def delivered(self, bought: Bought) -> None:
        """Wait for the order's delivery to be on-chain and in the mirror."""

        def delivered() -> bool:
            order = self.served.current(bought.order_id, bought.buyer)
            return order.state == OrderState.DELIVERED

        poll(f"order {bought.order_id} delivered", delivered)

    def dispute(self, bought: Bought, reason: str) -> None:
        order = self.served.current(bought.order_id, bought.buyer)
        self.escrow.tx.reset_nonce(bought.buyer.address)
        self.escrow.dispute(
            bought.buyer, bought.order_id, order, "kameng:statement", keccak(text=reason)
        )
        self.served.wait_indexed()

    def bundle(self, path: Path) -> EvidenceBundle:
        return EvidenceBundle.model_validate(canonical.loads(path.read_bytes()))


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    tmp = tmp_path_factory.mktemp("scenarios")
    with serve(buyers=4) as served:
        dev = served.dev
        served.upload(20)
        keys = {}
        accounts: dict[str, LocalAccount] = {
            "arbiter": dev.arbiter,
            "supplier": dev.supplier,
            **{f"buyer{i}": b for i, b in enumerate(dev.buyers)},
        }
        for name, account in accounts.items():
            path = tmp / f"{name}.key"
            path.write_text("0x" + bytes(account.key).hex())
            keys[name] = path
        escrow = served.escrow
        escrow.tx.reset_nonce(dev.supplier.address)
        bad_listing, _ = escrow.create_listing(
            dev.supplier, sku=dev.sku, unit_price=10**16, metadata_uri="kameng:dev/cheat"
        )
        yield Stage(served, keys, bad_listing, tmp)


def cheat(stage: Stage, buyer: LocalAccount, quantity: int, swap: dict[int, bytes]) -> Bought:
    """An order whose supplier commits codes itself and delivers another code in one place."""
    dev, escrow = stage.served.dev, stage.escrow
    escrow.tx.reset_nonce(dev.supplier.address)
    batch = commit_own_batch(escrow, dev.supplier, stage.bad_listing, demo_codes(quantity, 900))
    bought = stage.served.buy(buyer, quantity, listing_id=stage.bad_listing)
    sealed = deliver_own(
        escrow,
        dev.supplier,
        batch,
        bought.order_id,
        bought.order,
        public_key_bytes(bought.key),
        swap=swap,
    )
    store_release(
        stage.served.runtime.sessions,
        sealed,
        bought.order_id,
        dev.supplier.address,
        public_key_bytes(bought.key),
    )
    return bought


def _salts(stage: Stage, bought: Bought) -> list[bytes]:
    """The salts the cheating supplier committed for the order's codes (from its opened
    release: the supplier knows them, the test reads them back)."""
    from backend.release import decode_payload, open_release

    release = stage.served.client().release(bought.order_id, bought.buyer)
    items = decode_payload(open_release(release, bought.key))[5]
    return [salt for _, salt, _, _ in items]


def balances(stage: Stage, bought: Bought) -> tuple[int, int, tuple[int, int]]:
    escrow, order = stage.escrow, bought.order
    return (
        escrow.balance_of(order.buyer),
        escrow.balance_of(order.supplier),
        escrow.bond_of(order.supplier),
    )


def test_1_swapped_code_is_proven_and_ruled_refund_and_slash(stage: Stage) -> None:
    buyer = stage.served.dev.buyers[0]
    bought = cheat(stage, buyer, 2, {1: b"KMG-NOT-THE-COMMITTED-ONE"})
    stage.delivered(bought)
    mine = stage.tmp / "s1-buyer.json"
    out = stage.kameng(
        "buyer0", "evidence", str(bought.order_id), "--with-buyer-secret", "--out", str(mine)
    ).output
    assert "does not match the commitment" in out and "every claim checks" in out
    bundle = stage.bundle(mine)
    assert bundle.opening is not None
    assert [c.matches_commitment for c in bundle.opening.codes] == [True, False]
    assert len(bundle.opening.bad_code_proofs) == 1

    stage.dispute(bought, "code 2 is not the one committed")
    # The cheating supplier claims it sent the committed codes: the bundle shows it did not.
    first = bought.order_id & 0xFFFFFFFF
    batch_codes = demo_codes(2, 900)
    claimed = [
        {"index": first + j, "salt": "0x" + salt.hex(), "code": base64.b64encode(code).decode()}
        for j, (salt, code) in enumerate(zip(_salts(stage, bought), batch_codes, strict=True))
    ]
    client = stage.served.client()
    p = f"/evidence/orders/{bought.order_id}/supplier-codes"
    supplier = stage.served.dev.supplier
    client.request("POST", p, json={"codes": claimed}, signer=supplier)
    queue = stage.kameng("arbiter", "arbiter", "queue").output
    assert str(bought.order_id) in queue
    opened = stage.tmp / "s1-arbiter.json"
    out = stage.kameng(
        "arbiter", "arbiter", "open", str(bought.order_id), "--out", str(opened)
    ).output
    assert "against the supplier" in out and "is not the code in the release" in out
    said = stage.bundle(opened).additions.supplier
    assert said is not None
    assert [(c.matches_commitment, c.matches_release) for c in said.codes] == [
        (True, True),
        (True, False),
    ]
    buyer_before, _, (free_before, reserved_before) = balances(stage, bought)
    out = stage.kameng(
        "arbiter",
        "arbiter",
        "rule",
        str(bought.order_id),
        "--buyer-bps",
        "10000",
        "--slash-bps",
        "10000",
        "--reason",
        "bad-code",
        "--bundle",
        str(opened),
    ).output
    assert "ruled" in out and "balance now" in out
    buyer_after, _, (free_after, reserved_after) = balances(stage, bought)
    order = bought.order
    assert buyer_after - buyer_before == order.amount + order.bond
    assert reserved_before - reserved_after == order.bond and free_after == free_before
    stage.served.wait_indexed()
    after = stage.tmp / "s1-after.json"
    stage.kameng("buyer0", "evidence", str(bought.order_id), "--out", str(after))
    ruling = stage.bundle(after).ruling
    assert ruling is not None and ruling.kind == "arbiter" and ruling.reason_text == "bad-code"
    cited = canonical.bundle_hash(canonical.loads(opened.read_bytes()))
    assert ruling.bundle_hash == "0x" + cited.hex()


def test_1b_swapped_code_wins_without_an_arbiter(stage: Stage) -> None:
    buyer = stage.served.dev.buyers[1]
    bought = cheat(stage, buyer, 3, {0: b"KMG-SWAPPED"})
    stage.delivered(bought)
    before, _, _ = balances(stage, bought)
    out = stage.kameng("buyer1", "buyer", "prove-bad-code", str(bought.order_id)).output
    assert "proved index" in out
    after, _, _ = balances(stage, bought)
    assert after - before == bought.order.amount + bought.order.bond
    stage.served.wait_indexed()
    path = stage.tmp / "s1b.json"
    stage.kameng("buyer1", "evidence", str(bought.order_id), "--out", str(path))
    ruling = stage.bundle(path).ruling
    assert ruling is not None and ruling.kind == "bad-code-proven"
    assert ruling.arbiter == stage.escrow.address


def test_2_nothing_came_but_the_release_opens_to_the_committed_codes(stage: Stage) -> None:
    buyer = stage.served.dev.buyers[2]
    bought = stage.served.buy(buyer, 2)
    stage.delivered(bought)
    stage.dispute(bought, "nothing came")
    stage.kameng(
        "supplier",
        "evidence",
        str(bought.order_id),
        "--with-supplier-codes",
        "--out",
        str(stage.tmp / "s2-supplier.json"),
    )
    # Without the buyer's secret the delivery is proven and the key hash binds the release.
    first = stage.tmp / "s2-first.json"
    out = stage.kameng(
        "arbiter", "arbiter", "open", str(bought.order_id), "--out", str(first)
    ).output
    assert "release.digest" in out and "delivered at" in out
    digest_line = next(line for line in out.splitlines() if "release.digest" in line)
    assert "skip" not in digest_line and "fail" not in digest_line.lower()
    supplier_codes = stage.bundle(first).additions.supplier
    assert supplier_codes is not None
    assert all(c.matches_commitment for c in supplier_codes.codes)
    # The arbiter asks for the buyer's secret: the release opens to the committed codes.
    stage.kameng(
        "buyer2",
        "evidence",
        str(bought.order_id),
        "--with-buyer-secret",
        "--out",
        str(stage.tmp / "s2-buyer.json"),
    )
    opened = stage.tmp / "s2-arbiter.json"
    out = stage.kameng(
        "arbiter", "arbiter", "open", str(bought.order_id), "--out", str(opened)
    ).output
    assert "opens to the committed codes" in out and "against the buyer" in out
    bundle = stage.bundle(opened)
    assert bundle.additions.supplier is not None
    assert all(c.matches_release for c in bundle.additions.supplier.codes)
    _, supplier_before, _ = balances(stage, bought)
    stage.kameng(
        "arbiter",
        "arbiter",
        "rule",
        str(bought.order_id),
        "--buyer-bps",
        "0",
        "--reason",
        "delivered-as-committed",
        "--bundle",
        str(opened),
    )
    _, supplier_after, (_, reserved) = balances(stage, bought)
    ruled = rules.resolve(rules.Terms.of(bought.order), buyer_bps=0, slash_bps=0)
    assert supplier_after - supplier_before == ruled.to_supplier


def test_3_code_redeemed_before_the_sale_is_fixed_and_the_reason_recorded(stage: Stage) -> None:
    buyer = stage.served.dev.buyers[3]
    bought = stage.served.buy(buyer, 1)
    stage.delivered(bought)
    stage.dispute(bought, "the issuer says this code was redeemed last week")
    stage.kameng(
        "buyer3",
        "evidence",
        str(bought.order_id),
        "--with-buyer-secret",
        "--out",
        str(stage.tmp / "s3-buyer.json"),
    )
    opened = stage.tmp / "s3-arbiter.json"
    out = stage.kameng(
        "arbiter", "arbiter", "open", str(bought.order_id), "--out", str(opened)
    ).output
    bundle = stage.bundle(opened)
    index = bundle.order.indexes[0]
    code = demo_codes(1, index)[0].decode()
    assert code in out  # the exact code, for the arbiter to check with the issuer
    assert bundle.delivery is not None and str(bundle.delivery.delivered_at) in out
    stage.kameng(
        "arbiter",
        "arbiter",
        "rule",
        str(bought.order_id),
        "--buyer-bps",
        "10000",
        "--slash-bps",
        "5000",
        "--reason",
        "code-already-redeemed",
        "--bundle",
        str(opened),
    )
    stage.served.wait_indexed()
    later = stage.tmp / "s3-later.json"
    stage.kameng("buyer3", "evidence", str(bought.order_id), "--out", str(later))
    ruling = stage.bundle(later).ruling
    assert ruling is not None and ruling.reason_text == "code-already-redeemed"
    assert (
        ruling.bundle_hash
        == "0x" + canonical.bundle_hash(canonical.loads(opened.read_bytes())).hex()
    )
    assert ruling.slash_bps == 5000
    # The bundle the arbiter ruled on still verifies after the ruling, with no backend.
    stage.verify(opened)
    stage.verify(later)


def test_evidence_api_guards_its_doors(stage: Stage) -> None:
    served = stage.served
    bought = served.buy(served.dev.buyers[0], 1)
    stage.delivered(bought)
    stranger = served.runtime.chain.new_account()
    path = f"/evidence/orders/{bought.order_id}"
    client = served.client()
    with pytest.raises(Exception, match="403"):
        client.request("GET", path, signer=stranger)
    secret_path = path + "/buyer-secret"
    wrong = {"order_secret": "0x" + "11" * 32}
    with pytest.raises(Exception, match="not the key of order"):
        client.request("POST", secret_path, json=wrong, signer=bought.buyer)
    with pytest.raises(Exception, match="only the supplier"):
        p = path + "/supplier-codes"
        client.request("POST", p, json={"from_vault": True}, signer=bought.buyer)
    doc = client.request("GET", path, signer=bought.buyer)
    document = doc.json()["document"]
    checked = client.request("POST", "/evidence/verify", json={"document": document}).json()
    assert checked["ok"] is True and any(c["name"] == "order" for c in checked["claims"])
    forged = document.replace('"state":2', '"state":4', 1)
    checked = client.request("POST", "/evidence/verify", json={"document": forged}).json()
    assert checked["ok"] is False
    # The additions table holds the secrets encrypted.
    with served.runtime.sessions() as session:
        store = AdditionsStore(served.runtime.settings.master_key_bytes)
        assert store.buyer_secret(session, bought.order_id) is None


def test_4_nobody_rules_and_the_timeout_fallback_applies(stage: Stage) -> None:
    served = stage.served
    bought = served.buy(served.dev.buyers[1], 1)
    stage.delivered(bought)
    stage.dispute(bought, "no answer from the supplier")
    order = served.current(bought.order_id, bought.buyer)
    served.runtime.chain.travel_to(order.deadline + 1)
    stage.kameng("buyer1", "arbiter", "fallback", str(bought.order_id), expect=0)
    served.wait_indexed()
    path = stage.tmp / "s4.json"
    stage.kameng("buyer1", "evidence", str(bought.order_id), "--out", str(path))
    ruling = stage.bundle(path).ruling
    assert ruling is not None and ruling.kind == "timeout" and ruling.buyer_bps == 5000
    assert int(ruling.buyer_amount) == bought.order.amount // 2
    assert json.loads(path.read_text())["ruling"]["reasonText"] == "arbitration-timeout"
    poll(
        "the mirror to show the dispute ruled",
        lambda: not any(d.order_id == bought.order_id for d in _queue(stage)),
    )


def _queue(stage: Stage) -> list:
    client = stage.served.client(stage.served.dev.arbiter)
    return client.disputes()
