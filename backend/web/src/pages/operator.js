// The operator's console (issue 14): the marketplace at a glance (GET /admin/overview), the audit
// log of every operator action (GET /admin/audit, paged by block), and the operator's actions sent
// from the connected wallet: pause and unpause, appoint and remove arbiters, grant and revoke a
// supplier's licence for a product (the attestation document's keccak256, computed here, is the
// on-chain attestation hash; a zero hash revokes; once the grant is mined the document itself is
// published with PUT /attestations/{hash}, so buyers can read and check it), the fees and time
// windows (setConfig, checked against the contract's bounds here first), the payment tokens
// accepted (setTokenAllowed), and the platform's fee income (feesOf, withdrawFees). Before
// anything is sent the wallet's role is checked on-chain, and a missing role is named.
import { formatUnits, getAddress, isAddress, keccak256, zeroHash } from "viem";
import { ApiError, get, put } from "../api.js";
import { ZERO_ADDRESS, net, read, stateText, tokenInfo, userError } from "../chain.js";
import { addr, count, duration, keccakText, short, txLink, when } from "../fmt.js";
import { locale, t, tn } from "../i18n.js";
import { gate } from "../session.js";
import { poll } from "../status.js";
import { busy, describeError, field, h, message, messageSlot, pill, replace, stat } from "../ui.js";
import { sendEscrow, wallet } from "../wallet.js";

/** The roles that open the console (the API's CurrentOperator), by their constant's name. */
export const OPERATOR_ROLES = ["DEFAULT_ADMIN_ROLE", "RIGHTS_ADMIN_ROLE", "PAUSER_ROLE"];
const ALL_ROLES = [...OPERATOR_ROLES, "ARBITER_ROLE"];
/** Audit entries per page. */
const PAGE = 25;

let roleIds = null;
/** role constant name -> bytes32 id, read from the escrow once. */
async function roles() {
  if (!roleIds) {
    const ids = await Promise.all(ALL_ROLES.map((name) => read(name)));
    roleIds = Object.fromEntries(ALL_ROLES.map((name, i) => [name, String(ids[i]).toLowerCase()]));
  }
  return roleIds;
}

/** A role's name for a person ("arbiter", "仲裁员") from its bytes32 id or constant name. */
function roleName(idOrName) {
  const name = ALL_ROLES.includes(idOrName)
    ? idOrName
    : Object.entries(roleIds || {}).find(([, id]) => id === String(idOrName).toLowerCase())?.[0];
  return name ? t(`operator.role.${name}`) : short(String(idOrName), 10, 4);
}

/** Whether `address` holds `role` (a constant's name) on the escrow. */
async function holds(role, address) {
  const ids = await roles();
  return Boolean(await read("hasRole", [ids[role], address]));
}

/** The operator roles `address` holds on-chain (constant names; empty for everyone else). */
export async function operatorRoles(address) {
  if (!address || !net.client) return [];
  const held = await Promise.all(OPERATOR_ROLES.map((role) => holds(role, address).catch(() => false)));
  return OPERATOR_ROLES.filter((_, i) => held[i]);
}

/** Throw a user error naming the role the connected wallet lacks for an action; nothing is sent. */
async function requireRole(role, action) {
  if (!(await holds(role, wallet.address)))
    throw userError(t("operator.missingRole", { address: short(wallet.address), role: roleName(role), action }));
}

/** An amount in the reader's digits ("1,234.5 ETH", "1.234,5" where that is the custom). */
function intlAmount(amount, token) {
  const info = tokenInfoCached.get(token.toLowerCase()) || { symbol: "?", decimals: 18 };
  const value = new Intl.NumberFormat(locale(), { maximumFractionDigits: 6 }).format(
    formatUnits(BigInt(amount), info.decimals),
  );
  return `${value} ${info.symbol}`;
}
const tokenInfoCached = new Map();
async function learnTokens(tokens) {
  await Promise.all(
    [...new Set(tokens.map((x) => x.toLowerCase()))].map(async (token) => {
      if (!tokenInfoCached.has(token)) tokenInfoCached.set(token, await tokenInfo(token));
    }),
  );
}

const age = (seconds) => (seconds === null || seconds === undefined ? "—" : duration(seconds));

/** A table in its scrolling wrapper: a header per column (`operator.<prefix>.col.<column>`; null
 * for one with nothing to show, which screen readers still hear as "Actions"), then `body`. */
function operatorTable(prefix, columns, body) {
  return h(
    "div",
    { class: "table-wrap", tabindex: "0" },
    h(
      "table",
      { class: "small stack-sm" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          columns.map((c) =>
            h(
              "th",
              null,
              c === null ? h("span", { class: "sr-only" }, t("ui.col.actions")) : t(`operator.${prefix}.col.${c}`),
            ),
          ),
        ),
      ),
      body,
    ),
  );
}

// ------------------------------------------------------------------ the marketplace at a glance

/** What needs the operator, one sentence each (nothing when a figure is zero). */
function advice(o) {
  const items = [];
  const say = (key, params, link) =>
    items.push(
      h(
        "div",
        { class: "msg warn", role: "status", "data-test": `op-advice-${key}` },
        t(`operator.advice.${key}`, params),
        link ? [" ", link] : null,
      ),
    );
  if (o.open_disputes)
    say(
      "disputes",
      { count: o.open_disputes, age: age(o.oldest_dispute_age_s) },
      h("a", { href: "#/arbiter" }, t("operator.advice.disputes.link")),
    );
  if (o.disputes_past_deadline) say("late", { count: o.disputes_past_deadline });
  if (o.undelivered_orders) say("undelivered", { count: o.undelivered_orders, age: age(o.oldest_undelivered_age_s) });
  if (o.indexer_lag_blocks) say("indexer", { count: o.indexer_lag_blocks });
  if (o.head_block === null) say("node", {});
  if (o.low_bonds.length) say("bonds", { count: o.low_bonds.length });
  if (o.dead_notifications) say("dead", { count: o.dead_notifications });
  if (o.stuck_transactions) say("stuck", { count: o.stuck_transactions });
  return items.length
    ? items
    : [h("div", { class: "msg ok", role: "status", "data-test": "op-advice-none" }, t("operator.advice.none"))];
}

