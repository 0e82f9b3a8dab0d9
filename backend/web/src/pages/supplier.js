// The supplier dashboard: bond, escrow and balances with withdraw, what is settled, due now and
// still in the dispute window (with a button to settle the due orders now), low-stock warnings,
// orders by state, a sales chart, CSV uploads with progress and per-line errors (signed by the
// supplier's own wallet when the server holds no key for it, with the uploads still waiting for
// that signature), listings to open, restock, reprice and close, and coupons to issue and revoke
// (supplier-coupons.js).
import { decodeFunctionData, isAddressEqual, toEventSelector, toHex } from "viem";
import { ApiError, get, post, uploadCodes } from "../api.js";
import { cumulativeChart } from "../chart.js";
import {
  amountText,
  ERC20_ABI,
  ESCROW_ABI,
  MAX_ON_CHAIN_QUANTITY,
  ZERO_ADDRESS,
  decodeLogs,
  explain,
  fmtAmount,
  hashOrder,
  listingHistory,
  net,
  orderFromApi,
  parseAmount,
  read,
  tokenInfo,
  tokenUnits,
  unitPriceOf,
  userError,
} from "../chain.js";
import { chainNumber, duration, humanize, keccakText, orderLabel, product, short, txLink, when } from "../fmt.js";
import { has, locale, t, tn } from "../i18n.js";
import { gate } from "../session.js";
import { poll } from "../status.js";
import {
  MAX_TIERS,
  checkTiers,
  discounted,
  listingTiers,
  percentBps,
  percentOff,
  percentText,
  tierTable,
} from "../tiers.js";
import { askFirst, busy, field, h, message, messageSlot, pill, replace, stat } from "../ui.js";
import { requireWallet, sendEscrow, sendPrepared, wallet } from "../wallet.js";
import { statePill } from "./orders.js";
import { couponCard } from "./supplier-coupons.js";

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
          [topic("BondDeposited"), topic("BondWithdrawn"), topic("Withdrawn")], // i18n-ignore: event names
          toHex(BigInt(address), { size: 32 }),
        ],
      },
    ],
  });
  return decodeLogs(logs);
}

function amountOf(list, token) {
  return BigInt(list.find((x) => sameToken(x.token, token))?.amount ?? 0);
}

// ------------------------------------------------------------------ payment tokens

const sameToken = (a, b) => String(a || ZERO_ADDRESS).toLowerCase() === String(b || ZERO_ADDRESS).toLowerCase();
const isNative = (token) => sameToken(token, ZERO_ADDRESS);

/** A token's bond in the dashboard's `bonds` (zero when it has none). */
const bondIn = (dash, token) => dash.bonds.find((b) => sameToken(b.token, token)) || { free: "0", reserved: "0" };

/** Symbol and decimals of the tokens the page has met (filled by `loadDashboard`). */
const known = new Map();
const symbolOf = (token) => known.get(String(token || ZERO_ADDRESS).toLowerCase())?.symbol ?? "TOKEN";

/** How a token reads in a selector: "ETH (the chain's coin)", "USDT · 0x5FbD…0aa3". */
const tokenLabel = (token) =>
  isNative(token) ? t("supplier.token.native", { symbol: symbolOf(token) }) : `${symbolOf(token)} · ${short(token)}`;

/** Call a view function of an ERC-20 token. */
const erc20 = (token, functionName, args = []) =>
  net.client.readContract({ address: token, abi: ERC20_ABI, functionName, args });

/**
 * A select of payment tokens (`data-test` = `testId`); `setTokens(list)` refreshes the choices,
 * keeping the current one while it is still offered. `onChange` runs when the choice changes.
 */
function tokenSelect(testId, onChange) {
  const select = h("select", { "data-test": testId }, h("option", { value: ZERO_ADDRESS }, tokenLabel(ZERO_ADDRESS)));
  let shown = "";
  select.setTokens = (tokens) => {
    const labels = tokens.map((tok) => [tok, tokenLabel(tok)]);
    const sig = JSON.stringify(labels);
    if (sig === shown) return;
    shown = sig;
    const current = select.value;
    replace(
      select,
      labels.map(([tok, label]) => h("option", { value: tok }, label)),
    );
    const keep = tokens.find((tok) => sameToken(tok, current));
    select.value = keep ?? ZERO_ADDRESS;
    if (!keep) onChange?.();
  };
  select.addEventListener("change", () => onChange?.());
  return select;
}

/** The tokens a listing may be priced in: the chain's coin, then every allowed ERC-20. */
const listingTokens = (data) => [ZERO_ADDRESS, ...data.allowed.filter((tok) => !isNative(tok))];

/**
 * The tokens a bond may be deposited or withdrawn in: those a listing may use, and any other
 * the supplier still holds bond in (a token the operator stopped accepting can still be taken
 * out).
 */
function bondTokens(data) {
  const list = listingTokens(data);
  for (const b of data.dash.bonds) {
    if (BigInt(b.free) + BigInt(b.reserved) > 0n && !list.some((tok) => sameToken(tok, b.token))) list.push(b.token);
  }
  return list;
}

/** Orders per `settle` transaction: the server's keeper batch size (GET /chain). */
const settleBatch = () => net.settleBatch;

/** Per-token amounts as "1.2 ETH + 3 USDC" ("0 ETH" when all are zero). */
function amounts(list, key) {
  const some = list.filter((s) => BigInt(s[key]) > 0n);
  return some.length ? some.map((s) => fmtAmount(s[key], s.token)).join(" + ") : fmtAmount(0n);
}

const total = (list, key) => list.reduce((n, s) => n + Number(s[key]), 0);

/** "3 orders", "1 transaction", "25 codes", "2 due orders" in the reader's language. */
const ordersN = (count) => t("supplier.n.orders", { count });
const transactions = (count) => t("supplier.n.transactions", { count });
const codesOf = (count) => t("supplier.n.codes", { count });

/**
 * Settle the supplier's due orders from its wallet, in batches, reporting into `slot`.
 *
 * The orders come from the API; each is checked against its hash on-chain first, so an order
 * confirmed, settled or disputed since the mirror saw it is left out instead of failing a batch.
 */
