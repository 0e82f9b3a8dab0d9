// #/recover: a buyer's codes from the blockchain alone (issue 16, "codes survive the platform").
// This page needs no kameng server: served as plain static files it asks for a node (RPC URL)
// and the escrow, connects the browser wallet, finds the wallet's orders from OrderPaid logs,
// and opens every release a supplier published with deliverOnChain (ReleasePublished), checking
// it exactly as the order page does. Keys are re-derived from the wallet as at purchase; the
// plaintext codes exist only in this tab.
import { decodeAbiParameters, encodeAbiParameters, getAddress, keccak256, toEventSelector, toHex } from "viem";
import { ESCROW_ABI, configure, decodeLogs, explain, net, read, splitOrderId, userError } from "../chain.js";
import { orderRef, short, when } from "../fmt.js";
import { t } from "../i18n.js";
import { openRelease, orderKeyFromSignature, orderKeyMessage } from "../release.js";
import { busy, field, h, message, messageSlot, pill, replace } from "../ui.js";
import { connectInjected, hasInjected, onWalletChange, signText, switchNetwork, wallet } from "../wallet.js";
import { copyButton } from "./orders.js";

const SAVED_KEY = "kameng.recover";
/** The first block range asked for; halved when a node refuses it, doubled while logs are few. */
const FIRST_STEP = 5_000n;
const MAX_STEP = 500_000n;
/** Order ids per eth_getLogs topic list (nodes limit a filter's size). */
const IDS_PER_QUERY = 50;

const topic0 = (name) => toEventSelector(ESCROW_ABI.find((x) => x.type === "event" && x.name === name));
/** The `proofs` field of ReleasePublished (contracts.encoding.encode_release_proofs). */
const PROOFS_TYPES = [
  {
    type: "tuple[]",
    components: [
      { type: "uint256", name: "index" },
      { type: "bytes32", name: "commitment" },
      { type: "uint256", name: "batchIndex" },
      { type: "bytes32[]", name: "proof" },
    ],
  },
];
const ZERO_ROOT = toHex(0n, { size: 32 });

/** The form's starting values: the link's query, else this kameng's server, else the last search. */
function initialValues(query) {
  const params = new URLSearchParams(query || "");
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(SAVED_KEY) || "{}") || {};
  } catch {
    saved = {};
  }
  const server = net.chainId ? { rpc: net.rpcUrl, escrow: net.escrow } : {};
  const pick = (name) => params.get(name) || server[name] || saved[name] || "";
  return { rpc: pick("rpc"), escrow: pick("escrow"), from: params.get("from") || "" };
}

/** Check the form; returns {rpc, escrow, from} or throws a one-line user error. */
function checkForm(rpcText, escrowText, fromText) {
  let rpc;
  try {
    rpc = new URL(rpcText.trim());
  } catch {
    rpc = null;
  }
  if (!rpc || !["http:", "https:"].includes(rpc.protocol)) throw userError(t("recover.error.rpc"));
  const escrowRaw = escrowText.trim();
  if (!/^0x[0-9a-fA-F]{40}$/.test(escrowRaw)) throw userError(t("recover.error.escrow"));
  const fromRaw = fromText.trim();
  if (fromRaw && !/^\d{1,15}$/.test(fromRaw)) throw userError(t("recover.error.from"));
  return { rpc: rpc.href, escrow: getAddress(escrowRaw.toLowerCase()), from: fromRaw ? BigInt(fromRaw) : null };
}

/** Whether an error means the node could not be reached at all (no point in asking less). */
function unreachable(err) {
  return Boolean(
    err?.walk?.((e) => e?.name === "TimeoutError" || (e?.name === "HttpRequestError" && !e.status)) ||
    (err instanceof TypeError && /fetch|network/i.test(err.message)),
  );
}

/**
 * Every escrow log matching `topics` from block `from` to `to`, asked in bounded ranges: a range
 * the node refuses (too many results, too wide a span) is halved and asked again, and while logs
 * are few the range grows again, never past the last size refused. `onProgress(done, total)`
 * counts blocks.
 */
