"""CSV intake: what is accepted, and every way a file is rejected with line numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backend.errors import UploadRejected, UploadTooLarge
from backend.vault.csv import parse_codes

NOW = datetime(2026, 11, 26, tzinfo=UTC)


def parse(data: bytes, **kw: int) -> list:  # type: ignore[type-arg]
    return parse_codes(data, max_bytes=kw.pop("max_bytes", 10_000), now=NOW, **kw)


def rejected(data: bytes, **kw: int) -> UploadRejected:
    with pytest.raises(UploadRejected) as exc:
        parse(data, **kw)
    return exc.value


def test_codes_with_header_expiry_and_note_are_parsed() -> None:
    data = (
        b"code,expiry,note\n"
        b"KMG-1,2027-01-31,from distributor A\n"
        b"KMG-2,,\n"
        b"KMG-3,2027-02-01T12:00:00+08:00\n"
        b'"KMG,4",1830000000,"note, with comma"\n'
        b"  KMG-5  \r\n"
        b"\n"
    )
    codes = parse(data)
    assert [c.code for c in codes] == [b"KMG-1", b"KMG-2", b"KMG-3", b"KMG,4", b"KMG-5"]
    assert [c.line for c in codes] == [2, 3, 4, 5, 6]
    assert codes[0].expires_at == datetime(2027, 2, 1, tzinfo=UTC)
    assert codes[0].note == "from distributor A"
    assert codes[1].expires_at is None and codes[1].note is None
    assert codes[2].expires_at == datetime(2027, 2, 1, 4, tzinfo=UTC)
    assert codes[3].expires_at == datetime.fromtimestamp(1830000000, UTC)


def test_bom_and_unicode_codes_are_accepted() -> None:
    codes = parse("\ufeff卡密-一\n卡密-二\n".encode())
    assert [c.code.decode() for c in codes] == ["卡密-一", "卡密-二"]


@pytest.mark.parametrize("data", [b"", b"   \n\n", b"\xef\xbb\xbf"])
def test_empty_file_is_rejected(data: bytes) -> None:
    assert rejected(data).problems == [(0, "the file is empty: put one code per line")]


def test_header_only_file_is_rejected() -> None:
    assert rejected(b"code,expiry,note\n").problems[0][0] == 0


def test_bad_encoding_names_each_line() -> None:
    exc = rejected(b"GOOD-1\n\xff\xfeBAD\nGOOD-2\nBAD-\xc3\n")
    assert [line for line, _ in exc.problems] == [2, 4]
    assert "UTF-8" in exc.problems[0][1]


def test_over_long_code_is_rejected_without_echoing_it() -> None:
    secret = "S" * 257
    exc = rejected(f"OK-1\n{secret}\n".encode(), max_code_bytes=256)
    assert exc.problems == [(2, "code is 257 bytes, over the 256-byte limit")]
    assert secret not in str(exc)


def test_duplicates_within_the_file_point_at_the_first_line() -> None:
    exc = rejected(b"A-1\nB-2\nA-1\nC-3\nB-2\n")
    assert exc.problems == [
        (3, "duplicate code: same as line 1"),
        (5, "duplicate code: same as line 2"),
    ]
    assert "A-1" not in str(exc) and "B-2" not in str(exc)


def test_every_problem_is_listed_in_line_order() -> None:
    data = b'A-1\n,2027-01-01\nB-2,not-a-date\nC-3,2020-01-01\nD-4,,,extra\n"E-5\nF\x07G\n'
    exc = rejected(data)
    assert [line for line, _ in exc.problems] == [2, 3, 4, 5, 6, 7]
    reasons = dict(exc.problems)
    assert reasons[2] == "empty code"
    assert "not YYYY-MM-DD" in reasons[3]
    assert reasons[4] == "the code has already expired"
    assert "columns" in reasons[5]
    assert "malformed CSV" in reasons[6]
    assert "control" in reasons[7]


def test_note_too_long_is_rejected() -> None:
    exc = rejected(b"A-1,," + b"n" * 501 + b"\n")
    assert exc.problems == [(1, "note is over 500 characters")]


def test_size_cap_is_enforced_before_parsing() -> None:
    with pytest.raises(UploadTooLarge) as exc:
        parse(b"A" * 101, max_bytes=100)
    assert exc.value.status_code == 413
    assert "over the 100-byte limit" in str(exc.value)


def test_too_many_codes_is_rejected() -> None:
    exc = rejected(b"A\nB\nC\n", max_codes=2)
    assert exc.problems == [(0, "3 codes, over the 2-code limit of one upload; split it")]


def test_parsed_code_repr_hides_the_code() -> None:
    (code,) = parse(b"TOP-SECRET-CODE\n")
    assert "TOP-SECRET" not in repr(code)


def test_rejection_keeps_at_most_a_thousand_problems_but_counts_all() -> None:
    data = b"\n".join([b"X"] * 1500)
    exc = rejected(data)
    assert len(exc.problems) == 1000
    assert exc.total == 1499
