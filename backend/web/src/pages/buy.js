// Buying: choose a quantity, derive the per-order key from a wallet signature, pay into escrow,
// and go to the order page. A payment in flight survives a reload or a lost connection.
import { ensureSignedIn, get } from "../api.js";
import { ERC20_ABI, ZERO_ADDRESS, fmtAmount, net, tokenInfo, userError } from "../chain.js";
import { addr, bps, duration, product } from "../fmt.js";
import { addPending, pendingPayments, removePending, resolvePending, updatePending } from "../pending.js";
import { orderKeyFromSignature, orderKeyMessage } from "../release.js";
import { connectDialog } from "../session.js";
import { poll, reportConnection } from "../status.js";
import { busy, field, h, message, messageSlot, pill, replace } from "../ui.js";
import { nativeBalance, requireWallet, sendEscrow, signText, wallet } from "../wallet.js";

/** Check the quantity field; returns the number or throws a user error. */
export function checkQuantity(raw, stock) {
  const text = String(raw).trim();
  if (!/^\d+$/.test(text) || Number(text) < 1) throw userError("Enter a whole number of codes, at least 1.");
  const q = Number(text);
  if (q > stock)
    throw userError(
      `Only ${stock} code${stock === 1 ? "" : "s"} left in stock: choose at most ${stock}. Nothing was charged.`,
      null,
      { aboveStock: true },
    );
  if (q > 0xffffffff) throw userError("That quantity is too large.");
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
        rows.push(
          message(
            "ok",
            `Your payment for ${e.quantity} code(s) of listing #${e.listingId} went through: order ${r.orderId}.`,
            h("a", { href: `#/order/${r.orderId}`, "data-test": "recovered-order" }, "Open the order →"),
          ),
        );
      } else if (r.state === "failed" || r.state === "unsent") {
        removePending(e.id);
        rows.push(
          message(
            "warn",
            r.state === "failed"
              ? `The payment for listing #${e.listingId} reverted on-chain; you were not charged.`
              : `The payment for listing #${e.listingId} was never sent; you were not charged.`,
          ),
        );
      } else {
        open += 1;
        rows.push(
          message(
            "info",
            `A payment for ${e.quantity} code(s) of listing #${e.listingId} is waiting to be mined${e.txHash ? ` (tx ${e.txHash.slice(0, 10)}…)` : ""}.`,
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

/** #/buy/<listingId> */
export async function buyPage(ctx, listingId, referrer) {
  const l = await get(`/catalog/listings/${listingId}`);
  await tokenInfo(l.token);
  const p = product(l);
  const stock = Number(l.stock);
  const price = BigInt(l.unit_price);
  const qty = h("input", {
    type: "number",
    min: "1",
    max: String(Math.max(stock, 1)),
    step: "1",
    value: "1",
    inputmode: "numeric",
    "data-test": "quantity",
  });
  const total = h("strong", { "data-test": "total" }, fmtAmount(price, l.token));
  const slot = messageSlot({ "data-test": "buy-message" });
  const progress = h("ol", { class: "small stack", "data-test": "buy-steps" });
  // The rights holder withdrew the supplier's licence for this product: no new sales here.
  const unlicensed = l.licensed === false;
  const closed = !l.active || stock === 0 || unlicensed;
  const pay = h(
    "button",
    { class: "btn", "data-test": "pay", disabled: closed },
    unlicensed ? "Not licensed" : stock === 0 ? "Sold out" : "Pay into escrow",
  );

  const refresh = () => {
    slot.clear();
    if (unlicensed) {
      slot.error(
        userError(
          "The rights holder has withdrawn this supplier's licence for this product, so kameng no longer sells it here. Nothing was signed or sent.",
        ),
      );
      pay.disabled = true;
      return;
    }
    try {
      const q = checkQuantity(qty.value, stock);
      total.textContent = fmtAmount(price * BigInt(q), l.token);
      pay.disabled = closed;
    } catch (err) {
      total.textContent = "—";
      slot.error(err);
      pay.disabled = true;
    }
  };
  qty.addEventListener("input", refresh);

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
      const quantity = checkQuantity(qty.value, stock);
      if (!wallet.kind) {
        connectDialog();
        throw userError("Connect a wallet to pay.", null, { needsWallet: true });
      }
      await requireWallet();
      const native = l.token === ZERO_ADDRESS;
      const amount = price * BigInt(quantity);
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
          `Insufficient funds: ${quantity} code(s) cost ${fmtAmount(amount, l.token)}${native ? " plus gas" : ""}, and your wallet holds ${fmtAmount(have, l.token)}. Nothing was signed or sent.`,
          null,
          { insufficient: true },
        );
      }
      let s = step("Sign in to follow your order (no gas)");
      await ensureSignedIn();
      s.done();
      if (!native) {
        // The allowance goes first: the buy must be the transaction right after the key is made.
        const allowed = await net.client.readContract({
          address: l.token,
          abi: ERC20_ABI,
          functionName: "allowance",
          args: [wallet.address, net.escrow],
        });
        if (allowed < amount) {
          s = step(`Allow the escrow to take ${fmtAmount(amount, l.token)}`);
          await sendEscrow("approve", [net.escrow, amount], { abi: ERC20_ABI, address: l.token });
          s.done();
        }
      }
      s = step("Sign to create this order's private key (no gas)");
      const nonce = await net.client.getTransactionCount({ address: wallet.address, blockTag: "pending" });
      const fromBlock = await net.client.getBlockNumber();
      const signature = await signText(
        orderKeyMessage({ chainId: net.chainId, escrow: net.escrow, buyer: wallet.address, nonce }),
      );
      const key = await orderKeyFromSignature(signature);
      s.done();
      s = step(`Pay ${fmtAmount(amount, l.token)} into escrow`);
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
        result = await sendEscrow(
          "buy",
          [BigInt(listingId), quantity, price, referrer || ZERO_ADDRESS, key.publicKeyHex],
          {
            value: native ? amount : undefined,
            nonce,
            onSent: (hash) => updatePending(entry.id, { txHash: hash }),
          },
        );
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
        window.location.hash = `#/order/${paid.args.orderId}`;
      }
    }),
  );

  const pendingSlot = h("div");
  replace(pendingSlot, pendingCard(ctx));
  refresh();
  return h(
    "section",
    null,
    h("a", { href: `#/product/${l.sku}`, class: "small" }, `← ${p.name}`),
    h("h1", null, `Buy ${p.name}`),
    pendingSlot,
    h(
      "div",
      { class: "cols" },
      h(
        "div",
        { class: "card" },
        h("h2", null, "The offer"),
        h(
          "dl",
          { class: "kv" },
          h("dt", null, "Listing"),
          h("dd", null, `#${l.listing_id}`, l.active ? null : h("span", null, " ", pill("closed", "bad"))),
          h("dt", null, "Supplier"),
          h("dd", null, addr(l.supplier, l.supplier)),
          h("dt", null, "Unit price"),
          h("dd", { "data-test": "unit-price" }, fmtAmount(price, l.token)),
          h("dt", null, "In stock"),
          h("dd", { "data-test": "stock" }, `${stock} of ${l.committed} committed on-chain`),
          h("dt", null, "Record"),
          h(
            "dd",
            null,
            `${l.supplier_record.orders_completed} orders completed, ${l.supplier_record.disputes_lost} disputes lost`,
          ),
          h("dt", null, "Delivery"),
          h("dd", null, `within ${duration(l.delivery_window)}, or reclaim your payment`),
          h("dt", null, "Disputes"),
          h(
            "dd",
            null,
            `open within ${duration(l.dispute_window)} of delivery; ${bps(l.bond_bps)} of the price is bonded`,
          ),
          referrer ? h("dt", null, "Referred by") : null,
          referrer ? h("dd", null, addr(referrer)) : null,
        ),
      ),
      h(
        "div",
        { class: "card" },
        h("h2", null, "Your order"),
        field("Quantity", qty, `Wholesale welcome: up to ${stock} codes in one order.`),
        h("p", null, "Total: ", total),
        slot,
        pay,
        progress,
        h(
          "p",
          { class: "small muted" },
          "Your payment is held by the escrow contract. The codes are sealed to a key only your wallet can re-create; you check each one against the supplier's on-chain commitment before you confirm.",
        ),
        net.embedded && wallet.kind === "dev"
          ? h("p", { class: "small" }, pill("DEV WALLET", "dev-label"), " paying on the embedded development chain")
          : null,
      ),
    ),
  );
}
