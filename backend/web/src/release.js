// Everything about a sealed release in one module: the buyer's per-order key (derived from a
// wallet signature exactly as backend/keys.py does), opening the libsodium sealed box, and
// checking every code against the chain (release v2, docs/PROTOCOL.md and docs/RELEASE.md).
// The plaintext codes exist only in this browser tab.
import {
  bytesToHex,
  concat,
  decodeAbiParameters,
  encodeAbiParameters,
  getAddress,
  hexToBytes,
  keccak256,
  stringToBytes,
} from "viem";
import { t } from "./i18n.js";

// ------------------------------------------------------------------ per-order key

/** The text the buyer's wallet signs for one order (backend.keys.MESSAGE_TEMPLATE). */
export function orderKeyMessage({ chainId, escrow, buyer, nonce }) {
  // i18n-ignore-start: the signed text derives the key (backend.keys), so it never changes
  return [
    "kameng: unlock the codes of one order",
    "",
    "Signing this creates the key that receives this order's codes. Sign it only on kameng:",
    "anyone holding this signature can read the order's codes.",
    "",
    `Chain ID: ${chainId}`,
    `Escrow: ${getAddress(escrow)}`,
    `Buyer: ${getAddress(buyer)}`,
    `Order nonce: ${nonce}`,
  ].join("\n");
  // i18n-ignore-end
}

// The keys this tab derived at purchase, by order id: the order page opens the codes with them
// and asks the wallet for nothing more. Only in memory: gone on reload or when the tab closes.
const heldKeys = new Map();
// Orders bought in this browser, by order id (lower-case buyer address): kept in localStorage so
// that the order page, reloaded or opened later in another tab (a notification's link), follows
// the order on the chain and needs no sign-in: it re-derives the key (one prompt). Order ids and
// buyers are public on the chain; only the wallet that bought can open the codes.
const BOUGHT_KEY = "kameng.bought.";

/** Keep the key derived for an order bought in this tab (see `heldOrderKey`). */
export function holdOrderKey(orderId, key, buyer) {
  heldKeys.set(String(orderId), key);
  markBoughtHere(orderId, buyer);
}

/** Remember in this browser that `buyer` bought the order here (see `boughtHere`). */
export function markBoughtHere(orderId, buyer) {
  try {
    localStorage.setItem(BOUGHT_KEY + String(orderId), buyer.toLowerCase());
  } catch {
    // storage refused (private mode): the key in memory still serves this page
  }
}

/** The key derived for this order in this tab, if any, when it is `buyer`'s. */
export function heldOrderKey(orderId, buyerPubkey) {
  const key = heldKeys.get(String(orderId));
  return key && key.publicKeyHex.toLowerCase() === String(buyerPubkey).toLowerCase() ? key : null;
}

/** Whether `buyer` bought this order in this browser. */
export function boughtHere(orderId, buyer) {
  if (!buyer) return false;
  if (heldKeys.has(String(orderId))) return true;
  try {
    return localStorage.getItem(BOUGHT_KEY + String(orderId)) === buyer.toLowerCase();
  } catch {
    return false;
  }
}

let sodiumLoading = null;
/**
 * libsodium, loaded on first use: its WebAssembly is about a third of the site's JavaScript, and
 * only the pages that derive an order key or open a release need it (issue 18).
 */
function loadSodium() {
  sodiumLoading ??= import("libsodium-wrappers").then(async ({ default: sodium }) => {
    await sodium.ready;
    return sodium;
  });
  return sodiumLoading;
}

/**
 * The X25519 key pair of an order from the wallet's 65-byte signature: the secret is
 * keccak256(signature) with v normalized to 27/28; libsodium clamps it.
 */
export async function orderKeyFromSignature(signature) {
  const sodium = await loadSodium();
  const sig = hexToBytes(signature).slice();
  if (sig.length !== 65) throw new Error(`expected a 65-byte signature, got ${sig.length} bytes`);
  if (sig[64] < 27) sig[64] += 27;
  const secretKey = hexToBytes(keccak256(sig));
  const publicKey = sodium.crypto_scalarmult_base(secretKey);
  return { secretKey, publicKey, publicKeyHex: bytesToHex(publicKey) };
}

// ------------------------------------------------------------------ encodings (release v2)

