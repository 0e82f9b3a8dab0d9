// Chain access from the browser: the escrow's ABI, reads over the server's JSON-RPC (the views
// the escrow replaced by `extsload` decoded from its storage by storage.js), the Order struct and
// its hash, order rebuilding from events, and turning reverts into sentences.
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  decodeEventLog,
  defineChain,
  encodeAbiParameters,
  formatUnits,
  getAddress,
  http,
  keccak256,
  parseAbi,
  toEventSelector,
  toHex,
  zeroAddress,
} from "viem";
import { abi as ESCROW_ABI } from "../../../contracts/artifacts/CodeEscrow.json";
// The artifact's storage layout, cut down at build time (backend/web/build.mjs).
import ESCROW_STORAGE_LAYOUT from "virtual:escrow-storage-layout";
import { has, locale, t } from "./i18n.js";
import { decodeCouponUses, escrowStorage, escrowViews, extsloadReader, isStorageView } from "./storage.js";
import { explainErrorsWith } from "./ui.js";

export { ESCROW_ABI };
export const ZERO_ADDRESS = zeroAddress;
/** The escrow's MAX_ON_CHAIN_QUANTITY: most codes in one order of a listing delivered on-chain. */
export const MAX_ON_CHAIN_QUANTITY = 32;
export const STATES = ["None", "Paid", "Delivered", "Disputed", "Completed", "Refunded", "Resolved"];
export const STATE = Object.fromEntries(STATES.map((name, i) => [name.toUpperCase(), i]));

/** An order state's name (a number or "Paid") in the reader's language. */
export function stateText(state) {
  const name = typeof state === "number" || /^\d+$/.test(String(state)) ? STATES[Number(state)] : String(state);
  return name && has(`order.state.${name}`) ? t(`order.state.${name}`) : String(state);
}

/** The Order tuple as the ABI declares it (the `Order` parameter of `confirm`, `refund`, ...). */
const ORDER_PARAM = ESCROW_ABI.filter((x) => x.type === "function")
  .flatMap((x) => x.inputs)
  .find((p) => /^struct \w+\.Order$/.test(p.internalType));
const ERC20_ABI = parseAbi([
  "function symbol() view returns (string)",
  "function decimals() view returns (uint8)",
  "function balanceOf(address) view returns (uint256)",
  "function allowance(address, address) view returns (uint256)",
  "function approve(address, uint256) returns (bool)",
]);
export { ERC20_ABI };

/** What the server says about its chain (GET /chain), plus the clients made from it. */
export const net = {
  chainId: 0,
  escrow: ZERO_ADDRESS,
  rpcUrl: "",
  embedded: false,
  settleBatch: 50,
  chain: null,
  client: null,
};

/** Configure the module from GET /chain. */
export function configure(info) {
  net.chainId = Number(info.chain_id);
  net.escrow = getAddress(info.escrow);
  net.embedded = Boolean(info.embedded);
  net.settleBatch = Number(info.settle_batch) || 50;
  net.rpcUrl = info.rpc_url
    ? new URL(info.rpc_url, window.location.href).href
    : new URL("rpc", window.location.href).href;
  net.chain = defineChain({
    id: net.chainId,
    name: net.embedded ? t("chain.name.embedded") : t("chain.name.other", { id: String(net.chainId) }),
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [net.rpcUrl] } },
  });
  net.client = createPublicClient({
    chain: net.chain,
    transport: http(net.rpcUrl, { retryCount: 1, timeout: 15_000 }),
    pollingInterval: 300,
    batch: false,
  });
}

/**
 * Call a view function of the escrow. The views it replaced by `extsload` (getListing, getBatch,
 * orderHash, bondOf, balanceOf, authorization, isDeliveryKey, isProposedDeliveryKey, config,
 * listingCount, feesOf) are answered from its storage, with one `extsload` call each and in the
 * shapes viem gave the views' results.
 */
export function read(functionName, args = []) {
  if (isStorageView(functionName)) {
    const readWords = extsloadReader(net.client, net.escrow, ESCROW_ABI);
    return escrowViews(ESCROW_STORAGE_LAYOUT, readWords)(functionName, args);
  }
  return net.client.readContract({ address: net.escrow, abi: ESCROW_ABI, functionName, args });
}

