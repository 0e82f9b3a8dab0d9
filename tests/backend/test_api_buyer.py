"""The buyer's side of the API against a served backend (embedded chain, SQLite, real workers):
orders (only for their parties), the sealed release (anyone fetches it, only its buyer opens it),
and clear 4xx answers for bad requests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from nacl.public import PrivateKey

from backend.auth import sign_message
from backend.client import ApiError
from backend.errors import ReleaseInvalid
from backend.keys import derive_order_key
from backend.models import Release as ReleaseRow
from backend.release import open_release, verify_release_onchain
from contracts.encoding import OrderState, order_id
from tests.backend.api_helpers import Served, agent_held, database, poll, serve


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with database(request.param) as url, serve(database_url=url, buyers=3) as s:
        s.upload(60)
        yield s


def test_buyer_fetches_a_release_that_verifies_against_the_chain(served: Served) -> None:
    buyer = served.dev.buyers[0]
    bought = served.buy(buyer, 3)
    client = served.client(buyer)
    release = client.wait_release(bought.order_id, timeout=20)
    assert release.order_id == bought.order_id and release.buyer == buyer.address
    first = bought.order_id & 0xFFFFFFFF
    assert [c.index for c in release.codes] == [first + i for i in range(3)]
    for code in release.codes:
        assert len(code.commitment) == 32 and code.proof and len(code.batch_root) == 32
    raw = client.request("GET", f"/buyer/orders/{bought.order_id}/release").text
    assert "KMG-" not in raw and b"KMG-".hex() not in raw  # codes only inside the box
    # A served release is a delivered one: it verifies against the chain without waiting.
    verified = verify_release_onchain(release, bought.key, served.escrow, bought.tx.block_number)
    assert len(verified.codes) == 3


def _stored_release(served: Served, oid: int) -> tuple[str, str] | None:
    """(state, digest) of the release the backend stored for an order, if any."""
    with served.runtime.sessions() as session:
        row = session.get(ReleaseRow, oid)
        return (row.state, row.digest) if row is not None else None


def test_a_release_is_not_served_before_its_delivery_is_on_chain(served: Served) -> None:
    """Audit finding 10: the release is sealed and stored and its deliver transaction signed,
    but not mined. Served then, the buyer would hold the codes while the delivery could still
    miss its deadline and the whole payment be reclaimed; it also made
    test_dispute_queue_is_oldest_first_and_for_arbiters_only flaky (a dispute sent while the
    order was still Paid). The API answers 409 until the delivery is mined and indexed, then
    serves that same release, and everything it implies holds at once."""
    buyer = served.dev.buyers[2]
    client = served.client(buyer)
    with agent_held(served, "tx-stored") as hold:
        bought = served.buy(buyer, 2)
        hold.wait()
        stored = _stored_release(served, bought.order_id)
        assert stored is not None and stored[0] == "sent"  # sealed, stored, signed; not sent
        served.wait_indexed()  # the mirror holds every block there is
        assert served.escrow.order_matches(bought.order_id, bought.order)  # still Paid
        with pytest.raises(ApiError) as err:
            client.release(bought.order_id)
        assert err.value.status == 409 and "not on-chain yet" in err.value.detail
        assert err.value.retry_after == 1
        detail = client.order(bought.order_id)
        assert detail.state == OrderState.PAID and not detail.release_ready
        listed = next(o for o in client.my_orders() if o.order_id == bought.order_id)
        assert not listed.release_ready
    release = client.wait_release(bought.order_id)
    assert "0x" + release.digest.hex() == stored[1]  # the release sealed before, unchanged
    detail = client.order(bought.order_id)
    assert detail.state == OrderState.DELIVERED and detail.release_ready
    assert detail.release_digest == stored[1] and release.order_state == "delivered"
    verified = verify_release_onchain(release, bought.key, served.escrow, bought.tx.block_number)
    assert len(verified.codes) == 2


def test_a_release_the_chain_does_not_hold_is_never_served(served: Served) -> None:
    """Audit finding 10, the other way round: while the agent's release is stored but not
    posted, the supplier delivers the order by hand with another digest. The stored release is
    not the delivered one: 404 at once (not 409: it will never be served), and still after the
    agent finds it superseded."""
    buyer, supplier = served.dev.buyers[0], served.dev.supplier
    client = served.client(buyer)
    with agent_held(served, "prepared") as hold:
        bought = served.buy(buyer, 1)
        hold.wait()
        served.escrow.tx.reset_nonce(supplier.address)
        served.escrow.deliver(supplier, [(bought.order_id, bought.order, b"\x42" * 32)])
        served.wait_indexed()
        assert _stored_release(served, bought.order_id) is not None
        with pytest.raises(ApiError) as err:
            client.release(bought.order_id)
        assert err.value.status == 404 and "another release" in err.value.detail
        assert not client.order(bought.order_id).release_ready
    poll(
        "the agent to find its release superseded",
        lambda: (_stored_release(served, bought.order_id) or ("",))[0] == "superseded",
    )
    with pytest.raises(ApiError) as err:
        client.release(bought.order_id)
    assert err.value.status == 404


def test_buyer_sees_its_orders_and_their_history(served: Served) -> None:
    buyer = served.dev.buyers[1]
    bought = served.buy(buyer, 1)
    client = served.client(buyer)
    client.wait_release(bought.order_id)  # served: delivered, and in the mirror
    mine = client.my_orders()
    assert bought.order_id in [o.order_id for o in mine]
    assert all(o.buyer == buyer.address for o in mine)
    detail = client.order(bought.order_id)
    assert [e.name for e in detail.events] == ["OrderPaid", "OrderDelivered"]
    assert detail.paid_tx == bought.tx.tx_hash and detail.release_ready


def test_anyone_fetches_a_release_and_only_its_buyer_opens_it(served: Served) -> None:
    """A release is public (docs/API.md): a stranger, signed in or not, gets the same bytes as
    the buyer, and they are ciphertext to every key but the buyer's per-order key, including a
    key the stranger's own wallet derives for the order's nonce. The order itself stays private."""
    owner, intruder = served.dev.buyers[0], served.dev.buyers[2]
    bought = served.buy(owner, 1)
    mine = served.client(owner).wait_release(bought.order_id)
    anonymous = served.client().release(bought.order_id)
    signed_in = served.client(intruder).release(bought.order_id)
    assert anonymous.sealed == mine.sealed == signed_in.sealed
    assert anonymous.buyer == owner.address
    paid_nonce = served.escrow.w3.eth.get_transaction(bought.tx.tx_hash)["nonce"]
    for key in (
        derive_order_key(
            intruder,
            chain_id=served.runtime.chain.chain_id,
            escrow=served.escrow.address,
            nonce=paid_nonce,
        ),
        PrivateKey.generate(),
    ):
        with pytest.raises(ReleaseInvalid, match="does not open"):
            open_release(anonymous, key)
    assert open_release(anonymous, bought.key)  # the buyer's key opens it
    with pytest.raises(ApiError) as err:
        served.client(intruder).order(bought.order_id)
    assert err.value.status == 403


def test_unknown_order_is_404_with_a_hint(served: Served) -> None:
    client = served.client(served.dev.buyers[0])
    missing = order_id(served.dev.listing_id, 59_999)
    with pytest.raises(ApiError) as err:
        client.release(missing)
    assert err.value.status == 404 and "unknown order" in err.value.detail
    with pytest.raises(ApiError) as err:
        client.order(missing)
    assert err.value.status == 404


def test_the_order_needs_a_signed_in_or_signed_request(served: Served) -> None:
    with pytest.raises(ApiError) as err:
        served.client().order(order_id(served.dev.listing_id, 0))
    assert err.value.status == 401 and "not signed in" in err.value.detail


def test_a_signed_request_authenticates_one_fetch_and_a_forged_one_is_refused(
    served: Served,
) -> None:
    buyer, other = served.dev.buyers[1], served.dev.buyers[2]
    bought = served.buy(buyer, 2)
    client = served.client()
    release = client.wait_release(bought.order_id, buyer)
    assert len(release.codes) == 2
    path = f"/buyer/orders/{bought.order_id}"
    request = client.http.build_request("GET", path)
    headers = client.sign_request(buyer, request)
    headers["X-Kameng-Signature"] = client.sign_request(other, request)["X-Kameng-Signature"]
    response = httpx.get(served.url + path, headers=headers)
    assert response.status_code == 401 and "bad request signature" in response.json()["detail"]
    # The genuine headers work once; sent again they are a replay.
    genuine = client.sign_request(buyer, request)
    assert httpx.get(served.url + path, headers=genuine).status_code == 200
    again = httpx.get(served.url + path, headers=genuine)
    assert again.status_code == 401 and "replayed request" in again.json()["detail"]


def test_a_replayed_siwe_message_is_refused_with_the_reason(served: Served) -> None:
    client = served.client()
    buyer = served.dev.buyers[0]
    message = client.siwe_message(buyer, client.nonce())
    signature = sign_message(buyer, message)
    client.verify(message, signature)
    response = httpx.post(
        served.url + "/auth/verify", json={"message": message, "signature": signature}
    )
    assert response.status_code == 401
    assert "replayed message" in response.json()["detail"]


def test_siwe_for_another_domain_or_chain_is_refused(served: Served) -> None:
    client = served.client()
    buyer = served.dev.buyers[0]
    nonce = client.nonce()
    wrong_domain = nonce.model_copy(update={"domain": "phish.example"})
    message = client.siwe_message(buyer, wrong_domain)
    with pytest.raises(ApiError) as err:
        client.verify(message, sign_message(buyer, message))
    assert err.value.status == 401 and "wrong domain" in err.value.detail
    wrong_chain = client.nonce().model_copy(update={"chain_id": 1})
    message = client.siwe_message(buyer, wrong_chain)
    with pytest.raises(ApiError) as err:
        client.verify(message, sign_message(buyer, message))
    assert err.value.status == 401 and "wrong chain" in err.value.detail


def test_malformed_requests_are_422_without_echoing_input(served: Served) -> None:
    response = httpx.post(served.url + "/auth/verify", json={"message": "KMG-SECRET-CODE"})
    assert response.status_code == 422
    assert "signature" in response.json()["detail"] and "KMG-SECRET-CODE" not in response.text
    response = httpx.get(served.url + "/catalog/listings", params={"supplier": "nope"})
    assert response.status_code == 422 and "supplier" in response.json()["detail"]