function overviewView(o) {
  const states = Object.entries(o.orders_by_state);
  return [
    h(
      "div",
      { class: "stats" },
      stat(
        t("operator.stat.disputes"),
        count(o.open_disputes),
        tn("operator.stat.oldest", { age: age(o.oldest_dispute_age_s) }),
        {
          "data-test": "op-open-disputes",
        },
      ),
      stat(t("operator.stat.late"), count(o.disputes_past_deadline), t("operator.stat.late.sub"), {
        "data-test": "op-disputes-late",
      }),
      stat(
        t("operator.stat.undelivered"),
        count(o.undelivered_orders),
        t("operator.stat.agentLag", { age: age(o.oldest_undelivered_age_s) }),
        { "data-test": "op-undelivered" },
      ),
      stat(
        t("operator.stat.indexer"),
        o.indexer_lag_blocks === null ? "—" : t("operator.n.blocks", { count: o.indexer_lag_blocks }),
        t("operator.stat.blocks", {
          head: o.head_block === null ? "—" : String(o.head_block),
          mirror: o.mirror_block === null ? "—" : String(o.mirror_block),
        }),
        { "data-test": "op-indexer-lag" },
      ),
      stat(t("operator.stat.bonds"), count(o.low_bonds.length), t("operator.stat.bonds.sub"), {
        "data-test": "op-low-bonds",
      }),
      stat(t("operator.stat.dead"), count(o.dead_notifications), t("operator.stat.dead.sub"), {
        "data-test": "op-dead",
      }),
      stat(t("operator.stat.stuck"), count(o.stuck_transactions), t("operator.stat.stuck.sub"), {
        "data-test": "op-stuck",
      }),
    ),
    h("div", { "data-test": "op-advice" }, advice(o)),
    h(
      "div",
      { class: "cols" },
      h(
        "div",
        { class: "card" },
        h("h2", null, t("operator.volume.title")),
        o.volume.length
          ? h(
              "div",
              { class: "table-wrap", tabindex: "0" },
              h(
                "table",
                { class: "small", "data-test": "op-volume" },
                h(
                  "thead",
                  null,
                  h(
                    "tr",
                    null,
                    ["token", "orders", "amount", "orders24h", "amount24h"].map((c) =>
                      h("th", null, t(`operator.volume.col.${c}`)),
                    ),
                  ),
                ),
                h(
                  "tbody",
                  null,
                  o.volume.map((v) =>
                    h(
                      "tr",
                      { "data-test": "op-volume-row", "data-token": v.token },
                      h(
                        "td",
                        null,
                        v.token === ZERO_ADDRESS
                          ? "ETH"
                          : addr(v.token, tokenInfoCached.get(v.token.toLowerCase())?.symbol),
                      ),
                      h("td", { class: "num", "data-test": "op-volume-orders" }, count(v.orders)),
                      h("td", { class: "num", "data-test": "op-volume-amount" }, intlAmount(v.amount, v.token)),
                      h("td", { class: "num" }, count(v.orders_24h)),
                      h("td", { class: "num" }, intlAmount(v.amount_24h, v.token)),
                    ),
                  ),
                ),
              ),
            )
          : h("p", { class: "muted" }, t("operator.volume.none")),
      ),
      h(
        "div",
        { class: "card" },
        h("h2", null, t("operator.states.title")),
        states.length
          ? h(
              "div",
              { class: "row", "data-test": "op-orders-by-state" },
              states.map(([name, n]) =>
                pill(
                  t("operator.states.item", {
                    state: stateText(name.charAt(0).toUpperCase() + name.slice(1)),
                    count: n,
                  }),
                  name === "disputed" ? "bad" : name === "completed" ? "ok" : "",
                  { "data-state": name, "data-count": String(n) },
                ),
              ),
            )
          : h("p", { class: "muted" }, t("operator.states.none")),
        o.low_bonds.length
          ? h(
              "div",
              { style: { marginTop: ".7rem" } },
              h("h3", null, t("operator.bonds.title")),
              h(
                "table",
                { class: "small", "data-test": "op-low-bond-list" },
                h(
                  "thead",
                  null,
                  h(
                    "tr",
                    null,
                    ["supplier", "free", "reserved"].map((c) => h("th", null, t(`operator.bonds.col.${c}`))),
                  ),
                ),
                h(
                  "tbody",
                  null,
                  o.low_bonds.map((b) =>
                    h(
                      "tr",
                      null,
                      h("td", null, addr(b.supplier)),
                      h("td", { class: "num" }, intlAmount(b.free, b.token)),
                      h("td", { class: "num" }, intlAmount(b.reserved, b.token)),
                    ),
                  ),
                ),
              ),
            )
          : null,
      ),
    ),
  ];
}

// ------------------------------------------------------------------ the audit log

