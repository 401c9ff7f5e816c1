// The web inbox: focal points read and acknowledge notices, agencies follow their notices,
// auditors read and verify the log. Every byte of cryptography happens in this page
// (crypto.js); the broker sees a bearer token (contacts) or a signed request (agencies).
// Untrusted text (notice contents, audit events) only ever reaches the page as textContent.
import * as c from "./crypto.js";
import { LANGUAGES, currentLanguage, formatDateTime, initLanguage, preferLanguage, setLanguage, t } from "./i18n.js";
import * as trust from "./trust.js";
import { enrolView } from "./enrol.js";
import { continuityView } from "./continuity.js";
import { dateInput, dateLabel, dayStart, readDay } from "./dates.js";
import { h } from "./dom.js";
import * as cap from "./cap.js";
import { verifySignature } from "./xmldsig.js";

const session = { kind: null, id: null, signing: null, encryption: null, root: null, token: null, expires: 0, auditor: false };
let stream = null; // AbortController of the live stream
const main = () => document.getElementById("main");

// -- the page's view: built with dom.js's h(), no innerHTML anywhere --------------------------------

let keepTyped = false; // set by the language switch: the next view keeps what the reader typed

function show(...nodes) {
  const kept = keepTyped ? typed() : [];
  keepTyped = false;
  main().replaceChildren(...nodes);
  for (const [id, value] of kept) {
    const field = document.getElementById(id);
    if (!field || !main().contains(field)) continue;
    if (typeof value === "boolean") field.checked = value;
    else field.value = value;
  }
}

/** What the reader has typed or ticked in the view, by field id: a reply half written, a
 *  sign-in half filled. Not key files or passphrases, and not the filters (the list shown was
 *  loaded without them, so they start empty again with it). */
function typed() {
  return [...main().querySelectorAll("input[id], textarea[id]")]
    .filter((f) => !["file", "password", "hidden"].includes(f.type) && !f.closest(".filters"))
    .map((f) => [f.id, f.type === "checkbox" || f.type === "radio" ? f.checked : f.value]);
}

function notify(message, kind = "info") {
  if (kind === "error") keepError(message);
  const area = document.getElementById("toasts");
  const toast = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  area.append(toast);
  setTimeout(() => toast.remove(), 6000);
}

function chime() { // an audible cue for a new notice, made here: no sound file to fetch
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.6);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.6);
  } catch { /* no audio device: the visible cue remains */ }
}

const when = (iso) => (iso ? formatDateTime(iso) : "—");

/** An error stays on the page, above the view, until the view changes or the reader closes it
 *  (the toast beside it goes after six seconds). */
function keepError(message) {
  let area = document.getElementById("page-error");
  if (!area) {
    area = h("div", { id: "page-error", class: "page-error", role: "alert" });
    main().prepend(area);
  }
  area.replaceChildren(h("p", {}, message),
    h("button", { type: "button", class: "secondary", onclick: () => area.remove() }, t("dismiss")));
}

/** After a view is drawn: its heading names the page (document title) and takes the focus, so a
 *  screen reader announces the new view and the keyboard starts there. */
function settle() {
  const heading = main().querySelector("h2");
  document.title = heading ? `${heading.textContent} — ${t("title")}` : t("title");
  if (!heading) return;
  heading.setAttribute("tabindex", "-1");
  heading.focus({ preventScroll: true });
}

/** A name from the directory or the policies, else the machine id it stands for. */
const named = (name, id) => name || id || "—";
const severityText = (severity) => (t(`severity_${severity}`) !== `severity_${severity}` ? t(`severity_${severity}`) : severity);

/** "3 h 20 min" (or "2 d 4 h") between now and a time, in the reader's words. */
function span(ms) {
  const minutes = Math.max(0, Math.round(Math.abs(ms) / 60000));
  const days = Math.floor(minutes / 1440);
  const hours = Math.floor((minutes % 1440) / 60);
  if (days) return t("span_days", { d: days, h: hours });
  return t("span_hours", { h: hours, m: minutes % 60 });
}

/** The acknowledgement deadline with the time left (or how long it is overdue); null when the
 *  channel sets no deadline or the notice is acknowledged. */
function deadline(iso, acknowledged, id) {
  if (!iso || acknowledged) return null;
  const left = new Date(iso) - Date.now();
  return left >= 0
    ? h("p", { class: "deadline", id }, t("due_by", { at: when(iso), left: span(left) }))
    : h("p", { class: "deadline overdue", id }, t("overdue", { at: when(iso), late: span(left) }));
}

// -- talking to the broker -------------------------------------------------------------------------

class BrokerError extends Error {
  constructor(status, problem) { super(problem.detail || problem.title || `HTTP ${status}`); this.status = status; this.problem = problem; }
}

async function signInContact() {
  const kid = c.keyId(session.id, "ed25519", c.publicEd25519(session.signing));
  const response = await fetch("/v1/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion: c.assertion(session.signing, session.id, kid, location.origin),
    }),
  });
  const body = await response.json();
  if (!response.ok) throw new BrokerError(response.status, body);
  session.token = body.access_token;
  session.language = body.language; // the directory's language for this contact
  session.encryptionKeyIds = body.encryption_key_ids || [];
  session.expires = Date.now() + 1000 * (body.expires_in - 30);
}

async function api(method, path, body) {
  if (session.kind === "contact" && Date.now() > session.expires) await signInContact();
  // Names from the policies and the directory come in the language the switch shows.
  const headers = { "Accept-Language": currentLanguage() };
  if (session.kind === "contact") headers.Authorization = `Bearer ${session.token}`;
  else Object.assign(headers, c.signRequest(session.signing, session.keyid, method, location.origin + path));
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) throw new BrokerError(response.status, data);
  return data;
}

/** Server-Sent Events over fetch (EventSource cannot send a bearer token); from ``after``
 *  (an event id) and resumes by id. */
