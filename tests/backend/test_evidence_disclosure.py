"""Issue 19, findings 2, 3 and 5 (logout) against a served backend, on SQLite and PostgreSQL.

- The vault discloses an order's codes only while it is disputed, only on a request the
  supplier's wallet signed itself, only to arbiters, and every disclosure is recorded where
  both parties can read it.
- Additions (the buyer's secret, the supplier's codes) reach an arbiter only for an order that
  was disputed; each party sees its own.
- A final order's codes and additions are erased after the grace period; its release stays.
- A captured signed request cannot carry another body and cannot be sent twice.
- A signed-out session token is refused.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from backend.evidence.retention import PURGED, purge_final_orders
from backend.evidence.store import Addition
from backend.models import Code
from backend.release import open_release
from contracts.encoding import OrderState, split_order_id
from tests.backend.api_helpers import Bought, Served, database, poll, serve


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with database(request.param) as url, serve(database_url=url, buyers=3) as s:
        s.upload(40)
        yield s


def _delivered(served: Served, buyer_index: int, quantity: int = 2) -> Bought:
    bought = served.buy(served.dev.buyers[buyer_index], quantity)
    served.client().wait_release(bought.order_id, bought.buyer)
    poll(
        "delivery in the mirror",
        lambda: served.current(bought.order_id, bought.buyer).state == OrderState.DELIVERED,
    )
    return bought


def _dispute(served: Served, bought: Bought) -> None:
    order = served.current(bought.order_id, bought.buyer)
    served.escrow.tx.reset_nonce(bought.buyer.address)
    served.escrow.dispute(bought.buyer, bought.order_id, order, "kameng:statement", b"\x01" * 32)
    served.wait_indexed()


def _vault_codes(served: Served, bought: Bought) -> list[Code]:
    listing, first = split_order_id(bought.order_id)
    with served.runtime.sessions() as session:
        return list(
            session.scalars(
                select(Code).where(
                    Code.listing_id == listing,
                    Code.code_index >= first,
                    Code.code_index < first + bought.order.quantity,
                )
            )
        )


def _disclosures(served: Served, bought: Bought) -> list[tuple[str, str, int]]:
    rows = served.client(bought.buyer).request(
        "GET", f"/evidence/orders/{bought.order_id}/disclosures"
    )
    return [(d["kind"], d["actor"], d["codes"]) for d in rows.json()]


def test_the_vault_keeps_an_undisputed_orders_codes_even_from_a_signed_supplier(
    served: Served,
) -> None:
    bought = _delivered(served, 0)
    supplier = served.dev.supplier
    path = f"/evidence/orders/{bought.order_id}/supplier-codes"
    response = served.client().http.post(path, json={"from_vault": True})
    assert response.status_code == 401  # no wallet at all
    client = served.client()
    with pytest.raises(Exception, match="409.*not disputed"):
        client.request("POST", path, json={"from_vault": True}, signer=supplier)
    assert _disclosures(served, bought) == []


def test_a_disputed_orders_vault_codes_need_a_fresh_signature_and_reach_arbiters_only(
    served: Served,
) -> None:
    bought = _delivered(served, 1)
    _dispute(served, bought)
    supplier, arbiter = served.dev.supplier, served.dev.arbiter
    path = f"/evidence/orders/{bought.order_id}/supplier-codes"
    # A session token (which a thief could hold) is not enough.
    with pytest.raises(Exception, match="403.*signed by the supplier's wallet"):
        served.client(supplier).request("POST", path, json={"from_vault": True})
    assert _disclosures(served, bought) == []
    # The supplier's own signature over this request, naming the order, is.
    client = served.client()
    request = client.http.build_request("POST", path, json={"from_vault": True})
    headers = client.sign_request(supplier, request)
    sent = httpx.post(served.url + path, json={"from_vault": True}, headers=headers)
    assert sent.status_code == 200 and sent.json()["codes"] == 2
    again = httpx.post(served.url + path, json={"from_vault": True}, headers=headers)
    assert again.status_code == 401 and "replayed request" in again.json()["detail"]
    assert _disclosures(served, bought) == [("vault-codes", supplier.address, 2)]

    bundle = f"/evidence/orders/{bought.order_id}"
    for party in (bought.buyer, supplier):
        seen = served.client(party).request("GET", bundle).json()
        assert seen["with_supplier_codes"] is False and seen["additions_withheld"] == ["supplier"]
        assert "KMG-" not in seen["document"]
    judged = served.client(arbiter).request("GET", bundle).json()
    assert judged["with_supplier_codes"] is True and judged["additions_withheld"] == []
    assert _disclosures(served, bought)[-1] == ("arbiter-read", arbiter.address, 2)
    # The supplier reads the record too.
    kinds = [
        d["kind"]
        for d in served.client(supplier)
        .request("GET", f"/evidence/orders/{bought.order_id}/disclosures")
        .json()
    ]
    assert kinds == ["vault-codes", "arbiter-read"]


def test_an_arbiter_gets_no_additions_of_an_order_never_disputed(served: Served) -> None:
    from backend.keys import recover_order_key

    bought = _delivered(served, 2)
    buyer, arbiter = bought.buyer, served.dev.arbiter
    key = recover_order_key(served.escrow, buyer, bought.order_id, bought.tx.block_number)
    served.client(buyer).request(
        "POST",
        f"/evidence/orders/{bought.order_id}/buyer-secret",
        json={"order_secret": "0x" + bytes(key).hex()},
    )
    bundle = f"/evidence/orders/{bought.order_id}"
    judged = served.client(arbiter).request("GET", bundle).json()
    assert judged["with_buyer_secret"] is False and judged["additions_withheld"] == ["buyer"]
    own = served.client(buyer).request("GET", bundle).json()
    assert own["with_buyer_secret"] is True and own["additions_withheld"] == []
    assert _disclosures(served, bought) == [("buyer-secret", buyer.address, 0)]


def test_a_final_orders_codes_and_additions_are_erased_after_the_grace_period(
    served: Served,
) -> None:
    from backend.keys import recover_order_key

    bought = _delivered(served, 0)
    other = _delivered(served, 1)
    key = recover_order_key(served.escrow, bought.buyer, bought.order_id, bought.tx.block_number)
    served.client(bought.buyer).request(
        "POST",
        f"/evidence/orders/{bought.order_id}/buyer-secret",
        json={"order_secret": "0x" + bytes(key).hex()},
    )
    order = served.current(bought.order_id, bought.buyer)
    served.escrow.tx.reset_nonce(bought.buyer.address)
    served.escrow.confirm(bought.buyer, bought.order_id, order)
    served.wait_indexed()
    now = int(served.runtime.chain.w3.eth.get_block("latest")["timestamp"])
    with served.runtime.sessions() as session:
        early = purge_final_orders(session, now=now, grace_s=3600)
    assert all(c.state != PURGED and c.ciphertext for c in _vault_codes(served, bought))
    with served.runtime.sessions() as session:
        report = purge_final_orders(session, now=now + 3600, grace_s=3600)
    assert report.orders >= 1 and report.codes >= 2 and early.orders == 0
    erased = _vault_codes(served, bought)
    assert len(erased) == 2
    assert all(c.state == PURGED and c.ciphertext == b"" and c.wrapped_key == b"" for c in erased)
    assert all(c.commitment and c.fingerprint for c in erased)  # proofs and duplicates still work
    kept = _vault_codes(served, other)  # delivered, not final: untouched
    assert all(c.state != PURGED and c.ciphertext for c in kept)
    with served.runtime.sessions() as session:
        assert (
            session.scalars(select(Addition).where(Addition.order_id == str(bought.order_id))).all()
            == []
        )
    # The buyer still reads its codes from its sealed release.
    release = served.client().release(bought.order_id, bought.buyer)
    assert open_release(release, bought.key)
    # A second sweep finds nothing left.
    with served.runtime.sessions() as session:
        assert purge_final_orders(session, now=now + 3600, grace_s=3600).codes == 0


def test_a_captured_signed_upload_cannot_push_another_file_or_the_same_one_twice(
    served: Served,
) -> None:
    supplier = served.dev.supplier
    path = f"/supplier/listings/{served.dev.listing_id}/codes"
    first = b"KMG-SIGNED-UPLOAD-0001\n"
    client = served.client()
    request = client.http.build_request(
        "POST", path, content=first, headers={"Content-Type": "text/csv"}
    )
    headers = {**client.sign_request(supplier, request), "Content-Type": "text/csv"}
    swapped = httpx.post(served.url + path, content=b"KMG-SIGNED-UPLOAD-0002\n", headers=headers)
    assert swapped.status_code == 401 and "bad request signature" in swapped.json()["detail"]
    ok = httpx.post(served.url + path, content=first, headers=headers, timeout=60)
    assert ok.status_code == 200 and ok.json()["count"] == 1
    replay = httpx.post(served.url + path, content=first, headers=headers)
    assert replay.status_code == 401 and "replayed request" in replay.json()["detail"]


def test_a_signed_out_token_is_refused_and_everywhere_signs_out_every_session(
    served: Served,
) -> None:
    buyer = served.dev.buyers[2]
    one, two = served.client(buyer), served.client(buyer)
    assert one.me().address == buyer.address
    out = one.request("POST", "/auth/logout").json()
    assert out == {"address": buyer.address, "everywhere": False}
    with pytest.raises(Exception, match="401.*session revoked"):
        one.me()
    assert two.me().address == buyer.address
    two.request("POST", "/auth/logout", params={"everywhere": "true"})
    with pytest.raises(Exception, match="401.*session revoked"):
        two.me()
    assert served.client(buyer).me().address == buyer.address  # a new sign-in works