/** What an operator action did, in a sentence (its arguments' addresses and hashes shortened). */
function auditText(e) {
  const a = e.args || {};
  const who = (x) => (x ? addr(x) : "—");
  switch (e.name) {
    case "RoleGranted":
    case "RoleRevoked":
      return tn(`operator.audit.${e.name}`, { role: roleName(a.role), account: who(a.account) });
    case "SkuAuthorized":
      return BigInt(a.attestationHash || 0) === 0n
        ? tn("operator.audit.SkuRevoked", {
            supplier: who(a.supplier),
            sku: h("span", { class: "mono" }, short(a.sku, 10, 4)),
          })
        : tn("operator.audit.SkuAuthorized", {
            supplier: who(a.supplier),
            sku: h("span", { class: "mono" }, short(a.sku, 10, 4)),
            hash: h("span", { class: "mono", title: a.attestationHash }, short(a.attestationHash, 10, 4)),
          });
    case "TokenAllowed":
      return tn(/^true$/i.test(a.allowed) ? "operator.audit.TokenAllowed" : "operator.audit.TokenDisallowed", {
        token: who(a.token),
      });
    case "FeesWithdrawn":
      return tn("operator.audit.FeesWithdrawn", {
        amount: intlAmount(a.amount || 0, a.token || ZERO_ADDRESS),
        to: who(a.to),
      });
    case "DefaultAdminTransferScheduled":
      return tn("operator.audit.DefaultAdminTransferScheduled", { account: who(a.newAdmin) });
    case "Paused": // i18n-ignore: event names
    case "Unpaused": // i18n-ignore
    case "ConfigUpdated":
    case "DefaultAdminTransferCanceled":
      return t(`operator.audit.${e.name}`);
    default:
      return e.name;
  }
}

/**
 * The audit log, newest first, a page at a time (`before_block`). A full page ends at a block
 * boundary: the entries of its oldest block are left to the next page (so none is skipped), unless
 * the page holds a single block.
 */
function auditCard() {
  const body = h("tbody");
  const slot = messageSlot({ "data-test": "op-audit-message" });
  const newer = h(
    "button",
    { class: "btn small quiet", "data-test": "audit-newer", disabled: true },
    t("operator.audit.newer"),
  );
  const older = h(
    "button",
    { class: "btn small quiet", "data-test": "audit-older", disabled: true },
    t("operator.audit.older"),
  );
  const cursors = [null]; // before_block of each page shown so far; the last is the current page's
  let next = null;
  let shownSig = null;
  let loads = 0; // an answer is drawn only if no later load started (a follow of page 1 that
  // answers after "older" was pressed must not redraw page 1 over page 2)
  const load = async () => {
    const seq = ++loads;
    const before = cursors.at(-1);
    const rows = await get(`/admin/audit?limit=${PAGE}${before === null ? "" : `&before_block=${before}`}`, {
      auth: true,
    });
    const sig = JSON.stringify([before, locale(), rows]);
    if (seq !== loads || sig === shownSig) return;
    await roles();
    const tokens = rows.filter((e) => e.args?.token).map((e) => e.args.token);
    await learnTokens(tokens);
    if (seq !== loads) return;
    shownSig = sig;
    let shown = rows;
    next = null;
    if (rows.length === PAGE) {
      const oldest = rows.at(-1).block_number;
      const trimmed = rows.filter((e) => e.block_number !== oldest);
      if (trimmed.length) {
        shown = trimmed;
        next = oldest + 1;
      } else next = oldest;
    }
    replace(
      body,
      shown.length
        ? shown.map((e) =>
            h(
              "tr",
              { "data-test": "audit-row", "data-event": e.name, "data-block": String(e.block_number) },
              h("td", { "data-label": t("operator.audit.col.who") }, e.actor ? addr(e.actor) : "—"),
              h("td", { "data-label": t("operator.audit.col.what"), "data-test": "audit-what" }, auditText(e)),
              h("td", { "data-label": t("operator.audit.col.when") }, e.timestamp ? when(e.timestamp) : "—"),
              h("td", { "data-label": t("operator.audit.col.tx") }, txLink(e.tx_hash, e.block_number)),
            ),
          )
        : h("tr", null, h("td", { colspan: 4, class: "muted" }, t("operator.audit.none"))),
    );
    newer.disabled = cursors.length === 1;
    older.disabled = next === null;
  };
  const page = (fn) =>
    busy(null, slot, async () => {
      fn();
      await load();
    });
  newer.addEventListener("click", () => page(() => cursors.pop()));
  older.addEventListener("click", () => page(() => cursors.push(next)));
  const card = h(
    "div",
    { class: "card", "data-test": "op-audit" },
    h("h2", null, t("operator.audit.title")),
    h("p", { class: "small muted" }, t("operator.audit.intro")),
    operatorTable("audit", ["who", "what", "when", "tx"], body),
    slot,
    h("div", { class: "row" }, newer, older),
  );
  /** Reload the page shown (redrawn only when it changed). */
  card.refresh = () =>
    load().then(
      () => slot.clear(),
      (err) => slot.error(err, card.refresh),
    );
  /** Follow new actions while the newest page is shown. */
  card.follow = () => (cursors.length === 1 ? load() : undefined);
  return card;
}

// ------------------------------------------------------------------ actions

function done(slot, text, r) {
  slot.show("ok", text, txLink(r.hash, Number(r.receipt.blockNumber)));
}

/** Pause and unpause new business (PAUSER_ROLE). */
function pauseCard(onDone) {
  const state = h("p", { "data-test": "op-paused" });
  const slot = messageSlot({ "data-test": "op-pause-message" });
  const pause = h("button", { class: "btn danger", "data-test": "op-pause" }, t("operator.pause.pause"));
  const unpause = h("button", { class: "btn", "data-test": "op-unpause" }, t("operator.pause.unpause"));
  let paused = null;
  const show = async () => {
    paused = Boolean(await read("paused"));
    replace(
      state,
      paused ? pill(t("operator.pause.isPaused"), "bad") : pill(t("operator.pause.isRunning"), "ok"),
      " ",
      t(paused ? "operator.pause.paused.detail" : "operator.pause.running.detail"),
    );
    state.dataset.paused = String(paused);
    pause.hidden = paused;
    unpause.hidden = !paused;
  };
  const act = (btn, fn, sent) =>
    btn.addEventListener("click", () =>
      busy(btn, slot, async () => {
        await requireRole("PAUSER_ROLE", t(`operator.action.${fn}`));
        const r = await sendEscrow(fn, []);
        done(slot, t(sent), r);
        await show();
        onDone?.();
      }),
    );
  act(pause, "pause", "operator.pause.done");
  act(unpause, "unpause", "operator.unpause.done");
  const card = h(
    "div",
    { class: "card", "data-test": "op-pause-card" },
    h("h2", null, t("operator.pause.title")),
    state,
    slot,
    h("div", { class: "row" }, pause, unpause),
  );
  card.refresh = reloader(slot, show);
  card.refresh();
  return card;
}

