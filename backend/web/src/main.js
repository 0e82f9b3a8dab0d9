// kameng's single-page front-end: boot, routing (#/...), the wallet widget and the connection
// banner. Pages live in ./pages and render into <main id="app">.
import { get } from "./api.js";
import { configure, net } from "./chain.js";
import { short } from "./fmt.js";
import { arbiterPage } from "./pages/arbiter.js";
import { buyPage } from "./pages/buy.js";
import { notifyPage } from "./pages/notify.js";
import { orderPage, ordersPage } from "./pages/orders.js";
import { productPage, storePage } from "./pages/store.js";
import { supplierPage } from "./pages/supplier.js";
import { txPage } from "./pages/tx.js";
import { walletWidget } from "./session.js";
import { reportConnection } from "./status.js";
import { h, message, replace } from "./ui.js";
import { restore } from "./wallet.js";

const routes = [
  [/^\/?$/, "store", storePage],
  [/^\/product\/(0x[0-9a-fA-F]{64})$/, "store", productPage],
  [/^\/buy\/(\d+)(?:\?ref=(0x[0-9a-fA-F]{40}))?$/, "store", buyPage],
  [/^\/orders$/, "orders", ordersPage],
  [/^\/order\/(\d+)$/, "orders", orderPage],
  [/^\/supplier$/, "supplier", supplierPage],
  [/^\/arbiter$/, "arbiter", arbiterPage],
  [/^\/alerts$/, "alerts", notifyPage],
  [/^\/tx\/(0x[0-9a-fA-F]{64})$/, null, txPage],
];

let cleanup = null;
let renderSeq = 0;

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
  cleanup?.();
  cleanup = null;
  const match = routes.map(([re, nav, page]) => [path.match(re), nav, page]).find(([m]) => m);
  for (const a of document.querySelectorAll("[data-nav]"))
    a.classList.toggle("active", Boolean(match) && a.dataset.nav === match[1]);
  if (!match) {
    replace(main, h("h1", null, "Not found"), h("p", null, h("a", { href: "#/" }, "Back to the store")));
    return;
  }
  const [m, , page] = match;
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
  };
  try {
    const node = await page(ctx, ...m.slice(1));
    if (seq === renderSeq && node) replace(main, node);
  } catch (err) {
    console.error(err);
    if (seq === renderSeq) replace(main, message("error", err.userMessage || err.message || String(err)));
  }
  window.scrollTo?.(0, 0);
}

async function boot() {
  const main = document.getElementById("app");
  let info;
  try {
    info = await get("/chain");
  } catch (err) {
    replace(
      main,
      message("error", "Cannot reach the kameng server.", err.userMessage || String(err)),
      h("button", { class: "btn", onclick: () => window.location.reload() }, "Retry"),
    );
    reportConnection(false);
    return;
  }
  configure(info);
  document.getElementById("chain-info").textContent =
    `${net.embedded ? "Embedded development chain" : "Chain"} ${net.chainId} · escrow ${short(net.escrow)}`;
  document.getElementById("chain-info").title = `escrow ${net.escrow}`;
  const widget = walletWidget(() => route());
  replace(document.getElementById("wallet"), widget);
  await restore();
  window.addEventListener("hashchange", route);
  window.addEventListener("online", () => reportConnection(true));
  window.addEventListener("offline", () => reportConnection(false));
  await route();
}

boot();
