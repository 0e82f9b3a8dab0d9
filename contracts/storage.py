"""Read contract state from raw storage words, by the compiler's storage layout.

The compiler's ``storageLayout`` output (kept in each artifact, see `contracts.artifacts`) names
every state variable's slot and byte offset and every type's encoding. `StorageLayout` turns it
into locations:

- a state variable is at its declared slot and offset;
- a mapping entry's value starts at ``keccak256(pad32(key) . pad32(slot))``, the key encoded
  per its type (``address`` and integers right-aligned, ``bytesN`` left-aligned); nested
  mappings repeat this, the inner mapping's slot being the outer entry's;
- a struct member is at the struct's slot plus the member's slot, at the member's byte offset;
- a value of N bytes at byte offset o is bits ``[8o, 8(o + N))`` of its 32-byte word counted
  from the low-order end (right-aligned, as Solidity packs them).

Arrays, ``bytes`` and ``string`` are refused: none of the escrow's state has them, so there is no
chain state to prove a decoder of them against.

The escrow has no single-purpose views: its one reader is ``extsload(bytes32[] slots)``, which
returns the words of any slots from one state (docs/DISTRIBUTION.md says why: the bytes). Its
listings, batches, order hashes, ledgers, bonds, authorizations, delivery keys, settings, fees
and listing count are decoded here. `EscrowStorage` answers what the eleven views it replaced
answered (``getListing``, ``getBatch``, ``bondOf``, ``balanceOf``, ``authorization``,
``isDeliveryKey``, ``isProposedDeliveryKey``, ``config``, ``listingCount``, ``orderHash``,
``feesOf``), by name through `EscrowStorage.view` in the shapes a web3 call of the view
returned, and through typed methods. Where the words come from is a `ReadWords` callable:
`extsload_reader` asks the escrow in one ``eth_call``; `web3_storage_reader` reads any
contract's words one by one with ``eth_getStorageAt``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from functools import cache
from typing import TYPE_CHECKING, Any

from eth_utils import keccak, to_checksum_address

from contracts.artifacts import Artifact, load
from contracts.encoding import ZERO_ADDRESS
from contracts.errors import StaleArtifactsError
from contracts.layout import snake_case
from contracts.order_rules import MAX_TIERS

if TYPE_CHECKING:
    from web3 import Web3
    from web3.contract import Contract
    from web3.types import BlockIdentifier

    from contracts.client import EscrowConfig

#: Reads storage words: given slots as 32-byte big-endian keys, returns their 32-byte words in
#: the same order (the shape of an ``extsload(bytes32[]) returns (bytes32[])`` call).
ReadWords = Callable[[list[bytes]], list[bytes]]

#: ``_deliveryKeys`` status of a key the supplier proposed and the key has not yet accepted:
#: ``uint8 private constant _KEY_PROPOSED = 1`` (contracts/src/CodeEscrow.sol, line 42). Private
#: constants are not in the storage layout; tests/contracts/test_storage_layout.py checks the
#: value against the chain.
KEY_PROPOSED = 1
#: ``_deliveryKeys`` status of an accepted delivery key: ``uint8 private constant _KEY_ACTIVE =
#: 2`` (contracts/src/CodeEscrow.sol, line 43).
KEY_ACTIVE = 2

_WORD = 32


class StorageLayoutError(StaleArtifactsError):
    """The storage layout lacks what the reader expects, or has a type the reader cannot decode."""


@dataclass(frozen=True)
class StorageType:
    """One entry of the layout's ``types``.

    Attributes:
        type_id: The key in ``types``, such as ``t_struct(Listing)4334_storage``.
        label: The Solidity type, such as ``uint96``, ``address`` or ``struct ICodeEscrow.Batch``.
        encoding: ``inplace``, ``mapping``, ``bytes`` or ``dynamic_array``.
        number_of_bytes: The bytes the value occupies (a multiple of 32 for structs).
        key: A mapping's key type id, else None.
        value: A mapping's value type id, else None.
        members: A struct's members (``label``, ``slot``, ``offset``, ``type``), else empty.
        is_array: Whether the type is an array (static arrays are ``inplace`` with a ``base``).
    """

    type_id: str
    label: str
    encoding: str
    number_of_bytes: int
    key: str | None
    value: str | None
    members: tuple[Mapping[str, Any], ...]
    is_array: bool


@dataclass(frozen=True)
class Location:
    """Where a value is: its first slot, its byte offset within that slot, and its type id."""

    slot: int
    offset: int
    type_id: str


class StorageLayout:
    """A contract's storage layout, as the compiler's ``storageLayout`` output gives it."""

    def __init__(self, raw: Mapping[str, Any]) -> None:
        """Read a layout.

        Args:
            raw: ``{"storage": [...], "types": {...}}`` as solc emits it.

        Raises:
            StorageLayoutError: `raw` lacks ``storage`` or ``types``.
        """
        try:
            storage = raw["storage"]
            types = raw["types"] or {}
        except (KeyError, TypeError) as exc:
            raise StorageLayoutError("a storage layout needs 'storage' and 'types'") from exc
        self._variables: dict[str, Location] = {
            str(v["label"]): Location(int(v["slot"]), int(v["offset"]), str(v["type"]))
            for v in storage
        }
        self._types: dict[str, StorageType] = {
            type_id: StorageType(
                type_id=type_id,
                label=str(t["label"]),
                encoding=str(t["encoding"]),
                number_of_bytes=int(t["numberOfBytes"]),
                key=t.get("key"),
                value=t.get("value"),
                members=tuple(t.get("members") or ()),
                is_array="base" in t,
            )
            for type_id, t in types.items()
        }

    @classmethod
    def from_artifact(cls, artifact: Artifact) -> StorageLayout:
        """The layout recorded in a compiled artifact.

        Raises:
            StaleArtifactsError: the artifact has no storage layout; run `kameng compile --force`.
        """
        return cls(artifact.require_storage_layout())

    @property
    def variables(self) -> tuple[str, ...]:
        """The state variables' names, in declaration order."""
        return tuple(self._variables)

    def type_of(self, type_id: str) -> StorageType:
        """A type by its id.

        Raises:
            StorageLayoutError: the layout has no such type.
        """
        try:
            return self._types[type_id]
        except KeyError:
            raise StorageLayoutError(f"the storage layout has no type {type_id}") from None

    def variable(self, label: str) -> Location:
        """Where a state variable is.

        Raises:
            StorageLayoutError: the contract has no state variable of that name.
        """
        try:
            return self._variables[label]
        except KeyError:
            raise StorageLayoutError(f"the storage layout has no state variable {label}") from None

    def member(self, struct: Location, label: str) -> Location:
        """Where a member of a struct is.

        Args:
            struct: The struct's location (always at offset 0: a struct starts a slot).
            label: The member's Solidity name.

        Raises:
            StorageLayoutError: `struct` is no struct, or it has no such member.
        """
        stype = self.type_of(struct.type_id)
        for m in stype.members:
            if m["label"] == label:
                return Location(struct.slot + int(m["slot"]), int(m["offset"]), str(m["type"]))
        raise StorageLayoutError(f"{stype.label} has no member {label}")

    def entry(self, mapping: Location, key: object) -> Location:
        """Where a mapping's value for `key` is: ``keccak256(pad32(key) . pad32(slot))``.

        Args:
            mapping: The mapping's location.
            key: An ``address`` as hex, an integer (``uintN``, ``intN``, enums), a bool, or
                bytes for ``bytesN``.

        Raises:
            StorageLayoutError: `mapping` is no mapping, or its key type is not a value type.
            ValueError: `key` does not fit the key type.
        """
        mtype = self.type_of(mapping.type_id)
        if mtype.encoding != "mapping" or mtype.key is None or mtype.value is None:
            raise StorageLayoutError(f"{mtype.label} is not a mapping")
        ktype = self.type_of(mtype.key)
        if ktype.encoding != "inplace" or ktype.is_array or ktype.members:
            raise StorageLayoutError(f"mapping keys of type {ktype.label} are not supported")
        padded = encode_key(ktype.label, key)
        slot = int.from_bytes(keccak(padded + mapping.slot.to_bytes(_WORD, "big")), "big")
        return Location(slot, 0, mtype.value)

    def locate(self, label: str, *path: object) -> Location:
        """Where a value is, from a state variable down through mapping keys and struct members.

        Each step of `path` is a key where the current type is a mapping and a member's name
        where it is a struct: ``locate("_ledgers", account, token, "bondFree")``.

        Raises:
            StorageLayoutError: a step does not apply to the type it meets.
            ValueError: a key does not fit its mapping's key type.
        """
        here = self.variable(label)
        for step in path:
            stype = self.type_of(here.type_id)
            if stype.encoding == "mapping":
                here = self.entry(here, step)
            elif stype.members:
                if not isinstance(step, str):
                    raise StorageLayoutError(f"{stype.label} needs a member name, got {step!r}")
                here = self.member(here, step)
            else:
                raise StorageLayoutError(f"{stype.label} has no keys or members ({step!r})")
        return here

    def slots(self, location: Location) -> list[int]:
        """The slots a value occupies (several for a struct).

        Raises:
            StorageLayoutError: the value is a mapping, an array, ``bytes`` or ``string``.
        """
        stype = self._decodable(location)
        if stype.members:
            return list(range(location.slot, location.slot + stype.number_of_bytes // _WORD))
        return [location.slot]

    def decode(self, location: Location, words: Mapping[int, bytes]) -> Any:
        """Decode a value from the words of its slots.

        Value types decode as `decode_value` says. A struct decodes to a dict of its members by
        their Solidity names, in declaration order; members that are mappings are left out (a
        mapping has no value of its own).

        Args:
            location: The value's location.
            words: At least the words of `slots(location)`, by slot.

        Raises:
            StorageLayoutError: the type cannot be decoded.
            KeyError: a slot's word is missing from `words`.
        """
        stype = self._decodable(location)
        if stype.members:
            out: dict[str, Any] = {}
            for m in stype.members:
                here = self.member(location, str(m["label"]))
                if self.type_of(here.type_id).encoding == "mapping":
                    continue
                out[str(m["label"])] = self.decode(here, words)
            return out
        word = words[location.slot]
        return decode_value(stype.label, word, location.offset, stype.number_of_bytes)

    def read(self, read_words: ReadWords, *locations: Location) -> list[Any]:
        """Read and decode values with one call of `read_words`.

        Args:
            read_words: The source of storage words.
            locations: The values to read.

        Returns:
            The decoded values, in the order of `locations`.

        Raises:
            StorageLayoutError: a type cannot be decoded, or `read_words` answered with a wrong
                number of words or a word that is not 32 bytes.
        """
        wanted: list[int] = []
        for location in locations:
            wanted.extend(s for s in self.slots(location) if s not in wanted)
        words = read_words([s.to_bytes(_WORD, "big") for s in wanted])
        if len(words) != len(wanted):
            raise StorageLayoutError(f"asked for {len(wanted)} storage words, got {len(words)}")
        by_slot: dict[int, bytes] = {}
        for slot, word in zip(wanted, words, strict=True):
            if len(word) != _WORD:
                raise StorageLayoutError(f"storage word of slot {slot:#x} is {len(word)} bytes")
            by_slot[slot] = bytes(word)
        return [self.decode(location, by_slot) for location in locations]

    def _decodable(self, location: Location) -> StorageType:
        stype = self.type_of(location.type_id)
        if stype.encoding != "inplace" or stype.is_array:
            raise StorageLayoutError(
                f"cannot decode {stype.label} ({stype.encoding}): only value types and structs "
                "of them are supported"
            )
        return stype


def encode_key(type_label: str, key: object) -> bytes:
    """A mapping key as the 32 bytes hashed with the mapping's slot.

    Args:
        type_label: The key's Solidity type: ``address``, ``contract X``, ``bool``, ``uintN``,
            ``intN``, ``enum X`` or ``bytesN``.
        key: A hex address (any case), an int, a bool, or bytes of at most N for ``bytesN``.

    Raises:
        ValueError: `key` is not a value of the type, or the type is not a value type.
    """
    if type_label == "address" or type_label.startswith(("address ", "contract ")):
        if not isinstance(key, str):
            raise ValueError(f"an address key must be hex text, got {key!r}")
        return bytes(12) + bytes.fromhex(to_checksum_address(key)[2:])
    if type_label == "bool":
        if not isinstance(key, bool):
            raise ValueError(f"a bool key must be a bool, got {key!r}")
        return int(key).to_bytes(_WORD, "big")
    if type_label.startswith(("uint", "int", "enum ")):
        if isinstance(key, bool) or not isinstance(key, int):
            raise ValueError(f"a {type_label} key must be an int, got {key!r}")
        width = type_label.removeprefix("u").removeprefix("int")
        bits = 8 if type_label.startswith("enum ") else int(width or 256)
        signed = type_label.startswith("int")
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
        if not low <= key < high:
            raise ValueError(f"{key} does not fit {type_label}")
        return (key % (1 << (8 * _WORD))).to_bytes(_WORD, "big")
    if type_label.startswith("bytes") and type_label[5:].isdigit():
        if not isinstance(key, bytes | bytearray) or len(key) > int(type_label[5:]):
            raise ValueError(f"a {type_label} key must be at most {type_label[5:]} bytes")
        return bytes(key).ljust(_WORD, b"\0")
    raise ValueError(f"mapping keys of type {type_label} are not supported")


def extract(word: bytes, offset: int, size: int) -> int:
    """The unsigned integer in bytes ``[offset, offset + size)`` of a word, counted from its
    low-order (right) end, as Solidity packs values into a slot."""
    if offset < 0 or size <= 0 or offset + size > _WORD:
        raise ValueError(f"bytes {offset}..{offset + size} are not within a 32-byte word")
    return (int.from_bytes(word, "big") >> (8 * offset)) & ((1 << (8 * size)) - 1)


def decode_value(type_label: str, word: bytes, offset: int, size: int) -> Any:
    """Decode a value type packed into a storage word.

    Args:
        type_label: ``address``, ``contract X`` (a checksum address str), ``bool``, ``uintN``,
            ``enum X`` (an int), ``intN`` (a signed int) or ``bytesN`` (N bytes).
        word: The 32-byte word.
        offset: The value's byte offset from the word's low-order end.
        size: The value's size in bytes.

    Raises:
        StorageLayoutError: the type is not one of those.
    """
    raw = extract(word, offset, size)
    if type_label == "address" or type_label.startswith(("address ", "contract ")):
        return to_checksum_address(raw.to_bytes(20, "big"))
    if type_label == "bool":
        return raw != 0
    if type_label.startswith(("uint", "enum ")):
        return raw
    if type_label.startswith("int"):
        return raw - (1 << (8 * size)) if raw >> (8 * size - 1) else raw
    if type_label.startswith("bytes") and type_label[5:].isdigit():
        return raw.to_bytes(size, "big")
    raise StorageLayoutError(f"cannot decode values of type {type_label}")


@cache
def escrow_layout() -> StorageLayout:
    """The CodeEscrow storage layout from its committed artifact.

    Raises:
        StaleArtifactsError: the artifact has no storage layout; run `kameng compile --force`.
    """
    return StorageLayout.from_artifact(load("CodeEscrow"))


class EscrowStorage:
    """What the escrow's state says, decoded from its storage words.

    Each method reads what it needs with one call of `read_words` (one ``extsload``) and
    returns what the view of the same name used to return, in the shape
    `contracts.client.EscrowClient` (or its callers) use for it.
    """

    def __init__(self, read_words: ReadWords, layout: StorageLayout | None = None) -> None:
        """Bind to a source of storage words.

        Args:
            read_words: Reads the escrow's storage (see `web3_storage_reader`).
            layout: The escrow's storage layout; default: the committed artifact's.

        Raises:
            StaleArtifactsError: no layout was given and the artifact has none.
        """
        self.read_words = read_words
        self.layout = layout if layout is not None else escrow_layout()

    def _one(self, label: str, *path: object) -> Any:
        (value,) = self.layout.read(self.read_words, self.layout.locate(label, *path))
        return value

    def view(self, name: str, *args: Any) -> Any:
        """Answer a replaced view by its name, as a web3 call of it answered: a struct as a
        tuple of its members in declaration order, ``bytes32`` as bytes, ``bondOf`` as
        ``(free, reserved)``.

        Args:
            name: One of `VIEWS`.
            args: The view's arguments.

        Raises:
            ValueError: `name` is not one of `VIEWS`.
        """
        answer = _ANSWERS.get(name)
        if answer is None:
            raise ValueError(f"the escrow's storage answers {sorted(VIEWS)}, not {name!r}")
        return answer(self, *args)

    def listing_count(self) -> int:
        """``listingCount()``: how many listings were created (the last listing id)."""
        return int(self._one("_listingCount"))

    def listing(self, listing_id: int) -> dict[str, Any]:
        """A listing as `EscrowClient.listing` returns it: a dict keyed by the snake_case names
        of the Listing struct's members (all zero for an unknown id)."""
        return _snake(self._one("_listings", listing_id))

    def batch(self, listing_id: int, index: int) -> tuple[bytes, int, int]:
        """``getBatch(listingId, batchIndex)``: (root, first index, count)."""
        fields = self._one("_batches", listing_id, index)
        return bytes(fields["root"]), int(fields["firstIndex"]), int(fields["count"])

    def order_hash(self, oid: int) -> bytes:
        """``orderHash(orderId)``: the stored hash of an order (zero once it ended or if none)."""
        return bytes(self._one("_orderHashes", oid))

    def bond_of(self, supplier: str, token: str = ZERO_ADDRESS) -> tuple[int, int]:
        """``bondOf(supplier, token)``: the (free, reserved) bond."""
        ledger = self._one("_ledgers", supplier, token)
        return int(ledger["bondFree"]), int(ledger["bondReserved"])

    def balance_of(self, account: str, token: str = ZERO_ADDRESS) -> int:
        """``balanceOf(account, token)``: the withdrawable balance, the packed ledger's 96-bit
        balance plus what did not fit it (``_overflow``)."""
        ledger, spilled = self.layout.read(
            self.read_words,
            self.layout.locate("_ledgers", account, token, "balance"),
            self.layout.locate("_overflow", account, token),
        )
        return int(ledger) + int(spilled)

    def authorization(self, supplier: str, sku: bytes) -> bytes:
        """``authorization(supplier, sku)``: the attestation hash (zero if not authorized)."""
        return bytes(self._one("_authorizations", supplier, sku))

    def is_delivery_key(self, supplier: str, key: str) -> bool:
        """``isDeliveryKey(supplier, key)``: whether `key` accepted the supplier's proposal."""
        return int(self._one("_deliveryKeys", supplier, key)) == KEY_ACTIVE

    def is_proposed_delivery_key(self, supplier: str, key: str) -> bool:
        """``isProposedDeliveryKey(supplier, key)``: whether the supplier proposed `key` and it
        has not accepted yet."""
        return int(self._one("_deliveryKeys", supplier, key)) == KEY_PROPOSED

    def config(self) -> EscrowConfig:
        """``config()``: the platform settings.

        Raises:
            StorageLayoutError: the stored struct's members differ from `EscrowConfig`'s.
        """
        from contracts.client import EscrowConfig  # the client uses this module: no cycle

        fields = _snake(self._one("_config"))
        if list(fields) != [f.name for f in dataclass_fields(EscrowConfig)]:
            raise StorageLayoutError(f"Config in storage has members {list(fields)}")
        return EscrowConfig(**fields)

    def fees_of(self, token: str) -> int:
        """``feesOf(token)``: the platform's fee income in `token`, not yet withdrawn."""
        return int(self._one("_fees", token))

    def reseller_price(self, listing_id: int) -> int:
        """What the supplier receives a unit from a reseller's sale of the listing (0: the
        listing is not open to resellers)."""
        return int(self._one("_resellerPrices", listing_id))

    def shop_price(self, reseller: str, listing_id: int) -> int:
        """The unit price of the listing in `reseller`'s shop (0: not in its shop)."""
        return int(self._one("_shopPrices", reseller, listing_id))

    def tiers(self, listing_id: int) -> list[tuple[int, int]]:
        """The listing's volume tiers as ``(min_quantity, discount_bps)``, smallest first (none
        if it has no tiers; see `decode_tiers`)."""
        return decode_tiers(int(self._one("_tiers", listing_id)))

    def token_allowed(self, token: str) -> bool:
        """Whether listings and bonds may be in `token` (the operator allows tokens)."""
        return bool(int(self._one("_tokenAllowed", token)))

    def coupon_uses(self, supplier: str, coupon_id: int) -> int:
        """How many purchases used `supplier`'s coupons numbered `coupon_id`
        (`contracts.coupons.REVOKED` once revoked)."""
        word, shift = coupon_id >> 3, (coupon_id & 7) * 32
        return (int(self._one("_couponUses", supplier, word)) >> shift) & 0xFFFFFFFF


#: Bits a volume tier takes in the escrow's packed ``_tiers`` word (it holds
#: `contracts.order_rules.MAX_TIERS` of them).
_TIER_BITS = 48


def encode_tiers(tiers: Iterable[tuple[int, int]]) -> int:
    """The packed ``_tiers`` word of ``(min_quantity, discount_bps)`` tiers, smallest first, as
    the escrow's ``setTiers`` stores them (the inverse of `decode_tiers`)."""
    packed = 0
    for i, (minimum, bps) in enumerate(tiers):
        packed |= ((int(minimum) << 16) | int(bps)) << (_TIER_BITS * i)
    return packed


def decode_tiers(packed: int) -> list[tuple[int, int]]:
    """The ``(min_quantity, discount_bps)`` tiers of a packed ``_tiers`` word: tier i in bits
    ``[48i, 48i + 48)``, its minimum quantity (32 bits) above its discount (16 bits); a zero
    minimum ends the list."""
    out: list[tuple[int, int]] = []
    for i in range(MAX_TIERS):
        tier = packed >> (_TIER_BITS * i)
        minimum = (tier >> 16) & 0xFFFFFFFF
        if minimum == 0:
            break
        out.append((minimum, tier & 0xFFFF))
    return out


#: How `EscrowStorage.view` answers each view the escrow's storage replaced, by the view's name:
#: structs as tuples of their members in declaration order, as a web3 call of the view gave them.
_ANSWERS: dict[str, Callable[..., Any]] = {
    "getListing": lambda s, listing_id: tuple(s._one("_listings", listing_id).values()),
    "getBatch": EscrowStorage.batch,
    "bondOf": EscrowStorage.bond_of,
    "balanceOf": EscrowStorage.balance_of,
    "authorization": EscrowStorage.authorization,
    "isDeliveryKey": EscrowStorage.is_delivery_key,
    "isProposedDeliveryKey": EscrowStorage.is_proposed_delivery_key,
    "config": lambda s: tuple(s._one("_config").values()),
    "listingCount": EscrowStorage.listing_count,
    "orderHash": EscrowStorage.order_hash,
    "feesOf": EscrowStorage.fees_of,
    "resellerPrice": EscrowStorage.reseller_price,
    "shopPrice": EscrowStorage.shop_price,
    "tiers": lambda s, listing_id: int(s._one("_tiers", listing_id)),
}

#: The views the escrow's storage answers: the functions it replaced, by their names, and the
#: reads added since in the same style (``resellerPrice``, ``shopPrice``, ``tiers``).
VIEWS = frozenset(_ANSWERS)


def _snake(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A decoded storage struct keyed by its members' snake_case names, in declaration order."""
    return {snake_case(name): value for name, value in stored.items()}


def extsload_reader(contract: Contract, block_identifier: BlockIdentifier = "latest") -> ReadWords:
    """A `ReadWords` over the escrow's ``extsload``: any number of words, one ``eth_call``, one
    state.

    Args:
        contract: The escrow (a web3 contract with the CodeEscrow ABI).
        block_identifier: The block to read at.
    """

    def read_words(slots: list[bytes]) -> list[bytes]:
        words = contract.functions.extsload(slots).call(block_identifier=block_identifier)
        return [bytes(w) for w in words]

    return read_words


def web3_storage_reader(
    w3: Web3, address: str, block_identifier: BlockIdentifier = "latest"
) -> ReadWords:
    """A `ReadWords` over ``eth_getStorageAt``, one request per slot.

    Args:
        w3: A connected Web3.
        address: The contract whose storage is read.
        block_identifier: The block to read at. Pass a block number when several reads must
            see one state: under ``latest`` a block may be mined between two words.
    """
    target = to_checksum_address(address)

    def read_words(slots: list[bytes]) -> list[bytes]:
        return [
            bytes(w3.eth.get_storage_at(target, int.from_bytes(s, "big"), block_identifier))
            for s in slots
        ]

    return read_words


__all__ = [
    "KEY_ACTIVE",
    "KEY_PROPOSED",
    "VIEWS",
    "EscrowStorage",
    "Location",
    "ReadWords",
    "StorageLayout",
    "StorageLayoutError",
    "StorageType",
    "decode_value",
    "encode_key",
    "escrow_layout",
    "extract",
    "extsload_reader",
    "web3_storage_reader",
]
