// Resellers (分站): a reseller's shop as its buyers see it (#/s/<address>), and the reseller's own
// page (#/reseller) where it puts listings in its shop at its own prices, shares its link and
// withdraws its margin. Prices live on-chain (setShopPrice): the escrow charges the shop's price
// and fixes every party's part in the order, so this page only shows and sends them.
import { ensureSignedIn, get, put } from "../api.js";
import { amountText, fmtAmount, loadTokens, read, unitPriceOf, userError } from "../chain.js";
import { couponTerms } from "../coupon-view.js";
import { parseCoupon } from "../coupons.js";
import { addr, onChainBadge, orderLabel, product, short, txLink, when } from "../fmt.js";
import { t } from "../i18n.js";
import { gate } from "../session.js";
import { listingTiers, tierTable } from "../tiers.js";
import { busy, field, h, message, messageSlot, pill, replace } from "../ui.js";
import { sendEscrow, wallet } from "../wallet.js";
import { copyButton, statePill } from "./orders.js";

/** The shareable link of a reseller's shop: by its name when it has one, else by its address. */
export const shopLink = (shop) => `${window.location.origin}${window.location.pathname}#/s/${shop}`;

/** What a shop name may be (backend/api/routes/shop_names.py's NAME_PATTERN). */
const SHOP_NAME = /^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$/;

/** The name a reseller claimed for its shop, or null. */
async function nameOf(reseller) {
  const [named] = await get(`/shop-names?reseller=${reseller}`);
  return named ? named.name : null;
}

/**
 * Redraw the page (`onDone`), then say what the transaction did in `outcome`: the message
 * appears once the page it speaks of is the one on screen, even if the redraw failed.
 */
async function redrawThenSay(onDone, outcome, ...message) {
  try {
    await onDone();
  } finally {
    outcome.show(...message);
  }
}

/** A table whose rows stack into labelled lines on a phone (`stack-sm`, as the supplier's). */
function table(testId, columns, rows) {
  return h(
    "div",
    { class: "table-wrap", tabindex: "0" },
    h(
      "table",
      { class: "stack-sm", "data-test": testId },
      h("thead", null, h("tr", null, ...columns.map((c) => h("th", null, t(c))))),
      h("tbody", null, ...rows),
    ),
  );
}

/** Whether a coupon is good for a listing: named by it, or for its product (sku) when it names none. */
const couponFits = (coupon, item) =>
  coupon.listingId === BigInt(item.listing_id) ||
  (coupon.listingId === 0n && coupon.sku === String(item.sku).toLowerCase());

/**
 * One listing of a shop, as its buyers see it: the shop's price, less its volume tiers'
 * discounts. `coupon` ({text, coupon}) is the shop link's coupon when it is good for this
 * listing: the buy link carries it on, and the item says so.
 */
function shopItem(item, tiers, coupon = null) {
  const p = product(item);
  const soldOut = Number(item.stock) === 0;
  const open = item.buyable && !soldOut;
  return h(
    "div",
    { class: "card offer", "data-test": "shop-item", "data-listing": item.listing_id },
    h("h2", null, p.name),
    h(
      "div",
      { class: "spread" },
      h("span", { class: "price", "data-test": "shop-price" }, fmtAmount(item.shop_price, item.token)),
      soldOut ? pill(t("store.soldOut"), "bad") : item.buyable ? null : pill(t("shop.unavailable"), "warn"),
    ),
    tierTable(BigInt(item.shop_price), tiers, item.token, { testId: "shop-tiers" }),
    h(
      "dl",
      null,
      h("dt", null, t("store.offer.supplier")),
      h("dd", null, addr(item.supplier)),
      h("dt", null, t("store.offer.stock")),
      h("dd", { "data-test": "shop-stock" }, String(item.stock)),
    ),
    onChainBadge(item),
    coupon ? h("div", null, pill(t("shop.coupon.pill"), "brand", { "data-test": "shop-coupon" })) : null,
    h(
      "a",
      {
        class: "btn small",
        href: `#/buy/${item.listing_id}?ref=${item.reseller}${coupon ? `&coupon=${coupon.text}` : ""}`,
        "aria-disabled": open ? null : "true",
        "data-test": "shop-buy",
      },
      open ? t("store.buy") : t("store.view"),
    ),
  );
}

