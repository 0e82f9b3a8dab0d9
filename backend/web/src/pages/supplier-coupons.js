// The supplier's coupons (优惠券, issue 15) on its dashboard: issue one for a listing (a
// percentage and/or an amount off each code, a use limit or none, the last day it may be used,
// an optional buyer, a number chosen as the next unused one or typed), checked by the escrow's
// rules first, then signed by the supplier's wallet with EIP-712 (eth_signTypedData_v4: no
// transaction, no gas) and shown as a share link, the listing's buy link or a reseller's shop
// link; and revoke a coupon number (revokeCoupon, one transaction), its use count read from the
// chain. The coupons issued here are remembered in this browser (their text is what the link
// carries: nothing secret).
import { getAddress, isAddress, toEventSelector } from "viem";
import { ApiError, get } from "../api.js";
import {
  ESCROW_ABI,
  MAX_UNIT_PRICE,
  chainNow,
  couponUses,
  couponWords,
  decodeLogs,
  fmtAmount,
  net,
  parseAmount,
  read,
  tokenUnits,
  userError,
} from "../chain.js";
import { couponLink, couponTerms, usesText } from "../coupon-view.js";
import {
  CouponError,
  REVOKED,
  couponPrice,
  couponSigner,
  couponText,
  couponTypedData,
  makeCoupon,
  parseCoupon,
  withSignature,
} from "../coupons.js";
import { txLink, when } from "../fmt.js";
import { t } from "../i18n.js";
import { percentBps } from "../tiers.js";
import { askFirst, busy, field, h, message, messageSlot, pill, replace } from "../ui.js";
import { sendEscrow, signTypedData, wallet } from "../wallet.js";
import { copyButton } from "./orders.js";

/** The largest coupon number (uint64) and use limit (below the revoked mark). */
const MAX_ID = (1n << 64n) - 1n;
const MAX_USES = REVOKED - 1;
/** What a shop name may be (backend/api/routes/shop_names.py's NAME_PATTERN). */
const SHOP_NAME = /^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$/;
/** Days a new coupon runs unless the supplier picks another day. */
const DEFAULT_DAYS = 30;
const REVOKED_TOPIC = toEventSelector(ESCROW_ABI.find((x) => x.type === "event" && x.name === "CouponRevoked"));

/** Where this browser keeps the coupons a supplier issued here, per chain and escrow. */
const storeKey = (supplier) => `kameng.coupons.${net.chainId}.${net.escrow.toLowerCase()}.${supplier.toLowerCase()}`;

/** The coupons `supplier` issued in this browser, newest first: `{text, link}` each. */
function issuedHere(supplier) {
  try {
    const list = JSON.parse(localStorage.getItem(storeKey(supplier)) || "[]");
    return Array.isArray(list) ? list.filter((x) => typeof x?.text === "string") : [];
  } catch {
    return [];
  }
}

function remember(supplier, entry) {
  const list = [entry, ...issuedHere(supplier)];
  try {
    localStorage.setItem(storeKey(supplier), JSON.stringify(list));
  } catch {
    // private mode: the link is on screen, the list lasts for this page only
  }
}

/** The numbers of the coupons issued here (those whose text still reads). */
function issuedIds(supplier) {
  return issuedHere(supplier).flatMap((x) => {
    try {
      return [parseCoupon(x.text).id];
    } catch {
      return [];
    }
  });
}

/**
 * The next coupon number nobody used: above every number issued in this browser, every number
 * the chain counts a use of (the first counter words, eight numbers a word, read while they are
 * not empty) and every number the supplier revoked; 1 at the least.
 * @param {string} supplier
 * @returns {Promise<bigint>}
 */
export async function nextCouponId(supplier) {
  let top = 0n;
  const raise = (id) => {
    if (id > top) top = id;
  };
  issuedIds(supplier).forEach(raise);
  const BATCH = 8;
  for (let from = 0; from < 8 * BATCH; from += BATCH) {
    const words = await couponWords(supplier, from, BATCH);
    words.forEach((word, i) => {
      for (let k = 0n; k < 8n; k++) {
        if ((word >> (32n * k)) & 0xffffffffn) raise(BigInt(from + i) * 8n + k);
      }
    });
    if (words.at(-1) === 0n) break;
  }
  const logs = await net.client.request({
    method: "eth_getLogs",
    params: [
      {
        address: net.escrow,
        fromBlock: "0x0",
        toBlock: "latest",
        topics: [REVOKED_TOPIC, `0x${supplier.slice(2).toLowerCase().padStart(64, "0")}`],
      },
    ],
  });
  decodeLogs(logs).forEach((ev) => raise(BigInt(ev.args.id)));
  return top + 1n;
}

