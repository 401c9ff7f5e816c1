// The web inbox's cryptography, all of it in this page: nothing secret leaves it.
// Built on the audited @noble libraries (vendor/noble.js, bundled by `make web-vendor`).
// Formats match the broker's Python code: broker/crypto/envelope.py (XChaCha20-Poly1305 body,
// NaCl sealed-box key wraps), broker/crypto/httpsig.py (RFC 9421, RFC 9530), broker/crypto/
// note.py (C2SP signed notes) and broker/audit/merkle.py (RFC 9162).
import {
  blake2b, ed25519, hsalsa, randomBytes, sha256, sha512, x25519, xchacha20poly1305,
  xsalsa20poly1305,
} from "./vendor/noble.js";

const text = new TextEncoder();
export const utf8 = (s) => text.encode(s);

export function b64encode(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

export function b64decode(value) {
  const s = atob(value);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const b64url = (bytes) => b64encode(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
export const unhex = (text) => Uint8Array.from(text.match(/../g) || [], (b) => parseInt(b, 16));

function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

// -- keys ---------------------------------------------------------------------------------------

const OIDS = { ed25519: "2b6570", x25519: "2b656e" }; // 1.3.101.112 and 1.3.101.110

/** The raw 32-byte private key of a PKCS#8 PEM file (as `liaison init` and `keygen` write). */
export function privateKeyFromPem(pem, type) {
  const body = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, "").replace(/\s+/g, "");
  let der;
  try { der = b64decode(body); } catch { throw new Error("not a PEM private key"); }
  // SEQUENCE { INTEGER 0, SEQUENCE { OID }, OCTET STRING { OCTET STRING (32) } }: 48 bytes.
  if (der.length !== 48 || hex(der.subarray(9, 12)) !== OIDS[type]) {
    throw new Error(`not an ${type === "ed25519" ? "Ed25519 (signing)" : "X25519 (encryption)"} private key`);
  }
  return der.slice(16, 48);
}

export const publicEd25519 = (sk) => ed25519.getPublicKey(sk);
export const publicX25519 = (sk) => x25519.getPublicKey(sk);

/** The broker's key id: owner.type.first 12 hex digits of SHA-256(public key). */
export const keyId = (owner, type, pub) => `${owner}.${type}.${hex(sha256(pub)).slice(0, 12)}`;

// -- encryption ---------------------------------------------------------------------------------

function boxKey(shared) { // crypto_box_beforenm: HSalsa20(shared secret, zero nonce)
  const sigma = new Uint32Array(utf8("expand 32-byte k").buffer);
  const out = new Uint32Array(8);
  hsalsa(sigma, new Uint32Array(shared.slice().buffer), new Uint32Array(4), out);
  return new Uint8Array(out.buffer);
}

/** libsodium crypto_box_seal_open: the data key a notice's wrap carries for this contact. */
export function unwrap(sealed, sk) {
  const epk = sealed.subarray(0, 32);
  const nonce = blake2b(concat(epk, publicX25519(sk)), { dkLen: 24 });
  return xsalsa20poly1305(boxKey(x25519.getSharedSecret(sk, epk)), nonce).decrypt(sealed.subarray(32));
}

/** libsodium crypto_box_seal: wrap a data key for a public key (a reply to the agency). */
export function wrap(dataKey, pk) {
  const esk = randomBytes(32);
  const epk = publicX25519(esk);
  const nonce = blake2b(concat(epk, pk), { dkLen: 24 });
  return concat(epk, xsalsa20poly1305(boxKey(x25519.getSharedSecret(esk, pk)), nonce).encrypt(dataKey));
}

export const associatedData = (id, channel, policyHash) =>
  utf8(`liaison-notice-v1\n${id}\n${channel}\n${policyHash}`);

export function openBody(ciphertext, nonce, aad, key) {
  return xchacha20poly1305(key, nonce, aad).decrypt(ciphertext);
}

export function sealBody(plaintext, aad) {
  const key = randomBytes(32);
  const nonce = randomBytes(24);
  return { key, nonce, ciphertext: xchacha20poly1305(key, nonce, aad).encrypt(plaintext) };
}

// -- signatures ---------------------------------------------------------------------------------

export const sign = (sk, message) => ed25519.sign(message, sk);
export function verify(pk, message, signature) {
  try { return ed25519.verify(signature, message, pk); } catch { return false; }
}

/** An RFC 7523-style client assertion, signed here with the contact's own key. */
export function assertion(sk, contact, kid, audience) {
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: "EdDSA", kid, typ: "JWT" };
  const claims = { iss: contact, sub: contact, aud: audience, iat: now, exp: now + 120, jti: b64url(randomBytes(16)) };
  const input = `${b64url(utf8(JSON.stringify(header)))}.${b64url(utf8(JSON.stringify(claims)))}`;
  return `${input}.${b64url(sign(sk, utf8(input)))}`;
}

/** RFC 9530: every known algorithm in the header matches the bytes, and at least one is known. */
export function digestMatches(header, bytes) {
  const known = { "sha-256": sha256, "sha-512": sha512 };
  const members = [...header.matchAll(/([a-z0-9-]+)=:([A-Za-z0-9+/=]*):/g)];
  const checked = members.filter(([, name]) => name in known);
  return checked.length > 0 && checked.every(([, name, value]) => equal(known[name](bytes), b64decode(value)));
}

/** One RFC 9421 signature: its label, covered components and serialized parameters. */
export function parseSignatureInput(header) {
  const at = header.indexOf("=");
  if (at < 1) throw new Error("malformed Signature-Input");
  const params = header.slice(at + 1).trim();
  const inner = params.match(/^\(([^)]*)\)/);
  if (!inner) throw new Error("malformed Signature-Input");
  const components = [...inner[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]);
  const keyid = (params.match(/;keyid="([^"]*)"/) || [])[1];
  return { label: header.slice(0, at).trim(), components, params, keyid };
}

