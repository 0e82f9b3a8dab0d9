// Formatting: addresses, hashes, times, and links from chain numbers to their transactions.
import { keccak256, stringToBytes } from "viem";
import { locale, t } from "./i18n.js";
import { h } from "./ui.js";

/** 0x1234…abcd */
export function short(hex, head = 6, tail = 4) {
  if (!hex) return "—";
  const s = String(hex);
  return s.length <= head + tail + 1 ? s : `${s.slice(0, head)}…${s.slice(-tail)}`;
}

/** An address, shortened, with the full value on hover. */
export function addr(address, label) {
  return h("span", { class: label ? "mono" : "mono nowrap", title: address }, label || short(address));
}

/** A link to the in-app transaction page: "block 12 · 0xabcd…1234". */
export function txLink(txHash, block, label) {
  if (!txHash) return h("span", { class: "muted" }, "—");
  const text =
    label ??
    (block !== undefined && block !== null
      ? t("fmt.tx.inBlock", { block: String(block), hash: short(txHash, 8, 4) })
      : short(txHash, 8, 4));
  return h(
    "a",
    {
      class: "txlink",
      href: `#/tx/${txHash}`,
      title:
        block !== undefined && block !== null
          ? t("fmt.tx.titleInBlock", { hash: txHash, block: String(block) })
          : t("fmt.tx.title", { hash: txHash }),
    },
    text,
  );
}

/** A number that links to the transaction that produced it. */
export function chainNumber(value, txHash, block) {
  if (!txHash) return h("span", null, value);
  return h(
    "a",
    {
      href: `#/tx/${txHash}`,
      class: "chain-number",
      title:
        block !== undefined
          ? t("fmt.number.titleInBlock", { hash: txHash, block: String(block) })
          : t("fmt.number.title", { hash: txHash }),
    },
    value,
  );
}

/** A date and time in the reader's language and time zone. */
export function when(ts) {
  if (!ts) return "—";
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(
    new Date(Number(ts) * 1000),
  );
}

/** A time of day (hours and minutes) in the reader's language. */
export function clock(ts) {
  return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" }).format(new Date(Number(ts) * 1000));
}

/** A count in the reader's digits ("1,250"). */
export function count(n) {
  return new Intl.NumberFormat(locale()).format(n);
}

/** "3 h 12 min" for a number of seconds (zero parts left out). */
export function duration(seconds) {
  let s = Math.abs(Math.round(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hr = Math.floor(s / 3600);
  s -= hr * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts = d
    ? [
        [d, "fmt.duration.days"],
        [hr, "fmt.duration.hours"],
      ]
    : hr
      ? [
          [hr, "fmt.duration.hours"],
          [m, "fmt.duration.minutes"],
        ]
      : m
        ? [
            [m, "fmt.duration.minutes"],
            [s, "fmt.duration.seconds"],
          ]
        : [[s, "fmt.duration.seconds"]];
  const shown = parts.filter(([n], i) => n || i === 0);
  return shown.map(([n, unit]) => t(unit, { count: n })).join(t("fmt.duration.join"));
}

/** "in 3 h 12 min" / "2 min ago" relative to `now` (Unix seconds). */
export function relative(ts, now = Date.now() / 1000) {
  const delta = Number(ts) - now;
  return t(delta >= 0 ? "fmt.relative.future" : "fmt.relative.past", { duration: duration(delta) });
}

/** Basis points as a percentage. */
export function bps(value) {
  const n = Number(value) / 100;
  return `${Number.isInteger(n) ? n : n.toFixed(2)}%`;
}

/** keccak256 of a UTF-8 string. */
export const keccakText = (text) => keccak256(stringToBytes(text));

/** "steam-wallet-50" → "Steam Wallet 50" */
export function humanize(slug) {
  return slug
    .split(/[-_\s]+/)
    .filter(Boolean)
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join(" ");
}

/**
 * The product behind a listing: its name and description from the metadata URI, and whether the
 * name is proven (keccak256(name) equals the on-chain sku, as contracts.encoding.sku_id makes it).
 *
 * Understood metadata: `data:application/json,...` with {name, sku, description}, or any URI
 * whose last path segment is the sku's name (`ipfs://steam-wallet-50`, `kameng:sku/steam-wallet-50`).
 */
export function product(listing) {
  const sku = listing.sku.toLowerCase();
  const uri = listing.metadata_uri || "";
  let meta = {};
  if (uri.startsWith("data:application/json")) {
    try {
      const body = uri.slice(uri.indexOf(",") + 1);
      meta = JSON.parse(uri.slice(0, uri.indexOf(",")).includes(";base64") ? atob(body) : decodeURIComponent(body));
    } catch {
      meta = {};
    }
  }
  const candidates = [meta.sku, meta.name, uri.split(/[/:]/).filter(Boolean).pop()].filter(
    (c) => typeof c === "string" && c,
  );
  const proven = candidates.find((c) => keccakText(c) === sku);
  const name =
    typeof meta.name === "string" && meta.name
      ? meta.name
      : proven
        ? humanize(proven)
        : t("product.unnamed", { sku: short(sku, 10, 6) });
  return {
    sku,
    name,
    slug: proven || null,
    proven: Boolean(proven),
    description: typeof meta.description === "string" ? meta.description : "",
  };
}

// ------------------------------------------------------------------ order references

const LOW32 = 0xffffffffn;

/**
 * A short, reversible reference for an on-chain order id: ids are `listingId << 32 | n` (n the
 * index of the order's first code in the listing), so order 8589934609 is "L2-17".
 */
export function orderRef(orderId) {
  const id = BigInt(orderId);
  return `L${id >> 32n}-${id & LOW32}`;
}

/**
 * The on-chain order id (a decimal string) of a reference ("L2-17", any case) or of a decimal
 * id ("8589934609"); null for anything else.
 */
export function parseOrderRef(text) {
  const s = String(text ?? "").trim();
  if (/^\d{1,78}$/.test(s)) return BigInt(s).toString();
  const m = /^L(\d{1,68})-(\d{1,10})$/i.exec(s);
  if (!m) return null;
  const n = BigInt(m[2]);
  if (n > LOW32) return null;
  return ((BigInt(m[1]) << 32n) | n).toString();
}

/** An order's reference as shown on a page, with the on-chain id on hover. */
export function orderLabel(orderId) {
  return h(
    "span",
    { class: "order-ref nowrap", title: t("fmt.order.title", { id: String(orderId) }), "data-order-ref": "" },
    orderRef(orderId),
  );
}

/**
 * The plain badge of a listing whose codes are also kept on the blockchain (issue 16: its
 * supplier called requireOnChainRelease): the buyer can recover them without this shop, and an
 * order holds at most `max_quantity_per_order` codes. Null for other listings.
 */
export function onChainBadge(listing) {
  if (!listing?.on_chain_release) return null;
  const cap = listing.max_quantity_per_order;
  return h(
    "div",
    { class: "onchain-badge small", "data-test": "onchain-badge" },
    h("strong", null, t("listing.onChain.badge")),
    cap ? h("div", { class: "muted" }, t("listing.onChain.cap", { count: Number(cap) })) : null,
  );
}
