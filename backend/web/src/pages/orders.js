// A buyer's orders: the list, and one order watched live from paid to delivered, with the sealed
// release opened in the browser, per-code checks, and confirm / dispute / reclaim.
import { bytesToHex, keccak256, toEventSelector, toHex } from "viem";
import { ApiError, ensureSignedIn, get, post, signedIn } from "../api.js";
import {
  ESCROW_ABI,
  STATE,
  ZERO_ADDRESS,
  STATES,
  decodeLogs,
  fmtAmount,
  liveOrder,
  net,
  orderHistory,
  read,
  splitOrderId,
  tokenInfo,
  userError,
} from "../chain.js";
import { addr, duration, orderLabel, orderRef, parseOrderRef, txLink, when } from "../fmt.js";
import { t, tn } from "../i18n.js";
import {
  badCodeProof,
  boughtHere,
  heldOrderKey,
  openRelease,
  orderKeyFromSignature,
  orderKeyMessage,
} from "../release.js";
import { gate } from "../session.js";
import { poll } from "../status.js";
import { busy, describeError, field, h, message, messageSlot, pill, replace } from "../ui.js";
import { sendEscrow, signText, wallet } from "../wallet.js";
import { pendingCard } from "./buy.js";

/** Shown wherever a party writes dispute text or attaches evidence, before anything is signed. */
const publicEvidenceWarning = () => t("evidence.public.warning");
const publicEvidenceDetail = () => t("evidence.public.detail");

const STATE_KIND = { Paid: "warn", Delivered: "brand", Disputed: "bad", Completed: "ok", Refunded: "", Resolved: "" };

/** An order state's name in the reader's language ("Delivered", "已发货"). */
export function stateName(state) {
  const name = STATES[Number(state)];
  return name ? t(`order.state.${name}`) : String(state);
}

export function statePill(state) {
  const name = STATES[Number(state)] || String(state);
  return pill(stateName(state), STATE_KIND[name] ?? "", { "data-test": "order-state" });
}

/** The latest block's timestamp: deadlines are in chain time, which a dev chain may move. */
async function chainNow() {
  const block = await net.client.getBlock({ blockTag: "latest" });
  return Number(block.timestamp);
}

/** #/orders */
export async function ordersPage(ctx) {
  const g = gate(ctx, { needSignIn: true, why: t("orders.why") });
  if (g) return h("section", null, h("h1", null, t("orders.title")), pendingCard(ctx), g);
  const orders = await get("/buyer/orders?limit=200", { auth: true });
  await Promise.all([...new Set(orders.map((o) => o.token))].map(tokenInfo));
  const balance = h("div");
  balancesCard(balance, orders);
  return h(
    "section",
    null,
    h("h1", null, t("orders.title")),
    pendingCard(ctx),
    balance,
    orders.length
      ? h(
          "div",
          { class: "card table-wrap", tabindex: "0" },
          h(
            "table",
            { class: "stack-sm", "data-test": "orders-table" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                [
                  t("orders.col.order"),
                  t("orders.col.state"),
                  t("orders.col.codes"),
                  t("orders.col.amount"),
                  t("orders.col.paid"),
                  h("span", { class: "sr-only" }, t("ui.col.actions")),
                ].map((label) => h("th", null, label)),
              ),
            ),
            h(
              "tbody",
              null,
              orders.map((o) =>
                h(
                  "tr",
                  { "data-test": "order-row" },
                  h(
                    "td",
                    { "data-label": t("orders.col.order") },
                    h("a", { href: `#/order/${o.order_id}`, "data-test": "order-ref" }, orderLabel(o.order_id)),
                    h("div", { class: "small muted" }, t("product.listing", { id: String(o.listing_id) })),
                  ),
                  h(
                    "td",
                    { "data-label": t("orders.col.state") },
                    statePill(o.state),
                    Number(o.state) === STATE.DELIVERED
                      ? h(
                          "div",
                          { class: "small muted", "data-test": "order-settles" },
                          settleDue(o)
                            ? t("orders.settleDue")
                            : t("orders.settles", { when: when(o.settles_at ?? o.deadline) }),
                        )
                      : null,
                  ),
                  h("td", { "data-label": t("orders.col.codes"), class: "num" }, `${o.quantity}`),
                  h("td", { "data-label": t("orders.col.amount"), class: "num" }, fmtAmount(o.amount, o.token)),
                  h(
                    "td",
                    { "data-label": t("orders.col.paid") },
                    txLink(o.paid_tx, o.paid_block),
                    h("div", { class: "small muted" }, when(o.paid_at)),
                  ),
                  h(
                    "td",
                    { "data-label": "" },
                    h("a", { class: "btn small quiet", href: `#/order/${o.order_id}` }, t("orders.open")),
                  ),
                ),
              ),
            ),
          ),
        )
      : message("info", t("orders.none"), h("a", { href: "#/" }, t("orders.browse"))),
    h(
      "p",
      { class: "small muted" },
      t("orders.recover.text"),
      " ",
      h("a", { href: "#/recover", "data-test": "recover-link" }, t("orders.recover.link")),
    ),
  );
}

