// OASIS CAP 1.2 in the page: the port of broker/cap/ (mapping.py, languages.py, export.py) for
// notices the browser decrypts, since the broker cannot read them.
// - an alert posted as application/cap+xml is mapped here from the very bytes the agency signed
//   (as adapters/client/verify.py does), supersedes from the signed target URI only;
// - an alert's info blocks: the one in the page language, else the first (languages.py's rules);
// - export: the carried original byte for byte, else the alert export.py builds, byte for byte
//   the same XML as `liaison read --cap` (the e2e test compares them and validates the XSD).
// The page cannot run the XSD; the broker and the agency's client did at intake, and a download
// is checked against it in tests. Text from the alert only ever becomes a text node.
import { LANGUAGES, match } from "./i18n.js";

export const NS = "urn:oasis:names:tc:emergency:cap:1.2";
export const CAP_MEDIA_TYPE = "application/cap+xml";
const JURISDICTION_CODE = "liaison-jurisdiction";
const SEVERITY = { Extreme: "critical", Severe: "high", Moderate: "medium", Minor: "low", Unknown: "info" };
const RANK = Object.keys(SEVERITY);
const TO_CAP_SEVERITY = Object.fromEntries(Object.entries(SEVERITY).map(([theirs, ours]) => [ours, theirs]));
const CATEGORIES = new Set(["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE", "Other"]);
const ALERT_TEXT = { source: "cap_source", restriction: "cap_restriction", addresses: "cap_addresses", note: "cap_note", references: "cap_references", incidents: "cap_incidents" };
const INFO_TEXT = { language: "language", audience: "audience", effective: "effective", onset: "onset", senderName: "sender_name", description: "description", instruction: "instruction", web: "web", contact: "contact" };
// What a reader reads of an info block, with the body field each maps to (languages.py SHOWN).
const SHOWN = { event: "event", headline: "headline", description: "description", instruction: "instruction", senderName: "sender_name", audience: "audience", web: "web", contact: "contact" };
const DEFAULT_TAG = "en-US";

export class CapError extends Error {}

const kids = (el, name) => [...el.children].filter((c) => c.namespaceURI === NS && c.localName === name);
const text = (el, name) => { const c = kids(el, name)[0]; return c ? c.textContent.trim() : null; };
const texts = (el, name) => kids(el, name).map((c) => c.textContent.trim());
const pairs = (el, name) => kids(el, name).map((c) => ({ name: text(c, "valueName") || "", value: text(c, "value") || "" }));