/** #/s/<name>[?coupon=<text>]: the shop a reseller named. */
export async function shopByName(ctx, name, couponText) {
  const { reseller } = await get(`/shop-names/${name}`);
  return shopPage(ctx, reseller, name, couponText);
}

/** #/s/<address>[?coupon=<text>]: a reseller's shop. */
export function shopByAddress(ctx, reseller, couponText) {
  return shopPage(ctx, reseller, undefined, couponText);
}

/**
 * The coupon a shop link carries, as its buyers read it: its terms (in the first listing it is
 * good for) or why it cannot be used here. The buy page checks it against the chain.
 */
function couponNote(coupon, items) {
  if (!coupon) return message("warn", t("shop.coupon.bad"));
  const fit = items.find((item) => couponFits(coupon, item));
  if (!fit) return message("warn", t("shop.coupon.none"));
  return message("info", t("shop.coupon.ok", { terms: couponTerms(coupon, fit.token), expiry: when(coupon.expiry) }));
}

/**
 * A reseller's shop; `couponText` is a coupon its link carries (the buy links of the listings
 * it is good for pass it on to the buy page).
 */
export async function shopPage(ctx, reseller, known, couponText) {
  const [items, name] = await Promise.all([get(`/shops/${reseller}`), known ?? nameOf(reseller)]);
  const [tiers] = await Promise.all([Promise.all(items.map((item) => listingTiers(item))), loadTokens(items)]);
  let coupon = null;
  if (couponText) {
    try {
      coupon = parseCoupon(decodeURIComponent(couponText));
    } catch {
      coupon = null;
    }
  }
  // The text as the buy links carry it on: exactly as the link had it (the route lets no & in).
  const carried = coupon ? { text: couponText, coupon } : null;
  return h(
    "section",
    { "data-test": "shop" },
    h(
      "h1",
      { "data-test": "shop-title" },
      name ? t("shop.titleNamed", { name, shop: short(reseller) }) : t("shop.title", { shop: short(reseller) }),
    ),
    h("p", { class: "muted" }, t("shop.intro")),
    couponText ? h("div", { "data-test": "shop-coupon-note" }, couponNote(coupon, items)) : null,
    items.length
      ? h(
          "div",
          { class: "grid" },
          ...items.map((item, i) =>
            shopItem(item, tiers[i], carried && couponFits(carried.coupon, item) ? carried : null),
          ),
        )
      : h("p", { class: "muted", "data-test": "shop-empty" }, t("shop.empty")),
  );
}