/** An address from a text field, checksummed; a user error saying what is wrong otherwise. */
function addressOf(input, what) {
  const v = input.value.trim();
  if (!isAddress(v, { strict: false })) throw userError(t("operator.badAddress", { what }));
  const address = getAddress(v);
  if (address === ZERO_ADDRESS) throw userError(t("operator.badAddress", { what }));
  return address;
}

/** Appoint and remove arbiters (the admin role of ARBITER_ROLE). */
function arbiterCard(onDone) {
  const input = h("input", {
    placeholder: "0x…",
    autocomplete: "off",
    spellcheck: "false",
    "data-test": "op-arbiter-address",
  });
  const slot = messageSlot({ "data-test": "op-arbiter-message" });
  const grant = h("button", { class: "btn", "data-test": "op-arbiter-grant" }, t("operator.arbiter.grant"));
  const revoke = h("button", { class: "btn quiet", "data-test": "op-arbiter-revoke" }, t("operator.arbiter.revoke"));
  const act = (btn, fn) =>
    btn.addEventListener("click", () =>
      busy(btn, slot, async () => {
        const who = addressOf(input, t("operator.arbiter.what"));
        const ids = await roles();
        const adminRole = String(await read("getRoleAdmin", [ids.ARBITER_ROLE])).toLowerCase();
        const adminName = Object.entries(ids).find(([, id]) => id === adminRole)?.[0] || "DEFAULT_ADMIN_ROLE";
        await requireRole(adminName, t(`operator.action.${fn}`));
        const has = await holds("ARBITER_ROLE", who);
        if (fn === "grantRole" && has) return slot.show("info", t("operator.arbiter.already", { address: who }));
        if (fn === "revokeRole" && !has) return slot.show("info", t("operator.arbiter.notOne", { address: who }));
        const r = await sendEscrow(fn, [ids.ARBITER_ROLE, who]);
        done(
          slot,
          t(fn === "grantRole" ? "operator.arbiter.granted" : "operator.arbiter.revoked", { address: who }),
          r,
        );
        onDone?.();
      }),
    );
  act(grant, "grantRole");
  act(revoke, "revokeRole");
  return h(
    "div",
    { class: "card", "data-test": "op-arbiter-card" },
    h("h2", null, t("operator.arbiter.title")),
    h("p", { class: "small muted" }, t("operator.arbiter.intro")),
    field(t("operator.arbiter.address"), input),
    slot,
    h("div", { class: "row" }, grant, revoke),
  );
}

/**
 * A card's `refresh`: runs `load`, says in `slot` when it fails (with Retry, when trying again
 * may work), and takes that failure away once a load works again (leaving an action's outcome).
 */
function reloader(slot, load) {
  let failed = false;
  const run = () =>
    load().then(
      () => {
        if (failed) slot.clear();
        failed = false;
      },
      (err) => {
        failed = true;
        slot.error(err, run);
      },
    );
  return run;
}

/** The API's refusal of an attestation document, in the reader's words. */
function publishRefusal(err) {
  const code = err instanceof ApiError ? err.body?.code : null;
  if (code === "attestation_not_cited") return t("operator.licence.publish.notCited");
  if (code === "attestation_mismatch") return t("operator.licence.publish.mismatch");
  if (code === "attestation_too_large") return t("operator.licence.publish.tooLarge");
  return describeError(err).text;
}

/**
 * Publish the attestation document of a licence just granted (PUT /attestations/{hash}, no
 * sign-in: the server keeps it only when its keccak256 is the hash the chain now cites for
 * (supplier, sku)). Never throws: says whether it was kept, and why not.
 */
async function publishDocument(file, hash, supplier, sku) {
  const query = new URLSearchParams({ name: file.name.slice(0, 200), supplier, sku });
  try {
    await put(`/attestations/${hash}?${query}`, file, {
      headers: { "Content-Type": file.type || "application/octet-stream" },
    });
    return { ok: true, text: t("operator.licence.published") };
  } catch (err) {
    return { ok: false, text: t("operator.licence.notPublished", { reason: publishRefusal(err) }) };
  }
}

