"""The Order (and the other structs Python mirrors) come from the committed ABI, and the raw word
offsets CodeEscrow.sol's assembly uses agree with that ABI.

No chain here: these read contracts/artifacts/CodeEscrow.json and the Solidity sources.
"""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest

from contracts.artifacts import escrow_abi
from contracts.client import EscrowConfig
from contracts.compiler import SOURCES_DIR
from contracts.encoding import ORDER_ABI_TYPE, ORDER_FIELDS, ORDER_LAYOUT, Order, OrderState
from contracts.layout import LayoutError, escrow_struct, python_type, snake_case, struct_layout
from contracts.storage import EscrowStorage

CODE_ESCROW = (SOURCES_DIR / "CodeEscrow.sol").read_text()
INTERFACE = (SOURCES_DIR / "interfaces" / "ICodeEscrow.sol").read_text()
WORD = 32


def test_order_type_is_computed_from_the_abi_and_is_the_known_layout() -> None:
    assert ORDER_ABI_TYPE == (
        "(address,address,address,address,uint128,uint128,uint32,uint16,uint128,uint32,uint40,"
        "uint8,bytes32)"
    )
    assert ORDER_LAYOUT.internal_type == "struct ICodeEscrow.Order"
    assert [f.name for f in dataclasses.fields(Order)] == list(ORDER_FIELDS)


def test_every_function_taking_an_order_declares_the_same_struct() -> None:
    uses = []
    for item in escrow_abi():
        for param in item.get("inputs", []):
            if param.get("internalType", "").startswith("struct ICodeEscrow.Order"):
                uses.append(item["name"])
                assert param["components"] == list(ORDER_LAYOUT.components), item["name"]
    assert {"confirm", "refund", "deliver", "settle", "rule", "proveBadCode"} <= set(uses)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("releaseDigest", "release_digest"),
        ("feeBps", "fee_bps"),
        ("buyer", "buyer"),
        ("metadataURI", "metadata_uri"),
        ("minBondBps", "min_bond_bps"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def _abi_with_order(components: list[dict[str, str]]) -> list[dict[str, object]]:
    return [
        {
            "type": "function",
            "name": "confirm",
            "inputs": [
                {"name": "orderId", "type": "uint256", "internalType": "uint256"},
                {
                    "name": "order",
                    "type": "tuple",
                    "internalType": "struct ICodeEscrow.Order",
                    "components": components,
                },
            ],
            "outputs": [],
        }
    ]


def test_a_reordered_struct_fails_the_dataclass_check() -> None:
    components = copy.deepcopy(list(ORDER_LAYOUT.components))
    i, j = ORDER_LAYOUT.index("bond"), ORDER_LAYOUT.index("reseller_cut")
    components[i], components[j] = components[j], components[i]
    drifted = struct_layout(_abi_with_order(components), "Order")
    assert drifted.abi_type == ORDER_ABI_TYPE  # both uint128: the hash alone would not tell
    with pytest.raises(LayoutError, match="reseller_cut"):
        drifted.check_dataclass(Order)


def test_a_retyped_or_added_field_fails_the_dataclass_check() -> None:
    retyped = copy.deepcopy(list(ORDER_LAYOUT.components))
    retyped[ORDER_LAYOUT.index("amount")]["type"] = "bytes32"
    with pytest.raises(LayoutError, match="amount: bytes"):
        struct_layout(_abi_with_order(retyped), "Order").check_dataclass(Order)
    added = [*copy.deepcopy(list(ORDER_LAYOUT.components))]
    added.append({"name": "tip", "type": "uint128", "internalType": "uint128"})
    with pytest.raises(LayoutError, match="tip: int"):
        struct_layout(_abi_with_order(added), "Order").check_dataclass(Order)


def test_a_struct_declared_two_ways_or_missing_is_refused() -> None:
    other = _abi_with_order(list(ORDER_LAYOUT.components)[:-1])
    with pytest.raises(LayoutError, match="twice"):
        struct_layout([*_abi_with_order(list(ORDER_LAYOUT.components)), *other], "Order")
    with pytest.raises(LayoutError, match="no parameter"):
        struct_layout(other, "Listing")


def test_order_round_trips_through_the_abi_by_name() -> None:
    order = Order(
        buyer="0x" + "11" * 20,
        supplier="0x" + "22" * 20,
        token="0x" + "00" * 20,
        reseller="0x" + "33" * 20,
        amount=2**96 - 1,
        bond=7,
        quantity=3,
        fee_bps=200,
        reseller_cut=2**96 - 2,
        dispute_window=3600,
        deadline=2**40 - 1,
        state=OrderState.DISPUTED,
        release_digest=b"\x07" * 32,
    )
    assert Order.decode(order.encode()) == Order.from_fields(dataclasses.asdict(order))
    assert Order.decode(order.encode()).hash() == order.hash()


def test_the_mirrored_enum_and_config_match_the_sources() -> None:
    body = INTERFACE[INTERFACE.index("enum OrderState") :]
    members = re.findall(r"\w+", body[body.index("{") + 1 : body.index("}")])
    assert [m.upper() for m in members] == [s.name for s in OrderState]
    assert python_type(ORDER_LAYOUT.component("state")) == "OrderState"
    escrow_struct("Config").check_dataclass(EscrowConfig)
    # The Listing struct is in no ABI now (the escrow's storage replaced getListing): its
    # members come from the storage layout.
    zero_state = EscrowStorage(lambda slots: [bytes(32)] * len(slots))
    assert list(zero_state.listing(1))[:3] == ["supplier", "committed", "sold"]


def test_the_assembly_word_offsets_match_the_abi_order() -> None:
    """`_hashCalldata` copies the Order from calldata and overwrites deadline, state and digest
    at fixed offsets; `buy` hashes the memory struct with a fixed length. Those constants are
    the only copy of the layout the ABI cannot supply: they must sit where the ABI puts the
    fields, and the struct must stay all one-word static fields for the copy to be its encoding.
    """
    for component in ORDER_LAYOUT.components:
        assert re.fullmatch(r"address|bool|u?int\d+|bytes([1-9]|[12]\d|3[0-2])", component["type"])
    size = WORD * len(ORDER_LAYOUT.components)
    fn = CODE_ESCROW[CODE_ESCROW.index("function _hashCalldata") :]
    fn = fn[: fn.index("\n    }\n")]
    stores = {
        name: int(offset, 16)
        for offset, name in re.findall(r"mstore\(add\(ptr, (0x[0-9a-f]+)\), (\w+)\)", fn)
    }
    assert stores == {
        "deadline": WORD * ORDER_LAYOUT.index("deadline"),
        "state": WORD * ORDER_LAYOUT.index("state"),
        "digest": WORD * ORDER_LAYOUT.index("release_digest"),
    }
    lengths = re.findall(
        r"(?:calldatacopy\(ptr, order, |keccak256\((?:ptr|order), )(0x[0-9a-f]+)\)", CODE_ESCROW
    )
    assert len(lengths) == 3  # the calldata copy and its hash, and buy's memory hash
    assert {int(n, 16) for n in lengths} == {size}
