// The connection banner and polling that survives a lost connection.
import { explain } from "./chain.js";
import { t } from "./i18n.js";

/** Tell the banner whether the last request reached the server. */
export function reportConnection(ok) {
  const banner = document.getElementById("banner");
  if (!banner) return;
  if (ok) {
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  banner.className = "banner bad";
  banner.textContent = t("status.connectionLost");
}

/**
 * Call `fn` now and then every `interval` ms while the page is shown. A failure that is a lost
 * connection raises the banner and retries with backoff; other failures go to `onError`.
 * Returns a function that polls once more at once.
 */
export function poll(ctx, fn, { interval = 1000, onError } = {}) {
  let timer = null;
  let delay = interval;
  let stopped = false;
  let running = false;
  const tick = async () => {
    if (stopped || !ctx.alive()) return;
    if (running) return;
    running = true;
    clearTimeout(timer);
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
        delay = Math.min(delay * 2, 8000);
      } else {
        onError?.(err);
      }
    } finally {
      running = false;
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
