// The supplier dashboard: bond, escrow and balances with withdraw, what is settled, due now and
// still in the dispute window (with a button to settle the due orders now), low-stock warnings,
// orders by state, a sales chart, CSV uploads with progress and per-line errors (signed by the
// supplier's own wallet when the server holds no key for it, with the uploads still waiting for
// that signature), and listings to open, restock, reprice and close.
import { decodeFunctionData, isAddressEqual, parseEther, toEventSelector, toHex } from "viem";
import { ApiError, get, post, uploadCodes } from "../api.js";
import { cumulativeChart } from "../chart.js";
import {
  ESCROW_ABI,
  ZERO_ADDRESS,
  decodeLogs,
  explain,
  fmtAmount,
  hashOrder,
  listingHistory,
  net,
  orderFromApi,
  read,
  tokenInfo,
  userError,
} from "../chain.js";
import { chainNumber, humanize, keccakText, plural, product, short, txLink, when } from "../fmt.js";
import { gate } from "../session.js";
import { poll } from "../status.js";
import { busy, field, h, message, messageSlot, pill, replace, stat } from "../ui.js";
import { sendEscrow, sendPrepared, wallet } from "../wallet.js";
import { statePill } from "./orders.js";

const topic = (name) => toEventSelector(ESCROW_ABI.find((x) => x.type === "event" && x.name === name));

/** The supplier's bond and withdrawal events, newest last, to link the numbers to their txs. */
async function ledgerEvents(address) {
  const logs = await net.client.request({
    method: "eth_getLogs",
    params: [
      {
        address: net.escrow,
        fromBlock: "0x0",
        toBlock: "latest",
        topics: [
          [topic("BondDeposited"), topic("BondWithdrawn"), topic("Withdrawn")],
          toHex(BigInt(address), { size: 32 }),
        ],
      },
    ],
  });
  return decodeLogs(logs);
}

function amountOf(list, token) {
  return BigInt(list.find((x) => x.token.toLowerCase() === token.toLowerCase())?.amount ?? 0);
}

/** Orders per `settle` transaction, as the keeper and `kameng supplier settle` send them. */
const SETTLE_BATCH = 50;

/** Per-token amounts as "1.2 ETH + 3 USDC" ("0 ETH" when all are zero). */
function amounts(list, key) {
  const some = list.filter((s) => BigInt(s[key]) > 0n);
  return some.length ? some.map((s) => fmtAmount(s[key], s.token)).join(" + ") : fmtAmount(0n);
}

const total = (list, key) => list.reduce((n, s) => n + Number(s[key]), 0);

/**
 * Settle the supplier's due orders from its wallet, in batches, reporting into `slot`.
 *
 * The orders come from the API; each is checked against its hash on-chain first, so an order
 * confirmed, settled or disputed since the mirror saw it is left out instead of failing a batch.
 */
async function settleDueOrders(slot) {
  slot.show("info", "Finding your due orders…");
  const due = await get("/supplier/orders/due?limit=1000", { auth: true });
  if (!due.length) {
    throw userError("Nothing is due any more: those orders were settled or confirmed a moment ago.");
  }
  slot.show("info", `Checking ${plural(due.length, "due order")} against the chain…`);
  const live = [];
  let gone = 0;
  let changed = 0;
  for (let i = 0; i < due.length; i += SETTLE_BATCH) {
    const part = due.slice(i, i + SETTLE_BATCH);
    const stored = await Promise.all(part.map((o) => read("orderHash", [BigInt(o.order_id)])));
    part.forEach((o, j) => {
      const order = orderFromApi(o);
      if (BigInt(stored[j]) === 0n) gone += 1;
      else if (hashOrder(order) === stored[j]) live.push({ id: BigInt(o.order_id), order, token: o.token });
      else changed += 1;
    });
  }
  if (!live.length) {
    throw userError(
      "Nothing left to settle: the due orders were settled, confirmed or disputed on-chain a moment ago. The dashboard catches up in a few seconds.",
    );
  }
  const tokens = [...new Set(live.map((x) => x.token))];
  await Promise.all(tokens.map(tokenInfo));
  const before = await Promise.all(tokens.map((t) => read("balanceOf", [wallet.address, t])));
  const batches = [];
  for (let i = 0; i < live.length; i += SETTLE_BATCH) batches.push(live.slice(i, i + SETTLE_BATCH));
  let settled = 0;
  let skipped = 0;
  const txs = [];
  for (const [i, batch] of batches.entries()) {
    slot.show(
      "info",
      `Settling batch ${i + 1} of ${batches.length} (${plural(batch.length, "order")})…`,
      txs.length ? txs : undefined,
    );
    let r;
    try {
      r = await sendEscrow("settle", [batch.map((x) => x.id), batch.map((x) => x.order)]);
    } catch (raw) {
      const err = explain(raw);
      if (!txs.length) throw err;
      throw userError(
        `${plural(settled, "order")} settled in ${plural(txs.length, "transaction")}, then batch ${i + 1} of ${batches.length} failed: ${err.userMessage} Press the button again to settle the rest.`,
        txs,
      );
    }
    settled += r.events.filter((e) => e.name === "OrderSettled").length;
    skipped += r.events.filter((e) => e.name === "SettlementSkipped").length;
    txs.push(txLink(r.hash, Number(r.receipt.blockNumber)));
  }
  const after = await Promise.all(tokens.map((t) => read("balanceOf", [wallet.address, t])));
  const credited = tokens.map((t, i) => fmtAmount(after[i] - before[i], t)).join(" + ");
  const notes = [
    gone + skipped ? `${plural(gone + skipped, "order")} had already been settled or confirmed.` : "",
    changed
      ? `${plural(changed, "order")} changed on-chain (a dispute?) and ${changed === 1 ? "was" : "were"} left out.`
      : "",
  ].filter(Boolean);
  slot.show(
    "ok",
    [
      `Settled ${plural(settled, "order")} in ${plural(txs.length, "transaction")}: ${credited} credited to your withdrawable balance.`,
      ...notes,
    ].join(" "),
    txs,
  );
}

