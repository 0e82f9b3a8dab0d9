"""Decoding escrow logs straight from their JSON-RPC hex, against plans computed once.

`contracts.events.EventCodec` knows every event's topic and types. For the events whose data
holds only static ABI types (all the high-volume ones: OrderPaid, OrderDelivered, OrderSettled,
...), `LogDecoder` compiles the codec's spec into a small Python function that slices each
32-byte word straight out of the hex string the node sent: no hex-to-bytes round trip, no
`eth_abi` call, addresses checksummed through a cache. Events with dynamic data (strings) go
through the codec's `decode_args`. Both paths give the same values, in the indexer's representation:

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


class _Plan:
    __slots__ = ("fn", "name", "topics", "words")

    def __init__(
        self,
        name: str,
        fn: Callable[[list[str], str], dict[str, Any]] | None,
        topics: int,
        words: int,
    ) -> None:
        self.name = name
        self.fn = fn  # None: dynamic data, decoded by the codec
        self.topics = topics
        self.words = words

    @property
    def dynamic(self) -> bool:
        """Whether the event's data is dynamic (decoded by the codec, not compiled)."""
        return self.fn is None


def _signed(value: int) -> int:
    return value - (1 << 256) if value >= 1 << 255 else value


def _is_word(typ: str) -> bool:
    """Whether a type is one static word (as opposed to arrays, strings, bytes, tuples)."""
    return (
        typ == "address"
        or typ == "bool"
        or typ.startswith(("uint", "int"))
        or (typ.startswith("bytes") and typ != "bytes")
    )


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

    @staticmethod
    def _word_expr(typ: str, var: str, start: int) -> str | None:
        """Source of an expression reading one word of `typ` at ``var[start:start + 64]``."""
        word = f"{var}[{start}:{start + 64}]"
        if typ == "address":
            return f'cs("0x" + {var}[{start + 24}:{start + 64}].lower())'
        if typ.startswith("uint"):
            return f"int({word}, 16)"
        if typ.startswith("int"):
            return f"signed(int({word}, 16))"
        if typ == "bool":
            return f"(int({word}, 16) != 0)"
        if typ.startswith("bytes") and typ != "bytes":
            return f'"0x" + {var}[{start}:{start + 2 * int(typ[5:])}].lower()'
        return None

    def _static_expr(self, typ: str, var: str, start: int) -> tuple[int, str] | None:
        """(words, expression source) of a static type in the data; None if it is dynamic."""
        if typ.startswith("(") and typ.endswith(")"):
            parts, words = [], 0
            for inner in _split_tuple(typ):
                found = self._static_expr(inner, var, start + 64 * words)
                if found is None:
                    return None
                words += found[0]
                parts.append(found[1])
            return words, "(" + ", ".join(parts) + ",)"
        if typ.endswith("]"):
            return None
        expr = self._word_expr(typ, var, start)
        return None if expr is None else (1, expr)

    def _plan(self, spec: EventSpec) -> _Plan:
        """Compile a decoder function for an event whose data is static."""
        fields = []
        for i, (name, typ) in enumerate(spec.indexed, start=1):
            expr = self._word_expr(typ, f"topics[{i}]", 2)
            if expr is None:  # dynamic indexed values are hashed into the topic
                expr = f"topics[{i}].lower()"
            fields.append(f"{name!r}: {expr}")
        words = 0
        for name, typ in zip(spec.data_names, spec.data_types, strict=True):
            found = self._static_expr(typ, "data", 2 + 64 * words)
            if found is None:
                return _Plan(spec.name, None, len(spec.indexed) + 1, 0)
            words += found[0]
            fields.append(f"{name!r}: {found[1]}")
        source = "def decode(topics, data):\n    return {" + ", ".join(fields) + "}\n"
        namespace: dict[str, Any] = {"cs": self.checksum, "signed": _signed}
        exec(compile(source, f"<decode {spec.name}>", "exec"), namespace)  # noqa: S102
        return _Plan(spec.name, namespace["decode"], len(spec.indexed) + 1, words)

    def normalize(self, value: Any, typ: str) -> Any:
        """A value decoded by `eth_abi` in the indexer's representation (see the module note)."""
        if typ.startswith("(") and typ.endswith(")"):
            return tuple(
                self.normalize(v, t) for v, t in zip(value, _split_tuple(typ), strict=True)
            )
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
        plan = self.plans.get(topics[0]) or self.plans.get(topics[0].lower())
        if plan is None:
            return None
        fn = plan.fn
        if fn is None or len(data) != 2 + 64 * plan.words or len(topics) != plan.topics:
            return self._slow(topics, data)
        return plan.name, fn(topics, data)

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
            if key in dict(spec.indexed) and not _is_word(typ):
                args[key] = "0x" + bytes(value).hex()
            else:
                args[key] = self.normalize(value, typ)
        return name, args