/** The buyer's withdrawable balances (refunds and rulings credit it), with a withdraw button. */
async function balancesCard(box, orders) {
  const tokens = [...new Set([ZERO_ADDRESS, ...orders.map((o) => o.token)])];
  const rows = [];
  for (const token of tokens) {
    const amount = await read("balanceOf", [wallet.address, token]).catch(() => 0n);
    if (amount > 0n) {
      const slot = messageSlot();
      const btn = h("button", { class: "btn small", "data-test": "buyer-withdraw" }, t("orders.withdraw"));
      btn.addEventListener("click", () =>
        busy(btn, slot, async () => {
          const r = await sendEscrow("withdraw", [token, wallet.address]);
          slot.show(
            "ok",
            t("orders.withdrew", { amount: fmtAmount(amount, token) }),
            txLink(r.hash, Number(r.receipt.blockNumber)),
          );
          btn.disabled = true;
        }),
      );
      rows.push(
        h(
          "div",
          { class: "spread" },
          h("span", null, tn("orders.credited", { amount: h("strong", null, fmtAmount(amount, token)) })),
          btn,
        ),
        slot,
      );
    }
  }
  if (rows.length) replace(box, h("div", { class: "card" }, rows));
}

// ------------------------------------------------------------------ one order

function progressSteps(state) {
  const s = Number(state);
  const names =
    s === STATE.REFUNDED
      ? ["Paid", "Refunded"]
      : s === STATE.DISPUTED || s === STATE.RESOLVED
        ? ["Paid", "Delivered", "Disputed", "Resolved"]
        : ["Paid", "Delivered", "Completed"];
  const at = names.indexOf(STATES[s]);
  return h(
    "ol",
    { class: "steps", "aria-label": t("order.progress") },
    names.map((n, i) =>
      h(
        "li",
        {
          class:
            i < at
              ? "done"
              : i === at
                ? n === "Disputed"
                  ? "done now"
                  : "done"
                : i === at + 1 && s !== STATE.COMPLETED
                  ? "now"
                  : "",
        },
        t(`order.state.${n}`),
      ),
    ),
  );
}

/** Whether a Delivered order's dispute window has closed: by the API's chain time, or by `now`. */
const settleDue = (o, now) => Boolean(o.settle_due) || (now !== undefined && now > Number(o.settles_at ?? o.deadline));

/** When a Delivered order settles by itself, in one sentence (its deadline, in chain time). */
function settlesNote(o, now) {
  if (settleDue(o, now)) {
    return t("order.settleDue");
  }
  return t("order.settlesOn", { when: when(o.settles_at ?? o.deadline) });
}

/**
 * What happens to the money from here, for someone who has never held a wallet: shown under the
 * codes while the order is Delivered.
 */
function plainStatus(o, now) {
  if (Number(o.state) !== STATE.DELIVERED) return null;
  return h(
    "p",
    { class: "plain-status", "data-test": "plain-status" },
    settleDue(o, now) ? t("order.plain.due") : t("order.plain.delivered", { when: when(o.settles_at ?? o.deadline) }),
  );
}

