"""Chain reads for building and verifying bundles: logs, receipts, blocks, pinned calls.

Nothing here touches a database or the backend: the builder and the chain-only verifier read
the chain through the same `ChainView`, so the facts they derive sections from are gathered the
same way. Reads that depend on state (an order's stored hash, a batch, both decoded from the
escrow's storage through ``extsload``) are pinned to a block number
whose hash is checked, so a bundle made weeks ago verifies against an archive node.

A view may be given a `LogIndex`: something that knows in which blocks an order's, a listing's
or a batch's logs are (the backend's SQL mirror). `find_logs` then asks the node only for those
blocks and for the blocks past what the index covers, instead of the whole range: on a chain of
10,000 blocks that is a handful of one-block queries instead of a scan. The logs themselves
still come from the node; the index only says where to look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import BlockNotFound, TransactionNotFound

from backend.evidence.errors import EvidenceError
from contracts.artifacts import load, runtime_code_hash
from contracts.client import EscrowClient
from contracts.errors import ChainError
from contracts.storage import VIEWS

if TYPE_CHECKING:
    from contracts.chain import Chain

#: Events whose first indexed argument is the order id.
ORDER_EVENTS = (
    "OrderPaid",
    "OrderDelivered",
    "OrderConfirmed",
    "OrderSettled",
    "OrderRefunded",
    "DisputeOpened",
    "EvidenceAdded",
    "DisputeRuled",
)
#: ERC-1497 events whose second indexed argument is the order id.
ERC1497_ORDER_EVENTS = ("Dispute", "Evidence", "Ruling")


class FactMissing(EvidenceError):
    """The chain does not hold a fact the bundle cites (no such receipt, log or block).

    Attributes:
        claim: The claim this breaks.
    """

    def __init__(self, claim: str, detail: str) -> None:
        self.claim = claim
        super().__init__(f"{claim}: {detail}")


def hex32(value: bytes) -> str:
    """0x-prefixed lowercase hex."""
    return "0x" + bytes(value).hex()


def _to_hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray | HexBytes):
        return "0x" + bytes(value).hex()
    text = str(value)
    return text.lower() if text.startswith("0x") else "0x" + text.lower()


class LogIndex(Protocol):
    """Where the escrow's logs matching some topics are, as far as an index knows."""

    def ranges(self, topics: list[Any], from_block: int, to_block: int) -> list[tuple[int, int]]:
        """The block ranges (inclusive) within ``from_block..to_block`` that may hold logs
        matching `topics`; the whole range when the index cannot narrow it."""
        ...


@dataclass(frozen=True)
class BlockInfo:
    """A block's number, hash and timestamp."""

    number: int
    hash: str
    timestamp: int


@dataclass(frozen=True)
class FoundLog:
    """A decoded escrow log and where it is."""

    name: str
    args: dict[str, Any]
    tx: str
    log_index: int
    block_number: int
    block_hash: str


@dataclass(frozen=True)
class TxInfo:
    """A mined transaction: its block, sender, recipient and status."""

    hash: str
    block_number: int
    block_hash: str
    sender: str
    to: str
    status: int
    logs: tuple[FoundLog, ...]


def _abi_types() -> dict[str, dict[str, str]]:
    """Each escrow event's argument types by name."""
    out: dict[str, dict[str, str]] = {}
    for item in load("CodeEscrow").abi:
        if item["type"] == "event":
            out[item["name"]] = {p["name"]: p["type"] for p in item["inputs"]}
    return out


_TYPES = _abi_types()
_JSON_INT_LIMIT = 2**53


def _uint_bits(typ: str) -> int:
    return int(typ[4:] or 256)


def json_args(name: str, args: dict[str, Any]) -> dict[str, str | int | bool]:
    """An event's arguments as the bundle writes them, driven by the ABI types.

    Addresses are checksummed; bytes are 0x hex; unsigned integers of up to 53 bits are numbers
    and wider ones decimal strings (the same type always takes the same form); strings as is.
    """
    types = _TYPES[name]
    out: dict[str, str | int | bool] = {}
    for key, value in args.items():
        typ = types[key]
        if typ == "address":
            out[key] = to_checksum_address(value)
        elif typ.startswith("bytes"):
            out[key] = _to_hex(value)
        elif typ.startswith("uint"):
            out[key] = int(value) if _uint_bits(typ) <= 53 else str(int(value))
        elif typ == "bool":
            out[key] = bool(value)
        else:
            out[key] = str(value)
    return out


