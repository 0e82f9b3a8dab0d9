"""Connect to a chain: the embedded eth-tester (py-evm) or a real node over JSON-RPC (anvil).

`Chain` hides the differences the rest of kameng cares about: making and funding accounts,
moving time, and mining. Development accounts are made fresh with random keys at run time and
funded from the node's own unlocked accounts, so no private key is written in the code.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3 import HTTPProvider, Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import Wei

from contracts.errors import ChainError

ROOT = Path(__file__).resolve().parent.parent
ANVIL_BINARY = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"


@dataclass
class Chain:
    """A connection to a chain, with the helpers tests, the demo and benchmarks need.

    Attributes:
        w3: The web3 connection.
        kind: ``"embedded"`` for eth-tester in-process, ``"rpc"`` for a node over JSON-RPC.
        rpc_url: The node's URL, when there is one.
        embedded_upstream: An RPC connection to kameng's embedded chain, served over loopback by
            the `kameng serve` supervisor to its API worker (`backend.supervisor`).
    """

    w3: Web3
    kind: str
    rpc_url: str | None = None
    embedded_upstream: bool = False
    _tester: Any = field(default=None, repr=False)
    #: The transaction sender shared by every client of this chain (see
    #: `contracts.client.shared_transactor`), so nonces stay consistent across them.
    transactor: Any = field(default=None, repr=False, compare=False)

    @property
    def chain_id(self) -> int:
        """The chain id, read from the node."""
        return int(self.w3.eth.chain_id)

    def make_request(self, method: str, params: list[Any]) -> Any:
        """Send a raw JSON-RPC request and return its result.

        Raises:
            ChainError: the node answered with an error.
        """
        response = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise ChainError(f"{method} failed: {response['error']}")
        return response.get("result")

    def new_account(self, ether: int = 1000) -> LocalAccount:
        """Create a random account and fund it with `ether` of the native coin."""
        account: LocalAccount = Account.create()
        self.fund(account.address, Web3.to_wei(ether, "ether"))
        return account

    def fund(self, address: str, wei: int) -> None:
        """Give `address` `wei` of the native coin, from the node's unlocked accounts."""
        if self.kind == "embedded":
            faucet = self.w3.eth.accounts[0]
            tx = self.w3.eth.send_transaction(
                {"from": faucet, "to": to_checksum_address(address), "value": Wei(wei)}
            )
            self.w3.eth.wait_for_transaction_receipt(tx)
        else:
            current = self.w3.eth.get_balance(address)  # type: ignore[arg-type]
            self.make_request("anvil_setBalance", [address, hex(current + wei)])

    def timestamp(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def _tester_lock(self) -> AbstractContextManager[Any]:
        """The lock serializing the embedded chain's provider, if one was installed
        (`backend.rpc_proxy.serialize_provider`): calls to the tester itself take it too, so a
        test that mines or travels in time never runs inside a worker's request."""
        lock = getattr(self.w3.provider, "_kameng_lock", None)
        return lock if lock is not None else nullcontext()

    def travel_to(self, timestamp: int) -> None:
        """Mine a block at `timestamp`; the following transaction sees `timestamp + 1` or later."""
        if self.kind == "embedded":
            # eth-tester's time_travel(t) mines a block at t - 1 and leaves the next one at t.
            with self._tester_lock():
                self._tester.time_travel(timestamp + 1)
        else:
            self.make_request("evm_setNextBlockTimestamp", [timestamp])
            self.make_request("evm_mine", [])

    def set_next_block_timestamp(self, timestamp: int) -> None:
        """Make the next mined block (and so the next transaction) carry exactly `timestamp`.

        Raises:
            ChainError: `timestamp` is not after the latest block.
        """
        latest = self.timestamp()
        if timestamp <= latest:
            raise ChainError(f"cannot go back in time: {timestamp} <= latest block {latest}")
        if self.kind == "embedded":
            # The next block is latest + 1 unless time_travel(t) moved it to exactly t.
            if timestamp > latest + 1:
                with self._tester_lock():
                    self._tester.time_travel(timestamp)
        else:
            self.make_request("evm_setNextBlockTimestamp", [timestamp])

    def mine(self, blocks: int = 1) -> None:
        """Mine empty blocks."""
        if self.kind == "embedded":
            with self._tester_lock():
                self._tester.mine_blocks(blocks)
        else:
            self.make_request("anvil_mine", [hex(blocks)])

    def snapshot(self) -> Any:
        """Take a snapshot to revert to."""
        if self.kind == "embedded":
            with self._tester_lock():
                return self._tester.take_snapshot()
        return self.make_request("evm_snapshot", [])

    def revert(self, snapshot_id: Any) -> None:
        """Revert to a snapshot."""
        if self.kind == "embedded":
            with self._tester_lock():
                self._tester.revert_to_snapshot(snapshot_id)
        else:
            self.make_request("evm_revert", [snapshot_id])


#: Most blocks one ``eth_getLogs`` request of `get_logs` spans (every provider accepts it).
LOG_STEP = 5_000


def log_filter(
    address: str, from_block: int, to_block: int, topics: list[Any] | None = None
) -> dict[str, Any]:
    """The JSON-RPC ``eth_getLogs`` filter of one contract over a closed block range."""
    found: dict[str, Any] = {
        "address": address,
        "fromBlock": hex(from_block),
        "toBlock": hex(to_block),
    }
    if topics is not None:
        found["topics"] = topics
    return found


def _rpc_hex(value: Any) -> str:
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def tester_logs(
    w3: Web3, address: str, from_block: int, to_block: int, topics: list[Any] | None = None
) -> list[dict[str, Any]]:
    """``eth_getLogs`` on the embedded chain, shaped like a node's answer (hex strings).

    eth-tester understands only web3's formatted filter, not the raw JSON-RPC one."""
    query: dict[str, Any] = {"address": address, "fromBlock": from_block, "toBlock": to_block}
    if topics is not None:
        query["topics"] = topics
    return [
        {
            "address": str(log["address"]),
            "topics": [_rpc_hex(t) for t in log["topics"]],
            "data": _rpc_hex(log["data"]),
            "blockNumber": hex(int(log["blockNumber"])),
            "blockHash": _rpc_hex(log["blockHash"]),
            "transactionHash": _rpc_hex(log["transactionHash"]),
            "logIndex": hex(int(log["logIndex"])),
        }
        for log in w3.eth.get_logs(query)  # type: ignore[arg-type]
    ]


def get_logs(
    chain: Chain,
    address: str,
    from_block: int,
    to_block: int | str,
    topics: list[Any] | None = None,
    step: int = LOG_STEP,
) -> list[dict[str, Any]]:
    """The one log reader: a contract's logs over a block range, as JSON-RPC dicts (hex
    strings, ready for `contracts.events.EventCodec.decode_log`), in chain order.

    The range is asked for in pieces of at most `step` blocks. A node is asked through the raw
    provider (web3's formatting costs about 110 µs a log); the embedded chain through
    `tester_logs`. The indexer's own HTTP source sends the same `log_filter` over its pooled
    connections.

    Args:
        chain: The chain.
        address: The contract.
        from_block: First block.
        to_block: Last block, or ``"latest"``.
        topics: The topics filter: 0x-hex strings, None for any, lists for alternatives.
        step: Most blocks per request.

    Raises:
        ChainError: the node answered with an error.
    """
    last = int(chain.w3.eth.block_number) if isinstance(to_block, str) else to_block
    out: list[dict[str, Any]] = []
    start = from_block
    while start <= last:
        end = min(last, start + step - 1)
        if chain.kind == "embedded":
            out.extend(tester_logs(chain.w3, address, start, end, topics))
        else:
            out.extend(
                chain.make_request("eth_getLogs", [log_filter(address, start, end, topics)]) or []
            )
        start = end + 1
    return out


def _install_indexed_tx_lookup() -> None:
    """Make eth-tester find a mined transaction through py-evm's hash index.

    eth-tester's py-evm backend finds a transaction (for its receipt, and for every log
    ``eth_getLogs`` returns) by walking back from the head one block at a time
    (``_get_transaction_by_hash``, whose own TODO asks for a lookup by hash): on a chain of
    10,000 blocks each receipt of an old transaction costs seconds, and a receipt asked for an
    unknown hash walks the whole chain. py-evm keeps the index (``chaindb.get_transaction_index``);
    this looks there first (after the pending block, which is not indexed yet), checks the answer
    against the block, and falls back to the walk only if the index is stale. An unknown hash is
    answered at once with the walk's own error. Installed once per process.
    """
    from eth.exceptions import PyEVMError
    from eth.exceptions import TransactionNotFound as EvmTransactionNotFound
    from eth_tester.backends.pyevm import main as pyevm_main
    from eth_tester.exceptions import TransactionNotFound
    from eth_utils import encode_hex

    walk = pyevm_main._get_transaction_by_hash
    if getattr(walk, "kameng_indexed", False):
        return

    def lookup(chain: Any, transaction_hash: bytes) -> Any:
        head = chain.get_block()  # the pending block: not in the index yet
        for index, transaction in enumerate(head.transactions):
            if transaction.hash == transaction_hash:
                return head, transaction, index
        try:
            number, index = chain.chaindb.get_transaction_index(transaction_hash)
        except EvmTransactionNotFound:
            # Not mined (the pending block was searched above): as the walk would say.
            raise TransactionNotFound(
                f"No transaction found for transaction hash: {encode_hex(transaction_hash)}"
            ) from None
        try:
            block = chain.get_canonical_block_by_number(number)
        except PyEVMError:
            return walk(chain, transaction_hash)
        if index < len(block.transactions) and block.transactions[index].hash == transaction_hash:
            return block, block.transactions[index], index
        return walk(chain, transaction_hash)

    lookup.kameng_indexed = True  # type: ignore[attr-defined]
    pyevm_main._get_transaction_by_hash = lookup


_METHOD_CHOICE_LOCK = threading.RLock()


def _install_thread_safe_method_choice() -> None:
    """Make web3's choice of JSON-RPC method by argument safe to use from several threads.

    A web3 ``Method`` is one object per method of the ``Eth`` class, shared by every thread and
    every ``Web3`` in the process. Where the JSON-RPC method depends on the argument (``get_block``:
    ``eth_getBlockByHash`` for a hash, ``eth_getBlockByNumber`` for a number or a tag),
    ``Method.process_params`` stores its pick on the shared object and reads it back a few lines
    later. Another thread picking in between sends this thread's hash as a block number (the node
    answers "no such block" for a block it holds) or its tag as a hash (web3 refuses ``'latest'``
    as hex). kameng's workers (indexer, delivery agent and gateway, API threads) read blocks by
    hash and by number at the same time, so the pick and the read-back are made one step under a
    process-wide lock. Only methods that pick by argument take it; the step is pure (munging and
    formatter lookup, no I/O), so the lock is never held across a request. Installed once per
    process.
    """
    from web3.method import Method

    original = Method.process_params
    if getattr(original, "kameng_thread_safe", False):
        return

    def process_params(self: Any, module: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.method_choice_depends_on_args:
            return original(self, module, *args, **kwargs)
        with _METHOD_CHOICE_LOCK:
            return original(self, module, *args, **kwargs)

    process_params.kameng_thread_safe = True  # type: ignore[attr-defined]
    Method.process_params = process_params  # type: ignore[method-assign]


def embedded_chain() -> Chain:
    """Start an in-process eth-tester chain on py-evm (Prague)."""
    from eth_tester import EthereumTester, PyEVMBackend

    _install_indexed_tx_lookup()
    _install_thread_safe_method_choice()
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    return Chain(w3=w3, kind="embedded", _tester=tester)


def rpc_chain(
    url: str,
    timeout: float = 10.0,
    *,
    headers: dict[str, str] | None = None,
    embedded_upstream: bool = False,
) -> Chain:
    """Connect to a node over HTTP JSON-RPC.

    Args:
        url: The node's URL.
        timeout: Seconds a request may take.
        headers: Extra HTTP headers sent with every request (an internal bearer token).
        embedded_upstream: The node is kameng's embedded chain served by the supervisor.

    Raises:
        ChainError: the node does not answer.
    """
    _install_thread_safe_method_choice()
    request_kwargs: dict[str, Any] = {"timeout": timeout}
    if headers:
        request_kwargs["headers"] = {**HTTPProvider.get_request_headers(), **headers}
    w3 = Web3(HTTPProvider(url, request_kwargs=request_kwargs))
    try:
        w3.eth.chain_id  # noqa: B018 - a cheap liveness probe
    except Exception as exc:  # requests raises many types; all mean "unreachable"
        raise ChainError(f"no node answers at {url}: {exc}; start one or fix --rpc-url") from exc
    return Chain(w3=w3, kind="rpc", rpc_url=url, embedded_upstream=embedded_upstream)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilNode:
    """An anvil node on a free loopback port, started and stopped by a context manager."""

    def __init__(self, block_time: float | None = None, extra_args: list[str] | None = None):
        """Prepare a node; `block_time` in seconds switches from automine to interval mining."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.block_time = block_time
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str:
        """Path of the anvil binary: the npm package's in a checkout, else anvil on PATH (an
        installed wheel ships no node_modules).

        Raises:
            ChainError: anvil is not installed.
        """
        if ANVIL_BINARY.exists():
            return str(ANVIL_BINARY)
        found = shutil.which("anvil")
        if found:
            return found
        raise ChainError(
            "anvil not found: put Foundry's anvil on PATH (in a checkout, `npm ci` installs it), "
            "or use the embedded chain or a node's --rpc-url"
        )

    def start(self) -> Chain:
        """Start the node and wait until it answers.

        Raises:
            ChainError: it did not start within 15 s.
        """
        args = [self.binary(), "--port", str(self.port), "--host", "127.0.0.1", "--silent"]
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        args += self.extra_args
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ)
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise ChainError(f"anvil exited with {self.process.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return rpc_chain(self.url)
            except OSError:
                time.sleep(0.05)  # polling for the port to open, not synchronising work
        self.stop()
        raise ChainError("anvil did not start within 15 s")

    def stop(self) -> None:
        """Stop the node."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Chain:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