/**
 * What delivered orders pay: settled, due now and still in the dispute window, with the button
 * that settles the due ones now. It stays in place while the dashboard refreshes (`update`), so
 * a settlement's progress is never redrawn away.
 */
function settlementCard(onDone) {
  const figures = h("div", { class: "stats", "data-test": "settlement" });
  const why = h("p", { class: "small muted", "data-test": "settle-due-why" });
  const slot = messageSlot({ "data-test": "settle-due-message" });
  const btn = h("button", { class: "btn", "data-test": "settle-due", disabled: true }, "Settle due orders now");
  let running = false;
  let dueCount = 0;
  btn.addEventListener("click", async () => {
    running = true;
    try {
      await busy(btn, slot, () => settleDueOrders(slot));
    } finally {
      running = false;
      btn.disabled = dueCount === 0;
      onDone?.();
    }
  });
  const card = h(
    "div",
    { class: "card" },
    h("h2", null, "Settlement"),
    h(
      "p",
      { class: "small muted" },
      "A delivered order pays you when its buyer confirms, or once its dispute window closes: then anyone may settle it, and the platform's keeper does so by itself. Settle the due ones now to be paid without waiting.",
    ),
    figures,
    why,
    slot,
    btn,
  );
  /** Show the dashboard's settlement figures (`dash.settlement`, per token). */
  card.update = (dash) => {
    const list = dash.settlement || [];
    dueCount = total(list, "due_orders");
    const waiting = total(list, "in_window_orders");
    const nexts = list.map((s) => s.next_due_at).filter((t) => t !== null && t !== undefined);
    const next = nexts.length ? Math.min(...nexts.map(Number)) : null;
    replace(
      figures,
      stat("Settled", amounts(list, "settled"), `${plural(total(list, "settled_orders"), "order")} completed`, {
        "data-test": "settled",
      }),
      stat(
        "Due now",
        amounts(list, "due"),
        dueCount ? `${plural(dueCount, "order")} past the dispute window` : "none",
        {
          "data-test": "due-now",
        },
      ),
      stat(
        "In dispute window",
        amounts(list, "in_window"),
        waiting ? `${plural(waiting, "order")} · next due after ${when(next)}` : "none",
        { "data-test": "in-window" },
      ),
    );
    btn.disabled = running || dueCount === 0;
    replace(
      why,
      dueCount
        ? `${plural(dueCount, "order")} can be settled now, in ${plural(Math.ceil(dueCount / SETTLE_BATCH), "transaction")} from your wallet (you pay the gas).`
        : waiting
          ? `Nothing is due yet: ${plural(waiting, "order")} ${waiting === 1 ? "is" : "are"} in the dispute window; the next becomes due after ${when(next)}.`
          : "Nothing to settle: no delivered order is waiting for its dispute window to close.",
    );
  };
  return card;
}

/** Where uploads waiting for the supplier's signature are listed (the card's heading). */
const WAITING = "Waiting for your signature";

/** Uploads whose commitment this page is signing now (by id), so no button signs one twice. */
const signing = new Set();
/** Called whenever `signing` changes (the waiting list redraws its buttons). */
const signingWatchers = new Set();
function setSigning(uploadId, on) {
  if (on) signing.add(uploadId);
  else signing.delete(uploadId);
  for (const fn of signingWatchers) fn();
}

const indexes = (u) => `indexes ${u.first_index}–${u.first_index + u.count - 1}`;

/**
 * Check an awaiting upload's `commit_call` before the wallet sees it: the escrow's commitBatch of
 * exactly this upload (listing, root, count, first index), on this chain, from the connected
 * wallet. Throws a user error saying what is wrong; nothing is signed then.
 */