async function scanLogs(topics, from, to, onProgress) {
  const out = [];
  let step = FIRST_STEP;
  let ceiling = MAX_STEP;
  let start = from;
  const total = to - from + 1n;
  onProgress?.(0n, total);
  while (start <= to) {
    const end = start + step - 1n < to ? start + step - 1n : to;
    let logs;
    try {
      logs = await net.client.request({
        method: "eth_getLogs",
        params: [{ address: net.escrow, fromBlock: toHex(start), toBlock: toHex(end), topics }],
      });
    } catch (err) {
      if (unreachable(err) || step === 1n) throw err;
      ceiling = step / 2n;
      step = ceiling > 0n ? ceiling : 1n;
      continue;
    }
    out.push(...logs);
    onProgress?.(end - from + 1n, total);
    start = end + 1n;
    if (logs.length < 500 && step * 2n <= ceiling) step *= 2n;
  }
  return decodeLogs(out);
}

/**
 * The escrow's deployment block (the first with its code), by bisection over eth_getCode; null
 * when the node keeps no old state to ask.
 */
async function deploymentBlock(latest) {
  try {
    const hasCode = async (block) => {
      const code = await net.client.getCode({ address: net.escrow, blockNumber: block });
      return Boolean(code && code !== "0x");
    };
    let lo = 0n;
    let hi = latest;
    while (lo < hi) {
      const mid = (lo + hi) / 2n;
      if (await hasCode(mid)) hi = mid;
      else lo = mid + 1n;
    }
    return lo;
  } catch {
    return null;
  }
}

/** One order's row: its status pill and sentence. */
const STATUS_KIND = { recovered: "ok", pending: "warn", offchain: "", refunded: "", failed: "bad" };

function statusSentence(o) {
  if (o.status === "recovered") return t("recover.status.recovered.text", { count: o.codes.length });
  if (o.status === "pending") return t("recover.status.pending.text", { when: when(Number(o.paid.deadline)) });
  if (o.status === "offchain") return t("recover.status.offchain.text");
  if (o.status === "refunded") return t("recover.status.refunded.text");
  if (o.status === "failed") return t("recover.status.failed.text", { why: o.why });
  return t("recover.status.waiting.text");
}

function orderRow(o) {
  return h(
    "tr",
    { "data-test": "recover-order", "data-order": String(o.orderId), "data-status": o.status },
    h("td", { "data-label": t("recover.col.order") }, h("span", { title: String(o.orderId) }, orderRef(o.orderId))),
    h("td", { "data-label": t("recover.col.codes"), class: "num" }, String(o.paid.quantity)),
    h(
      "td",
      { "data-label": t("recover.col.status") },
      pill(t(`recover.status.${o.status}`), STATUS_KIND[o.status] ?? "", { "data-test": "recover-status" }),
      h("div", { class: "small", "data-test": "recover-status-text" }, statusSentence(o)),
    ),
  );
}

/** Every code recovered so far, by order: each with a Copy button. */
function codesCard(orders) {
  const opened = orders.filter((o) => o.codes.length);
  if (!opened.length) return null;
  return h(
    "div",
    { class: "card codes-card", "data-test": "recover-codes" },
    h("h2", null, t("recover.codes.title")),
    opened.map((o) =>
      h(
        "div",
        { "data-test": "recover-order-codes", "data-order": String(o.orderId) },
        h(
          "h3",
          { class: "small" },
          t("recover.codes.order", { order: orderRef(o.orderId) }),
          " ",
          o.status === "recovered"
            ? pill(t("order.codes.pass"), "ok")
            : pill(t("recover.codes.unchecked"), "bad", { "data-test": "recover-unchecked" }),
        ),
        h(
          "ul",
          { class: "codes" },
          o.codes.map((c) =>
            h(
              "li",
              { "data-test": "recover-code", "data-ok": String(c.ok) },
              h(
                "div",
                { class: "code-main" },
                h("div", { class: "code-text", "data-test": "code-text" }, c.text),
                c.expiresAt
                  ? h("div", { class: "checks" }, t("order.code.expires", { when: when(c.expiresAt) }))
                  : null,
              ),
              h("div", { class: "row" }, copyButton(c.text)),
            ),
          ),
        ),
      ),
    ),
    h("p", { class: "small" }, t("order.code.redeem")),
  );
}