/**
 * The use counts of a supplier's coupon numbers, read from the escrow's storage in one call
 * (`_couponUses`: `REVOKED` of coupons.js once revoked; a coupon without a use limit is never
 * counted).
 * @param {string} supplier
 * @param {(bigint | number)[]} ids Coupon numbers.
 * @returns {Promise<number[]>} One count per id, in order.
 */
export async function couponUses(supplier, ids) {
  const words = [...new Set(ids.map((id) => BigInt(id) >> 3n))];
  const storage = escrowStorage(ESCROW_STORAGE_LAYOUT, extsloadReader(net.client, net.escrow, ESCROW_ABI));
  const packed = words.length ? await storage.couponWords(supplier, words) : [];
  return ids.map((id) => decodeCouponUses(packed[words.indexOf(BigInt(id) >> 3n)], id));
}

/**
 * The packed use-counter words of a supplier's coupon numbers `8 * from` up to `8 * (from +
 * count)`, in one call (for finding the numbers already in use).
 * @param {string} supplier
 * @param {number} from The first word.
 * @param {number} count How many words.
 * @returns {Promise<bigint[]>}
 */
export function couponWords(supplier, from, count) {
  const storage = escrowStorage(ESCROW_STORAGE_LAYOUT, extsloadReader(net.client, net.escrow, ESCROW_ABI));
  return storage.couponWords(
    supplier,
    Array.from({ length: count }, (_, i) => BigInt(from + i)),
  );
}

/** The time of the chain's latest block (unix seconds): what the escrow compares expiries with. */
export async function chainNow() {
  return Number((await net.client.getBlock({ blockTag: "latest" })).timestamp);
}

// ------------------------------------------------------------------ tokens and amounts

const tokenCache = new Map([[ZERO_ADDRESS, { symbol: "ETH", decimals: 18 }]]);

/** Symbol and decimals of a payment token (the zero address is the native coin). */
export async function tokenInfo(token) {
  const key = (token || ZERO_ADDRESS).toLowerCase();
  if (tokenCache.has(key)) return tokenCache.get(key);
  try {
    const [symbol, decimals] = await Promise.all([
      net.client.readContract({ address: token, abi: ERC20_ABI, functionName: "symbol" }),
      net.client.readContract({ address: token, abi: ERC20_ABI, functionName: "decimals" }),
    ]);
    const info = { symbol, decimals: Number(decimals) };
    tokenCache.set(key, info);
    return info;
  } catch {
    return { symbol: "TOKEN", decimals: 18 };
  }
}

/** Format an amount with the token's symbol, from the cache (call `tokenInfo` first for ERC-20s). */
export function fmtAmount(amount, token = ZERO_ADDRESS, { symbol = true, digits = 6 } = {}) {
  const info = tokenCache.get((token || ZERO_ADDRESS).toLowerCase()) || { symbol: "TOKEN", decimals: 18 };
  const text = formatUnits(BigInt(amount ?? 0), info.decimals);
  const [whole, frac = ""] = text.split(".");
  const trimmed = frac.slice(0, digits).replace(/0+$/, "");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const value = trimmed ? `${grouped}.${trimmed}` : grouped;
  return symbol ? `${value} ${info.symbol}` : value;
}

/**
 * Symbol and decimals of a token, its decimals read from the token itself (an amount typed in
 * its units is only read with decimals the token gave). Throws a user error when it does not
 * answer.
 */
export async function tokenUnits(token) {
  const { symbol } = await tokenInfo(token);
  if ((token || ZERO_ADDRESS) === ZERO_ADDRESS) return { symbol, decimals: 18 };
  try {
    return {
      symbol,
      decimals: Number(await net.client.readContract({ address: token, abi: ERC20_ABI, functionName: "decimals" })),
    };
  } catch {
    throw userError(t("supplier.token.unreadable", { token }));
  }
}

/**
 * An amount as a person types it ("1.99") in a token's smallest units (1990000 with 6 decimals).
 * Returns `{ value }`, or `{ error }`: "format" (not a plain decimal number) or "precision" (more
 * decimal places than the token has). Nothing is rounded.
 */
