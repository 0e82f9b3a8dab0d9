// Coupons (优惠券, issue 15): discounts a listing's supplier signs off-chain (EIP-712) and a buyer
// presents to the escrow's `buyWithCoupon` (docs/PROTOCOL.md, "Coupons"). The JavaScript twin of
// contracts/coupons.py: the share-link text, the typed data a wallet signs, the compact signature
// the escrow takes, the signer, the prices a coupon leaves (contracts/order_rules.py's
// `coupon_prices`) and why the escrow would refuse a coupon (`contracts.coupons.fault`).
//
// A coupon travels as text: base64url (no padding) of one version byte (1) and the fields packed
// big-endian at fixed widths (listingId 32 bytes, sku 32, buyer 20, discountBps 2, amountOff 12,
// maxUses 4, expiry 5, id 8), then the EIP-2098 compact signature (r 32, vs 32): 180 bytes, 240
// characters.
//
// This module shows nothing itself (no catalog, no DOM), so Node runs it as it is: a refusal is a
// message id of the catalogs (`coupon.fault.*`) for the page to put in words.
import { bytesToHex, getAddress, hexToBytes, numberToHex, recoverTypedDataAddress, serializeSignature } from "viem";

/** The escrow's basis points (100%). */
export const BPS = 10_000;
/** The use count of a revoked coupon number (the escrow's `_REVOKED`). */
export const REVOKED = 0xffffffff;
/** The EIP-712 domain's name and version (the chain id and the escrow complete it). */
export const DOMAIN_NAME = "kameng";
export const DOMAIN_VERSION = "1";

/** The coupon's fields, in the order of the struct, with their Solidity types and text widths. */
const FIELDS = [
  ["listingId", "uint256", 32],
  ["sku", "bytes32", 32],
  ["buyer", "address", 20],
  ["discountBps", "uint16", 2],
  ["amountOff", "uint96", 12],
  ["maxUses", "uint32", 4],
  ["expiry", "uint40", 5],
  ["id", "uint64", 8],
];
/** The coupon's EIP-712 type, as `CodeEscrow.COUPON_TYPEHASH` hashes it. */
export const COUPON_TYPES = Object.freeze({
  Coupon: FIELDS.map(([name, type]) => ({ name, type })),
});
const VERSION = 1;
const SIGNATURE_BYTES = 64;
/** Bytes of a coupon's text once decoded (version, fields, signature): 180. */
export const COUPON_BYTES = 1 + FIELDS.reduce((sum, [, , width]) => sum + width, 0) + SIGNATURE_BYTES;

const ZERO_ADDRESS = `0x${"00".repeat(20)}`;
const LOW_255 = (1n << 255n) - 1n;
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * A coupon that cannot be read or used as given; `key` is the catalog's message id saying why.
 */
export class CouponError extends Error {
  /**
   * @param {string} key A `coupon.fault.*` message id.
   * @param {object} [params] What the message's placeholders need, when this module knows it.
   */
  constructor(key, params = {}) {
    super(key);
    this.name = "CouponError";
    this.key = key;
    this.params = params;
  }
}

/**
 * @typedef {object} Coupon A coupon's terms (`ICodeEscrow.Coupon`), and its signature once signed.
 * @property {bigint} listingId The listing it is good for, or 0 for any of the signer's listings of `sku`.
 * @property {`0x${string}`} sku The product (32 bytes, lower-case hex) when `listingId` is 0.
 * @property {`0x${string}`} buyer The one buyer who may use it (checksummed), or the zero address.
 * @property {number} discountBps Basis points off the unit price (below 10,000).
 * @property {bigint} amountOff Token units off each code, out of the supplier's part.
 * @property {number} maxUses Purchases that may use it; 0 for no limit.
 * @property {number} expiry The last unix time it may be used at.
 * @property {bigint} id The supplier's number for it.
 * @property {`0x${string}`} r The signature's r (32 bytes; zero until signed).
 * @property {`0x${string}`} vs The signature's s with v's parity in the top bit (zero until signed).
 */

/**
 * A coupon from its terms, each field normalised to the type `Coupon` gives it; unsigned unless
 * `r` and `vs` are given.
 * @param {object} terms The fields of `Coupon` (numbers, bigints or decimal strings; hex sku and buyer).
 * @returns {Coupon}
 */
export function makeCoupon(terms) {
  return {
    listingId: BigInt(terms.listingId ?? 0),
    sku: numberToHex(BigInt(terms.sku ?? 0), { size: 32 }),
    buyer: getAddress(terms.buyer ?? ZERO_ADDRESS),
    discountBps: Number(terms.discountBps ?? 0),
    amountOff: BigInt(terms.amountOff ?? 0),
    maxUses: Number(terms.maxUses ?? 0),
    expiry: Number(terms.expiry ?? 0),
    id: BigInt(terms.id ?? 0),
    r: numberToHex(BigInt(terms.r ?? 0), { size: 32 }),
    vs: numberToHex(BigInt(terms.vs ?? 0), { size: 32 }),
  };
}

