// The escrow's replaced single-purpose views (getListing, orderHash, config, ...) answered from
// raw storage words, by the compiler's storage layout: the JavaScript twin of contracts/storage.py.
// The escrow has one reader, `extsload(bytes32[] slots) returns (bytes32[] words)`; chain.js's
// `read` sends the eleven view names here, with the layout build.mjs embeds (escrow-layout.mjs).
//
// Location rules (as in contracts/storage.py):
// - a state variable is at its declared slot and byte offset;
// - a mapping entry starts at keccak256(pad32(key) . pad32(slot)), addresses and integers
//   right-aligned, bytesN left-aligned; nested mappings repeat this;
// - a struct member is at the struct's slot plus the member's slot, at the member's offset;
// - a value of N bytes at byte offset o is bits [8o, 8(o + N)) of its word, from the low end.

import { concatHex, getAddress, keccak256, numberToHex, padHex, toHex } from "viem";

/** `_deliveryKeys` status of a proposed key (CodeEscrow's private `_KEY_PROPOSED`). */
export const KEY_PROPOSED = 1;
/** `_deliveryKeys` status of an accepted key (CodeEscrow's private `_KEY_ACTIVE`). */
export const KEY_ACTIVE = 2;

const WORD = 32;
const MAX_WORD = (1n << 256n) - 1n;

/**
 * A slot number as a 0x-prefixed 32-byte lower-case hex string.
 * @param {bigint} slot
 * @returns {`0x${string}`}
 */
export function slotHex(slot) {
  return numberToHex(slot, { size: WORD });
}

function typeOf(layout, typeId) {
  const type = layout.types?.[typeId];
  if (!type) throw new Error(`the storage layout has no type ${typeId}`);
  return type;
}

function isAddressLabel(label) {
  return label === "address" || label.startsWith("address ") || label.startsWith("contract ");
}

/**
 * A mapping key as the 32 bytes hashed with the mapping's slot.
 * @param {string} label The key's Solidity type: address, contract X, bool, uintN, intN, enum X, bytesN.
 * @param {string | bigint | number | boolean} key A hex address, an integer, a bool, or hex bytes.
 * @returns {`0x${string}`}
 */
export function encodeKey(label, key) {
  if (isAddressLabel(label)) return padHex(getAddress(key), { size: WORD });
  if (label === "bool") {
    if (typeof key !== "boolean") throw new Error(`a bool key must be a boolean, got ${key}`);
    return slotHex(key ? 1n : 0n);
  }
  if (/^(u?int\d*|enum )/.test(label)) {
    if (typeof key !== "bigint" && !Number.isSafeInteger(key)) {
      throw new Error(`a ${label} key must be an integer, got ${key}`);
    }
    const value = BigInt(key);
    const bits = label.startsWith("enum ") ? 8n : BigInt(label.replace(/^u?int/, "") || 256);
    const signed = label.startsWith("int");
    const low = signed ? -(1n << (bits - 1n)) : 0n;
    const high = signed ? 1n << (bits - 1n) : 1n << bits;
    if (value < low || value >= high) throw new Error(`${key} does not fit ${label}`);
    return slotHex(value & MAX_WORD);
  }
  const bytesN = /^bytes(\d+)$/.exec(label);
  if (bytesN) {
    const hex = typeof key === "string" ? key : toHex(key);
    if ((hex.length - 2) / 2 > Number(bytesN[1])) {
      throw new Error(`a ${label} key must be at most ${bytesN[1]} bytes`);
    }
    return padHex(hex, { size: WORD, dir: "right" });
  }
  throw new Error(`mapping keys of type ${label} are not supported`);
}

/**
 * Where a value is, from a state variable down through mapping keys and struct members: each
 * step of `path` is a key where the current type is a mapping and a member name where it is a
 * struct, as in `locate(layout, "_ledgers", account, token, "bondFree")`.
 * @param {{storage: object[], types: object}} layout The compiler's storageLayout.
 * @param {string} label The state variable.
 * @param {...(string | bigint | number | boolean)} path Mapping keys and member names.
 * @returns {{slot: bigint, offset: number, type: string}}
 */
