"""Error classification, provider-suggested ranges, range sizing and retries (pure units).

The same code runs against a faulty node in tests/integration/test_indexer_faults.py.
"""

from __future__ import annotations

import threading

import pytest

from indexer.errors import RangeTooLargeError, RpcError, TransientRpcError
from indexer.fetch import RangeSizer, Retrier, RetryPolicy, StopRequested
from indexer.source import classify_rpc_error, suggested_range


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "query returned more than 10000 results. Try with this block range [0x10, 0x1F].",
            (16, 31),
        ),
        (
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K "
            "block range and no limit on the response size, or you can request any block range "
            "with a cap of 10K logs in the response. Based on your parameters, this block "
            "range should work: [0x1234, 0x1300]",
            (0x1234, 0x1300),
        ),
        ("try [100, 200]", (100, 200)),
        ("query exceeds max results", None),
        ("range [0x20, 0x10] is backwards", None),
    ],
)
def test_suggested_range_is_read_from_provider_messages(
    message: str, expected: tuple[int, int] | None
) -> None:
    assert suggested_range(message) == expected


def test_infura_and_alchemy_limits_are_range_errors_with_their_suggestion() -> None:
    infura = classify_rpc_error(
        "eth_getLogs",
        {
            "code": -32005,
            "message": "query returned more than 10000 results. Try with this block range "
            "[0x4a7c5a, 0x4a7d2b].",
        },
    )
    assert isinstance(infura, RangeTooLargeError) and infura.suggested_to == 0x4A7D2B
    alchemy = classify_rpc_error(
        "eth_getLogs",
        {
            "code": -32602,
            "message": "Log response size exceeded. ... this block range should work: [0x1, 0x7d0]",
        },
    )
    assert isinstance(alchemy, RangeTooLargeError) and alchemy.suggested_to == 0x7D0
    for message in (
        "query exceeds max results",
        "response size exceeded",
        "block range too large",
        "eth_getLogs block range is too large",
    ):
        err = classify_rpc_error("eth_getLogs", {"code": -32000, "message": message})
        assert isinstance(err, RangeTooLargeError) and err.suggested_to is None


def test_rate_limits_and_server_errors_are_transient() -> None:
    rate = classify_rpc_error(
        "eth_getLogs", {"code": -32005, "message": "rate limit exceeded, slow down"}
    )
    assert type(rate) is TransientRpcError  # not a range error, though eth_getLogs
    for error in (
        {"code": 429, "message": "Too Many Requests"},
        {"code": -32005, "message": "daily request count exceeded"},
        {"code": -32603, "message": "internal error"},
        {"code": -32000, "message": "header not found"},
    ):
        assert isinstance(classify_rpc_error("eth_blockNumber", error), TransientRpcError)


def test_other_errors_are_not_retried() -> None:
    err = classify_rpc_error("eth_getLogs", {"code": -32602, "message": "invalid argument 0"})
    assert type(err) is RpcError
    err = classify_rpc_error("eth_call", {"code": 3, "message": "execution reverted"})
    assert type(err) is RpcError


def test_sizer_grows_on_sparse_answers_and_shrinks_on_dense_ones() -> None:
    sizer = RangeSizer(initial=100, maximum=10_000, target_logs=1000)
    sizer.succeeded(blocks=100, logs=10)
    assert sizer.next_size() == 800  # up to 8x when answers are far below the target
    sizer.succeeded(blocks=800, logs=400)
    assert sizer.next_size() == 1600
    sizer.succeeded(blocks=1600, logs=8000)
    assert sizer.next_size() == 200  # proportional: about target_logs per answer
    for _ in range(20):
        sizer.succeeded(blocks=sizer.next_size(), logs=0)
    assert sizer.next_size() == 10_000


def test_sizer_takes_the_providers_suggestion_or_halves() -> None:
    sizer = RangeSizer(initial=1000, maximum=10_000)
    sizer.refused(blocks=1000, suggested=120)
    assert sizer.next_size() == 120
    sizer.refused(blocks=120)
    assert sizer.next_size() == 60
    for _ in range(10):
        sizer.refused(blocks=sizer.next_size())
    assert sizer.next_size() == 1


def test_retrier_retries_transient_faults_then_succeeds() -> None:
    failures = iter([TransientRpcError("HTTP 429"), TransientRpcError("timed out")])

    def flaky() -> str:
        for exc in failures:
            raise exc
        return "ok"

    retrier = Retrier(RetryPolicy(base=0.001, cap=0.002, max_attempts=5))
    assert retrier.call(flaky, "test") == "ok"
    assert retrier.retries == 2


def test_retrier_gives_up_after_max_attempts_and_never_retries_hard_errors() -> None:
    retrier = Retrier(RetryPolicy(base=0.001, cap=0.001, max_attempts=3))
    calls = []

    def down() -> None:
        calls.append(1)
        raise TransientRpcError("HTTP 503")

    with pytest.raises(TransientRpcError):
        retrier.call(down, "test")
    assert len(calls) == 3

    def bad() -> None:
        calls.append(1)
        raise RpcError("invalid params")

    with pytest.raises(RpcError):
        retrier.call(bad, "test")
    assert len(calls) == 4


def test_retrier_stops_waiting_when_asked() -> None:
    stop = threading.Event()
    stop.set()
    retrier = Retrier(RetryPolicy(base=60, cap=60, max_attempts=None), stop)

    def down() -> None:
        raise TransientRpcError("timed out")

    with pytest.raises(StopRequested):
        retrier.call(down, "test")


def test_retry_after_is_honoured_within_the_cap() -> None:
    policy = RetryPolicy(base=0.01, cap=5)
    assert policy.delay(0, retry_after=3) == 3
    assert policy.delay(0, retry_after=100) == 5
    assert 0.005 <= policy.delay(0) <= 0.01
