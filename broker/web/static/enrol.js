// Enrolment without key files: the official types the one-time code their administrator gave
// them; this page makes the Ed25519 (signing) and X25519 (encryption) keys here, keeps them on
// this device encrypted under a passphrase, offers the same encrypted bundle as a backup file,
// and sends only the two public keys to the broker (POST /v1/enrol), where they wait until the
// administrator approves the fingerprint shown here (`liaison directory approve`).
// The directory root is pinned here too: from the broker, checked against the fingerprint in
// the enrolment link when the link carries one (the administrator printed it with the code).
import * as c from "./crypto.js";
import { h } from "./dom.js";
import { t } from "./i18n.js";
import * as trust from "./trust.js";
import { randomBytes, sha256 } from "./vendor/noble.js";

// The device store and its format are those of app.js's "keep the keys on this device":
// PBKDF2-SHA-256 (310,000 iterations) → AES-256-GCM over {kind, id, signing, encryption, root}.
export const STORE = "liaison.keys";
const ITERATIONS = 310000;
const BACKUP_FORMAT = "liaison-key-backup-v1";
export const MIN_PASSPHRASE = 12;

/** Strong enough to guard keys on a device that may be lost: long, and not a repeated pattern. */
export function strongEnough(passphrase) {
  if (passphrase.length < MIN_PASSPHRASE) return false;
  if (new Set(passphrase).size < 6) return false;
  return !/^(.+?)\1+$/.test(passphrase); // "abcabcabcabc" is four characters long, really
}

/** The short fingerprint of both public keys, as broker/service/enrolment.py computes it. */
export function fingerprint(signingPublic, encryptionPublic) {
  const digest = c.hex(sha256(c.concat(c.utf8("liaison-enrol-v1\n"), signingPublic, encryptionPublic)));
  return digest.slice(0, 16).toUpperCase().match(/..../g).join("-");
}

async function passphraseKey(passphrase, salt, iterations = ITERATIONS) {
  const base = await crypto.subtle.importKey("raw", c.utf8(passphrase), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", salt, iterations, hash: "SHA-256" },
    base, { name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
}

/** The keys sealed under the passphrase, in the device store's format. */
export async function seal(secret, passphrase) {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, await passphraseKey(passphrase, salt), c.utf8(JSON.stringify(secret)));
  return { salt: c.b64encode(salt), iv: c.b64encode(iv), sealed: c.b64encode(new Uint8Array(sealed)) };
}

/** Open a sealed bundle; a wrong passphrase (AES-GCM refuses) is said as such. */
export async function open(kept, passphrase) {
  let plain;
  try {
    plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: c.b64decode(kept.iv) },
      await passphraseKey(passphrase, c.b64decode(kept.salt)), c.b64decode(kept.sealed));
  } catch {
    throw Object.assign(new Error(t("wrong_passphrase")), { wrongPassphrase: true });
  }
  return JSON.parse(new TextDecoder().decode(plain));
}

async function fetchRoot(expected) {
  const response = await fetch("/v1/trust/root.json");
  if (!response.ok) return { root: null, print: null };
  const root = await response.text();
  const print = trust.fingerprint(root);
  if (expected && !print.startsWith(expected.toLowerCase())) throw new Error(t("enrol_root_mismatch"));
  return { root, print };
}

async function submit(code, signing, encryption) {
  const response = await fetch("/v1/enrol", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      code,
      signing_key: c.b64encode(c.publicEd25519(signing)),
      encryption_key: c.b64encode(c.publicX25519(encryption)),
    }),
  });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) throw new Error(t("enrol_code_refused"));
  if (response.status === 429) throw new Error(t("enrol_too_many"));
  if (!response.ok) throw new Error(t("enrol_failed", { reason: body.detail || body.title || response.status }));
  return body;
}

function backupLink(contact, kept) {
  const file = { format: BACKUP_FORMAT, contact, created: new Date().toISOString(), kdf: { name: "PBKDF2-SHA-256", iterations: ITERATIONS }, ...kept };
  const url = URL.createObjectURL(new Blob([JSON.stringify(file, null, 1)], { type: "application/json" }));
  return h("a", { href: url, download: `liaison-keys-${contact}.json`, id: "enrol-backup", class: "button" }, t("enrol_backup"));
}

function doneView(show, answer, rootPrint, kept) {
  const heading = h("h2", { tabindex: "-1" }, t("enrol_done_title"));
  show(h("section", { class: "card enrol", id: "enrol-done" },
    heading,
    h("p", {}, t("enrol_done_for", { name: answer.name, contact: answer.contact })),
    h("p", { class: "enrol-label" }, t("enrol_fingerprint")),
    h("p", { class: "fingerprint", id: "enrol-fingerprint" }, answer.fingerprint),
    h("p", {}, t("enrol_read_aloud")),
    rootPrint ? h("p", { class: "hint" }, `${t("enrol_root_fingerprint")}: `, h("code", { id: "enrol-root" }, rootPrint.slice(0, 16))) : null,
    h("p", {}, backupLink(answer.contact, kept)),
    h("p", { class: "hint" }, t("enrol_backup_hint")),
    h("p", {}, h("a", { href: "#/", id: "enrol-signin" }, t("enrol_to_signin")))));
  heading.focus();
}