/** Why a release failed its checks, in one line. */
function failureReason(report) {
  const failed = report.checks.find((c) => !c.ok);
  if (failed) return failed.detail ? `${failed.label}: ${failed.detail}` : failed.label;
  const bad = report.codes.filter((c) => !c.ok).map((c) => String(c.index));
  if (bad.length) return t("recover.fail.codes", { count: bad.length, indexes: bad.slice(0, 8).join(", ") });
  return t("recover.fail.count");
}

/**
 * Re-derive an order's key (one wallet signature, the buy transaction's nonce, as at purchase)
 * and open its published release, checked against the chain. Sets `o.status`, `o.why`, `o.codes`.
 */
async function openOrder(o) {
  const { listingId } = splitOrderId(o.orderId);
  const tx = await net.client.getTransaction({ hash: o.paidLog.transactionHash });
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(`kameng.orderkey.${o.orderId}`) || "null");
  } catch {
    saved = null;
  }
  const nonce = saved?.nonce ?? tx.nonce;
  const signature = await signText(
    orderKeyMessage({ chainId: net.chainId, escrow: net.escrow, buyer: wallet.address, nonce }),
  );
  const key = await orderKeyFromSignature(signature);
  if (key.publicKeyHex.toLowerCase() !== o.paid.buyerPubKey.toLowerCase()) {
    o.status = "failed";
    o.why = t("order.key.wrong", { nonce: String(nonce), order: orderRef(o.orderId) });
    return;
  }
  const published = o.published;
  let items;
  try {
    [items] = decodeAbiParameters(PROOFS_TYPES, published.proofs);
  } catch {
    o.status = "failed";
    o.why = t("recover.fail.proofs");
    return;
  }
  const batches = new Map();
  for (const index of new Set(items.map((it) => Number(it.batchIndex)))) {
    try {
      const b = await read("getBatch", [listingId, BigInt(index)]);
      batches.set(index, { root: b.root, firstIndex: Number(b.firstIndex), count: Number(b.count) });
    } catch (err) {
      if (unreachable(err)) throw err;
      // A batch the chain does not hold: its codes fail their checks below.
    }
  }
  const release = {
    sealed: published.sealedRelease,
    codes: items.map((it) => ({
      index: Number(it.index),
      commitment: it.commitment,
      batch_index: Number(it.batchIndex),
      batch_root: batches.get(Number(it.batchIndex))?.root ?? ZERO_ROOT,
      proof: it.proof,
    })),
  };
  const report = await openRelease(release, {
    secretKey: key.secretKey,
    publicKey: key.publicKey,
    chainId: net.chainId,
    escrow: net.escrow,
    orderId: o.orderId,
    quantity: Number(o.paid.quantity),
    onchainDigest: o.digest,
    batches,
  });
  // The published parts must be the ones the release opens to (the digest binds them too).
  if (report.elementTree) {
    const rootOk = report.elementTree.root.toLowerCase() === published.elementRoot.toLowerCase();
    const keyHash = keccak256(encodeAbiParameters([{ type: "bytes32" }], [report.key]));
    const keyOk = keyHash.toLowerCase() === published.keyHash.toLowerCase();
    report.checks.push({ id: "elementRoot", label: t("recover.check.elementRoot"), ok: rootOk && keyOk });
    report.ok = report.ok && rootOk && keyOk;
  }
  o.codes = report.codes.map((c) => ({ text: c.text, expiresAt: c.expiresAt, ok: c.ok }));
  if (report.ok) o.status = "recovered";
  else {
    o.status = "failed";
    o.why = failureReason(report);
  }
}