function checkCommitCall(u) {
  const call = u.commit_call;
  if (!call) throw userError(`Upload #${u.upload_id} has no transaction to sign any more; reload the page.`);
  if (Number(call.chain_id) !== net.chainId)
    throw userError(
      `Upload #${u.upload_id} is to be committed on chain ${call.chain_id}, but this server runs on chain ${net.chainId}. Nothing was signed; reload the page.`,
    );
  if (!wallet.address || !isAddressEqual(call.from_address, wallet.address))
    throw userError(
      `Upload #${u.upload_id} must be signed by ${short(call.from_address)}, the listing's supplier, but the connected wallet is ${wallet.address ? short(wallet.address) : "none"}. Nothing was signed: connect ${short(call.from_address)} and press "Sign now" under "${WAITING}".`,
    );
  if (!isAddressEqual(call.to, net.escrow))
    throw userError(
      `The server asked to send the commitment of upload #${u.upload_id} to ${call.to}, which is not the escrow (${net.escrow}). Nothing was signed; reload the page, and tell the platform if it happens again.`,
    );
  let decoded = null;
  try {
    decoded = decodeFunctionData({ abi: ESCROW_ABI, data: call.data });
  } catch {
    // not an escrow call at all: refused below
  }
  const [listingId, root, count, firstIndex] = decoded?.args ?? [];
  if (
    decoded?.functionName !== "commitBatch" ||
    BigInt(listingId) !== BigInt(u.listing_id) ||
    String(root).toLowerCase() !== String(u.root).toLowerCase() ||
    BigInt(count) !== BigInt(u.count) ||
    BigInt(firstIndex) !== BigInt(u.first_index)
  )
    throw userError(
      `The transaction the server handed over is not the commitment of upload #${u.upload_id} (${plural(u.count, "code")} for listing #${u.listing_id}). Nothing was signed; reload the page, and tell the platform if it happens again.`,
    );
}

/** Say where an upload's signature went (`done`: the server's UploadPublic after the report). */
function showSigned(slot, done, tx) {
  if (done.state === "committed") {
    slot.show(
      "ok",
      `Committed ${done.count} codes to listing #${done.listing_id} as batch ${done.batch_index} (${indexes(done)}). They are on sale now.`,
      h("span", null, "Merkle root ", h("span", { class: "mono" }, short(done.root, 10, 6)), " · ", tx),
    );
  } else if (done.state === "abandoned") {
    slot.show(
      "error",
      `Upload #${done.upload_id} was dropped and its ${plural(done.count, "code")} deleted, never on sale: ${done.error || "another batch took its code indexes"}. Upload those codes again.`,
      tx,
    );
  } else {
    slot.show(
      "info",
      `Your commitment of ${plural(done.count, "code")} was sent, but kameng has not found its batch on-chain yet. Nothing more to sign: press "Sign now" under "${WAITING}" in a minute and it checks the chain again, without a new signature.`,
      tx,
    );
  }
}

/**
 * Have the connected wallet sign and send an awaiting upload's commitBatch (`u.commit_call`,
 * exactly as the server prepared it), then report the transaction so the codes go on sale.
 * Progress goes into `slot`; a refusal or failure throws a user error saying nothing is on sale.
 */
async function signUpload(u, slot) {
  const codes = plural(u.count, "code");
  const notOnSale = `Nothing is on sale: your ${codes} are stored encrypted in upload #${u.upload_id} and wait under "${WAITING}" on this page; press "Sign now" there when you are ready.`;
  if (signing.has(u.upload_id)) throw userError(`Upload #${u.upload_id} is being signed already; see your wallet.`);
  setSigning(u.upload_id, true);
  try {
    try {
      checkCommitCall(u);
    } catch (err) {
      throw userError(`${err.userMessage} ${notOnSale}`);
    }
    slot.show("info", `Sign the commitment of ${codes} in your wallet… — your key never leaves your wallet.`);
    let r;
    try {
      r = await sendPrepared(u.commit_call, {
        onSent: (hash) => slot.show("info", `Commitment of ${codes} sent; waiting for it to be mined…`, txLink(hash)),
      });
    } catch (raw) {
      const err = explain(raw);
      throw userError(`${err.userMessage} ${notOnSale}`, null, { rejected: err.rejected });
    }
    const tx = txLink(r.hash, Number(r.receipt.blockNumber));
    slot.show("info", `Committed on-chain; telling kameng to put the ${codes} on sale…`, tx);
    let done;
    try {
      done = await post(`/supplier/uploads/${u.upload_id}/submitted`, { tx_hash: r.hash }, { auth: true });
    } catch (raw) {
      const err = explain(raw);
      throw userError(
        `Your commitment is on-chain, but telling kameng failed: ${err.userMessage} Nothing more to sign: once the server answers again, press "Sign now" under "${WAITING}" and it finds the batch on-chain without a new signature.`,
        tx,
      );
    }
    showSigned(slot, done, tx);
    return done;
  } finally {
    setSigning(u.upload_id, false);
  }
}

/**
 * The uploads stored but not on sale until the supplier's wallet signs their commitment, each with
 * a "Sign now" button. Hidden while there are none (and no message to show). It stays in place
 * while the dashboard refreshes (`update`), so a signature's progress is never redrawn away.
 */
