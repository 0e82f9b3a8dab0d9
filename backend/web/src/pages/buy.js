// Buying: choose a quantity, derive the per-order key from a wallet signature, pay into escrow,
// and go to the order page. A payment in flight survives a reload or a lost connection.
import { get } from "../api.js";
import { ERC20_ABI, ZERO_ADDRESS, explain, fmtAmount, net, read, tokenInfo, userError } from "../chain.js";
import { couponRefusal, couponTerms, couponVerdict, readCoupon } from "../coupon-view.js";
import { CouponError, couponArgs, couponPrice } from "../coupons.js";
import { addr, bps, duration, onChainBadge, product, when } from "../fmt.js";
import { t, tn } from "../i18n.js";
import { addPending, pendingPayments, removePending, resolvePending, updatePending } from "../pending.js";
import { holdOrderKey, markBoughtHere, orderKeyFromSignature, orderKeyMessage } from "../release.js";
import { connectDialog } from "../session.js";
import { poll, reportConnection } from "../status.js";
import { listingTiers, tierTable, tierUnitPrice } from "../tiers.js";
import { busy, field, h, message, messageSlot, pill, replace } from "../ui.js";
import { nativeBalance, requireWallet, sendEscrow, signText, wallet } from "../wallet.js";

/**
 * Check the quantity field; returns the number or throws a user error. `cap` is the most codes
 * one order may hold (32 for a listing delivered on-chain), or null.
 */
export function checkQuantity(raw, stock, cap = null) {
  const text = String(raw).trim();
  if (!/^\d+$/.test(text) || Number(text) < 1) throw userError(t("buy.quantity.whole"));
  const q = Number(text);
  if (cap !== null && cap <= stock && q > cap)
    throw userError(t("buy.quantity.aboveCap", { count: cap }), null, { aboveCap: true });
  if (q > stock)
    throw userError(t("buy.quantity.aboveStock", { count: stock, stock: String(stock) }), null, { aboveStock: true });
  if (q > 0xffffffff) throw userError(t("buy.quantity.tooLarge"));
  return q;
}

/** A card for payments in flight of the connected wallet, resolving each one. */
export function pendingCard(ctx) {
  const box = h("div", { "data-test": "pending-payments" });
  if (!wallet.address) return box;
  const entries = pendingPayments(wallet.address);
  if (!entries.length) return box;
  const check = async () => {
    const rows = [];
    let open = 0;
    for (const e of pendingPayments(wallet.address)) {
      const r = await resolvePending(e);
      if (r.state === "paid") {
        removePending(e.id);
        markBoughtHere(r.orderId, e.buyer);
        rows.push(
          message(
            "ok",
            t("buy.pending.paid", { quantity: e.quantity, listing: String(e.listingId), order: String(r.orderId) }),
            h("a", { href: `#/order/${r.orderId}`, "data-test": "recovered-order" }, t("buy.pending.open")),
          ),
        );
      } else if (r.state === "failed" || r.state === "unsent") {
        removePending(e.id);
        rows.push(
          message(
            "warn",
            r.state === "failed"
              ? t("buy.pending.reverted", { listing: String(e.listingId) })
              : t("buy.pending.unsent", { listing: String(e.listingId) }),
          ),
        );
      } else {
        open += 1;
        rows.push(
          message(
            "info",
            e.txHash
              ? t("buy.pending.waitingTx", {
                  quantity: e.quantity,
                  listing: String(e.listingId),
                  tx: `${e.txHash.slice(0, 10)}…`,
                })
              : t("buy.pending.waiting", { quantity: e.quantity, listing: String(e.listingId) }),
          ),
        );
      }
    }
    replace(box, rows);
    return open > 0;
  };
  poll(ctx, check, { interval: 1500 });
  return box;
}

/**
 * The route #/buy/<listingId>[?ref=<reseller>][&coupon=<text>] (or ?coupon=<text> alone): the
 * buy page, with the coupon of a share link (its text, as the link carries it).
 */
export function buyRoute(ctx, listingId, reseller, couponInShop, couponAlone) {
  const raw = couponInShop ?? couponAlone;
  let coupon = raw ?? "";
  try {
    coupon = decodeURIComponent(coupon);
  } catch {
    // not percent-encoded after all: the page says the text is not a coupon
  }
  return buyPage(ctx, listingId, reseller, coupon);
}

/**
 * #/buy/<listingId>, or #/buy/<listingId>?ref=<reseller>: bought in that reseller's shop (分站)
 * at the shop's price, read from the chain (the escrow charges it, so nothing else may show it).
 * `couponText` fills the coupon field (a coupon from a share link): the page checks it against
 * the chain, shows the price it leaves, and pays with `buyWithCoupon`.
 */