/** #/recover?rpc=<node>&escrow=<address>[&from=<block>] */
export async function recoverPage(ctx, query) {
  // This page points the chain module at the node asked for; the rest of the app goes back to
  // its server's chain on leaving.
  const before = { ...net };
  ctx.onLeave(() => {
    if (before.chainId) Object.assign(net, before);
  });
  const start = initialValues(query);
  const rpcInput = h("input", {
    type: "text",
    value: start.rpc,
    placeholder: "https://…",
    autocomplete: "off",
    spellcheck: "false",
    "data-test": "recover-rpc",
  });
  const escrowInput = h("input", {
    type: "text",
    value: start.escrow,
    placeholder: "0x…",
    autocomplete: "off",
    spellcheck: "false",
    "data-test": "recover-escrow",
  });
  const fromInput = h("input", {
    type: "text",
    value: start.from,
    inputmode: "numeric",
    placeholder: "0",
    "data-test": "recover-from",
  });
  const slot = messageSlot({ "data-test": "recover-message" });
  const go = h("button", { class: "btn", "data-test": "recover-start" }, t("recover.start"));
  const walletLine = h("p", { class: "small muted wrap", "data-test": "recover-wallet" });
  const progressText = h("div", { class: "small", "data-test": "recover-progress" });
  const bar = h("div");
  const progress = h("div", { hidden: true }, progressText, h("div", { class: "progress" }, bar));
  const codesBox = h("div");
  const ordersBox = h("div");

  const showWallet = () =>
    replace(walletLine, wallet.address ? t("recover.wallet", { address: wallet.address }) : t("recover.wallet.none"));
  showWallet();
  ctx.onLeave(onWalletChange(showWallet));

  const say = (text, done, total) => {
    progress.hidden = false;
    progressText.textContent = text;
    bar.style.width = total ? `${Math.min(100, Number((done * 100n) / (total || 1n)))}%` : "0%";
  };

  const draw = (orders) => {
    replace(codesBox, codesCard(orders));
    replace(
      ordersBox,
      h(
        "div",
        { class: "card table-wrap", tabindex: "0" },
        h("h2", null, t("recover.orders.title", { count: orders.length })),
        h(
          "table",
          { class: "stack-sm", "data-test": "recover-orders" },
          h(
            "thead",
            null,
            h(
              "tr",
              null,
              [t("recover.col.order"), t("recover.col.codes"), t("recover.col.status")].map((label) =>
                h("th", null, label),
              ),
            ),
          ),
          h("tbody", null, orders.map(orderRow)),
        ),
      ),
    );
  };

  const run = async () => {
    if (!ctx.alive()) return;
    replace(codesBox);
    replace(ordersBox);
    progress.hidden = true;
    const form = checkForm(rpcInput.value, escrowInput.value, fromInput.value);
    try {
      localStorage.setItem(SAVED_KEY, JSON.stringify({ rpc: form.rpc, escrow: form.escrow }));
    } catch {
      // private mode: nothing remembered
    }
    // The node: which chain it serves, and whether a kameng escrow lives at the address.
    say(t("recover.progress.node"), 0n, 0n);
    configure({ chain_id: 1, escrow: form.escrow, rpc_url: form.rpc });
    let chainId;
    try {
      chainId = Number(await net.client.request({ method: "eth_chainId" }));
    } catch {
      throw userError(t("recover.error.node", { url: form.rpc }));
    }
    configure({ chain_id: chainId, escrow: form.escrow, rpc_url: form.rpc });
    try {
      await read("orderHash", [0n]);
    } catch (err) {
      if (unreachable(err)) throw userError(t("recover.error.node", { url: form.rpc }));
      throw userError(t("recover.error.notEscrow", { escrow: form.escrow, chainId: String(chainId) }));
    }
    // The wallet, on the escrow's chain: the browser's, or (on kameng's embedded development
    // chain) the development wallet already connected to it.
    const devWallet = wallet.kind === "dev" && wallet.chainId === chainId;
    if (!devWallet) {
      if (!hasInjected()) throw userError(t("recover.error.noWallet"));
      if (wallet.kind !== "injected") await connectInjected();
      wallet.chainId = Number(await window.ethereum.request({ method: "eth_chainId" }));
    }
    if (wallet.chainId !== chainId) {
      const sw = h("button", { class: "btn small", "data-test": "recover-switch" }, t("wallet.switchNetwork"));
      sw.addEventListener("click", () =>
        busy(sw, slot, async () => {
          await switchNetwork();
          await busy(go, slot, run);
        }),
      );
      slot.show("error", t("recover.error.wrongChain", { have: String(wallet.chainId), want: String(chainId) }), sw);
      progress.hidden = true;
      return;
    }
    const buyer = wallet.address;
    // The buyer's orders: OrderPaid with the buyer indexed.
    const latest = await net.client.getBlockNumber();
    let from = form.from;
    if (from === null) {
      say(t("recover.progress.deployment"), 0n, 0n);
      from = (await deploymentBlock(latest)) ?? 0n;
    }
    if (from > latest) from = latest;
    const blocks = (done, total) => t("recover.progress.orders", { from, to: latest, done, total });
    const paidEvents = await scanLogs(
      [topic0("OrderPaid"), null, toHex(BigInt(buyer), { size: 32 })],
      from,
      latest,
      (d, n) => say(blocks(d, n), d, n),
    );
    const orders = paidEvents
      .filter((e) => e.name === "OrderPaid" && getAddress(e.args.buyer) === buyer)
      .map((e) => ({
        orderId: BigInt(e.args.orderId),
        paid: e.args,
        paidLog: e.log,
        status: "pending",
        why: "",
        codes: [],
        digest: null,
        published: null,
      }))
      .reverse();
    if (!orders.length) {
      progress.hidden = true;
      slot.show("info", t("recover.none", { address: buyer }));
      return;
    }
    // What became of them: delivered (with or without a published release), or refunded.
    const byId = new Map(orders.map((o) => [o.orderId, o]));
    const firstPaid = orders.reduce(
      (m, o) => (BigInt(o.paidLog.blockNumber) < m ? BigInt(o.paidLog.blockNumber) : m),
      latest,
    );
    const ids = orders.map((o) => toHex(o.orderId, { size: 32 }));
    const kinds = [topic0("OrderDelivered"), topic0("ReleasePublished"), topic0("OrderRefunded")];
    for (let i = 0; i < ids.length; i += IDS_PER_QUERY) {
      const events = await scanLogs([kinds, ids.slice(i, i + IDS_PER_QUERY)], firstPaid, latest, (d, n) =>
        say(t("recover.progress.deliveries", { count: orders.length }), d, n),
      );
      for (const e of events) {
        const o = byId.get(BigInt(e.args.orderId));
        if (!o) continue;
        if (e.name === "OrderDelivered") o.digest = e.args.releaseDigest;
        else if (e.name === "ReleasePublished") o.published = e.args;
        else if (e.name === "OrderRefunded") o.refunded = true;
      }
    }
    for (const o of orders) {
      if (o.published && o.digest) o.status = "waiting";
      else if (o.digest) o.status = "offchain";
      else if (o.refunded) o.status = "refunded";
      else o.status = "pending";
    }
    draw(orders);
    // Open each published release: one wallet signature per order.
    const toOpen = orders.filter((o) => o.status === "waiting");
    let declined = false;
    for (const [n, o] of toOpen.entries()) {
      if (!ctx.alive()) return;
      if (declined) {
        o.status = "failed";
        o.why = t("recover.fail.declined");
        continue;
      }
      say(
        t("recover.progress.sign", { order: orderRef(o.orderId), n: String(n + 1), total: String(toOpen.length) }),
        BigInt(n),
        BigInt(toOpen.length),
      );
      try {
        await openOrder(o);
      } catch (raw) {
        const err = explain(raw);
        if (err.wrongNetwork || unreachable(raw)) throw err;
        o.status = "failed";
        o.why = err.rejected ? t("recover.fail.declined") : err.userMessage || String(err.message);
        declined = Boolean(err.rejected);
      }
      draw(orders);
    }
    draw(orders);
    progress.hidden = true;
    const recovered = orders.filter((o) => o.status === "recovered").length;
    slot.show(
      recovered ? "ok" : "info",
      t("recover.summary", { count: orders.length, recovered: String(recovered), address: short(buyer) }),
    );
  };
  go.addEventListener("click", () =>
    busy(go, slot, async () => {
      try {
        await run();
      } finally {
        progress.hidden = true;
      }
    }),
  );

  return h(
    "section",
    null,
    h("h1", null, t("recover.title")),
    h("p", { class: "muted" }, t("recover.intro")),
    h(
      "div",
      { class: "card" },
      field(t("recover.rpc.label"), rpcInput, t("recover.rpc.hint")),
      field(t("recover.escrow.label"), escrowInput, t("recover.escrow.hint")),
      h(
        "details",
        null,
        h("summary", { class: "small" }, t("recover.advanced")),
        field(t("recover.from.label"), fromInput, t("recover.from.hint")),
      ),
      walletLine,
      slot,
      go,
      progress,
    ),
    codesBox,
    ordersBox,
    h("p", { class: "small muted" }, t("recover.privacy")),
  );
}
