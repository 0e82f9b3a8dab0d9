"""The supervisor's loopback server: only its token opens it; it answers JSON-RPC against the
embedded chain (as the public /rpc does) and the worker report; and how a dead child is named."""

from __future__ import annotations

import signal

import httpx

from backend.internal_rpc import ForwardingRpcProxy, InternalServer, fetch_report
from backend.rpc_proxy import JsonRpcProxy
from backend.supervisor import describe_exit
from backend.workers import RUNNING, WorkerReport, dead
from contracts.chain import embedded_chain, rpc_chain


def test_the_internal_server_wants_its_token_and_serves_the_chain_and_the_report() -> None:
    chain = embedded_chain()
    chain.mine(3)
    report = WorkerReport(workers={"indexer": RUNNING, "agent": dead("OSError")}, api_restarts=2)
    server = InternalServer(lambda: report, JsonRpcProxy(chain)).start()
    try:
        call = {"jsonrpc": "2.0", "id": 7, "method": "eth_blockNumber", "params": []}
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": server.token}):
            assert httpx.post(server.url + "/", json=call, headers=headers).status_code == 401
            assert httpx.get(server.url + "/workers", headers=headers).status_code == 401
        auth = {"Authorization": f"Bearer {server.token}"}
        answer = httpx.post(server.url + "/", json=call, headers=auth).json()
        assert answer == {"jsonrpc": "2.0", "id": 7, "result": hex(chain.w3.eth.block_number)}
        assert fetch_report(server.url, server.token) == report

        # What the API worker does: web3 over the token-bearing connection, and /rpc forwarded.
        remote = rpc_chain(server.url, headers=auth, embedded_upstream=True)
        assert remote.chain_id == chain.chain_id and remote.embedded_upstream
        forwarded = ForwardingRpcProxy(server.url, server.token)
        assert forwarded.handle(call) == JsonRpcProxy(chain).handle(call)
        assert forwarded.handle([call, call]) == [answer, answer]
        forwarded.close()
    finally:
        server.stop()
    # The supervisor gone: its report names it dead rather than raising.
    gone = fetch_report(server.url, server.token, timeout=1)
    assert gone.dead == ["supervisor"]


def test_a_dead_child_is_named_by_its_exit_code_or_signal() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by signal SIGKILL"
    assert describe_exit(-signal.SIGSEGV) == "killed by signal SIGSEGV"
    assert describe_exit(3) == "exited with code 3"
