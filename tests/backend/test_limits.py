"""`backend.limits`: the JSON depth scan agrees with the parser and refuses hostile nesting
without recursing; no dependency leaves the recursion limit raised once the CLI starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.errors import JsonTooDeep
from backend.evidence import canonical
from backend.evidence.errors import BundleFormatError
from backend.evidence.verify import verify_bundle
from backend.limits import (
    LIMIT_RAISERS,
    MAX_JSON_DEPTH,
    RECURSION_LIMIT,
    check_json_depth,
    json_depth,
    loads,
)

ROOT = Path(__file__).resolve().parents[2]

# Strings full of what could fool a scan: brackets, quotes, backslashes, escapes, non-ASCII.
_tricky = st.text(alphabet=st.sampled_from(list('[]{}"\\/,:ab\n\t\u00e9\u202e\U0001f600')))
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _tricky,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_tricky, inner, max_size=4),
    max_leaves=30,
)


def depth(value: Any) -> int:
    """The nesting depth of a parsed value, by definition."""
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@given(_json, st.booleans())
def test_the_scan_finds_the_depth_the_parser_would_reach(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_depth(text) == depth(value)
    assert json_depth(text.encode("utf-8")) == depth(value)


def test_the_limit_is_exact_and_hostile_nesting_is_refused_unparsed() -> None:
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads(at_limit) == json.loads(at_limit)
    with pytest.raises(JsonTooDeep) as err:
        check_json_depth("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "the body")
    assert err.value.depth == MAX_JSON_DEPTH + 1 and err.value.status_code == 422
    assert str(err.value).startswith(f"the body nests arrays and objects {MAX_JSON_DEPTH + 1} ")
    # 100,000 levels, 200 KB: refused from the scan alone (the parser would overflow the stack).
    hostile = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(JsonTooDeep, match=f"100000 levels deep; at most {MAX_JSON_DEPTH} levels"):
        loads(hostile, "the body")
    # Unclosed, or hidden behind a string that never ends: still counted.
    with pytest.raises(JsonTooDeep):
        loads(b'{"a": "x", "b": ' + b"[" * 100_000)
    # Brackets inside strings are not structure, escaped quotes and backslashes included.
    assert loads(json.dumps(["\\", '"[[[[', "[" * 10_000])) == ["\\", '"[[[[', "[" * 10_000]


def test_a_bundle_nested_too_deep_fails_its_json_claim_unparsed() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(BundleFormatError) as err:
        canonical.loads(deep)
    assert err.value.claim == "json" and f"at most {MAX_JSON_DEPTH} levels" in err.value.detail
    # The checklist stops at the json claim, before it needs the node (none listens there).
    checklist = verify_bundle(deep, "http://127.0.0.1:9")
    assert not checklist.ok
    assert [(c.name, c.status) for c in checklist.claims] == [("json", "fail")]
    assert "100000 levels deep" in checklist.claims[0].detail


def test_the_cli_entry_point_sets_back_the_limit_dependencies_raise() -> None:
    """`kameng` imports every command, which imports py_ecc and py-evm; they raise the process's
    recursion limit (py_ecc to 100,000) at import. The entry point must set it back."""
    program = (
        "import sys\n"
        "from backend.cli import main\n"
        "raised = sys.getrecursionlimit()\n"
        "sys.argv = ['kameng', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(raised, sys.getrecursionlimit(), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    raised, after = (int(n) for n in done.stderr.split()[-2:])
    assert raised > RECURSION_LIMIT, f"{LIMIT_RAISERS} no longer raise it: this tests nothing"
    assert after == RECURSION_LIMIT