/** Grant and revoke a supplier's licence for a product (RIGHTS_ADMIN_ROLE). */
function licenceCard(onDone) {
  const supplier = h("input", {
    placeholder: "0x…",
    autocomplete: "off",
    spellcheck: "false",
    "data-test": "op-licence-supplier",
  });
  const product = h("input", {
    placeholder: "steam-wallet-50",
    autocomplete: "off",
    "data-test": "op-licence-product",
  });
  const file = h("input", { type: "file", "data-test": "op-licence-file" });
  const skuInfo = h("div", { class: "small muted", "data-test": "op-licence-sku" }, t("operator.licence.skuHint"));
  const hashInfo = h("div", { class: "small muted", "data-test": "op-licence-hash" }, t("operator.licence.fileHint"));
  // The line keeps its height while empty: a pill arriving from the chain must not move the
  // buttons under a pointer that is pressing one (a click whose press and release land on
  // different elements is lost).
  const current = h("div", { class: "small line-slot", "data-test": "op-licence-current" });
  const slot = messageSlot({ "data-test": "op-licence-message" });
  const grant = h("button", { class: "btn", "data-test": "op-licence-grant" }, t("operator.licence.grant"));
  const revoke = h("button", { class: "btn quiet", "data-test": "op-licence-revoke" }, t("operator.licence.revoke"));
  let documentHash = null;
  let documentFile = null;

  const skuOf = () => {
    const name = product.value.trim();
    if (!/^[\w.-]{2,64}$/.test(name)) throw userError(t("operator.licence.badName"));
    return { name, sku: keccakText(name) };
  };
  let checking = 0;
  /** Show the sku and what the chain holds now for (supplier, sku), when both are valid. */
  const check = async () => {
    const mine = ++checking;
    let sku;
    try {
      ({ sku } = skuOf());
    } catch {
      replace(current);
      replace(skuInfo, t("operator.licence.skuHint"));
      return;
    }
    replace(skuInfo, tn("operator.licence.sku", { sku: h("span", { class: "mono", title: sku }, short(sku, 10, 6)) }));
    if (!isAddress(supplier.value.trim(), { strict: false })) return replace(current);
    const att = String(await read("authorization", [getAddress(supplier.value.trim()), sku]).catch(() => zeroHash));
    if (mine !== checking) return; // a newer check answers for newer fields
    replace(
      current,
      BigInt(att) === 0n
        ? pill(t("operator.licence.none"), "")
        : pill(t("operator.licence.holds", { hash: short(att, 10, 4) }), "ok", { title: att }),
    );
  };
  // As typed, not on leaving the field: leaving it by pressing Grant would redraw the form
  // under the press.
  supplier.addEventListener("input", check);
  product.addEventListener("input", check);
  file.addEventListener("change", async () => {
    documentHash = null;
    documentFile = null;
    const f = file.files?.[0];
    if (!f) return replace(hashInfo, t("operator.licence.fileHint"));
    documentHash = keccak256(new Uint8Array(await f.arrayBuffer()));
    documentFile = f;
    replace(
      hashInfo,
      tn("operator.licence.fileHash", {
        file: f.name,
        size: f.size,
        hash: h("span", { class: "mono", "data-test": "op-licence-hash-value" }, documentHash),
      }),
    );
  });
  const act = (btn, granting) =>
    btn.addEventListener("click", () =>
      busy(btn, slot, async () => {
        const who = addressOf(supplier, t("operator.licence.what"));
        const { name, sku } = skuOf();
        if (granting && !documentHash) throw userError(t("operator.licence.noFile"));
        await requireRole(
          "RIGHTS_ADMIN_ROLE",
          t(granting ? "operator.action.authorize" : "operator.action.deauthorize"),
        );
        const attestation = granting ? documentHash : zeroHash;
        const chosen = granting ? documentFile : null;
        const r = await sendEscrow("authorize", [who, sku, attestation]);
        if (!granting) done(slot, t("operator.licence.revoked", { supplier: short(who), name }), r);
        else {
          // Only now, with the grant mined, does a licence cite the hash: publish the document.
          const granted = t("operator.licence.granted", {
            supplier: short(who),
            name,
            hash: short(attestation, 10, 4),
          });
          const published = await publishDocument(chosen, attestation, who, sku);
          slot.show(
            published.ok ? "ok" : "warn",
            granted,
            h(
              "div",
              null,
              txLink(r.hash, Number(r.receipt.blockNumber)),
              h("div", { "data-test": "op-licence-published", "data-published": String(published.ok) }, published.text),
            ),
          );
        }
        await check();
        onDone?.();
      }),
    );
  act(grant, true);
  act(revoke, false);
  return h(
    "div",
    { class: "card", "data-test": "op-licence-card" },
    h("h2", null, t("operator.licence.title")),
    h("p", { class: "small muted" }, t("operator.licence.intro")),
    field(t("operator.licence.supplier"), supplier),
    field(t("operator.licence.product"), product, skuInfo),
    field(t("operator.licence.file"), file, hashInfo),
    current,
    slot,
    h("div", { class: "row" }, grant, revoke),
  );
}

// ------------------------------------------------------------------ fees and windows

/** The contract's bounds on its Config (CodeEscrow._setConfig). */
const BOUNDS = {
  bps: 10_000,
  fees: 5_000,
  arbitration: [3600, 90 * 86400],
  minDelivery: 60,
  minDispute: 3600,
  window: 365 * 86400,
};
/** The units a time window is entered in: [catalog name, seconds]. */
const UNITS = [
  ["minutes", 60],
  ["hours", 3600],
  ["days", 86400],
];

/** Basis points as a percentage in the reader's digits ("2.5%"). */
function percent(value) {
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 2 }).format(Number(value) / 10_000);
}

/** A labelled field holding several controls side by side. */
function fieldRow(label, controls, hint) {
  const [first] = controls;
  first.id = first.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  return h("div", { class: "field" }, h("label", { for: first.id }, label), h("div", { class: "row" }, controls), hint);
}

/** A setting's refusal: the broken bound, said before anything is sent; the input is marked. */
function refuse(input, text) {
  input?.setAttribute("aria-invalid", "true");
  input?.focus();
  return userError(text, t("operator.settings.nothingSent"));
}

/** A percentage input (the contract's basis points underneath). */
function percentInput(key, label, hintKey) {
  const input = h("input", {
    type: "number",
    min: "0",
    max: "100",
    step: "0.01",
    inputmode: "decimal",
    "data-test": `op-settings-${key}`,
  });
  const shown = h("span", { "data-test": `op-settings-${key}-bps` });
  const hint = h("div", { class: "hint" }, shown, " · ", t(hintKey));
  const parse = () => {
    const text = input.value.trim();
    const n = Number(text);
    if (!text || !Number.isFinite(n) || n < 0) throw refuse(input, t("operator.settings.bad.percent", { what: label }));
    const bps = Math.round(n * 100);
    if (Math.abs(n * 100 - bps) > 1e-6) throw refuse(input, t("operator.settings.bad.percentDigits", { what: label }));
    return bps;
  };
  const update = () => {
    let bps = null;
    try {
      bps = parse();
    } catch {
      bps = null;
    }
    replace(shown, bps === null ? "—" : t("operator.settings.bps", { count: bps }));
  };
  input.addEventListener("input", () => {
    input.removeAttribute("aria-invalid");
    update();
  });
  return {
    input,
    label,
    node: fieldRow(label, [input, h("span", null, "%")], hint),
    set(bps) {
      input.value = String(Number(bps) / 100);
      input.removeAttribute("aria-invalid");
      update();
    },
    bps: parse,
  };
}

