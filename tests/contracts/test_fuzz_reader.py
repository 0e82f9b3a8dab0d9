"""The fuzz harness's storage reader (contracts/fuzz/EscrowReader.sol) is generated from the
committed CodeEscrow artifact's storage layout (contracts/fuzz_reader.py), and reads and decodes
as the chain-tested decoder (contracts/storage.py) does.

The harness reads every fact its invariants check through this library. A layout that moved (a
slot, a byte offset, a size, a struct's slots, a key type) makes the generator write another file,
so the committed one fails the first test here before the fuzzer decodes stale positions. The
generated code itself is run here, statement by statement, on random keys and words (its
statements are assignments of expressions built from casts, shifts, ``keccak256(abi.encode(..))``
and ``+``/``!=``, which Python evaluates the same way), and must ask for the slots
`EscrowStorage` asks for and answer what it answers.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from eth_utils import keccak, to_checksum_address

from contracts.artifacts import load
from contracts.fuzz_reader import READER_PATH, main, render
from contracts.storage import VIEWS, EscrowStorage, ReadWords, StorageLayout, escrow_layout

REGENERATE = "run `python -m contracts.fuzz_reader` (after `kameng compile`) and commit the result"


def test_the_committed_reader_is_what_the_committed_layout_generates() -> None:
    assert READER_PATH.read_text() == render(escrow_layout()), REGENERATE


def test_the_check_mode_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert "is current" in capsys.readouterr().out


# ------------------------------------------------------------------ a moved layout


def _variable(raw: dict[str, Any], label: str) -> dict[str, Any]:
    return next(v for v in raw["storage"] if v["label"] == label)


def _struct(raw: dict[str, Any], label: str) -> dict[str, Any]:
    return next(t for t in raw["types"].values() if t["label"] == label)


def _member(raw: dict[str, Any], struct: str, label: str) -> dict[str, Any]:
    return next(m for m in _struct(raw, struct)["members"] if m["label"] == label)


def _slot_moved(raw: dict[str, Any]) -> None:
    _variable(raw, "_listings")["slot"] = "42"


def _offset_moved(raw: dict[str, Any]) -> None:
    _member(raw, "struct ICodeEscrow.Listing", "unitPrice")["offset"] = 12


def _member_widened(raw: dict[str, Any]) -> None:
    _member(raw, "struct ICodeEscrow.Listing", "onChainFrom")["type"] = "t_uint64"


def _ledger_unpacked(raw: dict[str, Any]) -> None:
    _member(raw, "struct CodeEscrow.Ledger", "bondReserved").update(slot="1", offset=0)
    _struct(raw, "struct CodeEscrow.Ledger")["numberOfBytes"] = "64"


def _key_retyped(raw: dict[str, Any]) -> None:
    _variable(raw, "_orderHashes")["type"] = "t_mapping(t_bytes32,t_bytes32)"


@pytest.mark.parametrize(
    "move",
    [_slot_moved, _offset_moved, _member_widened, _ledger_unpacked, _key_retyped],
    ids=["slot", "offset", "size", "struct slots", "key type"],
)
def test_a_moved_layout_generates_another_reader(move: Callable[[dict[str, Any]], None]) -> None:
    raw = copy.deepcopy(dict(load("CodeEscrow").require_storage_layout()))
    move(raw)
    assert render(StorageLayout(raw)) != READER_PATH.read_text()


# ------------------------------------------------------------------ the generated code, run


def _functions(text: str) -> dict[str, tuple[list[tuple[str, str]], list[str]]]:
    """The reader's functions by name: their parameters (type, name) and body statements."""
    out: dict[str, tuple[list[tuple[str, str]], list[str]]] = {}
    for name, params, body in re.findall(
        r"function (\w+)\(([^)]*)\)[^{]*\{\n(.*?)\n    \}", text, re.S
    ):
        words = [p.split() for p in params.split(", ") if p]
        statements = [s.strip().removesuffix(";") for s in body.splitlines()]
        out[name] = ([(w[0], w[-1]) for w in words], statements)
    return out


def _uint(bits: int, value: int) -> int:
    return value & ((1 << bits) - 1)


