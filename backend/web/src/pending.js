// Payments in flight, kept in localStorage so that a reload or a lost connection mid-order
// recovers the order: each entry remembers the buyer, the per-order public key and the block at
// which signing began, so the OrderPaid event can be found even without the transaction hash.
import { toEventSelector, toHex } from "viem";
import { ESCROW_ABI, decodeLogs, net } from "./chain.js";

const KEY = "kameng.pending";
const PAID = toEventSelector(ESCROW_ABI.find((x) => x.type === "event" && x.name === "OrderPaid"));

function load() {
  try {
    return JSON.parse(localStorage.getItem(KEY) || "[]");
  } catch {
    return [];
  }
}

function save(entries) {
  localStorage.setItem(KEY, JSON.stringify(entries));
}

/** Payments in flight, optionally only those of one buyer. */
export function pendingPayments(buyer) {
  return load().filter((e) => e.escrow === net.escrow && (!buyer || e.buyer.toLowerCase() === buyer.toLowerCase()));
}

/** Remember a payment about to be sent; returns its entry. */
export function addPending(entry) {
  const e = {
    id: `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
    escrow: net.escrow,
    createdAt: Date.now(),
    ...entry,
  };
  save([...load(), e]);
  return e;
}

/** Update an entry. */
export function updatePending(id, patch) {
  save(load().map((e) => (e.id === id ? { ...e, ...patch } : e)));
}

/** Forget an entry. */
export function removePending(id) {
  save(load().filter((e) => e.id !== id));
}

/**
 * Find out what became of a payment: `{state: "paid", orderId}`, `{state: "pending"}` (not mined
 * yet), `{state: "failed"}` (reverted) or `{state: "unsent"}` (the wallet never sent it).
 */
export async function resolvePending(entry) {
  if (entry.txHash) {
    const receipt = await net.client.getTransactionReceipt({ hash: entry.txHash }).catch((err) => {
      if (err?.name === "TransactionReceiptNotFoundError") return null;
      throw err;
    });
    if (receipt) {
      if (receipt.status !== "success") return { state: "failed" };
      const paid = decodeLogs(receipt.logs).find((ev) => ev.name === "OrderPaid");
      if (paid) return { state: "paid", orderId: paid.args.orderId.toString(), txHash: entry.txHash };
    }
  }
  // No hash, or no receipt yet: look for the OrderPaid that carries this entry's key.
  const logs = await net.client.request({
    method: "eth_getLogs",
    params: [
      {
        address: net.escrow,
        fromBlock: toHex(BigInt(entry.fromBlock || 0)),
        toBlock: "latest",
        topics: [PAID, null, toHex(BigInt(entry.buyer), { size: 32 })],
      },
    ],
  });
  const mine = decodeLogs(logs).find((ev) => ev.args.buyerPubKey.toLowerCase() === entry.pubkey.toLowerCase());
  if (mine) return { state: "paid", orderId: mine.args.orderId.toString(), txHash: mine.log.transactionHash };
  if (entry.txHash) return { state: "pending" };
  const nonce = await net.client.getTransactionCount({ address: entry.buyer, blockTag: "latest" });
  if (nonce > entry.nonce) return { state: "unsent" }; // that nonce went to another transaction
  return Date.now() - entry.createdAt > 10 * 60_000 ? { state: "unsent" } : { state: "pending" };
}