/** The alert as a document; CapError for anything that is not a CAP 1.2 alert. */
export function parse(bytes) {
  let source;
  try { source = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch { throw new CapError("not valid XML: not UTF-8"); }
  const doc = new DOMParser().parseFromString(source, "application/xml");
  if (doc.getElementsByTagName("parsererror").length) throw new CapError("not valid XML");
  if (doc.doctype) throw new CapError("not valid XML: a document type declaration"); // as defusedxml
  const root = doc.documentElement;
  if (root.namespaceURI !== NS || root.localName !== "alert") throw new CapError("the document is not a CAP 1.2 alert (root element alert in its namespace)");
  return doc;
}

/** The notice an alert posted as application/cap+xml stands for (mapping.cap_document). */
export function capDocument(bytes, signedUri) {
  const query = new URL(signedUri || "/", "https://signed.invalid").searchParams;
  const unknown = [...new Set(query.keys())].filter((k) => k !== "supersedes").sort();
  if (unknown.length) throw new CapError(`query parameter '${unknown[0]}': not accepted with a CAP alert`);
  const given = query.getAll("supersedes");
  if (given.length > 1) throw new CapError("query parameter 'supersedes': given more than once");
  return capToNotice(bytes, given.length ? given[0] : null);
}

function capToNotice(bytes, supersedes) {
  const doc = parse(bytes);
  const root = doc.documentElement;
  const msgType = checked(root, supersedes);
  const infos = kids(root, "info");
  if (!infos.length) throw new CapError("alert/info: missing; an alert without info has nothing to notify");
  const first = infos[0];
  const body = { ...alertFields(root), ...infoFields(first, infos) };
  body.cap_original = b64(bytes);
  const notice = {
    channel: "public-safety-alert",
    jurisdiction: jurisdiction(infos),
    severity: SEVERITY[infos.map((i) => text(i, "severity") || "Unknown").sort((a, b) => RANK.indexOf(a) - RANK.indexOf(b))[0]],
    subject: text(first, "headline") || text(first, "event") || "",
    body,
    idempotency_key: `cap:${body.cap_sender}:${body.cap_identifier}`.slice(0, 128),
  };
  // CAP status Exercise/Test is the notice's exercise marking, as broker/cap/mapping.py maps it.
  const marking = EXERCISE_OF_STATUS[body.cap_status];
  if (marking) notice.exercise = marking;
  const expires = text(first, "expires");
  if (expires) notice.expires_at = expires;
  if (supersedes !== null) {
    notice.supersedes = supersedes;
    if (msgType === "Cancel") notice.cancel = true;
  }
  return notice;
}

// CAP status -> the notice's exercise marking (an Actual alert has none); export reverses it.
const EXERCISE_OF_STATUS = { Exercise: "exercise", Test: "test" };
const STATUS_OF_EXERCISE = { exercise: "Exercise", test: "Test" };

function checked(root, supersedes) {
  const scope = text(root, "scope");
  if (!["Restricted", "Private"].includes(scope)) throw new CapError(`alert/scope: '${scope}'; only Restricted or Private alerts are imported`);
  const status = text(root, "status");
  if (!["Actual", "Exercise", "Test"].includes(status)) throw new CapError(`alert/status: '${status}'; only Actual, Exercise and Test alerts are notices`);
  const msgType = text(root, "msgType");
  if (!["Alert", "Update", "Cancel"].includes(msgType)) throw new CapError(`alert/msgType: '${msgType}'; only Alert, Update and Cancel are imported`);
  if (msgType !== "Alert" && supersedes === null) throw new CapError(`alert/msgType: ${msgType} needs the Liaison notice it supersedes`);
  return msgType;
}

function alertFields(root) {
  const body = Object.fromEntries(["identifier", "sender", "sent", "status", "msgType", "scope"]
    .map((name) => [`cap_${name === "msgType" ? "msg_type" : name}`, text(root, name)]));
  for (const [element, field] of Object.entries(ALERT_TEXT)) { const v = text(root, element); if (v) body[field] = v; }
  const codes = texts(root, "code").filter(Boolean);
  if (codes.length) body.cap_code = codes;
  return body;
}

function infoFields(info, infos) {
  const body = { event: text(info, "event"), urgency: text(info, "urgency"), certainty: text(info, "certainty"), category: [...new Set(texts(info, "category"))].sort() };
  for (const [element, field] of Object.entries(INFO_TEXT)) { const v = text(info, element); if (v) body[field] = v; }
  const responses = texts(info, "responseType");
  if (responses.length) body.response_type = responses;
  for (const [element, field] of [["eventCode", "event_code"], ["parameter", "parameter"]]) {
    const named = pairs(info, element);
    if (named.length) body[field] = named;
  }
  const areas = kids(info, "area").map((a) => text(a, "areaDesc") || "");
  if (areas.some(Boolean)) body.area = areas.filter(Boolean).join("; ");
  if (infos.length > 1) body.languages = infos.map((i) => text(i, "language") || "en-US");
  return body;
}

function jurisdiction(infos) {
  const codes = new Set();
  const descriptions = [];
  let geometry = "";
  for (const area of infos.flatMap((i) => kids(i, "area"))) {
    descriptions.push(text(area, "areaDesc") || "");
    for (const code of pairs(area, "geocode")) if (code.name === JURISDICTION_CODE && code.value) codes.add(code.value);
    for (const shape of ["polygon", "circle"]) if (kids(area, shape).length) geometry = geometry || shape;
  }
  if (codes.size === 1) return [...codes][0];
  if (!codes.size && geometry) throw new CapError(`alert/info/area/${geometry}: not resolved to a jurisdiction`);
  throw new CapError("alert/info/area: not mapped to one Liaison jurisdiction");
}

// -- languages (broker/cap/languages.py) -------------------------------------------------------------

/** The page language (of the eight) that serves a CAP language tag, or null: i18n.js's match. */
export const pageLanguage = (tag) => match(tag);

/** Every info block: its tag, page language, the text a reader reads, and its areas. */
export function blocks(doc) {
  return kids(doc.documentElement, "info").map((info) => {
    const tag = text(info, "language") || DEFAULT_TAG;
    const fields = {};
    for (const [element, field] of Object.entries(SHOWN)) { const v = text(info, element); if (v) fields[field] = v; }
    const area = kids(info, "area").map((a) => text(a, "areaDesc") || "").filter(Boolean).join("; ");
    return { tag, language: pageLanguage(tag), fields, area };
  });
}

/** The block for a reader of `reader` (else the alert's first) and the others. */
export function choose(found, reader) {
  const chosen = found.find((b) => b.language === reader) || found[0];
  return { chosen, others: found.filter((b) => b !== chosen) };
}

/** The subject and body to show: the chosen block's text in place of the first block's. */
export function localised(notice, chosen) {
  const shownFields = new Set(Object.values(SHOWN));
  const body = Object.fromEntries(Object.entries(notice.body || {}).filter(([k]) => !shownFields.has(k)));
  for (const [k, v] of Object.entries(chosen.fields)) if (k !== "headline") body[k] = v;
  body.language = chosen.tag;
  if (chosen.area) body.area = chosen.area;
  return { subject: chosen.fields.headline || chosen.fields.event || notice.subject || "", body };
}

export const languageName = (block) => (block.language ? `${block.tag} (${LANGUAGES[block.language]})` : block.tag);

// -- export (broker/cap/export.py) -------------------------------------------------------------------

function b64(bytes) { let s = ""; for (const b of bytes) s += String.fromCharCode(b); return btoa(s); }

/** The carried original's bytes, or null when the notice carries none. */
export function original(notice) {
  const carried = notice.body && typeof notice.body === "object" ? notice.body.cap_original : undefined;
  if (typeof carried !== "string") return null;
  try { return Uint8Array.from(atob(carried), (c) => c.charCodeAt(0)); } catch { throw new CapError("body/cap_original: not base64"); }
}

/** The notice as CAP 1.2 XML bytes: the carried original when there is one, else built.
 *  `fetched` is the broker's metadata (id, sender, created_at, marking), `sender` the agency's
 *  name as the administrators signed it. */
export function noticeToCap(fetched, notice, sender) {
  return original(notice) || new TextEncoder().encode(build(fetched, notice, sender));
}

// libxml2's escaping of text content, as lxml serialises it.
const esc = (s) => {
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(s)) throw new CapError("a field holds characters XML cannot carry");
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\r/g, "&#13;");
};
const el = (name, value) => `<${name}>${esc(value)}</${name}>`;
const enumOf = (value, allowed) => (allowed.includes(value) ? value : "Unknown");