/** Where the order is, in one sentence. */
function headline(o, now) {
  const s = Number(o.state);
  if (s === STATE.PAID) {
    return now > o.deadline
      ? message("warn", t("order.head.missed"))
      : message(
          "info",
          t("order.head.paid", { deadline: when(o.deadline), left: duration(o.deadline - now) }),
          t("order.head.updates"),
        );
  }
  if (s === STATE.DELIVERED)
    return message("ok", t("order.head.delivered"), h("span", { "data-test": "settles-note" }, settlesNote(o, now)));
  if (s === STATE.DISPUTED) return message("warn", t("order.head.disputed", { deadline: when(o.deadline) }));
  if (s === STATE.COMPLETED) return message("ok", t("order.head.completed"));
  if (s === STATE.REFUNDED) return message("info", t("order.head.refunded"));
  return message("info", t("order.head.resolved"));
}

/** The evidence document a dispute points to (ERC-1497 style), as a data: URI, and its hash. */
export async function evidenceDocument({ title, description, file, verification }) {
  const doc = { title, description, verification: verification || null };
  if (file) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    doc.fileName = file.name;
    doc.fileTypeExtension = (file.name.split(".").pop() || "").toLowerCase();
    doc.fileType = file.type || "application/octet-stream";
    doc.fileHash = keccak256(bytes);
    doc.fileSize = bytes.length;
    if (bytes.length <= 24 * 1024) {
      let bin = "";
      for (const b of bytes) bin += String.fromCharCode(b);
      doc.fileURI = `data:${doc.fileType};base64,${btoa(bin)}`;
    } else {
      doc.fileURI = "";
      doc.note = t("evidence.file.tooLarge");
    }
  }
  const json = JSON.stringify(doc);
  const uri = `data:application/json;base64,${btoa(unescape(encodeURIComponent(json)))}`;
  return { uri, hash: keccak256(new TextEncoder().encode(json)), doc };
}

/** The on-chain digest of an order: from the live struct, or from OrderDelivered once finished. */
async function onchainDigest(orderApi) {
  const stored = await read("orderHash", [BigInt(orderApi.order_id)]);
  if (BigInt(stored) !== 0n) {
    const order = await liveOrder(orderApi);
    return BigInt(order.releaseDigest) === 0n ? null : order.releaseDigest;
  }
  const topic = toEventSelector(ESCROW_ABI.find((x) => x.type === "event" && x.name === "OrderDelivered"));
  const logs = await net.client.request({
    method: "eth_getLogs",
    params: [
      {
        address: net.escrow,
        fromBlock: toHex(BigInt(orderApi.paid_block || 0)),
        toBlock: "latest",
        topics: [topic, toHex(BigInt(orderApi.order_id), { size: 32 })],
      },
    ],
  });
  const ev = decodeLogs(logs).find((e) => e.name === "OrderDelivered");
  return ev ? ev.args.releaseDigest : null;
}

/**
 * The order's key: the one this tab derived when it bought the order (no prompt), else re-created
 * by signing the message for the buy transaction's nonce.
 */
async function orderKey(o) {
  const held = heldOrderKey(o.order_id, o.buyer_pubkey);
  if (held) return held;
  const tx = await net.client.getTransaction({ hash: o.paid_tx });
  const saved = JSON.parse(localStorage.getItem(`kameng.orderkey.${o.order_id}`) || "null");
  const nonce = saved?.nonce ?? tx.nonce;
  const signature = await signText(
    orderKeyMessage({ chainId: net.chainId, escrow: net.escrow, buyer: wallet.address, nonce }),
  );
  const key = await orderKeyFromSignature(signature);
  if (key.publicKeyHex.toLowerCase() !== o.buyer_pubkey.toLowerCase()) {
    throw userError(t("order.key.wrong", { nonce: String(nonce), order: String(o.order_id) }));
  }
  return key;
}

/**
 * An order as the API's OrderDetailPublic has it, read from the chain alone (its events): the
 * order page of a buyer who has not signed in. `release_ready` is left to the caller.
 */
