"""Generate the fuzz harness's storage reader, contracts/fuzz/EscrowReader.sol, from the escrow's
storage layout.

CodeEscrow answers questions about its state only through ``extsload(bytes32[] slots)``: raw
storage words. The invariant harness (contracts/fuzz) still asks what the eleven views that call
replaced answered (``getListing``, ``getBatch``, ``bondOf``, ``balanceOf``, ``authorization``,
``isDeliveryKey``, ``isProposedDeliveryKey``, ``config``, ``listingCount``, ``orderHash``,
``feesOf``) and the reads added since in their style (``resellerPrice``, ``shopPrice``, ``tiers``),
that is `contracts.storage.VIEWS`. The Solidity library ``EscrowReader`` answers each with one read
of the words (forge's ``vm.load``, which the harness checks against ``extsload``) and the return
type of the view, decoding the words as `contracts.storage.EscrowStorage` does. Every slot number,
member slot, byte offset, size, type and mapping key type in it is taken from the committed
artifact's ``storageLayout`` (`contracts.storage.escrow_layout`) by `render`;
tests/contracts/test_fuzz_reader.py checks that the committed file is what `render` writes now, so
a layout that moves fails that test rather than the fuzzer reading stale positions.

After ``kameng compile`` moved the layout: ``python -m contracts.fuzz_reader`` rewrites the file.
"""

from __future__ import annotations

import re
import sys
import textwrap
from dataclasses import dataclass

from contracts.compiler import ROOT
from contracts.storage import (
    KEY_ACTIVE,
    KEY_PROPOSED,
    VIEWS,
    Location,
    StorageLayout,
    StorageLayoutError,
    escrow_layout,
)

#: The generated library.
READER_PATH = ROOT / "contracts" / "fuzz" / "EscrowReader.sol"

_WORD = 32
_COLUMNS = 120


@dataclass(frozen=True)
class _View:
    """One replaced view: what it reads and how it answers.

    `reads` are (state variable, its mapping keys as argument names); the view's arguments are
    the first read's keys. In `body`, ``{var}`` is the value of a read variable, ``{var.member}``
    one member of a struct read, and a line ``{*var}`` assigns every member of the struct read to
    the same-named member of ``out``.
    """

    name: str
    notice: str
    reads: tuple[tuple[str, tuple[str, ...]], ...]
    returns: str
    body: tuple[str, ...]


