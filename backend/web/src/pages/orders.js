// A buyer's orders: the list, and one order watched live from paid to delivered, with the sealed
// release opened in the browser, per-code checks, and confirm / dispute / reclaim.
import { bytesToHex, keccak256, toEventSelector, toHex } from "viem";
import { ApiError, get, post } from "../api.js";
import {
  ESCROW_ABI,
  STATE,
  ZERO_ADDRESS,
  STATES,
  decodeLogs,
  fmtAmount,
  liveOrder,
  net,
  read,
  splitOrderId,
  tokenInfo,
  userError,
} from "../chain.js";
import { addr, duration, short, txLink, when } from "../fmt.js";
import { badCodeProof, openRelease, orderKeyFromSignature, orderKeyMessage } from "../release.js";
import { gate } from "../session.js";
import { poll } from "../status.js";
import { busy, field, h, message, messageSlot, pill, replace } from "../ui.js";
import { sendEscrow, signText, wallet } from "../wallet.js";
import { pendingCard } from "./buy.js";

/** Shown wherever a party writes dispute text or attaches evidence, before anything is signed. */
const PUBLIC_EVIDENCE_WARNING = "Everything written or attached here is published on the public chain.";
const PUBLIC_EVIDENCE_DETAIL =
  "Anyone can read it, forever: it can never be deleted. Never paste a code, a PIN or personal data (a name, an e-mail or postal address, a phone number, an account).";

const STATE_KIND = { Paid: "warn", Delivered: "brand", Disputed: "bad", Completed: "ok", Refunded: "", Resolved: "" };

export function statePill(state) {
  const name = STATES[Number(state)] || String(state);
  return pill(name, STATE_KIND[name] ?? "", { "data-test": "order-state" });
}

/** The latest block's timestamp: deadlines are in chain time, which a dev chain may move. */
async function chainNow() {
  const block = await net.client.getBlock({ blockTag: "latest" });
  return Number(block.timestamp);
}

/** #/orders */
export async function ordersPage(ctx) {
  const g = gate(ctx, { needSignIn: true, why: "Sign in to see the orders this wallet paid for." });
  if (g) return h("section", null, h("h1", null, "My orders"), pendingCard(ctx), g);
  const orders = await get("/buyer/orders?limit=200", { auth: true });
  await Promise.all([...new Set(orders.map((o) => o.token))].map(tokenInfo));
  const balance = h("div");
  balancesCard(balance, orders);
  return h(
    "section",
    null,
    h("h1", null, "My orders"),
    pendingCard(ctx),
    balance,
    orders.length
      ? h(
          "div",
          { class: "card table-wrap" },
          h(
            "table",
            { class: "stack-sm", "data-test": "orders-table" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["Order", "State", "Codes", "Amount", "Paid", ""].map((t) => h("th", null, t)),
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
                    { "data-label": "Order" },
                    h("a", { href: `#/order/${o.order_id}` }, `#${o.order_id}`),
                    h("div", { class: "small muted" }, `listing #${o.listing_id}`),
                  ),
                  h(
                    "td",
                    { "data-label": "State" },
                    statePill(o.state),
                    Number(o.state) === STATE.DELIVERED
                      ? h(
                          "div",
                          { class: "small muted", "data-test": "order-settles" },
                          settleDue(o) ? "due to settle now" : `settles ${when(o.settles_at ?? o.deadline)}`,
                        )
                      : null,
                  ),
                  h("td", { "data-label": "Codes", class: "num" }, `${o.quantity}`),
                  h("td", { "data-label": "Amount", class: "num" }, fmtAmount(o.amount, o.token)),
                  h(
                    "td",
                    { "data-label": "Paid" },
                    txLink(o.paid_tx, o.paid_block),
                    h("div", { class: "small muted" }, when(o.paid_at)),
                  ),
                  h(
                    "td",
                    { "data-label": "" },
                    h("a", { class: "btn small quiet", href: `#/order/${o.order_id}` }, "Open"),
                  ),
                ),
              ),
            ),
          ),
        )
      : message("info", "No orders yet.", h("a", { href: "#/" }, "Browse the store →")),
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
      const btn = h("button", { class: "btn small", "data-test": "buyer-withdraw" }, "Withdraw");
      btn.addEventListener("click", () =>
        busy(btn, slot, async () => {
          const r = await sendEscrow("withdraw", [token, wallet.address]);
          slot.show(
            "ok",
            `Withdrew ${fmtAmount(amount, token)} to your wallet.`,
            txLink(r.hash, Number(r.receipt.blockNumber)),
          );
          btn.disabled = true;
        }),
      );
      rows.push(
        h(
          "div",
          { class: "spread" },
          h("span", null, "Refunds and rulings credited to you: ", h("strong", null, fmtAmount(amount, token))),
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
    { class: "steps", "aria-label": "Order progress" },
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
        n,
      ),
    ),
  );
}