export function locate(layout, label, ...path) {
  const variable = layout.storage?.find((v) => v.label === label);
  if (!variable) throw new Error(`the storage layout has no state variable ${label}`);
  let here = { slot: BigInt(variable.slot), offset: Number(variable.offset), type: variable.type };
  for (const step of path) {
    const type = typeOf(layout, here.type);
    if (type.encoding === "mapping") {
      const keyType = typeOf(layout, type.key);
      if (keyType.encoding !== "inplace" || keyType.members || keyType.base) {
        throw new Error(`mapping keys of type ${keyType.label} are not supported`);
      }
      const hash = keccak256(concatHex([encodeKey(keyType.label, step), slotHex(here.slot)]));
      here = { slot: BigInt(hash), offset: 0, type: type.value };
    } else if (type.members) {
      const member = type.members.find((m) => m.label === step);
      if (!member) throw new Error(`${type.label} has no member ${String(step)}`);
      here = {
        slot: here.slot + BigInt(member.slot),
        offset: Number(member.offset),
        type: member.type,
      };
    } else {
      throw new Error(`${type.label} has no keys or members (${String(step)})`);
    }
  }
  return here;
}

function decodable(layout, location) {
  const type = typeOf(layout, location.type);
  if (type.encoding !== "inplace" || type.base) {
    throw new Error(`cannot decode ${type.label} (${type.encoding})`);
  }
  return type;
}

/**
 * The slots a value occupies (several for a struct).
 * @param {{storage: object[], types: object}} layout The compiler's storageLayout.
 * @param {{slot: bigint, offset: number, type: string}} location From `locate`.
 * @returns {bigint[]}
 */
export function slotsOf(layout, location) {
  const type = decodable(layout, location);
  if (!type.members) return [location.slot];
  const count = Number(type.numberOfBytes) / WORD;
  return Array.from({ length: count }, (_, i) => location.slot + BigInt(i));
}

/**
 * Decode a value type packed into a storage word, as viem decodes the same ABI type: address
 * checksummed, bool a boolean, uintN/intN/enum a number up to 48 bits and a bigint above,
 * bytesN lower-case hex.
 * @param {string} label The Solidity type, such as `uint96`, `address` or `bytes32`.
 * @param {`0x${string}`} word The 32-byte word.
 * @param {number} offset The value's byte offset from the word's low-order end.
 * @param {number} size The value's size in bytes.
 * @returns {string | boolean | number | bigint}
 */
export function decodeValue(label, word, offset, size) {
  if (offset < 0 || size <= 0 || offset + size > WORD) {
    throw new Error(`bytes ${offset}..${offset + size} are not within a 32-byte word`);
  }
  const raw = (BigInt(word) >> BigInt(8 * offset)) & ((1n << BigInt(8 * size)) - 1n);
  if (isAddressLabel(label)) return getAddress(numberToHex(raw, { size: 20 }));
  if (label === "bool") return raw !== 0n;
  const bytesN = /^bytes(\d+)$/.exec(label);
  if (bytesN) return numberToHex(raw, { size });
  let value;
  if (label.startsWith("uint") || label.startsWith("enum ")) value = raw;
  else if (label.startsWith("int")) {
    value = raw >> BigInt(8 * size - 1) ? raw - (1n << BigInt(8 * size)) : raw;
  } else throw new Error(`cannot decode values of type ${label}`);
  return size <= 6 ? Number(value) : value;
}

/**
 * Decode a value (a value type, or a struct of them as an object by member name, mappings
 * left out) from the words of its slots.
 * @param {{storage: object[], types: object}} layout The compiler's storageLayout.
 * @param {{slot: bigint, offset: number, type: string}} location From `locate`.
 * @param {Map<bigint, `0x${string}`>} words At least the words of `slotsOf(location)`.
 * @returns {any}
 */
export function decode(layout, location, words) {
  const type = decodable(layout, location);
  if (type.members) {
    const out = {};
    for (const m of type.members) {
      if (typeOf(layout, m.type).encoding === "mapping") continue;
      out[m.label] = decode(layout, locate1(location, m), words);
    }
    return out;
  }
  const word = words.get(location.slot);
  if (word === undefined) throw new Error(`no storage word for slot ${slotHex(location.slot)}`);
  return decodeValue(type.label, word, location.offset, Number(type.numberOfBytes));
}

function locate1(struct, member) {
  return { slot: struct.slot + BigInt(member.slot), offset: Number(member.offset), type: member.type };
}

/**
 * Read and decode values with one call of `readWords`.
 * @param {{storage: object[], types: object}} layout The compiler's storageLayout.
 * @param {(slots: `0x${string}`[]) => Promise<`0x${string}`[]>} readWords The source of words.
 * @param {...{slot: bigint, offset: number, type: string}} locations The values to read.
 * @returns {Promise<any[]>} The decoded values, in the order of `locations`.
 */