/** A listing open to resellers, with the reseller's price for it and the buttons that set it. */
function resellRow(l, outcome, onDone) {
  const inShop = l.shop_price > 0n;
  const slot = messageSlot({ "data-test": "resell-message" });
  const price = h("input", {
    type: "text",
    inputmode: "decimal",
    autocomplete: "off",
    value: amountText(inShop ? l.shop_price : l.unit_price, l.token),
    "aria-label": t("resell.price", { name: product(l).name }),
    "data-test": "resell-price",
  });
  const set = h(
    "button",
    { class: "btn small", "data-test": "resell-set" },
    inShop ? t("resell.update") : t("resell.add"),
  );
  const remove = inShop
    ? h("button", { class: "btn small quiet", "data-test": "resell-remove" }, t("resell.remove"))
    : null;
  set.addEventListener("click", () =>
    busy(set, slot, async () => {
      const unit = await unitPriceOf(price.value, l.token);
      const floor = BigInt(l.reseller_price);
      if (unit < floor)
        throw userError(t("resell.belowFloor", { price: fmtAmount(unit, l.token), floor: fmtAmount(floor, l.token) }));
      const r = await sendEscrow("setShopPrice", [BigInt(l.listing_id), unit]);
      await redrawThenSay(
        onDone,
        outcome,
        "ok",
        t("resell.done", {
          id: String(l.listing_id),
          price: fmtAmount(unit, l.token),
          margin: fmtAmount(unit - floor, l.token),
        }),
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
    }),
  );
  remove?.addEventListener("click", () =>
    busy(remove, slot, async () => {
      const r = await sendEscrow("setShopPrice", [BigInt(l.listing_id), 0n]);
      await redrawThenSay(
        onDone,
        outcome,
        "ok",
        t("resell.removed", { id: String(l.listing_id) }),
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
    }),
  );
  return h(
    "tr",
    { "data-test": "resell-row", "data-listing": l.listing_id },
    h("td", { "data-label": t("resell.col.listing") }, `#${l.listing_id} `, h("strong", null, product(l).name)),
    h("td", { "data-label": t("resell.col.supplierPrice"), class: "num" }, fmtAmount(l.unit_price, l.token)),
    h(
      "td",
      { "data-label": t("resell.col.resellerPrice"), class: "num", "data-test": "resell-floor" },
      BigInt(l.reseller_price) > 0n ? fmtAmount(l.reseller_price, l.token) : pill(t("resell.closed"), "warn"),
    ),
    h("td", { "data-label": t("resell.col.yourPrice") }, h("div", { class: "row" }, price, set, remove), slot),
  );
}

/** A withdrawable balance in one token, with the button that withdraws it to the wallet. */
function withdrawRow(token, amount, me, outcome, onDone) {
  const slot = messageSlot({ "data-test": "resell-withdraw-message" });
  const btn = h(
    "button",
    { class: "btn small", "data-test": "resell-withdraw", disabled: amount === 0n },
    t("resell.withdraw"),
  );
  btn.addEventListener("click", () =>
    busy(btn, slot, async () => {
      const r = await sendEscrow("withdraw", [token, me]);
      await redrawThenSay(
        onDone,
        outcome,
        "ok",
        t("resell.withdrew", { amount: fmtAmount(amount, token) }),
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
    }),
  );
  return h(
    "div",
    { "data-test": "resell-balance", "data-token": token },
    h("div", { class: "spread" }, h("strong", { "data-test": "resell-amount" }, fmtAmount(amount, token)), btn),
    slot,
  );
}

/** The orders bought in the shop: margin fixed at purchase, what the escrow credited at the end. */
function salesCard(sales, names) {
  return h(
    "div",
    { class: "card" },
    h("h2", null, t("resell.sales.title")),
    sales.length
      ? table(
          "resell-sales",
          [
            "resell.sales.order",
            "resell.col.listing",
            "resell.sales.paid",
            "resell.sales.margin",
            "resell.sales.state",
            "resell.sales.credited",
          ],
          sales.map((x) =>
            h(
              "tr",
              { "data-test": "resell-sale", "data-order": x.order_id },
              h("td", { "data-label": t("resell.sales.order") }, orderLabel(x.order_id)),
              h(
                "td",
                { "data-label": t("resell.col.listing") },
                `#${x.listing_id} `,
                names.get(String(x.listing_id)) ?? "",
                h("div", { class: "small muted" }, t("supplier.n.codes", { count: Number(x.quantity) })),
              ),
              h(
                "td",
                { "data-label": t("resell.sales.paid"), class: "num" },
                fmtAmount(x.amount, x.token),
                h("div", { class: "small muted" }, when(x.paid_at)),
              ),
              h("td", { "data-label": t("resell.sales.margin"), class: "num" }, fmtAmount(x.reseller_cut, x.token)),
              h("td", { "data-label": t("resell.sales.state") }, statePill(x.state)),
              h(
                "td",
                { "data-label": t("resell.sales.credited"), class: "num", "data-test": "resell-credited" },
                fmtAmount(x.commission, x.token),
              ),
            ),
          ),
        )
      : h("p", { class: "muted", "data-test": "resell-no-sales" }, t("resell.sales.none")),
  );
}

/** The card where a reseller names its shop, so that its link reads /#/s/NAME. */
function nameCard(current, outcome, onDone) {
  const input = h("input", {
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    value: current ?? "",
    placeholder: "xiaoming-games",
    "data-test": "shop-name",
  });
  const slot = messageSlot({ "data-test": "shop-name-message" });
  const claim = h("button", { class: "btn", "data-test": "shop-name-claim" }, t("resell.name.claim"));
  claim.addEventListener("click", () =>
    busy(claim, slot, async () => {
      const name = input.value.trim();
      if (!SHOP_NAME.test(name)) throw userError(t("resell.name.bad"));
      if (name === current) return slot.show("info", t("resell.name.unchanged"));
      await ensureSignedIn();
      await put(`/shop-names/${name}`, undefined, { auth: true });
      await redrawThenSay(onDone, outcome, "ok", t("resell.name.done", { name }));
    }),
  );
  return h(
    "div",
    { class: "card" },
    h("h2", null, t("resell.name.title")),
    h("p", { class: "muted" }, t("resell.name.intro")),
    field(t("resell.name.label"), input, t("resell.name.hint")),
    slot,
    claim,
  );
}

/** #/reseller: the connected wallet's shop. */
export async function resellerPage(ctx) {
  const title = h("h1", null, t("resell.title"));
  const g = gate(ctx, { why: t("resell.why") });
  if (g) return h("section", null, title, g);
  const me = wallet.address;
  const body = h("div");
  // What the last transaction did: kept above the cards, which are redrawn after it.
  const outcome = messageSlot({ "data-test": "resell-outcome" });
  const load = async () => {
    // Which listings are open to resellers comes from the mirror; the prices that matter (the
    // supplier's reseller price, this shop's price) from the chain, so a change shows at once.
    const [catalog, sales, name] = await Promise.all([
      get("/catalog/listings?limit=500"),
      get(`/shops/${me}/sales`),
      nameOf(me),
    ]);
    const listed = catalog.filter((l) => BigInt(l.reseller_price ?? 0) > 0n);
    await loadTokens(listed);
    const open = (
      await Promise.all(
        listed.map(async (l) => {
          const id = BigInt(l.listing_id);
          const [floor, mine] = await Promise.all([read("resellerPrice", [id]), read("shopPrice", [me, id])]);
          return { ...l, reseller_price: String(floor), shop_price: mine };
        }),
      )
    ).filter((l) => BigInt(l.reseller_price) > 0n || l.shop_price > 0n);
    await loadTokens(sales);
    const tokens = [...new Set([...open, ...sales].map((l) => l.token.toLowerCase()))];
    const names = new Map(catalog.map((l) => [String(l.listing_id), product(l).name]));
    const balances = await Promise.all(tokens.map(async (tok) => [tok, await read("balanceOf", [me, tok])]));
    if (!ctx.alive()) return;
    const link = shopLink(name ?? me);
    replace(
      body,
      h(
        "div",
        { class: "card" },
        h("h2", null, t("resell.link.title")),
        h("p", { class: "muted" }, t("resell.link.intro")),
        h(
          "div",
          { class: "row" },
          h("a", { href: link, class: "mono", "data-test": "shop-link" }, link),
          copyButton(link, { testId: "shop-link-copy", manual: "shop.copyManually" }),
        ),
      ),
      nameCard(name, outcome, load),
      h(
        "div",
        { class: "card" },
        h("h2", null, t("resell.open.title")),
        h("p", { class: "muted" }, t("resell.open.intro")),
        open.length
          ? table(
              "resell-table",
              ["resell.col.listing", "resell.col.supplierPrice", "resell.col.resellerPrice", "resell.col.yourPrice"],
              open.map((l) => resellRow(l, outcome, load)),
            )
          : h("p", { class: "muted", "data-test": "resell-none" }, t("resell.open.none")),
      ),
      h(
        "div",
        { class: "card" },
        h("h2", null, t("resell.earned.title")),
        h("p", { class: "muted" }, t("resell.earned.intro")),
        ...balances.map(([tok, amount]) => withdrawRow(tok, amount, me, outcome, load)),
      ),
      salesCard(sales, names),
    );
  };
  await load();
  return h("section", null, title, message("info", t("resell.intro")), outcome, body);
}