async function live(onEvent, after = null) {
  stop();
  const controller = new AbortController();
  stream = controller;
  let last = after;
  const status = document.getElementById("live");
  while (!controller.signal.aborted) {
    try {
      if (Date.now() > session.expires) await signInContact();
      const headers = { Authorization: `Bearer ${session.token}`, Accept: "text/event-stream" };
      if (last !== null) headers["Last-Event-ID"] = String(last);
      const response = await fetch("/v1/stream", { headers, signal: controller.signal });
      if (!response.ok) throw new Error(`stream ${response.status}`);
      if (status) { status.textContent = t("live"); status.className = "live on"; }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = block.match(/^id: (\d+)$/m);
          const data = block.match(/^data: (.*)$/m);
          if (id && data) { last = Number(id[1]); onEvent(JSON.parse(data[1])); }
        }
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    if (status) { status.textContent = t("offline"); status.className = "live off"; }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function stop() { if (stream) stream.abort(); stream = null; }

// -- sign-in -------------------------------------------------------------------------------------

const STORE = "liaison.keys";

async function passphraseKey(passphrase, salt) {
  const base = await crypto.subtle.importKey("raw", c.utf8(passphrase), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", salt, iterations: 310000, hash: "SHA-256" },
    base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

async function keep(passphrase) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const secret = JSON.stringify({
    kind: session.kind, id: session.id, signing: c.b64encode(session.signing),
    encryption: session.encryption ? c.b64encode(session.encryption) : null, root: session.root,
  });
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await passphraseKey(passphrase, salt), c.utf8(secret));
  localStorage.setItem(STORE, JSON.stringify({ salt: c.b64encode(salt), iv: c.b64encode(iv), sealed: c.b64encode(new Uint8Array(sealed)) }));
}

async function unlock(passphrase) {
  const kept = JSON.parse(localStorage.getItem(STORE));
  const plain = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: c.b64decode(kept.iv) },
    await passphraseKey(passphrase, c.b64decode(kept.salt)), c.b64decode(kept.sealed));
  const secret = JSON.parse(new TextDecoder().decode(plain));
  Object.assign(session, {
    kind: secret.kind, id: secret.id, signing: c.b64decode(secret.signing),
    encryption: secret.encryption ? c.b64decode(secret.encryption) : null, root: secret.root || null,
  });
}

async function startSession() {
  if (session.kind === "contact") {
    // Bindings that cannot be had now (expired, rolled back) do not keep the reader out: each
    // notice then says why it cannot be verified. The broker's directory check still holds.
    session.bindings = session.root ? await keyBindings().catch(() => null) : null;
    if (session.bindings) checkKeyPair(session.bindings);
    await signInContact();
    checkEncryptionKey();
    await preferLanguage(session.language);
    try { await api("GET", "/v1/audit/checkpoint"); session.auditor = true; } catch { session.auditor = false; }
    if (!session.encryption && !session.auditor && session.encryptionKeyIds.length) throw new Error(t("no_encryption_key"));
  } else {
    session.keyid = c.keyId(session.id, "ed25519", c.publicEd25519(session.signing));
  }
  renderHeader();
  // A link to one notice (an e-mail alert's) opens that notice once signed in.
  const linked = session.kind === "contact" && location.hash.startsWith("#/notice/");
  if (!linked) location.hash = session.kind === "agency" ? "#/status" : session.auditor ? "#/audit" : "#/inbox";
  route();
}

/** A key file's private key, or an error that names the file and what is wrong with it. */
function keyFile(text, type) {
  if (!text) throw new Error(t(type === "ed25519" ? "no_signing_key" : "no_encryption_key"));
  try {
    return c.privateKeyFromPem(text, type);
  } catch {
    throw new Error(t(type === "ed25519" ? "signing_file_wrong" : "encryption_file_wrong"));
  }
}

/** The loaded key pair against the administrators' signed directory, before anything is shown:
 *  a key the signed directory binds to someone else is refused, naming the file and its owner;
 *  no encryption key where the directory has one is refused. A key it does not list (a new key
 *  not yet signed) is left to the broker: the token exchange checks the signing key, and
 *  checkEncryptionKey the encryption key against the broker's directory. */
function checkKeyPair(bindings) {
  const entries = Object.values(bindings.keys);
  const check = (type, pub, file) => {
    const mine = c.b64encode(pub);
    const found = entries.find((b) => b.type === type && b.public === mine);
    if (found && found.owner !== session.id) {
      throw new Error(t(`${file}_someone_else`, { id: session.id, owner: found.owner_name || found.owner }));
    }
  };
  check("ed25519", c.publicEd25519(session.signing), "signing");
  if (session.encryption) check("x25519", c.publicX25519(session.encryption), "encryption");
  else if (entries.some((b) => b.type === "x25519" && b.owner === session.id && b.status !== "revoked")) {
    throw new Error(t("no_encryption_key"));
  }
}

/** The encryption key is one of this contact's in the broker's directory, or (a key changed
 *  since: its notices say "sent to your previous key") one the signed directory binds to them. */
function checkEncryptionKey() {
  if (!session.encryption) return;
  const pub = c.publicX25519(session.encryption);
  if (session.encryptionKeyIds.includes(c.keyId(session.id, "x25519", pub))) return;
  const bound = session.bindings && Object.values(session.bindings.keys)
    .some((b) => b.type === "x25519" && b.owner === session.id && b.public === c.b64encode(pub));
  if (!bound) throw new Error(t("encryption_not_in_directory", { id: session.id }));
}

/** The broker refused the signing key (its answer is the same for every reason). */
function signInRefusal() {
  const pub = session.signing && c.b64encode(c.publicEd25519(session.signing));
  const bound = session.bindings && Object.values(session.bindings.keys).some((b) => b.type === "ed25519" && b.public === pub);
  return t(session.bindings && !bound ? "signing_not_in_directory" : "signin_refused_signing", { id: session.id || "—" });
}

