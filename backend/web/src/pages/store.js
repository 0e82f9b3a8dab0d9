// The storefront: products grouped by sku with their suppliers side by side (智能比价), search and
// filters, and a product page with each supplier's licensed-product authorization and, when it is
// published, the attestation document behind it, which the buyer can check against the hash the
// licence records (keccak256, computed in the browser).
import { keccak256, toEventSelector, toHex } from "viem";
import { ApiError, get } from "../api.js";
import { ESCROW_ABI, fmtAmount, listingHistory, loadTokens, net, read, userError } from "../chain.js";
import { addr, bps, chainNumber, duration, onChainBadge, product, short, txLink } from "../fmt.js";
import { locale, t, tn } from "../i18n.js";
import { listingTiers, tierTable } from "../tiers.js";
import { busy, h, message, messageSlot, pill, replace } from "../ui.js";

/**
 * The volume tiers of each listing, by listing id (none where they cannot be read: the price
 * table is then left out, the buy page reads them again before anything is paid).
 */
async function tiersOf(listings) {
  const all = await Promise.all(listings.map((l) => listingTiers(l).catch(() => [])));
  return new Map(listings.map((l, i) => [String(l.listing_id), all[i]]));
}

/** Listings grouped by sku, cheapest offer first in each group. */
function groupBySku(listings) {
  const groups = new Map();
  for (const l of listings) {
    const p = product(l);
    if (!groups.has(p.sku)) groups.set(p.sku, { ...p, offers: [] });
    const g = groups.get(p.sku);
    if (!g.proven && p.proven) Object.assign(g, p, { offers: g.offers });
    g.offers.push(l);
  }
  for (const g of groups.values()) {
    g.offers.sort((a, b) =>
      BigInt(a.unit_price) < BigInt(b.unit_price) ? -1 : BigInt(a.unit_price) > BigInt(b.unit_price) ? 1 : 0,
    );
    g.stock = g.offers.reduce((n, o) => n + Number(o.stock), 0);
    g.best = g.offers.find((o) => Number(o.stock) > 0) || g.offers[0];
  }
  return [...groups.values()];
}

function record(r) {
  return t("store.record", { completed: r.orders_completed, count: r.disputes_lost });
}

function offerCard(o, best, tiers) {
  const soldOut = Number(o.stock) === 0;
  return h(
    "div",
    { class: `offer${o === best && !soldOut ? " best" : ""}`, "data-test": "offer", "data-listing": o.listing_id },
    h(
      "div",
      { class: "spread" },
      h("span", { class: "price" }, fmtAmount(o.unit_price, o.token)),
      o === best && !soldOut ? pill(t("store.offer.best"), "brand") : null,
    ),
    tierTable(BigInt(o.unit_price), tiers.get(String(o.listing_id)), o.token, { testId: "offer-tiers" }),
    h(
      "dl",
      null,
      h("dt", null, t("store.offer.supplier")),
      h("dd", null, addr(o.supplier)),
      h("dt", null, t("store.offer.stock")),
      h("dd", { "data-test": "offer-stock" }, soldOut ? pill(t("store.soldOut"), "bad") : `${o.stock}`),
      h("dt", null, t("store.offer.record")),
      h("dd", null, `${o.supplier_record.orders_completed} ✓ · ${o.supplier_record.disputes_lost} ✗`),
      h("dt", null, t("store.offer.bond")),
      h("dd", null, t("store.bondPerOrder", { bps: bps(o.bond_bps) })),
    ),
    onChainBadge(o),
    h(
      "a",
      {
        class: "btn small",
        style: { width: "100%", marginTop: ".5rem" },
        href: `#/buy/${o.listing_id}`,
        "aria-disabled": soldOut ? "true" : null,
      },
      soldOut ? t("store.view") : t("store.buy"),
    ),
  );
}

