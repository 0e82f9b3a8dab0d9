// Links to URIs that came from the chain or from a user (evidence above all). Anyone can put any
// string on-chain, so a URI becomes a link only when its scheme is https:, ipfs: or data:; anything
// else (javascript:, vbscript:, http:, file:, a relative path…) is shown as text, marked as not a
// link. A data: URI becomes a download typed application/octet-stream: a browser never renders it,
// so an HTML or SVG document inside cannot run. Every page renders such URIs with `uriLink`.
import { t } from "./i18n.js";
import { h, pill } from "./ui.js";

/** The schemes that may become links (lower case, with the colon, as URL.protocol spells them). */
export const LINK_SCHEMES = ["https:", "ipfs:", "data:"];

/** How much of a URI shown as text is kept (data: URIs can be many kilobytes). */
const SHOWN_CHARS = 160;

/**
 * The URI as a browser reads it before judging its scheme (the WHATWG URL parser): C0 control
 * characters and spaces stripped from both ends, tabs and line breaks removed everywhere. So
 * " \x01JaVa\tScRiPt:alert(1)" is read as "JaVaScRiPt:alert(1)".
 */
export function browserForm(uri) {
  return String(uri ?? "")
    .replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, "")
    .replace(/[\t\n\r]/g, "");
}

/** The scheme of a URI as a browser judges it, lower case with its colon ("https:"), or null. */
export function schemeOf(uri) {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(browserForm(uri));
  return m ? `${m[1].toLowerCase()}:` : null;
}

/**
 * What a URI may become: `{ href, download }` when it may be a link (`download` true for data:,
 * whose href is retyped application/octet-stream), or null when it must be shown as text.
 */
export function safeLink(uri) {
  const clean = browserForm(uri);
  const scheme = schemeOf(clean);
  if (!scheme || !LINK_SCHEMES.includes(scheme)) return null;
  if (scheme === "data:") {
    const comma = clean.indexOf(",");
    if (comma < 0) return null;
    const base64 = /;\s*base64\s*$/i.test(clean.slice("data:".length, comma));
    return {
      href: `data:application/octet-stream${base64 ? ";base64" : ""},${clean.slice(comma + 1)}`,
      download: true,
    };
  }
  let url;
  try {
    url = new URL(clean);
  } catch {
    return null;
  }
  // The parser must agree with the judgement above, and an https: link must name a host.
  if (url.protocol !== scheme || (scheme === "https:" && !url.hostname)) return null;
  return { href: url.href, download: false };
}

/** A long URI cut for display: its start and how long it is. */
export function shownUri(uri) {
  const s = String(uri ?? "");
  return s.length <= SHOWN_CHARS ? s : t("links.cut", { start: s.slice(0, SHOWN_CHARS), length: String(s.length) });
}

/**
 * A URI from the chain or a user, rendered safely: an <a> when `safeLink` allows it (https: and
 * ipfs: open in a new tab without a referrer; data: downloads as `fileName`), otherwise a <span>
 * with the URI as text and a "not a link" note. `label` replaces the URI as the visible text of a
 * link; `attrs` go on the element either way (data-test, class).
 */
export function uriLink(uri, { label, fileName, ...attrs } = {}) {
  const link = safeLink(uri);
  if (link) {
    const how = link.download
      ? { download: fileName || "evidence", title: t("links.download.title") }
      : { rel: "noopener noreferrer", target: "_blank" };
    return h("a", { href: link.href, ...how, "data-link": "yes", ...attrs }, label ?? shownUri(uri));
  }
  return h(
    "span",
    { "data-link": "no", ...attrs },
    label ? `${label} ` : null,
    h("span", { class: "mono" }, shownUri(uri) || t("links.empty")),
    " ",
    pill(t("links.notALink"), "warn", {
      title: t("links.notALink.title", { schemes: LINK_SCHEMES.join(", ") }),
      "data-test": "not-a-link",
    }),
  );
}