export async function buyPage(ctx, listingId, reseller, couponText = "") {
  const l = await get(`/catalog/listings/${listingId}`);
  await tokenInfo(l.token);
  const p = product(l);
  const stock = Number(l.stock);
  // An order of a listing delivered on-chain holds at most 32 codes (buy reverts above it).
  const cap = l.max_quantity_per_order ? Number(l.max_quantity_per_order) : null;
  // The volume tiers come from the chain too: the escrow discounts by them what it charges.
  const [shopPrice, floor, tiers] = await Promise.all([
    reseller ? read("shopPrice", [reseller, BigInt(listingId)]) : null,
    reseller ? read("resellerPrice", [BigInt(listingId)]) : null,
    listingTiers(l, { fromChain: true }),
  ]);
  // A shop that cannot sell the listing now (it does not, the supplier closed it to resellers,
  // or raised its reseller price above the shop's): say so before anything is paid, and offer
  // the supplier's own price. The escrow would refuse the purchase.
  const lid = String(listingId);
  const shopProblem =
    shopPrice === null
      ? null
      : shopPrice === 0n
        ? t("buy.shop.missing", { listing: lid })
        : floor === 0n
          ? t("chain.revert.EscrowNotDistributable", { listing: lid })
          : floor > shopPrice
            ? t("chain.revert.EscrowBelowResellerPrice", { listing: lid })
            : null;
  const notInShop = shopProblem !== null;
  const price = shopPrice ? shopPrice : BigInt(l.unit_price);
  // What one code costs in an order of `q`: the price less the discount of the tier it reaches,
  // then less a coupon's discounts (in a shop its amount off comes off the reseller price too,
  // and must be below it: the escrow refuses it otherwise, EscrowCouponTooLarge).
  const unitFor = (q, coupon = null) => {
    const unit = tierUnitPrice(price, tiers, q);
    if (!coupon) return unit;
    const floorUnit = shopPrice ? tierUnitPrice(floor, tiers, q) : null;
    try {
      return couponPrice(unit, floorUnit, coupon.discountBps, coupon.amountOff).unit;
    } catch (err) {
      if (err instanceof CouponError) throw couponRefusal(err.key, coupon, { token: l.token, base: err.params.base });
      throw err;
    }
  };
  const qty = h("input", {
    type: "number",
    min: "1",
    max: String(Math.max(cap !== null ? Math.min(stock, cap) : stock, 1)),
    step: "1",
    value: "1",
    inputmode: "numeric",
    "data-test": "quantity",
  });
  const total = h("strong", { "data-test": "total" }, fmtAmount(price, l.token));
  const unitPrice = h("dd", { "data-test": "unit-price" }, fmtAmount(price, l.token));
  const tierSlot = h("dd", { "data-test": "tier-prices" }, tierTable(price, tiers, l.token, { quantity: 1 }));
  const slot = messageSlot({ "data-test": "buy-message" });
  // The coupon: its field, what the chain says of it, and the coupon once it passed.
  const couponInput = h("input", {
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    value: couponText,
    "data-test": "coupon",
  });
  const couponSlot = messageSlot({ "data-test": "coupon-message" });
  /** null: no coupon; {coupon}: it passed; {error}: refused; {checking: true}: being checked. */
  let couponState = null;
  let couponSeq = 0;
  const progress = h("ol", { class: "small stack", "data-test": "buy-steps" });
  // The rights holder withdrew the supplier's licence for this product: no new sales here.
  const unlicensed = l.licensed === false;
  const closed = !l.active || stock === 0 || unlicensed || notInShop;
  const pay = h(
    "button",
    { class: "btn", "data-test": "pay", disabled: closed },
    unlicensed ? t("buy.pay.unlicensed") : stock === 0 ? t("buy.pay.soldOut") : t("buy.pay.button"),
  );

  const refresh = () => {
    slot.clear();
    if (unlicensed) {
      slot.error(userError(t("buy.unlicensed")));
      pay.disabled = true;
      return;
    }
    if (notInShop) {
      replace(slot, [
        message("error", shopProblem),
        h("a", { href: `#/buy/${listingId}`, class: "btn quiet", "data-test": "buy-direct" }, t("buy.shop.direct")),
      ]);
      pay.disabled = true;
      return;
    }
    try {
      const q = checkQuantity(qty.value, stock, cap);
      replace(tierSlot, tierTable(price, tiers, l.token, { quantity: q }));
      const full = unitFor(q);
      unitPrice.textContent = fmtAmount(full, l.token);
      total.textContent = fmtAmount(full * BigInt(q), l.token);
      if (couponState?.error) {
        // A refused coupon pays nothing: the buyer clears it to pay the full price.
        couponSlot.error(userError(t("buy.coupon.refused", { reason: couponState.error.userMessage })));
        pay.disabled = true;
        return;
      }
      if (couponState?.checking) {
        couponSlot.show("info", t("buy.coupon.checking"));
      } else if (couponState?.coupon) {
        const c = couponState.coupon;
        const unit = unitFor(q, c);
        unitPrice.textContent = fmtAmount(unit, l.token);
        total.textContent = fmtAmount(unit * BigInt(q), l.token);
        couponSlot.show(
          "ok",
          t("buy.coupon.applied", { terms: couponTerms(c, l.token), expiry: when(c.expiry) }),
          h(
            "div",
            null,
            h(
              "div",
              { "data-test": "coupon-saving" },
              t("buy.coupon.saving", {
                amount: fmtAmount((full - unit) * BigInt(q), l.token),
                price: fmtAmount(full, l.token),
              }),
            ),
            BigInt(c.buyer) !== 0n ? h("div", null, t("buy.coupon.onlyFor", { buyer: c.buyer })) : null,
          ),
        );
      } else {
        couponSlot.clear();
      }
      pay.disabled = closed;
    } catch (err) {
      total.textContent = "—";
      if (err.coupon) couponSlot.error(userError(t("buy.coupon.refused", { reason: err.userMessage })));
      else slot.error(err);
      pay.disabled = true;
    }
  };
  qty.addEventListener("input", refresh);

  // Check the coupon against the chain whenever it changes (the last check typed wins).
  const checkCoupon = async () => {
    const seq = ++couponSeq;
    const text = couponInput.value.trim();
    if (!text) {
      couponState = null;
      refresh();
      return;
    }
    couponState = { checking: true };
    refresh();
    let next;
    try {
      const coupon = readCoupon(text);
      const error = await couponVerdict(coupon, { listingId, buyer: wallet.address, token: l.token });
      next = error ? { error } : { coupon };
    } catch (err) {
      next = { error: explain(err) };
    }
    if (seq !== couponSeq || !ctx.alive()) return;
    couponState = next;
    refresh();
  };
  couponInput.addEventListener("input", checkCoupon);

  const step = (text) => {
    const li = h("li", null, text, " …");
    progress.append(li);
    return {
      done: () => {
        li.textContent = `${text} ✓`;
      },
    };
  };

  pay.addEventListener("click", () =>
    busy(pay, slot, async () => {
      progress.replaceChildren();
      const quantity = checkQuantity(qty.value, stock, cap);
      if (!wallet.kind) {
        connectDialog();
        throw userError(t("buy.connectToPay"), null, { needsWallet: true });
      }
      await requireWallet();
      const native = l.token === ZERO_ADDRESS;
      // The coupon is checked again against the chain as it is now, for this wallet, before
      // anything is asked of the wallet: a refused one sends nothing.
      let coupon = null;
      if (couponInput.value.trim()) {
        coupon = readCoupon(couponInput.value.trim());
        const error = await couponVerdict(coupon, { listingId, buyer: wallet.address, token: l.token });
        if (error) {
          couponState = { error };
          refresh();
          throw userError(t("buy.coupon.refusedAtPay"));
        }
      }
      const unit = unitFor(quantity, coupon);
      const amount = unit * BigInt(quantity);
      const have = native
        ? await nativeBalance()
        : await net.client.readContract({
            address: l.token,
            abi: ERC20_ABI,
            functionName: "balanceOf",
            args: [wallet.address],
          });
      if (have < amount) {
        throw userError(
          t(native ? "buy.insufficient.native" : "buy.insufficient.token", {
            quantity,
            cost: fmtAmount(amount, l.token),
            have: fmtAmount(have, l.token),
          }),
          null,
          { insufficient: true },
        );
      }
      // No sign-in: the order page reads the order from the chain and the sealed release needs
      // none, so a purchase asks the wallet for the key and the payment only (issue 18).
      let s;
      if (!native) {
        // The allowance goes first: the buy must be the transaction right after the key is made.
        const allowed = await net.client.readContract({
          address: l.token,
          abi: ERC20_ABI,
          functionName: "allowance",
          args: [wallet.address, net.escrow],
        });
        if (allowed < amount) {
          s = step(t("buy.step.approve", { amount: fmtAmount(amount, l.token) }));
          await sendEscrow("approve", [net.escrow, amount], { abi: ERC20_ABI, address: l.token });
          s.done();
        }
      }
      s = step(t("buy.step.key"));
      const nonce = await net.client.getTransactionCount({ address: wallet.address, blockTag: "pending" });
      const fromBlock = await net.client.getBlockNumber();
      const signature = await signText(
        orderKeyMessage({ chainId: net.chainId, escrow: net.escrow, buyer: wallet.address, nonce }),
      );
      const key = await orderKeyFromSignature(signature);
      s.done();
      s = step(t("buy.step.pay", { amount: fmtAmount(amount, l.token) }));
      const entry = addPending({
        listingId: Number(listingId),
        quantity,
        buyer: wallet.address,
        nonce,
        pubkey: key.publicKeyHex,
        fromBlock: Number(fromBlock),
      });
      let result;
      try {
        const args = [BigInt(listingId), quantity, unit, shopPrice ? reseller : ZERO_ADDRESS, key.publicKeyHex];
        result = await sendEscrow(coupon ? "buyWithCoupon" : "buy", coupon ? [...args, ...couponArgs(coupon)] : args, {
          value: native ? amount : undefined,
          nonce,
          onSent: (hash) => updatePending(entry.id, { txHash: hash }),
        });
      } catch (err) {
        if (err.offline) {
          // The payment may be on its way: keep the entry, the page resolves it when back online.
          reportConnection(false);
          replace(pendingSlot, pendingCard(ctx));
        } else if (!pendingPayments(wallet.address).find((e) => e.id === entry.id)?.txHash) {
          removePending(entry.id);
        }
        throw err;
      }
      const paid = result.events.find((e) => e.name === "OrderPaid");
      removePending(entry.id);
      s.done();
      if (result.receipt && paid) {
        const tx = await net.client.getTransaction({ hash: result.hash });
        if (tx.nonce !== nonce) {
          // The wallet chose another nonce: the key cannot be re-derived from the chain, keep it here.
          localStorage.setItem(`kameng.orderkey.${paid.args.orderId}`, JSON.stringify({ nonce }));
        }
        holdOrderKey(paid.args.orderId, key, wallet.address);
        window.location.hash = `#/order/${paid.args.orderId}`;
      }
    }),
  );

  const pendingSlot = h("div");
  replace(pendingSlot, pendingCard(ctx));
  refresh();
  if (couponText) checkCoupon();
  return h(
    "section",
    null,
    h("a", { href: `#/product/${l.sku}`, class: "small" }, `← ${p.name}`),
    h("h1", null, t("buy.title", { name: p.name })),
    pendingSlot,
    h(
      "div",
      { class: "cols" },
      h(
        "div",
        { class: "card" },
        h("h2", null, t("buy.offer.title")),
        h(
          "dl",
          { class: "kv" },
          h("dt", null, t("buy.offer.listing")),
          h("dd", null, `#${l.listing_id}`, l.active ? null : h("span", null, " ", pill(t("buy.offer.closed"), "bad"))),
          h("dt", null, t("buy.offer.supplier")),
          h("dd", null, addr(l.supplier, l.supplier)),
          h("dt", null, t("buy.offer.unitPrice")),
          unitPrice,
          tiers.length ? h("dt", null, t("buy.offer.tiers")) : null,
          tiers.length ? tierSlot : null,
          h("dt", null, t("buy.offer.inStock")),
          h(
            "dd",
            { "data-test": "stock" },
            t("buy.offer.stock", { stock: String(stock), committed: String(l.committed) }),
          ),
          h("dt", null, t("buy.offer.record")),
          h(
            "dd",
            null,
            t("buy.offer.recordText", {
              completed: String(l.supplier_record.orders_completed),
              lost: String(l.supplier_record.disputes_lost),
            }),
          ),
          h("dt", null, t("buy.offer.delivery")),
          h("dd", null, t("buy.offer.deliveryText", { duration: duration(l.delivery_window) })),
          h("dt", null, t("buy.offer.disputes")),
          h("dd", null, t("buy.offer.disputesText", { duration: duration(l.dispute_window), bps: bps(l.bond_bps) })),
          shopPrice ? h("dt", null, t("buy.offer.shop")) : null,
          shopPrice
            ? h(
                "dd",
                { "data-test": "shop" },
                addr(reseller),
                h("div", { class: "small muted" }, t("buy.offer.shopNote")),
              )
            : null,
        ),
      ),
      h(
        "div",
        { class: "card" },
        h("h2", null, t("buy.order.title")),
        field(
          t("buy.order.quantity"),
          qty,
          cap !== null && cap < stock
            ? t("buy.order.capped", { count: cap })
            : t("buy.order.wholesale", { stock: String(stock) }),
        ),
        field(t("buy.coupon.label"), couponInput, t("buy.coupon.hint")),
        couponSlot,
        onChainBadge(l),
        h("p", null, tn("buy.order.total", { total })),
        slot,
        pay,
        progress,
        h("p", { class: "small muted" }, t("buy.order.explain")),
        net.embedded && wallet.kind === "dev"
          ? h("p", { class: "small" }, tn("buy.order.devWallet", { wallet: pill(t("wallet.dev.label"), "dev-label") }))
          : null,
      ),
    ),
  );
}
