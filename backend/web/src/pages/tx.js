// #/tx/<hash>: a transaction as the chain has it, with the escrow's events decoded. This is where
// every chain number on the site links to, so no outside block explorer is needed.
import { decodeLogs, fmtAmount, net } from "../chain.js";
import { addr, count, when } from "../fmt.js";
import { t } from "../i18n.js";
import { h, message, pill } from "../ui.js";

function show(value) {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return `[${value.map(show).join(", ")}]`;
  if (value && typeof value === "object")
    return JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  return String(value);
}

export async function txPage(ctx, hash) {
  const [tx, receipt] = await Promise.all([
    net.client.getTransaction({ hash }).catch(() => null),
    net.client.getTransactionReceipt({ hash }).catch(() => null),
  ]);
  if (!tx)
    return h(
      "section",
      null,
      h("h1", null, t("tx.title")),
      message("error", t("tx.notFound", { hash, chainId: String(net.chainId) })),
    );
  const block = receipt ? await net.client.getBlock({ blockNumber: receipt.blockNumber }) : null;
  const events = receipt ? decodeLogs(receipt.logs) : [];
  return h(
    "section",
    null,
    h(
      "a",
      {
        href: "#/",
        class: "small",
        onclick: (e) => {
          e.preventDefault();
          history.back();
        },
      },
      t("tx.back"),
    ),
    h("h1", null, t("tx.title")),
    h(
      "div",
      { class: "card" },
      h(
        "dl",
        { class: "kv", "data-test": "tx" },
        h("dt", null, t("tx.hash")),
        h("dd", { class: "mono" }, hash),
        h("dt", null, t("tx.status")),
        h(
          "dd",
          null,
          !receipt
            ? pill(t("tx.status.pending"), "warn")
            : receipt.status === "success"
              ? pill(t("tx.status.success"), "ok")
              : pill(t("tx.status.reverted"), "bad"),
        ),
        h("dt", null, t("tx.block")),
        h(
          "dd",
          { "data-test": "tx-block" },
          receipt ? `${receipt.blockNumber}` : "—",
          block ? ` · ${when(block.timestamp)}` : "",
        ),
        h("dt", null, t("tx.from")),
        h("dd", null, addr(tx.from, tx.from)),
        h("dt", null, t("tx.to")),
        h(
          "dd",
          null,
          tx.to ? addr(tx.to, tx.to) : t("tx.creation"),
          tx.to?.toLowerCase() === net.escrow.toLowerCase()
            ? h("span", null, " ", pill(t("tx.escrow"), "brand"))
            : null,
        ),
        h("dt", null, t("tx.value")),
        h("dd", null, fmtAmount(tx.value)),
        h("dt", null, t("tx.nonce")),
        h("dd", null, String(tx.nonce)),
        h("dt", null, t("tx.gasUsed")),
        h("dd", null, receipt ? count(receipt.gasUsed) : "—"),
      ),
    ),
    events.length
      ? h(
          "div",
          { class: "card" },
          h("h2", null, t("tx.events")),
          events.map((ev) =>
            h(
              "div",
              { class: "stack", style: { marginBottom: ".8rem" }, "data-test": "tx-event" },
              h("h3", null, ev.name),
              h(
                "dl",
                { class: "kv small" },
                Object.entries(ev.args).flatMap(([k, v]) => [h("dt", null, k), h("dd", { class: "mono" }, show(v))]),
              ),
            ),
          ),
        )
      : null,
  );
}