_VIEWS = (
    _View(
        "getListing",
        "a listing (all zero for an unknown id).",
        (("_listings", ("listingId",)),),
        "ICodeEscrow.Listing memory out",
        ("{*_listings}",),
    ),
    _View(
        "getBatch",
        "a batch of a listing.",
        (("_batches", ("listingId", "batchIndex")),),
        "ICodeEscrow.Batch memory out",
        ("{*_batches}",),
    ),
    _View(
        "bondOf",
        "a supplier's bond in a token: the packed ledger's free and reserved bond.",
        (("_ledgers", ("supplier", "token")),),
        "ICodeEscrow.Bond memory out",
        ("out.free = {_ledgers.bondFree};", "out.reserved = {_ledgers.bondReserved};"),
    ),
    _View(
        "balanceOf",
        "an account's withdrawable balance in a token: the packed ledger's balance plus what "
        "did not fit it.",
        (("_ledgers", ("account", "token")), ("_overflow", ("account", "token"))),
        "uint256",
        ("return {_ledgers.balance} + {_overflow};",),
    ),
    _View(
        "authorization",
        "the attestation hash authorizing (supplier, sku), zero if none.",
        (("_authorizations", ("supplier", "sku")),),
        "bytes32",
        ("return {_authorizations};",),
    ),
    _View(
        "isDeliveryKey",
        "whether `key` accepted the supplier's proposal (and was not removed since).",
        (("_deliveryKeys", ("supplier", "key")),),
        "bool",
        ("return {_deliveryKeys} == KEY_ACTIVE;",),
    ),
    _View(
        "isProposedDeliveryKey",
        "whether the supplier proposed `key` and the key has not accepted yet.",
        (("_deliveryKeys", ("supplier", "key")),),
        "bool",
        ("return {_deliveryKeys} == KEY_PROPOSED;",),
    ),
    _View(
        "config",
        "the platform settings.",
        (("_config", ()),),
        "ICodeEscrow.Config memory out",
        ("{*_config}",),
    ),
    _View(
        "listingCount",
        "how many listings were created (the last listing id).",
        (("_listingCount", ()),),
        "uint256",
        ("return {_listingCount};",),
    ),
    _View(
        "orderHash",
        "the stored hash of an order; zero if none or once it finished.",
        (("_orderHashes", ("orderId",)),),
        "bytes32",
        ("return {_orderHashes};",),
    ),
    _View(
        "feesOf",
        "the platform's fees in a token, not yet withdrawn.",
        (("_fees", ("token",)),),
        "uint256",
        ("return {_fees};",),
    ),
    _View(
        "resellerPrice",
        "what the supplier receives a unit from a reseller's sale of the listing (0: not open to "
        "resellers).",
        (("_resellerPrices", ("listingId",)),),
        "uint256",
        ("return {_resellerPrices};",),
    ),
    _View(
        "shopPrice",
        "the unit price of the listing in `reseller`'s shop (0: not in its shop).",
        (("_shopPrices", ("reseller", "listingId")),),
        "uint256",
        ("return {_shopPrices};",),
    ),
    _View(
        "tiers",
        "the listing's volume tiers, packed: tier i in bits [48i, 48i + 48), its minimum quantity "
        "(32 bits) above its discount in basis points (16 bits); a zero minimum ends the list.",
        (("_tiers", ("listingId",)),),
        "uint256",
        ("return {_tiers};",),
    ),
)

_HEADER = """\
// SPDX-License-Identifier: MIT
// GENERATED by `python -m contracts.fuzz_reader` from the storageLayout of
// contracts/artifacts/CodeEscrow.json; do not edit. tests/contracts/test_fuzz_reader.py fails when
// this file differs from what the generator writes for the committed layout.
pragma solidity 0.8.37;

import {{ICodeEscrow}} from "../src/interfaces/ICodeEscrow.sol";
import {{VM}} from "./Vm.sol";

/// @title EscrowReader
/// @notice The eleven views CodeEscrow dropped for `extsload`, and the reseller and shop prices
///         read in their style, answered from its storage words for the invariant harness, with
///         the views' return types: each function computes the slots its view read
///         (`<view>Slots`), fetches their words and unpacks the members at their byte offsets
///         and sizes. `using EscrowReader for IEscrow` keeps the calls' old shape:
///         `escrow.getListing(id)`. The words come from forge's `vm.load`, which costs the fuzzer
///         no EVM execution (through `extsload` the harness ran about half as many calls a
///         second); the handler's `checkReader` checks `extsload` against `vm.load`.
/// @dev Mapping entry: keccak256(abi.encode(key, slot)), nested mappings repeated; struct member:
///      struct slot + member slot, right-aligned at its byte offset (contracts/storage.py).
library EscrowReader {{
    /// @dev `_deliveryKeys` status of a proposed key (CodeEscrow's private `_KEY_PROPOSED`).
    uint8 internal constant KEY_PROPOSED = {proposed};
    /// @dev `_deliveryKeys` status of an accepted key (CodeEscrow's private `_KEY_ACTIVE`).
    uint8 internal constant KEY_ACTIVE = {active};

    /// @dev The escrow's words at `slots`, in order, read with forge's `vm.load`.
    function _words(ICodeEscrow escrow, bytes32[] memory slots)
        private
        view
        returns (bytes32[] memory w)
    {{
        w = new bytes32[](slots.length);
        for (uint256 i; i < slots.length; ++i) {{
            w[i] = VM.load(address(escrow), slots[i]);
        }}
    }}
"""

_FOOTER = "}\n"

_PLACEHOLDER = re.compile(r"\{(\*?)(\w+)(?:\.(\w+))?\}")


