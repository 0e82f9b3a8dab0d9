"""The paced load generator's process for `bench.latency.run_paced_load`, apart from
`bench.latency` so that starting it imports only what it needs (``bench.latency`` pulls in
the API, about 3 CPU-seconds of imports, which the benchmark's quick mode paid twice a run).

Arguments as JSON on stdin's first line; builds every payment, says ``ready``, waits for a
line on stdin, then sends them at the rate as ``eth_sendTransaction`` from accounts the node
impersonates; the hashes and the seconds the sending took on stdout's last line.
"""

from __future__ import annotations

import json
import sys
import time

import requests
from eth_abi import encode as abi_encode
from eth_utils import keccak
from nacl.public import PrivateKey

BUY_SELECTOR = keccak(text="buy(uint256,uint32,uint256,address,bytes32)")[:4]
BUY_TYPES = ["uint256", "uint32", "uint256", "address", "bytes32"]
PRICE = 10**16


def main() -> None:
    """Build, wait for the go, send at the rate (see the module's docstring).

    Raises:
        RuntimeError: the node refused a payment.
    """
    args = json.loads(sys.stdin.readline())
    buyers: list[str] = args["buyers"]
    nonces = dict.fromkeys(buyers, 0)
    txs: list[dict[str, str]] = []
    for i in range(args["total"]):
        buyer = buyers[i % len(buyers)]
        key = bytes(PrivateKey.generate().public_key)
        data = BUY_SELECTOR + abi_encode(
            BUY_TYPES, [args["listing_id"], 1, PRICE, "0x" + "00" * 20, key]
        )
        txs.append(
            {
                "from": buyer,
                "to": args["escrow"],
                "data": "0x" + data.hex(),
                "value": hex(PRICE),
                "nonce": hex(nonces[buyer]),
                "gas": hex(args["gas"]),
                "gasPrice": hex(args["gas_price"]),
            }
        )
        nonces[buyer] += 1
    session = requests.Session()
    print("ready", flush=True)
    sys.stdin.readline()
    rate = float(args["rate"])
    hashes: list[str] = []
    start = time.perf_counter()
    for i, tx in enumerate(txs):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the load generator
        body = {"jsonrpc": "2.0", "id": i, "method": "eth_sendTransaction", "params": [tx]}
        reply = session.post(args["url"], json=body, timeout=60).json()
        if "error" in reply:
            raise RuntimeError(f"the node refused a payment: {reply['error']}")
        hashes.append(str(reply["result"]))
    print(json.dumps({"hashes": hashes, "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    main()
