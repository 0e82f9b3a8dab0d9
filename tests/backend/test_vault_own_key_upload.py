"""Issue 14: a supplier that keeps its key uploads codes; its own wallet commits the batch.

The backend holds no key for this supplier. It validates and encrypts the codes, stores them
``awaiting`` (never for sale) and hands back the exact commitBatch to sign. On SQLite and
PostgreSQL:

- the codes go on sale only once the supplier's batch is on-chain, found from the reported
  transaction or from the chain alone (a report that never came: the closed browser), by the
  running delivery agent with no request at all;
- a second upload while one awaits is refused and stores nothing (both would take the same
  code indexes, and the vault must hold whichever batch lands);
- a hash that is not this upload's batch changes nothing;
- a batch committed at the upload's indexes by other means makes the upload abandoned, its
  codes deleted, never sold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from backend.chaintx import encode_call
from backend.client import ApiError, KamengClient
from backend.models import Code, Upload
from backend.schemas import UploadPublic
from bench.world import demo_codes
from contracts.encoding import OrderState
from tests.backend.api_helpers import Served, backend_settings, database, poll, serve


@dataclass
class OwnKey:
    """A supplier whose key the backend does not hold, with its own listing."""

    account: LocalAccount
    listing_id: int
    client: KamengClient


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with database(request.param) as url, serve(backend_settings(), database_url=url) as s:
        yield s


def _own_key_supplier(served: Served) -> OwnKey:
    escrow, dev = served.escrow, served.dev
    account = served.runtime.chain.new_account(ether=100)
    escrow.authorize(dev.admin, account.address, dev.sku, keccak(text="licence: own key"))
    escrow.deposit_bond(account, 10**18)
    # The platform's delivery agent accepts the role by itself (its key is the agent's).
    escrow.set_delivery_key(account, dev.delivery.address)
    listing_id, _ = escrow.create_listing(account, sku=dev.sku, unit_price=10**16)
    assert account.address not in {s.address for s in served.runtime.suppliers}
    served.wait_indexed()
    return OwnKey(account, listing_id, served.client(account))


def _csv(n: int, start: int) -> bytes:
    return b"\n".join(demo_codes(n, start)) + b"\n"


def _codes(served: Served, listing_id: int) -> dict[str, int]:
    from backend.vault.service import stock_counts

    with served.runtime.sessions() as session:
        return stock_counts(session, listing_id)


def _sign(served: Served, own: OwnKey, upload: UploadPublic) -> str:
    """What the supplier's wallet does: send exactly the call the backend handed over."""
    call = upload.commit_call
    assert call is not None
    res = served.escrow.commit_batch(
        own.account, upload.listing_id, bytes.fromhex(upload.root[2:]), upload.count,
        upload.first_index,
    )  # fmt: skip
    sent = served.runtime.chain.w3.eth.get_transaction(res.tx_hash)
    assert bytes(sent["input"]) == bytes.fromhex(call.data[2:])
    return res.tx_hash


def test_codes_go_on_sale_only_once_the_suppliers_own_batch_is_mined(served: Served) -> None:
    own = _own_key_supplier(served)
    upload = own.client.upload_codes(own.listing_id, _csv(4, 10_000))
    assert upload.state == "awaiting" and upload.tx_hash is None
    call = upload.commit_call
    assert call is not None
    assert call.from_address == own.account.address and call.to == served.escrow.address
    assert call.chain_id == served.runtime.chain.chain_id
    root = bytes.fromhex(upload.root[2:])
    expected = encode_call("commitBatch", [own.listing_id, root, 4, upload.first_index])
    assert call.data == "0x" + expected.hex()
    assert _codes(served, own.listing_id) == {"staged": 4}  # stored, not for sale
    assert served.escrow.listing(own.listing_id)["committed"] == 0

    # A second upload while the first awaits: refused, nothing stored.
    with pytest.raises(ApiError) as refused:
        own.client.upload_codes(own.listing_id, _csv(2, 20_000))
    assert refused.value.status == 409 and f"upload {upload.upload_id}" in str(refused.value)
    assert _codes(served, own.listing_id) == {"staged": 4}

    # A hash that is not this upload's batch changes nothing.
    other = served.escrow.deposit_bond(own.account, 1).tx_hash
    assert own.client.submit_upload(upload.upload_id, other).state == "awaiting"

    tx_hash = _sign(served, own, upload)
    done = own.client.submit_upload(upload.upload_id, tx_hash)
    assert done.state == "committed" and done.batch_index == 0 and done.commit_call is None
    assert _codes(served, own.listing_id) == {"stock": 4}
    served.wait_indexed()
    buyer = served.dev.buyers[0]
    bought = served.buy(buyer, 1, listing_id=own.listing_id)
    poll(
        "the order delivered from the supplier's own batch",
        lambda: served.current(bought.order_id, buyer).state == OrderState.DELIVERED,
    )