function build(fetched, notice, sender) {
  const body = notice.body && typeof notice.body === "object" && !Array.isArray(notice.body) ? notice.body : {};
  const kind = notice.cancel ? "Cancel" : notice.supersedes ? "Update" : "Alert";
  const parts = [
    el("identifier", String(fetched.id || "")),
    el("sender", String(fetched.sender || "unknown")),
    el("sent", capTime(fetched.created_at) || capTime(new Date().toISOString()) || ""),
    el("status", STATUS_OF_EXERCISE[notice.exercise] || "Actual"), el("msgType", kind), el("scope", "Restricted"),
    el("restriction", `TLP:${fetched.marking ?? "AMBER"}; Liaison channel ${pyStr(notice.channel)}`),
  ];
  if (notice.supersedes) parts.push(el("note", `Supersedes Liaison notice ${notice.supersedes}`));
  const info = [];
  const categories = (Array.isArray(body.category) ? body.category : []).filter((c) => CATEGORIES.has(c));
  for (const category of categories.length ? categories : ["Other"]) info.push(el("category", category));
  info.push(el("event", String(body.event || notice.channel || "notice")));
  info.push(el("urgency", enumOf(body.urgency, ["Immediate", "Expected", "Future", "Past"])));
  info.push(el("severity", TO_CAP_SEVERITY[String(notice.severity)] || "Unknown"));
  info.push(el("certainty", enumOf(body.certainty, ["Observed", "Likely", "Possible", "Unlikely"])));
  const expires = capTime(notice.expires_at);
  if (expires) info.push(el("expires", expires));
  if (sender) info.push(el("senderName", sender));
  info.push(el("headline", String(notice.subject || "")));
  info.push(el("description", description(body)));
  const area = el("areaDesc", String(body.area || notice.jurisdiction || ""))
    + `<geocode>${el("valueName", JURISDICTION_CODE)}${el("value", String(notice.jurisdiction || ""))}</geocode>`;
  info.push(`<area>${area}</area>`);
  return `<?xml version='1.0' encoding='UTF-8'?>\n<alert xmlns="${NS}">${parts.join("")}<info>${info.join("")}</info></alert>`;
}

const pyStr = (v) => (v === undefined || v === null ? "None" : String(v));

/** The body's own description, else the whole signed body as JSON (Python's json.dumps with
 *  sort_keys and indent=1, which JSON.stringify writes the same for what JSON carries). */
function description(body) {
  if (typeof body.description === "string" && Object.keys(body).length <= 1) return body.description;
  const sorted = (v) => (Array.isArray(v) ? v.map(sorted) : v && typeof v === "object"
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);
  return JSON.stringify(sorted(body), null, 1);
}

/** CAP's date-time: seconds and a numeric offset (`+00:00`, never `Z`), as export._cap_time. */
export function capTime(value) {
  if (typeof value !== "string" || !value) return null;
  const m = value.match(/^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/);
  if (!m) return null;
  const [, day, hh = "00", mm = "00", ss = "00", zone] = m;
  const offset = !zone || zone === "Z" ? "+00:00" : zone.includes(":") ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`;
  return `${day}T${hh}:${mm}:${ss}${offset === "-00:00" ? "+00:00" : offset}`;
}