export function parseAmount(text, decimals) {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(String(text).trim());
  if (!m || !`${m[1]}${m[2] ?? ""}`.length) return { error: "format" };
  const frac = m[2] ?? "";
  if (frac.replace(/0+$/, "").length > decimals) return { error: "precision" };
  const scale = 10n ** BigInt(decimals);
  const part = frac.slice(0, decimals).padEnd(decimals, "0");
  return { value: BigInt(m[1] || "0") * scale + BigInt(part || "0") };
}

/** The most a unit price may be: the escrow keeps prices in 96 bits. */
export const MAX_UNIT_PRICE = 2n ** 96n;

/**
 * A unit price as a person typed it, in `token`'s smallest units. Throws a user error saying what
 * to fix: not a number, more decimal places than the token has, zero, or too large.
 */
export async function unitPriceOf(text, token) {
  const { symbol, decimals } = await tokenUnits(token);
  const parsed = parseAmount(text, decimals);
  if (parsed.error === "precision")
    throw userError(t("supplier.open.tooPrecise", { symbol, count: decimals, price: String(text).trim() }));
  if (parsed.error) throw userError(t("supplier.open.badPrice", { symbol }));
  if (parsed.value <= 0n) throw userError(t("supplier.open.zeroPrice"));
  if (parsed.value >= MAX_UNIT_PRICE) throw userError(t("supplier.open.tooLarge", { symbol }));
  return parsed.value;
}

/** An amount as a person types it back into a field: every decimal, no symbol, no grouping. */
export function amountText(amount, token) {
  return fmtAmount(amount, token, { symbol: false, digits: 18 }).replaceAll(",", "");
}

/** Fetch the symbol and decimals of every token the listings are priced in (for fmtAmount). */
export async function loadTokens(listings) {
  await Promise.all([...new Set(listings.map((l) => l.token.toLowerCase()))].map((tok) => tokenInfo(tok)));
}

// ------------------------------------------------------------------ orders

/** `releaseDigest` -> `release_digest`: the API's name for an ABI field. */
const snakeCase = (name) =>
  name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z])([A-Z][a-z])/g, "$1_$2")
    .toLowerCase();

/** A field's value as the encoder takes it: checksummed addresses, bigints above 48 bits. */
function orderValue(component, value) {
  if (value === undefined) throw new Error(`Order field ${component.name} is missing`);
  if (component.type === "address") return getAddress(value);
  const int = /^u?int(\d+)$/.exec(component.type);
  if (int) return Number(int[1]) > 48 ? BigInt(value) : Number(value);
  return value;
}

/**
 * An Order struct built field by field from the ABI's components, in their order; `key` names
 * the record's key for each component's name.
 */
function orderFrom(record, key) {
  return Object.fromEntries(ORDER_PARAM.components.map((c) => [c.name, orderValue(c, record[key(c.name)])]));
}

/** An Order struct (bigints where the ABI has uint128) from the API's OrderPublic. */
export function orderFromApi(o) {
  return orderFrom(o, snakeCase);
}

/** keccak256(abi.encode(order)), as the contract stores it. */
export function hashOrder(order) {
  return keccak256(encodeAbiParameters([ORDER_PARAM], [order]));
}

/** The listing id and first code index packed into an order id. */
export function splitOrderId(orderId) {
  const id = BigInt(orderId);
  return { listingId: id >> 32n, firstIndex: Number(id & 0xffffffffn) };
}

/** Decode the escrow's logs of a receipt (unknown logs are skipped). */
export function decodeLogs(logs) {
  const out = [];
  for (const log of logs || []) {
    if (log.address?.toLowerCase() !== net.escrow.toLowerCase()) continue;
    try {
      const ev = decodeEventLog({ abi: ESCROW_ABI, data: log.data, topics: log.topics });
      out.push({ name: ev.eventName, args: ev.args, log });
    } catch {
      // not one of ours
    }
  }
  return out;
}

const LISTING_EVENTS = ["ListingCreated", "ListingUpdated", "BatchCommitted"].map((name) =>
  toEventSelector(ESCROW_ABI.find((x) => x.type === "event" && x.name === name)),
);

/**
 * A listing's on-chain history, oldest first: its creation, price and status changes, and every
 * committed batch, each with its log (transaction hash and block).
 */
export async function listingHistory(listingId) {
  const logs = await net.client.request({
    method: "eth_getLogs",
    params: [
      {
        address: net.escrow,
        fromBlock: "0x0",
        toBlock: "latest",
        topics: [LISTING_EVENTS, toHex(BigInt(listingId), { size: 32 })],
      },
    ],
  });
  return decodeLogs(logs);
}