def _python(expression: str) -> str:
    """A generated expression as Python: conversions to uintN, address and bytes32 truncate or
    keep the integer, as in Solidity."""
    expression = re.sub(r"\buint(\d+)\(", r"_uint(\1, ", expression)
    return expression.replace("address(", "_uint(160, ").replace("bytes32(", "_uint(256, ")


_BUILTINS = {
    "_uint": _uint,
    "keccak256": lambda data: int.from_bytes(keccak(data), "big"),
    "abi": SimpleNamespace(encode=lambda *xs: b"".join(x.to_bytes(32, "big") for x in xs)),
}


def _run(statements: list[str], env: dict[str, Any]) -> Any:
    """Run a generated function body: `env` holds its arguments, constants and the words ``w``
    its ``_words`` (``vm.load``) returned; ``out`` collects struct members in order, ``slots``
    the slots."""
    scope = {"__builtins__": {}, **_BUILTINS, **env, "out": {}}
    for statement in statements:
        if statement.startswith("bytes32[] memory w = _words(escrow, "):
            continue  # the words are given
        if statement.startswith("return "):
            return eval(_python(statement.removeprefix("return ")), scope)
        target, expression = statement.removeprefix("bytes32 ").split(" = ", 1)
        if expression.startswith("new bytes32[]("):
            scope[target] = [None] * int(expression.removeprefix("new bytes32[](").rstrip(")"))
            continue
        value = eval(_python(expression), scope)
        if target.startswith("out."):
            scope["out"][target.removeprefix("out.")] = value
        elif indexed := re.fullmatch(r"(\w+)\[(\d+)\]", target):
            scope[indexed.group(1)][int(indexed.group(2))] = value
        else:
            scope[target] = value
    return scope["slots"] if "slots" in scope else tuple(scope["out"].values())


def _comparable(value: Any) -> Any:
    """A decoded value as the generated code computes it: bytes and addresses as integers."""
    if isinstance(value, tuple):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    if isinstance(value, str):
        return int(value, 16)
    return value


def _argument(kind: str, rng: random.Random) -> tuple[int, Any]:
    """A random argument of a Solidity type: as the generated code takes it, as
    `EscrowStorage` takes it."""
    if kind == "address":
        raw = rng.getrandbits(160)
        return raw, to_checksum_address(raw.to_bytes(20, "big"))
    raw = rng.getrandbits(256) if rng.random() < 0.5 else rng.randrange(64)
    return raw, (raw.to_bytes(32, "big") if kind == "bytes32" else raw)


def _recorder(words: list[int]) -> tuple[list[bytes], ReadWords]:
    """A `ReadWords` that answers with `words` in order, and the slots it was asked for."""
    asked: list[bytes] = []

    def read_words(slots: list[bytes]) -> list[bytes]:
        asked.extend(slots)
        return [words[i].to_bytes(32, "big") for i in range(len(slots))]

    return asked, read_words


def test_it_answers_every_replaced_view_with_one_read_of_words() -> None:
    functions = _functions(READER_PATH.read_text())
    views = {
        name
        for name, (params, _) in functions.items()
        if params[:1] == [("ICodeEscrow", "escrow")] and not name.startswith("_")
    }
    assert views == VIEWS
    for name in views:
        statements = functions[name][1]
        assert sum("_words(escrow, " in s for s in statements) == 1, name
        assert f"bytes32[] memory w = _words(escrow, {name}Slots(" in statements[0], name


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_each_view_reads_and_decodes_as_the_storage_decoder(view: str) -> None:
    text = READER_PATH.read_text()
    constants = {k: int(v) for k, v in re.findall(r"constant (\w+) = (\d+);", text)}
    functions = _functions(text)
    params, slot_statements = functions[f"{view}Slots"]
    view_statements = functions[view][1]
    rng = random.Random(view)
    for _ in range(25):
        args = {name: _argument(kind, rng) for kind, name in params}
        words = [rng.getrandbits(256) if rng.random() < 0.8 else 0 for _ in range(4)]
        asked, read_words = _recorder(words)
        want = EscrowStorage(read_words).view(view, *(stored for _, stored in args.values()))
        raw = {name: given for name, (given, _) in args.items()}
        slots = _run(slot_statements, raw)
        assert [s.to_bytes(32, "big") for s in slots] == asked, view
        got = _run(view_statements, {**raw, **constants, "w": words[: len(slots)]})
        assert got == _comparable(want), (view, args, words)
