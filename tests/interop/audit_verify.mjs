// An auditor's verifier written apart from the broker, in JavaScript with Node's own crypto only:
// from the API alone (GET /v1/audit/checkpoints, /v1/audit/events?hidden=leaves) and a pinned
// log key, it checks every signed checkpoint (C2SP signed note, Ed25519), re-derives every leaf
// from its bytes (RFC 8785 for leaf format v2; v1 leaves as their bytes), follows the prev chain
// and recomputes the RFC 9162 Merkle root at every signed size.
//
//   LIAISON_TOKEN=<auditor's bearer token> node audit_verify.mjs <broker URL> <log key, base64>
//
// Exit 0 and "OK: ..." when everything holds; exit 1 and "FAIL: <what, at which event>" at the
// first thing that does not. Nothing here is shared with the Python code it checks.
import { createHash, createPublicKey, verify } from "node:crypto";

const [url, pinned] = process.argv.slice(2);
const token = process.env.LIAISON_TOKEN;

class Failed extends Error {}
const fail = (message) => { throw new Failed(message); };

const sha256 = (...parts) => createHash("sha256").update(Buffer.concat(parts)).digest();
const leafHash = (data) => sha256(Buffer.from([0]), data);
const nodeHash = (l, r) => sha256(Buffer.from([1]), l, r);

// RFC 8785: ECMAScript's own JSON.stringify for strings and numbers, keys sorted by UTF-16 code
// units (what Array.prototype.sort does with strings), no whitespace.
function jcs(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) fail("a number JCS cannot carry");
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
  if (typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${jcs(value[k])}`).join(",")}}`;
  }
  return fail("a value JSON cannot carry");
}

async function get(path) {
  const answer = await fetch(new URL(path, url), { headers: { Authorization: `Bearer ${token}` } });
  if (answer.status !== 200) fail(`${path}: HTTP ${answer.status}`);
  return answer.json();
}

// c2sp.org/signed-note: text, a blank line, "— <name> base64(key id || signature)" lines, where
// key id = SHA-256(name || "\n" || 0x01 || public key)[:4].
function openNote(note, publicRaw) {
  const cut = note.indexOf("\n\n");
  if (cut < 0) fail("a checkpoint is not a signed note");
  const text = note.slice(0, cut + 1);
  const origin = text.split("\n")[0];
  const key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicRaw.toString("base64url") }, format: "jwk" });
  const id = sha256(Buffer.from(`${origin}\n`), Buffer.from([1]), publicRaw).subarray(0, 4);
  for (const line of note.slice(cut + 2).split("\n").filter((l) => l)) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (!m) fail("a checkpoint has a malformed signature line");
    const blob = Buffer.from(m[2], "base64");
    if (m[1] === origin && blob.subarray(0, 4).equals(id)) {
      if (verify(null, Buffer.from(text), key, blob.subarray(4))) return text;
      fail(`the checkpoint of ${origin} does not verify under the pinned key`);
    }
  }
  return fail(`a checkpoint of ${origin} carries no signature by the pinned key`);
}

// c2sp.org/tlog-checkpoint: origin, decimal size, base64 root, each on its own line.
function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "" || !/^(0|[1-9][0-9]*)$/.test(lines[1])) fail("not a checkpoint");
  const root = Buffer.from(lines[2], "base64");
  if (root.length !== 32 || root.toString("base64") !== lines[2]) fail("a checkpoint root is not 32 bytes of base64");
  return { origin: lines[0], size: Number(lines[1]), root };
}

async function signedRoots(publicRaw) {
  const roots = new Map();
  let cursor = "0", origins = null;
  do {
    const page = await get(`/v1/audit/checkpoints?cursor=${cursor}&limit=500`);
    origins ??= page.origins;
    for (const { note, size } of page.checkpoints) {
      const checkpoint = parseCheckpoint(openNote(note, publicRaw));
      if (!origins.includes(checkpoint.origin)) fail(`a checkpoint is for another log (${checkpoint.origin})`);
      if (checkpoint.size !== size) fail(`the checkpoint listed at size ${size} signs size ${checkpoint.size}`);
      if (roots.has(size) && !roots.get(size).equals(checkpoint.root)) fail(`two checkpoints at size ${size} disagree`);
      roots.set(size, checkpoint.root);
    }
    cursor = page.next_cursor;
  } while (cursor);
  if (!roots.size) fail("no signed checkpoint");
  return roots;
}

