"""Benchmarks: each module has `run(console, quick=False) -> dict`, called by `kameng bench NAME`.

Each module also exports ``FIELDS``, the dotted paths of the leaves of its result dict (the
same in full and quick mode); `leaves` flattens a result to compare with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def leaves(result: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts into dotted paths to their non-dict values.

    Args:
        result: A benchmark's result, e.g. ``{"single": {"buy": 1}, "total": 2}``.
        prefix: Prepended to every path (used by the recursion).

    Returns:
        Path to value, e.g. ``{"single.buy": 1, "total": 2}``.
    """
    flat: dict[str, Any] = {}
    for key, value in result.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(leaves(value, f"{path}."))
        else:
            flat[path] = value
    return flat
