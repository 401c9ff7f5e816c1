// XML-DSig verification of a CAP alert's enveloped signature, in this page (the port of
// broker/cap/dsig.py, which uses signxml): the result is recomputed here from the decrypted
// alert, never taken from the broker. "valid" means the document is unchanged since the holder
// of the certificate in KeyInfo signed it; whether that holder is the producer it claims to be
// is for the reader to compare (the subject and SHA-256 fingerprint are shown).
// Supported, as signxml's secure defaults: one Reference to the whole document (URI="") or to an
// element by Id, enveloped-signature and canonicalisation transforms (C14N 1.0, 1.1, exclusive;
// with or without comments), SHA-256/384/512 digests, RSA PKCS#1 v1.5 and ECDSA with SHA-2.
// SHA-1 and anything else is refused: reported "invalid" with the reason, never "valid".
import { hex } from "./crypto.js";
import { sha256 } from "./vendor/noble.js";

export const DS = "http://www.w3.org/2000/09/xmldsig#";
const XMLNS = "http://www.w3.org/2000/xmlns/";
const XML = "http://www.w3.org/XML/1998/namespace";
const EXC = "http://www.w3.org/2001/10/xml-exc-c14n#";
const C14N = {
  "http://www.w3.org/TR/2001/REC-xml-c14n-20010315": { exclusive: false, comments: false },
  "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments": { exclusive: false, comments: true },
  "http://www.w3.org/2006/12/xml-c14n11": { exclusive: false, comments: false, v11: true },
  "http://www.w3.org/2006/12/xml-c14n11#WithComments": { exclusive: false, comments: true, v11: true },
  [EXC]: { exclusive: true, comments: false },
  [`${EXC}WithComments`]: { exclusive: true, comments: true },
};
const ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const DIGESTS = {
  "http://www.w3.org/2001/04/xmlenc#sha256": "SHA-256",
  "http://www.w3.org/2001/04/xmldsig-more#sha384": "SHA-384",
  "http://www.w3.org/2001/04/xmlenc#sha512": "SHA-512",
};
const MORE = "http://www.w3.org/2001/04/xmldsig-more#";
const SIGNATURES = {
  [`${MORE}rsa-sha256`]: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
  [`${MORE}rsa-sha384`]: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" },
  [`${MORE}rsa-sha512`]: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-512" },
  [`${MORE}ecdsa-sha256`]: { name: "ECDSA", hash: "SHA-256" },
  [`${MORE}ecdsa-sha384`]: { name: "ECDSA", hash: "SHA-384" },
  [`${MORE}ecdsa-sha512`]: { name: "ECDSA", hash: "SHA-512" },
};

class Refused extends Error {}
const child = (el, name, ns = DS) => [...el.children].find((c) => c.namespaceURI === ns && c.localName === name) || null;
const children = (el, name, ns = DS) => [...el.children].filter((c) => c.namespaceURI === ns && c.localName === name);
const need = (value, what) => { if (!value) throw new Refused(what); return value; };

// -- canonical XML (W3C C14N 1.0/1.1 and Exclusive C14N) over the DOM ---------------------------------

const escText = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/\r/g, "&#xD;");
const escAttr = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;")
  .replace(/\t/g, "&#x9;").replace(/\n/g, "&#xA;").replace(/\r/g, "&#xD;");

/** prefix → namespace URI declared on the element and its ancestors (nearest wins). */
function inScope(el) {
  const found = new Map();
  for (let e = el; e && e.nodeType === 1; e = e.parentNode) {
    for (const a of e.attributes) {
      if (a.namespaceURI !== XMLNS) continue;
      const prefix = a.prefix === "xmlns" ? a.localName : "";
      if (!found.has(prefix)) found.set(prefix, a.value);
    }
  }
  return found;
}