/** The order as built from an OrderPaid event's arguments (same names; state Paid, digest 0). */
export function orderFromPaid(args) {
  return orderFrom({ ...args, state: STATE.PAID, releaseDigest: toHex(0n, { size: 32 }) }, (name) => name);
}

const STATE_AFTER = { OrderConfirmed: 4, OrderSettled: 4, OrderRefunded: 5, DisputeRuled: 6 };
/** Block timestamps by block hash (a block's never changes). */
const blockTimes = new Map();
async function blockTime(blockHash) {
  if (!blockTimes.has(blockHash)) {
    const block = await net.client.getBlock({ blockHash });
    blockTimes.set(blockHash, Number(block.timestamp));
  }
  return blockTimes.get(blockHash);
}

/**
 * An order's history from its events alone (docs/PROTOCOL.md, "Rebuilding an order"): the Order
 * struct after each event, and the events themselves with their logs and block times.
 * `fromBlock` should be the paid block. `order` is null when no OrderPaid is found.
 */
export async function orderHistory(orderId, fromBlock = 0n) {
  const topic = toHex(BigInt(orderId), { size: 32 });
  const logs = await net.client.request({
    method: "eth_getLogs",
    params: [{ address: net.escrow, fromBlock: toHex(BigInt(fromBlock)), toBlock: "latest", topics: [null, topic] }],
  });
  let order = null;
  const events = [];
  for (const ev of decodeLogs(logs)) {
    if (ev.name === "OrderPaid") order = orderFromPaid(ev.args);
    else if (!order) continue;
    else if (ev.name === "OrderDelivered") {
      order = {
        ...order,
        state: STATE.DELIVERED,
        releaseDigest: ev.args.releaseDigest,
        deadline: (await blockTime(ev.log.blockHash)) + order.disputeWindow,
      };
    } else if (ev.name === "DisputeOpened") {
      order = { ...order, state: STATE.DISPUTED, deadline: Number(ev.args.arbitrationDeadline) };
    } else if (STATE_AFTER[ev.name] !== undefined) {
      order = { ...order, state: STATE_AFTER[ev.name] };
    }
    events.push({ ...ev, stateAfter: order.state, timestamp: await blockTime(ev.log.blockHash) });
  }
  return { order, events };
}

/**
 * Rebuild an order from its events alone. Used when the API's copy does not hash to the stored
 * value. `fromBlock` should be the paid block.
 */
export async function rebuildOrder(orderId, fromBlock = 0n) {
  return (await orderHistory(orderId, fromBlock)).order;
}

/**
 * The Order struct to pass back to the contract: the API's copy when it hashes to the stored
 * value, otherwise one rebuilt from events.
 *
 * Throws a user error when neither matches (the order finished, or the mirror is behind).
 */
export async function liveOrder(apiOrder) {
  const stored = await read("orderHash", [BigInt(apiOrder.order_id)]);
  const fromApi = orderFromApi(apiOrder);
  if (hashOrder(fromApi) === stored) return fromApi;
  if (BigInt(stored) === 0n) {
    throw userError(t("chain.order.finished"));
  }
  const rebuilt = await rebuildOrder(apiOrder.order_id, BigInt(apiOrder.paid_block || 0));
  if (rebuilt && hashOrder(rebuilt) === stored) return rebuilt;
  throw userError(t("chain.order.changed"));
}

// ------------------------------------------------------------------ errors

/** An error whose message is meant for the person at the screen. */
export function userError(text, detail, extra) {
  const err = new Error(text);
  err.userMessage = text;
  err.detail = detail;
  Object.assign(err, extra);
  return err;
}

const time = (ts) =>
  new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "medium" }).format(new Date(Number(ts) * 1000));
const id = (v) => String(v);

/**
 * Parameters of the sentences for the escrow's custom errors (chain.revert.<error name>), from the
 * error's arguments.
 */