async function orderFromChain(orderId, fromBlock) {
  const { order, events } = await orderHistory(orderId, fromBlock);
  if (!order) return null;
  const paid = events.find((e) => e.name === "OrderPaid");
  const { listingId, firstIndex } = splitOrderId(orderId);
  return {
    order_id: String(orderId),
    buyer: order.buyer,
    supplier: order.supplier,
    token: order.token,
    reseller: order.reseller,
    amount: String(order.amount),
    bond: String(order.bond),
    quantity: Number(order.quantity),
    fee_bps: Number(order.feeBps),
    reseller_cut: String(order.resellerCut),
    dispute_window: Number(order.disputeWindow),
    deadline: Number(order.deadline),
    state: Number(order.state),
    release_digest: order.releaseDigest,
    release_on_chain: events.some((e) => e.name === "ReleasePublished"),
    listing_id: String(listingId),
    first_index: firstIndex,
    buyer_pubkey: paid.args.buyerPubKey,
    paid_block: Number(paid.log.blockNumber),
    paid_tx: paid.log.transactionHash,
    paid_at: paid.timestamp,
    settles_at: Number(order.state) === STATE.DELIVERED ? Number(order.deadline) : null,
    settle_due: false,
    events: events.map((e) => ({
      name: e.name,
      state_after: e.stateAfter,
      timestamp: e.timestamp,
      tx_hash: e.log.transactionHash,
      block_number: Number(e.log.blockNumber),
    })),
  };
}

/**
 * The order's sealed release (public: it opens only with the buyer's key). The chain may show
 * the delivery a moment before the server's mirror does, so "not yet" (409, or 404 while the
 * mirror does not know the order) is asked again for a while.
 */
