// The arbiter console: the dispute queue with deadlines, each dispute's evidence bundle with a
// checklist verified against the chain in this browser, and the ruling form (split and slash).
import { keccak256, stringToHex, toEventSelector, toHex } from "viem";
import { get, post } from "../api.js";
import {
  ESCROW_ABI,
  decodeLogs,
  fmtAmount,
  hashOrder,
  net,
  read,
  rebuildOrder,
  splitOrderId,
  tokenInfo,
  userError,
} from "../chain.js";
import { addr, bps, duration, orderLabel, orderRef, short, txLink, when } from "../fmt.js";
import { t, tn } from "../i18n.js";
import { uriLink } from "../links.js";
import { gate } from "../session.js";
import { poll } from "../status.js";
import { busy, describeError, errorView, field, h, message, messageSlot, pill, replace } from "../ui.js";
import { sendEscrow, wallet } from "../wallet.js";

const topic = (name) => toEventSelector(ESCROW_ABI.find((x) => x.type === "event" && x.name === name));
/** Ruling reasons: the on-chain code (bytes32 text) and its label's message id. */
const REASONS = ["code-already-redeemed", "code-invalid", "not-as-described", "buyer-claim-rejected", "partial-fault"];

/** Decode a data: URI evidence document; other URIs are shown with `uriLink` (a link or text). */
function readEvidence(uri, expectedHash) {
  if (!uri.startsWith("data:")) return { doc: null, hashOk: null };
  try {
    const comma = uri.indexOf(",");
    const head = uri.slice(0, comma);
    const body = uri.slice(comma + 1);
    const text = head.includes(";base64")
      ? new TextDecoder().decode(Uint8Array.from(atob(body), (c) => c.charCodeAt(0)))
      : decodeURIComponent(body);
    const hashOk = keccak256(new TextEncoder().encode(text)).toLowerCase() === expectedHash.toLowerCase();
    return { doc: JSON.parse(text), hashOk };
  } catch {
    return { doc: null, hashOk: false };
  }
}

/** Whether a data: URI's base64 body hashes to `fileHash` (false for anything that does not decode). */
function fileHashOk(fileURI, fileHash) {
  try {
    const body = String(fileURI).split(",")[1] || "";
    return keccak256(Uint8Array.from(atob(body), (c) => c.charCodeAt(0))) === fileHash;
  } catch {
    return false;
  }
}

/** One piece of evidence; a document that cannot be shown is reported, not left to break the console. */
function evidenceItem(ev, d) {
  try {
    return evidenceCard(ev, d);
  } catch {
    return h(
      "li",
      { class: "card", "data-test": "evidence" },
      h(
        "div",
        { class: "spread" },
        h("strong", null, tn("arbiter.party.party", { address: addr(ev.party) })),
        txLink(ev.tx_hash, ev.block_number),
      ),
      message("warn", t("arbiter.evidence.undisplayable"), uriLink(ev.uri, { "data-test": "evidence-uri" })),
    );
  }
}

