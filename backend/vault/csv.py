"""Parse and validate a supplier's CSV of codes; reject it whole, with line numbers, or not at all.

Format: UTF-8 (a BOM is allowed), one code per line, optionally followed by an expiry and a
note::

    code,expiry,note
    KMG-0001-ABCD,2027-06-30,batch from distributor A
    KMG-0002-EFGH,,
    KMG-0003-IJKL

The header line is optional (recognized by a first cell ``code``). Blank lines are ignored.
The expiry is a date (``YYYY-MM-DD``, meaning the end of that day, UTC), an ISO 8601 date-time
(UTC when it names no zone) or Unix seconds. Codes are stripped of surrounding whitespace.

No error message ever contains a code.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from backend.errors import UploadRejected, UploadTooLarge

HEADER_NAMES = frozenset({"code", "codes", "card", "卡密"})


@dataclass(frozen=True)
class ParsedCode:
    """One valid row. Its `repr` never shows the code.

    Attributes:
        line: The line number in the file, counting from 1.
        code: The code's UTF-8 bytes.
        expires_at: When the code expires, if the supplier said.
        note: The supplier's note, if any.
    """

    line: int
    code: bytes = field(repr=False)
    expires_at: datetime | None = None
    note: str | None = None


def _parse_expiry(text: str) -> datetime:
    """Parse an expiry cell.

    Raises:
        ValueError: not a date, a date-time or Unix seconds.
    """
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime.combine(day, time(), UTC) + timedelta(days=1)
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def parse_codes(
    data: bytes,
    *,
    max_bytes: int,
    max_code_bytes: int = 256,
    max_note_chars: int = 500,
    max_codes: int = 50_000,
    now: datetime | None = None,
) -> list[ParsedCode]:
    """Parse a CSV upload.

    Args:
        data: The file's bytes.
        max_bytes: Size cap of the file.
        max_code_bytes: Longest code, in UTF-8 bytes.
        max_note_chars: Longest note.
        max_codes: Most codes in one file.
        now: The current time (for rejecting expired codes); defaults to now.

    Returns:
        The codes in file order.

    Raises:
        UploadTooLarge: the file is over `max_bytes`.
        UploadRejected: anything else is wrong; ``problems`` lists every offending line.
    """
    if len(data) > max_bytes:
        raise UploadTooLarge(len(data), max_bytes)
    now = now or datetime.now(UTC)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise UploadRejected([(0, "the file is empty: put one code per line")])

    problems: list[tuple[int, str]] = []
    codes: list[ParsedCode] = []
    first_seen: dict[bytes, int] = {}
    header_checked = False
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    for number, raw in enumerate(raw_lines, start=1):
        raw = raw.removesuffix(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append((number, "not valid UTF-8: save the file as UTF-8"))
            continue
        if not text.strip():
            continue
        try:
            cells = next(csv.reader([text], strict=True))
        except csv.Error as exc:
            problems.append((number, f"malformed CSV ({exc}); quote a field that holds a comma"))
            continue
        if not header_checked:
            header_checked = True
            if cells and cells[0].strip().lower() in HEADER_NAMES:
                continue
        if len(cells) > 3:
            problems.append((number, f"{len(cells)} columns; expected code[,expiry[,note]]"))
            continue
        code_text = cells[0].strip()
        if not code_text:
            problems.append((number, "empty code"))
            continue
        if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in code_text):
            problems.append((number, "the code contains a control or invisible character"))
            continue
        code = code_text.encode("utf-8")
        if len(code) > max_code_bytes:
            problems.append(
                (number, f"code is {len(code)} bytes, over the {max_code_bytes}-byte limit")
            )
            continue
        expires_at: datetime | None = None
        expiry_text = cells[1].strip() if len(cells) > 1 else ""
        if expiry_text:
            try:
                expires_at = _parse_expiry(expiry_text)
            except (ValueError, OverflowError, OSError):
                shown = expiry_text[:40]
                problems.append(
                    (number, f"expiry {shown!r} is not YYYY-MM-DD, ISO 8601 or Unix seconds")
                )
                continue
            if expires_at <= now:
                problems.append((number, "the code has already expired"))
                continue
        note = cells[2].strip() if len(cells) > 2 else ""
        if len(note) > max_note_chars:
            problems.append((number, f"note is over {max_note_chars} characters"))
            continue
        earlier = first_seen.get(code)
        if earlier is not None:
            problems.append((number, f"duplicate code: same as line {earlier}"))
            continue
        first_seen[code] = number
        codes.append(ParsedCode(number, code, expires_at, note or None))

    if not problems and not codes:
        problems.append((0, "the file has no codes, only a header or blank lines"))
    if len(codes) > max_codes:
        problems.append(
            (0, f"{len(codes)} codes, over the {max_codes}-code limit of one upload; split it")
        )
    if problems:
        problems.sort()
        raise UploadRejected(problems)
    return codes