class ChainView:
    """Reads one escrow's facts from a chain, with caches for blocks and receipts."""

    def __init__(self, chain: Chain, escrow: str, index: LogIndex | None = None) -> None:
        """Bind to a chain and an escrow address, with an index of where logs are if known."""
        self.chain = chain
        self.index = index
        self.w3 = chain.w3
        self.client = EscrowClient(chain, escrow)
        self.escrow = self.client.address
        self.codec = self.client.codec
        self._blocks: dict[Any, BlockInfo] = {}
        self._receipts: dict[str, TxInfo] = {}

    # ------------------------------------------------------------ blocks and receipts

    def chain_id(self) -> int:
        """The node's chain id."""
        return int(self.w3.eth.chain_id)

    def head(self) -> BlockInfo:
        """The latest block."""
        return self.block(int(self.w3.eth.block_number))

    def block(self, ident: int | str) -> BlockInfo:
        """A block by number or 0x hash.

        Raises:
            FactMissing: the node has no such block.
        """
        if ident in self._blocks:
            return self._blocks[ident]
        try:
            raw = self.w3.eth.get_block(ident)  # type: ignore[arg-type]
        except (BlockNotFound, ValueError) as exc:
            raise FactMissing("block", f"the node has no block {ident}") from exc
        except Exception as exc:  # eth-tester raises its own BlockNotFound
            if type(exc).__name__ == "BlockNotFound":
                raise FactMissing("block", f"the node has no block {ident}") from exc
            raise
        info = BlockInfo(int(raw["number"]), _to_hex(raw["hash"]), int(raw["timestamp"]))
        self._blocks[info.number] = info
        self._blocks[info.hash] = info
        return info

    def tx(self, tx_hash: str) -> TxInfo:
        """A mined transaction with its decoded escrow logs.

        Raises:
            FactMissing: the node knows no receipt for it.
        """
        key = tx_hash.lower()
        if key in self._receipts:
            return self._receipts[key]
        try:
            receipt = self.w3.eth.get_transaction_receipt(key)  # type: ignore[arg-type]
        except (TransactionNotFound, ValueError) as exc:
            raise FactMissing("transactions", f"no receipt for {key} on this chain") from exc
        except Exception as exc:  # eth-tester's own "not found" errors
            if "not found" in str(exc).lower() or type(exc).__name__.endswith("NotFound"):
                raise FactMissing("transactions", f"no receipt for {key} on this chain") from exc
            raise
        logs = []
        for raw in receipt["logs"]:
            if to_checksum_address(raw["address"]) != self.escrow:
                continue
            decoded = self.codec.decode_log(dict(raw))
            if decoded is None:
                continue
            logs.append(
                FoundLog(
                    decoded.name,
                    decoded.args,
                    key,
                    decoded.log_index,
                    decoded.block_number,
                    decoded.block_hash.lower(),
                )
            )
        to = receipt.get("to")
        info = TxInfo(
            hash=key,
            block_number=int(receipt["blockNumber"]),
            block_hash=_to_hex(receipt["blockHash"]),
            sender=to_checksum_address(receipt["from"]),
            to=to_checksum_address(to) if to else "0x" + "00" * 20,
            status=int(receipt["status"]),
            logs=tuple(logs),
        )
        self._receipts[key] = info
        return info

    def log_at(self, tx_hash: str, log_index: int, claim: str) -> FoundLog:
        """The escrow log at `log_index` of a transaction.

        Raises:
            FactMissing: the transaction has no escrow log there.
        """
        for found in self.tx(tx_hash).logs:
            if found.log_index == log_index:
                return found
        raise FactMissing(claim, f"transaction {tx_hash} has no escrow log at index {log_index}")

    # ------------------------------------------------------------ logs

    def find_logs(self, topics: list[Any], from_block: int, to_block: int) -> list[FoundLog]:
        """The escrow's logs matching `topics` in a block range, decoded, in chain order.

        With an index, only the ranges it names are asked for."""
        if from_block > to_block:
            return []
        spans = [(from_block, to_block)]
        if self.index is not None:
            spans = self.index.ranges(topics, from_block, to_block)
        raw_logs: list[Any] = []
        for low, high in spans:
            raw_logs.extend(self.client.logs(low, high, topics))
        out = []
        for raw in raw_logs:
            decoded = self.codec.decode_log(dict(raw))
            if decoded is None:
                continue
            out.append(
                FoundLog(
                    decoded.name,
                    decoded.args,
                    decoded.tx_hash.lower(),
                    decoded.log_index,
                    decoded.block_number,
                    decoded.block_hash.lower(),
                )
            )
        unique = {(f.block_number, f.log_index): f for f in out}
        return [unique[k] for k in sorted(unique)]

    def topic(self, name: str) -> str:
        """An event's topic0 as 0x hex."""
        return hex32(self.codec.topic(name))

    def order_logs(self, order_id: int, from_block: int, to_block: int) -> list[FoundLog]:
        """Every log of an order (kameng's events and ERC-1497's) in a range, in chain order."""
        oid_topic = hex32(order_id.to_bytes(32, "big"))
        own = self.find_logs(
            [[self.topic(n) for n in ORDER_EVENTS], oid_topic], from_block, to_block
        )
        erc = self.find_logs(
            [[self.topic(n) for n in ERC1497_ORDER_EVENTS], None, oid_topic],
            from_block,
            to_block,
        )
        merged = {(f.block_number, f.log_index): f for f in own + erc}
        return [merged[k] for k in sorted(merged)]

    # ------------------------------------------------------------ state, pinned

    def _pinned(self, block: BlockInfo) -> int:
        """The block number to pin a call to, after checking it still has `block`'s hash.

        Raises:
            FactMissing: the chain's block at that height has another hash (a reorg, or a
                bundle from another chain).
        """
        current = self.block(block.number)
        if current.hash != block.hash:
            raise FactMissing(
                "chain.asOf",
                f"block {block.number} is {current.hash} on this chain, not {block.hash}",
            )
        return block.number

    def call_at(self, block: BlockInfo, fn: str, *args: Any) -> Any:
        """Call a view function of the escrow as of `block`; the views its storage replaced
        (`contracts.storage.VIEWS`, such as ``orderHash`` and ``getBatch``) are answered from
        its storage words through ``extsload`` at that block.

        Raises:
            FactMissing: the node cannot answer for that block (not an archive node).
        """
        number = self._pinned(block)
        try:
            if fn in VIEWS:
                return self.client.storage_at(number).view(fn, *args)
            return getattr(self.client.contract.functions, fn)(*args).call(block_identifier=number)
        except (ValueError, ChainError) as exc:
            raise FactMissing(
                "state",
                f"the node cannot run {fn} at block {number} ({exc}); use an archive node",
            ) from exc

    def order_hash_at(self, block: BlockInfo, order_id: int) -> bytes:
        """The stored hash of an order (``_orderHashes``) as of `block`."""
        return bytes(self.call_at(block, "orderHash", order_id))

    def batch_at(
        self, block: BlockInfo, listing_id: int, batch_index: int
    ) -> tuple[bytes, int, int]:
        """A listing's batch (``_batches``) as of `block`: (root, first index, count)."""
        root, first, count = self.call_at(block, "getBatch", listing_id, batch_index)
        return bytes(root), int(first), int(count)

    def code_hash(self) -> bytes:
        """keccak256 of the escrow's runtime code (code cannot change after deployment)."""
        return bytes(keccak(bytes(self.w3.eth.get_code(self.escrow))))


def artifact_code_hash() -> bytes:
    """keccak256 of the CodeEscrow runtime bytecode this kameng build deploys."""
    return runtime_code_hash("CodeEscrow")


def decode_reason(reason: bytes) -> str:
    """A bytes32 reason code as text (``code-already-redeemed``), or hex when not text."""
    trimmed = reason.rstrip(b"\0")
    try:
        text = trimmed.decode("utf-8")
    except UnicodeDecodeError:
        return hex32(reason)
    return text if text.isprintable() else hex32(reason)


def reason_code(text: str) -> bytes:
    """A reason as the bytes32 the contract takes: UTF-8, left-aligned, zero-padded.

    Raises:
        ValueError: longer than 32 bytes.
    """
    raw = text.encode("utf-8")
    if len(raw) > 32:
        raise ValueError(f"a reason code is at most 32 bytes; {text!r} has {len(raw)}")
    return raw.ljust(32, b"\0")


__all__ = [
    "BlockInfo",
    "ChainView",
    "FactMissing",
    "FoundLog",
    "TxInfo",
    "artifact_code_hash",
    "decode_reason",
    "hex32",
    "json_args",
    "reason_code",
]