export async function readValues(layout, readWords, ...locations) {
  const wanted = [];
  for (const location of locations) {
    for (const slot of slotsOf(layout, location)) if (!wanted.includes(slot)) wanted.push(slot);
  }
  const got = await readWords(wanted.map(slotHex));
  if (!Array.isArray(got) || got.length !== wanted.length) {
    throw new Error(`asked for ${wanted.length} storage words, got ${got?.length}`);
  }
  const words = new Map();
  wanted.forEach((slot, i) => {
    if (!/^0x[0-9a-fA-F]{64}$/.test(got[i])) {
      throw new Error(`storage word of slot ${slotHex(slot)} is not 32 bytes: ${got[i]}`);
    }
    words.set(slot, got[i]);
  });
  return locations.map((location) => decode(layout, location, words));
}

/**
 * The escrow's single-purpose views answered from its storage, each with one call of
 * `readWords`, each returning what viem's readContract returns for the view.
 * @param {{storage: object[], types: object}} layout The escrow's storageLayout (the artifact's).
 * @param {(slots: `0x${string}`[]) => Promise<`0x${string}`[]>} readWords Reads storage words:
 *   32-byte hex slots in, their 32-byte hex words out, in order (the shape of `extsload`).
 * @returns {object} Methods named after the views' data: listing, batch, orderHash, bondOf,
 *   balanceOf, authorization, isDeliveryKey, isProposedDeliveryKey, config, listingCount, feesOf,
 *   resellerPrice, shopPrice, tiers; and couponWords (coupon use counters).
 */
export function escrowStorage(layout, readWords) {
  const one = async (label, ...path) => {
    const [value] = await readValues(layout, readWords, locate(layout, label, ...path));
    return value;
  };
  return {
    /** `getListing(listingId)`: the Listing (all zero for an unknown id). */
    listing: (listingId) => one("_listings", BigInt(listingId)),
    /** `getBatch(listingId, batchIndex)`: `{root, firstIndex, count}`. */
    batch: (listingId, index) => one("_batches", BigInt(listingId), BigInt(index)),
    /** `orderHash(orderId)`: the stored hash (zero once ended, or if none). */
    orderHash: (orderId) => one("_orderHashes", BigInt(orderId)),
    /** `bondOf(supplier, token)`: `{free, reserved}` as bigints. */
    async bondOf(supplier, token) {
      const ledger = await one("_ledgers", supplier, token);
      return { free: BigInt(ledger.bondFree), reserved: BigInt(ledger.bondReserved) };
    },
    /** `balanceOf(account, token)`: the packed 96-bit balance plus `_overflow`. */
    async balanceOf(account, token) {
      const [packed, spilled] = await readValues(
        layout,
        readWords,
        locate(layout, "_ledgers", account, token, "balance"),
        locate(layout, "_overflow", account, token),
      );
      return BigInt(packed) + BigInt(spilled);
    },
    /** `authorization(supplier, sku)`: the attestation hash (zero if not authorized). */
    authorization: (supplier, sku) => one("_authorizations", supplier, sku),
    /** `isDeliveryKey(supplier, key)`: whether `key` accepted the supplier's proposal. */
    isDeliveryKey: async (supplier, key) => Number(await one("_deliveryKeys", supplier, key)) === KEY_ACTIVE,
    /** `isProposedDeliveryKey(supplier, key)`: proposed and not yet accepted. */
    isProposedDeliveryKey: async (supplier, key) => Number(await one("_deliveryKeys", supplier, key)) === KEY_PROPOSED,
    /** `config()`: the platform settings. */
    config: () => one("_config"),
    /** `listingCount()`: the last listing id, as a bigint. */
    listingCount: async () => BigInt(await one("_listingCount")),
    /** `feesOf(token)`: the platform's fee income in `token`, as a bigint. */
    feesOf: async (token) => BigInt(await one("_fees", token)),
    /** `resellerPrice(listingId)`: what the supplier receives a unit from a reseller's sale (0: not open to resellers). */
    resellerPrice: async (listingId) => BigInt(await one("_resellerPrices", BigInt(listingId))),
    /** `shopPrice(reseller, listingId)`: the listing's unit price in the reseller's shop (0: not in it). */
    shopPrice: async (reseller, listingId) => BigInt(await one("_shopPrices", reseller, BigInt(listingId))),
    /** `tiers(listingId)`: the packed volume tiers word, as a bigint (see `decodeTiers`). */
    tiers: async (listingId) => BigInt(await one("_tiers", BigInt(listingId))),
    /**
     * `_couponUses[supplier][word]` for each of `words`, as bigints, in one read: eight 32-bit
     * use counters a word, coupon number i in word i >> 3 (see `decodeCouponUses`). Not one of
     * `STORAGE_VIEWS`: the escrow never had a view of it (contracts/storage.py's `coupon_uses`).
     */
    couponWords: async (supplier, words) =>
      (
        await readValues(layout, readWords, ...words.map((w) => locate(layout, "_couponUses", supplier, BigInt(w))))
      ).map((v) => BigInt(v)),
  };
}

