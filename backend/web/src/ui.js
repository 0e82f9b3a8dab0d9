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

/** A slot that shows one message at a time (or none). */
export function messageSlot(attrs) {
  const el = h("div", { class: "msg-slot", ...attrs });
  el.show = (kind, text, detail) => replace(el, message(kind, text, detail));
  el.error = (err) => {
    const { text, detail } = describeError(err);
    replace(el, message("error", text, detail));
  };
  el.clear = () => el.replaceChildren();
  return el;
}

/** A human sentence (and optional detail lines) for any error thrown by our modules. */
export function describeError(err) {
  if (!err) return { text: t("error.unknown") };
  if (err.userMessage) return { text: err.userMessage, detail: err.detail };
  return { text: err.message || String(err) };
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

/** A modal dialog; returns { el, close }. */
export function modal(title, ...body) {
  const back = h("div", { class: "modal-back", role: "dialog", "aria-modal": "true", "aria-label": title });
  const close = () => back.remove();
  back.addEventListener("click", (e) => {
    if (e.target === back) close();
  });
  back.append(
    h(
      "div",
      { class: "modal" },
      h(
        "div",
        { class: "spread" },
        h("h2", null, title),
        h("button", { class: "btn quiet small", onclick: close, "aria-label": t("ui.close") }, "✕"),
      ),
      ...body,
    ),
  );
  document.body.append(back);
  return { el: back, close };
}