/** #/ : every product with its suppliers side by side. */
export async function storePage(ctx) {
  const listings = await get("/catalog/listings?limit=500");
  const [tiers] = await Promise.all([tiersOf(listings), loadTokens(listings)]);
  const groups = groupBySku(listings);
  const search = h("input", {
    type: "search",
    placeholder: t("store.search.placeholder"),
    "aria-label": t("store.search.label"),
    "data-test": "search",
  });
  const inStock = h("input", { type: "checkbox", id: "in-stock", "data-test": "in-stock" });
  const sort = h(
    "select",
    { "aria-label": t("store.sort.label"), "data-test": "sort" },
    h("option", { value: "name" }, t("store.sort.name")),
    h("option", { value: "price" }, t("store.sort.price")),
    h("option", { value: "stock" }, t("store.sort.stock")),
    h("option", { value: "suppliers" }, t("store.sort.suppliers")),
  );
  const list = h("div", { class: "grid", "data-test": "products" });
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    let shown = groups.filter(
      (g) =>
        (!q ||
          g.name.toLowerCase().includes(q) ||
          g.sku.includes(q) ||
          (g.slug || "").includes(q) ||
          g.offers.some((o) => o.supplier.toLowerCase().includes(q))) &&
        (!inStock.checked || g.stock > 0),
    );
    const price = (g) => BigInt(g.best.unit_price);
    shown = shown.sort((a, b) => {
      if (sort.value === "price") return price(a) < price(b) ? -1 : price(a) > price(b) ? 1 : 0;
      if (sort.value === "stock") return b.stock - a.stock;
      if (sort.value === "suppliers") return b.offers.length - a.offers.length;
      return a.name.localeCompare(b.name, locale());
    });
    replace(
      list,
      shown.length
        ? shown.map((g) =>
            h(
              "article",
              { class: "card product", "data-test": "product", "data-sku": g.sku },
              h(
                "div",
                { class: "spread" },
                h("h2", null, h("a", { href: `#/product/${g.sku}` }, g.name)),
                g.stock ? pill(t("store.inStock", { count: g.stock }), "ok") : pill(t("store.soldOut"), "bad"),
              ),
              h(
                "div",
                { class: "muted small" },
                tn("store.product.summary", {
                  count: g.offers.length,
                  price: h("strong", null, fmtAmount(g.best.unit_price, g.best.token)),
                  sku: h("span", { class: "mono", title: g.sku }, short(g.sku, 8, 4)),
                }),
              ),
              h(
                "div",
                { class: "offers" },
                g.offers.slice(0, 4).map((o) => offerCard(o, g.best, tiers)),
              ),
              g.offers.length > 4
                ? h(
                    "a",
                    { href: `#/product/${g.sku}`, class: "small" },
                    t("store.compareAll", { count: g.offers.length }),
                  )
                : null,
            ),
          )
        : [message("info", listings.length ? t("store.noMatch") : t("store.empty"))],
    );
  };
  search.addEventListener("input", draw);
  inStock.addEventListener("change", draw);
  sort.addEventListener("change", draw);
  draw();
  return h(
    "section",
    null,
    h("h1", null, t("store.title")),
    h("p", { class: "muted" }, t("store.intro")),
    h(
      "div",
      { class: "toolbar" },
      search,
      h(
        "label",
        { for: "in-stock", class: "row", style: { margin: 0, fontWeight: 500 } },
        inStock,
        t("store.inStockOnly"),
      ),
      sort,
    ),
    list,
  );
}

/** The SkuAuthorized log granting (supplier, sku), newest first. */
async function authorizationLog(supplier, sku) {
  const topic0 = ESCROW_ABI.find((x) => x.type === "event" && x.name === "SkuAuthorized");
  const logs = await net.client.request({
    method: "eth_getLogs",
    params: [
      {
        address: net.escrow,
        fromBlock: "0x0",
        toBlock: "latest",
        topics: [toEventSelector(topic0), toHex(BigInt(supplier), { size: 32 }), sku],
      },
    ],
  });
  return logs.length ? logs[logs.length - 1] : null;
}

/** A file's size in the reader's digits and units ("812 bytes", "12.5 kB"). */
function fileSize(bytes) {
  const n = Number(bytes);
  if (n < 1000) return t("product.doc.bytes", { count: n });
  const [unit, size] = n < 1e6 ? ["kilobyte", 1e3] : ["megabyte", 1e6];
  return new Intl.NumberFormat(locale(), {
    style: "unit",
    unit,
    unitDisplay: "short",
    maximumFractionDigits: 1,
  }).format(n / size);
}

