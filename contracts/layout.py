"""Struct layouts read from the committed ABI: the one source of every struct's field order.

The escrow takes and returns its structs (Order, Listing, Config, ...) as ABI tuples, so Python
must put each field in the Solidity declaration's position. Rather than repeating that order by
hand, the off-chain code reads it from the ABI in ``contracts/artifacts/CodeEscrow.json``: every
tuple parameter carries its components (names and types, in order) and an ``internalType`` such
as ``struct ICodeEscrow.Order``. Python names are the components' names in snake_case
(``releaseDigest`` -> ``release_digest``).

`StructLayout.check_dataclass` compares a dataclass mirroring a struct with the ABI, field by
field, so a struct changed in Solidity (and recompiled) fails at import instead of making every
later call revert.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from contracts.artifacts import escrow_abi
from contracts.errors import StaleArtifactsError

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


class LayoutError(StaleArtifactsError):
    """Python code that mirrors a struct disagrees with the struct in the committed ABI."""


def snake_case(name: str) -> str:
    """A Solidity (camelCase) name in Python's snake_case: ``releaseDigest`` -> ``release_digest``.

    Args:
        name: The Solidity name.

    Returns:
        The snake_case name (``metadataURI`` -> ``metadata_uri``).
    """
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical ABI type of a parameter, tuples expanded: ``(address,uint128,...)[]``.

    Args:
        param: An ABI parameter (``type`` and, for tuples, ``components``).
    """
    t: str = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


def python_type(param: Mapping[str, Any]) -> str:
    """The name of the Python type that holds a component's values in our dataclasses.

    ``address`` and ``string``: ``str``; integers: ``int``, or the enum's name for an enum
    (``enum ICodeEscrow.OrderState`` -> ``OrderState``); ``bytesN`` and ``bytes``: ``bytes``;
    ``bool``: ``bool``; anything else (tuples, arrays): its ABI type.

    Args:
        param: An ABI parameter.
    """
    t: str = param["type"]
    internal: str = param.get("internalType", "")
    if t in ("address", "string"):
        return "str"
    if t == "bool":
        return "bool"
    if t.startswith(("uint", "int")) and not t.endswith("]"):
        if internal.startswith("enum "):
            return internal.removeprefix("enum ").rsplit(".", 1)[-1]
        return "int"
    if t.startswith("bytes") and not t.endswith("]"):
        return "bytes"
    return abi_type(param)


