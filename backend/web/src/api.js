// The kameng API (same origin): JSON requests, Sign-In with Ethereum sessions, streamed uploads.
import { net, userError } from "./chain.js";
import { has, t } from "./i18n.js";
import { connectionBack, connectionLost } from "./status.js";
import { signText, wallet } from "./wallet.js";

const SESSION_KEY = "kameng.session.";

/**
 * An API refusal: `status`, the server's `detail`, its stable machine `apiCode` (the body's
 * `code`), and per-line `errors` for uploads. `userMessage` (and `detail`) say what happened in
 * the reader's language, by the error's kind (see `explainApiError`); `retryable` is whether
 * asking again may work (a server error, a timeout, too many requests).
 */
export class ApiError extends Error {
  constructor(status, body, retryAfter, method = "GET") {
    const detail = body?.detail ?? body?.error?.detail;
    const text = typeof detail === "string" ? detail : null;
    super(text ?? `HTTP ${status}`);
    this.status = status;
    this.method = method;
    this.apiCode = body?.code ?? body?.error?.code ?? null;
    Object.assign(this, explainApiError(status, this.apiCode, text, retryAfter, method));
    this.errors = body?.errors ?? body?.error?.errors ?? null;
    this.total = body?.total ?? body?.error?.total ?? null;
    this.body = body;
  }
}

/**
 * What an API error means to the reader, by its kind: `{ userMessage, detail, retryable }`.
 *
 * - A code the catalog knows (`api.code.<code>`): its sentence, in the reader's language.
 * - A server error (5xx): never the server's bare text; a sentence that says what it means for
 *   the request (a read changed nothing; a write may have to be checked) and the status.
 * - Any other refusal (4xx): the server's words (English, from its `detail`), framed in the
 *   reader's language: "服务器说：…".
 */
export function explainApiError(status, code, text, retryAfter, method = "GET") {
  const seconds = String(retryAfter || 5);
  const retryable = status >= 500 || status === 408 || status === 429;
  const key = code ? `api.code.${code}` : null;
  if (key && has(key)) {
    const detail = status >= 500 ? t("api.error.server.detail", { status: String(status) }) : null;
    return { userMessage: t(key, { seconds }), detail, retryable };
  }
  if (status >= 500) {
    const read = method === "GET" || method === "HEAD";
    return {
      userMessage: t(read ? "api.error.server" : "api.error.server.write"),
      detail: t("api.error.server.detail", { status: String(status) }),
      retryable,
    };
  }
  if (text === null) return { userMessage: t("api.error.status", { status: String(status) }), retryable };
  let sentence = text.charAt(0).toUpperCase() + text.slice(1);
  if (!sentence.endsWith(".")) sentence = `${sentence}.`;
  const said = t("api.error.said", { detail: sentence });
  return {
    userMessage: retryAfter && retryable ? t("api.error.retrying", { said, seconds }) : said,
    retryable,
  };
}

/** The server could not be reached: the banner says so and probes until it answers again. */
function offline(err) {
  connectionLost();
  return userError(t("api.offline"), null, { offline: true, cause: err });
}

// ------------------------------------------------------------------ sessions

function stored(address) {
  if (!address) return null;
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY + address.toLowerCase()) || "null");
    if (s && s.expires_at * 1000 > Date.now() + 30_000) return s;
  } catch {
    // ignore a corrupt entry
  }
  return null;
}

/** Whether the connected wallet has a live session with this server. */
export function signedIn() {
  return Boolean(stored(wallet.address));
}

/** Forget the connected wallet's session in this browser. */
export function signOut() {
  if (wallet.address) localStorage.removeItem(SESSION_KEY + wallet.address.toLowerCase());
}

/** Sign out here and on the server, which refuses the token from then on (POST /auth/logout). */
export async function logOut() {
  const s = stored(wallet.address);
  signOut();
  if (!s) return;
  try {
    await fetch("/auth/logout", {
      method: "POST",
      headers: { Accept: "application/json", Authorization: `Bearer ${s.token}` },
      cache: "no-store",
    });
  } catch {
    // Offline: the token is gone from this browser and expires on its own.
  }
}