/**
 * The views the escrow's storage answers, by the names of the functions they replaced (and of the
 * reads added since in the same style: resellerPrice, shopPrice, tiers), each with
 * the `escrowStorage` method answering it (contracts/storage.py's `VIEWS`).
 */
export const STORAGE_VIEWS = Object.freeze({
  getListing: "listing",
  getBatch: "batch",
  orderHash: "orderHash",
  bondOf: "bondOf",
  balanceOf: "balanceOf",
  authorization: "authorization",
  isDeliveryKey: "isDeliveryKey",
  isProposedDeliveryKey: "isProposedDeliveryKey",
  config: "config",
  listingCount: "listingCount",
  feesOf: "feesOf",
  resellerPrice: "resellerPrice",
  shopPrice: "shopPrice",
  tiers: "tiers",
});

/**
 * A listing's volume tiers from the escrow's packed `_tiers` word: tier i in bits [48i, 48i + 48),
 * its minimum quantity (32 bits) above its discount in basis points (16 bits); a zero minimum
 * ends the list (contracts/storage.py's `decode_tiers`).
 * @param {bigint} packed
 * @returns {{minQuantity: number, discountBps: number}[]}
 */
export function decodeTiers(packed) {
  const out = [];
  for (let i = 0n; i < 3n; i++) {
    const tier = BigInt(packed) >> (48n * i);
    const minQuantity = Number((tier >> 16n) & 0xffffffffn);
    if (minQuantity === 0) break;
    out.push({ minQuantity, discountBps: Number(tier & 0xffffn) });
  }
  return out;
}

/**
 * A coupon number's use count out of its packed `_couponUses` word: bits [32 (id & 7), +32)
 * (0xffffffff once its supplier revoked it; contracts/storage.py's `coupon_uses`).
 * @param {bigint} packed The word `couponWords` read for `id >> 3`.
 * @param {bigint | number} id The coupon number.
 * @returns {number}
 */
export function decodeCouponUses(packed, id) {
  return Number((BigInt(packed) >> ((BigInt(id) & 7n) * 32n)) & 0xffffffffn);
}

/**
 * Whether `name` is one of the views the escrow's storage answers.
 * @param {string} name
 * @returns {boolean}
 */
export function isStorageView(name) {
  return Object.hasOwn(STORAGE_VIEWS, name);
}

/**
 * Storage words through the escrow's `extsload`: one `eth_call` per call, so the words of one
 * answer come from one state.
 * @param {{readContract: Function}} client A viem public client.
 * @param {`0x${string}`} address The escrow.
 * @param {object[]} abi An ABI with `extsload` (the escrow's).
 * @returns {(slots: `0x${string}`[]) => Promise<`0x${string}`[]>}
 */
export function extsloadReader(client, address, abi) {
  return (slots) => client.readContract({ address, abi, functionName: "extsload", args: [slots] });
}

/**
 * The replaced views answered by name, as viem's readContract answered them: `read(name, args)`
 * with the view's arguments, resolving to a struct as an object by member name, a uint above 48
 * bits as a bigint (a number up to 48), a bytes32 as lower-case hex, a bool as a boolean.
 * @param {{storage: object[], types: object}} layout The escrow's storage layout.
 * @param {(slots: `0x${string}`[]) => Promise<`0x${string}`[]>} readWords Reads storage words
 *   (`extsloadReader`); called once per answer.
 * @returns {(name: string, args?: any[]) => Promise<any>} Rejects for a name that is not one
 *   of `STORAGE_VIEWS`, and for what `readWords` rejects with.
 */
export function escrowViews(layout, readWords) {
  const storage = escrowStorage(layout, readWords);
  return async (name, args = []) => {
    if (!isStorageView(name)) throw new Error(`the escrow's storage does not answer ${name}`);
    return storage[STORAGE_VIEWS[name]](...args);
  };
}