async function fetchRelease(orderId) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await get(`/buyer/orders/${orderId}/release`);
    } catch (err) {
      if (!(err instanceof ApiError) || ![404, 409].includes(err.status) || attempt >= 40) throw err;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/**
 * Copy `text` (a code, by default) to the clipboard and say so next to the button ("Copied"), or
 * say how otherwise: `manual` is the message for copying by hand, `testId` the button's.
 */
export function copyButton(text, { testId = "copy-code", manual = "order.code.select" } = {}) {
  const said = h("span", { class: "small copied", role: "status", "aria-live": "polite", "data-test": "copied" });
  const button = h("button", { class: "btn small", type: "button", "data-test": testId }, t("order.code.copy"));
  button.addEventListener("click", async () => {
    try {
      if (!navigator.clipboard) throw new Error("no clipboard");
      await navigator.clipboard.writeText(text);
      said.textContent = `✓ ${t("order.code.copied")}`;
      said.classList.remove("bad");
    } catch {
      said.textContent = t(manual);
      said.classList.add("bad");
    }
  });
  return [button, said];
}

const CHECK_LABELS = {
  commitment: "order.code.check.commitment",
  batchRoot: "order.code.check.batchRoot",
  batchRange: "order.code.check.batchRange",
  proof: "order.code.check.proof",
};

/** The codes, first thing on the page once opened: each with a Copy button and how to redeem it. */
function codesView(report) {
  return h(
    "div",
    { class: "card codes-card", "data-test": "release" },
    h(
      "div",
      { class: "spread" },
      h("h2", null, t("order.codes.title")),
      report.ok
        ? pill(t("order.codes.pass"), "ok", { "data-test": "release-verdict" })
        : pill(t("order.codes.fail"), "bad", { "data-test": "release-verdict" }),
    ),
    h(
      "ul",
      { class: "codes", "data-test": "codes" },
      report.codes.map((c) =>
        h(
          "li",
          { "data-test": "code", "data-ok": String(c.ok) },
          h(
            "div",
            { class: "code-main" },
            h("div", { class: "code-text", "data-test": "code-text" }, c.text),
            c.expiresAt ? h("div", { class: "checks" }, t("order.code.expires", { when: when(c.expiresAt) })) : null,
            c.ok ? null : h("div", { class: "checks bad-text" }, codeChecks(c)),
          ),
          h(
            "div",
            { class: "row" },
            copyButton(c.text),
            c.ok
              ? pill(t("order.code.pass"), "ok", { "data-test": "code-verdict" })
              : pill(t("order.code.fail"), "bad", { "data-test": "code-verdict" }),
          ),
        ),
      ),
    ),
    h("p", { class: "small", "data-test": "redeem-hint" }, t("order.code.redeem")),
  );
}

/** One code's checks against the chain, in one line ("✓ matches its commitment · ✗ …"). */
function codeChecks(c) {
  return [
    t("order.code.index", { index: String(c.index) }),
    ...Object.entries(c.checks).map(([k, ok]) => `${ok ? "✓" : "✗"} ${t(CHECK_LABELS[k])}`),
  ].join(" · ");
}

/** The proof behind the order, folded away: digests, the order key and the Merkle checklist. */
function proofView(o, release, report) {
  return [
    h(
      "summary",
      { "data-test": "proof-toggle" },
      h("strong", null, t("order.proof.title")),
      " ",
      h("span", { class: "small muted" }, t("order.proof.who")),
    ),
    h(
      "dl",
      { class: "kv" },
      h("dt", null, t("order.kv.orderId")),
      h("dd", { class: "mono small" }, String(o.order_id)),
      h("dt", null, t("order.kv.digest")),
      h(
        "dd",
        { class: "mono small", "data-test": "release-digest" },
        BigInt(o.release_digest) === 0n ? t("order.kv.notDelivered") : o.release_digest,
      ),
      h("dt", null, t("order.kv.key")),
      h("dd", { class: "mono small", "data-test": "order-key" }, o.buyer_pubkey),
    ),
    report
      ? h(
          "div",
          null,
          h("p", { class: "small muted" }, t("order.codes.intro")),
          h(
            "ul",
            { class: "small", "data-test": "release-checks" },
            report.checks.map((c) =>
              h(
                "li",
                { "data-test": "release-check", "data-ok": String(c.ok) },
                c.ok ? "✓ " : "✗ ",
                c.label,
                c.detail && !c.ok ? h("div", { class: "muted" }, c.detail) : null,
              ),
            ),
          ),
          h(
            "ul",
            { class: "small proof-codes", "data-test": "proof-codes" },
            report.codes.map((c) => h("li", null, h("span", { class: "mono" }, c.text), " — ", codeChecks(c))),
          ),
          release?.tx_hash
            ? h("p", { class: "small" }, tn("order.codes.deliveredIn", { tx: txLink(release.tx_hash) }))
            : null,
        )
      : h("p", { class: "small muted" }, t("order.proof.afterOpening")),
  ];
}

/** #/order/<id>: the on-chain id (#/order/8589934609) or its reference (#/order/L2-17). */
export async function orderPage(ctx, ref) {
  const orderId = parseOrderRef(ref);
  if (orderId === null)
    return h("section", null, h("h1", null, t("app.notFound.title")), message("error", t("order.badRef")));
  const title = () =>
    h("h1", { title: t("fmt.order.title", { id: orderId }) }, t("order.title", { id: orderRef(orderId) }));
  // The tab that bought the order follows it on the chain and needs no sign-in (issue 18).
  const fromChain = () => !signedIn() && boughtHere(orderId, wallet.address);
  const g = gate(ctx, { needSignIn: !fromChain(), why: t("order.why") });
  if (g) return h("section", null, title(), g);
  const { listingId, firstIndex } = splitOrderId(orderId);
  let paidBlock = 0n;
  const statusBox = h("div", { "data-test": "order-status" }, h("p", { class: "muted" }, t("order.loading")));
  const actionsBox = h("div");
  // The codes lead the page once opened; the proof behind them is folded away below.
  const codesBox = h("div", { "data-test": "codes-box" });
  const proofBox = h("details", { class: "card proof", "data-test": "proof" });
  // Outcomes of the buttons below: kept when the order's new state redraws the actions.
  const outcome = messageSlot({ "data-test": "order-outcome" });
  const eventsBox = h("div");
  let last = null;
  let actionsKey = null;
  let report = null;
  let releaseData = null;
  let openedKey = null;

  const renderActions = (o, now) => {
    const s = Number(o.state);
    const parts = [];
    if (s === STATE.PAID) {
      const slot = messageSlot({ "data-test": "refund-message" });
      const btn = h(
        "button",
        { class: "btn", "data-test": "refund", disabled: now <= o.deadline },
        t("order.refund.button"),
      );
      btn.addEventListener("click", () =>
        busy(btn, slot, async () => {
          const order = await liveOrder(o);
          const r = await sendEscrow("refund", [BigInt(o.order_id), order]);
          outcome.show("ok", t("order.refund.done"), txLink(r.hash, Number(r.receipt.blockNumber)));
          refreshNow();
        }),
      );
      parts.push(
        h(
          "div",
          { class: "card" },
          h("h2", null, t("order.refund.title")),
          h(
            "p",
            { class: "small muted" },
            now <= o.deadline ? t("order.refund.until", { deadline: when(o.deadline) }) : t("order.refund.passed"),
          ),
          slot,
          btn,
        ),
      );
    }
    if (s === STATE.DELIVERED || s === STATE.COMPLETED || s === STATE.DISPUTED || s === STATE.RESOLVED) {
      if (!report) {
        const slot = messageSlot({ "data-test": "open-message" });
        const btn = h("button", { class: "btn", "data-test": "open-codes" }, t("order.open.button"));
        btn.addEventListener("click", () =>
          busy(btn, slot, async () => {
            releaseData = await fetchRelease(o.order_id);
            const key = await orderKey(o);
            openedKey = key;
            const batches = new Map();
            for (const idx of new Set(releaseData.codes.map((c) => Number(c.batch_index)))) {
              const b = await read("getBatch", [listingId, BigInt(idx)]);
              batches.set(idx, { root: b.root, firstIndex: Number(b.firstIndex), count: Number(b.count) });
            }
            report = await openRelease(releaseData, {
              secretKey: key.secretKey,
              publicKey: key.publicKey,
              chainId: net.chainId,
              escrow: net.escrow,
              orderId: BigInt(o.order_id),
              quantity: Number(o.quantity),
              onchainDigest: await onchainDigest(o),
              batches,
            });
            replace(codesBox, codesView(report));
            replace(proofBox, proofView(last, releaseData, report));
            renderActions(last, now);
          }),
        );
        replace(
          codesBox,
          h(
            "div",
            { class: "card" },
            h("h2", null, t("order.open.title")),
            h("p", { class: "small muted" }, t("order.open.intro")),
            slot,
            btn,
          ),
        );
      }
    }
    if (s === STATE.DELIVERED) {
      const slot = messageSlot({ "data-test": "confirm-message" });
      // Confirming pays the seller for good: only once the codes were opened on this page, and
      // only after a second, in-page "are you sure".
      const confirm = h(
        "button",
        { class: "btn", "data-test": "confirm", disabled: !report || !report.ok },
        t("order.confirm.button"),
      );
      const yes = h("button", { class: "btn", type: "button", "data-test": "confirm-yes" }, t("order.confirm.yes"));
      const no = h("button", { class: "btn quiet", type: "button", "data-test": "confirm-no" }, t("order.confirm.no"));
      const ask = h(
        "div",
        { class: "msg warn", role: "alertdialog", "aria-label": t("order.confirm.ask"), "data-test": "confirm-ask" },
        h("p", null, h("strong", null, t("order.confirm.ask"))),
        h("div", { class: "row" }, yes, no),
      );
      ask.hidden = true;
      confirm.addEventListener("click", () => {
        slot.clear();
        ask.hidden = false;
        confirm.hidden = true;
        yes.focus();
      });
      no.addEventListener("click", () => {
        ask.hidden = true;
        confirm.hidden = false;
        confirm.focus();
      });
      yes.addEventListener("click", () =>
        busy(yes, slot, async () => {
          no.disabled = true;
          try {
            const order = await liveOrder(o);
            const r = await sendEscrow("confirm", [BigInt(o.order_id), order]);
            outcome.show("ok", t("order.confirm.done"), txLink(r.hash, Number(r.receipt.blockNumber)));
            ask.hidden = true;
            refreshNow();
          } finally {
            no.disabled = false;
          }
        }),
      );
      const text = h("textarea", {
        placeholder: t("order.dispute.placeholder"),
        "data-test": "dispute-text",
        maxlength: "4000",
      });
      const file = h("input", { type: "file", "data-test": "dispute-file" });
      const share = h("input", { type: "checkbox", checked: true, "data-test": "share-key" });
      const publicWarning = message("warn", h("strong", null, publicEvidenceWarning()), publicEvidenceDetail());
      publicWarning.dataset.test = "evidence-public-warning";
      publicWarning.id = `evidence-public-warning-${o.order_id}`;
      text.setAttribute("aria-describedby", publicWarning.id);
      file.setAttribute("aria-describedby", publicWarning.id);
      const dslot = messageSlot({ "data-test": "dispute-message" });
      const dispute = h("button", { class: "btn danger", "data-test": "dispute" }, t("order.dispute.button"));
      dispute.addEventListener("click", () =>
        busy(dispute, dslot, async () => {
          if (text.value.trim().length < 10) throw userError(t("order.dispute.tooShort"));
          const verification = report
            ? {
                ok: report.ok,
                failed: report.checks.filter((c) => !c.ok).map((c) => c.id),
                codes: report.codes.map((c) => ({ index: c.index, ok: c.ok })),
              }
            : null;
          const ev = await evidenceDocument({
            title: t("order.dispute.evidenceTitle", { order: String(o.order_id) }),
            description: text.value.trim(),
            file: file.files?.[0],
            verification,
          });
          const order = await liveOrder(o);
          const r = await sendEscrow("dispute", [BigInt(o.order_id), order, ev.uri, ev.hash]);
          outcome.show("ok", t("order.dispute.opened"), txLink(r.hash, Number(r.receipt.blockNumber)));
          refreshNow();
          if (share.checked) {
            try {
              const key = openedKey || (await orderKey(o));
              // Handing the key to the arbiter is the one step here that needs a sign-in.
              await ensureSignedIn();
              await post(
                `/evidence/orders/${o.order_id}/buyer-secret`,
                { order_secret: bytesToHex(key.secretKey) },
                { auth: true },
              );
              outcome.show("ok", t("order.dispute.openedWithKey"), txLink(r.hash, Number(r.receipt.blockNumber)));
            } catch (err) {
              outcome.show("warn", t("order.dispute.keyFailed"), describeError(err).text);
            }
          }
        }),
      );
      // Provable on-chain only when the commitment is the one under the batch root and the code misses it.
      const bad = report?.codes.find(
        (c) =>
          !c.checks.commitment &&
          c.checks.proof &&
          c.checks.batchRoot &&
          c.checks.batchRange &&
          report.checks.find((x) => x.id === "digest")?.ok,
      );
      let prove = null;
      if (bad) {
        const pslot = messageSlot();
        const pbtn = h(
          "button",
          { class: "btn danger", "data-test": "prove-bad-code" },
          t("order.prove.button", { index: String(bad.index) }),
        );
        pbtn.addEventListener("click", () =>
          busy(pbtn, pslot, async () => {
            const order = await liveOrder(o);
            const r = await sendEscrow("proveBadCode", [
              BigInt(o.order_id),
              order,
              badCodeProof(report, bad, releaseData.sealed),
            ]);
            outcome.show("ok", t("order.prove.done"), txLink(r.hash, Number(r.receipt.blockNumber)));
            refreshNow();
          }),
        );
        prove = h("div", null, h("p", { class: "small" }, t("order.prove.intro")), pslot, pbtn);
      }
      parts.push(
        h(
          "div",
          { class: "cols" },
          h(
            "div",
            { class: "card" },
            h("h2", null, t("order.confirm.title")),
            h(
              "p",
              { class: "small muted" },
              report
                ? report.ok
                  ? t("order.confirm.allMatched")
                  : t("order.confirm.someFailed")
                : t("order.confirm.first"),
            ),
            slot,
            confirm,
            ask,
          ),
          h(
            "div",
            { class: "card" },
            h("h2", null, t("order.dispute.title")),
            prove,
            publicWarning,
            field(t("order.dispute.describe"), text),
            field(t("order.dispute.file"), file, t("order.dispute.fileHint")),
            h("label", { class: "row small", style: { fontWeight: 500 } }, share, t("order.dispute.shareKey")),
            dslot,
            dispute,
          ),
        ),
      );
    }
    replace(actionsBox, parts);
  };

  const render = async (o) => {
    await tokenInfo(o.token);
    const now = await chainNow();
    const key = `${o.state}|${o.release_ready}|${now > o.deadline}`;
    const changed = key !== actionsKey;
    actionsKey = key;
    replace(
      statusBox,
      plainStatus(o, now),
      o.release_on_chain
        ? h(
            "p",
            { class: "small onchain-badge", "data-test": "order-onchain" },
            t("order.onChain"),
            " ",
            h("a", { href: "#/recover" }, t("orders.recover.link")),
          )
        : null,
      h(
        "div",
        { class: "card" },
        h(
          "div",
          { class: "spread" },
          h("h2", null, t("order.summary", { count: Number(o.quantity), amount: fmtAmount(o.amount, o.token) })),
          statePill(o.state),
        ),
        progressSteps(o.state),
        headline(o, now),
        h(
          "dl",
          { class: "kv" },
          h("dt", null, t("order.kv.listing")),
          h(
            "dd",
            null,
            t("order.kv.indexes", {
              listing: String(listingId),
              first: String(firstIndex),
              last: String(firstIndex + Number(o.quantity) - 1),
            }),
          ),
          h("dt", null, t("order.kv.supplier")),
          h("dd", null, addr(o.supplier, o.supplier)),
          h("dt", null, t("order.kv.paid")),
          h("dd", null, txLink(o.paid_tx, o.paid_block), " · ", when(o.paid_at)),
          h(
            "dt",
            null,
            Number(o.state) === STATE.PAID
              ? t("order.kv.deliveryDeadline")
              : Number(o.state) === STATE.DELIVERED
                ? t("order.kv.disputeEnds")
                : t("order.kv.deadline"),
          ),
          h(
            "dd",
            { class: "countdown" },
            when(o.deadline),
            Number(o.state) <= STATE.DISPUTED
              ? ` (${o.deadline >= now ? t("order.left", { duration: duration(o.deadline - now) }) : t("order.passed")})`
              : "",
          ),
        ),
      ),
    );
    if (changed || !proofBox.childElementCount) replace(proofBox, proofView(o, releaseData, report));
    if (o.events) {
      replace(
        eventsBox,
        h(
          "div",
          { class: "card" },
          h("h2", null, t("order.history.title")),
          h(
            "table",
            { class: "stack-sm", "data-test": "order-events" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                [
                  t("order.history.event"),
                  t("order.history.stateAfter"),
                  t("order.history.when"),
                  t("order.history.tx"),
                ].map((label) => h("th", null, label)),
              ),
            ),
            h(
              "tbody",
              null,
              o.events.map((e) =>
                h(
                  "tr",
                  null,
                  h("td", { "data-label": t("order.history.event") }, e.name),
                  h("td", { "data-label": t("order.history.stateAfter") }, stateName(e.state_after)),
                  h("td", { "data-label": t("order.history.when") }, when(e.timestamp)),
                  h("td", { "data-label": t("order.history.tx") }, txLink(e.tx_hash, e.block_number)),
                ),
              ),
            ),
          ),
        ),
      );
    }
    if (changed) renderActions(o, now);
    last = o;
  };

  const slot = messageSlot({ "data-test": "order-message" });
  const refreshNow = poll(
    ctx,
    async () => {
      let o;
      try {
        if (fromChain()) {
          o = await orderFromChain(orderId, paidBlock);
          if (!o) {
            replace(statusBox, message("info", t("order.waitingMirror")));
            return true;
          }
          paidBlock = BigInt(o.paid_block);
          o.release_ready = Number(o.state) >= STATE.DELIVERED && BigInt(o.release_digest) !== 0n;
        } else {
          o = await get(`/buyer/orders/${orderId}`, { auth: true });
        }
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          slot.clear();
          replace(statusBox, message("info", t("order.waitingMirror")));
          return true;
        }
        throw err;
      }
      slot.clear();
      await render(o);
      // Keep watching while something can still happen.
      return ![STATE.COMPLETED, STATE.REFUNDED, STATE.RESOLVED].includes(Number(o.state));
    },
    { interval: 800, onError: (err, retry) => slot.error(err, retry) },
  );

  return h(
    "section",
    null,
    h("a", { href: "#/orders", class: "small" }, t("order.back")),
    title(),
    slot,
    codesBox,
    statusBox,
    outcome,
    actionsBox,
    proofBox,
    eventsBox,
  );
}
