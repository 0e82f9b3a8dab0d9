// The connection banner: when the kameng server stops answering, a banner says so (with a Retry
// button), /health is probed with backoff (1 s, 2 s, 4 s, 8 s, then every 10 s), and when the
// server answers again the banner goes and whoever waits for it (the router) carries on by itself.
// Also: polling that survives a lost connection.
import { explain } from "./chain.js";
import { onLocaleChange, t } from "./i18n.js";
import { h, replace } from "./ui.js";

const FIRST_DELAY = 1000;
const MAX_DELAY = 10_000;

let down = false;
let delay = FIRST_DELAY;
let timer = null;
let probing = null;
/** When the server last came back (a loss soon after keeps the backoff where it was). */
let backAt = 0;
const waiting = new Set();

function drawBanner() {
  const banner = document.getElementById("banner");
  if (!banner) return;
  if (!down) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  banner.hidden = false;
  banner.className = "banner bad";
  banner.dataset.test = "offline-banner";
  replace(
    banner,
    h("span", null, t("status.offline")),
    h(
      "button",
      { type: "button", class: "btn small quiet", "data-test": "offline-retry", onclick: () => retryNow() },
      t("app.retry"),
    ),
  );
}

onLocaleChange(drawBanner);

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(probe, delay);
  delay = Math.min(delay * 2, MAX_DELAY);
}

/**
 * Whether the server answers: any answer but a gateway's or the API's "not ready" (502, 503
 * without a worker report, 504). A 503 naming dead workers still means the API and its node
 * answer.
 */
async function answers() {
  let res;
  try {
    res = await fetch("/health", { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch {
    return false;
  }
  if (![502, 503, 504].includes(res.status)) return true;
  const body = await res.json().catch(() => null);
  return body?.status === "degraded";
}

/** Mark the banner busy while a probe is out (assistive technology, and tests, can see it). */
function markProbing(on) {
  const banner = document.getElementById("banner");
  if (!banner) return;
  if (on) banner.setAttribute("aria-busy", "true");
  else banner.removeAttribute("aria-busy");
}

function probe() {
  if (!down) return Promise.resolve();
  if (probing) return probing;
  clearTimeout(timer);
  markProbing(true);
  probing = answers().then((back) => {
    probing = null;
    markProbing(false);
    if (!down) return;
    if (back) connectionBack();
    else schedule();
  });
  return probing;
}

/** A request could not reach the server: raise the banner and probe until it answers. */
export function connectionLost() {
  if (down) return;
  down = true;
  if (Date.now() - backAt > 30_000) delay = FIRST_DELAY;
  drawBanner();
  schedule();
}

/** The server answered: drop the banner and wake everyone waiting for it. */
export function connectionBack() {
  if (!down) return;
  down = false;
  backAt = Date.now();
  clearTimeout(timer);
  drawBanner();
  for (const fn of [...waiting]) {
    try {
      fn();
    } catch (err) {
      console.error(err);
    }
  }
}

/** Whether the server is known to be unreachable right now. */
export function isDown() {
  return down;
}

/** Probe the server at once (the banner's Retry button), starting the backoff over. */
export function retryNow() {
  if (!down) return Promise.resolve();
  delay = FIRST_DELAY;
  return probe();
}

/** Call `fn` each time the server answers again after being unreachable; returns an unsubscribe. */
export function onReconnect(fn) {
  waiting.add(fn);
  return () => waiting.delete(fn);
}

/** A promise that resolves when the server answers again (at once when it is not known down). */
export function whenBack() {
  if (!down) return Promise.resolve();
  return new Promise((resolve) => {
    const off = onReconnect(() => {
      off();
      resolve();
    });
  });
}

/** Tell the banner whether the last request reached the server. */
export function reportConnection(ok) {
  if (ok) connectionBack();
  else connectionLost();
}

/**
 * Call `fn` now and then every `interval` ms while the page is shown. A failure that is a lost
 * connection raises the banner and retries with backoff; other failures go to
 * `onError(err, retry)`, where `retry` polls once more at once (for a Retry button). `busy`, an
 * element (the one `onError` writes into), is marked aria-busy while a poll is out.
 * Returns a function that polls once more at once.
 */
export function poll(ctx, fn, { interval = 1000, onError, busy } = {}) {
  let timer = null;
  let delay = interval;
  let stopped = false;
  let running = false;
  const tick = async () => {
    if (stopped || !ctx.alive()) return;
    if (running) return;
    running = true;
    clearTimeout(timer);
    busy?.setAttribute("aria-busy", "true");
    try {
      const again = await fn();
      reportConnection(true);
      delay = interval;
      if (again === false) stopped = true;
    } catch (raw) {
      const err = raw?.needsSignIn ? raw : explain(raw);
      if (err.needsSignIn) {
        // The session expired or was revoked: show the page's sign-in gate.
        stopped = true;
        ctx.rerender();
        return;
      }
      if (err.offline) {
        reportConnection(false);
        delay = Math.min(delay * 2, MAX_DELAY);
      } else {
        onError?.(err, () => {
          if (!stopped) tick();
        });
      }
    } finally {
      running = false;
      busy?.removeAttribute("aria-busy");
    }
    if (!stopped && ctx.alive()) timer = setTimeout(tick, delay);
  };
  ctx.onLeave(() => {
    stopped = true;
    clearTimeout(timer);
  });
  tick();
  return () => {
    if (!stopped) tick();
  };
}