/** A time window: a number and its unit (minutes, hours, days). */
function windowInput(key, label, hintText) {
  const input = h("input", {
    type: "number",
    min: "0",
    step: "any",
    inputmode: "decimal",
    "data-test": `op-settings-${key}`,
  });
  const unit = h(
    "select",
    { "data-test": `op-settings-${key}-unit`, "aria-label": t("operator.settings.unit"), style: { width: "auto" } },
    UNITS.map(([name, seconds]) => h("option", { value: String(seconds) }, t(`operator.settings.unit.${name}`))),
  );
  const shown = h("span", { "data-test": `op-settings-${key}-duration` });
  const parse = () => {
    const text = input.value.trim();
    const n = Number(text);
    if (!text || !Number.isFinite(n) || n < 0) throw refuse(input, t("operator.settings.bad.window", { what: label }));
    return Math.round(n * Number(unit.value));
  };
  const update = () => {
    let seconds = null;
    try {
      seconds = parse();
    } catch {
      seconds = null;
    }
    replace(shown, seconds === null ? "—" : duration(seconds));
  };
  for (const el of [input, unit])
    el.addEventListener(el === unit ? "change" : "input", () => {
      input.removeAttribute("aria-invalid");
      update();
    });
  return {
    input,
    label,
    node: fieldRow(label, [input, unit], h("div", { class: "hint" }, shown, " · ", hintText)),
    set(seconds) {
      const s = Number(seconds);
      const [, size] = [...UNITS].reverse().find(([, n]) => s % n === 0 && s >= n) || UNITS[0];
      unit.value = String(size);
      input.value = String(s / size);
      input.removeAttribute("aria-invalid");
      update();
    },
    seconds: parse,
  };
}

/** The escrow's fees and time windows (setConfig, DEFAULT_ADMIN_ROLE), checked here first. */
function settingsCard(onDone) {
  const recipient = h("input", {
    placeholder: "0x…",
    autocomplete: "off",
    spellcheck: "false",
    "data-test": "op-settings-feeRecipient",
  });
  const span = (min, max) => ({ min: duration(min), max: duration(max) });
  const fee = percentInput("feeBps", t("operator.settings.fee"), "operator.settings.fee.hint");
  const minBond = percentInput("minBondBps", t("operator.settings.minBond"), "operator.settings.minBond.hint");
  const arbitration = windowInput(
    "arbitrationWindow",
    t("operator.settings.arbitration"),
    t("operator.settings.arbitration.hint", span(...BOUNDS.arbitration)),
  );
  const minDelivery = windowInput(
    "minDeliveryWindow",
    t("operator.settings.minDelivery"),
    t("operator.settings.minDelivery.hint", span(BOUNDS.minDelivery, BOUNDS.window)),
  );
  const maxDelivery = windowInput(
    "maxDeliveryWindow",
    t("operator.settings.maxDelivery"),
    t("operator.settings.maxDelivery.hint", { max: duration(BOUNDS.window) }),
  );
  const minDispute = windowInput(
    "minDisputeWindow",
    t("operator.settings.minDispute"),
    t("operator.settings.minDispute.hint", span(BOUNDS.minDispute, BOUNDS.window)),
  );
  const maxDispute = windowInput(
    "maxDisputeWindow",
    t("operator.settings.maxDispute"),
    t("operator.settings.maxDispute.hint", { max: duration(BOUNDS.window) }),
  );
  const slot = messageSlot({ "data-test": "op-settings-message" });
  const save = h("button", { class: "btn", "data-test": "op-settings-save" }, t("operator.settings.save"));
  const reset = h("button", { class: "btn quiet", "data-test": "op-settings-reset" }, t("operator.settings.reset"));
  let current = null;

  const load = async () => {
    const c = await read("config");
    current = c;
    recipient.value = getAddress(c.feeRecipient);
    recipient.removeAttribute("aria-invalid");
    fee.set(c.feeBps);
    minBond.set(c.minBondBps);
    arbitration.set(c.arbitrationWindow);
    minDelivery.set(c.minDeliveryWindow);
    maxDelivery.set(c.maxDeliveryWindow);
    minDispute.set(c.minDisputeWindow);
    maxDispute.set(c.maxDisputeWindow);
  };

  /** A window within [min, max], or the bound it breaks; `minName` names a lower bound that is a setting. */
  const within = (w, value, min, max, minName) => {
    if (value < min)
      throw refuse(
        w.input,
        minName
          ? t("operator.settings.bad.belowSetting", { what: w.label, other: minName, min: duration(min) })
          : t("operator.settings.bad.min", { what: w.label, min: duration(min) }),
      );
    if (value > max) throw refuse(w.input, t("operator.settings.bad.max", { what: w.label, max: duration(max) }));
  };

  /** The Config struct from the form, every bound of the contract checked (the first broken one named). */
  const collect = () => {
    recipient.removeAttribute("aria-invalid");
    let feeRecipient;
    try {
      feeRecipient = addressOf(recipient, t("operator.settings.recipient.what"));
    } catch (err) {
      throw refuse(recipient, err.userMessage);
    }
    const cfg = { feeRecipient };
    for (const [name, p] of [
      ["feeBps", fee],
      ["minBondBps", minBond],
    ]) {
      cfg[name] = p.bps();
      if (cfg[name] > BOUNDS.bps) throw refuse(p.input, t("operator.settings.bad.over100", { what: p.label }));
    }
    if (cfg.feeBps > BOUNDS.fees)
      throw refuse(
        fee.input,
        t("operator.settings.bad.fees", { total: percent(cfg.feeBps), max: percent(BOUNDS.fees) }),
      );
    cfg.arbitrationWindow = arbitration.seconds();
    within(arbitration, cfg.arbitrationWindow, ...BOUNDS.arbitration);
    cfg.minDeliveryWindow = minDelivery.seconds();
    within(minDelivery, cfg.minDeliveryWindow, BOUNDS.minDelivery, BOUNDS.window);
    cfg.maxDeliveryWindow = maxDelivery.seconds();
    within(maxDelivery, cfg.maxDeliveryWindow, cfg.minDeliveryWindow, BOUNDS.window, minDelivery.label);
    cfg.minDisputeWindow = minDispute.seconds();
    within(minDispute, cfg.minDisputeWindow, BOUNDS.minDispute, BOUNDS.window);
    cfg.maxDisputeWindow = maxDispute.seconds();
    within(maxDispute, cfg.maxDisputeWindow, cfg.minDisputeWindow, BOUNDS.window, minDispute.label);
    return cfg;
  };

  save.addEventListener("click", () =>
    busy(save, slot, async () => {
      const cfg = collect();
      if (current && Object.keys(cfg).every((k) => String(cfg[k]) === String(current[k])))
        return slot.show("info", t("operator.settings.unchanged"));
      await requireRole("DEFAULT_ADMIN_ROLE", t("operator.action.setConfig"));
      const r = await sendEscrow("setConfig", [cfg]);
      done(
        slot,
        t("operator.settings.done", {
          fee: percent(cfg.feeBps),
          arbitration: duration(cfg.arbitrationWindow),
        }),
        r,
      );
      await load();
      onDone?.();
    }),
  );
  reset.addEventListener("click", () => busy(reset, slot, load));
  const card = h(
    "div",
    { class: "card", "data-test": "op-settings-card" },
    h("h2", null, t("operator.settings.title")),
    h("p", { class: "small muted" }, t("operator.settings.intro")),
    h(
      "div",
      { class: "cols" },
      h(
        "div",
        null,
        field(t("operator.settings.recipient"), recipient, t("operator.settings.recipient.hint")),
        fee.node,
        minBond.node,
      ),
      h("div", null, arbitration.node, minDelivery.node, maxDelivery.node, minDispute.node, maxDispute.node),
    ),
    slot,
    h("div", { class: "row" }, save, reset),
  );
  card.refresh = reloader(slot, load);
  card.refresh();
  return card;
}

