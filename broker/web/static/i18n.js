// Interface strings: one catalog per language in locales/<tag>.json (flat key → string, with
// {name} placeholders), loaded on demand. A key missing from a catalog falls back to English.
// The reader's language: what they chose with the switch on this device, else the directory's
// `language` for the signed-in contact, else the browser's, else English.

// BCP 47 tags, in the order the switch lists them (each name in its own language).
export const LANGUAGES = {
  en: "English", sq: "Shqip", bs: "Bosanski", hr: "Hrvatski", "sr-Latn": "Srpski (latinica)",
  "sr-Cyrl": "Српски (ћирилица)", cnr: "Crnogorski", mk: "Македонски",
};

// The locale Intl formats dates with. Montenegrin has no CLDR data of its own: it formats as
// Serbian Latin in Montenegro (its strings stay its own). English uses British order: day first.
const INTL = {
  en: "en-GB", sq: "sq-AL", bs: "bs-Latn-BA", hr: "hr-HR", "sr-Latn": "sr-Latn-RS",
  "sr-Cyrl": "sr-Cyrl-RS", cnr: "sr-Latn-ME", mk: "mk-MK",
};

const CHOSEN = "liaison.lang";
const catalogs = {};
let language = "en";

/** The supported tag that serves a BCP 47 tag (the rules of broker/languages.py), or null. */
export function match(tag) {
  const subtags = String(tag || "").trim().replace(/_/g, "-").toLowerCase().split("-");
  const exact = Object.keys(LANGUAGES).find((code) => code.toLowerCase() === subtags.join("-"));
  if (exact) return exact;
  const [primary, ...rest] = subtags;
  if (primary === "sr") return rest.includes("cyrl") ? "sr-Cyrl" : "sr-Latn"; // Latin unless Cyrillic is asked for
  if (primary === "me" || primary === "cnr") return "cnr";
  return Object.hasOwn(LANGUAGES, primary) ? primary : null; // not "toString" from the prototype
}

async function load(code) {
  if (!catalogs[code]) {
    const response = await fetch(`/ui/locales/${code}.json`);
    if (!response.ok) throw new Error(`no catalog for ${code}`);
    catalogs[code] = await response.json();
  }
  return catalogs[code];
}

async function apply(code) {
  // A catalog that cannot be fetched leaves the page in English rather than without words.
  await Promise.allSettled([load("en"), load(code)]);
  language = code in catalogs ? code : "en";
  document.documentElement.lang = language;
}

export const currentLanguage = () => language;

/** At start: the reader's earlier choice on this device, else the browser's language. */
export async function initLanguage() {
  const fromBrowser = (navigator.languages || [navigator.language]).map(match).find(Boolean);
  await apply(match(localStorage.getItem(CHOSEN)) || fromBrowser || "en");
}

/** The reader chose a language with the switch: use it, and keep it on this device. */
export async function setLanguage(value) {
  const code = match(value) || "en";
  await apply(code);
  localStorage.setItem(CHOSEN, code);
}

/** The directory's language for the signed-in contact; a choice made on this device wins. */
export async function preferLanguage(tag) {
  const code = match(tag);
  if (code && !match(localStorage.getItem(CHOSEN))) await apply(code);
}

/** A message in the reader's language, its {placeholders} filled from `params`. */
export function t(key, params = {}) {
  const value = catalogs[language]?.[key] || catalogs.en?.[key] || key;
  return value.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** A date and time as the reader writes them (day.month.year here), 24-hour clock.
 *  Intl gives the numbers in the reader's time zone; the catalog's `datetime` puts them in order,
 *  because browsers ship partial locale data (Chromium has no sq, bs or mk) and would fall back
 *  to US order for a locale they lack. */
export function formatDateTime(iso) {
  const parts = new Intl.DateTimeFormat(INTL[language] || "en-GB", {
    day: "numeric", month: "numeric", year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    numberingSystem: "latn",
  }).formatToParts(new Date(iso));
  const part = Object.fromEntries(parts.map((p) => [p.type, p.value]));
  return t("datetime", part);
}
