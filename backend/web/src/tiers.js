// Volume tiers (批发价, issue 15): a listing's quantity breaks over its unit price, as the escrow
// applies them in `buy` (the largest break the quantity reaches takes its discount off the unit
// price paid, a shop's price included), the table a buyer reads, and the supplier's tiers checked
// by the escrow's own rules before they are sent.
import { fmtAmount, read, userError } from "./chain.js";
import { locale, t } from "./i18n.js";
import { decodeTiers } from "./storage.js";
import { h } from "./ui.js";

/** The escrow's limits: at most 3 tiers, breaks from 2 codes, discounts below 10000 bps. */
export const MAX_TIERS = 3;
const MAX_BREAK = 0xffffffff;
const BPS = 10_000n;

/**
 * Tiers in one shape, smallest break first, whatever their source: the API's
 * `{min_quantity, discount_bps}` or the storage reader's `{minQuantity, discountBps}`.
 * @param {object[] | null | undefined} tiers
 * @returns {{minQuantity: number, discountBps: number}[]}
 */
export function normalizeTiers(tiers) {
  return (tiers || [])
    .map((x) => ({
      minQuantity: Number(x.minQuantity ?? x.min_quantity),
      discountBps: Number(x.discountBps ?? x.discount_bps),
    }))
    .filter((x) => x.minQuantity > 0)
    .sort((a, b) => a.minQuantity - b.minQuantity);
}

/**
 * A unit price less a discount in basis points, rounded as the escrow rounds it:
 * `p - p * bps / 10000`, integer division.
 * @param {bigint} unitPrice
 * @param {number} discountBps
 * @returns {bigint}
 */
export function discounted(unitPrice, discountBps) {
  const p = BigInt(unitPrice);
  return p - (p * BigInt(discountBps)) / BPS;
}

/**
 * The tier a quantity reaches (the largest break at or below it), or null.
 * @param {object[]} tiers Either shape (see `normalizeTiers`).
 * @param {number} quantity
 * @returns {{minQuantity: number, discountBps: number} | null}
 */
export function tierFor(tiers, quantity) {
  return (
    normalizeTiers(tiers)
      .filter((x) => Number(quantity) >= x.minQuantity)
      .at(-1) ?? null
  );
}

/**
 * The unit price the escrow charges for `quantity` codes: `unitPrice` (the listing's or a
 * shop's) less the discount of the largest break the quantity reaches.
 * @param {bigint} unitPrice
 * @param {object[]} tiers Either shape (see `normalizeTiers`).
 * @param {number} quantity
 * @returns {bigint}
 */
export function tierUnitPrice(unitPrice, tiers, quantity) {
  const tier = tierFor(tiers, quantity);
  return tier ? discounted(unitPrice, tier.discountBps) : BigInt(unitPrice);
}

/**
 * A listing's tiers: the API's field when the listing carries it, else the escrow's storage.
 * `fromChain` reads the chain whatever the listing says (a page about to charge them).
 * @param {{listing_id: number|string, tiers?: object[]}} listing
 * @returns {Promise<{minQuantity: number, discountBps: number}[]>}
 */
export async function listingTiers(listing, { fromChain = false } = {}) {
  if (!fromChain && Array.isArray(listing.tiers)) return normalizeTiers(listing.tiers);
  return decodeTiers(await read("tiers", [BigInt(listing.listing_id)]));
}

/**
 * A discount in basis points as a percentage in the reader's language ("5%", "2.5%").
 * @param {number} discountBps
 * @returns {string}
 */
export function percentOff(discountBps) {
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 2 }).format(
    Number(discountBps) / 10_000,
  );
}

/**
 * The price table of a listing with tiers ("1–2: 10 USDT · 3–9: 9.5 USDT (−5%) · 10+: …"), the
 * row `quantity` falls in marked; null without tiers. Its items wrap on a narrow screen.
 * @param {bigint} unitPrice The undiscounted unit price (the listing's or a shop's).
 * @param {object[]} tiers Either shape (see `normalizeTiers`).
 * @param {string} token The payment token (for the amounts).
 * @param {{quantity?: number, testId?: string}} [options]
 * @returns {HTMLElement | null}
 */
