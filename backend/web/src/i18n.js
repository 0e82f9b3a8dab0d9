// Chinese and English. Every sentence a person sees comes from a message catalog:
//
//   src/i18n/en.json     English
//   src/i18n/zh-CN.json  简体中文
//
// A catalog is one flat JSON object, message id -> message. Ids name a meaning, grouped by page or
// module ("store.title", "order.confirm.button"); both catalogs hold exactly the same ids
// (tests/integration/test_web_i18n.py checks it, and that every id the sources use exists).
//
// A message is either
//   - a string with {name} placeholders, filled from `params` ("{count} in stock"), or
//   - for a count, an object of plural forms keyed by the Intl.PluralRules categories of the
//     language ("zero", "one", "two", "few", "many", "other"; "other" is required), chosen by
//     `params.count`: {"one": "{count} code", "other": "{count} codes"}. Chinese needs "other" only.
// Numbers in params are written in the reader's digits (Intl.NumberFormat); pass a string to keep
// a value exactly as it is (ids, amounts already formatted). Placeholders are the same set in
// both catalogs; translators may move them anywhere in the sentence.
//
// The language is the reader's stored choice (localStorage "kameng.locale"), else the first of
// navigator.languages that we speak (zh* -> zh-CN, en* -> en), else English. `setLocale` stores a
// new choice, sets <html lang> and tells the listeners (main.js re-renders the page).
// English is bundled in app.js (every message falls back to it); any other catalog is fetched when
// it is first needed (`ready` before the first render, `setLocale` before switching), as a chunk
// of its own, so a reader of one language does not download the other (issue 18: the store on a
// phone). (Standard JSON modules: esbuild bundles and splits them, and a browser can import the
// sources unbundled.)
import en from "./i18n/en.json" with { type: "json" };

export const LOCALES = ["zh-CN", "en"];
const CATALOGS = { en };
const LOADERS = { "zh-CN": () => import("./i18n/zh-CN.json", { with: { type: "json" } }) };
const STORE_KEY = "kameng.locale";
const listeners = new Set();

/** The language of a BCP 47 tag we speak, or null. */
export function supported(tag) {
  const t = String(tag || "").toLowerCase();
  if (t.startsWith("zh")) return "zh-CN";
  if (t.startsWith("en")) return "en";
  return null;
}

function detect() {
  let chosen = null;
  try {
    chosen = supported(localStorage.getItem(STORE_KEY));
  } catch {
    chosen = null;
  }
  if (chosen) return chosen;
  const prefs = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const tag of prefs) {
    const found = supported(tag);
    if (found) return found;
  }
  return "en";
}

let current = detect();
let plurals = new Intl.PluralRules(current);
let numbers = new Intl.NumberFormat(current);

/** The current language: "zh-CN" or "en". */
export function locale() {
  return current;
}

/** Fetch the catalog of `tag` unless it is here already. */
async function load(tag) {
  if (!CATALOGS[tag]) CATALOGS[tag] = (await LOADERS[tag]()).default;
}

/**
 * Resolves once the current language's catalog is here (call before the first render). If it
 * cannot be fetched, the page is shown in English rather than not at all.
 */
export async function ready() {
  try {
    await load(current);
  } catch (err) {
    console.error(err);
    current = "en";
    plurals = new Intl.PluralRules(current);
    numbers = new Intl.NumberFormat(current);
    document.documentElement.lang = current;
  }
}

/**
 * Switch language (after fetching its catalog), remember it, and tell the listeners (which
 * re-render). Rejects, leaving the language as it was, if the catalog cannot be fetched.
 */
export async function setLocale(tag) {
  const next = supported(tag) || "en";
  await load(next);
  try {
    localStorage.setItem(STORE_KEY, next);
  } catch {
    // private mode: the choice lasts for this page only
  }
  if (next === current) return;
  current = next;
  plurals = new Intl.PluralRules(current);
  numbers = new Intl.NumberFormat(current);
  document.documentElement.lang = current;
  for (const fn of listeners) fn(current);
}

/** Call `fn(locale)` after every language switch. */
export function onLocaleChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function lookup(id, params) {
  let msg = CATALOGS[current]?.[id] ?? CATALOGS.en[id];
  if (msg === undefined) {
    console.warn(`i18n: no message ${id}`);
    return id;
  }
  if (typeof msg === "object") {
    const n = Number(params?.count ?? 0);
    msg = msg[plurals.select(n)] ?? msg.other;
  }
  return msg;
}

const show = (value) => (typeof value === "number" || typeof value === "bigint" ? numbers.format(value) : value);

/** The message `id` in the current language, its {placeholders} filled from `params`. */
export function t(id, params) {
  return lookup(id, params).replace(/\{(\w+)\}/g, (whole, name) =>
    params && name in params ? String(show(params[name])) : whole,
  );
}

/**
 * The message `id` as a list of children for `h()`: like `t`, but a parameter may be a DOM node
 * (a link, an address), which is put in place as it is.
 */
export function tn(id, params) {
  const parts = lookup(id, params).split(/\{(\w+)\}/);
  return parts.map((part, i) => {
    if (i % 2 === 0) return part;
    if (!params || !(part in params)) return `{${part}}`;
    return show(params[part]);
  });
}

/** Whether the catalogs hold `id` (for messages chosen from data, such as a revert's name). */
export function has(id) {
  return id in CATALOGS.en;
}

document.documentElement.lang = current;
