"""``POST /rpc``: the embedded chain as a standard JSON-RPC node, for web3 over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from contracts.chain import rpc_chain
from contracts.client import EscrowClient
from contracts.errors import ContractRevertError
from tests.backend.api_helpers import Served, serve


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serve(buyers=1) as s:
        s.upload(5)
        yield s


def test_web3_over_http_buys_reads_logs_and_decodes_reverts(served: Served) -> None:
    remote = rpc_chain(served.url + "/rpc")
    assert remote.chain_id == served.runtime.chain.chain_id
    escrow = EscrowClient(remote, served.escrow.address)
    buyer = served.dev.buyers[0]
    oid, order, res = escrow.buy(
        buyer, served.dev.listing_id, 2, max_unit_price=10**16, buyer_pubkey=b"\x01" * 32
    )
    assert res.event("OrderPaid").args["orderId"] == oid and res.gas_used > 0
    assert escrow.order_matches(oid, order)
    with pytest.raises(ContractRevertError) as err:
        escrow.buy(
            buyer, served.dev.listing_id, 50, max_unit_price=10**16, buyer_pubkey=b"\x01" * 32
        )
    assert err.value.name == "EscrowStockShort"
    logs = remote.w3.eth.get_logs(
        {"fromBlock": res.block_number, "toBlock": "latest", "address": served.escrow.address}
    )
    assert any(log["transactionHash"].hex().removeprefix("0x") == res.tx_hash[2:] for log in logs)
    block = remote.w3.eth.get_block(res.block_number, full_transactions=True)
    assert block["transactions"][0]["hash"].hex().removeprefix("0x") == res.tx_hash[2:]


def test_json_rpc_wire_format_batches_and_errors(served: Served) -> None:
    url = served.url + "/rpc"
    answer = httpx.post(
        url,
        json=[
            {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
            {"jsonrpc": "2.0", "id": 2, "method": "eth_getBlockByNumber", "params": ["0x0", False]},
            {"jsonrpc": "2.0", "id": 3, "method": "eth_noSuchMethod", "params": []},
        ],
    ).json()
    assert answer[0] == {"jsonrpc": "2.0", "id": 1, "result": hex(served.runtime.chain.chain_id)}
    block = answer[1]["result"]
    assert block["number"] == "0x0" and "parentHash" in block and "gasLimit" in block
    assert "error" in answer[2]
    assert httpx.post(url, content=b"{not json").json()["error"]["code"] == -32700