function evidenceCard(ev, d) {
  const { doc, hashOk } = readEvidence(ev.uri, ev.evidence_hash);
  const party =
    ev.party.toLowerCase() === d.buyer.toLowerCase()
      ? "buyer"
      : ev.party.toLowerCase() === d.supplier.toLowerCase()
        ? "supplier"
        : "party";
  return h(
    "li",
    { class: "card", "data-test": "evidence" },
    h(
      "div",
      { class: "spread" },
      h("strong", null, tn(`arbiter.party.${party}`, { address: addr(ev.party) })),
      txLink(ev.tx_hash, ev.block_number),
    ),
    doc
      ? h(
          "div",
          null,
          doc.title ? h("div", { class: "small muted" }, doc.title) : null,
          h("p", { "data-test": "evidence-text" }, doc.description || ""),
          doc.fileName
            ? h(
                "div",
                { class: "small" },
                t("arbiter.evidence.file"),
                doc.fileURI
                  ? uriLink(doc.fileURI, {
                      label: String(doc.fileName),
                      fileName: String(doc.fileName),
                      "data-test": "evidence-file",
                    })
                  : h("span", null, doc.fileName),
                t("arbiter.evidence.fileFacts", {
                  size: String(doc.fileSize ?? "?"),
                  hash: short(doc.fileHash, 10, 4),
                }),
                doc.fileURI && fileHashOk(doc.fileURI, doc.fileHash)
                  ? pill(t("arbiter.evidence.fileHashOk"), "ok")
                  : null,
              )
            : null,
          doc.verification
            ? h(
                "div",
                { class: "small" },
                t("arbiter.evidence.buyerCheck"),
                doc.verification.ok
                  ? pill(t("arbiter.evidence.codesPassed"), "ok")
                  : pill(
                      t("arbiter.evidence.failed", {
                        checks: (doc.verification.failed || []).join(", ") || t("arbiter.evidence.perCode"),
                      }),
                      "bad",
                    ),
              )
            : null,
        )
      : h("div", { class: "small" }, uriLink(ev.uri, { "data-test": "evidence-uri" })),
    h(
      "div",
      { class: "small" },
      tn("arbiter.evidence.hash", { hash: h("span", { class: "mono" }, short(ev.evidence_hash, 10, 6)) }),
      " ",
      hashOk === null
        ? pill(t("arbiter.evidence.offsite"), "warn")
        : hashOk
          ? pill(t("arbiter.evidence.matches"), "ok")
          : pill(t("arbiter.evidence.mismatch"), "bad"),
    ),
  );
}