@dataclass(frozen=True)
class _Read:
    """A state variable (entry) a view reads: its first word's index among the view's words."""

    label: str
    keys: tuple[str, ...]
    key_types: tuple[str, ...]
    slot: int
    type_id: str
    at: int
    count: int


def _param_type(label: str) -> str:
    """A mapping key type as an argument type whose ``abi.encode`` is the key's storage form."""
    if label in ("address", "bool") or re.fullmatch(r"u?int\d*|bytes\d+", label):
        return label
    raise StorageLayoutError(f"EscrowReader cannot take mapping keys of type {label}")


def _reads(layout: StorageLayout, view: _View) -> list[_Read]:
    """Locate a view's reads: variable slots and offsets, key types, words per read."""
    out: list[_Read] = []
    at = 0
    for label, keys in view.reads:
        var = layout.variable(label)
        if var.offset != 0:
            raise StorageLayoutError(f"{label} shares slot {var.slot}: not at offset 0")
        type_id = var.type_id
        key_types: list[str] = []
        for _ in keys:
            mtype = layout.type_of(type_id)
            if mtype.encoding != "mapping" or mtype.key is None or mtype.value is None:
                raise StorageLayoutError(f"{label} has fewer mapping levels than {view.name} needs")
            key_types.append(_param_type(layout.type_of(mtype.key).label))
            type_id = mtype.value
        count = len(layout.slots(Location(0, 0, type_id)))
        out.append(_Read(label, keys, tuple(key_types), var.slot, type_id, at, count))
        at += count
    first = out[0]
    for read in out[1:]:
        if (read.keys, read.key_types) != (first.keys, first.key_types):
            raise StorageLayoutError(f"{view.name}: {read.label} is keyed unlike {first.label}")
    return out


def _value(layout: StorageLayout, word: int, offset: int, type_id: str) -> str:
    """The Solidity expression of a value of type `type_id` at `offset` in word ``w[word]``."""
    stype = layout.type_of(type_id)
    size, label = stype.number_of_bytes, stype.label
    if offset + size > _WORD or stype.encoding != "inplace" or stype.members or stype.is_array:
        raise StorageLayoutError(f"EscrowReader cannot decode {label} at byte {offset}")
    if label == "bytes32" and offset == 0:
        return f"w[{word}]"
    if label == "uint256" and offset == 0:
        return f"uint256(w[{word}])"
    raw = f"uint256(w[{word}])" + (f" >> {8 * offset}" if offset else "")
    bits = 8 * size
    if label == "address" and size == 20:
        return f"address(uint160({raw}))"
    if label == "bool" and size == 1:
        return f"(uint8({raw}) != 0)"
    if label == f"uint{bits}":
        return f"uint{bits}({raw})"
    if label == f"bytes{size}":
        return f"bytes{size}(uint{bits}({raw}))"
    raise StorageLayoutError(f"EscrowReader cannot decode values of type {label}")


def _member(layout: StorageLayout, read: _Read, name: str) -> str:
    """The expression of struct member `name` of a read."""
    here = layout.member(Location(0, 0, read.type_id), name)
    return _value(layout, read.at + here.slot, here.offset, here.type_id)


def _body(layout: StorageLayout, view: _View, reads: list[_Read]) -> list[str]:
    """The view's statements, placeholders replaced by decoding expressions."""
    by_label = {read.label: read for read in reads}

    def expand(match: re.Match[str]) -> str:
        read = by_label[match.group(2)]
        if match.group(3):
            return _member(layout, read, match.group(3))
        return _value(layout, read.at, 0, read.type_id)

    lines: list[str] = []
    for line in view.body:
        star = _PLACEHOLDER.fullmatch(line)
        if star is None or not star.group(1):
            lines.append(_PLACEHOLDER.sub(expand, line))
            continue
        read = by_label[star.group(2)]
        for m in layout.type_of(read.type_id).members:
            name = str(m["label"])
            if layout.type_of(str(m["type"])).encoding != "mapping":
                lines.append(f"out.{name} = {_member(layout, read, name)};")
    return lines