/** A date input's day ("2030-01-31") as the last second of that day in the reader's time zone. */
function endOfDay(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(value ?? ""));
  if (!m) return null;
  const date = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59);
  return Number.isNaN(date.getTime()) ? null : Math.floor(date.getTime() / 1000);
}

/** A day as a date input takes it, in the reader's time zone. */
function dayValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** The reseller a shop field names (an address, or a shop's name the API knows), or null for none. */
async function shopOf(text) {
  const s = String(text ?? "").trim();
  if (!s) return null;
  if (isAddress(s, { strict: false })) return { reseller: getAddress(s), shown: getAddress(s) };
  if (!SHOP_NAME.test(s)) throw userError(t("coupon.check.shop"));
  try {
    const { reseller } = await get(`/shop-names/${s}`);
    return { reseller: getAddress(reseller), shown: s };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) throw userError(t("coupon.check.shopUnknown", { name: s }));
    throw err;
  }
}

/**
 * The revoke control of one coupon number: a button, then an in-page "are you sure" saying that
 * every coupon of the number ends for good; yes sends revokeCoupon. `said(text, tx)` reports the
 * outcome; failures go to `slot`. `asking` holds the numbers whose question is open, so that a
 * redrawn list keeps it open.
 */
function revokeControl(id, { slot, said, asking }) {
  const { button, ask } = askFirst({
    key: String(id),
    asking,
    slot,
    test: "coupon-revoke",
    prefix: "coupon-revoke",
    buttonType: "button",
    label: t("coupon.revoke.button"),
    question: t("coupon.revoke.ask", { id: String(id) }),
    explain: t("coupon.revoke.explain"),
    yesLabel: t("coupon.revoke.yes"),
    noLabel: t("coupon.revoke.no"),
    act: () => sendEscrow("revokeCoupon", [BigInt(id)]),
    done: (r) => said(t("coupon.revoke.done", { id: String(id) }), txLink(r.hash, Number(r.receipt.blockNumber))),
  });
  return h("div", null, button, ask);
}

/**
 * The coupons card of the supplier's dashboard. `update(data)` offers the dashboard's listings
 * (`loadDashboard`'s data) and reads the use counts again; `symbolOf(token)` names a token.
 * @param {{symbolOf: (token: string) => string}} helpers
 * @returns {HTMLElement & {update: (data: object) => void}}
 */
