"""Process-wide guards against hostile input: JSON nesting depth and the recursion limit.

**JSON depth.** Every JSON document the server or the CLI parses from outside (request bodies,
``POST /rpc``, evidence bundles, files given to the CLI) is first scanned, without recursion,
for how deeply it nests arrays and objects; deeper than `MAX_JSON_DEPTH` levels it is refused
with `JsonTooDeep` (the API answers 422) before the recursive parser sees it.

**Recursion limit.** CPython stops runaway recursion with `RecursionError` only while
``sys.getrecursionlimit()`` is low enough for the C stack. Some dependencies raise it for the
whole process when imported (``py_ecc`` to 100,000, ``py-evm`` to 12,288), after which a deeply
nested document overflows the C stack and the process dies with a segmentation fault instead of
raising. `pin_recursion_limit` imports them and puts the limit back; the app factory and the CLI
entry point call it once everything is imported.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from itertools import accumulate, repeat
from operator import sub
from typing import Any

from backend.errors import JsonTooDeep

log = logging.getLogger("kameng.limits")

#: Most levels of nested arrays and objects accepted in a JSON document (``[[1]]`` is 2).
MAX_JSON_DEPTH = 64

#: The recursion limit kameng runs with: CPython's default, safe on an 8 MiB C stack.
RECURSION_LIMIT = 1000

#: Dependencies known to raise the recursion limit for the whole process when imported.
LIMIT_RAISERS = ("eth", "py_ecc")

_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Opening brackets become 2 and closing ones 0, so that `byte - 1` is the step in depth.
_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


def json_depth(data: bytes | str) -> int:
    """How many levels of arrays and objects `data` nests, found without parsing it.

    Brackets inside strings do not count. On malformed JSON the answer is at least the depth
    the parser would reach before failing, so checking it first is always safe.

    Args:
        data: The JSON text, as bytes (UTF-8) or str.

    Returns:
        The deepest nesting: 0 for a scalar, 1 for ``[]`` or ``{}``, 2 for ``[[]]``.
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if b"[" not in raw and b"{" not in raw:
        return 0
    # Left to right, as the parser reads escapes: first each escaped backslash, then each
    # escaped quote. What is left between two quotes is a string's content, so the structure
    # is every other piece between quotes.
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = b"".join(unescaped.split(b'"')[::2])
    brackets = structure.translate(_STEPS, _NOT_BRACKETS)
    return max(0, max(accumulate(map(sub, brackets, repeat(1))), default=0))


def check_json_depth(data: bytes | str, what: str = "the JSON document") -> None:
    """Refuse `data` if it nests deeper than `MAX_JSON_DEPTH`.

    Args:
        data: The JSON text.
        what: What it is, for the message (``the request body``, ``the bundle``...).

    Raises:
        JsonTooDeep: it nests deeper than the limit.
    """
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise JsonTooDeep(what, depth, MAX_JSON_DEPTH)


def loads(data: bytes | str, what: str = "the JSON document", **kwargs: Any) -> Any:
    """`json.loads` after `check_json_depth`.

    Args:
        data: The JSON text.
        what: What it is, for the message.
        **kwargs: Passed to `json.loads` (hooks, ``parse_float``...).

    Raises:
        JsonTooDeep: it nests deeper than `MAX_JSON_DEPTH`.
        ValueError: it is not JSON (`json.JSONDecodeError`, or not UTF-8).
    """
    check_json_depth(data, what)
    return json.loads(data, **kwargs)


def pin_recursion_limit() -> int:
    """Import the dependencies that raise the recursion limit, then set it back.

    Their import-time side effect happens once per process, so after this call no import of
    them raises it again. Call it once everything is imported (the app factory and the CLI's
    entry point do).

    Returns:
        The limit found before resetting it.
    """
    for name in LIMIT_RAISERS:
        try:
            importlib.import_module(name)
        except ImportError:  # pragma: no cover - an optional dependency left out
            continue
    found = sys.getrecursionlimit()
    if found > RECURSION_LIMIT:
        log.debug(
            "recursion limit %d, raised by a dependency, set back to %d", found, RECURSION_LIMIT
        )
        sys.setrecursionlimit(RECURSION_LIMIT)
    return found


__all__ = [
    "LIMIT_RAISERS",
    "MAX_JSON_DEPTH",
    "RECURSION_LIMIT",
    "check_json_depth",
    "json_depth",
    "loads",
    "pin_recursion_limit",
]
