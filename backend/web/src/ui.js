// Tiny DOM helpers: no framework, so the bundle stays small and every node is explicit.
import { t } from "./i18n.js";

/**
 * Make an element. `attrs` keys: `class`, `text`, `html` is not supported on purpose (no markup
 * from data ever reaches the DOM as HTML), `on<event>` handlers, `dataset`, `style`, and any
 * attribute; false/null/undefined attributes are left out.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** Append children: nodes, strings, numbers, arrays; null and false are skipped. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const SVG = "http://www.w3.org/2000/svg";

/** Make an SVG element with attributes. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A message box: kind is error, ok, warn or info. `detail` may be a list of lines. */
export function message(kind, text, detail) {
  const box = h("div", { class: `msg ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  if (Array.isArray(detail) && detail.length) {
    box.append(
      h(
        "ul",
        null,
        detail.map((line) => h("li", null, line)),
      ),
    );
  } else if (detail) {
    box.append(h("div", { class: "small" }, detail));
  }
  return box;
}

/**
 * A slot that shows one message at a time (or none). `slot.error(err, retry)` shows a failure as
 * `errorView` does.
 */
export function messageSlot(attrs) {
  const el = h("div", { class: "msg-slot", ...attrs });
  el.show = (kind, text, detail) => replace(el, message(kind, text, detail));
  el.error = (err, retry) => replace(el, errorView(err, retry));
  el.clear = () => el.replaceChildren();
  return el;
}

/**
 * A human sentence (and optional detail lines) for any error thrown by our modules, and whether
 * trying again may work (`retryable`: the server could not be reached, or had a problem). The
 * sentence is chosen by the error's kind where it is made: an unreachable server and a chain's
 * refusal in chain.js (`explain`, applied here to an error no module explained yet), an API
 * error by its status and code in api.js (`explainApiError`: a 5xx never shows the server's
 * bare text).
 */
export function describeError(raw) {
  if (!raw) return { text: t("error.unknown"), retryable: false };
  const err = raw.userMessage ? raw : explainError(raw);
  const retryable = Boolean(err.retryable || err.offline);
  if (err.userMessage) return { text: err.userMessage, detail: err.detail, retryable };
  return { text: err.message || String(err), retryable };
}

/** Turns a library's error (a chain client's, a failed fetch) into one of ours: see `explainErrorsWith`. */
let explainError = (err) => err;

/**
 * Have `describeError` explain errors that are not ours yet with `fn` (chain.js registers its
 * `explain`: a refused or unreachable chain, a rejected signature, in the reader's words). ui.js
 * does not import chain.js itself, so that its DOM helpers load without the chain client.
 */
export function explainErrorsWith(fn) {
  explainError = fn;
}

/**
 * What a page shows inline for a failed request: what happened, in the reader's language
 * (`describeError`), and a Retry button calling `retry` when one is given and trying again may
 * work. Returns a list of nodes for `replace` or `h`.
 */
export function errorView(err, retry) {
  const { text, detail, retryable } = describeError(err);
  return [
    message("error", text, detail),
    retry && retryable
      ? h(
          "button",
          {
            type: "button",
            class: "btn small",
            style: { marginBottom: "0.6rem" },
            "data-test": "error-retry",
            onclick: (e) => {
              e.currentTarget.disabled = true;
              retry();
            },
          },
          t("app.retry"),
        )
      : null,
  ];
}

/**
 * Run an async action from a button: disables it and shows a spinner while it runs, and reports
 * a failure into `slot` (a messageSlot) instead of throwing.
 */
export async function busy(button, slot, action) {
  if (button) {
    button.disabled = true;
    button.classList.add("busy");
  }
  slot?.clear?.();
  try {
    return await action();
  } catch (err) {
    if (slot) slot.error(err);
    else console.error(err);
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.classList.remove("busy");
    }
  }
}

/**
 * A button that asks first: pressing it opens an in-page "are you sure" (an alertdialog with
 * `question`, `explain`, yes and no); yes runs `act()` through `busy`, reporting failures into
 * `slot`; once it succeeds the question closes, then `done(result)` reports the outcome. `asking` (a Set) holds the keys whose
 * question is open, so that a redrawn row keeps it open. Test ids: `test` on the button,
 * `${prefix}-ask`, `${prefix}-yes` and `${prefix}-no` on the rest.
 * @param {{key: unknown, asking: Set<unknown>, slot: any, test: string, prefix: string, label: string,
 *   question: string, explain: string, yesLabel: string, noLabel: string,
 *   act: () => Promise<any>, done: (result: any) => unknown, buttonType?: string}} o
 * @returns {{button: HTMLElement, ask: HTMLElement}}
 */
export function askFirst(o) {
  const { key, asking, slot, test, prefix } = o;
  const button = h(
    "button",
    { class: "btn small quiet", "data-test": test, ...(o.buttonType ? { type: o.buttonType } : {}) },
    o.label,
  );
  const yes = h("button", { class: "btn small danger", type: "button", "data-test": `${prefix}-yes` }, o.yesLabel);
  const no = h("button", { class: "btn small quiet", type: "button", "data-test": `${prefix}-no` }, o.noLabel);
  const ask = h(
    "div",
    { class: "msg warn", role: "alertdialog", "aria-label": o.question, "data-test": `${prefix}-ask` },
    h("p", null, h("strong", null, o.question)),
    h("p", { class: "small" }, o.explain),
    h("div", { class: "row" }, yes, no),
  );
  ask.hidden = !asking.has(key);
  button.hidden = !ask.hidden;
  button.addEventListener("click", () => {
    slot.clear();
    asking.add(key);
    ask.hidden = false;
    button.hidden = true;
    yes.focus();
  });
  no.addEventListener("click", () => {
    asking.delete(key);
    ask.hidden = true;
    button.hidden = false;
    button.focus();
  });
  yes.addEventListener("click", () =>
    busy(yes, slot, async () => {
      no.disabled = true;
      try {
        const result = await o.act();
        asking.delete(key);
        ask.hidden = true;
        await o.done(result);
      } finally {
        no.disabled = false;
      }
    }),
  );
  return { button, ask };
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    input,
    hint ? h("div", { class: "hint" }, hint) : null,
  );
}

/** A stat tile. */
export function stat(label, value, sub, attrs) {
  return h(
    "div",
    { class: "stat", ...attrs },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
    sub ? h("div", { class: "sub" }, sub) : null,
  );
}

/** A pill. */
export function pill(text, kind = "", attrs) {
  return h("span", { class: `pill ${kind}`, ...attrs }, text);
}

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';
let dialogs = 0;

/**
 * A modal dialog; returns { el, close }. While it is open the rest of the page is inert (no
 * focus, no clicks, hidden from screen readers); focus moves into it (its first control after
 * the close button), Tab and Shift+Tab go round inside it, and Esc, the close button or a click
 * beside it closes it. Closing gives focus back to the element that had it before, if that is
 * still on the page.
 */
export function modal(title, ...body) {
  const titleId = `dialog-title-${++dialogs}`;
  const back = h("div", { class: "modal-back", role: "dialog", "aria-modal": "true", "aria-labelledby": titleId });
  const opener = document.activeElement;
  const silenced = [...document.body.children].filter((el) => !el.inert);
  let open = true;
  const close = () => {
    if (!open) return;
    open = false;
    document.removeEventListener("keydown", onKey);
    back.remove();
    for (const el of silenced) el.inert = false;
    if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
  };
  back.addEventListener("click", (e) => {
    if (e.target === back) close();
  });
  // On the document, not the dialog: a button that disables itself while it works drops the
  // focus to <body>, and Esc must still close.
  const onKey = (e) => {
    if (e.key === "Escape") {
      e.preventDefault();
      close();
      return;
    }
    if (e.key !== "Tab") return;
    const stops = [...back.querySelectorAll(FOCUSABLE)].filter((el) => el.getClientRects().length);
    if (!stops.length) return;
    const first = stops[0];
    const last = stops[stops.length - 1];
    if (e.shiftKey && (document.activeElement === first || !stops.includes(document.activeElement))) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && (document.activeElement === last || !stops.includes(document.activeElement))) {
      e.preventDefault();
      first.focus();
    }
  };
  const closeButton = h(
    "button",
    { type: "button", class: "btn quiet small", onclick: close, "aria-label": t("ui.close") },
    "✕",
  );
  const box = h(
    "div",
    { class: "modal", tabindex: "-1" },
    h("div", { class: "spread" }, h("h2", { id: titleId }, title), closeButton),
    ...body,
  );
  back.append(box);
  for (const el of silenced) el.inert = true;
  document.body.append(back);
  document.addEventListener("keydown", onKey);
  const start = [...box.querySelectorAll(FOCUSABLE)].find((el) => el !== closeButton && el.getClientRects().length);
  (start || closeButton).focus();
  return { el: back, close };
}