function signInView() {
  const readFile = (input) => (input.files[0] ? input.files[0].text() : Promise.resolve(null));
  const kindContact = h("input", { type: "radio", name: "kind", value: "contact", id: "kind-contact", checked: true });
  const kindAgency = h("input", { type: "radio", name: "kind", value: "agency", id: "kind-agency" });
  const id = h("input", { id: "principal", required: true, autocomplete: "username", spellcheck: "false" });
  const signing = h("input", { id: "signing-key", type: "file", accept: ".pem" });
  const encryption = h("input", { id: "encryption-key", type: "file", accept: ".pem" });
  const root = h("input", { id: "root-file", type: "file", accept: ".json" });
  const remember = h("input", { id: "remember", type: "checkbox" });
  const passphrase = h("input", { id: "passphrase", type: "password", autocomplete: "new-password" });
  const form = h("form", {
    class: "card", id: "signin",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        session.kind = kindAgency.checked ? "agency" : "contact";
        session.id = id.value.trim();
        session.signing = keyFile(await readFile(signing), "ed25519");
        const enc = await readFile(encryption);
        session.encryption = enc ? keyFile(enc, "x25519") : null;
        session.root = await readFile(root);
        if (session.root) trust.fingerprint(session.root); // refuse a file that is not a signed root
        if (remember.checked && passphrase.value) await keep(passphrase.value);
        signing.value = ""; encryption.value = ""; root.value = "";
        await startSession();
      } catch (e) {
        session.kind = null; // nothing is shown signed in with a key pair that was refused
        notify(e instanceof BrokerError ? signInRefusal() : e.message, "error");
      }
    },
  },
  h("h2", {}, t("signin")),
  h("fieldset", {}, h("legend", {}, t("signin_as")), h("label", {}, kindContact, " ", t("as_contact")), h("label", {}, kindAgency, " ", t("as_agency"))),
  h("label", { for: "principal" }, `${t("contact_id")} / ${t("agency_id")}`), id,
  h("label", { for: "signing-key" }, t("signing_key")), signing,
  h("label", { for: "encryption-key" }, t("encryption_key")), encryption,
  h("label", { for: "root-file" }, t("root_file")), root,
  h("label", { class: "inline" }, remember, " ", t("remember")),
  h("label", { for: "passphrase" }, t("passphrase")), passphrase,
  h("p", { class: "hint" }, t("keys_stay")),
  h("button", { type: "submit", id: "signin-button" }, t("signin")));
  const nodes = [form, h("p", { class: "card" }, h("a", { href: "#/enrol", id: "enrol-link" }, t("enrol_link")))];
  if (localStorage.getItem(STORE)) {
    const pass = h("input", { id: "unlock-passphrase", type: "password", autocomplete: "current-password" });
    const unlockError = h("p", { class: "error-line", id: "unlock-error", role: "alert" });
    nodes.unshift(h("form", {
      class: "card", id: "unlock",
      onsubmit: async (event) => {
        event.preventDefault();
        // A wrong passphrase is said as such, apart from a refused sign-in: keys not approved yet
        // (the broker refuses them), or a key pair that is not the contact's (said by the check).
        try { await unlock(pass.value); } catch { unlockError.textContent = t("wrong_passphrase"); return; }
        try { await startSession(); } catch (e) {
          session.kind = null;
          unlockError.textContent = e instanceof BrokerError ? t("signin_pending") : e.message;
        }
      },
    }, h("h2", {}, t("unlock")), h("label", { for: "unlock-passphrase" }, t("passphrase")), pass, unlockError,
    h("button", { type: "submit" }, t("signin")),
    h("button", { type: "button", class: "secondary", onclick: () => { localStorage.removeItem(STORE); route(); } }, t("forget"))));
  }
  show(...nodes);
}

// -- the inbox -------------------------------------------------------------------------------------

const MARKINGS = { "CLEAR": "clear", "GREEN": "green", "AMBER": "amber", "AMBER+STRICT": "amber-strict", "RED": "red" };
const banner = (marking) => h("div", { class: `tlp tlp-${MARKINGS[marking] || "amber"}`, role: "note", title: tlpMeaning(marking) }, `TLP:${marking}`);
const tlpMeaning = (marking) => t(`tlp_${MARKINGS[marking] || "amber"}`);
/** An exercise or test notice (the agency's signed marking): a banner above everything else, so
 *  nobody takes a drill for an emergency; nothing for a real notice. */
const EXERCISES = ["exercise", "test"];
const exerciseBanner = (exercise, id = null) => (EXERCISES.includes(exercise)
  ? h("p", { class: `exercise exercise-${exercise}`, role: "note", id }, t(`exercise_banner_${exercise}`))
  : null);
/** The same marking as a short tag in lists (inbox, sent notices). */
const exerciseTag = (exercise) => (EXERCISES.includes(exercise)
  ? h("span", { class: `exercise-tag exercise-${exercise}` }, t(`exercise_tag_${exercise}`))
  : null);
/** The banner with its one line on whom the notice may be shared with (FIRST TLP 2.0). */
const tlpBlock = (marking) => h("div", { class: "tlp-block" }, banner(marking),
  h("p", { class: "tlp-meaning", id: "tlp-meaning" }, tlpMeaning(marking)));

async function inboxView() {
  const state = h("select", { id: "filter-state" },
    ["", "delivered", "read", "acknowledged", "escalated"].map((s) => h("option", { value: s }, s ? t(s) : t("all"))));
  const channel = h("input", { id: "filter-channel", placeholder: t("channel"), spellcheck: "false" });
  const list = h("ul", { class: "notices", id: "notices", "aria-live": "polite" });
  const load = async () => {
    const params = new URLSearchParams({ limit: "100" });
    if (state.value) params.set("status", state.value);
    if (channel.value.trim()) params.set("channel", channel.value.trim());
    const page = await api("GET", `/v1/inbox?${params}`);
    list.replaceChildren(...(page.items.length ? page.items.map((n) => inboxRow(n)) : [h("li", { class: "empty" }, t("empty"))]));
    return page;
  };
  /** A row the filters shown would list (the broker filters the same way on load). */
  const listed = (n) => (!state.value || n.state === state.value) && (!channel.value.trim() || n.channel === channel.value.trim());
  const isListed = (id) => list.querySelector(`[data-id="${CSS.escape(id)}"]`);
  /** The inbox's first page, fetched once for every event that arrives while it is on its way:
   *  a burst of notices (a broadcast, a drill) costs one or two look-ups, not one each. */
  let onItsWay = null;
  const firstPage = () => {
    onItsWay ||= api("GET", "/v1/inbox?limit=20").catch(() => ({ items: [] })).finally(() => { onItsWay = null; });
    return onItsWay;
  };
  /** A page fetched before this notice was delivered cannot list it: then one more, shared too. */
  const lookUp = async (id) => {
    const find = (page) => page.items.find((n) => n.notice_id === id);
    return find(await firstPage()) || find(await firstPage());
  };
  /** A live event carries ids only: the inbox's first page gives the names (in the switch's
   *  language) for the toast and the row; the row joins the list only if the filters allow. */
  const announced = new Set();
  const arrived = async (event) => {
    // The same notice through another role: one toast and one row.
    if (isListed(event.notice_id) || announced.has(event.notice_id)) return;
    announced.add(event.notice_id);
    chime();
    const n = (await lookUp(event.notice_id)) || event;
    const tag = EXERCISES.includes(n.exercise) ? `${t(`exercise_tag_${n.exercise}`)} · ` : "";
    notify(`${tag}${t("new_notice")}: ${named(n.channel_title, n.channel)} · ${named(n.jurisdiction_name, n.jurisdiction)}`);
    if (!listed(n) || isListed(n.notice_id)) return;
    list.querySelector(".empty")?.remove();
    list.prepend(inboxRow(n, true));
  };
  show(h("section", {},
    h("div", { class: "toolbar" }, h("h2", {}, t("inbox")), h("span", { id: "live", class: "live off" }, t("offline"))),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); load(); } },
      h("label", {}, t("state"), " ", state), h("label", {}, t("channel"), " ", channel), h("button", { type: "submit" }, t("show"))),
    list));
  const first = await load();
  // From now, as `liaison watch`: the stream replays only what came after the newest delivery
  // listed (without it the broker replays every past delivery, each a toast and a chime).
  live((event) => { arrived(event).catch(() => {}); }, Math.max(0, ...first.items.map((n) => n.delivery_id || 0)));
}