/**
 * The attestation document a licence cites (GET /attestations/{att}/info), when it is published:
 * its name and size, and a check that downloads it, hashes it here and compares the hash with the
 * one on-chain; only a matching document is offered to save or open.
 */
function attestationDocument(ctx, att) {
  const box = h("div", { class: "small", "data-test": "attestation-doc" });
  get(`/attestations/${att}/info`)
    .then((info) => {
      const result = messageSlot({ "data-test": "attestation-check" });
      const check = h(
        "button",
        { class: "btn small quiet", "data-test": "attestation-check-button" },
        t("product.doc.check"),
      );
      check.addEventListener("click", () =>
        busy(check, result, async () => {
          const res = await get(`/attestations/${att}`, { raw: true });
          if (!res.ok) throw userError(t("product.doc.fetchFailed", { status: String(res.status) }));
          const bytes = new Uint8Array(await res.arrayBuffer());
          const hash = keccak256(bytes);
          if (hash !== String(att).toLowerCase()) {
            result.show("error", t("product.doc.mismatch"), t("product.doc.mismatch.detail", { hash }));
            result.dataset.verdict = "mismatch";
            return;
          }
          const url = URL.createObjectURL(new Blob([bytes], { type: info.media_type }));
          ctx.onLeave(() => URL.revokeObjectURL(url));
          result.show(
            "ok",
            t("product.doc.matches"),
            h("a", { href: url, download: info.name, "data-test": "attestation-save" }, t("product.doc.save")),
          );
          result.dataset.verdict = "match";
        }),
      );
      replace(
        box,
        h(
          "div",
          { "data-test": "attestation-doc-name", title: info.media_type },
          t("product.doc.file", { name: info.name, size: fileSize(info.size) }),
        ),
        check,
        result,
      );
    })
    .catch((err) =>
      replace(
        box,
        h(
          "span",
          { class: "muted", "data-test": "attestation-doc-none" },
          err instanceof ApiError && err.status === 404 ? t("product.doc.none") : t("product.doc.unavailable"),
        ),
      ),
    );
  return box;
}

