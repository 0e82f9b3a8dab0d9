"""Running a benchmark's quick mode through the real CLI and checking the shape of its result,
for the test_bench_quick*.py files (split in three so that the test workers run them side by
side: each starts its own node and backend, and one file of them all ran over five minutes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import leaves

KAMENG = Path(sys.executable).with_name("kameng")
TIMEOUT = 600


def run_quick(name: str) -> dict[str, Any]:
    """Run ``kameng bench NAME --quick --json`` and return its flattened JSON result.

    Args:
        name: The benchmark.

    Returns:
        The result's leaves by dotted path (see `bench.leaves`).
    """
    proc = subprocess.run(
        [str(KAMENG), "bench", name, "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr: {proc.stderr[-4000:]}"
    result = json.loads(lines[-1])
    assert isinstance(result, dict)
    return leaves(result)


def check_shape(flat: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Assert the result has exactly `fields` plus ``quick: true``; return it without ``quick``.

    Args:
        flat: A flattened quick result.
        fields: The benchmark module's ``FIELDS``.

    Returns:
        The figures named by `fields`.
    """
    assert len(set(fields)) == len(fields)
    assert set(flat) == {*fields, "quick"}
    assert flat["quick"] is True
    return {f: flat[f] for f in fields}


def is_int(value: Any) -> bool:
    """Whether `value` is a JSON integer (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)
