// The directory's root of trust, checked in this page: the same rules as broker/trust/core.py.
// The root was chosen by the user at sign-in (given at enrolment); the broker only relays the
// administrators' signed files, so a key it inserted in its own tables is not in them.
// TUF signs OLPC canonical JSON as securesystemslib encodes it: keys sorted by code point, no
// whitespace, strings escaped only for backslash and double quote, integers only, UTF-8.
import { sha256 } from "./vendor/noble.js";
import { b64decode, hex, utf8, verify } from "./crypto.js";

const byCodePoint = (a, b) => {
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
};

export function canonical(value) {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error("canonical JSON carries integers only");
    return String(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort(byCodePoint);
    return `{${keys.map((k) => `${canonical(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  throw new Error("not canonical JSON");
}

const parse = (text, type, what) => {
  let md;
  try { md = JSON.parse(text); } catch { throw new Error(`the ${what} metadata is malformed`); }
  if (!md || !md.signed || !Array.isArray(md.signatures)) throw new Error(`the ${what} metadata is malformed`);
  if (md.signed._type !== type) throw new Error(`the ${what} metadata is of type ${md.signed._type}`);
  const ids = md.signatures.map((s) => s.keyid);
  if (new Set(ids).size !== ids.length) throw new Error(`the ${what} metadata is malformed`);
  return md;
};

/** Does the threshold of `role` in `root` (signed root metadata) sign `md`? */
function signedBy(root, role, md) {
  const delegation = root.signed.roles[role];
  if (!delegation) return false;
  const payload = utf8(canonical(md.signed));
  const good = new Set();
  for (const keyid of new Set(delegation.keyids)) {
    const key = root.signed.keys[keyid];
    const sig = md.signatures.find((s) => s.keyid === keyid);
    if (!key || !sig || key.keytype !== "ed25519" || key.scheme !== "ed25519") continue;
    if (verify(hexBytes(key.keyval.public), payload, hexBytes(sig.sig))) good.add(keyid);
  }
  return good.size >= delegation.threshold;
}

function hexBytes(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) return new Uint8Array(0);
  return Uint8Array.from(text.match(/../g) || [], (b) => parseInt(b, 16));
}

export function parseRoot(text) {
  const root = parse(text, "root", "root");
  if (!signedBy(root, "root", root)) throw new Error("the root is not signed by its own threshold");
  return root;
}

export function updateRoot(trusted, text) {
  const next = parse(text, "root", "root");
  if (!signedBy(trusted, "root", next)) throw new Error("the new root is not signed by the current root");
  if (next.signed.version !== trusted.signed.version + 1) {
    throw new Error(`root version ${next.signed.version} does not follow version ${trusted.signed.version}`);
  }
  if (!signedBy(next, "root", next)) throw new Error("the new root is not signed by its own threshold");
  return next;
}

/** SHA-256 of the pinned root's signed part, as `PinnedRoot.fingerprint` in adapters/trust.py. */
export const fingerprint = (text) => hex(sha256(utf8(canonical(parseRoot(text).signed))));

export function verifyBindings(root, text, now, minVersion) {
  const md = parse(text, "targets", "key bindings");
  if (!signedBy(root, "targets", md)) throw new Error("the key bindings are not signed by the root's threshold");
  const { version, expires } = md.signed;
  if (!(new Date(expires) > now)) throw new Error(`the signed key bindings (version ${version}) have expired`);
  if (version < minVersion) throw new Error(`the signed key bindings went back from version ${minVersion} to ${version}`);
  const keys = md.signed.liaison_key_bindings;
  if (!keys || typeof keys !== "object") throw new Error("the signed key bindings have no liaison_key_bindings");
  // The peers' directory roots, signed with the keys (absent before federation): as core.py.
  const peerRoots = md.signed.liaison_peer_roots ?? {};
  if (typeof peerRoots !== "object" || Array.isArray(peerRoots)
      || !Object.entries(peerRoots).every(([k, v]) => k && typeof v === "string" && /^sha256:[0-9a-f]{64}$/.test(v))) {
    throw new Error("the signed key bindings' liaison_peer_roots are malformed");
  }
  return { version, keys, peerRoots };
}

/** A notice that crossed a border: the sending country's root and key bindings it carries,
 *  held to the pin of that root this country's administrators signed (broker/federation/
 *  origin.py, the same checks): the root's fingerprint is the pin, its threshold signed the
 *  bindings, and they are current. Relayed by the hub, the sending country's pin decides. */
export function originBindings(fetched, bindings, now) {
  const origin = fetched.origin || {};
  const source = String(origin.country || origin.peer);
  const via = origin.country && origin.country !== origin.peer ? ` (relayed by ${origin.peer})` : "";
  const pin = Object.prototype.hasOwnProperty.call(bindings.peerRoots, source) ? bindings.peerRoots[source] : null;
  if (!pin) throw new Error(`the notice crossed from ${source}${via}, whose directory root your administrators have not signed`);
  const decode = (b64) => new TextDecoder("utf-8", { fatal: true }).decode(b64decode(b64 || ""));
  let rootText, bindingsText;
  try { rootText = decode(origin.root); bindingsText = decode(origin.bindings); } catch { throw new Error("the notice's origin files are malformed"); }
  const root = parseRoot(rootText);
  const found = `sha256:${fingerprint(rootText)}`;
  if (found !== pin) {
    throw new Error(`the notice's origin root ${found.slice(0, 19)}… is not the pinned ${pin.slice(0, 19)}…: it is not the sending country's directory`);
  }
  return verifyBindings(root, bindingsText, now, 0);
}

/** The sending agency's active X25519 keys in verified bindings (its own country's, for a notice
 *  from abroad; newest last): the only keys a reply is sealed to. */
export function originReplyKeys(foreign, sender) {
  return Object.entries(foreign.keys)
    .filter(([, b]) => b.owner === sender && b.owner_kind === "organisation" && b.type === "x25519" && b.status === "active")
    .map(([keyId, b]) => ({ keyId, public: b64decode(b.public) }));
}

/** Walk root rotations from the pinned root, then fetch and verify the key bindings. */
export async function refresh(pinnedText, fetchText, now, minVersion) {
  let root = parseRoot(pinnedText);
  for (let i = 0; i < 32; i++) {
    const next = await fetchText(`/v1/trust/${root.signed.version + 1}.root.json`);
    if (next === null) break;
    root = updateRoot(root, next);
  }
  if (!(new Date(root.signed.expires) > now)) throw new Error(`the directory root (version ${root.signed.version}) has expired`);
  const bindings = await fetchText("/v1/trust/bindings.json");
  if (bindings === null) throw new Error("the broker serves no signed key bindings");
  return verifyBindings(root, bindings, now, minVersion);
}

/** The sender's bound Ed25519 key and name, or an Error that says plainly why not. */
export function senderBinding(bindings, keyId, sender) {
  const b = Object.prototype.hasOwnProperty.call(bindings.keys, keyId) ? bindings.keys[keyId] : null;
  const where = `the signed directory (version ${bindings.version})`;
  if (!b || b.type !== "ed25519") throw new Error(`key ${keyId} is not in ${where}`);
  if (b.owner !== sender || b.owner_kind !== "organisation") throw new Error(`key ${keyId} belongs to ${b.owner} in ${where}, not to ${sender}`);
  if (b.status === "revoked") throw new Error(`key ${keyId} of ${b.owner_name} has been revoked since; ${where} lists it as revoked`);
  const pub = b64decode(b.public);
  if (pub.length !== 32) throw new Error(`the binding of ${keyId} has a malformed public key`);
  // owner_names: the name by language, signed with the rest (absent in older bindings).
  const names = b.owner_names && typeof b.owner_names === "object" ? b.owner_names : {};
  return { public: pub, name: b.owner_name, names };
}