/** A dispute's evidence: the opening one, then what was added (each once). */
function evidenceOf(d) {
  // The opening evidence is usually in `evidence` too (the ERC-1497 Evidence event of dispute()).
  const opening = {
    party: d.buyer,
    uri: d.evidence_uri,
    evidence_hash: d.evidence_hash,
    tx_hash: d.opened_tx,
    block_number: d.opened_block,
  };
  const seen = new Set();
  return [opening, ...d.evidence].filter((e) => {
    const key = `${e.tx_hash}|${e.evidence_hash}`.toLowerCase();
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The backend's evidence bundle for the order and its verification (null when unavailable). */
async function serverBundle(orderId) {
  try {
    const bundle = await get(`/evidence/orders/${orderId}`, { auth: true });
    const checklist = await post("/evidence/verify", { document: bundle.document });
    return { bundle, checklist };
  } catch (err) {
    return { error: err };
  }
}

const CLAIM_MARK = { pass: "✓", fail: "✗", skip: "–" };

function bundleCard(server) {
  if (server.error) {
    return h(
      "div",
      { class: "card" },
      h("h3", null, t("arbiter.bundle.title")),
      message("warn", t("arbiter.bundle.unavailable"), describeError(server.error).text),
    );
  }
  const { bundle, checklist } = server;
  const blob = URL.createObjectURL(new Blob([bundle.document], { type: "application/json" }));
  const failed = checklist.claims.filter((c) => c.status === "fail");
  return h(
    "div",
    { class: "card", "data-test": "bundle" },
    h(
      "div",
      { class: "spread" },
      h("h3", null, t("arbiter.bundle.title")),
      checklist.ok
        ? pill(t("arbiter.bundle.verified"), "ok", { "data-test": "bundle-verdict" })
        : pill(t("arbiter.bundle.fails"), "bad", { "data-test": "bundle-verdict" }),
    ),
    h(
      "p",
      { class: "small muted" },
      tn("arbiter.bundle.intro", { command: h("code", null, "kameng verify") /* i18n-ignore: a command */ }),
    ),
    h(
      "dl",
      { class: "kv small" },
      h("dt", null, "selfHash"),
      h("dd", { class: "mono" }, bundle.self_hash),
      h("dt", null, t("arbiter.bundle.hash")),
      h("dd", { class: "mono", "data-test": "server-bundle-hash" }, bundle.bundle_hash),
      h("dt", null, t("arbiter.bundle.additions")),
      h(
        "dd",
        null,
        bundle.with_buyer_secret ? pill(t("arbiter.bundle.buyerKey"), "ok") : pill(t("arbiter.bundle.noBuyerKey"), ""),
        " ",
        bundle.with_supplier_codes
          ? pill(t("arbiter.bundle.supplierCodes"), "ok")
          : pill(t("arbiter.bundle.noSupplierCodes"), ""),
      ),
    ),
    h(
      "a",
      { class: "btn small quiet", href: blob, download: `kameng-evidence-${bundle.order_id}.json` },
      t("arbiter.bundle.download"),
    ),
    failed.length
      ? message(
          "error",
          t("arbiter.bundle.doNotRule"),
          failed.map((c) => `${c.name}: ${c.detail}`),
        )
      : null,
    h("h3", { style: { marginTop: ".8rem" } }, t("arbiter.bundle.checklist")),
    h(
      "ul",
      { class: "small", "data-test": "claims" },
      checklist.claims.map((c) =>
        h(
          "li",
          { "data-test": "claim", "data-status": c.status },
          `${CLAIM_MARK[c.status] ?? "?"} `,
          h("strong", null, c.name),
          ` ${c.detail}`,
        ),
      ),
    ),
    checklist.findings.length ? h("h3", null, t("arbiter.bundle.findings")) : null,
    checklist.findings.length
      ? h(
          "ul",
          { class: "small", "data-test": "findings" },
          checklist.findings.map((f) => h("li", { "data-test": "finding" }, h("strong", null, f.kind), ` ${f.detail}`)),
        )
      : null,
  );
}

/** The checklist a verifier can repeat from the chain alone. */
async function checklist(d) {
  const items = [];
  // `key` (a message id) names the check in the bundle hash, the same in every language.
  const add = (key, ok, detail) => items.push({ key, label: t(key), ok, detail });
  const { listingId, firstIndex } = splitOrderId(d.order_id);
  const order = await rebuildOrder(d.order_id, 0n);
  const stored = await read("orderHash", [BigInt(d.order_id)]);
  add("arbiter.check.rebuilt", Boolean(order) && hashOrder(order) === stored, order ? null : t("arbiter.check.noPaid"));
  const logs = await net.client.request({
    method: "eth_getLogs",
    params: [
      {
        address: net.escrow,
        fromBlock: "0x0",
        toBlock: "latest",
        topics: [null, toHex(BigInt(d.order_id), { size: 32 })],
      },
    ],
  });
  const evs = decodeLogs(logs);
  const paid = evs.find((e) => e.name === "OrderPaid");
  const delivered = evs.find((e) => e.name === "OrderDelivered");
  const batches = decodeLogs(
    await net.client.request({
      method: "eth_getLogs",
      params: [
        {
          address: net.escrow,
          fromBlock: "0x0",
          toBlock: "latest",
          topics: [topic("BatchCommitted"), toHex(listingId, { size: 32 })],
        },
      ],
    }),
  );
  const q = Number(paid?.args.quantity ?? 0);
  const covering = batches.filter(
    (b) => Number(b.args.firstIndex) < firstIndex + q && firstIndex < Number(b.args.firstIndex) + Number(b.args.count),
  );
  add(
    "arbiter.check.committed",
    Boolean(paid) &&
      covering.length > 0 &&
      covering.every((b) => Number(b.log.blockNumber) < Number(paid.log.blockNumber)),
    covering
      .map((b) =>
        t("arbiter.check.batchInBlock", {
          batch: String(b.args.batchIndex),
          block: String(Number(b.log.blockNumber)),
        }),
      )
      .join(", ") + (paid ? t("arbiter.check.paidInBlock", { block: String(Number(paid.log.blockNumber)) }) : ""),
  );
  if (delivered && paid) {
    const block = await net.client.getBlock({ blockHash: delivered.log.blockHash });
    add(
      "arbiter.check.inTime",
      Number(block.timestamp) <= Number(paid.args.deadline),
      t("arbiter.check.inTime.detail", { delivered: when(block.timestamp), deadline: when(paid.args.deadline) }),
    );
    add(
      "arbiter.check.digest",
      true,
      t("arbiter.check.digest.detail", { digest: short(delivered.args.releaseDigest, 10, 6) }),
    );
  } else {
    add("arbiter.check.delivered", false, t("arbiter.check.noDelivered"));
  }
  return { items, order, paid, delivered, events: evs };
}

function rulingForm(d, facts, onRuled) {
  const amount = BigInt(d.amount);
  const bond = BigInt(d.bond);
  const buyer = h("input", {
    type: "range",
    min: "0",
    max: "100",
    step: "5",
    value: "100",
    "data-test": "buyer-share",
  });
  const slash = h("input", { type: "range", min: "0", max: "100", step: "5", value: "0", "data-test": "slash" });
  const reason = h(
    "select",
    { "data-test": "reason" },
    REASONS.map((v) => h("option", { value: v }, t(`arbiter.reason.${v}`))),
  );
  const summary = h("p", { class: "small", "data-test": "ruling-summary" });
  const buyerOut = h("output", null, "");
  const slashOut = h("output", null, "");
  const update = () => {
    buyerOut.textContent = `${buyer.value}%`;
    slashOut.textContent = `${slash.value}%`;
    const b = BigInt(Number(buyer.value) * 100);
    const s = BigInt(Number(slash.value) * 100);
    const toBuyer = (amount * b) / 10000n + (bond * s) / 10000n;
    replace(
      summary,
      t(s ? "arbiter.rule.summarySlash" : "arbiter.rule.summary", {
        buyer: fmtAmount((amount * b) / 10000n, d.token),
        slashed: fmtAmount((bond * s) / 10000n, d.token),
        total: fmtAmount(toBuyer, d.token),
        supplier: fmtAmount(amount - (amount * b) / 10000n, d.token),
        bond: fmtAmount(bond - (bond * s) / 10000n, d.token),
      }),
    );
  };
  buyer.addEventListener("input", update);
  slash.addEventListener("input", update);
  update();
  const bundle = {
    order_id: String(d.order_id),
    evidence: facts.evidence.map((e) => ({ party: e.party, evidence_hash: e.evidence_hash, tx: e.tx_hash })),
    checklist: facts.items.map((i) => ({ label: i.key, ok: i.ok })),
  };
  const serverOk = facts.server && !facts.server.error;
  const bundleHash = serverOk
    ? facts.server.bundle.bundle_hash
    : keccak256(new TextEncoder().encode(JSON.stringify(bundle)));
  const refused = serverOk && facts.server.checklist.claims.some((c) => c.status === "fail");
  const slot = messageSlot({ "data-test": "ruling-message" });
  const btn = h("button", { class: "btn", "data-test": "rule", disabled: refused }, t("arbiter.rule.button"));
  btn.addEventListener("click", () =>
    busy(btn, slot, async () => {
      if (!facts.order) throw userError(t("arbiter.rule.noOrder"));
      const r = await sendEscrow("rule", [
        BigInt(d.order_id),
        facts.order,
        Number(buyer.value) * 100,
        Number(slash.value) * 100,
        bundleHash,
        stringToHex(reason.value, { size: 32 }),
      ]);
      const ev = r.events.find((e) => e.name === "DisputeRuled");
      replace(
        slot,
        h(
          "div",
          { class: "msg ok", "data-test": "ruling-result" },
          h("strong", null, t("arbiter.rule.done"), " "),
          ev
            ? `${t("arbiter.rule.credited", {
                buyer: fmtAmount(ev.args.buyerAmount + ev.args.slashed, d.token),
                slashed: fmtAmount(ev.args.slashed, d.token),
                supplier: fmtAmount(ev.args.supplierAmount, d.token),
              })} `
            : "",
          txLink(r.hash, Number(r.receipt.blockNumber)),
        ),
      );
      btn.remove();
      onRuled?.();
    }),
  );
  return h(
    "div",
    { class: "card" },
    h("h2", null, t("arbiter.rule.title")),
    field(h("span", null, tn("arbiter.rule.buyerShare", { value: buyerOut })), buyer),
    field(h("span", null, tn("arbiter.rule.slash", { value: slashOut })), slash),
    field(t("arbiter.rule.reason"), reason),
    summary,
    h(
      "p",
      { class: "small muted" },
      tn(serverOk ? "arbiter.rule.cites.server" : "arbiter.rule.cites.local", {
        hash: h("span", { class: "mono", "data-test": "bundle-hash" }, short(bundleHash, 10, 6)),
      }),
    ),
    slot,
    btn,
  );
}

/** #/arbiter */
export async function arbiterPage(ctx) {
  const title = h("h1", null, t("arbiter.title"));
  const g = gate(ctx, { needSignIn: true, why: t("arbiter.why") });
  if (g) return h("section", null, title, g);
  const me = await get("/auth/me", { auth: true });
  if (!me.is_arbiter)
    return h(
      "section",
      null,
      title,
      message("error", t("arbiter.notArbiter", { address: wallet.address }), t("arbiter.notArbiter.detail")),
    );
  const queueBox = h("div", { "data-test": "queue" });
  const detail = h("div");
  let selected = null;

  const open = async (d) => {
    selected = String(d.order_id);
    await tokenInfo(d.token);
    replace(detail, h("p", { class: "muted" }, t("arbiter.checking")));
    const [facts, server] = await Promise.all([checklist(d), serverBundle(d.order_id)]);
    const all = evidenceOf(d);
    replace(
      detail,
      h(
        "div",
        { "data-test": "dispute-detail" },
        h("h2", null, t("arbiter.dispute.title", { order: orderRef(d.order_id) })),
        h(
          "div",
          { class: "cols" },
          h(
            "div",
            { class: "card" },
            h("h3", null, t("arbiter.order.title")),
            h(
              "dl",
              { class: "kv" },
              h("dt", null, t("arbiter.order.buyer")),
              h("dd", null, addr(d.buyer, d.buyer)),
              h("dt", null, t("arbiter.order.supplier")),
              h("dd", null, addr(d.supplier, d.supplier)),
              h("dt", null, t("arbiter.order.payment")),
              h("dd", null, fmtAmount(d.amount, d.token)),
              h("dt", null, t("arbiter.order.bond")),
              h("dd", null, fmtAmount(d.bond, d.token)),
              h("dt", null, t("arbiter.order.paid")),
              h(
                "dd",
                null,
                facts.paid ? txLink(facts.paid.log.transactionHash, Number(facts.paid.log.blockNumber)) : "—",
              ),
              h("dt", null, t("arbiter.order.delivered")),
              h(
                "dd",
                null,
                facts.delivered
                  ? txLink(facts.delivered.log.transactionHash, Number(facts.delivered.log.blockNumber))
                  : "—",
              ),
              h("dt", null, t("arbiter.order.disputed")),
              h("dd", null, txLink(d.opened_tx, d.opened_block), " · ", when(d.opened_at)),
              h("dt", null, t("arbiter.order.ruleBy")),
              h(
                "dd",
                null,
                when(d.arbitration_deadline),
                " ",
                d.overdue
                  ? pill(t("arbiter.overdue"), "bad")
                  : `(${t("order.left", { duration: duration(d.seconds_left) })})`,
              ),
            ),
          ),
          h(
            "div",
            { class: "card" },
            h("h3", null, t("arbiter.checked.title")),
            h("p", { class: "small muted" }, t("arbiter.checked.intro")),
            h(
              "ul",
              { class: "small", "data-test": "checklist" },
              facts.items.map((i) =>
                h(
                  "li",
                  { "data-test": "check", "data-ok": String(i.ok) },
                  i.ok ? "✓ " : "✗ ",
                  i.label,
                  i.detail ? h("div", { class: "muted" }, i.detail) : null,
                ),
              ),
            ),
          ),
        ),
        bundleCard(server),
        h("h3", null, t("arbiter.evidence.title", { count: all.length })),
        h(
          "ul",
          { style: { listStyle: "none", padding: 0 } },
          all.map((ev) => evidenceItem(ev, d)),
        ),
        d.ruled
          ? message(
              "info",
              t(d.arbiter ? "arbiter.ruledBy" : "arbiter.ruledByTimeout", {
                arbiter: d.arbiter ? short(d.arbiter) : "",
                buyer: bps(d.buyer_bps ?? 0),
                slash: bps(d.slash_bps ?? 0),
              }),
            )
          : rulingForm(d, { ...facts, evidence: all, server }, () => refresh()),
      ),
    );
  };

  const refresh = poll(
    ctx,
    async () => {
      const disputes = await get("/arbiter/disputes?include_ruled=true", { auth: true });
      await Promise.all([...new Set(disputes.map((d) => d.token))].map(tokenInfo));
      const openOnes = disputes.filter((d) => !d.ruled);
      replace(
        queueBox,
        h(
          "div",
          { class: "spread" },
          h("h2", null, t("arbiter.queue.title", { count: openOnes.length })),
          h("span", { class: "small muted" }, t("arbiter.queue.note")),
        ),
        disputes.length
          ? h(
              "div",
              { class: "table-wrap", tabindex: "0" },
              h(
                "table",
                { class: "stack-sm" },
                h(
                  "thead",
                  null,
                  h(
                    "tr",
                    null,
                    [
                      t("arbiter.col.order"),
                      t("arbiter.col.payment"),
                      t("arbiter.col.opened"),
                      t("arbiter.col.deadline"),
                      t("arbiter.col.evidence"),
                      h("span", { class: "sr-only" }, t("ui.col.actions")),
                    ].map((label) => h("th", null, label)),
                  ),
                ),
                h(
                  "tbody",
                  null,
                  disputes.map((d) =>
                    h(
                      "tr",
                      { "data-test": "dispute-row", "data-order": String(d.order_id) },
                      h(
                        "td",
                        { "data-label": t("arbiter.col.order") },
                        orderLabel(d.order_id),
                        h("div", { class: "small muted" }, t("product.listing", { id: String(d.listing_id) })),
                      ),
                      h("td", { "data-label": t("arbiter.col.payment"), class: "num" }, fmtAmount(d.amount, d.token)),
                      h("td", { "data-label": t("arbiter.col.opened") }, txLink(d.opened_tx, d.opened_block)),
                      h(
                        "td",
                        { "data-label": t("arbiter.col.deadline"), class: "countdown" },
                        d.ruled
                          ? pill(t("arbiter.ruled"), "ok")
                          : d.overdue
                            ? pill(t("arbiter.overdueBy", { duration: duration(d.seconds_left) }), "bad")
                            : pill(
                                t("order.left", { duration: duration(d.seconds_left) }),
                                d.seconds_left < 86400 ? "warn" : "",
                              ),
                        h("div", { class: "small muted" }, when(d.arbitration_deadline)),
                      ),
                      h("td", { "data-label": t("arbiter.col.evidence"), class: "num" }, `${evidenceOf(d).length}`),
                      h(
                        "td",
                        { "data-label": "" },
                        h(
                          "button",
                          { class: "btn small", "data-test": "review", onclick: () => open(d) },
                          d.ruled ? t("store.view") : t("arbiter.review"),
                        ),
                      ),
                    ),
                  ),
                ),
              ),
            )
          : message("ok", t("arbiter.queue.empty")),
      );
      if (selected && !disputes.some((d) => String(d.order_id) === selected)) replace(detail);
      return true;
    },
    { interval: 4000, onError: (err, retry) => replace(queueBox, errorView(err, retry)) },
  );

  return h(
    "section",
    null,
    title,
    h("p", { class: "muted" }, t("arbiter.signedInAs", { address: short(wallet.address) })),
    h("div", { class: "card" }, queueBox),
    detail,
  );
}
