"""Decoding escrow logs straight from their JSON-RPC hex, against plans computed once.

`contracts.events.EventCodec` knows every event's topic and types. For the events whose data
holds only static ABI types (all the high-volume ones: OrderPaid, OrderDelivered, OrderSettled,
...), `LogDecoder` compiles the codec's spec into a plan that reads each 32-byte word directly
from the hex string the node sent: no hex-to-bytes round trip, no `eth_abi` call, addresses
checksummed through a cache. Events with dynamic data (strings) go through the codec's
`decode_args`. Both paths give the same values, in the indexer's representation:

- ``address``: checksummed string;
- ``bytesN``: ``0x``-prefixed lowercase hex of its N bytes;
- ``uintN`` / ``intN``: int; ``bool``: bool; ``string``: str; static tuples: tuples of these.

`tests/indexer/test_decode.py` checks the two paths against each other on every event type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

if TYPE_CHECKING:
    from contracts.events import EventCodec, EventSpec

Word = Callable[[str], Any]


class _Plan:
    __slots__ = ("data", "dynamic", "indexed", "name", "words")

    def __init__(self, name: str, indexed: list[tuple[str, Word]],
                 data: list[tuple[str, int, int, Word]] | None, words: int) -> None:
        self.name = name
        self.indexed = indexed
        self.data = data  # None: dynamic data, decode with the codec
        self.dynamic = data is None
        self.words = words


def _split_tuple(type_string: str) -> list[str]:
    """The component types of a tuple type such as ``(address,uint16,(bool,uint8))``."""
    inner = type_string[1:-1]
    parts, depth, current = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        current += ch
    if current:
        parts.append(current)
    return parts


class LogDecoder:
    """Decodes one ABI's logs from JSON-RPC hex, fast for static events."""

    def __init__(self, codec: EventCodec) -> None:
        """Compile a plan per event of `codec`."""
        self.codec = codec
        self._checksums: dict[str, str] = {}
        self.plans: dict[str, _Plan] = {}
        for spec in codec.by_topic.values():
            self.plans["0x" + spec.topic0.hex()] = self._plan(spec)

    # ------------------------------------------------------------ values

    def checksum(self, address: str) -> str:
        """The checksummed form of a lowercase ``0x`` address (cached)."""
        found = self._checksums.get(address)
        if found is None:
            found = to_checksum_address(address)
            self._checksums[address] = found
        return found

    def _word(self, typ: str) -> Word | None:
        """A function of one 64-hex-digit word, or None for a type that is not one word."""
        if typ == "address":
            checksum = self.checksum
            return lambda w: checksum("0x" + w[24:].lower())
        if typ.startswith("uint"):
            return lambda w: int(w, 16)
        if typ.startswith("int"):
            bits = 256

            def signed(w: str) -> int:
                v = int(w, 16)
                return v - (1 << bits) if v >= 1 << (bits - 1) else v

            return signed
        if typ == "bool":
            return lambda w: int(w, 16) != 0
        if typ.startswith("bytes") and typ != "bytes":
            size = int(typ[5:])
            return lambda w: "0x" + w[: 2 * size].lower()
        return None

    def _static(self, typ: str) -> tuple[int, Word] | None:
        """(words, reader) of a static type; None for dynamic ones."""
        if typ.startswith("(") and typ.endswith(")"):
            parts = [self._static(t) for t in _split_tuple(typ)]
            if any(p is None for p in parts):
                return None
            readers: list[tuple[int, int, Word]] = []
            offset = 0
            for p in parts:
                assert p is not None
                readers.append((offset, p[0], p[1]))
                offset += p[0]
            total = offset

            def read_tuple(w: str) -> tuple[Any, ...]:
                return tuple(fn(w[64 * o: 64 * (o + n)]) for o, n, fn in readers)

            return total, read_tuple
        if typ.endswith("]"):
            return None
        word = self._word(typ)
        return None if word is None else (1, word)

    def _plan(self, spec: EventSpec) -> _Plan:
        indexed: list[tuple[str, Word]] = []
        for name, typ in spec.indexed:
            word = self._word(typ)
            if word is None:  # dynamic indexed values are hashed into the topic
                indexed.append((name, lambda w: "0x" + w.lower()))
            else:
                indexed.append((name, word))
        data: list[tuple[str, int, int, Word]] | None = []
        offset = 0
        for name, typ in zip(spec.data_names, spec.data_types, strict=True):
            static = self._static(typ)
            if static is None:
                data = None
                break
            assert data is not None
            data.append((name, 64 * offset, 64 * (offset + static[0]), static[1]))
            offset += static[0]
        return _Plan(spec.name, indexed, data, offset)

    def normalize(self, value: Any, typ: str) -> Any:
        """A value decoded by `eth_abi` in the indexer's representation (see the module note)."""
        if typ.startswith("(") and typ.endswith(")"):
            return tuple(self.normalize(v, t)
                         for v, t in zip(value, _split_tuple(typ), strict=True))
        if typ == "address":
            return self.checksum(str(value).lower())
        if typ.startswith("bytes") and typ != "bytes":
            return "0x" + bytes(value).hex()
        if typ == "bytes":
            return "0x" + bytes(value).hex()
        return value

    # ------------------------------------------------------------ logs

    def decode(self, topics: list[str], data: str) -> tuple[str, dict[str, Any]] | None:
        """Decode one log from its hex topics and data; None when the event is unknown.

        Args:
            topics: ``0x`` hex topics, topic0 first.
            data: ``0x`` hex data.

        Returns:
            The event's name and its arguments.
        """
        if not topics:
            return None
        plan = self.plans.get(topics[0].lower())
        if plan is None:
            return None
        if plan.data is None or len(data) != 2 + 64 * plan.words or len(topics) != len(
                plan.indexed) + 1:
            return self._slow(topics, data)
        args: dict[str, Any] = {}
        for (name, fn), topic in zip(plan.indexed, topics[1:], strict=False):
            args[name] = fn(topic[2:])
        body = data[2:]
        for name, start, end, fn in plan.data:
            args[name] = fn(body[start:end])
        return plan.name, args

    def _slow(self, topics: list[str], data: str) -> tuple[str, dict[str, Any]] | None:
        raw_topics = [bytes.fromhex(t[2:]) for t in topics]
        decoded = self.codec.decode_args(raw_topics, bytes.fromhex(data[2:]))
        if decoded is None:
            return None
        name, args = decoded
        spec = self.codec.by_name[name]
        types = dict(spec.indexed)
        types.update(zip(spec.data_names, spec.data_types, strict=True))
        for key, value in args.items():
            typ = types[key]
            if key in dict(spec.indexed) and self._word(typ) is None:
                args[key] = "0x" + bytes(value).hex()
            else:
                args[key] = self.normalize(value, typ)
        return name, args