@dataclass(frozen=True)
class StructLayout:
    """One struct as the ABI declares it.

    Attributes:
        name: The struct's name, such as ``Order``.
        internal_type: The ABI's ``internalType``, such as ``struct ICodeEscrow.Order``.
        components: The ABI components, in declaration order.
    """

    name: str
    internal_type: str
    components: tuple[Mapping[str, Any], ...]

    @cached_property
    def abi_type(self) -> str:
        """The tuple type for eth_abi and signatures: ``(address,address,...,bytes32)``."""
        return "(" + ",".join(abi_type(c) for c in self.components) + ")"

    @cached_property
    def solidity_names(self) -> tuple[str, ...]:
        """The components' Solidity names, in order."""
        return tuple(str(c["name"]) for c in self.components)

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """The components' Python (snake_case) names, in order."""
        return tuple(snake_case(n) for n in self.solidity_names)

    def component(self, field: str) -> Mapping[str, Any]:
        """The ABI component of a field, by its snake_case name.

        Raises:
            KeyError: the struct has no such field.
        """
        for c in self.components:
            if snake_case(str(c["name"])) == field:
                return c
        raise KeyError(f"{self.name} has no field {field!r}")

    def index(self, field: str) -> int:
        """The position of a field (snake_case name) in the struct.

        Raises:
            ValueError: the struct has no such field.
        """
        return self.fields.index(field)

    def as_dict(self, values: Sequence[Any]) -> dict[str, Any]:
        """A decoded struct (tuple in ABI order) as a dict keyed by the fields' Python names.

        Raises:
            LayoutError: `values` has a different number of fields than the struct.
        """
        if len(values) != len(self.components):
            raise LayoutError(
                f"{self.name} has {len(self.components)} fields in the ABI, got {len(values)}"
            )
        return dict(zip(self.fields, values, strict=True))

    def as_tuple(self, fields: Mapping[str, Any]) -> tuple[Any, ...]:
        """The struct in ABI order from a mapping keyed by the fields' Python names.

        Raises:
            KeyError: a field is missing from `fields`.
        """
        return tuple(fields[f] for f in self.fields)

    def check_dataclass(self, cls: type[Any]) -> None:
        """Check that a dataclass mirrors the struct: same fields, same order, matching types.

        Field types are compared by name, as `python_type` gives them (``str`` for addresses,
        ``int``, ``bytes``, the enum's class name).

        Args:
            cls: The dataclass.

        Raises:
            LayoutError: a field is missing, extra, out of order or of another type.
        """
        ours = [(f.name, _annotation_name(f.type)) for f in dataclasses.fields(cls)]
        theirs = [(snake_case(str(c["name"])), python_type(c)) for c in self.components]
        if ours != theirs:
            raise LayoutError(
                f"{cls.__qualname__} does not match {self.internal_type} in the committed ABI "
                f"(contracts/artifacts/CodeEscrow.json): it has {_describe(ours)}, the ABI has "
                f"{_describe(theirs)}; update the dataclass (field order is the ABI's), or if the "
                "Solidity changed, rebuild the artifacts first with "
                "`python -c 'from contracts.compiler import build; build()'` (which does not "
                "load this check)"
            )


def _annotation_name(annotation: Any) -> str:
    """A dataclass field's annotation as a bare type name (annotations may be strings)."""
    if isinstance(annotation, str):
        return annotation.rsplit(".", 1)[-1]
    return str(getattr(annotation, "__name__", annotation))


def _describe(fields: Sequence[tuple[str, str]]) -> str:
    return "(" + ", ".join(f"{name}: {typ}" for name, typ in fields) + ")"


def _params(abi: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every parameter of every ABI entry, nested tuple components included."""
    todo: list[Mapping[str, Any]] = []
    for entry in abi:
        todo.extend(entry.get("inputs", ()))
        todo.extend(entry.get("outputs", ()))
    while todo:
        param = todo.pop()
        yield param
        todo.extend(param.get("components", ()))


def struct_layout(abi: Sequence[Mapping[str, Any]], name: str) -> StructLayout:
    """Find a struct in an ABI by its name (``Order`` matches ``struct ICodeEscrow.Order``).

    Every parameter of that struct type (or an array of it) must declare the same components.

    Args:
        abi: A contract's ABI.
        name: The struct's name, without its contract or interface.

    Raises:
        LayoutError: no parameter has that struct type, or two disagree on its components.
    """
    found: StructLayout | None = None
    for param in _params(abi):
        internal = str(param.get("internalType", "")).split("[", 1)[0]
        qualified = internal.removeprefix("struct ")
        if qualified == internal or qualified.rsplit(".", 1)[-1] != name:
            continue
        layout = StructLayout(name, internal, tuple(param["components"]))
        if found is None:
            found = layout
        elif (found.solidity_names, found.abi_type) != (layout.solidity_names, layout.abi_type):
            raise LayoutError(f"the ABI declares struct {name} twice, differently")
    if found is None:
        raise LayoutError(f"no parameter of the ABI has the struct type {name}")
    return found


@cache
def escrow_struct(name: str) -> StructLayout:
    """A struct of the CodeEscrow ABI (``Order``, ``Listing``, ``Config``, ``Batch``, ``Bond``).

    Raises:
        LayoutError: the ABI has no such struct.
    """
    return struct_layout(escrow_abi(), name)


__all__ = [
    "LayoutError",
    "StructLayout",
    "abi_type",
    "escrow_struct",
    "python_type",
    "snake_case",
    "struct_layout",
]
