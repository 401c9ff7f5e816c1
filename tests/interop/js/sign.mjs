// Sign one request as a Liaison agency system, with the JavaScript `http-message-signatures`
// (npm) and the settings the README gives, send it, and print the status and the answer.
// usage: node sign.mjs METHOD URL KEY.pem KEYID BODY.json|- [defaults]
// With "defaults", the library's own defaults instead (no nonce, nothing covered): refused.
import { createHash, createPrivateKey, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { httpbis, createSigner } from "http-message-signatures";

const [method, url, keyFile, keyid, bodyFile, mode] = process.argv.slice(2);
const body = bodyFile && bodyFile !== "-" ? readFileSync(bodyFile) : null;
const headers = {};
if (body !== null) {
  headers["Content-Type"] = "application/json";
  // The library signs a Content-Digest header but does not compute one (RFC 9530).
  headers["Content-Digest"] = `sha-256=:${createHash("sha256").update(body).digest("base64")}:`;
}
const key = createSigner(createPrivateKey(readFileSync(keyFile)), "ed25519", keyid);
const settings = mode === "defaults" ? { key } : {
    key,
    fields: body !== null
      ? ["@method", "@target-uri", "content-type", "content-digest"]
      : ["@method", "@target-uri"],
    params: ["created", "keyid", "alg", "nonce"], // the default has no nonce, which the broker needs
    paramValues: { nonce: randomUUID() },
  };
const signed = await httpbis.signMessage(settings, { method, url, headers });
const answer = await fetch(url, { method, headers: signed.headers, body: body ?? undefined });
console.log(JSON.stringify({ status: answer.status, body: await answer.json() }));
