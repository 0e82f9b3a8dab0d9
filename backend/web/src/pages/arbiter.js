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
import { addr, bps, duration, short, txLink, when } from "../fmt.js";
import { uriLink } from "../links.js";
import { gate } from "../session.js";
import { poll } from "../status.js";
import { busy, field, h, message, messageSlot, pill, replace } from "../ui.js";
import { sendEscrow, wallet } from "../wallet.js";

const topic = (name) => toEventSelector(ESCROW_ABI.find((x) => x.type === "event" && x.name === name));
const REASONS = [
  ["code-already-redeemed", "Code already redeemed (supplier at fault)"],
  ["code-invalid", "Code invalid or wrong product"],
  ["not-as-described", "Not as described"],
  ["buyer-claim-rejected", "Buyer's claim rejected (delivery proven)"],
  ["partial-fault", "Partial fault: split"],
];

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
      h("div", { class: "spread" }, h("strong", null, "Party ", addr(ev.party)), txLink(ev.tx_hash, ev.block_number)),
      message(
        "warn",
        "This evidence document could not be displayed.",
        uriLink(ev.uri, { "data-test": "evidence-uri" }),
      ),
    );
  }
}

function evidenceCard(ev, d) {
  const { doc, hashOk } = readEvidence(ev.uri, ev.evidence_hash);
  const party =
    ev.party.toLowerCase() === d.buyer.toLowerCase()
      ? "Buyer"
      : ev.party.toLowerCase() === d.supplier.toLowerCase()
        ? "Supplier"
        : "Party";
  return h(
    "li",
    { class: "card", "data-test": "evidence" },
    h("div", { class: "spread" }, h("strong", null, `${party} `, addr(ev.party)), txLink(ev.tx_hash, ev.block_number)),
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
                "File: ",
                doc.fileURI
                  ? uriLink(doc.fileURI, {
                      label: String(doc.fileName),
                      fileName: String(doc.fileName),
                      "data-test": "evidence-file",
                    })
                  : h("span", null, doc.fileName),
                ` (${doc.fileSize ?? "?"} bytes, keccak ${short(doc.fileHash, 10, 4)})`,
                doc.fileURI && fileHashOk(doc.fileURI, doc.fileHash) ? pill("file hash ✓", "ok") : null,
              )
            : null,
          doc.verification
            ? h(
                "div",
                { class: "small" },
                "Buyer's in-browser check: ",
                doc.verification.ok
                  ? pill("codes passed", "ok")
                  : pill(`failed: ${(doc.verification.failed || []).join(", ") || "per-code"}`, "bad"),
              )
            : null,
        )
      : h("div", { class: "small" }, uriLink(ev.uri, { "data-test": "evidence-uri" })),
    h(
      "div",
      { class: "small" },
      "Evidence hash ",
      h("span", { class: "mono" }, short(ev.evidence_hash, 10, 6)),
      " ",
      hashOk === null
        ? pill("off-site: check by hand", "warn")
        : hashOk
          ? pill("matches the document ✓", "ok")
          : pill("does not match ✗", "bad"),
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
      h("h3", null, "Evidence bundle"),
      message(
        "warn",
        "The backend's evidence bundle is not available; the checklist above is computed in this browser.",
        server.error.userMessage || server.error.message,
      ),
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
      h("h3", null, "Evidence bundle"),
      checklist.ok
        ? pill("verified against the chain", "ok", { "data-test": "bundle-verdict" })
        : pill("fails verification", "bad", { "data-test": "bundle-verdict" }),
    ),
    h(
      "p",
      { class: "small muted" },
      "One canonical document (ERC-1497) holding every chain fact of this order and the parties' additions. Anyone can re-check it offline with ",
      h("code", null, "kameng verify"),
      ".",
    ),
    h(
      "dl",
      { class: "kv small" },
      h("dt", null, "selfHash"),
      h("dd", { class: "mono" }, bundle.self_hash),
      h("dt", null, "Bundle hash"),
      h("dd", { class: "mono", "data-test": "server-bundle-hash" }, bundle.bundle_hash),
      h("dt", null, "Additions"),
      h(
        "dd",
        null,
        bundle.with_buyer_secret ? pill("buyer's order key", "ok") : pill("no buyer key", ""),
        " ",
        bundle.with_supplier_codes ? pill("supplier's codes", "ok") : pill("no supplier codes", ""),
      ),
    ),
    h(
      "a",
      { class: "btn small quiet", href: blob, download: `kameng-evidence-${bundle.order_id}.json` },
      "Download the bundle",
    ),
    failed.length
      ? message(
          "error",
          "This bundle fails verification: do not rule on it.",
          failed.map((c) => `${c.name}: ${c.detail}`),
        )
      : null,
    h("h3", { style: { marginTop: ".8rem" } }, "Verifier's checklist"),
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
    checklist.findings.length ? h("h3", null, "Findings") : null,
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
  const add = (label, ok, detail) => items.push({ label, ok, detail });
  const { listingId, firstIndex } = splitOrderId(d.order_id);
  const order = await rebuildOrder(d.order_id, 0n);
  const stored = await read("orderHash", [BigInt(d.order_id)]);
  add(
    "The order rebuilt from its events matches the hash stored on-chain",
    Boolean(order) && hashOrder(order) === stored,
    order ? null : "No OrderPaid event found.",
  );
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
    "Every sold code was committed on-chain before the sale",
    Boolean(paid) &&
      covering.length > 0 &&
      covering.every((b) => Number(b.log.blockNumber) < Number(paid.log.blockNumber)),
    covering.map((b) => `batch ${b.args.batchIndex} in block ${Number(b.log.blockNumber)}`).join(", ") +
      (paid ? `; paid in block ${Number(paid.log.blockNumber)}` : ""),
  );
  if (delivered && paid) {
    const block = await net.client.getBlock({ blockHash: delivered.log.blockHash });
    add(
      "Delivered before the delivery deadline",
      Number(block.timestamp) <= Number(paid.args.deadline),
      `delivered ${when(block.timestamp)}, deadline ${when(paid.args.deadline)}`,
    );
    add(
      "The release digest is on-chain (the buyer's codes are bound to it)",
      true,
      `digest ${short(delivered.args.releaseDigest, 10, 6)}`,
    );
  } else {
    add("The order was delivered", false, "No OrderDelivered event.");
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
    REASONS.map(([v, t]) => h("option", { value: v }, t)),
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
      `Buyer gets ${fmtAmount((amount * b) / 10000n, d.token)} of the payment`,
      s ? ` plus ${fmtAmount((bond * s) / 10000n, d.token)} slashed from the bond` : "",
      ` (${fmtAmount(toBuyer, d.token)} in all). Supplier gets ${fmtAmount(amount - (amount * b) / 10000n, d.token)} before fees; ${fmtAmount(bond - (bond * s) / 10000n, d.token)} of bond returns to it.`,
    );
  };
  buyer.addEventListener("input", update);
  slash.addEventListener("input", update);
  update();
  const bundle = {
    order_id: String(d.order_id),
    evidence: facts.evidence.map((e) => ({ party: e.party, evidence_hash: e.evidence_hash, tx: e.tx_hash })),
    checklist: facts.items.map((i) => ({ label: i.label, ok: i.ok })),
  };
  const serverOk = facts.server && !facts.server.error;
  const bundleHash = serverOk
    ? facts.server.bundle.bundle_hash
    : keccak256(new TextEncoder().encode(JSON.stringify(bundle)));
  const refused = serverOk && facts.server.checklist.claims.some((c) => c.status === "fail");
  const slot = messageSlot({ "data-test": "ruling-message" });
  const btn = h("button", { class: "btn", "data-test": "rule", disabled: refused }, "Rule on-chain");
  btn.addEventListener("click", () =>
    busy(btn, slot, async () => {
      if (!facts.order) throw userError("The order could not be rebuilt from the chain; reload.");
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
          h("strong", null, "Ruling recorded on-chain. "),
          ev
            ? `Buyer credited ${fmtAmount(ev.args.buyerAmount + ev.args.slashed, d.token)} (${fmtAmount(ev.args.slashed, d.token)} from the bond), supplier ${fmtAmount(ev.args.supplierAmount, d.token)}. `
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
    h("h2", null, "Ruling"),
    field(h("span", null, "Buyer's share of the payment: ", buyerOut), buyer),
    field(h("span", null, "Slash the supplier's bond to the buyer: ", slashOut), slash),
    field("Reason", reason),
    summary,
    h(
      "p",
      { class: "small muted" },
      "The ruling cites the bundle hash ",
      h("span", { class: "mono", "data-test": "bundle-hash" }, short(bundleHash, 10, 6)),
      serverOk
        ? ": the evidence bundle above."
        : ": keccak256 of the evidence hashes and the checklist computed in this browser.",
    ),
    slot,
    btn,
  );
}

/** #/arbiter */
export async function arbiterPage(ctx) {
  const title = h("h1", null, "Arbiter console");
  const g = gate(ctx, { needSignIn: true, why: "Sign in with an arbiter's wallet." });
  if (g) return h("section", null, title, g);
  const me = await get("/auth/me", { auth: true });
  if (!me.is_arbiter)
    return h(
      "section",
      null,
      title,
      message(
        "error",
        `${wallet.address} does not hold the arbiter role on this escrow.`,
        "The operator grants ARBITER_ROLE. Connect an arbiter's wallet.",
      ),
    );
  const queueBox = h("div", { "data-test": "queue" });
  const detail = h("div");
  let selected = null;

  const open = async (d) => {
    selected = String(d.order_id);
    await tokenInfo(d.token);
    replace(detail, h("p", { class: "muted" }, "Checking the chain…"));
    const [facts, server] = await Promise.all([checklist(d), serverBundle(d.order_id)]);
    const all = evidenceOf(d);
    replace(
      detail,
      h(
        "div",
        { "data-test": "dispute-detail" },
        h("h2", null, `Dispute on order #${d.order_id}`),
        h(
          "div",
          { class: "cols" },
          h(
            "div",
            { class: "card" },
            h("h3", null, "The order"),
            h(
              "dl",
              { class: "kv" },
              h("dt", null, "Buyer"),
              h("dd", null, addr(d.buyer, d.buyer)),
              h("dt", null, "Supplier"),
              h("dd", null, addr(d.supplier, d.supplier)),
              h("dt", null, "Payment"),
              h("dd", null, fmtAmount(d.amount, d.token)),
              h("dt", null, "Bond reserved"),
              h("dd", null, fmtAmount(d.bond, d.token)),
              h("dt", null, "Paid"),
              h(
                "dd",
                null,
                facts.paid ? txLink(facts.paid.log.transactionHash, Number(facts.paid.log.blockNumber)) : "—",
              ),
              h("dt", null, "Delivered"),
              h(
                "dd",
                null,
                facts.delivered
                  ? txLink(facts.delivered.log.transactionHash, Number(facts.delivered.log.blockNumber))
                  : "—",
              ),
              h("dt", null, "Disputed"),
              h("dd", null, txLink(d.opened_tx, d.opened_block), " · ", when(d.opened_at)),
              h("dt", null, "Rule by"),
              h(
                "dd",
                null,
                when(d.arbitration_deadline),
                " ",
                d.overdue ? pill("overdue", "bad") : `(${duration(d.seconds_left)} left)`,
              ),
            ),
          ),
          h(
            "div",
            { class: "card" },
            h("h3", null, "Checked in this browser"),
            h("p", { class: "small muted" }, "Recomputed here from the chain's events, independently of the backend."),
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
        h("h3", null, `Evidence submitted (${all.length})`),
        h(
          "ul",
          { style: { listStyle: "none", padding: 0 } },
          all.map((ev) => evidenceItem(ev, d)),
        ),
        d.ruled
          ? message(
              "info",
              `Ruled by ${d.arbiter ? short(d.arbiter) : "the timeout fallback"}: buyer ${bps(d.buyer_bps ?? 0)} of the payment, ${bps(d.slash_bps ?? 0)} of the bond slashed.`,
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
          h("h2", null, `Queue: ${openOnes.length} open`),
          h("span", { class: "small muted" }, "Oldest first. Deadlines in chain time."),
        ),
        disputes.length
          ? h(
              "div",
              { class: "table-wrap" },
              h(
                "table",
                { class: "stack-sm" },
                h(
                  "thead",
                  null,
                  h(
                    "tr",
                    null,
                    ["Order", "Payment", "Opened", "Deadline", "Evidence", ""].map((t) => h("th", null, t)),
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
                        { "data-label": "Order" },
                        `#${d.order_id}`,
                        h("div", { class: "small muted" }, `listing #${d.listing_id}`),
                      ),
                      h("td", { "data-label": "Payment", class: "num" }, fmtAmount(d.amount, d.token)),
                      h("td", { "data-label": "Opened" }, txLink(d.opened_tx, d.opened_block)),
                      h(
                        "td",
                        { "data-label": "Deadline", class: "countdown" },
                        d.ruled
                          ? pill("ruled", "ok")
                          : d.overdue
                            ? pill(`overdue ${duration(d.seconds_left)}`, "bad")
                            : pill(`${duration(d.seconds_left)} left`, d.seconds_left < 86400 ? "warn" : ""),
                        h("div", { class: "small muted" }, when(d.arbitration_deadline)),
                      ),
                      h("td", { "data-label": "Evidence", class: "num" }, `${evidenceOf(d).length}`),
                      h(
                        "td",
                        { "data-label": "" },
                        h(
                          "button",
                          { class: "btn small", "data-test": "review", onclick: () => open(d) },
                          d.ruled ? "View" : "Review",
                        ),
                      ),
                    ),
                  ),
                ),
              ),
            )
          : message("ok", "No disputes. Nothing to rule on."),
      );
      if (selected && !disputes.some((d) => String(d.order_id) === selected)) replace(detail);
      return true;
    },
    { interval: 4000, onError: (err) => replace(queueBox, message("error", err.userMessage || err.message)) },
  );

  return h(
    "section",
    null,
    title,
    h("p", { class: "muted" }, `Signed in as arbiter ${short(wallet.address)}.`),
    h("div", { class: "card" }, queueBox),
    detail,
  );
}
