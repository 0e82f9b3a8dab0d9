"""The web's storage reading (backend/web/src/storage.js over the layout build.mjs embeds)
answers the escrow's replaced views as the Python decoder does, in the shapes viem gave them.

The escrow is driven into the rich state of tests/contracts/test_storage_layout.py. For queries
covering each of the eleven views the escrow replaced by ``extsload`` and the two reads added
since, ``resellerPrice`` and ``shopPrice`` (known, unknown and zero keys), the Python side works
out the slots a query needs with `contracts.storage` and reads their words through the escrow's
``extsload``. Node then runs what chain.js's ``read`` runs:
``escrowViews(compactLayout(storageLayout), extsloadReader(client, escrow, abi))``, where the
viem client's node knows only those words and answers nothing but ``extsload`` (encoded and
decoded with the artifact's ABI). Its answers must be exactly what the old views gave through
viem (structs as objects by member name in declaration order, uints above 48 bits as bigints,
bytes32 as lower-case hex, bools as booleans), with `contracts.storage.EscrowStorage.view` over
the escrow's ``extsload`` as the oracle for the values.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from contracts.storage import VIEWS, Location, extsload_reader
from tests.contracts.test_storage_layout import Rich, rich_state  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
WEB_SRC = ROOT / "backend" / "web" / "src"
STORAGE_JS = WEB_SRC / "storage.js"
LAYOUT_JS = WEB_SRC / "escrow-layout.mjs"
ARTIFACT = ROOT / "contracts" / "artifacts" / "CodeEscrow.json"

#: Reads {"escrow", "words": {slot: word}, "queries": [[view, args], ...]} from the file named by
#: the last argument; prints {"views": [names storage.js answers], "results": [...]} with one
#: {"value", "calls"} or {"error", "calls"} per query, `calls` counting the ``eth_call``s it made.
#: A bigint is tagged as {"bigint": "<decimal>"}, both ways.
NODE_SCRIPT = """
import fs from "node:fs";
import { pathToFileURL } from "node:url";
import { createPublicClient, custom, decodeFunctionData, encodeFunctionResult } from "viem";
const [storagePath, layoutPath, artifactPath, inputPath] = process.argv.slice(-4);
const storageJs = await import(pathToFileURL(storagePath).href);
const { STORAGE_VIEWS, escrowViews, extsloadReader } = storageJs;
const { compactLayout } = await import(pathToFileURL(layoutPath).href);
const { abi, storageLayout } = JSON.parse(fs.readFileSync(artifactPath, "utf8"));
const isTag = (v) => v && typeof v === "object" && Object.keys(v).join() === "bigint";
const untag = (_key, value) => (isTag(value) ? BigInt(value.bigint) : value);
const { escrow, words, queries } = JSON.parse(fs.readFileSync(inputPath, "utf8"), untag);
let calls = 0;
// A node that knows only `words` and answers only the escrow's extsload.
const transport = custom({
  async request({ method, params }) {
    if (method !== "eth_call") throw new Error(`unexpected ${method}`);
    calls += 1;
    const [{ to, data }] = params;
    if (to.toLowerCase() !== escrow.toLowerCase()) throw new Error(`eth_call to ${to}`);
    const { functionName, args } = decodeFunctionData({ abi, data });
    if (functionName !== "extsload") throw new Error(`eth_call of ${functionName}`);
    const result = args[0].map((slot) => {
      if (!(slot in words)) throw new Error(`slot ${slot} is not in the map`);
      return words[slot];
    });
    return encodeFunctionResult({ abi, functionName, result });
  },
});
const client = createPublicClient({ transport });
const read = escrowViews(compactLayout(storageLayout), extsloadReader(client, escrow, abi));
const results = [];
for (const [view, args] of queries) {
  calls = 0;
  try {
    results.push({ value: await read(view, args), calls });
  } catch (err) {
    const causes = [];
    for (let e = err; e; e = e.cause) causes.push(String(e.message ?? e));
    results.push({ error: causes.join(" <- "), calls });
  }
}
const tag = (_key, value) => (typeof value === "bigint" ? { bigint: value.toString() } : value);
process.stdout.write(JSON.stringify({ views: Object.keys(STORAGE_VIEWS), results }, tag));
"""

#: Node runs the web's modules; the project needs it anyway (compiling, the web build), so a
#: machine without it fails here rather than skipping.
NODE = shutil.which("node")

#: The Listing, Config, Batch and Bond structs as the removed views returned them (the ABI of
#: CodeEscrow before ``extsload``, less the referralBps that resellers replaced): member names
#: and Solidity types in declaration order.
LISTING = (
    ("supplier", "address"),
    ("committed", "uint32"),
    ("sold", "uint32"),
    ("bondBps", "uint16"),
    ("active", "bool"),
    ("token", "address"),
    ("unitPrice", "uint96"),
    ("deliveryWindow", "uint32"),
    ("disputeWindow", "uint32"),
    ("batchCount", "uint32"),
    ("feeBps", "uint16"),
    ("arbitrationWindow", "uint32"),
    ("onChainFrom", "uint32"),
    ("tiered", "bool"),
    ("sku", "bytes32"),
)
CONFIG = (
    ("feeRecipient", "address"),
    ("feeBps", "uint16"),
    ("minBondBps", "uint16"),
    ("arbitrationWindow", "uint32"),
    ("minDeliveryWindow", "uint32"),
    ("maxDeliveryWindow", "uint32"),
    ("minDisputeWindow", "uint32"),
    ("maxDisputeWindow", "uint32"),
)
BATCH = (("root", "bytes32"), ("firstIndex", "uint32"), ("count", "uint32"))
BOND = (("free", "uint128"), ("reserved", "uint128"))

Output = str | tuple[tuple[str, str], ...]
#: Each removed view's output: a Solidity type, or a struct's members.
OUTPUTS: dict[str, Output] = {
    "getListing": LISTING,
    "getBatch": BATCH,
    "orderHash": "bytes32",
    "bondOf": BOND,
    "balanceOf": "uint256",
    "authorization": "bytes32",
    "isDeliveryKey": "bool",
    "isProposedDeliveryKey": "bool",
    "config": CONFIG,
    "listingCount": "uint256",
    "feesOf": "uint256",
    # Reads added since in the same style: a uint256 mapping value each.
    "resellerPrice": "uint256",
    "shopPrice": "uint256",
    "tiers": "uint256",
}

Query = tuple[str, list[Any]]


def _js(value: Any, solidity: str) -> Any:
    """A value of a Solidity type as viem decodes it, in the tagged JSON of NODE_SCRIPT."""
    if solidity == "bytes32":
        assert isinstance(value, bytes) and len(value) == 32, value
        return "0x" + value.hex()
    if solidity.startswith("uint"):
        assert isinstance(value, int) and not isinstance(value, bool), value
        return value if int(solidity[4:]) <= 48 else {"bigint": str(value)}
    if solidity == "bool":
        assert isinstance(value, bool), value
        return value
    assert solidity == "address" and isinstance(value, str), value
    return value


def _expected(view: str, value: Any) -> Any:
    """What the view gave through viem, from what `EscrowStorage.view` answers."""
    output = OUTPUTS[view]
    if isinstance(output, str):
        return _js(value, output)
    assert len(value) == len(output), (view, value)
    return {name: _js(v, solidity) for (name, solidity), v in zip(output, value, strict=True)}


def _tagged(arg: Any) -> Any:
    """A view argument as JSON for node: ints as bigints (as the pages pass them), bytes as hex."""
    if isinstance(arg, bytes):
        return "0x" + arg.hex()
    if isinstance(arg, int) and not isinstance(arg, bool):
        return {"bigint": str(arg)}
    return arg


def _locations(rich: Rich, view: str, args: list[Any]) -> list[Location]:
    """Where the Python decoder finds what `view` reads (the slots storage.js must ask for)."""
    locate = rich.storage.layout.locate
    variable = {
        "getListing": "_listings",
        "getBatch": "_batches",
        "orderHash": "_orderHashes",
        "bondOf": "_ledgers",
        "authorization": "_authorizations",
        "isDeliveryKey": "_deliveryKeys",
        "isProposedDeliveryKey": "_deliveryKeys",
        "config": "_config",
        "listingCount": "_listingCount",
        "feesOf": "_fees",
        "resellerPrice": "_resellerPrices",
        "shopPrice": "_shopPrices",
        "tiers": "_tiers",
    }
    if view == "balanceOf":
        return [locate("_ledgers", *args, "balance"), locate("_overflow", *args)]
    return [locate(variable[view], *args)]


def _queries(rich: Rich) -> list[Query]:
    """(view, args) covering every replaced view, with known, unknown and zero keys."""
    count = rich.env.escrow.storage.listing_count()
    q: list[Query] = [("listingCount", []), ("config", [])]
    q += [("getListing", [i]) for i in [*range(count + 2), 2**64, 2**256 - 1]]
    q += [("getBatch", [lid, i]) for lid, i in product(range(rich.listing + 2), range(3))]
    q += [("orderHash", [o]) for o in rich.orders]
    for account, token in product(rich.accounts, rich.tokens):
        q += [("bondOf", [account, token]), ("balanceOf", [account, token])]
    q += [("authorization", [s, k]) for s, k in product(rich.suppliers, rich.skus)]
    for supplier, key in product(rich.suppliers, rich.keys):
        q += [("isDeliveryKey", [supplier, key]), ("isProposedDeliveryKey", [supplier, key])]
    q += [("feesOf", [t]) for t in rich.tokens]
    listings = range(rich.listing + 2)
    q += [("resellerPrice", [lid]) for lid in listings]
    q += [("shopPrice", [a, lid]) for a, lid in product(rich.accounts, listings)]
    q += [("tiers", [lid]) for lid in listings]
    return q


def _run_node(
    escrow: str, words: dict[str, str], queries: list[Query], tmp_path: Path
) -> dict[str, Any]:
    """storage.js over `queries`: the views it answers and one result (or error) per query."""
    assert NODE is not None, "node is not on PATH (the project needs Node.js 20+ and npm)"
    data = tmp_path / "input.json"
    rows = [[view, [_tagged(a) for a in args]] for view, args in queries]
    data.write_text(json.dumps({"escrow": escrow, "words": words, "queries": rows}))
    done = subprocess.run(
        [
            NODE,
            "--input-type=module",
            "-",
            str(STORAGE_JS),
            str(LAYOUT_JS),
            str(ARTIFACT),
            str(data),
        ],
        input=NODE_SCRIPT,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    assert len(out["results"]) == len(queries)
    return out


@pytest.fixture(scope="module")
def prepared(rich_state: Rich) -> tuple[dict[str, str], list[Query]]:  # noqa: F811
    """The queries, and the storage words they need, read through the escrow's ``extsload``."""
    layout, queries = rich_state.storage.layout, _queries(rich_state)
    slots = sorted(
        {
            s
            for view, args in queries
            for loc in _locations(rich_state, view, args)
            for s in layout.slots(loc)
        }
    )
    read = extsload_reader(rich_state.env.escrow.contract)([s.to_bytes(32, "big") for s in slots])
    words = {f"0x{s:064x}": "0x" + bytes(w).hex() for s, w in zip(slots, read, strict=True)}
    return words, queries


