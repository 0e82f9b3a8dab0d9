// kameng's single-page front-end: boot, routing (#/...), the wallet widget and the connection
// banner. Pages live in ./pages and render into <main id="app">.
import { ApiError, get } from "./api.js";
import { configure, explain, net } from "./chain.js";
import { short } from "./fmt.js";
import { LOCALES, locale, onLocaleChange, ready, setLocale, t } from "./i18n.js";
import { productPage, storePage } from "./pages/store.js";
import { walletWidget } from "./session.js";
import { connectionLost, onReconnect, retryNow } from "./status.js";
import { describeError, h, message, replace } from "./ui.js";
import { onWalletChange, restore, wallet } from "./wallet.js";

// The store and product pages are in app.js; every other page is fetched when it is first
// opened, as a chunk of its own, so a phone opening the store parses less (issue 18). A chunk that
// cannot be fetched fails its render like any other error: the page says so, with Retry.
const pages = {
  buy: () => import("./pages/buy.js"),
  orders: () => import("./pages/orders.js"),
  supplier: () => import("./pages/supplier.js"),
  arbiter: () => import("./pages/arbiter.js"),
  notify: () => import("./pages/notify.js"),
  operator: () => import("./pages/operator.js"),
  tx: () => import("./pages/tx.js"),
  recover: () => import("./pages/recover.js"),
  shop: () => import("./pages/shop.js"),
};
const lazy =
  (module, name) =>
  async (...args) =>
    (await pages[module]())[name](...args);

const routes = [
  [/^\/?$/, "store", storePage],
  [/^\/product\/(0x[0-9a-fA-F]{64})$/, "store", productPage],
  // A share link may carry a coupon (its text: base64url, or anything else the page refuses).
  [
    /^\/buy\/(\d+)(?:\?(?:ref=(0x[0-9a-fA-F]{40})(?:&coupon=([^&]*))?|coupon=([^&]*)))?$/,
    "store",
    lazy("buy", "buyRoute"),
  ],
  [/^\/orders$/, "orders", lazy("orders", "ordersPage")],
  [/^\/order\/(\d+|[Ll]\d+-\d+)$/, "orders", lazy("orders", "orderPage")],
  [/^\/s\/(0x[0-9a-fA-F]{40})(?:\?coupon=([^&]*))?$/, "store", lazy("shop", "shopByAddress")],
  [/^\/s\/([a-z0-9][a-z0-9-]{1,30}[a-z0-9])(?:\?coupon=([^&]*))?$/, "store", lazy("shop", "shopByName")],
  [/^\/supplier$/, "supplier", lazy("supplier", "supplierPage")],
  [/^\/reseller$/, "reseller", lazy("shop", "resellerPage")],
  [/^\/arbiter$/, "arbiter", lazy("arbiter", "arbiterPage")],
  [/^\/alerts$/, "alerts", lazy("notify", "notifyPage")],
  [/^\/operator$/, "operator", lazy("operator", "operatorPage")],
  [/^\/tx\/(0x[0-9a-fA-F]{64})$/, null, lazy("tx", "txPage")],
  [/^\/recover(?:\?(.*))?$/, "recover", lazy("recover", "recoverPage")],
];

/**
 * Whether no kameng server answers here (the front-end served as plain static files, issue 16):
 * then only the recovery page works, and every other route says so.
 */
let standalone = false;
const RECOVER_ROUTE = /^#\/recover(?:\?|$)/;

let cleanup = null;
let renderSeq = 0;
/** Whether the page shown is the failure of a render that could not reach the server. */
let failedOffline = false;

/**
 * Render the page the location's hash names. While a render is under way <main> carries
 * aria-busy (assistive technology waits for it; so do the browser tests).
 */
async function route() {
  const main = document.getElementById("app");
  const seq = ++renderSeq;
  main.setAttribute("aria-busy", "true");
  try {
    await render(main, seq);
  } finally {
    if (seq === renderSeq) main.removeAttribute("aria-busy");
  }
}