function base64url(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const chunk = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) out += BASE64URL[(chunk >> (18 - 6 * j)) & 63];
  }
  return out;
}

function fromBase64url(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const out = [];
  let bits = 0;
  let value = 0;
  for (const c of text) {
    value = (value << 6) | BASE64URL.indexOf(c);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

function toWidth(value, width) {
  return hexToBytes(numberToHex(BigInt(value), { size: width }));
}

/**
 * The coupon as text for a share link (signed or not): `Coupon.text()` of contracts/coupons.py.
 * @param {Coupon} coupon
 * @returns {string} 240 characters of base64url.
 */
export function couponText(coupon) {
  const c = makeCoupon(coupon);
  const bytes = new Uint8Array(COUPON_BYTES);
  bytes[0] = VERSION;
  let at = 1;
  for (const [name, , width] of FIELDS) {
    bytes.set(toWidth(c[name], width), at);
    at += width;
  }
  bytes.set(hexToBytes(c.r), at);
  bytes.set(hexToBytes(c.vs), at + 32);
  return base64url(bytes);
}

/**
 * Read a coupon from its text (white space anywhere and trailing `=` padding are ignored):
 * `Coupon.from_text` of contracts/coupons.py.
 * @param {string} text
 * @returns {Coupon}
 * @throws {CouponError} `coupon.fault.notACoupon`: not base64url, or not 180 bytes of version 1.
 */
export function parseCoupon(text) {
  const cleaned = String(text ?? "")
    .replace(/\s+/g, "")
    .replace(/={1,2}$/, "");
  const bytes = fromBase64url(cleaned);
  if (!bytes || bytes.length !== COUPON_BYTES || bytes[0] !== VERSION) {
    throw new CouponError("coupon.fault.notACoupon");
  }
  const values = {};
  let at = 1;
  for (const [name, , width] of FIELDS) {
    values[name] = BigInt(bytesToHex(bytes.subarray(at, at + width)));
    at += width;
  }
  return makeCoupon({
    ...values,
    sku: values.sku,
    buyer: numberToHex(values.buyer, { size: 20 }),
    r: bytesToHex(bytes.subarray(at, at + 32)),
    vs: bytesToHex(bytes.subarray(at + 32, at + 64)),
  });
}

/**
 * The EIP-712 domain of one escrow on one chain.
 * @param {number | bigint} chainId
 * @param {string} escrow
 * @returns {{name: string, version: string, chainId: bigint, verifyingContract: `0x${string}`}}
 */
export function couponDomain(chainId, escrow) {
  return {
    name: DOMAIN_NAME,
    version: DOMAIN_VERSION,
    chainId: BigInt(chainId),
    verifyingContract: getAddress(escrow),
  };
}

/**
 * The coupon's terms as the EIP-712 message (the struct's fields; no signature).
 * @param {Coupon} coupon
 * @returns {object}
 */
export function couponMessage(coupon) {
  const c = makeCoupon(coupon);
  return Object.fromEntries(FIELDS.map(([name]) => [name, c[name]]));
}

/**
 * The typed data a wallet signs (`eth_signTypedData_v4`; viem adds the EIP712Domain type from
 * the domain), as `typed_data` of contracts/coupons.py.
 * @param {Coupon} coupon
 * @param {number | bigint} chainId
 * @param {string} escrow
 * @returns {{domain: object, types: object, primaryType: "Coupon", message: object}}
 */
export function couponTypedData(coupon, chainId, escrow) {
  return {
    domain: couponDomain(chainId, escrow),
    types: COUPON_TYPES,
    primaryType: "Coupon", // i18n-ignore: the EIP-712 type's name
    message: couponMessage(coupon),
  };
}

/**
 * A 65-byte signature (r, s, v) in the compact form the escrow takes (EIP-2098): r, and s with
 * v's parity in its top bit.
 * @param {`0x${string}`} signature
 * @returns {{r: `0x${string}`, vs: `0x${string}`}}
 * @throws {CouponError} `coupon.fault.signatureShape`: not 65 bytes with v 27 or 28 (or 0 or 1).
 */
export function compactSignature(signature) {
  let bytes;
  try {
    bytes = hexToBytes(signature);
  } catch {
    bytes = new Uint8Array();
  }
  if (bytes.length !== 65 || ![0, 1, 27, 28].includes(bytes[64])) {
    throw new CouponError("coupon.fault.signatureShape");
  }
  const parity = BigInt(bytes[64] % 27);
  const vs = BigInt(bytesToHex(bytes.subarray(32, 64))) | (parity << 255n);
  return { r: bytesToHex(bytes.subarray(0, 32)), vs: numberToHex(vs, { size: 32 }) };
}

/**
 * The coupon carrying a wallet's 65-byte signature, in compact form.
 * @param {Coupon} coupon
 * @param {`0x${string}`} signature
 * @returns {Coupon}
 */
export function withSignature(coupon, signature) {
  return makeCoupon({ ...makeCoupon(coupon), ...compactSignature(signature) });
}

/**
 * Who signed the coupon for this escrow on this chain, or null when it carries no valid
 * signature (where `ecrecover` gives the zero address).
 * @param {Coupon} coupon
 * @param {number | bigint} chainId
 * @param {string} escrow
 * @returns {Promise<`0x${string}` | null>}
 */
export async function couponSigner(coupon, chainId, escrow) {
  const c = makeCoupon(coupon);
  const vs = BigInt(c.vs);
  try {
    const signature = serializeSignature({
      r: c.r,
      s: numberToHex(vs & LOW_255, { size: 32 }),
      yParity: Number(vs >> 255n),
    });
    return getAddress(await recoverTypedDataAddress({ ...couponTypedData(c, chainId, escrow), signature }));
  } catch {
    return null;
  }
}

/**
 * The (unit price, reseller price) a coupon leaves, after any tier, as the escrow's `buy`
 * computes them: its percentage off both (`p - p * bps / 10000`, integer division), then its
 * amount off both; `resellerPrice` is null outside a shop (contracts/order_rules.py's
 * `coupon_prices`).
 * @param {bigint} unitPrice The unit price after any tier (the listing's or the shop's).
 * @param {bigint | null} resellerPrice The reseller price after any tier in a shop, else null.
 * @param {number} discountBps
 * @param {bigint} amountOff
 * @returns {{unit: bigint, resale: bigint | null}}
 * @throws {CouponError} `coupon.fault.tooLarge` (params `amountOff`, `base`): the amount off is
 *   not below the price it comes out of, the reseller price in a shop, else the unit price
 *   (`EscrowCouponTooLarge`).
 */
export function couponPrice(unitPrice, resellerPrice, discountBps, amountOff) {
  const bps = BigInt(discountBps);
  const off = BigInt(amountOff);
  const price = BigInt(unitPrice);
  const unit = price - (price * bps) / BigInt(BPS);
  const resale =
    resellerPrice === null || resellerPrice === undefined
      ? null
      : BigInt(resellerPrice) - (BigInt(resellerPrice) * bps) / BigInt(BPS);
  const base = resale === null ? unit : resale;
  if (off && off >= base) throw new CouponError("coupon.fault.tooLarge", { amountOff: off, base });
  return { unit: unit - off, resale: resale === null ? null : resale - off };
}

/**
 * Why `buyWithCoupon` would refuse this coupon for `buyer` on this listing at `now`, given its
 * number's use count (the escrow's checks but the signature, in its order), as a catalog message
 * id, or null: `contracts.coupons.fault`.
 * @param {Coupon} coupon
 * @param {{listingId: bigint | number, listingSku: string, buyer: string, now: number, used: number}} at
 * @returns {string | null} `coupon.fault.expired`, `.foreign`, `.notYours`, `.badBps`,
 *   `.revoked` or `.usedUp`.
 */
export function couponFault(coupon, { listingId, listingSku, buyer, now, used }) {
  const c = makeCoupon(coupon);
  if (Number(now) > c.expiry) return "coupon.fault.expired";
  const sku = numberToHex(BigInt(listingSku), { size: 32 });
  if (c.listingId !== BigInt(listingId) && (c.listingId !== 0n || c.sku !== sku)) return "coupon.fault.foreign";
  if (BigInt(c.buyer) !== 0n && c.buyer.toLowerCase() !== String(buyer).toLowerCase()) return "coupon.fault.notYours";
  if (c.discountBps >= BPS) return "coupon.fault.badBps";
  if (Number(used) === REVOKED) return "coupon.fault.revoked";
  if (c.maxUses && Number(used) >= c.maxUses) return "coupon.fault.usedUp";
  return null;
}

/**
 * The coupon as the escrow's `Coupon` argument, with its compact signature: the last three
 * arguments of `buyWithCoupon`.
 * @param {Coupon} coupon
 * @returns {[object, `0x${string}`, `0x${string}`]}
 */
export function couponArgs(coupon) {
  const c = makeCoupon(coupon);
  return [couponMessage(c), c.r, c.vs];
}
