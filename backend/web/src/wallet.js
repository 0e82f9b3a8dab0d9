// The connected wallet: an injected EIP-1193 wallet (MetaMask and the like), or, on the embedded
// development chain only, a local development wallet whose key lives in this browser.
import { createWalletClient, custom, decodeFunctionData, getAddress, http, parseEther, toHex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { ESCROW_ABI, decodeLogs, explain, net, userError } from "./chain.js";
import { has, t } from "./i18n.js";

const KIND_KEY = "kameng.wallet.kind";
const DEV_KEY = "kameng.wallet.devKey";

/** The wallet's state; `kind` is null until connected. */
export const wallet = {
  kind: null,
  address: null,
  chainId: null,
  client: null,
  account: null,
};

const listeners = new Set();

/** Call `fn` whenever the wallet connects, disconnects, or changes account or network. */
export function onWalletChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function changed() {
  for (const fn of listeners) fn(wallet);
}

/** Whether the browser has an injected wallet. */
export function hasInjected() {
  return typeof window.ethereum?.request === "function";
}

/** A network's name by chain id (wallet.network.<id>), else "chain <id>". */
const chainName = (id) =>
  has(`wallet.network.${id}`) ? t(`wallet.network.${id}`) : t("wallet.network.other", { id: String(id) });

/** The error shown when the wallet is on another network than kameng. */
export function wrongNetworkError(have) {
  return userError(
    t("wallet.error.wrongNetwork", { network: chainName(have), id: String(have), chain: String(net.chainId) }),
    null,
    { wrongNetwork: true },
  );
}

async function injectedChainId() {
  return Number(await window.ethereum.request({ method: "eth_chainId" }));
}

function bindInjected(address, chainId) {
  wallet.kind = "injected";
  wallet.address = getAddress(address);
  wallet.account = wallet.address;
  wallet.chainId = chainId;
  wallet.client = createWalletClient({ account: wallet.address, chain: net.chain, transport: custom(window.ethereum) });
  localStorage.setItem(KIND_KEY, "injected");
}

let injectedHooked = false;
function hookInjected() {
  if (injectedHooked || typeof window.ethereum?.on !== "function") return;
  injectedHooked = true;
  window.ethereum.on("accountsChanged", (accounts) => {
    if (wallet.kind !== "injected") return;
    if (!accounts?.length) disconnect();
    else {
      bindInjected(accounts[0], wallet.chainId);
      changed();
    }
  });
  window.ethereum.on("chainChanged", (id) => {
    if (wallet.kind !== "injected") return;
    wallet.chainId = Number(id);
    changed();
  });
}

/** Connect the injected wallet (asks the person to approve). */
export async function connectInjected() {
  if (!hasInjected()) throw userError(t("wallet.error.noInjected"));
  try {
    const accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
    if (!accounts?.length) throw userError(t("wallet.error.noAccount"));
    bindInjected(accounts[0], await injectedChainId());
  } catch (err) {
    throw explain(err);
  }
  hookInjected();
  changed();
  return wallet;
}

/** Ask the injected wallet to switch to kameng's chain, adding it when the wallet lacks it. */
export async function switchNetwork() {
  const chainId = toHex(net.chainId);
  try {
    await window.ethereum.request({ method: "wallet_switchEthereumChain", params: [{ chainId }] });
  } catch (err) {
    if (err?.code === 4902 || err?.data?.originalError?.code === 4902) {
      await window.ethereum
        .request({
          method: "wallet_addEthereumChain",
          params: [
            {
              chainId,
              chainName: net.chain.name,
              rpcUrls: [net.rpcUrl],
              nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
            },
          ],
        })
        .catch((e) => {
          throw explain(e);
        });
    } else {
      throw explain(err);
    }
  }
  wallet.chainId = await injectedChainId();
  changed();
}

// ------------------------------------------------------------------ development wallet

function bindDev(key) {
  const account = privateKeyToAccount(key);
  wallet.kind = "dev";
  wallet.address = account.address;
  wallet.account = account;
  wallet.chainId = net.chainId;
  wallet.client = createWalletClient({ account, chain: net.chain, transport: http(net.rpcUrl) });
  localStorage.setItem(KIND_KEY, "dev");
  localStorage.setItem(DEV_KEY, key);
}

/** Use the development wallet (embedded chain only): the stored key, or a fresh one. */
export function connectDev() {
  if (!net.embedded) throw userError(t("wallet.error.devOnlyEmbedded"));
  bindDev(localStorage.getItem(DEV_KEY) || generatePrivateKey());
  changed();
  return wallet;
}

/** Replace the development wallet's key (for example a supplier key printed by `kameng serve`). */
export function importDevKey(text) {
  const key = text.trim().startsWith("0x") ? text.trim() : `0x${text.trim()}`;
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw userError(t("wallet.error.badKey"));
  if (!net.embedded) throw userError(t("wallet.error.devOnlyEmbedded"));
  bindDev(key.toLowerCase());
  changed();
  return wallet;
}

/** A new random development key. */
export function newDevKey() {
  bindDev(generatePrivateKey());
  changed();
  return wallet;
}

/**
 * Give the development wallet coins from the embedded chain's own unlocked account (standard
 * `eth_accounts` + `eth_sendTransaction` on the server's JSON-RPC; only a development node
 * answers them).
 */
export async function fundDev(ether = "100") {
  if (wallet.kind !== "dev") throw userError(t("wallet.error.faucetDevOnly"));
  const [faucet] = await net.client.request({ method: "eth_accounts" });
  if (!faucet) throw userError(t("wallet.error.noFaucet"));
  const hash = await net.client.request({
    method: "eth_sendTransaction",
    params: [{ from: faucet, to: wallet.address, value: toHex(parseEther(ether)), gas: toHex(21000) }],
  });
  await waitForReceipt(hash);
  changed();
}

/** Forget the connection (the development key stays in this browser). */
export function disconnect() {
  wallet.kind = null;
  wallet.address = null;
  wallet.account = null;
  wallet.client = null;
  wallet.chainId = null;
  localStorage.removeItem(KIND_KEY);
  changed();
}

/** Reconnect silently after a reload, as the last session left it. */
export async function restore() {
  const kind = localStorage.getItem(KIND_KEY);
  if (kind === "dev" && net.embedded && localStorage.getItem(DEV_KEY)) {
    bindDev(localStorage.getItem(DEV_KEY));
  } else if (kind === "injected" && hasInjected()) {
    try {
      const accounts = await window.ethereum.request({ method: "eth_accounts" });
      if (accounts?.length) {
        bindInjected(accounts[0], await injectedChainId());
        hookInjected();
      }
    } catch {
      // stay disconnected
    }
  }
  changed();
}

// ------------------------------------------------------------------ using it

/**
 * Throw a user error unless a wallet is connected on kameng's chain. Call before every signature
 * and transaction, so a wrong network is caught before anything is signed.
 */
export async function requireWallet() {
  if (!wallet.kind) throw userError(t("wallet.error.connectFirst"), null, { needsWallet: true });
  if (wallet.kind === "injected") {
    wallet.chainId = await injectedChainId().catch((e) => {
      throw explain(e);
    });
    if (wallet.chainId !== net.chainId) throw wrongNetworkError(wallet.chainId);
  }
  return wallet;
}

/** EIP-191 personal_sign of a text. */
export async function signText(text) {
  await requireWallet();
  try {
    return await wallet.client.signMessage({ account: wallet.account, message: text });
  } catch (err) {
    throw explain(err);
  }
}

/**
 * EIP-712 signature of typed data (`eth_signTypedData_v4` for an injected wallet; the
 * development wallet signs in the page): a signature, no transaction.
 * @param {{domain: object, types: object, primaryType: string, message: object}} typedData
 * @returns {Promise<`0x${string}`>} The 65-byte signature (r, s, v).
 */
export async function signTypedData(typedData) {
  await requireWallet();
  try {
    return await wallet.client.signTypedData({ account: wallet.account, ...typedData });
  } catch (err) {
    throw explain(err);
  }
}

/** The native-coin balance of the connected wallet. */
export async function nativeBalance(address = wallet.address) {
  return net.client.getBalance({ address });
}

/**
 * Call an escrow function in a transaction: simulate (so a revert is explained before anything
 * is signed), send, and wait for the receipt.
 *
 * @returns {{hash, receipt, events, nonce}}
 */
export async function sendEscrow(
  functionName,
  args,
  { value, nonce, onSent, abi = ESCROW_ABI, address = net.escrow } = {},
) {
  await requireWallet();
  if (value !== undefined && value > 0n) {
    const have = await nativeBalance();
    if (have < value) {
      throw userError(t("wallet.error.insufficient", { cost: fmtEth(value), have: fmtEth(have) }), null, {
        insufficient: true,
      });
    }
  }
  let request;
  try {
    ({ request } = await net.client.simulateContract({
      account: wallet.account,
      address,
      abi,
      functionName,
      args,
      value,
    }));
  } catch (err) {
    throw explain(err);
  }
  let hash;
  try {
    hash = await wallet.client.writeContract({ ...request, ...(nonce !== undefined ? { nonce } : {}) });
  } catch (err) {
    throw explain(err);
  }
  onSent?.(hash);
  const receipt = await waitForReceipt(hash);
  changed(); // balances moved
  if (receipt.status !== "success") throw userError(t("wallet.error.reverted", { hash }));
  return { hash, receipt, events: decodeLogs(receipt.logs) };
}

/**
 * Send a transaction the server prepared (`{to, data}`, such as an upload's `commit_call`) exactly
 * as given, from the connected wallet: dry-run it first (its calldata decoded with `abi`, so a
 * revert is explained before anything is signed), send, and wait for the receipt.
 *
 * @returns {{hash, receipt, events}}
 */
export async function sendPrepared({ to, data }, { onSent, abi = ESCROW_ABI } = {}) {
  await requireWallet();
  try {
    const { functionName, args } = decodeFunctionData({ abi, data });
    await net.client.simulateContract({ account: wallet.account, address: to, abi, functionName, args });
  } catch (err) {
    throw explain(err);
  }
  let hash;
  try {
    hash = await wallet.client.sendTransaction({ account: wallet.account, chain: net.chain, to, data });
  } catch (err) {
    throw explain(err);
  }
  onSent?.(hash);
  const receipt = await waitForReceipt(hash);
  changed();
  if (receipt.status !== "success") throw userError(t("wallet.error.reverted", { hash }));
  return { hash, receipt, events: decodeLogs(receipt.logs) };
}

/**
 * Poll for a transaction's receipt. Three failed requests in a row mean the connection is lost:
 * that is reported at once (the caller keeps what it needs to recover on reload).
 */
export async function waitForReceipt(hash, { interval = 250, timeout = 120_000 } = {}) {
  const deadline = Date.now() + timeout;
  let failures = 0;
  for (;;) {
    try {
      const receipt = await net.client.getTransactionReceipt({ hash });
      if (receipt) return receipt;
    } catch (err) {
      if (err?.name !== "TransactionReceiptNotFoundError") {
        failures += 1;
        if (failures >= 3) throw explain(err);
      }
    }
    if (Date.now() > deadline)
      throw userError(t("wallet.error.notMined", { hash, seconds: timeout / 1000 }), null, { offline: true });
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

function fmtEth(wei) {
  const s = (Number(wei) / 1e18).toFixed(6).replace(/\.?0+$/, "");
  return `${s} ETH`;
}