/** The canonical form of `apex` (an element or the document) as a string; `omit` is left out. */
export function canonicalize(apex, { exclusive = false, comments = false, v11 = false, prefixes = [] } = {}, omit = null) {
  const out = [];
  const element = (el, rendered, isApex) => {
    if (el === omit) return;
    const declared = inScope(el);
    const used = new Set([el.prefix || ""]);
    for (const a of el.attributes) if (a.namespaceURI !== XMLNS && a.prefix && a.prefix !== "xml") used.add(a.prefix);
    const emit = [];
    const next = new Map(rendered);
    for (const [prefix, uri] of declared) {
      if (prefix === "xml") continue;
      if (exclusive && !used.has(prefix) && !prefixes.includes(prefix || "#default")) continue;
      if ((rendered.get(prefix) ?? "") === uri) continue;
      if (prefix === "" && uri === "" && !rendered.get("")) continue;
      emit.push([prefix, uri]);
      next.set(prefix, uri);
    }
    emit.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const attrs = [...el.attributes].filter((a) => a.namespaceURI !== XMLNS).map((a) => [a.namespaceURI || "", a.localName, a.name, a.value]);
    if (isApex && !exclusive) inheritXml(el, attrs, v11);
    attrs.sort(([n1, l1], [n2, l2]) => (n1 < n2 ? -1 : n1 > n2 ? 1 : l1 < l2 ? -1 : l1 > l2 ? 1 : 0));
    out.push(`<${el.tagName}`);
    for (const [prefix, uri] of emit) out.push(prefix ? ` xmlns:${prefix}="${escAttr(uri)}"` : ` xmlns="${escAttr(uri)}"`);
    for (const [, , name, value] of attrs) out.push(` ${name}="${escAttr(value)}"`);
    out.push(">");
    for (const node of el.childNodes) content(node, next);
    out.push(`</${el.tagName}>`);
  };
  const content = (node, rendered) => {
    if (node.nodeType === 1) element(node, rendered, false);
    else if (node.nodeType === 3 || node.nodeType === 4) out.push(escText(node.data));
    else if (node.nodeType === 7) out.push(`<?${node.target}${node.data ? ` ${node.data}` : ""}?>`);
    else if (node.nodeType === 8 && comments) out.push(`<!--${node.data}-->`);
  };
  if (apex.nodeType === 9) {
    let seenRoot = false;
    for (const node of apex.childNodes) {
      if (node.nodeType === 1) { element(node, new Map(), true); seenRoot = true; continue; }
      if (node.nodeType !== 7 && !(node.nodeType === 8 && comments)) continue;
      if (seenRoot) out.push("\n");
      content(node, new Map());
      if (!seenRoot) out.push("\n");
    }
  } else {
    element(apex, new Map(), true);
  }
  return out.join("");
}

/** Inclusive C14N: xml:* attributes of the apex's ancestors (1.1: not xml:id or xml:base). */
function inheritXml(el, attrs, v11) {
  const have = new Set(attrs.filter(([ns]) => ns === XML).map(([, local]) => local));
  for (let e = el.parentNode; e && e.nodeType === 1; e = e.parentNode) {
    for (const a of e.attributes) {
      if (a.namespaceURI !== XML || have.has(a.localName)) continue;
      if (v11 && (a.localName === "id" || a.localName === "base")) continue;
      have.add(a.localName);
      attrs.push([XML, a.localName, a.name, a.value]);
    }
  }
}

function c14nOf(methodEl) {
  const algorithm = methodEl.getAttribute("Algorithm");
  const options = C14N[algorithm];
  if (!options) return null;
  const inclusive = child(methodEl, "InclusiveNamespaces", EXC);
  const prefixes = inclusive ? (inclusive.getAttribute("PrefixList") || "").split(/\s+/).filter(Boolean) : [];
  return { ...options, prefixes };
}

// -- X.509: the subject (RFC 4514, as Python's cryptography writes it) and the public key --------