def test_a_report_that_never_came_is_found_on_chain(served: Served) -> None:
    own = _own_key_supplier(served)
    upload = own.client.upload_codes(own.listing_id, _csv(3, 30_000))
    _sign(served, own, upload)  # signed and mined; the browser closed before reporting it
    from backend.vault.service import settle_signed_uploads

    with served.runtime.sessions() as session:  # what the delivery agent's upload sweep runs
        results = settle_signed_uploads(session, served.escrow, listing_id=own.listing_id)
    # The running agent's own sweep may have finished it first (then nothing awaits here).
    assert [r.state for r in results] in ([], ["committed"])
    assert [u.state for u in own.client.uploads(listing_id=own.listing_id)] == ["committed"]
    assert _codes(served, own.listing_id) == {"stock": 3}
    # Now the listing takes the next upload.
    nxt = own.client.upload_codes(own.listing_id, _csv(2, 31_000))
    assert nxt.state == "awaiting" and nxt.first_index == 3


def test_a_batch_at_the_uploads_indexes_by_other_means_abandons_it(served: Served) -> None:
    own = _own_key_supplier(served)
    upload = own.client.upload_codes(own.listing_id, _csv(3, 40_000))
    # The supplier commits some other batch itself at the same first index.
    served.escrow.commit_batch(own.account, own.listing_id, b"\x07" * 32, 3, upload.first_index)
    done = own.client.submit_upload(upload.upload_id, None)
    assert done.state == "abandoned" and done.error and "never on sale" in done.error
    with served.runtime.sessions() as session:
        assert session.query(Code).filter(Code.upload_id == upload.upload_id).count() == 0
        row = session.get(Upload, upload.upload_id)
        assert row is not None and row.state == "abandoned"


def test_the_running_agent_alone_puts_a_signed_batch_on_sale(served: Served) -> None:
    """The supplier signs and sends the commitBatch and never reports it (no
    ``/submitted``): the delivery agent's upload sweep finds the batch on-chain, the upload
    turns committed, and an order of those codes is delivered."""
    own = _own_key_supplier(served)
    upload = own.client.upload_codes(own.listing_id, _csv(3, 50_000))
    assert upload.state == "awaiting"
    _sign(served, own, upload)
    poll(
        "the agent to commit the upload from the chain alone",
        lambda: [u.state for u in own.client.uploads(listing_id=own.listing_id)] == ["committed"],
    )
    (done,) = own.client.uploads(listing_id=own.listing_id)
    assert done.batch_index is not None
    root, first, count = served.escrow.batch(own.listing_id, done.batch_index)
    assert (root, first, count) == (bytes.fromhex(upload.root[2:]), upload.first_index, 3)
    assert _codes(served, own.listing_id) == {"stock": 3}
    served.wait_indexed()
    buyer = served.dev.buyers[0]
    bought = served.buy(buyer, 2, listing_id=own.listing_id)
    poll(
        "the order delivered from the codes the agent put on sale",
        lambda: served.current(bought.order_id, buyer).state == OrderState.DELIVERED,
    )
    assert _codes(served, own.listing_id) == {"stock": 1, "released": 2}