function waitingCard(onDone) {
  const rows = h("tbody");
  const slot = messageSlot({ "data-test": "waiting-message" });
  const empty = h("p", { class: "muted", hidden: true }, "Nothing is waiting for your signature.");
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "small stack-sm", "data-test": "waiting-uploads" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          ["Upload", "Listing", "Codes", "Merkle root", ""].map((t) => h("th", null, t)),
        ),
      ),
      rows,
    ),
  );
  const card = h(
    "div",
    { class: "card", id: "waiting", "data-test": "waiting", hidden: true },
    h("h2", null, WAITING),
    h(
      "p",
      { class: "small muted" },
      "These codes are stored encrypted but not on sale: your wallet has not signed their commitment on-chain yet. Sign it to put them on sale; your key never leaves your wallet. A listing takes no new upload while one waits here.",
    ),
    table,
    empty,
    slot,
  );
  let last = [];
  const draw = () => {
    replace(
      rows,
      last.map((u) => {
        const btn = h(
          "button",
          { class: "btn small", "data-test": "sign-upload", disabled: signing.has(u.upload_id) },
          signing.has(u.upload_id) ? "Signing…" : "Sign now",
        );
        btn.addEventListener("click", async () => {
          await busy(btn, slot, async () => {
            // Its batch may have landed already (a report that never arrived): ask first.
            const now = await post(`/supplier/uploads/${u.upload_id}/submitted`, {}, { auth: true });
            if (now.state !== "awaiting") showSigned(slot, now, now.tx_hash ? txLink(now.tx_hash) : null);
            else await signUpload(now, slot);
          });
          onDone?.();
        });
        return h(
          "tr",
          { "data-test": "waiting-upload", "data-upload": u.upload_id },
          h("td", { "data-label": "Upload" }, `#${u.upload_id}`),
          h("td", { "data-label": "Listing" }, `#${u.listing_id}`),
          h("td", { "data-label": "Codes", class: "num" }, `${u.count} (${indexes(u)})`),
          h("td", { "data-label": "Merkle root", class: "mono" }, short(u.root, 10, 6)),
          h("td", { "data-label": "" }, btn),
        );
      }),
    );
    table.hidden = !last.length;
    empty.hidden = last.length > 0;
    card.hidden = !last.length && !slot.hasChildNodes();
  };
  let mounted = false;
  const watch = () => {
    if (card.isConnected) {
      mounted = true;
      draw();
    } else if (mounted) signingWatchers.delete(watch); // the page was left
  };
  signingWatchers.add(watch);
  /** Show the supplier's uploads (GET /supplier/uploads) that wait for its signature. */
  card.update = (uploads) => {
    last = uploads.filter((u) => u.state === "awaiting");
    draw();
  };
  return card;
}

/** The upload card: pick a listing and a CSV, watch progress, see bad lines. */
function uploadCard(onDone) {
  const select = h(
    "select",
    { "data-test": "upload-listing" },
    h("option", { value: "" }, "No listing yet: open one first"),
  );
  const file = h("input", { type: "file", accept: ".csv,text/csv,text/plain", "data-test": "upload-file" });
  const bar = h("div");
  const progressText = h("div", { class: "small muted", "data-test": "upload-progress" });
  const progress = h("div", { class: "progress", hidden: true }, bar);
  const slot = messageSlot({ "data-test": "upload-message" });
  const btn = h("button", { class: "btn", "data-test": "upload" }, "Upload and commit");
  btn.addEventListener("click", () =>
    busy(btn, slot, async () => {
      const f = file.files?.[0];
      if (!f) throw userError("Choose a CSV file first: one code per line, optionally with an expiry and a note.");
      if (!select.value) throw userError("Open a listing first.");
      progress.hidden = false;
      bar.style.width = "0%";
      progressText.textContent = `Sending ${f.name} (${(f.size / 1024).toFixed(1)} KiB)…`;
      try {
        const r = await uploadCodes(select.value, f, (done, total) => {
          bar.style.width = `${Math.round((100 * done) / Math.max(total, 1))}%`;
          progressText.textContent = `Encrypting and committing: ${done} of ${total} codes`;
        });
        bar.style.width = "100%";
        progressText.textContent = "";
        if (r.state === "awaiting") {
          // The server holds no key for this supplier: the codes are stored, not on sale, until
          // this wallet signs their commitBatch.
          file.value = "";
          onDone?.();
          try {
            await signUpload(r, slot);
          } finally {
            onDone?.();
          }
          return;
        }
        if (r.state !== "committed") {
          slot.show(
            "info",
            `Stored ${r.count} codes for listing #${r.listing_id}; their commitment is not confirmed on-chain yet. They go on sale once it is: the dashboard updates by itself.`,
            r.tx_hash ? txLink(r.tx_hash) : null,
          );
          file.value = "";
          onDone?.();
          return;
        }
        slot.show(
          "ok",
          `Committed ${r.count} codes to listing #${r.listing_id} as batch ${r.batch_index} (indexes ${r.first_index}–${r.first_index + r.count - 1}).`,
          h("span", null, "Merkle root ", h("span", { class: "mono" }, short(r.root, 10, 6)), " · ", txLink(r.tx_hash)),
        );
        file.value = "";
        onDone?.();
      } catch (err) {
        progress.hidden = true;
        progressText.textContent = "";
        if (err instanceof ApiError && err.status === 409) {
          // One upload at a time per listing: is one waiting for this wallet's signature?
          const uploads = await get(`/supplier/uploads?listing_id=${select.value}`, { auth: true }).catch(() => []);
          const waiting = uploads.find((u) => u.state === "awaiting");
          if (waiting) {
            onDone?.();
            throw userError(
              `Nothing from ${f.name} was stored: upload #${waiting.upload_id} (${plural(waiting.count, "code")}) to listing #${waiting.listing_id} still waits for your wallet to sign its commitment, and a listing takes one upload at a time. Press "Sign now" for it under "${WAITING}" on this page, then upload ${f.name} again.`,
            );
          }
        }
        if (err instanceof ApiError && Array.isArray(err.errors) && err.errors.length) {
          replace(
            slot,
            h(
              "div",
              { class: "msg error", role: "alert", "data-test": "upload-errors" },
              h(
                "div",
                null,
                `Nothing was stored: ${err.total ?? err.errors.length} problem${(err.total ?? err.errors.length) === 1 ? "" : "s"} in ${f.name}. Fix these lines and upload again.`,
              ),
              h(
                "table",
                { class: "small", style: { marginTop: ".4rem" } },
                h("thead", null, h("tr", null, h("th", null, "Line"), h("th", null, "Problem"))),
                h(
                  "tbody",
                  null,
                  err.errors.map((e) =>
                    h(
                      "tr",
                      { "data-test": "upload-error-line" },
                      h("td", { class: "num" }, e.line === 0 ? "file" : String(e.line)),
                      h("td", null, e.reason),
                    ),
                  ),
                ),
              ),
              err.total > err.errors.length
                ? h("div", { class: "small" }, `…and ${err.total - err.errors.length} more.`)
                : null,
            ),
          );
          return;
        }
        throw err;
      }
    }),
  );
  const card = h(
    "div",
    { class: "card", id: "upload" },
    h("h2", null, "Upload codes"),
    h(
      "p",
      { class: "small muted" },
      "A CSV with one code per line, optionally followed by an expiry date and a note. The codes are encrypted at rest, salted, and their Merkle root is committed on-chain in one batch: all or nothing. Your wallet signs that commitment (your key never leaves it); the codes go on sale once it is on-chain.",
    ),
    field("Listing", select),
    field("CSV file", file),
    progress,
    progressText,
    slot,
    btn,
  );
  /** Refresh the listing choices, keeping the current one. */
  card.setListings = (listings) => {
    const current = select.value;
    if (!listings.length) return;
    replace(
      select,
      listings.map((l) =>
        h("option", { value: String(l.listing_id) }, `#${l.listing_id} · ${l.name}${l.active ? "" : " (closed)"}`),
      ),
    );
    if (listings.some((l) => String(l.listing_id) === current)) select.value = current;
  };
  return card;
}