export function couponCard({ symbolOf }) {
  let listings = [];
  const listing = h("select", { "data-test": "coupon-listing" });
  const percent = h("input", {
    type: "text",
    inputmode: "decimal",
    autocomplete: "off",
    "data-test": "coupon-percent",
  });
  const amount = h("input", { type: "text", inputmode: "decimal", autocomplete: "off", "data-test": "coupon-amount" });
  const amountLabel = h("span", null, t("coupon.issue.amount", { symbol: "" }));
  const uses = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", "data-test": "coupon-uses" });
  const later = new Date(Date.now() + DEFAULT_DAYS * 86_400_000);
  const expiry = h("input", { type: "date", value: dayValue(later), "data-test": "coupon-expiry" });
  const buyer = h("input", {
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "0x…",
    "data-test": "coupon-buyer",
  });
  const id = h("input", { type: "text", inputmode: "numeric", autocomplete: "off", "data-test": "coupon-id" });
  const idHint = h("span", { "data-test": "coupon-next-id" }, t("coupon.issue.idHint", { next: "…" }));
  const shop = h("input", {
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "0x… / xiaoming-games",
    "data-test": "coupon-shop",
  });
  const slot = messageSlot({ "data-test": "coupon-issue-message" });
  const result = h("div", { "data-test": "coupon-result" });
  const issue = h("button", { class: "btn", type: "button", "data-test": "coupon-issue" }, t("coupon.issue.button"));
  const outcome = messageSlot({ "data-test": "coupon-outcome" });
  const issuedBox = h("div", { "data-test": "coupons-issued" });
  const asking = new Set(); // coupon numbers whose "revoke?" question is open
  const chosen = () => listings.find((l) => String(l.listing_id) === listing.value) ?? null;
  const showSymbol = () => {
    const l = chosen();
    replace(amountLabel, t("coupon.issue.amount", { symbol: l ? symbolOf(l.token) : "" }));
  };
  listing.addEventListener("change", showSymbol);

  let nextSeq = 0;
  const showNext = async () => {
    const seq = ++nextSeq;
    try {
      const next = await nextCouponId(wallet.address);
      if (seq === nextSeq) replace(idHint, t("coupon.issue.idHint", { next: String(next) }));
    } catch (err) {
      console.error(err);
    }
  };

  /** The coupon the form describes (unsigned), checked as the escrow would take it, and its shop. */
  const terms = async () => {
    const l = chosen();
    if (!l) throw userError(t("coupon.check.listing"));
    const lid = BigInt(l.listing_id);
    const p = percent.value.trim();
    const bps = p ? percentBps(p) : 0;
    if (bps === null) throw userError(t("coupon.check.percent"));
    const { symbol, decimals } = await tokenUnits(l.token);
    const a = amount.value.trim();
    const parsed = a ? parseAmount(a, decimals) : { value: 0n };
    if (parsed.error || parsed.value >= MAX_UNIT_PRICE)
      throw userError(t("coupon.check.amount", { symbol, count: decimals }));
    const off = parsed.value;
    if (!bps && !off) throw userError(t("coupon.check.neither"));
    const u = uses.value.trim();
    if (u && (!/^\d+$/.test(u) || Number(u) < 1 || Number(u) > MAX_USES))
      throw userError(t("coupon.check.uses", { max: MAX_USES }));
    const until = endOfDay(expiry.value);
    if (until === null) throw userError(t("coupon.check.expiry"));
    const b = buyer.value.trim();
    if (b && !isAddress(b, { strict: false })) throw userError(t("coupon.check.buyer"));
    const n = id.value.trim();
    if (n && (!/^\d+$/.test(n) || BigInt(n) > MAX_ID)) throw userError(t("coupon.check.id"));
    const where = await shopOf(shop.value);
    const [now, resale, shopPrice] = await Promise.all([
      chainNow(),
      where ? read("resellerPrice", [lid]) : null,
      where ? read("shopPrice", [where.reseller, lid]) : null,
    ]);
    if (until <= now) throw userError(t("coupon.check.expiryPast", { now: when(now) }));
    if (where && (!resale || !shopPrice || shopPrice < resale))
      throw userError(t("coupon.check.shopMissing", { listing: String(lid) }));
    // Its amount off must be below the price it comes out of: the reseller price in a shop, else
    // the listing's price, each after the percentage (the buy page checks it again with tiers).
    try {
      couponPrice(where ? shopPrice : BigInt(l.unit_price), where ? resale : null, bps, off);
    } catch (err) {
      if (!(err instanceof CouponError)) throw err;
      throw userError(
        t("coupon.check.tooLarge", { amount: fmtAmount(off, l.token), price: fmtAmount(err.params.base, l.token) }),
      );
    }
    const number = n ? BigInt(n) : await nextCouponId(wallet.address);
    const [used] = await couponUses(wallet.address, [number]);
    if (used === REVOKED) throw userError(t("coupon.check.idRevoked", { id: String(number) }));
    if (used > 0) throw userError(t("coupon.check.idUsed", { id: String(number), count: used }));
    if (n && issuedIds(wallet.address).includes(number))
      throw userError(t("coupon.check.idIssued", { id: String(number) }));
    const coupon = makeCoupon({
      listingId: lid,
      sku: 0n,
      buyer: b || undefined,
      discountBps: bps,
      amountOff: off,
      maxUses: u ? Number(u) : 0,
      expiry: until,
      id: number,
    });
    return { coupon, l, where };
  };

  issue.addEventListener("click", () =>
    busy(issue, slot, async () => {
      result.replaceChildren();
      const { coupon, l, where } = await terms();
      const signature = await signTypedData(couponTypedData(coupon, net.chainId, net.escrow));
      let signed;
      try {
        signed = withSignature(coupon, signature);
      } catch (err) {
        if (err instanceof CouponError) throw userError(t(err.key));
        throw err;
      }
      // The escrow takes it only if its signer is the listing's supplier: this wallet.
      const signer = await couponSigner(signed, net.chainId, net.escrow);
      if (signer !== wallet.address)
        throw userError(t("coupon.check.wrongSigner", { address: signer ?? "—", supplier: wallet.address }));
      const text = couponText(signed);
      const link = couponLink({ text, listingId: l.listing_id, shop: where?.shown });
      remember(wallet.address, { text, link });
      id.value = "";
      replace(
        result,
        message(
          "ok",
          t("coupon.issue.done", {
            id: String(signed.id),
            listing: String(l.listing_id),
            terms: couponTerms(signed, l.token),
            expiry: when(signed.expiry),
          }),
        ),
        h(
          "div",
          { class: "row" },
          h("a", { href: link, class: "mono", style: { overflowWrap: "anywhere" }, "data-test": "coupon-link" }, link),
          copyButton(link, { testId: "coupon-link-copy", manual: "shop.copyManually" }),
        ),
      );
      await drawIssued();
      showNext();
    }),
  );

  /** Say what a revocation did, after the list is read again. */
  const said = async (text, tx) => {
    try {
      await drawIssued();
    } finally {
      outcome.show("ok", text, tx);
      showNext();
    }
  };

  let drawSeq = 0;
  let drawn = null; // what the list shows, to redraw it only when that changes
  /**
   * The coupons issued here, each with its use count read from the chain and its revoke control
   * (redrawn only when something it shows changed).
   */
  const drawIssued = async () => {
    const seq = ++drawSeq;
    const entries = issuedHere(wallet.address).flatMap((x) => {
      try {
        return [{ ...x, coupon: parseCoupon(x.text) }];
      } catch {
        return [];
      }
    });
    if (!entries.length) {
      drawn = null;
      replace(issuedBox, h("p", { class: "muted", "data-test": "coupons-none" }, t("coupon.list.none")));
      return;
    }
    const [counts, now] = await Promise.all([
      couponUses(
        wallet.address,
        entries.map((x) => x.coupon.id),
      ),
      chainNow(),
    ]);
    if (seq !== drawSeq) return;
    const byListing = new Map(listings.map((l) => [String(l.listing_id), l]));
    const shown = JSON.stringify([
      entries.map((x) => x.text),
      counts,
      entries.map((x) => now > x.coupon.expiry),
      entries.map((x) => byListing.get(String(x.coupon.listingId))?.name ?? null),
    ]);
    if (shown === drawn) return;
    drawn = shown;
    const rows = entries.map((x, i) => {
      const c = x.coupon;
      const l = byListing.get(String(c.listingId));
      const token = l?.token;
      const rowSlot = messageSlot({ "data-test": "coupon-row-message" });
      const used = counts[i];
      const state =
        used === REVOKED
          ? pill(t("coupon.uses.revoked"), "bad")
          : now > c.expiry
            ? pill(t("coupon.state.expired"), "")
            : c.maxUses && used >= c.maxUses
              ? pill(t("coupon.state.usedUp"), "warn")
              : pill(t("coupon.state.live"), "ok");
      return h(
        "tr",
        { "data-test": "coupon-row", "data-id": String(c.id) },
        h("td", { "data-label": t("coupon.col.id") }, String(c.id)),
        h("td", { "data-label": t("coupon.col.listing") }, `#${c.listingId}`, l ? ` ${l.name}` : ""),
        h("td", { "data-label": t("coupon.col.terms") }, token ? couponTerms(c, token) : "—"),
        h(
          "td",
          { "data-label": t("coupon.col.uses"), class: "num" },
          h("span", { "data-test": "coupon-uses" }, usesText(used, c.maxUses)),
          " ",
          state,
        ),
        h("td", { "data-label": t("coupon.col.expiry") }, when(c.expiry)),
        h(
          "td",
          { "data-label": "" },
          h("div", { class: "row" }, copyButton(x.link, { testId: "coupon-row-copy", manual: "shop.copyManually" })),
          used === REVOKED ? null : revokeControl(c.id, { slot: rowSlot, said, asking }),
          rowSlot,
        ),
      );
    });
    replace(
      issuedBox,
      h(
        "div",
        { class: "table-wrap", tabindex: "0" },
        h(
          "table",
          { class: "stack-sm small", "data-test": "coupons-table" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              ["id", "listing", "terms", "uses", "expiry"].map((c) => h("th", null, t(`coupon.col.${c}`))),
              h("th", null, h("span", { class: "sr-only" }, t("coupon.col.actions"))),
            ),
          ),
          h("tbody", null, rows),
        ),
      ),
    );
  };

  // Revoke a number issued elsewhere: its use count first, then the same "are you sure".
  const otherId = h("input", {
    type: "text",
    inputmode: "numeric",
    autocomplete: "off",
    "data-test": "coupon-revoke-id",
  });
  const otherSlot = messageSlot({ "data-test": "coupon-revoke-message" });
  const otherBox = h("div");
  const look = h(
    "button",
    { class: "btn small quiet", type: "button", "data-test": "coupon-revoke-look" },
    t("coupon.revoke.look"),
  );
  look.addEventListener("click", () =>
    busy(look, otherSlot, async () => {
      otherBox.replaceChildren();
      const n = otherId.value.trim();
      if (!/^\d+$/.test(n) || BigInt(n) > MAX_ID) throw userError(t("coupon.check.id"));
      const [used] = await couponUses(wallet.address, [BigInt(n)]);
      const uses = used === REVOKED ? t("coupon.uses.revoked") : t("coupon.uses.times", { count: used });
      replace(
        otherBox,
        h("p", { class: "small", "data-test": "coupon-revoke-uses" }, t("coupon.revoke.usesOf", { id: n, uses })),
        used === REVOKED ? null : revokeControl(BigInt(n), { slot: otherSlot, said, asking: new Set() }),
      );
    }),
  );

  const card = h(
    "div",
    { class: "card", id: "coupons", "data-test": "coupons-card" },
    h("h2", null, t("coupon.issue.title")),
    h("p", { class: "muted" }, t("coupon.issue.intro")),
    field(t("coupon.issue.listing"), listing),
    h(
      "div",
      { class: "cols" },
      field(t("coupon.issue.percent"), percent, t("coupon.issue.percentHint")),
      field(amountLabel, amount, t("coupon.issue.amountHint")),
    ),
    h(
      "div",
      { class: "cols" },
      field(t("coupon.issue.uses"), uses, t("coupon.issue.usesHint")),
      field(t("coupon.issue.expiry"), expiry, t("coupon.issue.expiryHint")),
    ),
    h(
      "div",
      { class: "cols" },
      field(t("coupon.issue.buyer"), buyer, t("coupon.issue.buyerHint")),
      field(t("coupon.issue.id"), id, idHint),
    ),
    field(t("coupon.issue.shop"), shop, t("coupon.issue.shopHint")),
    slot,
    issue,
    result,
    h("h3", null, t("coupon.list.title")),
    outcome,
    issuedBox,
    h("h3", null, t("coupon.revoke.other")),
    field(t("coupon.revoke.number"), otherId, t("coupon.revoke.otherHint")),
    h("div", { class: "row" }, look),
    otherSlot,
    otherBox,
  );

  /** Offer the dashboard's open listings (keeping the one chosen) and read the use counts again. */
  card.update = (data) => {
    listings = data.listings;
    const was = listing.value;
    const open = listings.filter((l) => l.active);
    replace(
      listing,
      open.map((l) =>
        h(
          "option",
          { value: String(l.listing_id), selected: String(l.listing_id) === was },
          t("coupon.issue.listingOption", {
            id: String(l.listing_id),
            name: l.name,
            price: fmtAmount(l.unit_price, l.token),
          }),
        ),
      ),
    );
    showSymbol();
    drawIssued().catch((err) => outcome.error(err));
    showNext();
  };
  return card;
}