def _slot_expr(read: _Read) -> str:
    """The Solidity expression of a read's first slot."""
    expr = f"uint256({read.slot})"
    for key in read.keys:
        expr = f"keccak256(abi.encode({key}, {expr}))"
    return expr if read.keys else f"bytes32({expr})"


def _fill(read: _Read, index: int) -> str:
    """The statements that put a read's slots into ``slots``."""
    if read.count == 1:
        return f"        slots[{read.at}] = {_slot_expr(read)};"
    base = f"base{index or ''}"
    lines = [f"        bytes32 {base} = {_slot_expr(read)};", f"        slots[{read.at}] = {base};"]
    lines += [
        f"        slots[{read.at + i}] = bytes32(uint256({base}) + {i});"
        for i in range(1, read.count)
    ]
    return "\n".join(lines)


def _function(name: str, params: list[str], mutability: str, returns: str) -> str:
    """A function's head up to its opening brace, on one line when it fits 120 columns."""
    head = f"    function {name}({', '.join(params)})"
    line = f"{head} internal {mutability} returns ({returns}) {{"
    if len(line) <= _COLUMNS:
        return line
    return f"{head}\n        internal\n        {mutability}\n        returns ({returns})\n    {{"


def _notice(text: str) -> str:
    """A NatSpec notice wrapped to 120 columns."""
    return textwrap.fill(
        text,
        _COLUMNS,
        initial_indent="    /// @notice ",
        subsequent_indent="    ///         ",
        break_on_hyphens=False,
    )


def _render_view(layout: StorageLayout, view: _View) -> str:
    """A view's function and the function of its slots."""
    reads = _reads(layout, view)
    params = [f"{t} {k}" for t, k in zip(reads[0].key_types, reads[0].keys, strict=True)]
    args = ", ".join(reads[0].keys)
    where = "; ".join(
        f"`{read.label}{''.join(f'[{k}]' for k in read.keys)}` (slot {read.slot}, "
        f"{read.count} word{'s' if read.count > 1 else ''})"
        for read in reads
    )
    body = "\n".join(f"        {line}" for line in _body(layout, view, reads))
    fills = "\n".join(_fill(read, j) for j, read in enumerate(reads))
    total = sum(read.count for read in reads)
    return f"""
{_notice(f"`{view.name}({args})`: {view.notice}")}
{_function(view.name, ["ICodeEscrow escrow", *params], "view", view.returns)}
        bytes32[] memory w = _words(escrow, {view.name}Slots({args}));
{body}
    }}

{_notice(f"The slots `{view.name}` reads, in this order: {where}.")}
{_function(f"{view.name}Slots", params, "pure", "bytes32[] memory slots")}
        slots = new bytes32[]({total});
{fills}
    }}
"""


def render(layout: StorageLayout) -> str:
    """The text of contracts/fuzz/EscrowReader.sol for a CodeEscrow storage layout.

    Raises:
        StorageLayoutError: the layout lacks a variable or member a view reads, or has a type the
            reader cannot decode.
    """
    if {view.name for view in _VIEWS} != VIEWS:
        raise StorageLayoutError("EscrowReader must answer exactly contracts.storage.VIEWS")
    header = _HEADER.format(proposed=KEY_PROPOSED, active=KEY_ACTIVE)
    return header + "".join(_render_view(layout, view) for view in _VIEWS) + _FOOTER


def main(argv: list[str] | None = None) -> int:
    """Write contracts/fuzz/EscrowReader.sol for the committed artifact's layout; with
    ``--check``, only report whether the committed file is current (exit 1 if not)."""
    args = sys.argv[1:] if argv is None else argv
    text = render(escrow_layout())
    shown = READER_PATH.relative_to(ROOT)
    if args == ["--check"]:
        current = READER_PATH.is_file() and READER_PATH.read_text() == text
        print(
            f"{shown} is {'current' if current else 'STALE: run python -m contracts.fuzz_reader'}"
        )
        return 0 if current else 1
    if args:
        print("usage: python -m contracts.fuzz_reader [--check]", file=sys.stderr)
        return 2
    READER_PATH.write_text(text)
    print(f"wrote {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