async function settleDueOrders(slot) {
  slot.show("info", t("supplier.settle.finding"));
  const due = await get("/supplier/orders/due?limit=1000", { auth: true });
  if (!due.length) {
    throw userError(t("supplier.settle.noneDue"));
  }
  slot.show("info", t("supplier.settle.checking", { orders: t("supplier.n.dueOrders", { count: due.length }) }));
  const live = [];
  let gone = 0;
  let changed = 0;
  for (let i = 0; i < due.length; i += settleBatch()) {
    const part = due.slice(i, i + settleBatch());
    const stored = await Promise.all(part.map((o) => read("orderHash", [BigInt(o.order_id)])));
    part.forEach((o, j) => {
      const order = orderFromApi(o);
      if (BigInt(stored[j]) === 0n) gone += 1;
      else if (hashOrder(order) === stored[j]) live.push({ id: BigInt(o.order_id), order, token: o.token });
      else changed += 1;
    });
  }
  if (!live.length) {
    throw userError(t("supplier.settle.noneLeft"));
  }
  const tokens = [...new Set(live.map((x) => x.token))];
  await Promise.all(tokens.map(tokenInfo));
  const before = await Promise.all(tokens.map((tok) => read("balanceOf", [wallet.address, tok])));
  const batches = [];
  for (let i = 0; i < live.length; i += settleBatch()) batches.push(live.slice(i, i + settleBatch()));
  let settled = 0;
  let skipped = 0;
  const txs = [];
  for (const [i, batch] of batches.entries()) {
    slot.show(
      "info",
      t("supplier.settle.batch", { n: i + 1, total: batches.length, orders: ordersN(batch.length) }),
      txs.length ? txs : undefined,
    );
    let r;
    try {
      r = await sendEscrow("settle", [batch.map((x) => x.id), batch.map((x) => x.order)]);
    } catch (raw) {
      const err = explain(raw);
      if (!txs.length) throw err;
      throw userError(
        t("supplier.settle.partFailed", {
          orders: ordersN(settled),
          txs: transactions(txs.length),
          n: i + 1,
          total: batches.length,
          error: err.userMessage,
        }),
        txs,
      );
    }
    settled += r.events.filter((e) => e.name === "OrderSettled").length;
    skipped += r.events.filter((e) => e.name === "SettlementSkipped").length;
    txs.push(txLink(r.hash, Number(r.receipt.blockNumber)));
  }
  const after = await Promise.all(tokens.map((tok) => read("balanceOf", [wallet.address, tok])));
  const credited = tokens.map((tok, i) => fmtAmount(after[i] - before[i], tok)).join(" + ");
  const notes = [
    gone + skipped ? t("supplier.settle.alreadyDone", { count: gone + skipped }) : "",
    changed ? t("supplier.settle.changed", { count: changed }) : "",
  ].filter(Boolean);
  slot.show(
    "ok",
    [t("supplier.settle.done", { orders: ordersN(settled), txs: transactions(txs.length), credited }), ...notes].join(
      " ",
    ),
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
  const btn = h("button", { class: "btn", "data-test": "settle-due", disabled: true }, t("supplier.settle.button"));
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
    h("h2", null, t("supplier.settlement.title")),
    h("p", { class: "small muted" }, t("supplier.settlement.intro")),
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
    const nexts = list.map((s) => s.next_due_at).filter((x) => x !== null && x !== undefined);
    const next = nexts.length ? Math.min(...nexts.map(Number)) : null;
    replace(
      figures,
      stat(
        t("supplier.stat.settled"),
        amounts(list, "settled"),
        t("supplier.stat.settled.sub", { orders: ordersN(total(list, "settled_orders")) }),
        {
          "data-test": "settled",
        },
      ),
      stat(
        t("supplier.stat.due"),
        amounts(list, "due"),
        dueCount ? t("supplier.stat.due.sub", { orders: ordersN(dueCount) }) : t("supplier.none"),
        {
          "data-test": "due-now",
        },
      ),
      stat(
        t("supplier.stat.inWindow"),
        amounts(list, "in_window"),
        waiting ? t("supplier.stat.inWindow.sub", { orders: ordersN(waiting), when: when(next) }) : t("supplier.none"),
        { "data-test": "in-window" },
      ),
    );
    btn.disabled = running || dueCount === 0;
    replace(
      why,
      dueCount
        ? t("supplier.settle.why.due", {
            orders: ordersN(dueCount),
            txs: transactions(Math.ceil(dueCount / settleBatch())),
          })
        : waiting
          ? t("supplier.settle.why.waiting", { count: waiting, when: when(next) })
          : t("supplier.settle.why.nothing"),
    );
  };
  return card;
}

/** Where uploads waiting for the supplier's signature are listed (the card's heading). */
const WAITING = () => t("supplier.waiting.title");

/** Uploads whose commitment this page is signing now (by id), so no button signs one twice. */
const signing = new Set();
/** Called whenever `signing` changes (the waiting list redraws its buttons). */
const signingWatchers = new Set();
function setSigning(uploadId, on) {
  if (on) signing.add(uploadId);
  else signing.delete(uploadId);
  for (const fn of signingWatchers) fn();
}

const indexes = (u) =>
  t("supplier.indexes", { first: String(u.first_index), last: String(u.first_index + u.count - 1) });

/**
 * Check an awaiting upload's `commit_call` before the wallet sees it: the escrow's commitBatch of
 * exactly this upload (listing, root, count, first index), on this chain, from the connected
 * wallet. Throws a user error saying what is wrong; nothing is signed then.
 */
function checkCommitCall(u) {
  const call = u.commit_call;
  const id = String(u.upload_id);
  if (!call) throw userError(t("supplier.check.noCall", { id }));
  if (Number(call.chain_id) !== net.chainId)
    throw userError(t("supplier.check.chain", { id, chain: String(call.chain_id), here: String(net.chainId) }));
  if (!wallet.address || !isAddressEqual(call.from_address, wallet.address))
    throw userError(
      t("supplier.check.signer", {
        id,
        supplier: short(call.from_address),
        connected: wallet.address ? short(wallet.address) : t("supplier.none"),
        waiting: WAITING(),
      }),
    );
  if (!isAddressEqual(call.to, net.escrow))
    throw userError(t("supplier.check.to", { id, to: call.to, escrow: net.escrow }));
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
    throw userError(t("supplier.check.data", { id, codes: codesOf(u.count), listing: String(u.listing_id) }));
}

/** "Committed 4 codes to listing #7 as batch 0 (indexes 0–3)." */
function committedText(u) {
  return t("supplier.committed", {
    count: u.count,
    listing: String(u.listing_id),
    batch: String(u.batch_index),
    indexes: indexes(u),
  });
}

/** "Merkle root 0x… · block 12 · 0x…" */
function rootAndTx(root, tx) {
  return h("span", null, tn("supplier.rootAndTx", { root: h("span", { class: "mono" }, short(root, 10, 6)), tx }));
}