/** The form to open a listing for an authorized product. */
function openListingCard(minBondBps, onDone) {
  const name = h("input", { placeholder: "steam-wallet-50", "data-test": "new-sku", autocomplete: "off" });
  const skuInfo = h(
    "div",
    { class: "small muted", "data-test": "new-sku-info" },
    "The product's sku is keccak256 of this name.",
  );
  const price = h("input", { type: "text", inputmode: "decimal", value: "0.01", "data-test": "new-price" });
  const delivery = h(
    "select",
    null,
    [
      ["600", "10 minutes"],
      ["3600", "1 hour"],
      ["86400", "1 day"],
    ].map(([v, t]) => h("option", { value: v, selected: v === "3600" }, t)),
  );
  const dispute = h(
    "select",
    null,
    [
      ["3600", "1 hour"],
      ["86400", "1 day"],
      ["604800", "7 days"],
    ].map(([v, t]) => h("option", { value: v, selected: v === "86400" }, t)),
  );
  const bond = h("input", {
    type: "number",
    min: String(minBondBps / 100),
    max: "100",
    step: "1",
    value: String(Math.max(20, minBondBps / 100)),
    "data-test": "new-bond",
  });
  const description = h("input", {
    placeholder: "Steam wallet top-up, 50 USD, global",
    "data-test": "new-description",
  });
  const slot = messageSlot({ "data-test": "open-listing-message" });
  let authorized = false;
  const check = async () => {
    const n = name.value.trim();
    authorized = false;
    if (!n) {
      replace(skuInfo, "The product's sku is keccak256 of this name.");
      return;
    }
    const sku = keccakText(n);
    const att = await read("authorization", [wallet.address, sku]).catch(() => 0n);
    authorized = BigInt(att) !== 0n;
    replace(
      skuInfo,
      "sku ",
      h("span", { class: "mono" }, short(sku, 10, 6)),
      " · ",
      authorized
        ? pill("licensed for you ✓", "ok")
        : pill("no authorization: ask the platform's rights administrator", "bad"),
    );
  };
  name.addEventListener("change", check);
  name.addEventListener("input", () => {
    authorized = false;
  });
  const btn = h("button", { class: "btn", "data-test": "open-listing" }, "Open listing");
  btn.addEventListener("click", () =>
    busy(btn, slot, async () => {
      const n = name.value.trim();
      if (!/^[\w.-]{2,64}$/.test(n))
        throw userError("Give the product's sku name: 2 to 64 letters, digits, dots, dashes or underscores.");
      await check();
      if (!authorized)
        throw userError(
          `You hold no licensed-product authorization for "${n}". The platform's rights administrator grants it after checking the rights holder's attestation.`,
        );
      let unit;
      try {
        unit = parseEther(price.value.trim());
      } catch {
        throw userError("Enter the unit price in ETH, for example 0.01.");
      }
      if (unit <= 0n) throw userError("The price must be above zero.");
      const bondBps = Math.round(Number(bond.value) * 100);
      if (!(bondBps >= minBondBps && bondBps <= 10000))
        throw userError(`The bond must be between ${minBondBps / 100}% and 100% of each order.`);
      const meta = { name: humanize(n), sku: n, description: description.value.trim() };
      const uri = `data:application/json,${encodeURIComponent(JSON.stringify(meta))}`;
      const r = await sendEscrow("createListing", [
        keccakText(n),
        ZERO_ADDRESS,
        unit,
        Number(delivery.value),
        Number(dispute.value),
        bondBps,
        uri,
      ]);
      const ev = r.events.find((e) => e.name === "ListingCreated");
      slot.show(
        "ok",
        `Listing #${ev?.args.listingId} is open. Upload codes to put it in stock.`,
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
      onDone?.();
    }),
  );
  return h(
    "div",
    { class: "card" },
    h("h2", null, "Open a listing"),
    field("Product (sku name)", name),
    skuInfo,
    h(
      "div",
      { class: "cols" },
      field("Unit price (ETH)", price),
      field("Bond per order (%)", bond, `At least ${minBondBps / 100}%`),
    ),
    h("div", { class: "cols" }, field("Deliver within", delivery), field("Buyers may dispute for", dispute)),
    field("Description", description),
    slot,
    btn,
  );
}

function bondCard(currentBond, onDone) {
  const amount = h("input", { type: "text", inputmode: "decimal", value: "1", "data-test": "bond-amount" });
  const slot = messageSlot({ "data-test": "bond-message" });
  const deposit = h("button", { class: "btn", "data-test": "bond-deposit" }, "Deposit bond");
  const withdraw = h("button", { class: "btn quiet", "data-test": "bond-withdraw" }, "Withdraw free bond");
  const parse = () => {
    try {
      const v = parseEther(amount.value.trim());
      if (v <= 0n) throw new Error();
      return v;
    } catch {
      throw userError("Enter an amount in ETH, for example 1.5.");
    }
  };
  deposit.addEventListener("click", () =>
    busy(deposit, slot, async () => {
      const v = parse();
      const r = await sendEscrow("depositBond", [ZERO_ADDRESS, v], { value: v });
      slot.show("ok", `Deposited ${fmtAmount(v)} of bond.`, txLink(r.hash, Number(r.receipt.blockNumber)));
      onDone?.();
    }),
  );
  withdraw.addEventListener("click", () =>
    busy(withdraw, slot, async () => {
      const v = parse();
      const free = BigInt(currentBond().free);
      if (v > free) throw userError(`Only ${fmtAmount(free)} of your bond is free; the rest backs open orders.`);
      const r = await sendEscrow("withdrawBond", [ZERO_ADDRESS, v, wallet.address]);
      slot.show("ok", `Withdrew ${fmtAmount(v)} of free bond.`, txLink(r.hash, Number(r.receipt.blockNumber)));
      onDone?.();
    }),
  );
  return h(
    "div",
    { class: "card" },
    h("h2", null, "Bond (保证金)"),
    h(
      "p",
      { class: "small muted" },
      "Each order reserves part of your bond until it settles. Reserved bond cannot be withdrawn; an arbiter may slash it to the buyer.",
    ),
    field("Amount (ETH)", amount),
    slot,
    h("div", { class: "row" }, deposit, withdraw),
  );
}

/** Everything the dashboard shows, fetched in one go. */
async function loadDashboard() {
  const [dash, orders, listingsFull, ledger, uploads] = await Promise.all([
    get("/supplier/dashboard", { auth: true }),
    get("/supplier/orders?limit=1000", { auth: true }),
    Promise.all(
      [true, false].map((active) =>
        get(`/catalog/listings?supplier=${wallet.address}&active=${active}&licence=any&limit=500`),
      ),
    ).then((x) => x.flat()),
    ledgerEvents(wallet.address).catch(() => []),
    get("/supplier/uploads", { auth: true }),
  ]);
  const tokens = [ZERO_ADDRESS, ...orders.map((o) => o.token), ...dash.settlement.map((s) => s.token)];
  await Promise.all([...new Set(tokens)].map(tokenInfo));
  const meta = new Map(listingsFull.map((l) => [String(l.listing_id), product(l)]));
  const histories = await Promise.all(dash.listings.map((l) => listingHistory(l.listing_id).catch(() => [])));
  const listings = dash.listings.map((l, i) => ({
    ...l,
    name: meta.get(String(l.listing_id))?.name || `Listing #${l.listing_id}`,
    lastBatch: histories[i].filter((e) => e.name === "BatchCommitted").at(-1) || null,
  }));
  return { dash, orders, listings, ledger, uploads };
}

/** The part of the dashboard that follows the chain: warnings, figures, chart, tables. */
function liveView({ dash, orders, listings, ledger }, { wslot, refresh }) {
  const token = ZERO_ADDRESS;
  const lastOf = (names) => [...ledger].reverse().find((e) => names.includes(e.name));
  const bond = dash.bonds.find((b) => b.token.toLowerCase() === token) || { free: "0", reserved: "0" };
  const balance = amountOf(dash.balances, token);
  const lastBond = lastOf(["BondDeposited", "BondWithdrawn"]);
  const lastSettle = dash.recent_settlements[0];
  const lowStock = listings.filter((l) => l.low_stock);
  const byState = Object.entries(dash.orders_by_state);

  const withdrawBtn = h(
    "button",
    { class: "btn small", "data-test": "withdraw", disabled: balance === 0n },
    "Withdraw",
  );
  withdrawBtn.addEventListener("click", () =>
    busy(withdrawBtn, wslot, async () => {
      const r = await sendEscrow("withdraw", [token, wallet.address]);
      wslot.show(
        "ok",
        `Withdrew ${fmtAmount(balance)} to ${short(wallet.address)}.`,
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
      refresh();
    }),
  );

  const listingRows = listings.map((l) => {
    const slot = messageSlot();
    const toggle = h(
      "button",
      { class: "btn small quiet", "data-test": "toggle-listing" },
      l.active ? "Close" : "Reopen",
    );
    toggle.addEventListener("click", () =>
      busy(toggle, slot, async () => {
        await sendEscrow("updateListing", [BigInt(l.listing_id), BigInt(l.unit_price), !l.active]);
        refresh();
      }),
    );
    const restock = h("button", { class: "btn small" }, "Restock");
    restock.addEventListener("click", () => {
      const sel = document.querySelector('[data-test="upload-listing"]');
      if (sel) sel.value = String(l.listing_id);
      document.getElementById("upload")?.scrollIntoView({ behavior: "smooth" });
    });
    return h(
      "tr",
      { "data-test": "listing-row", "data-listing": l.listing_id },
      h(
        "td",
        { "data-label": "Listing" },
        `#${l.listing_id} `,
        h("strong", null, l.name),
        h("div", { class: "small muted mono" }, short(l.sku, 10, 4)),
      ),
      h("td", { "data-label": "Price", class: "num" }, fmtAmount(l.unit_price)),
      h(
        "td",
        { "data-label": "Stock", class: "num" },
        h("span", { "data-test": "listing-stock" }, `${l.stock}`),
        l.low_stock ? h("div", null, pill("low", "warn")) : null,
      ),
      h(
        "td",
        { "data-label": "Committed / sold", class: "num" },
        l.lastBatch
          ? chainNumber(String(l.committed), l.lastBatch.log.transactionHash, Number(l.lastBatch.log.blockNumber))
          : String(l.committed),
        ` / ${l.sold}`,
      ),
      h("td", { "data-label": "In vault", class: "num" }, l.vault_codes ?? "—"),
      h("td", { "data-label": "Status" }, l.active ? pill("open", "ok") : pill("closed", "")),
      h("td", { "data-label": "" }, h("div", { class: "row" }, restock, toggle), slot),
    );
  });

  const sales = orders.map((o) => ({ t: Number(o.paid_at), amount: BigInt(o.amount) }));
  const settled = dash.recent_settlements.map((x) => ({ t: Number(x.timestamp), amount: BigInt(x.amount) }));
  return [
    lowStock.map((l) =>
      message(
        "warn",
        `Low stock: ${l.name} (listing #${l.listing_id}) has ${l.stock} code${l.stock === 1 ? "" : "s"} left (threshold ${dash.low_stock_threshold}). Upload more before it sells out.`,
      ),
    ),
    h(
      "div",
      { class: "stats" },
      stat(
        "Bond free",
        chainNumber(
          fmtAmount(bond.free),
          lastBond?.log.transactionHash,
          lastBond ? Number(lastBond.log.blockNumber) : undefined,
        ),
        lastBond ? txLink(lastBond.log.transactionHash, Number(lastBond.log.blockNumber)) : "no deposit yet",
        { "data-test": "bond-free" },
      ),
      stat("Bond reserved", fmtAmount(bond.reserved), "backs open orders", { "data-test": "bond-reserved" }),
      stat("In escrow", fmtAmount(amountOf(dash.in_escrow, token)), "paid, not yet settled", {
        "data-test": "in-escrow",
      }),
      stat(
        "Withdrawable",
        h(
          "span",
          { "data-test": "withdrawable-amount" },
          chainNumber(fmtAmount(balance), lastSettle?.tx_hash, lastSettle?.block_number),
        ),
        h("div", null, withdrawBtn),
        { "data-test": "withdrawable" },
      ),
      stat(
        "Earned",
        fmtAmount(amountOf(dash.earned, token)),
        `${dash.recent_settlements.length} settlement${dash.recent_settlements.length === 1 ? "" : "s"}`,
        { "data-test": "earned" },
      ),
    ),
    h(
      "div",
      { class: "cols" },
      h(
        "div",
        { class: "card" },
        h("h2", null, "Sales and settlements"),
        cumulativeChart(
          [
            { name: "Sold (paid into escrow)", color: "#0f766e", points: sales },
            { name: "Settled to you", color: "#d97706", points: settled },
          ],
          { title: "Cumulative sales and settlements" },
        ),
      ),
      h(
        "div",
        { class: "card" },
        h("h2", null, "Orders by state"),
        byState.length
          ? h(
              "div",
              { class: "row", "data-test": "orders-by-state" },
              byState.map(([name, n]) =>
                pill(
                  `${name}: ${n}`,
                  name.toLowerCase() === "disputed" ? "bad" : name.toLowerCase() === "completed" ? "ok" : "",
                ),
              ),
            )
          : h("p", { class: "muted" }, "No orders yet."),
        h(
          "div",
          { class: "table-wrap", style: { marginTop: ".7rem", maxHeight: "16rem", overflowY: "auto" } },
          h(
            "table",
            { class: "small", "data-test": "supplier-orders" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["Order", "State", "Qty", "Amount", "Paid"].map((t) => h("th", null, t)),
              ),
            ),
            h(
              "tbody",
              null,
              orders
                .slice(0, 50)
                .map((o) =>
                  h(
                    "tr",
                    null,
                    h("td", null, `#${o.order_id}`),
                    h("td", null, statePill(o.state)),
                    h("td", { class: "num" }, `${o.quantity}`),
                    h("td", { class: "num" }, fmtAmount(o.amount, o.token)),
                    h("td", null, txLink(o.paid_tx, o.paid_block)),
                  ),
                ),
            ),
          ),
        ),
      ),
    ),
    h(
      "div",
      { class: "card" },
      h("h2", null, "Listings"),
      listings.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "stack-sm", "data-test": "listings" },
              h(
                "thead",
                null,
                h(
                  "tr",
                  null,
                  ["Listing", "Price", "Stock", "Committed / sold", "In vault", "Status", ""].map((t) =>
                    h("th", null, t),
                  ),
                ),
              ),
              h("tbody", null, listingRows),
            ),
          )
        : h("p", { class: "muted" }, "No listings yet: open one below."),
    ),
    settlementsCard(dash.recent_settlements),
  ];
}