/** Whether a Delivered order's dispute window has closed: by the API's chain time, or by `now`. */
const settleDue = (o, now) => Boolean(o.settle_due) || (now !== undefined && now > Number(o.settles_at ?? o.deadline));

/** When a Delivered order settles by itself, in one sentence (its deadline, in chain time). */
function settlesNote(o, now) {
  if (settleDue(o, now)) {
    return "Due to settle now: the dispute window has closed, so the supplier is paid as soon as anyone settles it (the platform does so by itself).";
  }
  return `Settles automatically on ${when(o.settles_at ?? o.deadline)} unless you dispute before then.`;
}

/** Where the order is, in one sentence. */
function headline(o, now) {
  const s = Number(o.state);
  if (s === STATE.PAID) {
    return now > o.deadline
      ? message("warn", "The supplier missed the delivery deadline. Reclaim your payment below.")
      : message(
          "info",
          `Paid. Waiting for the supplier to deliver (deadline ${when(o.deadline)}, ${duration(o.deadline - now)} left).`,
          "This page updates by itself.",
        );
  }
  if (s === STATE.DELIVERED)
    return message(
      "ok",
      "Delivered! Open your codes, check them, then confirm.",
      h("span", { "data-test": "settles-note" }, settlesNote(o, now)),
    );
  if (s === STATE.DISPUTED)
    return message(
      "warn",
      `Disputed. An arbiter rules by ${when(o.deadline)}; if none does, the payment is split in half.`,
    );
  if (s === STATE.COMPLETED) return message("ok", "Completed: the supplier has been paid (钱货两清).");
  if (s === STATE.REFUNDED) return message("info", "Refunded: the whole payment was credited back to you.");
  return message("info", "Resolved by a ruling.");
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
      doc.note = "The file is larger than 24 KiB: its hash is recorded here; hand the file itself to the arbiter.";
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

/** Re-create the order's key: sign the message for the buy transaction's nonce. */
async function orderKey(o) {
  const tx = await net.client.getTransaction({ hash: o.paid_tx });
  const saved = JSON.parse(localStorage.getItem(`kameng.orderkey.${o.order_id}`) || "null");
  const nonce = saved?.nonce ?? tx.nonce;
  const signature = await signText(
    orderKeyMessage({ chainId: net.chainId, escrow: net.escrow, buyer: wallet.address, nonce }),
  );
  const key = await orderKeyFromSignature(signature);
  if (key.publicKeyHex.toLowerCase() !== o.buyer_pubkey.toLowerCase()) {
    throw userError(
      `This wallet's key for nonce ${nonce} is not the key order ${o.order_id} was paid with, so its codes cannot be opened here.`,
    );
  }
  return key;
}

function copy(button, text) {
  navigator.clipboard?.writeText(text).then(
    () => {
      button.textContent = "Copied";
    },
    () => {
      button.textContent = "Select it";
    },
  );
}

const CHECK_LABELS = {
  commitment: "matches its commitment",
  batchRoot: "batch root is on-chain",
  batchRange: "index inside its batch",
  proof: "Merkle proof verifies",
};

function releaseView(o, release, report) {
  return h(
    "div",
    { class: "card", "data-test": "release" },
    h(
      "div",
      { class: "spread" },
      h("h2", null, "Your codes"),
      report.ok
        ? pill("all checks pass", "ok", { "data-test": "release-verdict" })
        : pill("verification failed", "bad", { "data-test": "release-verdict" }),
    ),
    h(
      "p",
      { class: "small muted" },
      "Opened in this browser with your per-order key. Each code is checked against the commitment the supplier put on-chain before the sale.",
    ),
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
      { class: "codes", "data-test": "codes" },
      report.codes.map((c) =>
        h(
          "li",
          { "data-test": "code", "data-ok": String(c.ok) },
          h(
            "div",
            null,
            h("div", { class: "code-text", "data-test": "code-text" }, c.text),
            h(
              "div",
              { class: "checks" },
              `index ${c.index} · `,
              Object.entries(c.checks)
                .map(([k, ok]) => `${ok ? "✓" : "✗"} ${CHECK_LABELS[k]}`)
                .join(" · "),
              c.expiresAt ? ` · expires ${when(c.expiresAt)}` : "",
            ),
          ),
          h(
            "div",
            { class: "row" },
            h("button", { class: "btn small quiet", onclick: (e) => copy(e.currentTarget, c.text) }, "Copy"),
            c.ok
              ? pill("pass", "ok", { "data-test": "code-verdict" })
              : pill("fail", "bad", { "data-test": "code-verdict" }),
          ),
        ),
      ),
    ),
    release.tx_hash ? h("p", { class: "small" }, "Delivered in ", txLink(release.tx_hash)) : null,
  );
}