const REVERTS = {
  EscrowStockShort: (a) => ({ count: Number(a[2]), asked: id(a[1]) }),
  EscrowWrongState: (a) => ({ state: stateText(Number(a[1])) }),
  EscrowUnknownOrder: () => ({}),
  EscrowUnknownListing: (a) => ({ listing: id(a[0]) }),
  EscrowListingInactive: (a) => ({ listing: id(a[0]) }),
  EscrowWrongCaller: (a) => ({ address: id(a[0]) }),
  EscrowZeroQuantity: () => ({}),
  EscrowQuantityTooLarge: (a) => ({ asked: id(a[0]), count: Number(a[1]) }),
  EscrowPriceAboveMax: (a) => ({ price: id(a[0]), max: id(a[1]) }),
  EscrowWrongValue: () => ({}),
  EscrowBondShort: () => ({}),
  EscrowNotAuthorized: () => ({}),
  EscrowDeadlinePassed: (a) => ({ time: time(a[1]) }),
  EscrowDeadlineNotReached: (a) => ({ time: time(a[1]) }),
  EscrowBadBps: (a) => ({ bps: id(a[0]) }),
  EscrowBadArgument: (a) => ({ name: id(a[0]) }),
  EscrowBadWindow: (a) => ({ name: id(a[0]), value: id(a[1]), min: id(a[2]), max: id(a[3]) }),
  EscrowBatchOutOfOrder: (a) => ({ listing: id(a[0]), first: id(a[1]), committed: id(a[2]) }),
  EscrowNothingToWithdraw: () => ({}),
  EscrowTokenNotAllowed: () => ({}),
  EscrowArbiterIsParty: () => ({}),
  EscrowNotDistributable: (a) => ({ listing: id(a[0]) }),
  EscrowBelowResellerPrice: (a) => ({ listing: id(a[0]) }),
  // The index of the first tier at fault, counted from 1 as the supplier's form counts them.
  EscrowBadTiers: (a) => ({ row: Number(a[0]) + 1 }),
  EscrowNotInShop: (a) => ({ listing: id(a[1]) }),
  EscrowBadProof: (a) => ({ step: id(a[1]) }),
  EscrowCodeMatches: () => ({}),
  EscrowCouponExpired: (a) => ({ time: time(a[0]) }),
  EscrowCouponUsedUp: (a) => ({ id: id(a[0]) }),
  EscrowCouponForeign: (a) => ({ listing: id(a[0]) }),
  EscrowCouponNotYours: (a) => ({ address: id(a[0]) }),
  EscrowBadSignature: () => ({}),
  EscrowCouponTooLarge: () => ({}),
  AccessControlUnauthorizedAccount: (a) => ({ address: id(a[0]), role: id(a[1]) }),
  EnforcedPause: () => ({}),
  ExpectedPause: () => ({}),
};

/** Turn anything thrown by viem, a wallet or fetch into an error with a `userMessage`. */
export function explain(err) {
  if (err?.userMessage) return err;
  const code = err?.code ?? err?.cause?.code;
  if (code === 4001 || err?.name === "UserRejectedRequestError" || /user (rejected|denied)/i.test(err?.message || "")) {
    return userError(t("chain.error.rejected"), null, {
      rejected: true,
      cause: err,
    });
  }
  if (err instanceof BaseError) {
    const revert = err.walk((e) => e instanceof ContractFunctionRevertedError);
    if (revert?.data?.errorName) {
      const name = revert.data.errorName;
      const args = revert.data.args || [];
      const params = REVERTS[name];
      const text = params ? t(`chain.revert.${name}`, params(args)) : t("chain.revert.other", { name });
      return userError(text, null, { revert: name, cause: err });
    }
    const insufficient = err.walk((e) => e?.name === "InsufficientFundsError");
    if (insufficient || /insufficient funds|sender doesn't have enough funds/i.test(err.details || err.message)) {
      return userError(t("chain.error.insufficient"), null, {
        insufficient: true,
        cause: err,
      });
    }
    const http = err.walk((e) => e?.name === "HttpRequestError" || e?.name === "TimeoutError");
    if (http) {
      return userError(t("chain.error.chainOffline"), null, { offline: true, cause: err });
    }
    return userError(err.shortMessage || err.message, null, { cause: err });
  }
  if (err instanceof TypeError && /fetch|network/i.test(err.message)) {
    return userError(t("chain.error.serverOffline"), null, {
      offline: true,
      cause: err,
    });
  }
  return userError(err?.message || String(err), null, { cause: err });
}

explainErrorsWith(explain);