def test_storage_js_answers_as_the_python_decoder(
    rich_state: Rich,  # noqa: F811
    prepared: tuple[dict[str, str], list[Query]],
    tmp_path: Path,
) -> None:
    words, queries = prepared
    escrow = rich_state.env.escrow
    out = _run_node(escrow.address, words, queries, tmp_path)
    # storage.js answers exactly the views the Python decoder answers, and the queries ask all.
    assert set(out["views"]) == set(VIEWS) == set(OUTPUTS) == {view for view, _ in queries}
    for (view, args), result in zip(queries, out["results"], strict=True):
        assert "error" not in result, (view, args, result)
        assert result["calls"] == 1, (view, args, result)
        expected = _expected(view, escrow.storage.view(view, *args))
        # The same JSON text: same values, member order and JavaScript types (True is not 1).
        assert json.dumps(result["value"]) == json.dumps(expected), (view, args)
    # The state is rich enough for the comparison to mean something.
    listing = out["results"][queries.index(("getListing", [rich_state.listing]))]["value"]
    assert listing["active"] is True and isinstance(listing["committed"], int)
    assert int(listing["unitPrice"]["bigint"]) > 0 and listing["sku"] != "0x" + "00" * 32
    assert any(
        r["value"] is True
        for (v, _), r in zip(queries, out["results"], strict=True)
        if v == "isDeliveryKey"
    )