function der(bytes, at = 0) {
  const tag = bytes[at];
  let length = bytes[at + 1];
  let start = at + 2;
  if (length & 0x80) {
    const n = length & 0x7f;
    length = 0;
    for (let i = 0; i < n; i++) length = length * 256 + bytes[start + i];
    start += n;
  }
  if (start + length > bytes.length) throw new Refused("unreadable certificate: truncated DER");
  return { tag, start, end: start + length, whole: bytes.subarray(at, start + length) };
}

function items(bytes, node) {
  const found = [];
  for (let at = node.start; at < node.end;) { const item = der(bytes, at); found.push(item); at = item.end; }
  return found;
}

const NAMES = { "2.5.4.3": "CN", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.6": "C", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID" };

function oid(bytes) {
  const parts = [Math.floor(bytes[0] / 40), bytes[0] % 40];
  let value = 0;
  for (const b of bytes.subarray(1)) { value = value * 128 + (b & 0x7f); if (!(b & 0x80)) { parts.push(value); value = 0; } }
  return parts.join(".");
}

function stringValue(bytes, node) {
  const raw = bytes.subarray(node.start, node.end);
  if (node.tag === 0x1e) return new TextDecoder("utf-16be").decode(raw);
  if (node.tag === 0x14) return String.fromCharCode(...raw);
  return new TextDecoder().decode(raw);
}

function escapeDn(value) {
  let v = value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\+/g, "\\+").replace(/,/g, "\\,")
    .replace(/;/g, "\\;").replace(/</g, "\\<").replace(/>/g, "\\>").replace(/\0/g, "\\00");
  if (v.startsWith("#") || v.startsWith(" ")) v = `\\${v}`;
  if (v.endsWith(" ")) v = `${v.slice(0, -1)}\\ `;
  return v;
}

function subjectOf(bytes, name) {
  const rdns = items(bytes, name).map((set) => items(bytes, set).map((pair) => {
    const [type, value] = items(bytes, pair);
    const id = oid(bytes.subarray(type.start, type.end));
    return `${NAMES[id] || id}=${escapeDn(stringValue(bytes, value))}`;
  }).join("+"));
  return rdns.reverse().join(",");
}

const CURVES = { "1.2.840.10045.3.1.7": "P-256", "1.3.132.0.34": "P-384", "1.3.132.0.35": "P-521" };

/** The certificate's subject, SHA-256 fingerprint and a WebCrypto key for `signature`. */
async function certificate(derBytes, signature) {
  const cert = items(derBytes, der(derBytes));
  const tbs = items(derBytes, cert[0]);
  const fields = tbs[0].tag === 0xa0 ? tbs.slice(1) : tbs;
  const [subject, spki] = [fields[4], fields[5]];
  const [algorithm] = items(derBytes, spki);
  const [kind, params] = items(derBytes, algorithm);
  const keyType = oid(derBytes.subarray(kind.start, kind.end));
  let spec;
  if (keyType === "1.2.840.113549.1.1.1" && signature.name === "RSASSA-PKCS1-v1_5") spec = { name: signature.name, hash: signature.hash };
  else if (keyType === "1.2.840.10045.2.1" && signature.name === "ECDSA" && params) {
    const curve = CURVES[oid(derBytes.subarray(params.start, params.end))];
    if (!curve) throw new Refused("the certificate's elliptic curve is not supported");
    spec = { name: "ECDSA", namedCurve: curve };
  } else throw new Refused("the certificate's key does not match the signature method");
  const key = await crypto.subtle.importKey("spki", spki.whole, spec, false, ["verify"]);
  return { key, signer: subjectOf(derBytes, subject), sha256: hex(sha256(derBytes)) };
}

// -- the signature ---------------------------------------------------------------------------------

const b64 = (text) => Uint8Array.from(atob(text.replace(/\s+/g, "")), (c) => c.charCodeAt(0));

async function digest(hash, text) {
  return new Uint8Array(await crypto.subtle.digest(hash, new TextEncoder().encode(text)));
}

