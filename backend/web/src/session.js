// The wallet widget in the header, the connect dialog, and the "connect / sign in" gate pages
// show before anything that needs a wallet.
import { logOut, signIn, signedIn } from "./api.js";
import { fmtAmount, net } from "./chain.js";
import { short } from "./fmt.js";
import { busy, field, h, messageSlot, modal, pill, replace } from "./ui.js";
import {
  connectDev,
  connectInjected,
  disconnect,
  fundDev,
  hasInjected,
  importDevKey,
  nativeBalance,
  onWalletChange,
  switchNetwork,
  wallet,
  wrongNetworkError,
} from "./wallet.js";

/** The dialog offering an injected wallet and, on the embedded chain, the development wallet. */
export function connectDialog() {
  const slot = messageSlot();
  const parts = [slot];
  const injected = h(
    "button",
    { class: "btn", "data-test": "connect-injected", disabled: !hasInjected() },
    "Browser wallet",
  );
  injected.addEventListener("click", () =>
    busy(injected, slot, async () => {
      await connectInjected();
      dialog.close();
    }),
  );
  parts.push(
    h(
      "div",
      { class: "card" },
      h("h3", null, "Browser wallet"),
      h(
        "p",
        { class: "small muted" },
        hasInjected()
          ? "MetaMask or any EIP-1193 wallet in this browser."
          : "No browser wallet was found in this browser.",
      ),
      injected,
    ),
  );
  if (net.embedded) {
    const useDev = h("button", { class: "btn ghost", "data-test": "connect-dev" }, "Use the development wallet");
    useDev.addEventListener("click", () =>
      busy(useDev, slot, async () => {
        connectDev();
        dialog.close();
      }),
    );
    const keyInput = h("input", {
      type: "password",
      placeholder: "0x… 64 hex digits",
      autocomplete: "off",
      spellcheck: "false",
      "data-test": "dev-key",
    });
    const importBtn = h("button", { class: "btn quiet", "data-test": "import-dev-key" }, "Import key");
    importBtn.addEventListener("click", () =>
      busy(importBtn, slot, async () => {
        importDevKey(keyInput.value);
        dialog.close();
      }),
    );
    parts.push(
      h(
        "div",
        { class: "card" },
        h("div", { class: "spread" }, h("h3", null, "Development wallet"), pill("embedded chain only", "dev-label")),
        h(
          "p",
          { class: "small muted" },
          "A throw-away key kept in this browser's storage, for kameng's embedded development chain. It can take test coins from the node's faucet. Never use it for anything of value.",
        ),
        useDev,
        h(
          "div",
          { style: { marginTop: ".7rem" } },
          field("Or import a development key (for example one printed by kameng serve)", keyInput),
          importBtn,
        ),
      ),
    );
  }
  const dialog = modal("Connect a wallet", ...parts);
  return dialog;
}

/** The header widget: connect button, or the account with its balance and network. */
export function walletWidget(onAccountChange) {
  const root = h("div", { class: "row", "data-test": "wallet-widget" });
  let lastAddress = null;
  const render = async () => {
    if (!wallet.kind) {
      replace(
        root,
        h("button", { class: "btn", "data-test": "connect", onclick: () => connectDialog() }, "Connect wallet"),
      );
      return;
    }
    const wrong = wallet.kind === "injected" && wallet.chainId !== net.chainId;
    const balance = h("span", { class: "muted small", "data-test": "wallet-balance" }, "");
    const items = [
      wallet.kind === "dev"
        ? pill("DEV WALLET", "dev-label", { title: "Development wallet: embedded chain only" })
        : null,
      h("span", { class: "addr", title: wallet.address, "data-test": "wallet-address" }, short(wallet.address)),
      wrong ? null : balance,
    ];
    if (wrong) {
      const sw = h("button", { class: "btn small danger", "data-test": "switch-network" }, "Switch network");
      sw.addEventListener("click", () => busy(sw, null, switchNetwork));
      items.push(pill(`Wrong network (${wallet.chainId})`, "bad", { "data-test": "wrong-network" }), sw);
    }
    if (wallet.kind === "dev") {
      const fund = h(
        "button",
        { class: "btn small quiet", "data-test": "fund-dev", title: "Take 100 test coins from the development faucet" },
        "+100 ETH",
      );
      fund.addEventListener("click", () => busy(fund, null, () => fundDev("100")));
      const menu = h(
        "button",
        { class: "btn small quiet", title: "Other development key", onclick: () => connectDialog() },
        "Key…",
      );
      items.push(fund, menu);
    }
    items.push(
      h(
        "button",
        {
          class: "btn small quiet",
          "data-test": "disconnect",
          onclick: () => {
            logOut();
            disconnect();
          },
        },
        "Disconnect",
      ),
    );
    replace(root, ...items);
    if (!wrong) {
      nativeBalance()
        .then((b) => {
          balance.textContent = fmtAmount(b, undefined, { digits: 4 });
        })
        .catch(() => {});
    }
  };
  onWalletChange(() => {
    render();
    if (wallet.address !== lastAddress) {
      lastAddress = wallet.address;
      onAccountChange?.();
    }
  });
  render();
  return root;
}

/**
 * What a page shows instead of itself while no wallet is connected, the wallet is on the wrong
 * network, or (with `needSignIn`) the wallet has not signed in. Returns null when ready.
 */
export function gate(ctx, { needSignIn = false, why = "" } = {}) {
  if (!wallet.kind) {
    return h(
      "div",
      { class: "card", "data-test": "gate-connect" },
      h("h2", null, "Connect a wallet"),
      h("p", { class: "muted" }, why || "This page needs a wallet."),
      h("button", { class: "btn", onclick: () => connectDialog() }, "Connect wallet"),
    );
  }
  if (wallet.kind === "injected" && wallet.chainId !== net.chainId) {
    const slot = messageSlot();
    slot.error(wrongNetworkError(wallet.chainId));
    const sw = h("button", { class: "btn" }, "Switch network");
    sw.addEventListener("click", () =>
      busy(sw, slot, async () => {
        await switchNetwork();
        ctx.rerender();
      }),
    );
    return h("div", { class: "card", "data-test": "gate-network" }, h("h2", null, "Wrong network"), slot, sw);
  }
  if (needSignIn && !signedIn()) {
    const slot = messageSlot();
    const btn = h("button", { class: "btn", "data-test": "sign-in" }, "Sign in with Ethereum");
    btn.addEventListener("click", () =>
      busy(btn, slot, async () => {
        await signIn();
        ctx.rerender();
      }),
    );
    return h(
      "div",
      { class: "card", "data-test": "gate-sign-in" },
      h("h2", null, "Sign in"),
      h(
        "p",
        { class: "muted" },
        why || "Sign a message with your wallet to prove it is yours. It costs no gas and moves no funds.",
      ),
      slot,
      btn,
    );
  }
  return null;
}