const COMMITMENT_DOMAIN = stringToBytes("kameng.code.v1");
const PAYLOAD_TAG = "kameng.release.v2";
const PAYLOAD_TYPES = [
  { type: "string" },
  { type: "uint256" },
  { type: "address" },
  { type: "uint256" },
  { type: "bytes32" },
  {
    type: "tuple[]",
    components: [
      { type: "uint256", name: "index" },
      { type: "bytes32", name: "salt" },
      { type: "bytes", name: "ciphertext" },
      { type: "uint64", name: "expiresAt" },
    ],
  },
];

const enc = (types, values) =>
  encodeAbiParameters(
    types.map((type) => ({ type })),
    values,
  );

/** keccak256("kameng.code.v1" || salt || code) */
export function commitment(salt, code) {
  return keccak256(concat([COMMITMENT_DOMAIN, hexToBytes(salt), code]));
}

/** The double-hashed Merkle leaf of a code's commitment at its index. */
export function leaf(index, codeCommitment) {
  return keccak256(keccak256(enc(["uint256", "bytes32"], [BigInt(index), codeCommitment])));
}

/** Release v2 cipher: XOR with blocks keccak256(abi.encode(key, index, b)). */
export function keystreamXor(key, index, data) {
  const out = new Uint8Array(data);
  for (let b = 0; b * 32 < out.length; b++) {
    const pad = hexToBytes(keccak256(enc(["bytes32", "uint256", "uint256"], [key, BigInt(index), BigInt(b)])));
    for (let j = b * 32; j < Math.min(out.length, b * 32 + 32); j++) out[j] ^= pad[j - b * 32];
  }
  return out;
}

/** The leaf of one encrypted code in the release's element tree. */
export function elementLeaf(index, salt, ciphertext) {
  return keccak256(keccak256(enc(["uint256", "bytes32", "bytes32"], [BigInt(index), salt, keccak256(ciphertext)])));
}

/** The digest posted on-chain: binds the sealed box, the elements and the release key. */
export function releaseDigestV2(sealedHash, elementRoot, key) {
  return keccak256(
    enc(["bytes32", "bytes32", "bytes32"], [sealedHash, elementRoot, keccak256(enc(["bytes32"], [key]))]),
  );
}

const hashPair = (a, b) => (a.toLowerCase() < b.toLowerCase() ? keccak256(concat([a, b])) : keccak256(concat([b, a])));

/** An OpenZeppelin-compatible Merkle tree (sorted pairs; an odd node moves up unchanged). */
export class MerkleTree {
  constructor(leaves) {
    if (!leaves.length) throw new Error("a Merkle tree needs at least one leaf");
    this.layers = [leaves.slice()];
    while (this.layers.at(-1).length > 1) {
      const layer = this.layers.at(-1);
      const up = [];
      for (let i = 0; i + 1 < layer.length; i += 2) up.push(hashPair(layer[i], layer[i + 1]));
      if (layer.length % 2) up.push(layer.at(-1));
      this.layers.push(up);
    }
  }
  get root() {
    return this.layers.at(-1)[0];
  }
  proof(position) {
    const path = [];
    for (const layer of this.layers.slice(0, -1)) {
      if ((position ^ 1) < layer.length) path.push(layer[position ^ 1]);
      position >>= 1;
    }
    return path;
  }
}

/** MerkleProof.verify */
export function verifyProof(proof, root, leafHash) {
  return proof.reduce((node, sibling) => hashPair(node, sibling), leafHash).toLowerCase() === root.toLowerCase();
}

// ------------------------------------------------------------------ opening and checking

const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * Open a release and check it against facts read from the chain. Never throws for a bad
 * release: the report says which check failed, for the release and for each code.
 *
 * @param {object} release The API's ReleasePublic (sealed, element_root, codes[] with index,
 *     commitment, batch_index, batch_root, proof).
 * @param {object} facts {secretKey, publicKey (Uint8Arrays), chainId, escrow, orderId (bigint),
 *     quantity, onchainDigest (hex or null), batches: Map(batchIndex -> {root, firstIndex, count})}
 * @returns {{ok: boolean, checks: Array, codes: Array, key: string|null, items: Array}}
 */
