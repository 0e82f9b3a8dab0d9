// Alerts: where the signed-in wallet is told what happens to its orders (webhooks, email), a
// test button per endpoint, the secret shown once, and messages that never got through.
import { del, get, post } from "../api.js";
import { userError } from "../chain.js";
import { has, t } from "../i18n.js";
import { gate } from "../session.js";
import { busy, field, h, message, messageSlot, replace } from "../ui.js";

/** The card that adds an endpoint; `onAdded(endpoint)` gets the answer (with its secret). */
function addCard(kinds, onAdded) {
  const kind = h(
    "select",
    { "data-test": "endpoint-kind" },
    h("option", { value: "webhook" }, t("notify.kind.webhook.option")),
    h("option", { value: "email" }, t("notify.kind.email")),
  );
  const target = h("input", {
    type: "text",
    placeholder: "https://your-shop.example/hooks/kameng",
    "data-test": "endpoint-target",
    autocomplete: "off",
  });
  const boxes = kinds.map((k) =>
    h(
      "label",
      { class: "check", title: k.text },
      h("input", { type: "checkbox", value: k.name, checked: true, "data-test": "endpoint-event" }),
      ` ${has(`notify.event.${k.name}`) ? t(`notify.event.${k.name}`) : k.name}`,
    ),
  );
  const slot = messageSlot({ "data-test": "endpoint-message" });
  const btn = h("button", { class: "btn", "data-test": "endpoint-add" }, t("notify.add.button"));
  kind.addEventListener("change", () => {
    target.placeholder = kind.value === "email" ? "you@example.com" : "https://your-shop.example/hooks/kameng";
  });
  btn.addEventListener("click", () =>
    busy(btn, slot, async () => {
      if (!target.value.trim()) throw userError(t("notify.add.noTarget"));
      const events = boxes
        .map((b) => b.querySelector("input"))
        .filter((i) => i.checked)
        .map((i) => i.value);
      if (!events.length) throw userError(t("notify.add.noKinds"));
      const made = await post(
        "/notifications/endpoints",
        { kind: kind.value, target: target.value.trim(), events: events.length === kinds.length ? undefined : events },
        { auth: true },
      );
      target.value = "";
      onAdded(made);
    }),
  );
  return h(
    "div",
    { class: "card" },
    h("h2", null, t("notify.add.title")),
    field(t("notify.add.by"), kind),
    field(t("notify.add.to"), target, t("notify.add.hint")),
    h("div", { class: "checks" }, ...boxes),
    slot,
    btn,
  );
}

/** The secret of a new or rotated webhook: shown once, here. */
function secretNotice(made) {
  if (!made.secret) return message("ok", t("notify.added", { target: made.target }));
  return h(
    "div",
    { class: "message ok", "data-test": "endpoint-secret" },
    h("p", null, t("notify.added.secret", { target: made.target })),
    h("code", { class: "wrap" }, made.secret),
  );
}

function endpointRow(e, refresh) {
  const slot = messageSlot({ "data-test": "endpoint-test-result" });
  const test = h("button", { class: "btn small", "data-test": "endpoint-test" }, t("notify.test.button"));
  test.addEventListener("click", () =>
    busy(test, slot, async () => {
      const r = await post(`/notifications/endpoints/${e.id}/test`, {}, { auth: true });
      if (r.delivered) slot.show("ok", t("notify.test.ok"));
      else slot.show("error", t("notify.test.failed", { error: r.error }));
    }),
  );
  const remove = h("button", { class: "btn small quiet", "data-test": "endpoint-remove" }, t("notify.remove"));
  remove.addEventListener("click", () =>
    busy(remove, slot, async () => {
      await del(`/notifications/endpoints/${e.id}`, { auth: true });
      refresh();
    }),
  );
  return h(
    "tr",
    { "data-test": "endpoint" },
    h("td", null, e.kind === "webhook" || e.kind === "email" ? t(`notify.kind.${e.kind}`) : e.kind),
    h("td", { class: "wrap" }, e.target),
    h("td", { class: "small" }, e.events[0] === "*" ? t("notify.kinds.all") : e.events.join(", ")),
    h("td", null, test, " ", remove, slot),
  );
}

function deadCard(dead, refresh) {
  if (!dead.length) return null;
  const rows = dead.map((m) => {
    const slot = messageSlot();
    const again = h("button", { class: "btn small", "data-test": "dead-replay" }, t("notify.dead.again"));
    again.addEventListener("click", () =>
      busy(again, slot, async () => {
        await post(`/notifications/messages/${m.id}/replay`, {}, { auth: true });
        refresh();
      }),
    );
    return h(
      "tr",
      { "data-test": "dead" },
      h("td", null, m.type),
      h("td", null, String(m.attempts)),
      h("td", { class: "small" }, m.last_error || ""),
      h("td", null, again, slot),
    );
  });
  return h(
    "div",
    { class: "card" },
    h("h2", null, t("notify.dead.title")),
    h("p", { class: "muted" }, t("notify.dead.intro")),
    h(
      "table",
      null,
      h(
        "tr",
        null,
        h("th", null, t("notify.dead.kind")),
        h("th", null, t("notify.dead.tries")),
        h("th", null, t("notify.dead.lastError")),
        h("th", null, h("span", { class: "sr-only" }, t("ui.col.actions"))),
      ),
      ...rows,
    ),
  );
}

export async function notifyPage(ctx) {
  const title = h("h1", null, t("notify.title"));
  const g = gate(ctx, { needSignIn: true, why: t("notify.why") });
  if (g) return h("section", null, title, g);
  const kinds = await get("/notifications/kinds");
  const notice = h("div", { "data-test": "endpoint-notice" });
  const list = h("div");
  const refresh = async () => {
    const [endpoints, dead] = await Promise.all([
      get("/notifications/endpoints", { auth: true }),
      get("/notifications/dead", { auth: true }),
    ]);
    if (!ctx.alive()) return;
    const table = endpoints.length
      ? h(
          "table",
          { "data-test": "endpoints" },
          h(
            "tr",
            null,
            h("th", null, t("notify.col.by")),
            h("th", null, t("notify.col.to")),
            h("th", null, t("notify.col.kinds")),
            h("th", null, h("span", { class: "sr-only" }, t("ui.col.actions"))),
          ),
          ...endpoints.map((e) => endpointRow(e, refresh)),
        )
      : h("p", { class: "muted", "data-test": "no-endpoints" }, t("notify.none"));
    replace(list, h("div", { class: "card" }, h("h2", null, t("notify.list.title")), table), deadCard(dead, refresh));
  };
  await refresh();
  const add = addCard(kinds, (made) => {
    replace(notice, secretNotice(made));
    refresh();
  });
  return h("section", null, title, h("p", { class: "muted" }, t("notify.intro")), notice, add, list);
}
