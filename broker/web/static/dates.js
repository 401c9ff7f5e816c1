// Dates as the reader writes them: day.month.year in every language of the page, whatever
// format the browser's own date picker would show (Chromium's follows the browser's locale, so
// an en-US browser shows month/day/year). A text field with the format in its label and
// placeholder; "25.11.2026", "25. 11. 2026." (Croatian and Serbian style) and "5.3.2026" all read.
import { h } from "./dom.js";
import { t } from "./i18n.js";

const DAY = /^\s*(\d{1,2})\.\s*(\d{1,2})\.\s*(\d{4})\.?\s*$/;

/** {y, m, d} of a day written day.month.year, or null when it is not a day of the calendar. */
export function parseDay(text) {
  const found = DAY.exec(text || "");
  if (!found) return null;
  const [d, m, y] = found.slice(1).map(Number);
  const date = new Date(y, m - 1, d);
  return date.getFullYear() === y && date.getMonth() === m - 1 && date.getDate() === d ? { y, m, d } : null;
}

/** The start of that day in the reader's time zone as an ISO instant; `end`: of the day after. */
export function dayStart(day, end = false) {
  return new Date(day.y, day.m - 1, day.d + (end ? 1 : 0)).toISOString();
}

/** The field: a text input for day.month.year. No `pattern` (the browser would refuse the form
 *  with its own bubble, in its own language) and no numeric keyboard (some phones' lack a dot):
 *  readDay says what is wrong, in the page's language, on the page. */
export function dateInput(id) {
  return h("input", {
    id, type: "text", autocomplete: "off", spellcheck: "false", placeholder: t("date_placeholder"), size: "10",
  });
}

/** The day in a field, null when it is empty; an error in the reader's words when it is not a
 *  day (the field is marked invalid, so a screen reader says so too). */
export function readDay(input) {
  const text = input.value.trim();
  input.removeAttribute("aria-invalid");
  if (!text) return null;
  const day = parseDay(text);
  if (!day) {
    input.setAttribute("aria-invalid", "true");
    throw new Error(t("date_invalid"));
  }
  return day;
}

/** The label of a date field: its name and the format, both read out with the field. */
export const dateLabel = (name, input) => h("label", {}, name, " ", h("span", { class: "format" }, `(${t("date_hint")})`), " ", input);