/** One inbox row: the TLP marking, the channel's title and the municipality's name (not their
 *  ids), the role it came through, severity, state, sending date, and the deadline's time left. */
function inboxRow(n, fresh = false) {
  const due = deadline(n.ack_deadline, n.state === "acknowledged" || n.acknowledged_at, null);
  return h("li", { class: `notice ${fresh ? "fresh" : ""}`, "data-id": n.notice_id },
    banner(n.marking),
    h("a", { href: `#/notice/${encodeURIComponent(n.notice_id)}`, class: "what" },
      exerciseTag(n.exercise), h("strong", {}, named(n.channel_title, n.channel)), " · ", named(n.jurisdiction_name, n.jurisdiction),
      h("span", { class: "sub" }, [n.role_title, `${t("severity")}: ${severityText(n.severity)}`].filter(Boolean).join(" · "))),
    h("span", { class: `state state-${n.state}` }, t(n.state)),
    h("time", { datetime: n.created_at }, when(n.created_at)),
    due);
}

// -- one notice: decrypt, verify, acknowledge ----------------------------------------------------------

/** The administrators' key bindings, checked against the root pinned at sign-in; never rolled back. */
async function keyBindings() {
  if (!session.root) throw new Error(t("no_root"));
  const seen = `liaison.bindings-version.${trust.fingerprint(session.root)}`;
  const fetchText = async (path) => {
    const response = await fetch(path);
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.text();
  };
  const bindings = await trust.refresh(session.root, fetchText, new Date(), Number(localStorage.getItem(seen) || 0));
  localStorage.setItem(seen, String(bindings.version));
  return bindings;
}

/** Decrypt with this contact's key and check the agency's signature over the decrypted bytes,
 *  with the agency key the administrators bound to the sender, not the one the broker serves. */
function openNotice(fetched, bindings) {
  const enc = fetched.encryption;
  const sig = fetched.signature;
  const aad = c.associatedData(fetched.id, fetched.channel, fetched.policy_hash);
  if (c.b64encode(aad) !== enc.aad) throw new Error("the associated data does not match the notice");
  if (!session.encryption) throw new Error("no encryption key was loaded");
  const key = unwrapOwn(enc.wrap);
  const plaintext = c.openBody(c.b64decode(enc.ciphertext), c.b64decode(enc.nonce), aad, key);
  const values = sig.signed_values;
  if (!c.digestMatches(values["content-digest"] || "", plaintext)) throw new Error("the content digest does not match");
  const parsed = c.parseSignatureInput(sig.signature_input);
  if (parsed.keyid !== sig.sender_key_id || !parsed.components.includes("content-digest")) {
    throw new Error("the signature does not cover this notice");
  }
  // From abroad: the key as the sending country bound it, under the root this country signed.
  const foreign = fetched.origin ? trust.originBindings(fetched, bindings, new Date()) : null;
  const bound = trust.senderBinding(foreign || bindings, sig.sender_key_id, fetched.sender);
  const base = c.signatureBase(values, parsed.components, parsed.params);
  if (!c.verify(bound.public, base, c.signatureValue(sig.signature, parsed.label))) {
    throw new Error("the agency's signature does not verify");
  }
  const notice = signedDocument(plaintext, values);
  for (const field of ["channel", "jurisdiction", "severity"]) {
    if (notice[field] !== fetched[field]) throw new Error(`the broker's ${field} differs from what the agency signed`);
  }
  // The exercise marking too: a host that strips it (or adds it) is caught here.
  if ((notice.exercise ?? null) !== (fetched.exercise ?? null)) throw new Error("the broker's exercise marking differs from what the agency signed");
  const posted = mediaType(values) === cap.CAP_MEDIA_TYPE;
  // The sender's name as the administrators signed it, in the reader's language when they did.
  const sender = (bound.names || {})[currentLanguage()] || bound.name;
  return { notice, digest: values["content-digest"], sender, posted, foreign, bindings };
}

/** The key a reply is sealed to: the broker's offer counts only when the administrators bound it
 *  to the sending agency (from abroad, the sending country's): a broker that offers a key of its
 *  own reads nothing. */
function replyKey(fetched, opened) {
  const offered = fetched.reply_key;
  const bound = trust.originReplyKeys(opened.foreign || opened.bindings, fetched.sender)
    .find((k) => k.keyId === offered.key_id && c.b64encode(k.public) === offered.public);
  if (!bound) throw new Error(t("reply_key_not_bound", { key: offered.key_id }));
  return offered;
}

const mediaType = (values) => (values["content-type"] || "").split(";")[0].trim().toLowerCase();

/** What the agency signed, as a notice: the JSON itself, or for an alert posted as
 *  application/cap+xml what it maps to here, supersedes from the signed target URI only
 *  (adapters/client/verify.py does the same). */
function signedDocument(plaintext, values) {
  if (mediaType(values) !== cap.CAP_MEDIA_TYPE) return JSON.parse(new TextDecoder().decode(plaintext));
  try {
    return cap.capDocument(plaintext, values["@target-uri"] || `/${values["@query"] || ""}`);
  } catch (e) {
    throw new Error(`the signed CAP alert does not map to a notice: ${e.message}`);
  }
}

const CARRIED = ["cap_original", "cap_signature"];
const SIGNATURE_CLASS = { valid: "ok", absent: "note", invalid: "bad" };

/** A notice carrying a CAP alert: its info block in the page language (else the alert's first),
 *  the other languages it has, and its XML signature verified here from the decrypted original,
 *  with the sending agency's client's record beside it (an alert posted as XML has none). */
async function capView(opened) {
  const body = Object.fromEntries(Object.entries(opened.notice.body).filter(([k]) => !CARRIED.includes(k)));
  let doc;
  try {
    doc = cap.parse(cap.original(opened.notice));
  } catch (e) {
    const line = h("p", { class: "verdict bad", id: "cap-signature" }, t("cap_sig_invalid", { reason: e.message }));
    return { subject: opened.notice.subject, body, section: h("section", { class: "cap", id: "cap" }, line) };
  }
  const { chosen, others } = cap.choose(cap.blocks(doc), currentLanguage());
  const shown = cap.localised({ ...opened.notice, body }, chosen);
  const result = await verifySignature(doc);
  const lines = [];
  if (others.length) {
    lines.push(h("p", { id: "cap-languages" }, t("cap_languages",
      { language: cap.languageName(chosen), others: others.map(cap.languageName).join(", ") })));
  }
  lines.push(h("p", { class: `verdict ${SIGNATURE_CLASS[result.status]}`, id: "cap-signature", "data-status": result.status },
    h("strong", {}, `${t("cap_signature")}: ${t(`cap_result_${result.status}`)}`), " — ",
    t(`cap_sig_${result.status}`, { reason: result.reason || "" })));
  if (result.signer) lines.push(h("p", { id: "cap-signer" }, t("cap_signer", { subject: result.signer, fingerprint: result.certificate_sha256 })));
  const recorded = opened.posted ? null : opened.notice.body.cap_signature;
  if (recorded && recorded.status in SIGNATURE_CLASS) {
    lines.push(h("p", { id: "cap-recorded", class: "hint" }, t("cap_recorded", { result: t(`cap_result_${recorded.status}`) })));
  }
  return { ...shown, section: h("section", { class: "cap", id: "cap" }, lines) };
}

