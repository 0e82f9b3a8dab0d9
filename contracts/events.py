"""Fast decoding of escrow logs and revert data, against ABI types computed once.

web3's `process_log` rebuilds ABI types and checksums for every log (about 160 µs each);
decoding with `eth_abi` against precomputed types costs a few µs. The indexer and the client
both decode through `EventCodec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak

from contracts.errors import ContractRevertError
from contracts.layout import abi_type as _type_string


@dataclass(frozen=True)
class EventSpec:
    """One event's decoding plan."""

    name: str
    topic0: bytes
    indexed: tuple[tuple[str, str], ...]
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]


@dataclass(frozen=True)
class DecodedLog:
    """A decoded log with where it came from."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int


def _hex_to_bytes(value: str | bytes) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return bytes.fromhex(value[2:] if value.startswith("0x") else value)


def _to_int(value: str | int) -> int:
    return value if isinstance(value, int) else int(value, 16)


class EventCodec:
    """Decodes the logs and custom errors of one ABI."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        """Precompute topic hashes, types and error selectors."""
        self.by_topic: dict[bytes, EventSpec] = {}
        self.by_name: dict[str, EventSpec] = {}
        self.errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for item in abi:
            if item["type"] == "event":
                types = [_type_string(p) for p in item["inputs"]]
                signature = f"{item['name']}({','.join(types)})"
                spec = EventSpec(
                    name=item["name"],
                    topic0=keccak(text=signature),
                    indexed=tuple(
                        (p["name"], _type_string(p)) for p in item["inputs"] if p["indexed"]
                    ),
                    data_names=tuple(p["name"] for p in item["inputs"] if not p["indexed"]),
                    data_types=tuple(_type_string(p) for p in item["inputs"] if not p["indexed"]),
                )
                self.by_topic[spec.topic0] = spec
                self.by_name[spec.name] = spec
            elif item["type"] == "error":
                types = [_type_string(p) for p in item["inputs"]]
                selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
                self.errors[selector] = (item["name"], [p["name"] for p in item["inputs"]], types)

    def topic(self, name: str) -> bytes:
        """The topic0 of an event."""
        return self.by_name[name].topic0

    def decode_args(self, topics: list[bytes], data: bytes) -> tuple[str, dict[str, Any]] | None:
        """Decode one log's topics and data; None when the event is not in this ABI."""
        if not topics:
            return None
        spec = self.by_topic.get(topics[0])
        if spec is None:
            return None
        args: dict[str, Any] = {}
        for (name, typ), topic in zip(spec.indexed, topics[1:], strict=True):
            args[name] = abi_decode([typ], topic)[0]
        if spec.data_types:
            for name, value in zip(spec.data_names, abi_decode(spec.data_types, data), strict=True):
                args[name] = value
        return spec.name, args

    def decode_log(self, log: dict[str, Any]) -> DecodedLog | None:
        """Decode a log as returned by `eth_getLogs` or in a receipt (hex or bytes fields)."""
        topics = [_hex_to_bytes(t) for t in log["topics"]]
        decoded = self.decode_args(topics, _hex_to_bytes(log["data"]))
        if decoded is None:
            return None
        block_hash = log["blockHash"]
        tx_hash = log["transactionHash"]
        return DecodedLog(
            name=decoded[0],
            args=decoded[1],
            address=str(log["address"]),
            block_number=_to_int(log["blockNumber"]),
            block_hash=block_hash
            if isinstance(block_hash, str)
            else "0x" + bytes(block_hash).hex(),
            tx_hash=tx_hash if isinstance(tx_hash, str) else "0x" + bytes(tx_hash).hex(),
            log_index=_to_int(log["logIndex"]),
        )

    def decode_error(self, data: bytes) -> ContractRevertError | None:
        """Decode revert data into a named error; None when the selector is unknown."""
        if len(data) < 4:
            return None
        entry = self.errors.get(data[:4])
        if entry is None:
            return None
        name, _names, types = entry
        values = abi_decode(types, data[4:]) if types else ()
        return ContractRevertError(name, tuple(values))
