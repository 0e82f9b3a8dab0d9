// Coupons (优惠券) as the pages show and check them: a coupon's terms in the reader's words, its
// share link, and the escrow's checks run against the chain before anything is sent (expiry,
// listing, buyer, use count, and the signer, recovered from the EIP-712 signature in the page).
// coupons.js holds the rules; this module puts them in words and reads the chain.
import { ZERO_ADDRESS, chainNow, couponUses, fmtAmount, net, read, userError } from "./chain.js";
import { CouponError, REVOKED, couponFault, couponSigner, parseCoupon } from "./coupons.js";
import { when } from "./fmt.js";
import { t } from "./i18n.js";
import { percentOff } from "./tiers.js";

/**
 * A coupon's discount in the reader's words: "10% off and 0.5 USDT off each code".
 * @param {import("./coupons.js").Coupon} coupon
 * @param {string} token The listing's payment token (call `tokenInfo` first for an ERC-20).
 * @returns {string}
 */
export function couponTerms(coupon, token) {
  const parts = [];
  if (coupon.discountBps) parts.push(t("coupon.terms.percent", { percent: percentOff(coupon.discountBps) }));
  if (coupon.amountOff) parts.push(t("coupon.terms.amount", { amount: fmtAmount(coupon.amountOff, token) }));
  return parts.join(t("coupon.terms.join"));
}

/**
 * A coupon's use count as a person reads it: "1 / 3", "revoked", or "no limit" (a coupon without
 * a use limit is never counted).
 * @param {number} used The count read from the chain.
 * @param {number} maxUses The coupon's limit (0: none).
 * @returns {string}
 */
export function usesText(used, maxUses) {
  if (used === REVOKED) return t("coupon.uses.revoked");
  if (!maxUses) return t("coupon.uses.unlimited");
  return t("coupon.uses.count", { used: String(used), max: String(maxUses) });
}

/**
 * The link that carries a coupon: the listing's buy page, or a reseller's shop (by address or
 * name), where the buy links pass it on.
 * @param {{text: string, listingId: bigint | number, shop?: string | null}} where
 * @returns {string}
 */
export function couponLink({ text, listingId, shop }) {
  const base = `${window.location.origin}${window.location.pathname}`;
  return shop ? `${base}#/s/${shop}?coupon=${text}` : `${base}#/buy/${listingId}?coupon=${text}`;
}

/**
 * The user error for a refused coupon: the catalog's sentence for `key`, its placeholders filled
 * from the coupon and what the check found.
 * @param {string} key A `coupon.fault.*` message id.
 * @param {import("./coupons.js").Coupon | null} coupon
 * @param {{listingId?: bigint | number, used?: number, token?: string, base?: bigint}} [found]
 * @returns {Error}
 */
export function couponRefusal(key, coupon, found = {}) {
  const token = found.token ?? ZERO_ADDRESS;
  const text = t(key, {
    expiry: coupon ? when(coupon.expiry) : "",
    listing: String(found.listingId ?? ""),
    buyer: coupon?.buyer ?? "",
    used: String(found.used ?? 0),
    max: String(coupon?.maxUses ?? 0),
    amount: coupon ? fmtAmount(coupon.amountOff, token) : "",
    price: fmtAmount(found.base ?? 0n, token),
  });
  return userError(text, null, { coupon: key });
}

/**
 * Read a coupon's text, or throw the user error saying it is not one.
 * @param {string} text
 * @returns {import("./coupons.js").Coupon}
 */
export function readCoupon(text) {
  try {
    return parseCoupon(text);
  } catch (err) {
    if (err instanceof CouponError) throw couponRefusal(err.key, null);
    throw err;
  }
}

/**
 * Check a coupon against the chain as `buyWithCoupon` would for `buyer` on this listing now:
 * the listing's supplier and product, the coupon number's use count and the latest block's time
 * are read from the chain, and the signer is recovered from the signature. Returns the user
 * error of the first fault, or null when the escrow would take it (its price is checked when
 * the quantity is known: `couponPrice`).
 * @param {import("./coupons.js").Coupon} coupon
 * @param {{listingId: bigint | number, buyer: string | null, token: string}} at `buyer` null
 *   while no wallet is connected (a coupon bound to a buyer is then checked at payment).
 * @returns {Promise<Error | null>}
 */
export async function couponVerdict(coupon, { listingId, buyer, token }) {
  const listing = await read("getListing", [BigInt(listingId)]);
  const [[used], now, signer] = await Promise.all([
    couponUses(listing.supplier, [coupon.id]),
    chainNow(),
    couponSigner(coupon, net.chainId, net.escrow),
  ]);
  const key = couponFault(coupon, {
    listingId,
    listingSku: listing.sku,
    buyer: buyer ?? coupon.buyer,
    now,
    used,
  });
  if (key) return couponRefusal(key, coupon, { listingId, used, token });
  if (signer !== listing.supplier) return couponRefusal("coupon.fault.signature", coupon, { listingId, token });
  return null;
}