function iso(ts) {
  return new Date(ts * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** The EIP-4361 text for a nonce answer (what `backend.auth.build_message` builds). */
export function siweMessage(n, address, uri) {
  // i18n-ignore-start: the signed text is protocol (EIP-4361), the same in every language
  return [
    `${n.domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    n.statement,
    "",
    `URI: ${uri}`,
    "Version: 1",
    `Chain ID: ${n.chain_id}`,
    `Nonce: ${n.nonce}`,
    `Issued At: ${iso(n.issued_at)}`,
  ].join("\n");
  // i18n-ignore-end
}

/** Sign in with Ethereum: one signature, no gas. */
export async function signIn() {
  if (!wallet.address) throw userError(t("wallet.error.connectFirst"), null, { needsWallet: true });
  const nonce = await post("/auth/nonce", {});
  if (Number(nonce.chain_id) !== net.chainId)
    throw userError(t("api.signIn.wrongChain", { server: String(nonce.chain_id), here: String(net.chainId) }));
  const message = siweMessage(nonce, wallet.address, window.location.origin);
  const signature = await signText(message);
  const session = await post("/auth/verify", { message, signature });
  localStorage.setItem(SESSION_KEY + wallet.address.toLowerCase(), JSON.stringify(session));
  return session;
}

/** Sign in unless already signed in. */
export async function ensureSignedIn() {
  if (!signedIn()) await signIn();
}

// ------------------------------------------------------------------ requests

async function request(method, path, { body, auth = false, headers = {}, raw = false } = {}) {
  const h = { Accept: "application/json", ...headers };
  if (auth) {
    const s = stored(wallet.address);
    if (!s) throw userError(t("api.signIn.needed"), null, { needsSignIn: true });
    h.Authorization = `Bearer ${s.token}`;
  }
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers: h, body: payload, cache: "no-store" });
  } catch (err) {
    throw offline(err);
  }
  // An answer (other than a gateway's "not there") means the server is reachable again.
  if (![502, 503, 504].includes(res.status)) connectionBack();
  if (raw) return res;
  return parse(res, auth, method);
}

async function parse(res, auth, method = "GET") {
  let data = null;
  const text = await res.text().catch(() => "");
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (!res.ok) {
    if (res.status === 401 && auth) signOut();
    const err = new ApiError(res.status, data, res.headers.get("Retry-After"), method);
    if (res.status === 401) err.needsSignIn = true;
    throw err;
  }
  return data;
}

export const get = (path, opts) => request("GET", path, opts);
export const post = (path, body, opts) => request("POST", path, { ...opts, body });
export const del = (path, opts) => request("DELETE", path, opts);
/** PUT a body: JSON for an object, as it is for a Blob or File (pass its Content-Type in `headers`). */
export const put = (path, body, opts) => request("PUT", path, { ...opts, body });

/**
 * Upload a CSV of codes to a listing, reporting progress as the server streams it
 * (`Accept: application/x-ndjson`). Resolves with the UploadPublic answer.
 */
export async function uploadCodes(listingId, file, onProgress) {
  const res = await request("POST", `/supplier/listings/${listingId}/codes`, {
    auth: true,
    raw: true,
    body: file,
    headers: { "Content-Type": "text/csv", Accept: "application/x-ndjson" },
  });
  if (!res.ok || !(res.headers.get("content-type") || "").includes("ndjson")) return parse(res, true, "POST");
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let result = null;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      throw offline(err);
    }
    if (chunk.done) break;
    buffer += decoder.decode(chunk.value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line);
      if (msg.progress) onProgress?.(msg.progress.done, msg.progress.total);
      else if (msg.result) result = msg.result;
      else if (msg.error) throw new ApiError(msg.error.status, msg.error, null, "POST");
    }
  }
  if (!result) throw userError(t("api.upload.noAnswer"));
  return result;
}