/** #/supplier */
export async function supplierPage(ctx) {
  const title = h("h1", null, "Supplier dashboard");
  const g = gate(ctx, {
    needSignIn: true,
    why: "Sign in with your supplier wallet to see your listings, orders, bond and balances.",
  });
  if (g) return h("section", null, title, g);
  const config = await read("config");
  let data = await loadDashboard();
  const live = h("div", { "data-test": "supplier-live" });
  const wslot = messageSlot({ "data-test": "withdraw-message" });
  const errors = messageSlot();
  let refresh = () => {};
  const upload = uploadCard(() => refresh());
  const settlement = settlementCard(() => refresh());
  const waiting = waitingCard(() => refresh());
  const show = () => {
    replace(live, liveView(data, { wslot, refresh: () => refresh() }));
    upload.setListings(data.listings);
    settlement.update(data.dash);
    waiting.update(data.uploads);
  };
  show();
  // Redraw when the figures change, not on every new block (chain_time).
  const sign = (d) =>
    JSON.stringify(d, (k, v) => (k === "chain_time" ? undefined : typeof v === "bigint" ? v.toString() : v));
  let signature = sign(data);
  refresh = poll(
    ctx,
    async () => {
      const next = await loadDashboard();
      const sig = sign(next);
      errors.clear();
      if (sig !== signature) {
        signature = sig;
        data = next;
        show();
      }
      return true;
    },
    { interval: 2500, onError: (err) => errors.error(err) },
  );
  const currentBond = () =>
    data.dash.bonds.find((b) => b.token.toLowerCase() === ZERO_ADDRESS) || { free: "0", reserved: "0" };
  return h(
    "section",
    null,
    h(
      "div",
      { class: "spread" },
      title,
      h("span", { class: "muted small" }, "Signed in as ", h("span", { class: "mono" }, short(wallet.address))),
    ),
    errors,
    wslot,
    settlement,
    live,
    waiting,
    h(
      "div",
      { class: "cols" },
      upload,
      openListingCard(Number(config.minBondBps), () => refresh()),
    ),
    bondCard(currentBond, () => refresh()),
  );
}

function settlementsCard(settlements) {
  return h(
    "div",
    { class: "card" },
    h("h2", null, "Recent settlements"),
    settlements.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "small", "data-test": "settlements" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["Order", "Kind", "Amount", "When", "Transaction"].map((t) => h("th", null, t)),
              ),
            ),
            h(
              "tbody",
              null,
              settlements.map((s) =>
                h(
                  "tr",
                  { "data-test": "settlement-row" },
                  h("td", null, `#${s.order_id}`),
                  h("td", null, s.kind),
                  h("td", { class: "num" }, fmtAmount(s.amount, s.token)),
                  h("td", null, when(s.timestamp)),
                  h("td", null, txLink(s.tx_hash, s.block_number)),
                ),
              ),
            ),
          ),
        )
      : h(
          "p",
          { class: "muted" },
          "Nothing settled yet. An order settles when its buyer confirms, or when its dispute window passes.",
        ),
  );
}