/** Say where an upload's signature went (`done`: the server's UploadPublic after the report). */
function showSigned(slot, done, tx) {
  if (done.state === "committed") {
    slot.show("ok", `${committedText(done)} ${t("supplier.onSaleNow")}`, rootAndTx(done.root, tx));
  } else if (done.state === "abandoned") {
    slot.show(
      "error",
      t("supplier.abandoned", {
        id: String(done.upload_id),
        codes: codesOf(done.count),
        reason: done.error || t("supplier.abandoned.reason"),
      }),
      tx,
    );
  } else {
    slot.show("info", t("supplier.sent.notFound", { codes: codesOf(done.count), waiting: WAITING() }), tx);
  }
}

/**
 * Have the connected wallet sign and send an awaiting upload's commitBatch (`u.commit_call`,
 * exactly as the server prepared it), then report the transaction so the codes go on sale.
 * Progress goes into `slot`; a refusal or failure throws a user error saying nothing is on sale.
 */
async function signUpload(u, slot) {
  const codes = codesOf(u.count);
  const id = String(u.upload_id);
  const notOnSale = t("supplier.sign.notOnSale", { codes, id, waiting: WAITING() });
  if (signing.has(u.upload_id)) throw userError(t("supplier.sign.already", { id }));
  setSigning(u.upload_id, true);
  try {
    try {
      checkCommitCall(u);
    } catch (err) {
      throw userError(`${err.userMessage} ${notOnSale}`);
    }
    slot.show("info", t("supplier.sign.prompt", { codes }));
    let r;
    try {
      r = await sendPrepared(u.commit_call, {
        onSent: (hash) => slot.show("info", t("supplier.sign.sent", { codes }), txLink(hash)),
      });
    } catch (raw) {
      const err = explain(raw);
      throw userError(`${err.userMessage} ${notOnSale}`, null, { rejected: err.rejected });
    }
    const tx = txLink(r.hash, Number(r.receipt.blockNumber));
    slot.show("info", t("supplier.sign.reporting", { codes }), tx);
    let done;
    try {
      done = await post(`/supplier/uploads/${u.upload_id}/submitted`, { tx_hash: r.hash }, { auth: true });
    } catch (raw) {
      const err = explain(raw);
      throw userError(t("supplier.sign.reportFailed", { error: err.userMessage, waiting: WAITING() }), tx);
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
  const empty = h("p", { class: "muted", hidden: true }, t("supplier.waiting.empty"));
  const table = h(
    "div",
    { class: "table-wrap", tabindex: "0" },
    h(
      "table",
      { class: "small stack-sm", "data-test": "waiting-uploads" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          [
            t("supplier.col.upload"),
            t("supplier.col.listing"),
            t("supplier.col.codes"),
            t("supplier.col.root"),
            h("span", { class: "sr-only" }, t("ui.col.actions")),
          ].map((label) => h("th", null, label)),
        ),
      ),
      rows,
    ),
  );
  const card = h(
    "div",
    { class: "card", id: "waiting", "data-test": "waiting", hidden: true },
    h("h2", null, WAITING()),
    h("p", { class: "small muted" }, t("supplier.waiting.intro")),
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
          signing.has(u.upload_id) ? t("supplier.sign.signing") : t("supplier.sign.now"),
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
          h("td", { "data-label": t("supplier.col.upload") }, `#${u.upload_id}`),
          h("td", { "data-label": t("supplier.col.listing") }, `#${u.listing_id}`),
          h("td", { "data-label": t("supplier.col.codes"), class: "num" }, `${u.count} (${indexes(u)})`),
          h("td", { "data-label": t("supplier.col.root"), class: "mono" }, short(u.root, 10, 6)),
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
    h("option", { value: "" }, t("supplier.upload.noListing")),
  );
  const file = h("input", { type: "file", accept: ".csv,text/csv,text/plain", "data-test": "upload-file" });
  const bar = h("div");
  const progressText = h("div", { class: "small muted", "data-test": "upload-progress" });
  const progress = h("div", { class: "progress", hidden: true }, bar);
  const slot = messageSlot({ "data-test": "upload-message" });
  const btn = h("button", { class: "btn", "data-test": "upload" }, t("supplier.upload.button"));
  btn.addEventListener("click", () =>
    busy(btn, slot, async () => {
      const f = file.files?.[0];
      if (!f) throw userError(t("supplier.upload.noFile"));
      if (!select.value) throw userError(t("supplier.upload.openFirst"));
      progress.hidden = false;
      bar.style.width = "0%";
      progressText.textContent = t("supplier.upload.sending", { file: f.name, size: (f.size / 1024).toFixed(1) });
      try {
        const r = await uploadCodes(select.value, f, (done, total) => {
          bar.style.width = `${Math.round((100 * done) / Math.max(total, 1))}%`;
          progressText.textContent = t("supplier.upload.progress", { done, total });
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
            t("supplier.upload.stored", { count: r.count, listing: String(r.listing_id) }),
            r.tx_hash ? txLink(r.tx_hash) : null,
          );
          file.value = "";
          onDone?.();
          return;
        }
        slot.show("ok", committedText(r), rootAndTx(r.root, txLink(r.tx_hash)));
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
              t("supplier.upload.busy", {
                file: f.name,
                id: String(waiting.upload_id),
                codes: codesOf(waiting.count),
                listing: String(waiting.listing_id),
                waiting: WAITING(),
              }),
            );
          }
        }
        if (err instanceof ApiError && Array.isArray(err.errors) && err.errors.length) {
          replace(
            slot,
            h(
              "div",
              { class: "msg error", role: "alert", "data-test": "upload-errors" },
              h("div", null, t("supplier.upload.problems", { count: err.total ?? err.errors.length, file: f.name })),
              h(
                "table",
                { class: "small", style: { marginTop: ".4rem" } },
                h(
                  "thead",
                  null,
                  h(
                    "tr",
                    null,
                    h("th", null, t("supplier.upload.col.line")),
                    h("th", null, t("supplier.upload.col.problem")),
                  ),
                ),
                h(
                  "tbody",
                  null,
                  err.errors.map((e) =>
                    h(
                      "tr",
                      { "data-test": "upload-error-line" },
                      h("td", { class: "num" }, e.line === 0 ? t("supplier.upload.wholeFile") : String(e.line)),
                      h("td", null, e.reason),
                    ),
                  ),
                ),
              ),
              err.total > err.errors.length
                ? h("div", { class: "small" }, t("supplier.upload.more", { count: err.total - err.errors.length }))
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
    h("h2", null, t("supplier.upload.title")),
    h("p", { class: "small muted" }, t("supplier.upload.intro")),
    field(t("supplier.upload.listing"), select),
    field(t("supplier.upload.file"), file),
    progress,
    progressText,
    slot,
    btn,
  );
  // A listing just opened, to select as soon as the dashboard's data lists it.
  let wanted = null;
  /** Refresh the listing choices, keeping the current one (or selecting the one just opened). */
  card.setListings = (listings) => {
    const current = select.value;
    if (!listings.length) return;
    replace(
      select,
      listings.map((l) =>
        h(
          "option",
          { value: String(l.listing_id) },
          `#${l.listing_id} · ${l.name} · ${fmtAmount(l.unit_price, l.token)}${l.active ? "" : t("supplier.closedSuffix")}`,
        ),
      ),
    );
    if (wanted !== null && listings.some((l) => String(l.listing_id) === wanted)) {
      select.value = wanted;
      wanted = null;
    } else if (listings.some((l) => String(l.listing_id) === current)) select.value = current;
  };
  /** Select listing `id` in the form now, or once the dashboard lists it. */
  card.follow = (id) => {
    if (id === null || id === undefined) return;
    wanted = String(id);
    if ([...select.options].some((o) => o.value === wanted)) {
      select.value = wanted;
      wanted = null;
    }
  };
  return card;
}

/** The form to open a listing for an authorized product. */
function openListingCard(minBondBps, onDone) {
  const name = h("input", { placeholder: "steam-wallet-50", "data-test": "new-sku", autocomplete: "off" });
  const skuInfo = h("div", { class: "small muted line-slot", "data-test": "new-sku-info" }, t("supplier.open.skuHint"));
  const price = h("input", { type: "text", inputmode: "decimal", value: "0.01", "data-test": "new-price" });
  const priceLabel = h("span", null, t("supplier.open.price", { symbol: symbolOf(ZERO_ADDRESS) }));
  const token = tokenSelect("new-token", () => {
    replace(priceLabel, t("supplier.open.price", { symbol: symbolOf(token.value) }));
  });
  const delivery = h(
    "select",
    null,
    ["600", "3600", "86400"].map((v) => h("option", { value: v, selected: v === "3600" }, duration(Number(v)))),
  );
  const dispute = h(
    "select",
    null,
    ["3600", "86400", "604800"].map((v) => h("option", { value: v, selected: v === "86400" }, duration(Number(v)))),
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
    placeholder: t("supplier.open.descriptionExample"),
    "data-test": "new-description",
  });
  const slot = messageSlot({ "data-test": "open-listing-message" });
  let authorized = false;
  const check = async () => {
    const n = name.value.trim();
    authorized = false;
    if (!n) {
      replace(skuInfo, t("supplier.open.skuHint"));
      return;
    }
    const sku = keccakText(n);
    const att = await read("authorization", [wallet.address, sku]).catch(() => 0n);
    authorized = BigInt(att) !== 0n;
    replace(
      skuInfo,
      tn("supplier.open.sku", { sku: h("span", { class: "mono" }, short(sku, 10, 6)) }),
      " · ",
      authorized ? pill(t("supplier.open.licensed"), "ok") : pill(t("supplier.open.unlicensed"), "bad"),
    );
  };
  name.addEventListener("change", check);
  name.addEventListener("input", () => {
    authorized = false;
  });
  const btn = h("button", { class: "btn", "data-test": "open-listing" }, t("supplier.open.button"));
  btn.addEventListener("click", () =>
    busy(btn, slot, async () => {
      const n = name.value.trim();
      if (!/^[\w.-]{2,64}$/.test(n)) throw userError(t("supplier.open.badName"));
      await check();
      if (!authorized) throw userError(t("supplier.open.notLicensed", { name: n }));
      const tok = token.value;
      const unit = await unitPriceOf(price.value, tok);
      const bondBps = Math.round(Number(bond.value) * 100);
      if (!(bondBps >= minBondBps && bondBps <= 10000))
        throw userError(t("supplier.open.badBond", { min: String(minBondBps / 100) }));
      const meta = { name: humanize(n), sku: n, description: description.value.trim() };
      const uri = `data:application/json,${encodeURIComponent(JSON.stringify(meta))}`;
      const r = await sendEscrow("createListing", [
        keccakText(n),
        tok,
        unit,
        Number(delivery.value),
        Number(dispute.value),
        bondBps,
        uri,
      ]);
      const ev = r.events.find((e) => e.name === "ListingCreated");
      slot.show(
        "ok",
        t("supplier.open.done", { id: String(ev?.args.listingId), price: fmtAmount(unit, tok) }),
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
      onDone?.(ev ? String(ev.args.listingId) : null);
    }),
  );
  const card = h(
    "div",
    { class: "card" },
    h("h2", null, t("supplier.open.title")),
    field(t("supplier.open.name"), name),
    skuInfo,
    h(
      "div",
      { class: "cols" },
      field(t("supplier.open.token"), token, t("supplier.open.tokenHint")),
      field(priceLabel, price),
    ),
    field(t("supplier.open.bond"), bond, t("supplier.open.bondHint", { min: String(minBondBps / 100) })),
    h(
      "div",
      { class: "cols" },
      field(t("supplier.open.delivery"), delivery),
      field(t("supplier.open.dispute"), dispute),
    ),
    field(t("supplier.open.description"), description),
    slot,
    btn,
  );
  /** Offer the tokens a listing may be priced in now (`loadDashboard`'s data). */
  card.update = (data) => token.setTokens(listingTokens(data));
  return card;
}

/**
 * Deposit and withdraw bond, in the chain's coin or an allowed ERC-20. An ERC-20 deposit checks
 * the wallet's balance of the token, has the wallet approve the escrow for exactly the amount
 * (unless its allowance already covers it), then deposits. `update(data)` shows the dashboard's
 * figures for the chosen token.
 */
function bondCard(onDone) {
  const amount = h("input", { type: "text", inputmode: "decimal", value: "1", "data-test": "bond-amount" });
  const amountLabel = h("span", null, t("supplier.bond.amount", { symbol: symbolOf(ZERO_ADDRESS) }));
  const figures = h("p", { class: "small", "data-test": "bond-of-token" });
  const slot = messageSlot({ "data-test": "bond-message" });
  const deposit = h("button", { class: "btn", "data-test": "bond-deposit" }, t("supplier.bond.deposit"));
  const withdraw = h("button", { class: "btn quiet", "data-test": "bond-withdraw" }, t("supplier.bond.withdraw"));
  let data = null;
  const draw = () => {
    const tok = token.value;
    replace(amountLabel, t("supplier.bond.amount", { symbol: symbolOf(tok) }));
    if (!data) return;
    const bond = bondIn(data.dash, tok);
    replace(
      figures,
      t("supplier.bond.ofToken", {
        symbol: symbolOf(tok),
        free: fmtAmount(bond.free, tok),
        reserved: fmtAmount(bond.reserved, tok),
      }),
    );
  };
  const token = tokenSelect("bond-token", draw);
  /** The amount typed, in the chosen token's smallest units. */
  const parse = async (tok) => {
    const { symbol, decimals } = await tokenUnits(tok);
    const parsed = parseAmount(amount.value, decimals);
    if (parsed.error === "precision") throw userError(t("supplier.bond.tooPrecise", { symbol, count: decimals }));
    if (parsed.error || parsed.value <= 0n) throw userError(t("supplier.bond.badAmount", { symbol }));
    return parsed.value;
  };
  const shown = (r) => txLink(r.hash, Number(r.receipt.blockNumber));
  deposit.addEventListener("click", () =>
    busy(deposit, slot, async () => {
      const tok = token.value;
      const v = await parse(tok);
      const txs = [];
      if (isNative(tok)) {
        txs.push(shown(await sendEscrow("depositBond", [ZERO_ADDRESS, v], { value: v })));
      } else {
        await requireWallet();
        const have = await erc20(tok, "balanceOf", [wallet.address]);
        if (have < v)
          throw userError(
            t("supplier.bond.tokenShort", { amount: fmtAmount(v, tok), have: fmtAmount(have, tok) }),
            null,
            {
              insufficient: true,
            },
          );
        const allowed = await erc20(tok, "allowance", [wallet.address, net.escrow]);
        if (allowed < v) {
          await refusedBeforeApproval(tok, v);
          slot.show("info", t("supplier.bond.approving", { amount: fmtAmount(v, tok) }));
          txs.push(shown(await sendEscrow("approve", [net.escrow, v], { abi: ERC20_ABI, address: tok })));
        }
        slot.show("info", t("supplier.bond.depositing", { amount: fmtAmount(v, tok) }), txs.length ? txs : undefined);
        try {
          txs.push(shown(await sendEscrow("depositBond", [tok, v])));
        } catch (raw) {
          const err = explain(raw);
          if (!txs.length) throw err;
          throw userError(t("supplier.bond.approvedOnly", { error: err.userMessage, amount: fmtAmount(v, tok) }), txs);
        }
      }
      slot.show("ok", t("supplier.bond.deposited", { amount: fmtAmount(v, tok) }), txs);
      onDone?.();
    }),
  );
  withdraw.addEventListener("click", () =>
    busy(withdraw, slot, async () => {
      const tok = token.value;
      const v = await parse(tok);
      const free = BigInt(data ? bondIn(data.dash, tok).free : 0);
      if (v > free) throw userError(t("supplier.bond.notFree", { amount: fmtAmount(free, tok) }));
      const r = await sendEscrow("withdrawBond", [tok, v, wallet.address]);
      slot.show("ok", t("supplier.bond.withdrew", { amount: fmtAmount(v, tok) }), shown(r));
      onDone?.();
    }),
  );
  const card = h(
    "div",
    { class: "card" },
    h("h2", null, t("supplier.bond.title")),
    h("p", { class: "small muted" }, t("supplier.bond.intro")),
    h("div", { class: "cols" }, field(t("supplier.bond.token"), token), field(amountLabel, amount)),
    figures,
    slot,
    h("div", { class: "row" }, deposit, withdraw),
  );
  /** Offer the tokens a bond may be held in, and show the chosen one's (`loadDashboard`'s data). */
  card.update = (next) => {
    data = next;
    token.setTokens(bondTokens(next));
    draw();
  };
  return card;
}

/**
 * Dry-run an ERC-20 bond deposit before asking for the allowance: a refusal of the escrow's own
 * (the token no longer accepted, a bond over the cap, the escrow paused) is thrown with nothing
 * signed; the token's refusal for want of an allowance is what the approval then fixes.
 */
async function refusedBeforeApproval(token, amount) {
  try {
    await net.client.simulateContract({
      account: wallet.account,
      address: net.escrow,
      abi: ESCROW_ABI,
      functionName: "depositBond",
      args: [token, amount],
    });
  } catch (raw) {
    const err = explain(raw);
    const own = err.revert && (err.revert.startsWith("Escrow") || err.revert === "EnforcedPause"); // i18n-ignore: error names
    if (own) throw err;
  }
}

/** Everything the dashboard shows, fetched in one go. */
async function loadDashboard() {
  const [dash, orders, listingsFull, ledger, uploads, allowed] = await Promise.all([
    get("/supplier/dashboard", { auth: true }),
    get("/supplier/orders?limit=1000", { auth: true }),
    Promise.all(
      [true, false].map((active) =>
        get(`/catalog/listings?supplier=${wallet.address}&active=${active}&licence=any&limit=500`),
      ),
    ).then((x) => x.flat()),
    ledgerEvents(wallet.address).catch(() => []),
    get("/supplier/uploads", { auth: true }),
    get("/catalog/tokens"),
  ]);
  const tokens = [
    ZERO_ADDRESS,
    ...allowed,
    ...orders.map((o) => o.token),
    ...listingsFull.map((l) => l.token),
    ...[dash.settlement, dash.bonds, dash.balances, dash.in_escrow, dash.earned].flat().map((x) => x.token),
  ];
  const unique = [...new Set(tokens.map((tok) => String(tok).toLowerCase()))];
  const infos = await Promise.all(unique.map(tokenInfo));
  unique.forEach((tok, i) => known.set(tok, infos[i]));
  const full = new Map(listingsFull.map((l) => [String(l.listing_id), l]));
  const [histories, tiers] = await Promise.all([
    Promise.all(dash.listings.map((l) => listingHistory(l.listing_id).catch(() => []))),
    Promise.all(dash.listings.map((l) => listingTiers(full.get(String(l.listing_id)) ?? l))),
  ]);
  const listings = dash.listings.map((l, i) => {
    const f = full.get(String(l.listing_id));
    return {
      ...l,
      token: f?.token ?? ZERO_ADDRESS,
      reseller_price: f?.reseller_price ?? "0",
      tiers: tiers[i],
      name: (f && product(f).name) || t("supplier.listingN", { id: String(l.listing_id) }),
      lastBatch: histories[i].filter((e) => e.name === "BatchCommitted").at(-1) || null,
    };
  });
  return { dash, orders, listings, ledger, uploads, allowed };
}

/**
 * The button that turns on on-chain delivery for a listing (requireOnChainRelease), after an
 * in-page "are you sure" saying it is one way and caps orders at 32 codes. Failures go to the
 * row's `slot`, the outcome to the page's `outcome` (the row is redrawn once the mirror sees it).
 */
function onChainControl(l, slot, outcome, refresh, asking) {
  const id = String(l.listing_id);
  // Open or closed as it was: the dashboard redraws its rows when a figure changes.
  return askFirst({
    key: l.listing_id,
    asking,
    slot,
    test: "onchain-listing",
    prefix: "onchain",
    label: t("supplier.onChain.button"),
    question: t("supplier.onChain.ask", { id }),
    explain: t("supplier.onChain.explain", { count: MAX_ON_CHAIN_QUANTITY }),
    yesLabel: t("supplier.onChain.yes"),
    noLabel: t("supplier.onChain.no"),
    act: () => sendEscrow("requireOnChainRelease", [BigInt(l.listing_id)]),
    done: (r) => {
      outcome.show(
        "ok",
        t("supplier.onChain.done", { id, count: MAX_ON_CHAIN_QUANTITY }),
        txLink(r.hash, Number(r.receipt.blockNumber)),
      );
      refresh();
    },
  });
}

/**
 * Opening a listing to resellers (分站): the reseller price (what the supplier receives a unit
 * from a shop's sale, before the platform fee), changed or set to zero (closed to resellers) with
 * setResellerPrice. Failures go to the row's `slot`, the outcome to the page's `outcome`.
 */
function resellerControl(l, slot, outcome, refresh, unfolded) {
  const current = BigInt(l.reseller_price ?? 0);
  const price = h("input", {
    type: "text",
    inputmode: "decimal",
    autocomplete: "off",
    value: current > 0n ? amountText(current, l.token) : "",
    placeholder: amountText(l.unit_price, l.token),
    "aria-label": t("supplier.resell.price", { id: String(l.listing_id) }),
    "data-test": "reseller-price",
  });
  const set = h(
    "button",
    { class: "btn small", type: "button", "data-test": "reseller-set" },
    current > 0n ? t("supplier.resell.update") : t("supplier.resell.open"),
  );
  const close =
    current > 0n
      ? h(
          "button",
          { class: "btn small quiet", type: "button", "data-test": "reseller-close" },
          t("supplier.resell.close"),
        )
      : null;
  const send = async (value, text) => {
    const r = await sendEscrow("setResellerPrice", [BigInt(l.listing_id), value]);
    outcome.show("ok", text, txLink(r.hash, Number(r.receipt.blockNumber)));
    refresh();
  };
  set.addEventListener("click", () =>
    busy(set, slot, async () => {
      const value = await unitPriceOf(price.value, l.token);
      await send(value, t("supplier.resell.done", { id: String(l.listing_id), price: fmtAmount(value, l.token) }));
    }),
  );
  close?.addEventListener("click", () =>
    busy(close, slot, () => send(0n, t("supplier.resell.closed", { id: String(l.listing_id) }))),
  );
  const box = h(
    "details",
    { class: "small", "data-test": "reseller-control", open: unfolded.has(l.listing_id) ? true : null },
    h(
      "summary",
      null,
      current > 0n
        ? t("supplier.resell.summaryOpen", { price: fmtAmount(current, l.token) })
        : t("supplier.resell.summary"),
    ),
    h("p", { class: "muted" }, t("supplier.resell.explain")),
    h("div", { class: "row" }, price, set, close),
  );
  // Open or closed as it was: the dashboard redraws its rows when a figure changes.
  box.addEventListener("toggle", () => (box.open ? unfolded.add(l.listing_id) : unfolded.delete(l.listing_id)));
  return box;
}

/**
 * Volume tiers (批发价): up to three quantity breaks, each with a percentage off the listing's
 * price (the price it comes to shown beside it), saved with setTiers, or removed with empty
 * lists. What is typed is checked by the escrow's rules before anything is sent. Failures go to
 * the row's `slot`, the outcome to the page's `outcome`.
 */
function tiersControl(l, slot, outcome, refresh, unfolded) {
  const id = String(l.listing_id);
  const price = BigInt(l.unit_price);
  const current = l.tiers;
  const rows = Array.from({ length: MAX_TIERS }, (_, i) => {
    const tier = current[i];
    const min = h("input", {
      type: "text",
      inputmode: "numeric",
      autocomplete: "off",
      value: tier ? String(tier.minQuantity) : "",
      style: { width: "5rem" },
      "data-test": "tier-min",
    });
    const off = h("input", {
      type: "text",
      inputmode: "decimal",
      autocomplete: "off",
      value: tier ? percentText(tier.discountBps) : "",
      style: { width: "4.5rem" },
      "data-test": "tier-off",
    });
    const result = h("span", { class: "muted", "data-test": "tier-result" });
    const show = () => {
      const bps = percentBps(off.value);
      result.textContent =
        bps === null ? "" : t("supplier.tiers.result", { price: fmtAmount(discounted(price, bps), l.token) });
    };
    off.addEventListener("input", show);
    show();
    const label = { class: "row", style: { margin: 0, fontWeight: 500, gap: "0.3rem" } };
    return {
      min,
      off,
      el: h(
        "div",
        { class: "row", style: { marginBottom: "0.3rem" }, "data-test": "tier-row" },
        h("label", label, t("supplier.tiers.from", { row: i + 1 }), min),
        h("label", label, t("supplier.tiers.off"), off),
        result,
      ),
    };
  });
  const save = h("button", { class: "btn small", type: "button", "data-test": "tiers-save" }, t("supplier.tiers.save"));
  const remove = current.length
    ? h("button", { class: "btn small quiet", type: "button", "data-test": "tiers-remove" }, t("supplier.tiers.remove"))
    : null;
  const send = async (minQuantities, discountsBps, text) => {
    const r = await sendEscrow("setTiers", [BigInt(l.listing_id), minQuantities, discountsBps]);
    outcome.show("ok", text, txLink(r.hash, Number(r.receipt.blockNumber)));
    refresh();
  };
  save.addEventListener("click", () =>
    busy(save, slot, async () => {
      const { minQuantities, discountsBps } = checkTiers(rows.map((r) => ({ min: r.min.value, off: r.off.value })));
      const summary = minQuantities
        .map((q, i) => t("supplier.tiers.part", { count: q, percent: percentOff(discountsBps[i]) }))
        .join(t("supplier.tiers.join"));
      await send(minQuantities, discountsBps, t("supplier.tiers.done", { id, tiers: summary }));
    }),
  );
  remove?.addEventListener("click", () => busy(remove, slot, () => send([], [], t("supplier.tiers.removed", { id }))));
  const box = h(
    "details",
    { class: "small", "data-test": "tiers-control", open: unfolded.has(l.listing_id) ? true : null },
    h(
      "summary",
      null,
      current.length
        ? t("supplier.tiers.summaryOn", {
            tiers: current
              .map((x) => t("supplier.tiers.part", { count: x.minQuantity, percent: percentOff(x.discountBps) }))
              .join(t("supplier.tiers.join")),
          })
        : t("supplier.tiers.summary"),
    ),
    h("p", { class: "muted" }, t("supplier.tiers.explain", { count: MAX_TIERS })),
    tierTable(price, current, l.token, { testId: "supplier-tiers" }),
    rows.map((r) => r.el),
    h("div", { class: "row" }, save, remove),
  );
  // Open or closed as it was: the dashboard redraws its rows when a figure changes.
  box.addEventListener("toggle", () => (box.open ? unfolded.add(l.listing_id) : unfolded.delete(l.listing_id)));
  return box;
}

/** The part of the dashboard that follows the chain: warnings, figures, chart, tables. */
function liveView({ dash, orders, listings, ledger }, { wslot, refresh, asking, unfolded, tiering }) {
  const lastOf = (names) => [...ledger].reverse().find((e) => names.includes(e.name));
  const lastBond = lastOf(["BondDeposited", "BondWithdrawn"]);
  const lowStock = listings.filter((l) => l.low_stock);
  const byState = Object.entries(dash.orders_by_state);

  /** One withdrawable balance with its button: the chain's coin always, each ERC-20 held. */
  const withdrawable = (token) => {
    const balance = amountOf(dash.balances, token);
    const lastSettle = dash.recent_settlements.find((x) => sameToken(x.token, token));
    const btn = h(
      "button",
      { class: "btn small", "data-test": "withdraw", "data-token": token, disabled: balance === 0n },
      t("supplier.withdrawToken", { symbol: symbolOf(token) }),
    );
    btn.addEventListener("click", () =>
      busy(btn, wslot, async () => {
        const r = await sendEscrow("withdraw", [token, wallet.address]);
        wslot.show(
          "ok",
          t("supplier.withdrew", { amount: fmtAmount(balance, token), address: short(wallet.address) }),
          txLink(r.hash, Number(r.receipt.blockNumber)),
        );
        refresh();
      }),
    );
    return h(
      "div",
      { class: "spread", "data-test": "withdrawable-row", "data-token": token },
      h(
        "span",
        { "data-test": "withdrawable-amount" },
        chainNumber(fmtAmount(balance, token), lastSettle?.tx_hash, lastSettle?.block_number),
      ),
      btn,
    );
  };
  const held = dash.balances.filter((b) => !isNative(b.token) && BigInt(b.amount) > 0n).map((b) => b.token);

  const listingRows = listings.map((l) => {
    const slot = messageSlot();
    const toggle = h(
      "button",
      { class: "btn small quiet", "data-test": "toggle-listing" },
      l.active ? t("supplier.listing.close") : t("supplier.listing.reopen"),
    );
    toggle.addEventListener("click", () =>
      busy(toggle, slot, async () => {
        await sendEscrow("updateListing", [BigInt(l.listing_id), BigInt(l.unit_price), !l.active]);
        refresh();
      }),
    );
    const restock = h("button", { class: "btn small" }, t("supplier.listing.restock"));
    restock.addEventListener("click", () => {
      const sel = document.querySelector('[data-test="upload-listing"]');
      if (sel) sel.value = String(l.listing_id);
      document.getElementById("upload")?.scrollIntoView({ behavior: "smooth" });
    });
    const onChain = l.on_chain_release ? null : onChainControl(l, slot, wslot, refresh, asking);
    return h(
      "tr",
      { "data-test": "listing-row", "data-listing": l.listing_id },
      h(
        "td",
        { "data-label": t("supplier.col.listing") },
        `#${l.listing_id} `,
        h("strong", null, l.name),
        h("div", { class: "small muted mono" }, short(l.sku, 10, 4)),
      ),
      h("td", { "data-label": t("supplier.col.price"), class: "num" }, fmtAmount(l.unit_price, l.token)),
      h(
        "td",
        { "data-label": t("supplier.col.stock"), class: "num" },
        h("span", { "data-test": "listing-stock" }, `${l.stock}`),
        l.low_stock ? h("div", null, pill(t("supplier.listing.low"), "warn")) : null,
      ),
      h(
        "td",
        { "data-label": t("supplier.col.committedSold"), class: "num" },
        l.lastBatch
          ? chainNumber(String(l.committed), l.lastBatch.log.transactionHash, Number(l.lastBatch.log.blockNumber))
          : String(l.committed),
        ` / ${l.sold}`,
      ),
      h("td", { "data-label": t("supplier.col.vault"), class: "num" }, l.vault_codes ?? "—"),
      h(
        "td",
        { "data-label": t("supplier.col.status") },
        l.active ? pill(t("supplier.listing.open"), "ok") : pill(t("supplier.listing.closed"), ""),
        l.on_chain_release
          ? h(
              "div",
              { title: t("supplier.listing.onChain.title", { count: MAX_ON_CHAIN_QUANTITY }) },
              pill(t("supplier.listing.onChain"), "brand", { "data-test": "listing-onchain" }),
            )
          : null,
      ),
      h(
        "td",
        { "data-label": "" },
        h("div", { class: "row" }, restock, toggle, onChain?.button),
        onChain?.ask,
        resellerControl(l, slot, wslot, refresh, unfolded),
        tiersControl(l, slot, wslot, refresh, tiering),
        slot,
      ),
    );
  });

  // One chart per token sold in (amounts in different tokens do not add up).
  const sales = orders.map((o) => ({ t: Number(o.paid_at), amount: BigInt(o.amount), token: o.token }));
  const settled = dash.recent_settlements.map((x) => ({
    t: Number(x.timestamp),
    amount: BigInt(x.amount),
    token: x.token,
  }));
  const chartTokens = [...new Set([...sales, ...settled].map((p) => String(p.token).toLowerCase()))];
  if (!chartTokens.length) chartTokens.push(ZERO_ADDRESS);
  return [
    lowStock.map((l) =>
      message(
        "warn",
        t("supplier.lowStock", {
          name: l.name,
          id: String(l.listing_id),
          count: Number(l.stock),
          threshold: dash.low_stock_threshold,
        }),
      ),
    ),
    h(
      "div",
      { class: "stats" },
      stat(
        t("supplier.stat.bondFree"),
        chainNumber(
          amounts(dash.bonds, "free"),
          lastBond?.log.transactionHash,
          lastBond ? Number(lastBond.log.blockNumber) : undefined,
        ),
        lastBond
          ? txLink(lastBond.log.transactionHash, Number(lastBond.log.blockNumber))
          : t("supplier.stat.noDeposit"),
        { "data-test": "bond-free" },
      ),
      stat(t("supplier.stat.bondReserved"), amounts(dash.bonds, "reserved"), t("supplier.stat.bondReserved.sub"), {
        "data-test": "bond-reserved",
      }),
      stat(t("supplier.stat.inEscrow"), amounts(dash.in_escrow, "amount"), t("supplier.stat.inEscrow.sub"), {
        "data-test": "in-escrow",
      }),
      stat(
        t("supplier.stat.withdrawable"),
        h("div", null, [ZERO_ADDRESS, ...held].map(withdrawable)),
        t("supplier.stat.withdrawable.sub"),
        { "data-test": "withdrawable" },
      ),
      stat(
        t("supplier.stat.earned"),
        amounts(dash.earned, "amount"),
        t("supplier.stat.earned.sub", { count: dash.recent_settlements.length }),
        { "data-test": "earned" },
      ),
    ),
    h(
      "div",
      { class: "cols" },
      h(
        "div",
        { class: "card" },
        h("h2", null, t("supplier.chart.title")),
        chartTokens.map((tok) =>
          cumulativeChart(
            [
              {
                name: t("supplier.chart.sold"),
                color: "#0f766e",
                points: sales.filter((p) => sameToken(p.token, tok)),
              },
              {
                name: t("supplier.chart.settled"),
                color: "#d97706",
                points: settled.filter((p) => sameToken(p.token, tok)),
              },
            ],
            {
              title: t("supplier.chart.label", { symbol: symbolOf(tok) }),
              decimals: known.get(tok)?.decimals ?? 18,
              unit: symbolOf(tok),
            },
          ),
        ),
      ),
      h(
        "div",
        { class: "card" },
        h("h2", null, t("supplier.byState.title")),
        byState.length
          ? h(
              "div",
              { class: "row", "data-test": "orders-by-state" },
              byState.map(([name, n]) =>
                pill(
                  t("supplier.byState.item", { state: stateLabel(name), count: n }),
                  name.toLowerCase() === "disputed" ? "bad" : name.toLowerCase() === "completed" ? "ok" : "",
                ),
              ),
            )
          : h("p", { class: "muted" }, t("supplier.orders.none")),
        h(
          "div",
          { class: "table-wrap", tabindex: "0", style: { marginTop: ".7rem", maxHeight: "16rem", overflowY: "auto" } },
          h(
            "table",
            { class: "small", "data-test": "supplier-orders" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["order", "state", "qty", "amount", "paid"].map((c) => h("th", null, t(`supplier.orders.col.${c}`))),
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
                    h("td", null, orderLabel(o.order_id)),
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
      h("h2", null, t("supplier.listings.title")),
      listings.length
        ? h(
            "div",
            { class: "table-wrap", tabindex: "0" },
            h(
              "table",
              { class: "stack-sm", "data-test": "listings" },
              h(
                "thead",
                null,
                h(
                  "tr",
                  null,
                  ["listing", "price", "stock", "committedSold", "vault", "status"]
                    .map((c) => h("th", null, t(`supplier.col.${c}`)))
                    .concat(h("th", null, "")),
                ),
              ),
              h("tbody", null, listingRows),
            ),
          )
        : h("p", { class: "muted" }, t("supplier.listings.none")),
    ),
    settlementsCard(dash.recent_settlements),
  ];
}

/** #/supplier */
export async function supplierPage(ctx) {
  const title = h("h1", null, t("supplier.title"));
  const g = gate(ctx, {
    needSignIn: true,
    why: t("supplier.why"),
  });
  if (g) return h("section", null, title, g);
  const config = await read("config");
  let data = await loadDashboard();
  const live = h("div", { "data-test": "supplier-live" });
  const wslot = messageSlot({ "data-test": "withdraw-message" });
  const errors = messageSlot({ "data-test": "dashboard-message" });
  let refresh = () => {};
  const upload = uploadCard(() => refresh());
  const settlement = settlementCard(() => refresh());
  const waiting = waitingCard(() => refresh());
  const opener = openListingCard(Number(config.minBondBps), (id) => {
    upload.follow(id);
    refresh();
  });
  const bond = bondCard(() => refresh());
  const coupons = couponCard({ symbolOf });
  const asking = new Set(); // listings whose "keep codes on-chain?" question is open
  const unfolded = new Set(); // listings whose reseller settings are open
  const tiering = new Set(); // listings whose volume tiers are open
  const show = () => {
    replace(live, liveView(data, { wslot, refresh: () => refresh(), asking, unfolded, tiering }));
    upload.setListings(data.listings);
    settlement.update(data.dash);
    waiting.update(data.uploads);
    opener.update(data);
    bond.update(data);
    coupons.update(data);
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
    { interval: 2500, busy: errors, onError: (err, retry) => errors.error(err, retry) },
  );
  return h(
    "section",
    null,
    h(
      "div",
      { class: "spread" },
      title,
      h(
        "span",
        { class: "muted small" },
        tn("supplier.signedInAs", { address: h("span", { class: "mono" }, short(wallet.address)) }),
      ),
    ),
    errors,
    wslot,
    settlement,
    live,
    waiting,
    h("div", { class: "cols" }, upload, opener),
    bond,
    coupons,
  );
}

/** An order state as the API names it ("completed"), in the reader's language, lower case. */
function stateLabel(name) {
  const id = `order.state.${name.charAt(0).toUpperCase()}${name.slice(1)}`;
  return has(id) ? t(id).toLocaleLowerCase(locale()) : name;
}

function settlementsCard(settlements) {
  return h(
    "div",
    { class: "card" },
    h("h2", null, t("supplier.settlements.title")),
    settlements.length
      ? h(
          "div",
          { class: "table-wrap", tabindex: "0" },
          h(
            "table",
            { class: "small", "data-test": "settlements" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                ["order", "kind", "amount", "when", "tx"].map((c) => h("th", null, t(`supplier.settlements.col.${c}`))),
              ),
            ),
            h(
              "tbody",
              null,
              settlements.map((s) =>
                h(
                  "tr",
                  { "data-test": "settlement-row" },
                  h("td", null, orderLabel(s.order_id)),
                  h("td", null, has(`supplier.kind.${s.kind}`) ? t(`supplier.kind.${s.kind}`) : s.kind),
                  h("td", { class: "num" }, fmtAmount(s.amount, s.token)),
                  h("td", null, when(s.timestamp)),
                  h("td", null, txLink(s.tx_hash, s.block_number)),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("supplier.settlements.none")),
  );
}