/** "Download as CAP 1.2": the same XML as `liaison read --cap`, made here from the decrypted notice. */
function downloadCap(fetched, opened) {
  let bytes;
  try { bytes = cap.noticeToCap(fetched, opened.notice, opened.sender); } catch (e) {
    notify(t("cap_export_failed", { reason: e.message }), "error");
    return;
  }
  const url = URL.createObjectURL(new Blob([bytes], { type: cap.CAP_MEDIA_TYPE }));
  const link = h("a", { href: url, download: `${fetched.id}.cap.xml`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/** The data key from this contact's wrap. A wrap for another key of this contact that this key
 *  cannot open is a key change (the broker re-wraps open notices for the new key), not tampering. */
function unwrapOwn(wrap) {
  try {
    return c.unwrap(c.b64decode(wrap.sealed), session.encryption);
  } catch (e) {
    const own = c.keyId(session.id, "x25519", c.publicX25519(session.encryption));
    if (wrap.key_id && wrap.key_id !== own) throw Object.assign(new Error(wrap.key_id), { previousKey: true });
    throw e;
  }
}

/** The channel's labels (policy file, in the reader's language) for a field or an enum value;
 *  own-property lookups only, so a body's "__proto__" or "constructor" stays its own text. */
const own = (map, key) => (map && Object.prototype.hasOwnProperty.call(map, key) ? map[key] : null);
const fieldName = (labels, k) => own(labels.fields, k) || k.replace(/_/g, " ");

function plain(value, labels) {
  if (Array.isArray(value)) return value.map((v) => plain(v, labels)).join(", ");
  if (value && typeof value === "object") return Object.entries(value).map(([k, v]) => `${fieldName(labels, k)}: ${plain(v, labels)}`).join("; ");
  if (typeof value === "string") return own(labels.values, value) || value;
  return String(value);
}

function fields(body, labels = {}) {
  const rows = Object.entries(body || {}).map(([k, v]) =>
    h("tr", { "data-field": k }, h("th", { scope: "row" }, fieldName(labels, k)), h("td", {}, plain(v, labels))));
  return h("table", { class: "fields" }, h("tbody", {}, rows));
}

async function noticeView(id) {
  stop();
  const fetched = await api("GET", `/v1/notices/${encodeURIComponent(id)}`);
  let opened = null;
  let failure = null;
  try { opened = openNotice(fetched, await keyBindings()); } catch (e) { failure = e; }
  const signer = opened && { who: opened.sender, key: fetched.signature.sender_key_id };
  const verdict = opened
    ? h("p", { class: "verdict ok", id: "verdict" }, opened.foreign
      ? t("verified_abroad", { ...signer, country: String(fetched.origin.country || fetched.origin.peer).toUpperCase() })
      : t("verified", signer))
    : failure.previousKey
      ? h("p", { class: "verdict note", id: "verdict", role: "status" }, t("previous_key"))
      : h("p", { class: "verdict bad", id: "verdict", role: "alert" }, t("refused"), " (", failure.message, ")");
  const ackArea = h("div", { id: "ack-area" });
  const reply = h("textarea", { id: "reply", rows: "3", maxlength: "4000" });
  const acknowledge = async () => {
    const statement = c.utf8(`liaison-ack-v1\n${fetched.id}\n${session.id}\n${opened.digest}`);
    const body = {
      key_id: c.keyId(session.id, "ed25519", c.publicEd25519(session.signing)),
      signature: c.b64encode(c.sign(session.signing, statement)),
    };
    if (fetched.reply_key && reply.value.trim()) {
      const to = replyKey(fetched, opened);
      const sealed = c.sealBody(c.utf8(reply.value.trim()), c.utf8(`liaison-reply-v1\n${fetched.id}`));
      body.reply = {
        key_id: to.key_id,
        wrap: c.b64encode(c.wrap(sealed.key, c.b64decode(to.public))),
        nonce: c.b64encode(sealed.nonce), ciphertext: c.b64encode(sealed.ciphertext),
      };
    }
    const done = await api("POST", `/v1/notices/${encodeURIComponent(fetched.id)}/ack`, body);
    ackArea.replaceChildren(h("p", { class: "verdict ok", id: "acked" }, t("acked", { at: when(done.acknowledged_at) })));
  };
  let shown = opened ? { subject: opened.notice.subject, body: opened.notice.body, section: null } : null;
  if (opened && typeof opened.notice.body?.cap_original === "string") shown = await capView(opened);
  if (fetched.acknowledged_at) ackArea.append(h("p", { class: "verdict ok", id: "acked" }, t("acked", { at: when(fetched.acknowledged_at) })));
  else if (opened) {
    if (fetched.reply_key) ackArea.append(h("label", { for: "reply" }, t("reply")), reply);
    ackArea.append(h("button", { id: "ack", onclick: () => acknowledge().catch((e) => notify(e.message, "error")) }, t("ack")));
  }
  show(h("article", { class: "card notice-view" },
    tlpBlock(fetched.marking),
    // From the signed notice once verified (openNotice refused a broker copy that differs).
    exerciseBanner(opened ? opened.notice.exercise : fetched.exercise, "exercise-banner"),
    h("a", { href: "#/inbox", class: "back" }, `← ${t("back")}`),
    verdict,
    shown ? h("h2", { id: "subject" }, shown.subject) : h("h2", { class: "visually-hidden" }, t("notice")),
    deadline(fetched.ack_deadline, fetched.acknowledged_at, "deadline"),
    h("dl", { class: "meta" },
      h("dt", {}, t("from")), h("dd", {}, opened ? opened.sender : named(fetched.sender_name, fetched.sender)),
      h("dt", {}, t("channel")), h("dd", { id: "meta-channel" }, named(fetched.channel_title, fetched.channel)),
      h("dt", {}, t("jurisdiction")), h("dd", { id: "meta-jurisdiction" }, named(fetched.jurisdiction_name, fetched.jurisdiction)),
      h("dt", {}, t("role")), h("dd", {}, Object.entries(fetched.role_titles || {}).map(([id, title]) => named(title, id)).join(", ") || "—"),
      h("dt", {}, t("severity")), h("dd", {}, severityText(fetched.severity)),
      h("dt", {}, t("sent")), h("dd", {}, when(fetched.created_at)),
      h("dt", {}, t("root")), h("dd", { id: "root-fingerprint" }, session.root ? `${trust.fingerprint(session.root).slice(0, 16)}…` : "—")),
    shown ? shown.section : null,
    shown ? fields(shown.body, fetched.labels) : null,
    opened ? h("button", { type: "button", class: "secondary", id: "download-cap", onclick: () => downloadCap(fetched, opened) }, t("download_cap")) : null,
    ackArea));
}

// -- agencies: the status of their own notices, as a timeline ------------------------------------

function statusView() {
  const input = h("input", { id: "status-id", spellcheck: "false", required: true });
  const out = h("div", { id: "timeline" });
  const remembered = JSON.parse(localStorage.getItem("liaison.sent") || "[]");
  const load = async (id) => {
    const s = await api("GET", `/v1/notices/${encodeURIComponent(id)}/status`);
    localStorage.setItem("liaison.sent", JSON.stringify([id, ...remembered.filter((x) => x !== id)].slice(0, 20)));
    out.replaceChildren(h("h3", {}, `${named(s.channel_title, s.channel)} · ${named(s.jurisdiction_name, s.jurisdiction)} · ${when(s.created_at)}`), tlpBlock(s.marking),
      exerciseBanner(s.exercise, "exercise-banner"),
      deadline(s.ack_deadline, s.roles.length && s.roles.every((r) => r.acknowledged_at), "deadline"),
      h("ol", { class: "timeline" }, s.roles.map((r) => h("li", { class: `state-${r.state}` },
        h("strong", {}, r.role_title), " — ", r.jurisdiction_name || r.jurisdiction, " ",
        h("span", { class: `state state-${r.state}` }, t(r.state)),
        h("ul", {}, ["delivered", "read", "acknowledged", "escalated"].filter((k) => r[`${k}_at`])
          .map((k) => h("li", {}, `${t(k)}: ${when(r[`${k}_at`])}`)))))),
      repliesSection(s));
  };
  show(h("section", { class: "card" }, h("h2", {}, t("status")),
    h("form", { onsubmit: (e) => { e.preventDefault(); load(input.value.trim()).catch((err) => notify(err.message, "error")); } },
      h("label", { for: "status-id" }, t("notice_id")), input, h("button", { type: "submit" }, t("show"))),
    remembered.length ? h("p", {}, remembered.map((id) => h("button", { class: "link", onclick: () => load(id) }, id.slice(0, 12)))) : null,
    out),
  sentSection((id) => load(id).then(() => out.scrollIntoView()).catch((err) => notify(err.message, "error"))));
}

/** The agency's own notices, newest first, each role with its state; a page at a time. */
function sentSection(open) {
  const list = h("ul", { class: "sent", id: "sent" });
  const more = h("button", { type: "button", class: "secondary", id: "sent-more", hidden: true }, t("more"));
  let cursor = null;
  const load = async () => {
    const page = await api("GET", `/v1/notices?limit=20${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (!cursor && !page.items.length) list.append(h("li", { class: "empty" }, t("empty")));
    list.append(...page.items.map((n) => h("li", { class: "sent-notice", "data-id": n.id },
      banner(n.marking),
      h("div", { class: "what" },
        exerciseTag(n.exercise),
        h("button", { type: "button", class: "link", onclick: () => open(n.id) },
          `${named(n.channel_title, n.channel)} · ${named(n.jurisdiction_name, n.jurisdiction)}`),
        h("span", { class: "sub" }, `${when(n.created_at)}${n.replies ? ` · ${t("replies_count", { n: n.replies })}` : ""}`),
        h("ul", { class: "role-states" }, n.roles.map((r) => h("li", {},
          `${named(r.role_title, r.role)} — ${named(r.jurisdiction_name, r.jurisdiction)} `,
          h("span", { class: `state state-${r.state}` }, t(r.state)))))),
      deadline(n.ack_deadline, n.roles.length && n.roles.every((r) => r.acknowledged_at), null))));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  more.addEventListener("click", () => load().catch((e) => notify(e.message, "error")));
  const section = h("section", { class: "card" }, h("h3", {}, t("sent_notices")), list, more);
  load().catch((e) => notify(e.message, "error"));
  return section;
}

/** The replies to a notice, decrypted here with the agency's X25519 key (chosen at sign-in);
 *  the broker passed them on unread. */
function repliesSection(s) {
  if (!s.replies || !s.replies.length) return h("p", { class: "hint", id: "replies" }, t("no_replies"));
  const roleTitle = (id) => named((s.roles.find((r) => r.role === id) || {}).role_title, id);
  return h("section", { id: "replies" }, h("h3", {}, t("replies")), h("ul", { class: "replies" }, s.replies.map((r) => {
    let text;
    try {
      if (!session.encryption) throw new Error(t("reply_needs_key"));
      const key = c.unwrap(c.b64decode(r.wrap), session.encryption);
      text = new TextDecoder().decode(c.openBody(c.b64decode(r.ciphertext), c.b64decode(r.nonce), c.utf8(`liaison-reply-v1\n${s.id}`), key));
    } catch (e) {
      return h("li", { class: "reply bad" }, `${roleTitle(r.role)} · ${when(r.created_at)}: ${e.message.startsWith(t("reply_needs_key")) ? e.message : t("reply_unreadable")}`);
    }
    return h("li", { class: "reply" }, h("strong", {}, `${roleTitle(r.role)} · ${when(r.created_at)}`), h("p", { class: "reply-text" }, text));
  })));
}

// -- auditors: the log, a chart, and verification in this page ---------------------------------------

// With `hidden`, events outside this auditor's jurisdiction come in their place as leaf hashes
// ({seq, hidden: true, leaf}), so the chain and the Merkle root recompute without their content.
async function allEvents(size, hidden = false) {
  const events = [];
  let cursor = "0";
  while (cursor !== null && (size === undefined || events.length < size)) {
    const page = await api("GET", `/v1/audit/events?limit=1000&cursor=${cursor}${hidden ? "&hidden=leaves" : ""}`);
    events.push(...page.events);
    cursor = page.next_cursor;
  }
  return size === undefined ? events : events.slice(0, size);
}

/** The chart's names for channels and places (the continuity answer has both for an auditor);
 *  ids stay where it cannot be had. */
async function chartNames() {
  try {
    const r = await api("GET", "/v1/directory/continuity");
    return { channels: r.channels || {}, places: r.jurisdiction_names || {} };
  } catch { return { channels: {}, places: {} }; }
}

function chart(events, names = { channels: {}, places: {} }) {
  const posted = new Map();
  const groups = new Map();
  for (const e of events) {
    if (e.action === "notice.posted") {
      posted.set(e.object, e);
      const key = `${e.channel} · ${e.details.jurisdiction}`;
      const label = `${named(names.channels[e.channel], e.channel)} · ${named(names.places[e.details.jurisdiction], e.details.jurisdiction)}`;
      groups.set(key, groups.get(key) || { count: 0, waits: [], label });
      groups.get(key).count += 1;
    } else if (e.action === "delivery.acknowledged" && posted.has(e.object)) {
      const p = posted.get(e.object);
      groups.get(`${p.channel} · ${p.details.jurisdiction}`).waits.push((new Date(e.at) - new Date(p.at)) / 60000);
    }
  }
  const rows = [...groups.entries()];
  const max = Math.max(1, ...rows.map(([, g]) => g.count));
  // Drawn at the width it is shown at (not scaled down): its 13 px text stays 13 px on a phone.
  const width = Math.round(Math.max(280, Math.min(640, (document.getElementById("chart") || main()).clientWidth - 2)));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${52 * rows.length + 8}`);
  svg.setAttribute("width", width);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", t("chart_title"));
  const line = (y, content) => {
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", 6); text.setAttribute("y", y);
    text.textContent = content;
    return text;
  };
  rows.forEach(([, g], i) => {
    const median = g.waits.length ? g.waits.sort((a, b) => a - b)[Math.floor(g.waits.length / 2)] : null;
    const bar = document.createElementNS(ns, "rect");
    Object.entries({ x: 6, y: 52 * i + 38, height: 9, width: Math.max(2, ((width - 12) * g.count) / max), class: "bar" })
      .forEach(([k, v]) => bar.setAttribute(k, v));
    svg.append(line(52 * i + 16, g.label),
      line(52 * i + 32, `${g.count} — ${median === null ? t("no_acks") : `${median.toFixed(1)} ${t("minutes")}`}`), bar);
  });
  return h("figure", { class: "chart" }, h("figcaption", {}, t("chart_title")), svg);
}

/** During a log key rotation each checkpoint is signed by the old key too: the pinned key vouches for the new one. */
function cosignedBy(cp, pinned) {
  try { c.openNote(cp.note, cp.key_name, c.b64decode(pinned)); return true; } catch { return false; }
}

async function verifyLog(report) {
  const lines = [];
  const say = (ok, message) => { lines.push(h("li", { class: ok ? "ok" : "bad" }, `${ok ? "✓" : "✗"} ${message}`)); report.replaceChildren(h("ul", {}, lines)); };
  report.replaceChildren(t("checking"));
  const cp = await api("GET", "/v1/audit/checkpoint?fresh=1");
  const pub = c.b64decode(cp.public_key);
  const pinned = localStorage.getItem("liaison.checkpoint-key");
  if (pinned && pinned !== cp.public_key && !cosignedBy(cp, pinned)) { say(false, "the broker's checkpoint key changed since this browser last verified: ask the operator why"); return false; }
  localStorage.setItem("liaison.checkpoint-key", cp.public_key);
  const rotated = pinned && pinned !== cp.public_key;
  say(true, `checkpoint key ${c.hex(pub.subarray(0, 8))}… ${rotated ? "is the log's new key: this checkpoint is signed by it and by the key this browser pinned, so the new one is pinned from now on" : pinned ? "is the one this browser pinned" : "pinned in this browser from now on"}`);
  const body = c.openNote(cp.note, cp.key_name, pub);
  say(true, `the checkpoint for ${cp.size} events is signed by the broker's key (C2SP signed note, Ed25519)`);
  const [origin, size, rootB64] = body.trimEnd().split("\n");
  if (origin !== cp.origin || Number(size) !== cp.size) { say(false, "the checkpoint's origin or size differs from its envelope"); return false; }
  const events = await allEvents(cp.size, true);
  const leaves = [];
  let prev = "0".repeat(64);
  for (const [i, e] of events.entries()) {
    if (e.seq !== i + 1) { say(false, `event ${i + 1} is missing or out of place`); return false; }
    if (e.hidden === true) {
      if (!/^[0-9a-f]{64}$/.test(e.leaf)) { say(false, `event ${e.seq}: a malformed leaf hash`); return false; }
      prev = e.leaf;
      leaves.push(c.unhex(e.leaf));
      continue;
    }
    if (e.prev !== prev) { say(false, `event ${e.seq}: its link to the event before is broken`); return false; }
    const leaf = c.leafHash(c.canonicalEvent(e));
    prev = c.hex(leaf);
    leaves.push(leaf);
  }
  const hiddenCount = events.filter((e) => e.hidden === true).length;
  say(true, `${events.length} events in order, each linked to the one before (hash chain)${hiddenCount ? `; ${hiddenCount} outside your jurisdiction, by leaf hash only` : ""}`);
  const root = c.rootOf(leaves);
  if (c.b64encode(root) !== rootB64) { say(false, "the Merkle root of the events differs from the signed checkpoint"); return false; }
  say(true, "the RFC 9162 Merkle root of these events equals the signed root");
  const shown = events.filter((e) => e.hidden !== true);
  if (!shown.length) return true;
  const seq = shown[Math.floor(Math.random() * shown.length)].seq;
  const proof = await api("GET", `/v1/audit/proof/inclusion?seq=${seq}&size=${cp.size}`);
  const ok = c.verifyInclusion(proof.leaf_index, proof.tree_size, c.leafHash(c.canonicalEvent(proof.event)), proof.proof.map(c.b64decode), root);
  say(ok, `the broker's inclusion proof for event ${seq} (${proof.proof.length} hashes) checks against the signed root`);
  return ok;
}

const AUDIT_PAGE = 200;

/** The rule and the policies behind an event: for routing, each role reached with the rule that
 *  reached it and the role not reached with why; for other decisions, the policies. */
function ruleCell(e) {
  const lines = [];
  if (e.action === "notice.routed" && e.details) {
    for (const r of e.details.recipients || []) lines.push(`${r.role} ← ${r.rule}${r.policies && r.policies.length ? ` (${r.policies.join(", ")})` : ""}`);
    for (const n of e.details.not_reached || []) lines.push(`${n.role} ✗ ${n.rule || "—"}: ${n.reason}`);
  } else if (e.policies && e.policies.length) {
    lines.push(e.policies.join(", "));
  }
  return lines.length ? h("ul", { class: "rules" }, lines.map((x) => h("li", {}, x))) : "";
}

async function auditView() {
  stop();
  const inputs = {
    from: dateInput("audit-from"),
    to: dateInput("audit-to"),
    ...Object.fromEntries(["notice", "channel", "actor", "action"].map((k) => [k, h("input", { id: `audit-${k}`, spellcheck: "false" })])),
    // Events about exercise or test notices (the broker joins each event to its notice's marking).
    exercise: h("select", { id: "audit-exercise" }, h("option", { value: "" }, t("all")),
      ...[...EXERCISES, "none"].map((v) => h("option", { value: v }, t(`exercise_filter_${v}`)))),
  };
  const labels = { from: "from_date", to: "to_date" };
  const table = h("tbody", {});
  const report = h("div", { id: "verify-report", "aria-live": "polite" });
  const info = h("span", { id: "audit-page", "aria-live": "polite" });
  const previous = h("button", { type: "button", class: "secondary", id: "audit-previous", disabled: true }, `← ${t("previous_page")}`);
  const next = h("button", { type: "button", class: "secondary", id: "audit-next", disabled: true }, `${t("next_page")} →`);
  const columns = ["#", t("time"), t("actor"), t("action"), t("notice"), t("outcome"), t("reason"), t("rule_policy")];
  const cursors = ["0"]; // the cursor each page shown so far started at: previous goes back one
  let nextCursor = null;
  const params = () => {
    const q = new URLSearchParams({ limit: String(AUDIT_PAGE) });
    const [from, to] = [readDay(inputs.from), readDay(inputs.to)]; // day.month.year (dates.js)
    if (from) q.set("from", dayStart(from));
    if (to) q.set("to", dayStart(to, true));
    for (const k of ["notice", "channel", "actor", "action", "exercise"]) if (inputs[k].value.trim()) q.set(k, inputs[k].value.trim());
    return q;
  };
  const load = async () => {
    const q = params();
    q.set("cursor", cursors[cursors.length - 1]);
    const page = await api("GET", `/v1/audit/events?${q}`);
    nextCursor = page.next_cursor;
    table.replaceChildren(...page.events.map((e) => h("tr", { "data-seq": e.seq },
      ...[e.seq, when(e.at), e.actor, e.action, e.object, e.outcome, e.reason || ""].map((v, i) => h("td", { "data-label": columns[i] }, v, i === 4 ? exerciseTag(e.details && e.details.exercise) : null)),
      h("td", { "data-label": columns[7] }, ruleCell(e)))));
    const first = page.events.length ? page.events[0].seq : null;
    const last = page.events.length ? page.events[page.events.length - 1].seq : null;
    info.textContent = page.events.length
      ? t("audit_page", { page: cursors.length, first, last })
      : t("no_events");
    previous.disabled = cursors.length === 1;
    next.disabled = !nextCursor;
  };
  const failed = (err) => notify(err.message, "error");
  previous.addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); load().catch(failed); } });
  next.addEventListener("click", () => { if (nextCursor) { cursors.push(nextCursor); load().catch(failed); } });
  const chartArea = h("div", { id: "chart" });
  show(h("section", {},
    h("h2", {}, t("audit")),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); cursors.splice(1); load().catch(failed); } },
      ...Object.entries(inputs).map(([k, input]) => (labels[k] ? dateLabel(t(labels[k]), input) : h("label", {}, t(k === "exercise" ? "exercise_filter" : k), " ", input))),
      h("button", { type: "submit" }, t("search"))),
    h("button", { id: "verify", onclick: () => verifyLog(report).catch(failed) }, t("verify")),
    report, chartArea,
    h("nav", { class: "pager", "aria-label": t("pages") }, previous, info, next),
    h("div", { class: "table-wrap" },
      h("table", { class: "events" }, h("thead", {}, h("tr", {}, columns.map((x) => h("th", { scope: "col" }, x)))), table)),
    h("div", { class: "pager" }, // the same pager again below the table (one landmark: the first)
      h("button", { type: "button", class: "secondary", onclick: () => previous.click() }, `← ${t("previous_page")}`),
      h("button", { type: "button", class: "secondary", onclick: () => next.click() }, `${t("next_page")} →`))));
  await load();
  const [events, names] = await Promise.all([allEvents(), chartNames()]);
  chartArea.replaceChildren(chart(events, names));
}