// The leaf hash of one event as the API gives it, its chain link checked; throws at the first fault.
function leafOf(event, position, previous) {
  if (event.hidden === true) {
    if (event.seq !== position || !/^[0-9a-f]{64}$/.test(event.leaf)) fail(`event ${position}: a malformed hidden leaf`);
    return Buffer.from(event.leaf, "hex");
  }
  const data = Buffer.from(event.leaf_data ?? "", "base64");
  let record;
  try { record = JSON.parse(data.toString("utf8")); } catch { fail(`event ${position}: its leaf is not JSON`); }
  if (record === null || typeof record !== "object" || Array.isArray(record)) fail(`event ${position}: its leaf is not an event`);
  const { leaf_data: _, ...shown } = event;
  if (jcs(shown) !== jcs(record)) fail(`event ${position}: the fields shown are not those of its leaf`);
  if ("v" in record) {
    if (record.v !== 2) fail(`event ${position}: leaf format ${record.v} is unknown`);
    if (!Buffer.from(jcs(record)).equals(data)) fail(`event ${position}: its v2 leaf is not RFC 8785 canonical`);
  } else if (!data.subarray(0, 7).equals(Buffer.from('{"seq":'))) {
    fail(`event ${position}: its v1 leaf does not start with seq`);
  }
  if (record.seq !== position) fail(`event ${position}: found event ${record.seq} in its place`);
  if (record.prev !== previous) fail(`event ${position - 1}: altered (event ${position} chains to another hash)`);
  return leafHash(data);
}

async function main() {
  if (!url || !pinned || !token) fail("usage: LIAISON_TOKEN=... node audit_verify.mjs URL LOG_KEY_BASE64");
  const publicRaw = Buffer.from(pinned, "base64");
  if (publicRaw.length !== 32) fail("the pinned log key is not 32 bytes");
  const roots = await signedRoots(publicRaw);
  const last = Math.max(...roots.keys());
  // The frontier of perfect subtrees [height, hash], largest first (RFC 9162's tree, appended to).
  const frontier = [];
  let size = 0, previous = "0".repeat(64), cursor = "0", shown = 0, hidden = 0;
  while (size < last && cursor) {
    const page = await get(`/v1/audit/events?hidden=leaves&limit=1000&cursor=${cursor}`);
    for (const event of page.events) {
      if (size === last) break;
      const leaf = leafOf(event, size + 1, previous);
      event.hidden ? hidden++ : shown++;
      previous = leaf.toString("hex");
      frontier.push([0, leaf]);
      size++;
      while (frontier.length > 1 && frontier.at(-1)[0] === frontier.at(-2)[0]) {
        const [h, right] = frontier.pop();
        const [, left] = frontier.pop();
        frontier.push([h + 1, nodeHash(left, right)]);
      }
      if (roots.has(size)) {
        let root = frontier.at(-1)[1];
        for (let i = frontier.length - 2; i >= 0; i--) root = nodeHash(frontier[i][1], root);
        if (!root.equals(roots.get(size))) fail(`event ${size}: the log up to here does not match the checkpoint signed at size ${size}`);
      }
    }
    cursor = page.next_cursor;
  }
  if (size < last) fail(`event ${size + 1}: missing; a checkpoint was signed at size ${last} (truncated)`);
  console.log(`OK: ${size} events (${shown} shown, ${hidden} as leaf hashes) under ${roots.size} signed checkpoint(s)`);
}

main().catch((e) => {
  console.log(`FAIL: ${e instanceof Failed ? e.message : e}`);
  process.exit(1);
});