async function render(main, seq) {
  const path = window.location.hash.replace(/^#/, "") || "/";
  failedOffline = false;
  cleanup?.();
  cleanup = null;
  const match = routes.map(([re, nav, page]) => [path.match(re), nav, page]).find(([m]) => m);
  for (const a of document.querySelectorAll("[data-nav]"))
    a.classList.toggle("active", Boolean(match) && a.dataset.nav === match[1]);
  if (!match) {
    replace(main, h("h1", null, t("app.notFound.title")), h("p", null, h("a", { href: "#/" }, t("app.notFound.back"))));
    return;
  }
  const [m, nav, page] = match;
  if (standalone && nav !== "recover") {
    replace(
      main,
      h("h1", null, t("app.standalone.title")),
      message("info", t("app.standalone.only"), h("a", { href: "#/recover" }, t("app.standalone.link"))),
    );
    return;
  }
  const ctx = {
    alive: () => seq === renderSeq,
    onLeave: (fn) => {
      const prev = cleanup;
      cleanup = () => {
        prev?.();
        fn();
      };
    },
    rerender: () => seq === renderSeq && route(),
    // Render whatever route is current, even if this page was rendered again meanwhile: for an
    // act that outlives its render (a sign-in whose page was re-rendered while the wallet
    // signed must still show the signed-in page).
    refresh: () => route(),
  };
  try {
    const node = await page(ctx, ...m.slice(1));
    if (seq === renderSeq && node) replace(main, node);
  } catch (raw) {
    console.error(raw);
    const err = explain(raw);
    if (seq !== renderSeq) return;
    if (err.offline) {
      // Shown until the server answers again: then the router renders this route by itself.
      failedOffline = true;
      connectionLost();
    }
    replace(
      main,
      failure(err, () => route()),
    );
  }
  window.scrollTo?.(0, 0);
}

/**
 * What a page that could not load shows: what happened, in the reader's language (never a
 * server's bare text for a 5xx), and a Retry button calling `retry`.
 */
function failure(err, retry) {
  let text;
  let detail;
  if (err.offline) {
    text = err.userMessage;
    detail = t("app.failed.offline");
  } else if (err instanceof ApiError && err.status >= 500) {
    text = t("app.failed.server");
    detail = t("app.failed.server.detail", { status: String(err.status) });
  } else {
    ({ text, detail } = describeError(err));
  }
  return h(
    "div",
    { class: "page-failed", "data-test": "page-failed" },
    message("error", text, detail),
    h("button", { type: "button", class: "btn", "data-test": "page-retry", onclick: retry }, t("app.retry")),
  );
}

/** The text index.html carries: each element with data-i18n (and data-i18n-<attribute>). */
function translateStatic() {
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-aria-label]"))
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  const langs = document.getElementById("lang");
  if (langs)
    replace(
      langs,
      LOCALES.map((tag) =>
        h(
          "button",
          {
            type: "button",
            lang: tag,
            "aria-pressed": String(tag === locale()),
            "data-test": `lang-${tag}`,
            // a catalog that cannot be fetched leaves the page in its language
            onclick: () => setLocale(tag).catch((err) => console.error(err)),
          },
          t(`lang.${tag}`),
        ),
      ),
    );
}

function showChainInfo() {
  const info = document.getElementById("chain-info");
  info.textContent = t(net.embedded ? "app.chainInfo.embedded" : "app.chainInfo", {
    chainId: String(net.chainId),
    escrow: short(net.escrow),
  });
  info.title = t("app.chainInfo.title", { escrow: net.escrow });
}

/**
 * Show the nav's "Operator" entry only to a wallet holding an operator role on the escrow (read
 * from the chain; the page itself explains a refusal to anyone who opens it by its address).
 */
let operatorCheck = 0;
async function showOperatorNav() {
  const link = document.querySelector('[data-nav="operator"]');
  if (!link) return;
  const seq = ++operatorCheck;
  const address = wallet.address;
  const roles = (a) => pages.operator().then(({ operatorRoles }) => operatorRoles(a));
  const held = address ? await roles(address).catch(() => []) : [];
  if (seq === operatorCheck) link.hidden = held.length === 0;
}

/**
 * This kameng's chain (GET /chain) without waiting or raising the offline banner: null when no
 * kameng server answers (plain static files, or a server that is gone).
 */
async function probeServer() {
  try {
    const res = await fetch("chain", {
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) return null;
    const info = await res.json();
    return info && info.chain_id && info.escrow ? info : null;
  } catch {
    return null;
  }
}

/** GET /chain, waiting for the server (its return, or Retry) as long as it takes. */
async function serverChain() {
  const main = document.getElementById("app");
  for (;;) {
    try {
      return await get("/chain");
    } catch (raw) {
      console.error(raw);
      const err = explain(raw);
      // Wait for the server (its return, or Retry), then start again: no reload needed.
      await new Promise((resolve) => {
        const off = onReconnect(() => {
          off();
          resolve();
        });
        replace(
          main,
          failure(err, () => {
            off();
            resolve();
          }),
        );
      });
    }
  }
}

async function boot() {
  await ready(); // the reader's catalog (English is here already; another is fetched)
  translateStatic();
  // The recovery page must work with no kameng server at all: it only probes for one.
  const info = RECOVER_ROUTE.test(window.location.hash) ? await probeServer() : await serverChain();
  let widget = null;
  if (info) {
    configure(info);
    showChainInfo();
    widget = walletWidget(() => route());
    replace(document.getElementById("wallet"), widget);
    onWalletChange(() => showOperatorNav());
    await restore();
  } else {
    standalone = true;
    document.getElementById("chain-info").textContent = t("app.chainInfo.standalone");
  }
  onLocaleChange(() => {
    translateStatic();
    if (standalone) document.getElementById("chain-info").textContent = t("app.chainInfo.standalone");
    else showChainInfo();
    widget?.refresh();
    route();
  });
  window.addEventListener("hashchange", route);
  if (!standalone) {
    window.addEventListener("online", () => retryNow());
    window.addEventListener("offline", () => connectionLost());
    onReconnect(() => {
      if (failedOffline) route();
    });
  }
  await route();
}

boot();
