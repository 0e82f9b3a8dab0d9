// Resellers (分站): a reseller's shop as its buyers see it (#/s/<address>), and the reseller's own
// page (#/reseller) where it puts listings in its shop at its own prices, shares its link and
// withdraws its margin. Prices live on-chain (setShopPrice): the escrow charges the shop's price
// and fixes every party's part in the order, so this page only shows and sends them.
import { get } from "../api.js";
import { fmtAmount, read, tokenInfo, unitPriceOf, userError } from "../chain.js";
import { addr, onChainBadge, orderLabel, product, short, txLink, when } from "../fmt.js";
import { t } from "../i18n.js";
import { gate } from "../session.js";
import { busy, h, message, messageSlot, pill, replace } from "../ui.js";
import { sendEscrow, wallet } from "../wallet.js";
import { statePill } from "./orders.js";

/** The shareable link of a reseller's shop. */
export const shopLink = (reseller) => `${window.location.origin}${window.location.pathname}#/s/${reseller}`;

async function loadTokens(listings) {
  await Promise.all([...new Set(listings.map((l) => l.token.toLowerCase()))].map((tok) => tokenInfo(tok)));
}

/** A copy-to-clipboard button for `text`, saying so once copied. */
function copyButton(text, testId) {
  const btn = h("button", { class: "btn small quiet", type: "button", "data-test": testId }, t("shop.copy"));
  btn.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      btn.textContent = t("shop.copied");
    } catch {
      btn.textContent = t("shop.copyFailed");
    }
  });
  return btn;
}

/** One listing of a shop, as its buyers see it. */
function shopItem(item) {
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
    h(
      "dl",
      null,
      h("dt", null, t("store.offer.supplier")),
      h("dd", null, addr(item.supplier)),
      h("dt", null, t("store.offer.stock")),
      h("dd", { "data-test": "shop-stock" }, String(item.stock)),
    ),
    onChainBadge(item),
    h(
      "a",
      {
        class: "btn small",
        href: `#/buy/${item.listing_id}?ref=${item.reseller}`,
        "aria-disabled": open ? null : "true",
        "data-test": "shop-buy",
      },
      open ? t("store.buy") : t("store.view"),
    ),
  );
}

/** #/s/<address>: a reseller's shop. */
export async function shopPage(ctx, reseller) {
  const items = await get(`/shops/${reseller}`);
  await loadTokens(items);
  return h(
    "section",
    { "data-test": "shop" },
    h("h1", null, t("shop.title", { shop: short(reseller) })),
    h("p", { class: "muted" }, t("shop.intro")),
    items.length
      ? h("div", { class: "grid" }, ...items.map(shopItem))
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
    value: fmtAmount(inShop ? l.shop_price : l.unit_price, l.token, { symbol: false, digits: 18 }).replaceAll(",", ""),
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
      outcome.show(
        "ok",
        t("resell.done", {
          id: String(l.listing_id),
          price: fmtAmount(unit, l.token),
          margin: fmtAmount(unit - floor, l.token),
        }),
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
      await onDone();
    }),
  );
  remove?.addEventListener("click", () =>
    busy(remove, slot, async () => {
      const r = await sendEscrow("setShopPrice", [BigInt(l.listing_id), 0n]);
      outcome.show(
        "ok",
        t("resell.removed", { id: String(l.listing_id) }),
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
      await onDone();
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
      outcome.show(
        "ok",
        t("resell.withdrew", { amount: fmtAmount(amount, token) }),
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
      await onDone();
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
      ? h(
          "table",
          { "data-test": "resell-sales" },
          h(
            "tr",
            null,
            h("th", null, t("resell.sales.order")),
            h("th", null, t("resell.col.listing")),
            h("th", null, t("resell.sales.paid")),
            h("th", null, t("resell.sales.margin")),
            h("th", null, t("resell.sales.state")),
            h("th", null, t("resell.sales.credited")),
          ),
          ...sales.map((x) =>
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
    const [catalog, sales] = await Promise.all([get("/catalog/listings?limit=500"), get(`/shops/${me}/sales`)]);
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
    const link = shopLink(me);
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
          copyButton(link, "shop-link-copy"),
        ),
      ),
      h(
        "div",
        { class: "card" },
        h("h2", null, t("resell.open.title")),
        h("p", { class: "muted" }, t("resell.open.intro")),
        open.length
          ? h(
              "table",
              { "data-test": "resell-table" },
              h(
                "tr",
                null,
                h("th", null, t("resell.col.listing")),
                h("th", null, t("resell.col.supplierPrice")),
                h("th", null, t("resell.col.resellerPrice")),
                h("th", null, t("resell.col.yourPrice")),
              ),
              ...open.map((l) => resellRow(l, outcome, load)),
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