// -- routing ---------------------------------------------------------------------------------------

function renderHeader() {
  const nav = document.getElementById("nav");
  const links = [];
  if (session.kind === "contact") links.push(h("a", { href: "#/inbox" }, t("inbox")));
  if (session.auditor) links.push(h("a", { href: "#/audit" }, t("audit")), h("a", { href: "#/continuity" }, t("continuity")));
  if (session.kind === "agency") links.push(h("a", { href: "#/status" }, t("status")));
  if (session.kind) {
    links.push(h("span", { class: "who", id: "who" }, session.id));
    links.push(h("button", { class: "secondary", onclick: () => { stop(); Object.assign(session, { kind: null, id: null, signing: null, encryption: null, root: null, token: null, auditor: false }); renderHeader(); location.hash = "#/"; route(); } }, t("signout")));
  }
  const select = h("select", { id: "language", "aria-label": t("language"), onchange: async (e) => { await setLanguage(e.target.value); renderHeader(); keepTyped = true; route(); } },
    Object.entries(LANGUAGES).map(([code, name]) => h("option", { value: code, selected: code === currentLanguage() }, name)));
  nav.replaceChildren(...links, select);
  document.getElementById("tagline").textContent = t("tagline");
}

/** Views are drawn one after another, each for the address at its turn: a view still loading
 *  (a notice re-drawn for the language switch) cannot finish after, and over, the next one.
 *  One draw waits at most, and one for an address change is dropped when that address's view is
 *  already there: a sign-in both sets the address and draws it, and a second draw of the same view
 *  would replace the one the reader has started typing in or clicking on. A language switch, a
 *  sign-out or a forgotten key (force) always draws again. */