function referenced(doc, signature, reference) {
  const uri = reference.getAttribute("URI");
  if (uri === "" || uri === null) return doc;
  if (!uri.startsWith("#")) throw new Refused(`reference ${uri}: only same-document references are checked`);
  const id = uri.slice(1);
  const found = [...doc.getElementsByTagName("*")].filter((e) => ["Id", "ID", "id"].some((n) => e.getAttribute(n) === id));
  if (found.length !== 1) throw new Refused(`reference ${uri}: ${found.length ? "ambiguous" : "not found"}`);
  return found[0];
}

async function checkReference(doc, signature, reference) {
  const target = referenced(doc, signature, reference);
  let c14n = { exclusive: false, comments: false, prefixes: [] };
  let enveloped = false;
  const transforms = child(reference, "Transforms");
  for (const transform of transforms ? children(transforms, "Transform") : []) {
    const algorithm = transform.getAttribute("Algorithm");
    if (algorithm === ENVELOPED) { enveloped = true; continue; }
    const options = c14nOf(transform);
    if (!options) throw new Refused(`transform ${algorithm}: not supported`);
    c14n = { ...options, comments: false }; // a same-document reference never includes comments
  }
  const method = need(child(reference, "DigestMethod"), "no DigestMethod").getAttribute("Algorithm");
  const hash = DIGESTS[method];
  if (!hash) throw new Refused(`digest method ${method}: not accepted (weak or unknown)`);
  const bytes = await digest(hash, canonicalize(target, c14n, enveloped ? signature : null));
  const expected = b64(need(child(reference, "DigestValue"), "no DigestValue").textContent);
  if (hex(bytes) !== hex(expected)) throw new Refused("Digest mismatch: the alert changed after it was signed");
}

/** `{status: "absent" | "valid" | "invalid", signatures, signer, certificate_sha256, reason}` for
 *  the first enveloped signature of a parsed CAP alert (`doc`), as broker/cap/dsig.py gives it. */
export async function verifySignature(doc) {
  const signatures = children(doc.documentElement, "Signature");
  if (!signatures.length) return { status: "absent" };
  const result = { signatures: signatures.length };
  const [signature] = signatures;
  const certificateEl = signature.getElementsByTagNameNS(DS, "X509Certificate")[0];
  if (!certificateEl || !certificateEl.textContent.trim()) return { ...result, status: "invalid", reason: "no X509Certificate in KeyInfo" };
  try {
    const signedInfo = need(child(signature, "SignedInfo"), "no SignedInfo");
    const method = need(child(signedInfo, "SignatureMethod"), "no SignatureMethod").getAttribute("Algorithm");
    const scheme = SIGNATURES[method];
    let cert;
    try { cert = await certificate(b64(certificateEl.textContent), scheme || SIGNATURES[`${MORE}rsa-sha256`]); } catch (e) {
      return { ...result, status: "invalid", reason: `unreadable certificate: ${e.message}` };
    }
    Object.assign(result, { signer: cert.signer, certificate_sha256: cert.sha256 });
    if (!scheme) throw new Refused(`signature method ${method}: not accepted (weak or unknown)`);
    const c14n = c14nOf(need(child(signedInfo, "CanonicalizationMethod"), "no CanonicalizationMethod"));
    if (!c14n) throw new Refused("canonicalization method not supported");
    const references = children(signedInfo, "Reference");
    if (references.length !== 1) throw new Refused(`expected 1 reference, found ${references.length}`);
    await checkReference(doc, signature, references[0]);
    const value = b64(need(child(signature, "SignatureValue"), "no SignatureValue").textContent);
    const algorithm = scheme.name === "ECDSA" ? { name: "ECDSA", hash: scheme.hash } : { name: scheme.name };
    const ok = await crypto.subtle.verify(algorithm, cert.key, value, new TextEncoder().encode(canonicalize(signedInfo, c14n)));
    if (!ok) throw new Refused("Signature verification failed");
    return { ...result, status: "valid" };
  } catch (e) {
    if (!(e instanceof Refused) && !(e instanceof DOMException)) throw e;
    return { ...result, status: "invalid", reason: e.message.slice(0, 300) };
  }
}