export async function openRelease(release, facts) {
  const sodium = await loadSodium();
  const checks = [];
  const codes = [];
  const report = { ok: false, checks, codes, key: null, items: [] };
  const check = (id, label, ok, detail) => {
    checks.push({ id, label, ok, detail });
    return ok;
  };
  const orderId = BigInt(facts.orderId);
  const firstIndex = Number(orderId & 0xffffffffn);
  const sealed = hexToBytes(release.sealed);

  let payload;
  try {
    payload = sodium.crypto_box_seal_open(sealed, facts.publicKey, facts.secretKey);
  } catch {
    payload = null;
  }
  if (!check("open", t("release.check.open"), Boolean(payload), payload ? null : t("release.check.open.failed")))
    return report;

  let tag, chainId, escrow, payloadOrder, key, items;
  try {
    [tag, chainId, escrow, payloadOrder, key, items] = decodeAbiParameters(PAYLOAD_TYPES, bytesToHex(payload));
  } catch {
    check("format", t("release.check.format"), false, t("release.check.format.undecodable"));
    return report;
  }
  if (
    !check(
      "format",
      t("release.check.format"),
      tag === PAYLOAD_TAG,
      tag === PAYLOAD_TAG ? null : t("release.check.format.unknown", { format: String(tag).slice(0, 40) }),
    )
  )
    return report;
  const sameOrder =
    Number(chainId) === facts.chainId && getAddress(escrow) === getAddress(facts.escrow) && payloadOrder === orderId;
  if (
    !check(
      "order",
      t("release.check.order"),
      sameOrder,
      sameOrder
        ? null
        : t("release.check.order.other", {
            order: String(payloadOrder),
            escrow: String(escrow),
            chainId: String(chainId),
          }),
    )
  )
    return report;
  const indexes = items.map((it) => Number(it.index));
  const expected = Array.from({ length: facts.quantity }, (_, j) => firstIndex + j);
  const rightIndexes = JSON.stringify(indexes) === JSON.stringify(expected);
  if (
    !check(
      "indexes",
      t("release.check.indexes", { count: facts.quantity }),
      rightIndexes,
      rightIndexes ? null : t("release.check.indexes.wrong", { indexes: indexes.slice(0, 8).join(", ") }),
    )
  )
    return report;

  report.key = key;
  report.items = items;
  const elementTree = new MerkleTree(items.map((it) => elementLeaf(it.index, it.salt, it.ciphertext)));
  report.elementTree = elementTree;
  const digest = releaseDigestV2(keccak256(sealed), elementTree.root, key);
  const digestOk = Boolean(facts.onchainDigest) && digest.toLowerCase() === facts.onchainDigest.toLowerCase();
  check(
    "digest",
    t("release.check.digest"),
    digestOk,
    facts.onchainDigest
      ? digestOk
        ? facts.onchainDigest
        : t("release.check.digest.wrong", { computed: digest, onchain: facts.onchainDigest })
      : t("release.check.digest.none"),
  );

  const claims = new Map(release.codes.map((c) => [Number(c.index), c]));
  items.forEach((it, position) => {
    const index = Number(it.index);
    const bytes = keystreamXor(key, index, hexToBytes(it.ciphertext));
    const claim = claims.get(index);
    const batch = claim ? facts.batches.get(Number(claim.batch_index)) : null;
    const commitOk = Boolean(claim) && commitment(it.salt, bytes).toLowerCase() === claim.commitment.toLowerCase();
    const rootOk = Boolean(batch) && batch.root.toLowerCase() === claim.batch_root.toLowerCase();
    const rangeOk = Boolean(batch) && index >= batch.firstIndex && index < batch.firstIndex + batch.count;
    const proofOk = Boolean(batch) && verifyProof(claim.proof, batch.root, leaf(index, claim.commitment));
    codes.push({
      index,
      position,
      text: utf8.decode(bytes),
      expiresAt: Number(it.expiresAt),
      salt: it.salt,
      ciphertext: it.ciphertext,
      claim,
      checks: { commitment: commitOk, batchRoot: rootOk, batchRange: rangeOk, proof: proofOk },
      ok: digestOk && commitOk && rootOk && rangeOk && proofOk,
    });
  });
  report.ok = digestOk && codes.length === facts.quantity && codes.every((c) => c.ok);
  return report;
}

/**
 * The BadCodeProof for `proveBadCode` when a code does not match its commitment (its element
 * and leaf proofs, the key and the ciphertext: this reveals that one code only).
 */
export function badCodeProof(report, code, sealedHex) {
  return {
    sealedHash: keccak256(hexToBytes(sealedHex)),
    key: report.key,
    index: BigInt(code.index),
    salt: code.salt,
    ciphertext: code.ciphertext,
    elementProof: report.elementTree.proof(code.position),
    batchIndex: BigInt(code.claim.batch_index),
    committed: code.claim.commitment,
    leafProof: code.claim.proof,
  };
}