/** #/product/<sku> : the suppliers of one product compared, with their authorizations. */
export async function productPage(ctx, sku) {
  const listings = await get(`/catalog/listings?sku=${sku}&limit=500`);
  if (!listings.length)
    return h(
      "section",
      null,
      h("h1", null, t("product.unknown.title")),
      message("info", t("product.unknown.text")),
      h("a", { href: "#/" }, t("product.back")),
    );
  const [tiers] = await Promise.all([tiersOf(listings), loadTokens(listings)]);
  const [g] = groupBySku(listings);
  const rows = h("tbody");
  const authSlots = new Map();
  const bondSlots = new Map();
  for (const o of g.offers) {
    const auth = h(
      "td",
      { "data-label": t("product.col.licensed"), "data-test": "authorization" },
      h("span", { class: "muted" }, t("product.checking")),
    );
    const bond = h("td", { "data-label": t("product.col.bond"), class: "num" }, "…");
    authSlots.set(o.listing_id, auth);
    bondSlots.set(o.listing_id, bond);
    rows.append(
      h(
        "tr",
        { "data-test": "compare-row" },
        h(
          "td",
          { "data-label": t("product.col.supplier") },
          addr(o.supplier),
          h("div", { class: "small muted" }, t("product.listing", { id: String(o.listing_id) })),
        ),
        h(
          "td",
          { "data-label": t("product.col.price"), class: "num" },
          h("strong", { "data-test": "price" }, fmtAmount(o.unit_price, o.token)),
          tierTable(BigInt(o.unit_price), tiers.get(String(o.listing_id)), o.token, { testId: "compare-tiers" }),
          o === g.best ? h("div", null, pill(t("product.best"), "brand")) : null,
        ),
        h(
          "td",
          { "data-label": t("product.col.stock"), class: "num" },
          h("span", { "data-test": "stock" }, Number(o.stock) ? `${o.stock}` : pill(t("store.soldOut"), "bad")),
          h("div", { class: "small muted" }, t("product.ofCommitted", { committed: o.committed })),
        ),
        h(
          "td",
          { "data-label": t("product.col.record") },
          record(o.supplier_record),
          o.supplier_record.orders_refunded
            ? h(
                "div",
                { class: "small muted" },
                t("product.refundedLate", { count: o.supplier_record.orders_refunded }),
              )
            : null,
        ),
        h(
          "td",
          { "data-label": t("product.col.terms"), class: "small terms" },
          h("div", null, t("product.terms.deliver", { duration: duration(o.delivery_window) })),
          h("div", null, t("product.terms.dispute", { duration: duration(o.dispute_window) })),
          h("div", null, t("product.terms.bond", { bps: bps(o.bond_bps) })),
          onChainBadge(o),
        ),
        bond,
        auth,
        h(
          "td",
          { "data-label": "" },
          h(
            "a",
            { class: "btn small", href: `#/buy/${o.listing_id}` },
            Number(o.stock) ? t("store.buy") : t("store.view"),
          ),
        ),
      ),
    );
  }
  // On-chain facts, filled in as they arrive: each number links to the transaction behind it.
  for (const [i, o] of g.offers.entries()) {
    const row = rows.children[i];
    listingHistory(o.listing_id)
      .then((events) => {
        const priced = events.filter((e) => e.name !== "BatchCommitted").at(-1);
        const batches = events.filter((e) => e.name === "BatchCommitted");
        if (priced) {
          const price = row.querySelector('[data-test="price"]');
          price.replaceWith(chainNumber(price.textContent, priced.log.transactionHash, Number(priced.log.blockNumber)));
        }
        if (batches.length) {
          const last = batches.at(-1);
          row.querySelector('[data-test="stock"]').after(
            h(
              "div",
              { class: "small" },
              tn("product.batches", {
                count: batches.length,
                tx: txLink(last.log.transactionHash, Number(last.log.blockNumber)),
              }),
            ),
          );
        }
      })
      .catch(() => {});
  }
  for (const o of g.offers) {
    read("authorization", [o.supplier, sku])
      .then(async (att) => {
        const slot = authSlots.get(o.listing_id);
        if (BigInt(att) === 0n) {
          replace(slot, pill(t("product.auth.none"), "bad"));
          return;
        }
        replace(
          slot,
          pill(t("product.auth.ok"), "ok"),
          h(
            "div",
            { class: "small mono", title: t("product.auth.attestation", { hash: att }) },
            t("product.auth.attestation", { hash: short(att, 8, 4) }),
          ),
        );
        const doc = attestationDocument(ctx, att);
        slot.append(doc);
        const log = await authorizationLog(o.supplier, sku).catch(() => null);
        if (log) doc.before(h("div", { class: "small" }, txLink(log.transactionHash, Number(log.blockNumber))));
      })
      .catch(() => replace(authSlots.get(o.listing_id), h("span", { class: "muted" }, t("product.unavailable"))));
    read("bondOf", [o.supplier, o.token])
      .then((b) =>
        replace(
          bondSlots.get(o.listing_id),
          fmtAmount(b.free, o.token),
          h("div", { class: "small muted" }, t("product.bondReserved", { amount: fmtAmount(b.reserved, o.token) })),
        ),
      )
      .catch(() => replace(bondSlots.get(o.listing_id), "—"));
  }
  return h(
    "section",
    null,
    h("a", { href: "#/", class: "small" }, t("product.back")),
    h("h1", { "data-test": "product-name" }, g.name),
    h(
      "p",
      { class: "muted" },
      g.description || "",
      " ",
      tn("product.sku", { sku: h("span", { class: "mono" }, g.sku) }),
      g.proven
        ? h("span", null, " = keccak256(", h("code", null, `"${g.slug}"`), ") ", pill(t("product.nameVerified"), "ok"))
        : null,
    ),
    h(
      "div",
      { class: "card" },
      h("h2", null, t("product.compare.title")),
      h("p", { class: "small muted" }, t("product.compare.intro")),
      h(
        "div",
        { class: "table-wrap", tabindex: "0" },
        h(
          "table",
          { class: "compare stack-sm" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              [
                t("product.col.supplier"),
                t("product.col.price"),
                t("product.col.stock"),
                t("product.col.record"),
                t("product.col.terms"),
                t("product.col.bond"),
                t("product.col.licensed"),
                h("span", { class: "sr-only" }, t("ui.col.actions")),
              ].map((label) => h("th", null, label)),
            ),
          ),
          rows,
        ),
      ),
    ),
  );
}