def test_a_wrong_or_missing_word_or_an_unknown_view_shows(
    rich_state: Rich,  # noqa: F811
    prepared: tuple[dict[str, str], list[Query]],
    tmp_path: Path,
) -> None:
    """The comparison can fail: a changed word gives a different listing, a missing one an
    error naming the slot, and a view storage does not answer is refused without a call."""
    words, _ = prepared
    escrow = rich_state.env.escrow.address
    query: Query = ("getListing", [rich_state.listing])
    price = rich_state.storage.layout.locate("_listings", rich_state.listing, "unitPrice")
    key = f"0x{price.slot:064x}"
    word = int(words[key], 16) ^ (1 << (8 * price.offset))  # the lowest bit of unitPrice
    changed = {**words, key: f"0x{word:064x}"}
    (honest,) = _run_node(escrow, words, [query], tmp_path)["results"]
    (result,) = _run_node(escrow, changed, [query], tmp_path)["results"]
    assert (
        int(result["value"]["unitPrice"]["bigint"])
        == int(honest["value"]["unitPrice"]["bigint"]) ^ 1
    )
    missing = {k: v for k, v in words.items() if k != key}
    (result,) = _run_node(escrow, missing, [query], tmp_path)["results"]
    assert f"slot {key} is not in the map" in result["error"], result
    (result,) = _run_node(escrow, words, [("paused", [])], tmp_path)["results"]
    assert result == {"error": "the escrow's storage does not answer paused", "calls": 0}