// ------------------------------------------------------------------ payment tokens

/** The ERC-20 tokens the escrow accepts (from the overview), and allowing or stopping one. */
function tokensCard(onDone) {
  const body = h("tbody", { "data-test": "op-tokens" });
  const input = h("input", {
    placeholder: "0x…",
    autocomplete: "off",
    spellcheck: "false",
    "data-test": "op-token-address",
  });
  const slot = messageSlot({ "data-test": "op-token-message" });
  const allow = h("button", { class: "btn", "data-test": "op-token-allow" }, t("operator.tokens.allow"));
  const disallow = h("button", { class: "btn quiet", "data-test": "op-token-disallow" }, t("operator.tokens.disallow"));
  let shown = null;
  const show = async (tokens) => {
    const sig = JSON.stringify([locale(), tokens]);
    if (sig === shown) return;
    await learnTokens(tokens);
    shown = sig;
    replace(
      body,
      tokens.length
        ? tokens.map((token) => {
            const info = tokenInfoCached.get(token.toLowerCase());
            return h(
              "tr",
              { "data-test": "op-token-row", "data-token": getAddress(token) },
              h("td", { "data-label": t("operator.tokens.col.symbol"), "data-test": "op-token-symbol" }, info.symbol),
              h(
                "td",
                { "data-label": t("operator.tokens.col.decimals"), class: "num", "data-test": "op-token-decimals" },
                count(info.decimals),
              ),
              h("td", { "data-label": t("operator.tokens.col.address") }, addr(getAddress(token))),
            );
          })
        : h("tr", null, h("td", { colspan: 3, class: "muted" }, t("operator.tokens.none"))),
    );
  };
  const act = (btn, allowed) =>
    btn.addEventListener("click", () =>
      busy(btn, slot, async () => {
        const token = addressOf(input, t("operator.tokens.what"));
        const code = await net.client.getCode({ address: token });
        if (!code || code === "0x") throw userError(t("operator.tokens.noCode", { address: token }));
        await requireRole(
          "DEFAULT_ADMIN_ROLE",
          t(allowed ? "operator.action.allowToken" : "operator.action.disallowToken"),
        );
        const r = await sendEscrow("setTokenAllowed", [token, allowed]);
        const { symbol } = await tokenInfo(token);
        done(
          slot,
          t(allowed ? "operator.tokens.allowed" : "operator.tokens.disallowed", { symbol, address: token }),
          r,
        );
        onDone?.();
      }),
    );
  act(allow, true);
  act(disallow, false);
  const card = h(
    "div",
    { class: "card", "data-test": "op-tokens-card" },
    h("h2", null, t("operator.tokens.title")),
    h("p", { class: "small muted" }, t("operator.tokens.intro")),
    operatorTable("tokens", ["symbol", "decimals", "address"], body),
    field(t("operator.tokens.address"), input),
    slot,
    h("div", { class: "row" }, allow, disallow),
  );
  /** Show the tokens the overview lists (redrawn only when they changed). */
  card.update = (tokens) => show(tokens).catch((err) => slot.error(err));
  return card;
}

// ------------------------------------------------------------------ fee income