let drawing = Promise.resolve();
let drawn = null; // the address of the view drawn last, or being drawn
let waiting = null; // the draw queued and not yet started
function route(force = true) {
  if (waiting) {
    waiting.force ||= force;
    return drawing;
  }
  const turn = { force };
  waiting = turn;
  drawing = drawing.then(() => {
    waiting = null;
    if (!turn.force && location.hash === drawn) return undefined;
    drawn = location.hash;
    return drawOnce();
  });
  return drawing;
}

async function drawOnce() {
  try {
    await draw();
  } catch (e) {
    show(h("section", { class: "card" }, h("h2", {}, t("error"))));
    notify(`${t("error")}: ${e.message}`, "error");
  }
  settle();
}

async function draw() {
  const [, view, arg, extra] = location.hash.split("/");
  if (view === "enrol" && !session.kind) return enrolView(show, decodeURIComponent(arg || ""), extra || "");
  if (!session.kind) return signInView();
  if (view === "notice" && arg) return await noticeView(decodeURIComponent(arg));
  if (view === "audit" && session.auditor) return await auditView();
  if (view === "continuity" && session.auditor) { stop(); return await continuityView(show, api); }
  if (session.kind === "agency") return statusView();
  return await inboxView();
}

await initLanguage();
renderHeader();
window.addEventListener("hashchange", () => route(false));
route();