/** The enrolment page: #/enrol[/CODE[/ROOT-FINGERPRINT]]. `show` replaces the main view. */
const fromLink = { code: "", rootPrint: "" }; // kept in memory while the page lives

export function enrolView(show, code = "", rootPrint = "") {
  // The code is a credential: keep it in the form (and here, for a re-render after the language
  // switch), not in the address bar or the history.
  if (code) {
    Object.assign(fromLink, { code, rootPrint });
    history.replaceState(null, "", "#/enrol");
  }
  ({ code, rootPrint } = code ? { code, rootPrint } : fromLink);
  const error = h("p", { class: "error-line", id: "enrol-error", role: "alert" });
  const codeInput = h("input", { id: "enrol-code", value: code, required: true, autocomplete: "one-time-code", spellcheck: "false", autocapitalize: "characters" });
  const pass = h("input", { id: "enrol-passphrase", type: "password", autocomplete: "new-password", minlength: String(MIN_PASSPHRASE), "aria-describedby": "enrol-passphrase-hint" });
  const again = h("input", { id: "enrol-passphrase-again", type: "password", autocomplete: "new-password" });
  const button = h("button", { type: "submit", id: "enrol-submit" }, t("enrol_submit"));
  const say = (message) => { error.textContent = message; };
  const form = h("form", {
    class: "card enrol", id: "enrol", novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      say("");
      if (!codeInput.value.trim()) return say(t("enrol_no_code"));
      if (!strongEnough(pass.value)) return say(t("enrol_weak", { n: MIN_PASSPHRASE }));
      if (pass.value !== again.value) return say(t("enrol_mismatch"));
      button.disabled = true;
      button.textContent = t("enrol_working");
      try {
        const { root, print } = await fetchRoot(rootPrint);
        const signing = randomBytes(32);
        const encryption = randomBytes(32);
        const answer = await submit(codeInput.value.trim(), signing, encryption);
        const kept = await seal({
          kind: "contact", id: answer.contact, signing: c.b64encode(signing), encryption: c.b64encode(encryption), root,
        }, pass.value);
        localStorage.setItem(STORE, JSON.stringify(kept));
        pass.value = ""; again.value = "";
        doneView(show, answer, print, kept);
      } catch (e) {
        say(e.message);
        button.disabled = false;
        button.textContent = t("enrol_submit");
      }
    },
  },
  h("h2", { tabindex: "-1" }, t("enrol_title")),
  h("p", {}, t("enrol_intro")),
  localStorage.getItem(STORE) ? h("p", { class: "hint" }, t("enrol_replaces")) : null,
  h("label", { for: "enrol-code" }, t("enrol_code")), codeInput,
  h("label", { for: "enrol-passphrase" }, t("enrol_passphrase")), pass,
  h("p", { class: "hint", id: "enrol-passphrase-hint" }, t("enrol_passphrase_hint", { n: MIN_PASSPHRASE })),
  h("label", { for: "enrol-passphrase-again" }, t("enrol_passphrase_again")), again,
  error,
  button);
  show(form, restoreCard());
  form.querySelector("h2").focus();
}

/** Put a backup file back on this device (a new browser, a reinstalled phone). */
function restoreCard() {
  const file = h("input", { id: "restore-file", type: "file", accept: ".json,application/json" });
  const pass = h("input", { id: "restore-passphrase", type: "password", autocomplete: "current-password" });
  const line = h("p", { class: "error-line", id: "restore-error", role: "alert" });
  return h("form", {
    class: "card enrol", id: "restore",
    onsubmit: async (event) => {
      event.preventDefault();
      line.textContent = "";
      try {
        const backup = JSON.parse(file.files[0] ? await file.files[0].text() : "{}");
        if (backup.format !== BACKUP_FORMAT) throw new Error(t("restore_not_backup"));
        const kept = { salt: backup.salt, iv: backup.iv, sealed: backup.sealed };
        await open(kept, pass.value); // the passphrase must open it before it replaces anything
        localStorage.setItem(STORE, JSON.stringify(kept));
        location.hash = "#/";
      } catch (e) {
        line.textContent = e instanceof SyntaxError ? t("restore_not_backup") : e.message;
      }
    },
  },
  h("h2", {}, t("restore_title")),
  h("label", { for: "restore-file" }, t("restore_file")), file,
  h("label", { for: "restore-passphrase" }, t("passphrase")), pass,
  line,
  h("button", { type: "submit", class: "secondary", id: "restore-submit" }, t("restore_submit")));
}