/** The platform's fee income per token (feesOf) and its withdrawal (withdrawFees). */
function feesCard(onDone) {
  const body = h("tbody", { "data-test": "op-fees" });
  const to = h("input", {
    placeholder: "0x…",
    autocomplete: "off",
    spellcheck: "false",
    value: wallet.address || "",
    "data-test": "op-fees-to",
  });
  const slot = messageSlot({ "data-test": "op-fees-message" });
  let tokens = [ZERO_ADDRESS];
  let shown = null;
  const withdraw = (btn, token) =>
    busy(btn, slot, async () => {
      const dest = addressOf(to, t("operator.fees.what"));
      await requireRole("DEFAULT_ADMIN_ROLE", t("operator.action.withdrawFees"));
      const amount = await read("feesOf", [token]);
      if (amount === 0n)
        return slot.show(
          "info",
          t("operator.fees.nothing", { symbol: tokenInfoCached.get(token.toLowerCase()).symbol }),
        );
      const r = await sendEscrow("withdrawFees", [token, dest]);
      done(slot, t("operator.fees.withdrawn", { amount: intlAmount(amount, token), to: dest }), r);
      onDone?.();
    }).then(() => card.refresh());
  const load = async () => {
    const list = tokens;
    await learnTokens(list);
    const balances = await Promise.all(list.map((token) => read("feesOf", [token])));
    const sig = JSON.stringify([locale(), list, balances.map(String)]);
    if (sig === shown) return;
    shown = sig;
    replace(
      body,
      list.map((token, i) => {
        const button = h(
          "button",
          { class: "btn small", "data-test": "op-fees-withdraw", disabled: balances[i] === 0n },
          t("operator.fees.withdraw"),
        );
        button.addEventListener("click", () => withdraw(button, token));
        return h(
          "tr",
          { "data-test": "op-fees-row", "data-token": getAddress(token), "data-amount": String(balances[i]) },
          h(
            "td",
            { "data-label": t("operator.fees.col.token") },
            token === ZERO_ADDRESS
              ? t("operator.fees.native", { symbol: tokenInfoCached.get(token).symbol })
              : addr(getAddress(token), tokenInfoCached.get(token.toLowerCase()).symbol),
          ),
          h(
            "td",
            { "data-label": t("operator.fees.col.amount"), class: "num", "data-test": "op-fees-amount" },
            intlAmount(balances[i], token),
          ),
          h("td", { "data-label": "" }, button),
        );
      }),
    );
  };
  const card = h(
    "div",
    { class: "card", "data-test": "op-fees-card" },
    h("h2", null, t("operator.fees.title")),
    h("p", { class: "small muted" }, t("operator.fees.intro")),
    operatorTable("fees", ["token", "amount", null], body),
    field(t("operator.fees.to"), to, t("operator.fees.to.hint")),
    slot,
  );
  /** Read the balances again (redrawn only when they changed). */
  card.refresh = reloader(slot, load);
  /** The tokens to show: the chain's coin, then every other token named, each once. */
  card.update = (named) => {
    const seen = new Set();
    tokens = [ZERO_ADDRESS, ...named].filter((token) => {
      const key = token.toLowerCase();
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    return card.refresh();
  };
  return card;
}

// ------------------------------------------------------------------ the page

/** #/operator */
export async function operatorPage(ctx) {
  const title = h("h1", null, t("operator.title"));
  const g = gate(ctx, { needSignIn: true, why: t("operator.why") });
  if (g) return h("section", null, title, g);
  let first;
  try {
    first = await get("/admin/overview", { auth: true });
  } catch (err) {
    if (err instanceof ApiError && err.status === 403)
      return h(
        "section",
        null,
        title,
        h(
          "div",
          { "data-test": "not-operator" },
          message("error", t("operator.notOperator", { address: wallet.address }), t("operator.notOperator.detail")),
        ),
      );
    throw err;
  }
  const [held] = await Promise.all([operatorRoles(wallet.address), roles()]);
  const overview = h("div", { "data-test": "op-overview" });
  const errors = messageSlot();
  const audit = auditCard();
  let refresh = () => {};
  const after = () => {
    refresh();
    audit.refresh();
    fees.refresh();
  };
  const tokens = tokensCard(after);
  const fees = feesCard(after);
  const show = async (o) => {
    await learnTokens([...o.volume.map((v) => v.token), ...o.low_bonds.map((b) => b.token)]);
    replace(overview, overviewView(o));
    overview.dataset.chainTime = String(o.chain_time ?? "");
    const allowed = o.allowed_tokens || [];
    tokens.update(allowed);
    // A token no longer accepted may still hold fees: its volume names it.
    fees.update([...allowed, ...o.volume.map((v) => v.token)]);
  };
  await show(first);
  const pauseBox = pauseCard(after);
  const sign = (o) => JSON.stringify({ ...o, chain_time: undefined });
  let last = sign(first);
  refresh = poll(
    ctx,
    async () => {
      const o = await get("/admin/overview", { auth: true });
      errors.clear();
      if (sign(o) !== last) {
        last = sign(o);
        await show(o);
        pauseBox.refresh();
      }
      await audit.follow();
      return true;
    },
    { interval: 3000, onError: (err, retry) => errors.error(err, retry) },
  );
  audit.refresh();
  return h(
    "section",
    { "data-test": "operator" },
    h(
      "div",
      { class: "spread" },
      title,
      h(
        "span",
        { class: "muted small", "data-test": "op-roles" },
        tn("operator.yourRoles", {
          address: h("span", { class: "mono" }, short(wallet.address)),
          roles: held.map((r) => roleName(r)).join(t("operator.roles.join")) || "—",
        }),
      ),
    ),
    errors,
    h("h2", null, t("operator.glance.title")),
    overview,
    h("div", { class: "cols" }, pauseBox, arbiterCard(after)),
    licenceCard(after),
    h("div", { class: "cols" }, fees, tokens),
    settingsCard(after),
    audit,
  );
}