export function signatureValue(header, label) {
  const m = header.match(new RegExp(`${label}=:([A-Za-z0-9+/=]+):`));
  if (!m) throw new Error("malformed Signature");
  return b64decode(m[1]);
}

export function signatureBase(values, components, params) {
  const lines = components.map((c) => `"${c}": ${values[c]}`);
  lines.push(`"@signature-params": ${params}`);
  return utf8(lines.join("\n"));
}

/** Sign a request as an agency (RFC 9421, Ed25519) over method and target URI. */
export function signRequest(sk, keyid, method, url) {
  const created = Math.floor(Date.now() / 1000);
  const params = `("@method" "@target-uri");created=${created};keyid="${keyid}";alg="ed25519";nonce="${b64url(randomBytes(16))}"`;
  const base = signatureBase({ "@method": method, "@target-uri": url }, ["@method", "@target-uri"], params);
  return { "Signature-Input": `sig1=${params}`, "Signature": `sig1=:${b64encode(sign(sk, base))}:` };
}

// -- the audit log: RFC 9162 Merkle trees and C2SP signed notes --------------------------------------

export const leafHash = (bytes) => sha256(concat(new Uint8Array([0]), bytes));
const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));

/** RFC 9162 MTH over leaf hashes [lo, hi). */
export function rootOf(leaves, lo = 0, hi = leaves.length) {
  const n = hi - lo;
  if (n === 0) return sha256(new Uint8Array(0));
  if (n === 1) return leaves[lo];
  let k = 1;
  while (k * 2 < n) k *= 2;
  return nodeHash(rootOf(leaves, lo, lo + k), rootOf(leaves, lo + k, hi));
}

/** RFC 9162 §2.1.3.2: does `proof` place `leaf` at `index` in the tree of `size` with `root`? */
export function verifyInclusion(index, size, leaf, proof, root) {
  if (index >= size) return false;
  let fn = index, sn = size - 1, r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) { while (fn % 2 === 0 && fn !== 0) { fn >>= 1; sn >>= 1; } }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1; sn >>= 1;
  }
  return sn === 0 && equal(r, root);
}

/** Open a C2SP signed note: its text if `name`/`pub` signed it, else an Error. */
export function openNote(note, name, pub) {
  const at = note.indexOf("\n\n");
  if (at < 0) throw new Error("not a signed note");
  const body = note.slice(0, at + 1);
  const wanted = sha256(concat(utf8(name + "\n"), new Uint8Array([1]), pub)).subarray(0, 4);
  for (const line of note.slice(at + 2).split("\n").filter(Boolean)) {
    const m = line.match(/^\u2014 (\S+) (\S+)$/);
    if (!m) throw new Error("malformed signature line");
    const raw = b64decode(m[2]);
    if (m[1] === name && equal(raw.subarray(0, 4), wanted)) {
      if (verify(pub, utf8(body), raw.subarray(4))) return body;
      throw new Error("the checkpoint's signature does not verify");
    }
  }
  throw new Error("the checkpoint carries no signature from the broker's key");
}

// RFC 8785 (JCS): ECMAScript's JSON forms, keys sorted by UTF-16 code units; here only to
// compare the fields an event shows with those of its leaf.
const jcs = (v) =>
  v !== null && typeof v === "object" && !Array.isArray(v)
    ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${jcs(v[k])}`).join(",")}}`
    : Array.isArray(v) ? `[${v.map(jcs).join(",")}]` : JSON.stringify(v);

/** The bytes an audit event was hashed as: its exact leaf bytes (`leaf_data`, any leaf format),
 *  once the fields shown are checked to be the leaf's; from a broker that sends no leaf_data,
 *  one line of compact JSON, keys in order (leaf format v1). */
export function canonicalEvent(event) {
  if (typeof event.leaf_data !== "string") return utf8(JSON.stringify(event));
  const bytes = b64decode(event.leaf_data);
  const { leaf_data: _, ...shown } = event;
  let leaf;
  try { leaf = JSON.parse(new TextDecoder().decode(bytes)); } catch { leaf = null; }
  if (jcs(leaf) !== jcs(shown)) throw new Error(`event ${event.seq}: the fields shown are not those of its leaf`);
  return bytes;
}