/** #/order/<id> */
export async function orderPage(ctx, orderId) {
  const g = gate(ctx, { needSignIn: true, why: "Sign in with the wallet that paid to follow this order." });
  if (g) return h("section", null, h("h1", null, `Order #${orderId}`), g);
  const { listingId, firstIndex } = splitOrderId(orderId);
  const statusBox = h("div", { "data-test": "order-status" }, h("p", { class: "muted" }, "Loading the order…"));
  const actionsBox = h("div");
  const releaseBox = h("div");
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
      const btn = h("button", { class: "btn", "data-test": "refund", disabled: now <= o.deadline }, "Reclaim payment");
      btn.addEventListener("click", () =>
        busy(btn, slot, async () => {
          const order = await liveOrder(o);
          const r = await sendEscrow("refund", [BigInt(o.order_id), order]);
          outcome.show(
            "ok",
            "Refunded: the payment is credited to your balance. Withdraw it from My orders.",
            txLink(r.hash, Number(r.receipt.blockNumber)),
          );
          refreshNow();
        }),
      );
      parts.push(
        h(
          "div",
          { class: "card" },
          h("h2", null, "Nothing arrived?"),
          h(
            "p",
            { class: "small muted" },
            now <= o.deadline
              ? `You can reclaim the whole payment if the codes have not arrived by ${when(o.deadline)}.`
              : "The delivery deadline has passed: take your money back.",
          ),
          slot,
          btn,
        ),
      );
    }
    if (s === STATE.DELIVERED || s === STATE.COMPLETED || s === STATE.DISPUTED || s === STATE.RESOLVED) {
      if (!report) {
        const slot = messageSlot({ "data-test": "open-message" });
        const btn = h("button", { class: "btn", "data-test": "open-codes" }, "Open my codes");
        btn.addEventListener("click", () =>
          busy(btn, slot, async () => {
            releaseData = await get(`/buyer/orders/${o.order_id}/release`, { auth: true });
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
            replace(releaseBox, releaseView(o, releaseData, report));
            renderActions(last, now);
          }),
        );
        parts.push(
          h(
            "div",
            { class: "card" },
            h("h2", null, "Your codes are sealed to you"),
            h(
              "p",
              { class: "small muted" },
              "Opening them asks your wallet for one signature (no gas), which re-creates this order's private key in this tab.",
            ),
            slot,
            btn,
          ),
        );
      }
    }
    if (s === STATE.DELIVERED) {
      const slot = messageSlot({ "data-test": "confirm-message" });
      const confirm = h(
        "button",
        { class: "btn", "data-test": "confirm", disabled: report ? !report.ok : false },
        "Confirm: the codes work",
      );
      confirm.addEventListener("click", () =>
        busy(confirm, slot, async () => {
          const order = await liveOrder(o);
          const r = await sendEscrow("confirm", [BigInt(o.order_id), order]);
          outcome.show(
            "ok",
            "Confirmed. The supplier is paid; thank you.",
            txLink(r.hash, Number(r.receipt.blockNumber)),
          );
          refreshNow();
        }),
      );
      const text = h("textarea", {
        placeholder: "What is wrong? For example: the second code was already redeemed at 14:02.",
        "data-test": "dispute-text",
        maxlength: "4000",
      });
      const file = h("input", { type: "file", "data-test": "dispute-file" });
      const share = h("input", { type: "checkbox", checked: true, "data-test": "share-key" });
      const publicWarning = message("warn", h("strong", null, PUBLIC_EVIDENCE_WARNING), PUBLIC_EVIDENCE_DETAIL);
      publicWarning.dataset.test = "evidence-public-warning";
      publicWarning.id = `evidence-public-warning-${o.order_id}`;
      text.setAttribute("aria-describedby", publicWarning.id);
      file.setAttribute("aria-describedby", publicWarning.id);
      const dslot = messageSlot({ "data-test": "dispute-message" });
      const dispute = h("button", { class: "btn danger", "data-test": "dispute" }, "Open a dispute");
      dispute.addEventListener("click", () =>
        busy(dispute, dslot, async () => {
          if (text.value.trim().length < 10)
            throw userError("Describe the problem in a sentence or two (at least 10 characters).");
          const verification = report
            ? {
                ok: report.ok,
                failed: report.checks.filter((c) => !c.ok).map((c) => c.id),
                codes: report.codes.map((c) => ({ index: c.index, ok: c.ok })),
              }
            : null;
          const ev = await evidenceDocument({
            title: `Buyer's dispute of order ${o.order_id}`,
            description: text.value.trim(),
            file: file.files?.[0],
            verification,
          });
          const order = await liveOrder(o);
          const r = await sendEscrow("dispute", [BigInt(o.order_id), order, ev.uri, ev.hash]);
          outcome.show(
            "ok",
            "Dispute opened. An arbiter will rule; your evidence is on-chain.",
            txLink(r.hash, Number(r.receipt.blockNumber)),
          );
          refreshNow();
          if (share.checked) {
            try {
              const key = openedKey || (await orderKey(o));
              await post(
                `/evidence/orders/${o.order_id}/buyer-secret`,
                { order_secret: bytesToHex(key.secretKey) },
                { auth: true },
              );
              outcome.show(
                "ok",
                "Dispute opened, and your order key is in the evidence: the arbiter can open this order's codes (and no other).",
                txLink(r.hash, Number(r.receipt.blockNumber)),
              );
            } catch (err) {
              outcome.show(
                "warn",
                "Dispute opened, but your order key could not be added to the evidence.",
                err.userMessage || err.message,
              );
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
          `Prove code #${bad.index} is bad (refund without a judge)`,
        );
        pbtn.addEventListener("click", () =>
          busy(pbtn, pslot, async () => {
            const order = await liveOrder(o);
            const r = await sendEscrow("proveBadCode", [
              BigInt(o.order_id),
              order,
              badCodeProof(report, bad, releaseData.sealed),
            ]);
            outcome.show(
              "ok",
              "Proven on-chain: the payment and the bond are credited to you.",
              txLink(r.hash, Number(r.receipt.blockNumber)),
            );
            refreshNow();
          }),
        );
        prove = h(
          "div",
          null,
          h(
            "p",
            { class: "small" },
            "A code does not match what the supplier committed to. The contract can check this itself: the proof reveals only that one code, on the public chain.",
          ),
          pslot,
          pbtn,
        );
      }
      parts.push(
        h(
          "div",
          { class: "cols" },
          h(
            "div",
            { class: "card" },
            h("h2", null, "All good?"),
            h(
              "p",
              { class: "small muted" },
              report
                ? report.ok
                  ? "Every code matched its commitment."
                  : "Some checks failed: dispute instead."
                : "Open and check your codes first, or confirm if you already redeemed them.",
            ),
            slot,
            confirm,
          ),
          h(
            "div",
            { class: "card" },
            h("h2", null, "Something wrong?"),
            prove,
            publicWarning,
            field("Describe the problem", text),
            field(
              "Evidence file (optional: a screenshot, the issuer's answer…)",
              file,
              "Up to 24 KiB is stored in the evidence itself, on the public chain; a larger file is recorded by its hash only.",
            ),
            h(
              "label",
              { class: "row small", style: { fontWeight: 500 } },
              share,
              "Let the arbiter open this order's codes (adds this order's key to the evidence; it opens no other order)",
            ),
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
      h(
        "div",
        { class: "card" },
        h(
          "div",
          { class: "spread" },
          h("h2", null, `${o.quantity} code${o.quantity === 1 ? "" : "s"} · ${fmtAmount(o.amount, o.token)}`),
          statePill(o.state),
        ),
        progressSteps(o.state),
        headline(o, now),
        h(
          "dl",
          { class: "kv" },
          h("dt", null, "Listing"),
          h("dd", null, `#${listingId} · code indexes ${firstIndex}–${firstIndex + Number(o.quantity) - 1}`),
          h("dt", null, "Supplier"),
          h("dd", null, addr(o.supplier, o.supplier)),
          h("dt", null, "Paid"),
          h("dd", null, txLink(o.paid_tx, o.paid_block), " · ", when(o.paid_at)),
          h(
            "dt",
            null,
            Number(o.state) === STATE.PAID
              ? "Delivery deadline"
              : Number(o.state) === STATE.DELIVERED
                ? "Dispute window ends"
                : "Deadline",
          ),
          h(
            "dd",
            { class: "countdown" },
            when(o.deadline),
            Number(o.state) <= STATE.DISPUTED
              ? ` (${o.deadline >= now ? `${duration(o.deadline - now)} left` : "passed"})`
              : "",
          ),
          h("dt", null, "Release digest"),
          h("dd", { class: "mono small" }, BigInt(o.release_digest) === 0n ? "not yet delivered" : o.release_digest),
          h("dt", null, "Your order key"),
          h("dd", { class: "mono small", title: o.buyer_pubkey }, short(o.buyer_pubkey, 10, 6)),
        ),
      ),
    );
    if (o.events) {
      replace(
        eventsBox,
        h(
          "div",
          { class: "card" },
          h("h2", null, "On-chain history"),
          h(
            "table",
            { class: "stack-sm", "data-test": "order-events" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["Event", "State after", "When", "Transaction"].map((t) => h("th", null, t)),
              ),
            ),
            h(
              "tbody",
              null,
              o.events.map((e) =>
                h(
                  "tr",
                  null,
                  h("td", { "data-label": "Event" }, e.name),
                  h("td", { "data-label": "State after" }, STATES[e.state_after] || e.state_after),
                  h("td", { "data-label": "When" }, when(e.timestamp)),
                  h("td", { "data-label": "Transaction" }, txLink(e.tx_hash, e.block_number)),
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

  const slot = messageSlot();
  const refreshNow = poll(
    ctx,
    async () => {
      let o;
      try {
        o = await get(`/buyer/orders/${orderId}`, { auth: true });
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) {
          replace(statusBox, message("info", "Your payment is on-chain; waiting for the mirror to list the order…"));
          return true;
        }
        throw err;
      }
      slot.clear();
      await render(o);
      // Keep watching while something can still happen.
      return ![STATE.COMPLETED, STATE.REFUNDED, STATE.RESOLVED].includes(Number(o.state));
    },
    { interval: 800, onError: (err) => slot.error(err) },
  );

  return h(
    "section",
    null,
    h("a", { href: "#/orders", class: "small" }, "← My orders"),
    h("h1", null, `Order #${orderId}`),
    slot,
    statusBox,
    outcome,
    releaseBox,
    actionsBox,
    eventsBox,
  );
}