export function tierTable(unitPrice, tiers, token, { quantity = null, testId = "tiers" } = {}) {
  const list = normalizeTiers(tiers);
  if (!list.length) return null;
  const steps = [{ minQuantity: 1, discountBps: 0 }, ...list];
  const items = steps.map((step, i) => {
    const next = steps[i + 1];
    const range = !next
      ? t("tiers.rangeFrom", { from: step.minQuantity })
      : next.minQuantity - 1 === step.minQuantity
        ? t("tiers.rangeOne", { from: step.minQuantity })
        : t("tiers.range", { from: step.minQuantity, to: next.minQuantity - 1 });
    const price = fmtAmount(discounted(unitPrice, step.discountBps), token);
    const on = quantity !== null && quantity >= step.minQuantity && (!next || quantity < next.minQuantity);
    return h(
      "li",
      {
        class: on ? "pill brand" : "pill",
        "aria-current": on ? "true" : null,
        // A long amount wraps inside its pill rather than widening a phone's page.
        style: { whiteSpace: "normal", overflowWrap: "anywhere", borderRadius: "0.6rem" },
        "data-test": "tier",
        "data-min": step.minQuantity,
      },
      step.discountBps
        ? t("tiers.itemOff", { range, price, percent: percentOff(step.discountBps) })
        : t("tiers.item", { range, price }),
    );
  });
  return h(
    "ul",
    {
      class: "row small",
      "aria-label": t("tiers.label"),
      style: { listStyle: "none", padding: "0", margin: "0.35rem 0 0", gap: "0.3rem" },
      "data-test": testId,
    },
    items,
  );
}

/**
 * A discount as a supplier types it ("5", "2.5", at most two decimals) in basis points, or null
 * when it is not a percentage above 0 and below 100.
 * @param {string} text
 * @returns {number | null}
 */
export function percentBps(text) {
  const m = /^(\d{1,2})(?:\.(\d{0,2}))?$/.exec(String(text ?? "").trim());
  const bps = m ? Number(m[1]) * 100 + Number((m[2] ?? "").padEnd(2, "0")) : 0;
  return bps > 0 && bps < 10_000 ? bps : null;
}

/** A discount in basis points as typed back into a field: "5", "2.5" (no grouping, no sign). */
export const percentText = (discountBps) => String(Number(discountBps) / 100);

/**
 * The tiers a supplier typed, checked by the escrow's rules (`setTiers`): rows left empty are
 * skipped; each filled row needs a whole quantity of at least 2 and a percentage above 0 and
 * below 100 with at most two decimals, both larger than the row before. Throws a user error
 * naming the row at fault.
 * @param {{min: string, off: string}[]} rows
 * @returns {{minQuantities: number[], discountsBps: number[]}}
 */
export function checkTiers(rows) {
  const minQuantities = [];
  const discountsBps = [];
  rows.forEach(({ min, off }, i) => {
    const q = String(min ?? "").trim();
    const p = String(off ?? "").trim();
    if (!q && !p) return;
    const row = i + 1;
    if (!q || !p) throw userError(t("tiers.check.half", { row }));
    if (!/^\d+$/.test(q) || Number(q) < 2 || Number(q) > MAX_BREAK) throw userError(t("tiers.check.min", { row }));
    const bps = percentBps(p);
    if (bps === null) throw userError(t("tiers.check.off", { row }));
    if (minQuantities.length && Number(q) <= minQuantities.at(-1)) throw userError(t("tiers.check.minOrder", { row }));
    if (discountsBps.length && bps <= discountsBps.at(-1)) throw userError(t("tiers.check.offOrder", { row }));
    minQuantities.push(Number(q));
    discountsBps.push(bps);
  });
  if (minQuantities.length > MAX_TIERS) throw userError(t("tiers.check.tooMany", { count: MAX_TIERS }));
  if (!minQuantities.length) throw userError(t("tiers.check.empty"));
  return { minQuantities, discountsBps };
}
