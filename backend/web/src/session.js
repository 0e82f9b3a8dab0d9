// The wallet widget in the header, the connect dialog, and the "connect / sign in" gate pages
// show before anything that needs a wallet.
import { logOut, signIn, signedIn } from "./api.js";
import { fmtAmount, net } from "./chain.js";
import { short } from "./fmt.js";
import { t } from "./i18n.js";
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
    t("connect.injected.button"),
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
      h("h3", null, t("connect.injected.title")),
      h("p", { class: "small muted" }, hasInjected() ? t("connect.injected.found") : t("connect.injected.none")),
      injected,
    ),
  );
  if (net.embedded) {
    const useDev = h("button", { class: "btn ghost", "data-test": "connect-dev" }, t("connect.dev.use"));
    useDev.addEventListener("click", () =>
      busy(useDev, slot, async () => {
        connectDev();
        dialog.close();
      }),
    );
    const keyInput = h("input", {
      type: "password",
      placeholder: t("connect.dev.keyPlaceholder"),
      autocomplete: "off",
      spellcheck: "false",
      "data-test": "dev-key",
    });
    const importBtn = h("button", { class: "btn quiet", "data-test": "import-dev-key" }, t("connect.dev.import"));
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
        h("div", { class: "spread" }, h("h3", null, t("connect.dev.title")), pill(t("connect.dev.only"), "dev-label")),
        h("p", { class: "small muted" }, t("connect.dev.explain")),
        useDev,
        h("div", { style: { marginTop: ".7rem" } }, field(t("connect.dev.importLabel"), keyInput), importBtn),
      ),
    );
  }
  const dialog = modal(t("connect.title"), ...parts);
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
        h("button", { class: "btn", "data-test": "connect", onclick: () => connectDialog() }, t("wallet.connect")),
      );
      return;
    }
    const wrong = wallet.kind === "injected" && wallet.chainId !== net.chainId;
    const balance = h("span", { class: "muted small", "data-test": "wallet-balance" }, "");
    const items = [
      wallet.kind === "dev" ? pill(t("wallet.dev.label"), "dev-label", { title: t("wallet.dev.title") }) : null,
      h("span", { class: "addr", title: wallet.address, "data-test": "wallet-address" }, short(wallet.address)),
      wrong ? null : balance,
    ];
    if (wrong) {
      const sw = h("button", { class: "btn small danger", "data-test": "switch-network" }, t("wallet.switchNetwork"));
      sw.addEventListener("click", () => busy(sw, null, switchNetwork));
      items.push(
        pill(t("wallet.wrongNetwork.pill", { chainId: String(wallet.chainId) }), "bad", {
          "data-test": "wrong-network",
        }),
        sw,
      );
    }
    if (wallet.kind === "dev") {
      const fund = h(
        "button",
        { class: "btn small quiet", "data-test": "fund-dev", title: t("wallet.fund.title") },
        t("wallet.fund.button"),
      );
      fund.addEventListener("click", () => busy(fund, null, () => fundDev("100")));
      const menu = h(
        "button",
        { class: "btn small quiet", title: t("wallet.key.title"), onclick: () => connectDialog() },
        t("wallet.key.button"),
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
        t("wallet.disconnect"),
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
  root.refresh = render;
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
      h("h2", null, t("connect.title")),
      h("p", { class: "muted" }, why || t("gate.needsWallet")),
      h("button", { class: "btn", onclick: () => connectDialog() }, t("wallet.connect")),
    );
  }
  if (wallet.kind === "injected" && wallet.chainId !== net.chainId) {
    const slot = messageSlot();
    slot.error(wrongNetworkError(wallet.chainId));
    const sw = h("button", { class: "btn" }, t("wallet.switchNetwork"));
    sw.addEventListener("click", () =>
      busy(sw, slot, async () => {
        await switchNetwork();
        ctx.refresh();
      }),
    );
    return h("div", { class: "card", "data-test": "gate-network" }, h("h2", null, t("gate.wrongNetwork")), slot, sw);
  }
  if (needSignIn && !signedIn()) {
    const slot = messageSlot();
    const btn = h("button", { class: "btn", "data-test": "sign-in" }, t("gate.signIn.button"));
    btn.addEventListener("click", () =>
      busy(btn, slot, async () => {
        await signIn();
        ctx.refresh();
      }),
    );
    return h(
      "div",
      { class: "card", "data-test": "gate-sign-in" },
      h("h2", null, t("gate.signIn.title")),
      h("p", { class: "muted" }, why || t("gate.signIn.why")),
      slot,
      btn,
    );
  }
  return null;
}
