"""The indexer's hex decoder agrees with `EventCodec` (eth_abi) on every event of the ABI."""

from __future__ import annotations

import random
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import to_checksum_address

from contracts.client import escrow_codec
from indexer.decode import LogDecoder, _split_tuple

CODEC = escrow_codec()
DECODER = LogDecoder(CODEC)


def _value(typ: str, rng: random.Random) -> Any:
    if typ.endswith("[]"):  # dynamic arrays (TiersSet): empty, one, a few
        return [_value(typ[:-2], rng) for _ in range(rng.choice([0, 1, 3]))]
    if typ.startswith("("):
        return tuple(_value(t, rng) for t in _split_tuple(typ))
    if typ == "address":
        return to_checksum_address(rng.randbytes(20))
    if typ.startswith("uint"):
        bits = int(typ[4:] or 256)
        return rng.choice([0, 1, (1 << bits) - 1, rng.getrandbits(bits)])
    if typ == "bool":
        return rng.random() < 0.5
    if typ == "string":
        return rng.choice(["", "ipfs://x", "ünïcødé\ttab\nline", "a" * 100])
    if typ == "bytes":  # dynamic (ReleasePublished): empty, short, a word and more
        return rng.randbytes(rng.choice([0, 1, 32, 33, 200]))
    if typ.startswith("bytes"):
        return rng.randbytes(int(typ[5:]))
    raise AssertionError(f"no generator for {typ}")


def _expected(value: Any, typ: str) -> Any:
    """What the decoder should give: checksummed addresses, 0x hex for bytesN, tuples for
    arrays (as eth_abi gives them)."""
    if typ.endswith("[]"):
        return tuple(_expected(v, typ[:-2]) for v in value)
    if typ.startswith("("):
        return tuple(_expected(v, t) for v, t in zip(value, _split_tuple(typ), strict=True))
    if typ == "address":
        return to_checksum_address(value)
    if typ.startswith("bytes"):
        return "0x" + bytes(value).hex()
    return value


@pytest.mark.parametrize("name", sorted(CODEC.by_name))
def test_decoder_matches_eth_abi_on_every_event(name: str) -> None:
    spec = CODEC.by_name[name]
    rng = random.Random(name)
    for _ in range(25):
        indexed = [(n, t, _value(t, rng)) for n, t in spec.indexed]
        data_values = [_value(t, rng) for t in spec.data_types]
        topics = ["0x" + spec.topic0.hex()] + ["0x" + encode([t], [v]).hex() for _, t, v in indexed]
        data = "0x" + encode(list(spec.data_types), data_values).hex()
        decoded = DECODER.decode(topics, data)
        assert decoded is not None
        got_name, args = decoded
        assert got_name == name
        want = {n: _expected(v, t) for n, t, v in indexed}
        want.update(
            {
                n: _expected(v, t)
                for n, t, v in zip(spec.data_names, spec.data_types, data_values, strict=True)
            }
        )
        assert args == want
        # And eth_abi, through the codec, reads the same bytes the same way.
        raw = CODEC.decode_args([bytes.fromhex(t[2:]) for t in topics], bytes.fromhex(data[2:]))
        assert raw is not None
        types = dict(spec.indexed) | dict(zip(spec.data_names, spec.data_types, strict=True))
        assert {k: DECODER.normalize(v, types[k]) for k, v in raw[1].items()} == want


def test_static_events_take_the_fast_path() -> None:
    fast = {p.name for p in DECODER.plans.values() if not p.dynamic}
    assert {
        "OrderPaid",
        "OrderDelivered",
        "OrderSettled",
        "OrderConfirmed",
        "DisputeRuled",
        "ConfigUpdated",
        "BondDeposited",
        "Withdrawn",
    } <= fast
    assert {"ListingCreated", "DisputeOpened", "EvidenceAdded"}.isdisjoint(fast)


def test_unknown_topic_and_malformed_data() -> None:
    assert DECODER.decode(["0x" + "00" * 32], "0x") is None
    assert DECODER.decode([], "0x") is None
    spec = CODEC.by_name["OrderDelivered"]
    topics = ["0x" + spec.topic0.hex(), "0x" + "00" * 31 + "05"]
    # Data of the wrong length goes to eth_abi, which refuses it.
    with pytest.raises(Exception, match=r"(?i)insufficient|decod|bytes"):
        DECODER.decode(topics, "0x1234")
